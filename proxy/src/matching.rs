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

/// The value of one hex digit, shared by percent-decoding here and cookie parsing in actions.
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
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port))
            if !host.contains(':') && port.bytes().all(|byte| byte.is_ascii_digit()) =>
        {
            host
        }
        _ => authority,
    }
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
