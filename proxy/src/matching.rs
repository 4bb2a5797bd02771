//! ALB listener-rule conditions, compiled once and matched per request without allocating.
//!
//! Semantics follow `alb-ecs-semantics.md` §1.4: all conditions of a rule must match (AND), the
//! values inside one condition are alternatives (OR). Matching only reads borrowed request data
//! (`&str`, `&[u8]`, `&HeaderMap`), takes no locks and allocates nothing, because it runs on the
//! per-request hot path.

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName};
use ipnet::IpNet;
use scalegate_config::{Condition, HttpHeaderCondition, QueryStringPair};

/// What the rule conditions look at; borrowed from the request so matching never copies.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// Request method, compared exactly (case-sensitive).
    pub method: &'a str,
    /// First `Host` (HTTP/1) or `:authority` (HTTP/2), as received (may include `:port`).
    pub host: Option<&'a str>,
    /// Path only, as received (still percent-encoded), never the query.
    pub path: &'a str,
    /// Query string without the leading `?`.
    pub query: Option<&'a str>,
    /// All request headers, for `http-header` conditions.
    pub headers: &'a HeaderMap,
    /// TCP peer address, for `source-ip` (never X-Forwarded-For, as ALB).
    pub peer_ip: IpAddr,
}

/// How a pattern compares letters: host, header and query conditions ignore ASCII case, paths
/// do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseSensitivity {
    /// `A` and `a` are different (path-pattern).
    Sensitive,
    /// ASCII letters compare equal regardless of case (host, header, query-string).
    AsciiInsensitive,
}

/// One compiled pattern element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// A literal byte (already lower-cased for case-insensitive patterns).
    Byte(u8),
    /// `?`: exactly one character (a whole UTF-8 sequence, not one byte).
    AnyOne,
    /// `*`: zero or more characters.
    AnyRun,
}

/// An ALB wildcard pattern (`*` = zero or more characters, `?` = exactly one), compiled once.
///
/// Matching uses the classic two-cursor algorithm that remembers only the most recent `*`, so it
/// is iterative and bounded by `pattern length × subject length` steps even for pathological
/// patterns like `*a*a*a*b`; there is no recursion and no regex engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wildcard {
    tokens: Box<[Token]>,
    case: CaseSensitivity,
}

impl Wildcard {
    /// Compiles `pattern`; with `escapes`, `\*` and `\?` stand for literal `*` and `?` (and `\\`
    /// for a backslash), as ALB's query-string condition allows. Any other backslash is literal.
    pub fn new(pattern: &str, case: CaseSensitivity, escapes: bool) -> Wildcard {
        let mut tokens = Vec::with_capacity(pattern.len());
        let mut bytes = pattern.bytes().peekable();
        while let Some(byte) = bytes.next() {
            let token = match byte {
                b'*' => {
                    if tokens.last() == Some(&Token::AnyRun) {
                        continue; // `**` means the same as `*`; collapsing keeps matching linear-ish.
                    }
                    Token::AnyRun
                }
                b'?' => Token::AnyOne,
                b'\\' if escapes => match bytes.peek() {
                    Some(&next @ (b'*' | b'?' | b'\\')) => {
                        bytes.next();
                        Token::Byte(next)
                    }
                    _ => Token::Byte(b'\\'),
                },
                other => Token::Byte(fold(other, case)),
            };
            tokens.push(token);
        }
        Wildcard {
            tokens: tokens.into_boxed_slice(),
            case,
        }
    }

    /// True if the whole of `subject` matches the pattern.
    pub fn matches(&self, subject: &[u8]) -> bool {
        self.matches_subject(RawBytes(subject))
    }

    /// True if the whole of `subject`, percent-decoded on the fly, matches the pattern.
    pub fn matches_percent_decoded(&self, subject: &[u8]) -> bool {
        self.matches_subject(PercentDecoded(subject))
    }

    fn matches_subject<S: Subject>(&self, subject: S) -> bool {
        let tokens = &self.tokens;
        let mut token_at = 0;
        let mut subject_at = 0;
        // Where to resume after the latest `*`: the token after it and the subject position it
        // has swallowed up to so far.
        let mut last_run: Option<(usize, usize)> = None;
        loop {
            let unit = subject.unit_at(subject_at);
            let advanced = match (tokens.get(token_at), unit) {
                (Some(Token::AnyRun), _) => {
                    token_at += 1;
                    last_run = Some((token_at, subject_at));
                    true
                }
                (Some(Token::AnyOne), Some((_, after))) => {
                    token_at += 1;
                    subject_at = subject.char_end(after);
                    true
                }
                (Some(Token::Byte(expected)), Some((byte, after)))
                    if *expected == fold(byte, self.case) =>
                {
                    token_at += 1;
                    subject_at = after;
                    true
                }
                (None, None) => return true,
                _ => false,
            };
            if advanced {
                continue;
            }
            // Mismatch: let the latest `*` swallow one more character and retry after it.
            match last_run {
                Some((resume_token, swallowed_to)) => match subject.unit_at(swallowed_to) {
                    Some((_, after)) => {
                        let next = subject.char_end(after);
                        last_run = Some((resume_token, next));
                        token_at = resume_token;
                        subject_at = next;
                    }
                    None => return false,
                },
                None => return false,
            }
        }
    }
}

fn fold(byte: u8, case: CaseSensitivity) -> u8 {
    match case {
        CaseSensitivity::Sensitive => byte,
        CaseSensitivity::AsciiInsensitive => byte.to_ascii_lowercase(),
    }
}

/// A byte sequence the wildcard walks one unit at a time; positions index the underlying raw
/// bytes so backtracking is just remembering a `usize`.
trait Subject: Copy {
    /// The unit (decoded byte) at raw position `at` and the raw position after it.
    fn unit_at(self, at: usize) -> Option<(u8, usize)>;

    /// Skips UTF-8 continuation units from `at`, so `?` and `*` consume whole characters.
    fn char_end(self, mut at: usize) -> usize {
        while let Some((byte, after)) = self.unit_at(at) {
            if byte & 0b1100_0000 != 0b1000_0000 {
                break;
            }
            at = after;
        }
        at
    }
}

#[derive(Clone, Copy)]
struct RawBytes<'a>(&'a [u8]);

impl Subject for RawBytes<'_> {
    fn unit_at(self, at: usize) -> Option<(u8, usize)> {
        self.0.get(at).map(|&byte| (byte, at + 1))
    }
}

/// Decodes `%XX` as it goes; a `%` not followed by two hex digits stays a literal `%`. `+` is
/// not turned into a space: RFC 3986 (which ALB cites for query strings) gives it no meaning.
#[derive(Clone, Copy)]
struct PercentDecoded<'a>(&'a [u8]);

impl Subject for PercentDecoded<'_> {
    fn unit_at(self, at: usize) -> Option<(u8, usize)> {
        let byte = *self.0.get(at)?;
        if byte == b'%' {
            if let (Some(high), Some(low)) = (
                self.0.get(at + 1).and_then(|&b| hex_value(b)),
                self.0.get(at + 2).and_then(|&b| hex_value(b)),
            ) {
                return Some((high << 4 | low, at + 3));
            }
        }
        Some((byte, at + 1))
    }
}

/// The value of one hex digit (either case), for percent-decoding.
pub(crate) fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Removes a `:port` suffix from a Host / `:authority` value, keeping IPv6 brackets
/// (`[::1]:80` → `[::1]`). A colon-rich value without brackets is left alone: it is not
/// `host:port`.
pub fn strip_port(authority: &str) -> &str {
    crate::headers::split_host_port(authority).0
}

/// A query-string condition pair; a missing key pattern matches any key.
#[derive(Debug, Clone)]
struct QueryPairPattern {
    key: Option<Wildcard>,
    value: Wildcard,
}

/// One compiled condition; private so the representation can change under the lead's handler.
#[derive(Debug, Clone)]
enum CompiledCondition {
    Host(Box<[Wildcard]>),
    Path(Box<[Wildcard]>),
    Header {
        name: HeaderName,
        values: Box<[Wildcard]>,
    },
    Method(Box<[Box<str>]>),
    Query(Box<[QueryPairPattern]>),
    SourceIp(Box<[IpNet]>),
}

impl CompiledCondition {
    fn compile(condition: &Condition) -> Result<CompiledCondition, String> {
        Ok(match condition {
            Condition::HostHeader(values) => CompiledCondition::Host(wildcards(
                "host_header",
                values,
                CaseSensitivity::AsciiInsensitive,
            )?),
            Condition::PathPattern(values) => CompiledCondition::Path(wildcards(
                "path_pattern",
                values,
                CaseSensitivity::Sensitive,
            )?),
            Condition::HttpHeader(HttpHeaderCondition { name, values }) => {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("http_header: {name:?} is not a valid header name"))?;
                let values = wildcards("http_header", values, CaseSensitivity::AsciiInsensitive)?;
                CompiledCondition::Header { name, values }
            }
            Condition::HttpRequestMethod(values) => {
                require_values("http_request_method", values)?;
                CompiledCondition::Method(
                    values.iter().map(|value| value.as_str().into()).collect(),
                )
            }
            Condition::QueryString(pairs) => {
                require_values("query_string", pairs)?;
                let compiled = pairs
                    .iter()
                    .map(compile_query_pair)
                    .collect::<Result<_, _>>()?;
                CompiledCondition::Query(compiled)
            }
            Condition::SourceIp(values) => {
                require_values("source_ip", values)?;
                CompiledCondition::SourceIp(
                    values
                        .iter()
                        .map(|value| parse_cidr(value))
                        .collect::<Result<_, _>>()?,
                )
            }
        })
    }

    fn matches(&self, request: &RequestFacts<'_>) -> bool {
        match self {
            CompiledCondition::Host(patterns) => request.host.is_some_and(|host| {
                let host = strip_port(host).as_bytes();
                patterns.iter().any(|pattern| pattern.matches(host))
            }),
            CompiledCondition::Path(patterns) => patterns
                .iter()
                .any(|pattern| pattern.matches(request.path.as_bytes())),
            CompiledCondition::Header { name, values } => {
                request.headers.get_all(name).iter().any(|instance| {
                    values
                        .iter()
                        .any(|pattern| pattern.matches(instance.as_bytes()))
                })
            }
            CompiledCondition::Method(methods) => {
                methods.iter().any(|method| **method == *request.method)
            }
            CompiledCondition::Query(pairs) => request.query.is_some_and(|query| {
                query_pairs(query).any(|(key, value)| {
                    pairs.iter().any(|pair| {
                        pair.key
                            .as_ref()
                            .is_none_or(|pattern| pattern.matches_percent_decoded(key))
                            && pair.value.matches_percent_decoded(value)
                    })
                })
            }),
            CompiledCondition::SourceIp(networks) => {
                let mapped = match request.peer_ip {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
                    IpAddr::V4(_) => None,
                };
                networks.iter().any(|network| {
                    network.contains(&request.peer_ip)
                        || mapped.is_some_and(|v4| network.contains(&v4))
                })
            }
        }
    }
}

fn require_values<T>(condition: &str, values: &[T]) -> Result<(), String> {
    if values.is_empty() {
        return Err(format!("{condition}: needs at least one value"));
    }
    Ok(())
}

fn compile_pattern(
    condition: &str,
    pattern: &str,
    case: CaseSensitivity,
    escapes: bool,
) -> Result<Wildcard, String> {
    if pattern.is_empty() {
        return Err(format!("{condition}: values can't be empty"));
    }
    Ok(Wildcard::new(pattern, case, escapes))
}

fn wildcards(
    condition: &str,
    values: &[String],
    case: CaseSensitivity,
) -> Result<Box<[Wildcard]>, String> {
    require_values(condition, values)?;
    values
        .iter()
        .map(|value| compile_pattern(condition, value, case, false))
        .collect()
}

fn compile_query_pair(pair: &QueryStringPair) -> Result<QueryPairPattern, String> {
    let case = CaseSensitivity::AsciiInsensitive;
    let key = match &pair.key {
        Some(key) => Some(compile_pattern("query_string key", key, case, true)?),
        None => None,
    };
    let value = compile_pattern("query_string value", &pair.value, case, true)?;
    Ok(QueryPairPattern { key, value })
}

/// Accepts `10.0.0.0/8`, `2001:db8::/32`, or a bare address meaning that one host.
fn parse_cidr(value: &str) -> Result<IpNet, String> {
    value
        .parse::<IpNet>()
        .or_else(|_| value.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("source_ip: {value:?} is not a CIDR block"))
}

/// Splits `a=1&b&c=` into raw (still percent-encoded) `(key, value)` pairs; a key without `=`
/// has an empty value and empty segments (`a=1&&b=2`) are skipped.
fn query_pairs(query: &str) -> impl Iterator<Item = (&[u8], &[u8])> {
    query
        .as_bytes()
        .split(|&byte| byte == b'&')
        .filter(|segment| !segment.is_empty())
        .map(
            |segment| match segment.iter().position(|&byte| byte == b'=') {
                Some(equals) => (&segment[..equals], &segment[equals + 1..]),
                None => (segment, &segment[segment.len()..]),
            },
        )
}

/// The conditions of one rule, compiled once at config load.
///
/// Choices where ALB is not explicit:
/// - path-pattern matches the path exactly as received (still percent-encoded, no dot-segment
///   normalisation), because ALB routes on the request as sent and never rewrites the path;
///   `/a%2Fb` does not match `/a/b`.
/// - query-string keys and values are percent-decoded before matching (ALB: "any character can
///   be percentage encoded"); `+` stays `+`. A literal `*`/`?` in the query (also `%2A`/`%3F`)
///   is matched by `\*`/`\?` in the pattern.
/// - host-header compares the first Host/`:authority` without its port, IPv6 literals keeping
///   their brackets; case folding is ASCII only, as ALB rules only apply to visible ASCII.
#[derive(Debug, Clone, Default)]
pub struct CompiledConditions {
    conditions: Box<[CompiledCondition]>,
}

impl CompiledConditions {
    /// Compiles a rule's conditions; errors (never panics) on input validation should have
    /// caught: empty value lists or patterns, bad header names, bad CIDRs.
    pub fn compile(conditions: &[Condition]) -> Result<CompiledConditions, String> {
        let conditions = conditions
            .iter()
            .map(CompiledCondition::compile)
            .collect::<Result<_, _>>()?;
        Ok(CompiledConditions { conditions })
    }

    /// True when every condition matches (an empty list matches everything, like the default
    /// rule).
    pub fn matches(&self, request: &RequestFacts<'_>) -> bool {
        self.conditions
            .iter()
            .all(|condition| condition.matches(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn request<'a>(headers: &'a HeaderMap) -> RequestFacts<'a> {
        RequestFacts {
            method: "GET",
            host: Some("www.example.com"),
            path: "/",
            query: None,
            headers,
            peer_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
        }
    }

    fn compile(condition: Condition) -> CompiledConditions {
        CompiledConditions::compile(&[condition]).expect("condition compiles")
    }

    fn host_matches(pattern: &str, host: &str) -> bool {
        let headers = HeaderMap::new();
        let facts = RequestFacts {
            host: Some(host),
            ..request(&headers)
        };
        compile(Condition::HostHeader(vec![pattern.into()])).matches(&facts)
    }

    fn path_matches(pattern: &str, path: &str) -> bool {
        let headers = HeaderMap::new();
        let facts = RequestFacts {
            path,
            ..request(&headers)
        };
        compile(Condition::PathPattern(vec![pattern.into()])).matches(&facts)
    }

    fn query_matches(pairs: &[(Option<&str>, &str)], query: Option<&str>) -> bool {
        let headers = HeaderMap::new();
        let facts = RequestFacts {
            query,
            ..request(&headers)
        };
        let pairs = pairs
            .iter()
            .map(|(key, value)| QueryStringPair {
                key: key.map(str::to_string),
                value: value.to_string(),
            })
            .collect();
        compile(Condition::QueryString(pairs)).matches(&facts)
    }

    fn source_matches(cidrs: &[&str], peer_ip: IpAddr) -> bool {
        let headers = HeaderMap::new();
        let facts = RequestFacts {
            peer_ip,
            ..request(&headers)
        };
        compile(Condition::SourceIp(
            cidrs.iter().map(|cidr| cidr.to_string()).collect(),
        ))
        .matches(&facts)
    }

    #[test]
    fn wildcard_basics() {
        let star = Wildcard::new("a*c", CaseSensitivity::Sensitive, false);
        assert!(star.matches(b"ac"), "* matches empty");
        assert!(star.matches(b"abbbc"));
        assert!(!star.matches(b"abbb"));
        let one = Wildcard::new("a?c", CaseSensitivity::Sensitive, false);
        assert!(one.matches(b"abc"));
        assert!(!one.matches(b"ac"), "? needs exactly one character");
        assert!(!one.matches(b"abbc"));
        assert!(
            one.matches("aéc".as_bytes()),
            "? is one character, not one byte"
        );
        assert!(Wildcard::new("*", CaseSensitivity::Sensitive, false).matches(b""));
        assert!(Wildcard::new("**x**", CaseSensitivity::Sensitive, false).matches(b"x"));
        assert!(!Wildcard::new("abc", CaseSensitivity::Sensitive, false).matches(b"ABC"));
        assert!(Wildcard::new("abc", CaseSensitivity::AsciiInsensitive, false).matches(b"ABC"));
        assert!(Wildcard::new("ABC", CaseSensitivity::AsciiInsensitive, false).matches(b"abc"));
    }

    #[test]
    fn wildcard_pathological_pattern_is_fast() {
        let pattern = format!("{}b", "*a".repeat(60));
        let wildcard = Wildcard::new(&pattern, CaseSensitivity::Sensitive, false);
        let subject = "a".repeat(16 * 1024);
        let started = std::time::Instant::now();
        assert!(!wildcard.matches(subject.as_bytes()));
        assert!(wildcard.matches(format!("{subject}b").as_bytes()));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn wildcard_escapes() {
        let escaped = Wildcard::new(r"a\*b\?", CaseSensitivity::AsciiInsensitive, true);
        assert!(escaped.matches(b"a*b?"));
        assert!(!escaped.matches(b"axxbc"));
        let unescaped = Wildcard::new(r"a\*b", CaseSensitivity::AsciiInsensitive, false);
        assert!(
            unescaped.matches(br"a\xyzb"),
            "without escapes the backslash is literal"
        );
        let lone = Wildcard::new(r"a\b\", CaseSensitivity::AsciiInsensitive, true);
        assert!(lone.matches(br"a\b\"));
    }

    #[test]
    fn host_header_wildcards_case_and_port() {
        assert!(host_matches("*.example.com", "test.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(host_matches("*.example.com", "a.b.example.com"));
        assert!(host_matches("www.example.com", "WWW.Example.COM"));
        assert!(host_matches("WWW.EXAMPLE.COM", "www.example.com"));
        assert!(host_matches("www?.example.com", "www1.example.com"));
        assert!(!host_matches("www?.example.com", "www.example.com"));
        assert!(host_matches("www.example.com", "www.example.com:8080"));
        assert!(!host_matches("www.example.com", "www.example.com.evil.net"));
        assert!(host_matches("[::1]", "[::1]:80"));
        assert!(host_matches("[::1]", "[::1]"));
        assert!(
            !host_matches("*1", "[::1]:80"),
            "brackets are kept, port removed"
        );
        let headers = HeaderMap::new();
        let no_host = RequestFacts {
            host: None,
            ..request(&headers)
        };
        assert!(!compile(Condition::HostHeader(vec!["*".into()])).matches(&no_host));
    }

    #[test]
    fn strip_port_forms() {
        assert_eq!(strip_port("a.com:443"), "a.com");
        assert_eq!(strip_port("a.com"), "a.com");
        assert_eq!(strip_port("a.com:"), "a.com");
        assert_eq!(strip_port("[2001:db8::1]:8443"), "[2001:db8::1]");
        assert_eq!(strip_port("2001:db8::1"), "2001:db8::1");
        assert_eq!(strip_port("[broken"), "[broken");
    }

    #[test]
    fn path_pattern_is_case_sensitive_and_ignores_query() {
        assert!(path_matches("/img/*", "/img/a.png"));
        assert!(path_matches("/img/*", "/img/"), "* matches empty");
        assert!(!path_matches("/img/*", "/IMG/a.png"));
        assert!(path_matches("/img/*/pics", "/img/x/y/pics"));
        assert!(!path_matches("/img/*/pics", "/img/x/pics/more"));
        let headers = HeaderMap::new();
        let facts = RequestFacts {
            path: "/search",
            query: Some("q=/admin"),
            ..request(&headers)
        };
        assert!(!compile(Condition::PathPattern(vec!["*admin*".into()])).matches(&facts));
        assert!(compile(Condition::PathPattern(vec!["/search".into()])).matches(&facts));
    }

    #[test]
    fn path_pattern_matches_the_raw_path() {
        assert!(path_matches("/a%2Fb", "/a%2Fb"));
        assert!(!path_matches("/a/b", "/a%2Fb"));
        assert!(
            !path_matches("/a/b", "/a/./b"),
            "no dot-segment normalisation"
        );
    }

    #[test]
    fn http_header_any_instance_and_case() {
        let mut headers = HeaderMap::new();
        headers.append("user-agent", HeaderValue::from_static("curl/8"));
        headers.append(
            "user-agent",
            HeaderValue::from_static("Mozilla/5.0 (iPhone)"),
        );
        let facts = request(&headers);
        let condition = |name: &str, value: &str| {
            compile(Condition::HttpHeader(HttpHeaderCondition {
                name: name.into(),
                values: vec![value.into()],
            }))
        };
        assert!(
            condition("User-Agent", "*iphone*").matches(&facts),
            "second instance counts"
        );
        assert!(condition("USER-AGENT", "CURL/?").matches(&facts));
        assert!(!condition("User-Agent", "*android*").matches(&facts));
        assert!(!condition("X-Missing", "*").matches(&facts));
        assert!(
            CompiledConditions::compile(&[Condition::HttpHeader(HttpHeaderCondition {
                name: "bad name".into(),
                values: vec!["x".into()],
            })])
            .is_err()
        );
    }

    #[test]
    fn method_is_exact_and_case_sensitive() {
        let headers = HeaderMap::new();
        let condition = compile(Condition::HttpRequestMethod(vec![
            "GET".into(),
            "HEAD".into(),
        ]));
        assert!(condition.matches(&RequestFacts {
            method: "GET",
            ..request(&headers)
        }));
        assert!(condition.matches(&RequestFacts {
            method: "HEAD",
            ..request(&headers)
        }));
        assert!(!condition.matches(&RequestFacts {
            method: "get",
            ..request(&headers)
        }));
        assert!(!condition.matches(&RequestFacts {
            method: "GETX",
            ..request(&headers)
        }));
    }

    #[test]
    fn query_string_pairs() {
        assert!(query_matches(
            &[(Some("version"), "v1")],
            Some("a=1&version=V1")
        ));
        assert!(query_matches(
            &[(Some("VERSION"), "v*")],
            Some("version=v2")
        ));
        assert!(!query_matches(
            &[(Some("version"), "v1")],
            Some("version=v2")
        ));
        assert!(!query_matches(&[(Some("version"), "v1")], None));
        assert!(
            query_matches(&[(None, "v1")], Some("anything=v1")),
            "key omitted: any key"
        );
        assert!(!query_matches(&[(None, "v1")], Some("v1=other")));
        assert!(
            query_matches(&[(Some("x"), "nomatch"), (Some("b"), "2")], Some("a=1&b=2")),
            "any pair is enough"
        );
        assert!(
            query_matches(&[(Some("flag"), "*")], Some("flag")),
            "key without ="
        );
        assert!(query_matches(&[(Some("empty"), "*")], Some("a=1&&empty=")));
        assert!(!query_matches(&[(Some("empty"), "?")], Some("empty=")));
        assert!(
            query_matches(&[(Some("a"), "x=y")], Some("a=x=y")),
            "split at the first ="
        );
    }

    #[test]
    fn query_string_escapes_and_percent_decoding() {
        assert!(query_matches(&[(Some("q"), r"\*")], Some("q=*")));
        assert!(!query_matches(&[(Some("q"), r"\*")], Some("q=anything")));
        assert!(query_matches(&[(Some("q"), r"a\?")], Some("q=a%3F")));
        assert!(query_matches(
            &[(Some("my key"), "hello world")],
            Some("my%20key=hello%20world")
        ));
        assert!(query_matches(&[(Some("q"), "é")], Some("q=%C3%A9")));
        assert!(
            query_matches(&[(Some("q"), "?")], Some("q=%c3%a9")),
            "? spans a decoded char"
        );
        assert!(
            query_matches(&[(Some("q"), "100%zz")], Some("q=100%zz")),
            "bad escapes stay"
        );
        assert!(
            query_matches(&[(Some("q"), "a+b")], Some("q=a+b")),
            "+ is not a space"
        );
    }

    #[test]
    fn source_ip_v4_v6_and_mapped() {
        let v4 = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
        assert!(source_matches(&["10.0.0.0/8"], v4));
        assert!(!source_matches(&["192.168.0.0/16"], v4));
        assert!(source_matches(&["192.168.0.0/16", "10.1.2.3/32"], v4));
        assert!(source_matches(&["10.1.2.3"], v4), "bare address is a /32");
        let v6: IpAddr = "2001:db8::5".parse().unwrap();
        assert!(source_matches(&["2001:db8::/32"], v6));
        assert!(!source_matches(&["10.0.0.0/8"], v6));
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped());
        assert!(source_matches(&["10.0.0.0/8"], mapped));
        assert!(!source_matches(&["11.0.0.0/8"], mapped));
        assert!(!source_matches(
            &["2001:db8::/32"],
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        ));
        assert!(CompiledConditions::compile(&[Condition::SourceIp(vec!["nope".into()])]).is_err());
    }

    #[test]
    fn conditions_and_values_or() {
        let headers = HeaderMap::new();
        let conditions = CompiledConditions::compile(&[
            Condition::HostHeader(vec!["api.example.com".into(), "www.example.com".into()]),
            Condition::PathPattern(vec!["/v1/*".into()]),
        ])
        .unwrap();
        let facts = RequestFacts {
            path: "/v1/users",
            ..request(&headers)
        };
        assert!(conditions.matches(&facts));
        assert!(!conditions.matches(&RequestFacts {
            path: "/v2/users",
            ..facts
        }));
        assert!(!conditions.matches(&RequestFacts {
            host: Some("other.example.com"),
            ..facts
        }));
        assert!(CompiledConditions::default().matches(&facts));
    }

    #[test]
    fn odd_input_is_an_error_not_a_panic() {
        for condition in [
            Condition::HostHeader(vec![]),
            Condition::PathPattern(vec!["".into()]),
            Condition::HttpRequestMethod(vec![]),
            Condition::QueryString(vec![]),
            Condition::QueryString(vec![QueryStringPair {
                key: Some("".into()),
                value: "x".into(),
            }]),
            Condition::SourceIp(vec!["10.0.0.0/99".into()]),
        ] {
            assert!(CompiledConditions::compile(&[condition]).is_err());
        }
    }
}
