//! ALB's terminal actions (§1.5): `forward` (weighted target groups with `AWSALBTG` group
//! stickiness), `redirect` and `fixed-response`, each compiled once from config.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::Full;
use scalegate_config::{
    FixedResponseAction, ForwardAction, Protocol, RedirectAction, RedirectStatus,
    TargetGroupStickiness,
};

use crate::cookie::{cookie_values, unix_seconds, SignedCookie};

/// Name of ALB's target-group stickiness cookie.
pub const GROUP_COOKIE: &str = "AWSALBTG";
/// Name of its cross-site twin, sent with `SameSite=None; Secure` for CORS requests.
pub const GROUP_CORS_COOKIE: &str = "AWSALBTGCORS";
/// The group cookie as the shared codec signs and reads it.
const GROUP_SIGNED_COOKIE: SignedCookie = SignedCookie {
    name: GROUP_COOKIE,
    cors_twin: Some(GROUP_CORS_COOKIE),
};

/// ALB's per-action limit on a target-group weight.
const MAX_WEIGHT: u32 = 999;
/// ALB's bounds on `TargetGroupStickinessConfig.DurationSeconds`.
const STICKINESS_SECONDS: std::ops::RangeInclusive<u64> = 1..=604_800;

#[derive(Debug, Clone)]
struct WeightedGroup {
    index: usize,
    name: Box<str>,
    weight: u32,
}

/// A `forward` action: the target groups it can send to and how it picks one per request.
#[derive(Debug, Clone)]
pub struct CompiledForward {
    groups: Box<[WeightedGroup]>,
    total_weight: u32,
    stickiness: Option<Duration>,
}

/// Why the group was chosen, for `NonStickyRequestCount` and the access log's
/// `AWSALBTGCookieInvalid` error reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupStickiness {
    /// The action has no group stickiness; chosen by weight.
    Disabled,
    /// A valid, unexpired `AWSALBTG` cookie pinned the group.
    Pinned,
    /// No usable cookie (absent, expired, or naming a group no longer weighted here); chosen by
    /// weight.
    NewSession,
    /// An `AWSALBTG` cookie was present but not one this process issued for this action's
    /// groups (tampered, truncated, URL-encoded, from before a restart, or naming a group this
    /// action does not forward to); chosen by weight.
    InvalidCookie,
}

/// The result of [`CompiledForward::choose`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardChoice {
    /// Index of the chosen target group, as given by the compile-time lookup.
    pub target_group: usize,
    /// With stickiness: the `AWSALBTG` and `AWSALBTGCORS` `Set-Cookie` values to add to the
    /// response. They are re-issued with a fresh expiry on every response, as ALB resets its
    /// stickiness cookies' expiry on every response (§2.4).
    pub set_cookie: Option<[HeaderValue; 2]>,
    /// How the choice was made.
    pub stickiness: GroupStickiness,
}

impl CompiledForward {
    /// Compiles `forward`; `target_group_index` maps a group name to the handler's index.
    ///
    /// Errors on: both or neither of `target_group`/`target_groups`, unknown or repeated
    /// groups, weights over 999, all weights 0 (nothing could ever be chosen), and stickiness
    /// durations outside 1–604800 s.
    pub fn compile(
        action: &ForwardAction,
        target_group_index: &dyn Fn(&str) -> Option<usize>,
    ) -> Result<CompiledForward, String> {
        let members: Vec<(&str, u32)> =
            match (&action.target_group, action.target_groups.as_slice()) {
                (Some(name), []) => vec![(name.as_str(), 1)],
                (None, groups) if !groups.is_empty() => groups
                    .iter()
                    .map(|group| (group.name.as_str(), group.weight))
                    .collect(),
                (Some(_), _) => {
                    return Err(
                        "forward: give either target_group or target_groups, not both".into(),
                    )
                }
                (None, _) => return Err("forward: needs target_group or target_groups".into()),
            };
        let mut groups = Vec::with_capacity(members.len());
        for (position, &(name, weight)) in members.iter().enumerate() {
            if members[..position]
                .iter()
                .any(|(earlier, _)| *earlier == name)
            {
                return Err(format!("forward: target group {name:?} is listed twice"));
            }
            if weight > MAX_WEIGHT {
                return Err(format!(
                    "forward: weight {weight} of {name:?} is over {MAX_WEIGHT}"
                ));
            }
            let index = target_group_index(name)
                .ok_or_else(|| format!("forward: unknown target group {name:?}"))?;
            groups.push(WeightedGroup {
                index,
                name: name.into(),
                weight,
            });
        }
        let total_weight = groups.iter().map(|group| group.weight).sum();
        if total_weight == 0 {
            return Err("forward: at least one target group needs a weight above 0".into());
        }
        let stickiness = match &action.stickiness {
            Some(TargetGroupStickiness {
                enabled: true,
                duration_seconds,
            }) => {
                if !STICKINESS_SECONDS.contains(duration_seconds) {
                    return Err(format!(
                        "forward: stickiness duration {duration_seconds}s is outside 1-604800"
                    ));
                }
                Some(Duration::from_secs(*duration_seconds))
            }
            _ => None,
        };
        Ok(CompiledForward {
            groups: groups.into_boxed_slice(),
            total_weight,
            stickiness,
        })
    }

    /// Picks the target group for one request: the group pinned by a valid `AWSALBTG` cookie
    /// when stickiness is on, otherwise by weight using `random` (uniform over `u32`; inject it
    /// so tests can seed it).
    pub fn choose<'h>(
        &self,
        cookie_header_values: impl Iterator<Item = &'h HeaderValue>,
        random: u32,
    ) -> ForwardChoice {
        self.choose_at(cookie_header_values, random, SystemTime::now())
    }

    /// [`Self::choose`] with the clock injected, for expiry tests.
    pub fn choose_at<'h>(
        &self,
        cookie_header_values: impl Iterator<Item = &'h HeaderValue>,
        random: u32,
        now: SystemTime,
    ) -> ForwardChoice {
        let Some(duration) = self.stickiness else {
            return ForwardChoice {
                target_group: self.groups[self.by_weight(random)].index,
                set_cookie: None,
                stickiness: GroupStickiness::Disabled,
            };
        };
        let now_seconds = unix_seconds(now);
        let (position, stickiness) = match self.pinned_group(cookie_header_values, now_seconds) {
            Ok(position) => (position, GroupStickiness::Pinned),
            Err(outcome) => (self.by_weight(random), outcome),
        };
        let group = &self.groups[position];
        let expires = now_seconds.saturating_add(duration.as_secs());
        ForwardChoice {
            target_group: group.index,
            // The group cookie's own expiry is its stickiness window.
            set_cookie: GROUP_SIGNED_COOKIE
                .issue(group.name.as_bytes(), expires, expires)
                .into_pair(),
            stickiness,
        }
    }

    /// The target-group indices this action can send to (weight 0 included), for wiring
    /// metrics and health.
    pub fn target_groups(&self) -> impl Iterator<Item = usize> + '_ {
        self.groups.iter().map(|group| group.index)
    }

    /// Maps `random` onto the cumulative weights; weight-0 groups own no part of the range.
    fn by_weight(&self, random: u32) -> usize {
        let point = (u64::from(random) * u64::from(self.total_weight)) >> 32;
        let mut cumulative = 0u64;
        for (position, group) in self.groups.iter().enumerate() {
            cumulative += u64::from(group.weight);
            if point < cumulative {
                return position;
            }
        }
        // Unreachable as total_weight > 0, but a fallback beats a panic on the hot path.
        self.groups
            .iter()
            .position(|group| group.weight > 0)
            .unwrap_or(0)
    }

    /// Finds the first `AWSALBTG` cookie that is authentic, unexpired and names one of this
    /// action's groups with weight above 0.
    fn pinned_group<'h>(
        &self,
        cookie_header_values: impl Iterator<Item = &'h HeaderValue>,
        now_seconds: u64,
    ) -> Result<usize, GroupStickiness> {
        let mut outcome = GroupStickiness::NewSession;
        for header in cookie_header_values {
            for value in cookie_values(header.as_bytes(), GROUP_COOKIE.as_bytes()) {
                match self.decode_group_cookie(value) {
                    // A genuine cookie that expired or names a group now weighted 0 is not
                    // "invalid": the client is simply re-balanced.
                    Some((position, expires))
                        if expires > now_seconds && self.groups[position].weight > 0 =>
                    {
                        return Ok(position)
                    }
                    Some(_) => {}
                    None => outcome = GroupStickiness::InvalidCookie,
                }
            }
        }
        Err(outcome)
    }

    /// Returns the group position and expiry of a cookie this process issued for a group of
    /// this action, `None` if it is malformed, its keyed hash does not verify, or it names a
    /// group this action does not forward to.
    fn decode_group_cookie(&self, value: &[u8]) -> Option<(usize, u64)> {
        let signed = GROUP_SIGNED_COOKIE.verify(value)?;
        let position = self
            .groups
            .iter()
            .position(|group| signed.payload_equals(group.name.as_bytes()))?;
        Some((position, signed.valid_until))
    }
}

/// Why a redirect could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectError {
    /// The Location would exceed 8K; the handler answers 500 and counts
    /// `HTTP_Redirect_Url_Limit_Exceeded_Count`.
    #[error(
        "redirect Location is {length} bytes, over the {}-byte limit",
        MAX_LOCATION_LENGTH
    )]
    UrlLimitExceeded {
        /// Length the Location would have had.
        length: usize,
    },
    /// The request carried bytes that cannot appear in a header (control characters).
    #[error("redirect Location contains bytes not allowed in a header")]
    InvalidLocation,
}

/// ALB's redirect URL limit ("8K").
pub const MAX_LOCATION_LENGTH: usize = 8 * 1024;

/// The parts of the request a redirect may copy, as the handler knows them.
#[derive(Debug, Clone, Copy)]
pub struct RedirectRequest<'a> {
    /// Listener protocol the client used.
    pub protocol: Protocol,
    /// Host without port, lower-cased.
    pub host: &'a str,
    /// Listener port the client connected to.
    pub port: u16,
    /// Path with its leading `/`, as received.
    pub path: &'a str,
    /// Query without `?`, as received.
    pub query: Option<&'a str>,
}

/// A placeholder or literal text inside a redirect component.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(Box<str>),
    Protocol,
    Host,
    Port,
    Path,
    Query,
}

const PLACEHOLDERS: [(&str, Piece); 5] = [
    ("protocol", Piece::Protocol),
    ("host", Piece::Host),
    ("port", Piece::Port),
    ("path", Piece::Path),
    ("query", Piece::Query),
];

/// A redirect component (`host`, `path` or `query`) split into literal text and placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Template(Box<[Piece]>);

impl Template {
    /// Parses `#{name}` placeholders, allowing only those ALB allows in this component.
    fn parse(component: &str, text: &str, allowed: &[Piece]) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("#{") {
            let Some(length) = rest[start..].find('}') else {
                break;
            };
            let name = &rest[start + 2..start + length];
            let piece = PLACEHOLDERS
                .iter()
                .find(|(known, _)| *known == name)
                .map(|(_, piece)| piece.clone())
                .filter(|piece| allowed.contains(piece))
                .ok_or_else(|| format!("redirect {component}: #{{{name}}} is not allowed here"))?;
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].into()));
            }
            pieces.push(piece);
            rest = &rest[start + length + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.into()));
        }
        Ok(Template(pieces.into_boxed_slice()))
    }

    fn expand_into(&self, out: &mut String, request: &RedirectRequest<'_>) {
        for piece in self.0.iter() {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Protocol => out.push_str(scheme(request.protocol)),
                Piece::Host => out.push_str(request.host),
                Piece::Port => {
                    let _ = write!(out, "{}", request.port);
                }
                Piece::Path => out.push_str(request.path.strip_prefix('/').unwrap_or(request.path)),
                Piece::Query => out.push_str(request.query.unwrap_or("")),
            }
        }
    }
}

fn scheme(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Http => "http",
        Protocol::Https => "https",
    }
}

fn default_port(protocol: Protocol) -> u16 {
    match protocol {
        Protocol::Http => 80,
        Protocol::Https => 443,
    }
}

/// A `redirect` action, compiled from its component templates.
///
/// The Location is `protocol://host[:port]/path[?query]`. Choices where ALB is implicit: the
/// port is left out when it is the default for the resulting protocol (`https://h/`, not
/// `https://h:443/`); the `?` is left out when the expanded query is empty; `#{protocol}` expands
/// lower-case; path and query are copied as received (no re-encoding).
#[derive(Debug, Clone)]
pub struct CompiledRedirect {
    /// `None` keeps the request's protocol (`#{protocol}`).
    protocol: Option<Protocol>,
    host: Template,
    /// `None` keeps the listener port (`#{port}`).
    port: Option<u16>,
    path: Template,
    query: Template,
    status: StatusCode,
}

impl CompiledRedirect {
    /// Compiles `redirect`; `listener_protocol` enforces ALB's "no HTTPS→HTTP" rule. Also
    /// rejects unknown or misplaced placeholders, bad ports, paths not starting with `/`, and
    /// a configuration that changes none of protocol/host/port/path (a redirect loop).
    pub fn compile(
        action: &RedirectAction,
        listener_protocol: Protocol,
    ) -> Result<CompiledRedirect, String> {
        let protocol = match action.protocol.as_str() {
            "#{protocol}" => None,
            text if text.eq_ignore_ascii_case("HTTP") => Some(Protocol::Http),
            text if text.eq_ignore_ascii_case("HTTPS") => Some(Protocol::Https),
            text => {
                return Err(format!(
                    "redirect protocol: {text:?} is not HTTP, HTTPS or #{{protocol}}"
                ))
            }
        };
        if listener_protocol == Protocol::Https && protocol == Some(Protocol::Http) {
            return Err("redirect protocol: an HTTPS listener can't redirect to HTTP".into());
        }
        let port = match action.port.as_str() {
            "#{port}" => None,
            text => match text.parse::<u16>() {
                Ok(port) if port > 0 => Some(port),
                _ => {
                    return Err(format!(
                        "redirect port: {text:?} is not 1-65535 or #{{port}}"
                    ))
                }
            },
        };
        use Piece::{Host, Path, Port, Protocol as Proto, Query};
        let host = Template::parse("host", &action.host, &[Host])?;
        if !action.path.starts_with('/') {
            return Err(format!(
                "redirect path: {:?} must start with '/'",
                action.path
            ));
        }
        let path = Template::parse("path", &action.path, &[Host, Port, Path])?;
        let query = Template::parse("query", &action.query, &[Proto, Host, Port, Path, Query])?;
        let unchanged = protocol.is_none()
            && port.is_none()
            && host.0.as_ref() == [Host]
            && path.0.as_ref() == [Piece::Text("/".into()), Path];
        if unchanged {
            return Err(
                "redirect: change at least one of protocol, host, port or path (a redirect to the same URL loops)"
                    .into(),
            );
        }
        let status = match action.status_code {
            RedirectStatus::Http301 => StatusCode::MOVED_PERMANENTLY,
            RedirectStatus::Http302 => StatusCode::FOUND,
        };
        Ok(CompiledRedirect {
            protocol,
            host,
            port,
            path,
            query,
            status,
        })
    }

    /// 301 or 302.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Builds the `Location` for `request`.
    pub fn location(&self, request: &RedirectRequest<'_>) -> Result<HeaderValue, RedirectError> {
        let protocol = self.protocol.unwrap_or(request.protocol);
        let port = self.port.unwrap_or(request.port);
        let mut location = String::with_capacity(
            16 + request.host.len()
                + request.path.len() * 2
                + request.query.map_or(0, str::len) * 2,
        );
        location.push_str(scheme(protocol));
        location.push_str("://");
        self.host.expand_into(&mut location, request);
        if port != default_port(protocol) {
            let _ = write!(location, ":{port}");
        }
        self.path.expand_into(&mut location, request);
        let before_query = location.len();
        location.push('?');
        self.query.expand_into(&mut location, request);
        if location.len() == before_query + 1 {
            location.truncate(before_query);
        }
        if location.len() > MAX_LOCATION_LENGTH {
            return Err(RedirectError::UrlLimitExceeded {
                length: location.len(),
            });
        }
        HeaderValue::try_from(location).map_err(|_| RedirectError::InvalidLocation)
    }
}

/// The default `Content-Type` of a fixed response that names none.
pub const DEFAULT_FIXED_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// A `fixed-response` action: everything precomputed so answering is a few cheap clones.
///
/// `Content-Type` is sent as configured; when omitted ALB's API leaves it open, and we send
/// `text/plain; charset=utf-8` (ALB's own generated pages are text) rather than no type at all.
#[derive(Debug, Clone)]
pub struct CompiledFixedResponse {
    status: StatusCode,
    content_type: HeaderValue,
    body: Bytes,
}

impl CompiledFixedResponse {
    /// Compiles `fixed-response`; errors if the status is not 2XX/4XX/5XX or the content type
    /// cannot be a header value.
    pub fn compile(action: &FixedResponseAction) -> Result<CompiledFixedResponse, String> {
        let status = StatusCode::from_u16(action.status_code)
            .ok()
            .filter(|status| matches!(status.as_u16() / 100, 2 | 4 | 5))
            .ok_or_else(|| {
                format!(
                    "fixed_response: status {} is not 2XX, 4XX or 5XX",
                    action.status_code
                )
            })?;
        let content_type = action
            .content_type
            .as_deref()
            .unwrap_or(DEFAULT_FIXED_CONTENT_TYPE);
        let content_type = HeaderValue::from_str(content_type).map_err(|_| {
            format!("fixed_response: content type {content_type:?} is not a valid header value")
        })?;
        Ok(CompiledFixedResponse {
            status,
            content_type,
            body: Bytes::copy_from_slice(action.message_body.as_bytes()),
        })
    }

    /// The configured status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `Content-Type` to send.
    pub fn content_type(&self) -> &HeaderValue {
        &self.content_type
    }

    /// The body; cloning `Bytes` is a reference-count bump.
    pub fn body(&self) -> Bytes {
        self.body.clone()
    }

    /// A ready response (status, `Content-Type`, body; hyper adds `Content-Length`).
    pub fn response(&self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(self.body()));
        *response.status_mut() = self.status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, self.content_type.clone());
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scalegate_config::WeightedTargetGroup;
    use std::time::UNIX_EPOCH;

    const GROUPS: [&str; 3] = ["blue", "green", "idle"];

    fn group_index(name: &str) -> Option<usize> {
        GROUPS.iter().position(|group| *group == name)
    }

    fn forward_action(
        single: Option<&str>,
        weights: &[(&str, u32)],
        stickiness_seconds: Option<u64>,
    ) -> ForwardAction {
        ForwardAction {
            target_group: single.map(str::to_string),
            target_groups: weights
                .iter()
                .map(|(name, weight)| WeightedTargetGroup {
                    name: name.to_string(),
                    weight: *weight,
                })
                .collect(),
            stickiness: stickiness_seconds.map(|duration_seconds| TargetGroupStickiness {
                enabled: true,
                duration_seconds,
            }),
        }
    }

    fn weighted(weights: &[(&str, u32)], stickiness_seconds: Option<u64>) -> CompiledForward {
        let action = forward_action(None, weights, stickiness_seconds);
        CompiledForward::compile(&action, &group_index).expect("forward compiles")
    }

    fn no_cookies() -> std::iter::Empty<&'static HeaderValue> {
        std::iter::empty()
    }

    /// The `name=value` part of a Set-Cookie, usable as a request Cookie header.
    fn as_request_cookie(set_cookie: &HeaderValue) -> HeaderValue {
        let text = set_cookie.to_str().unwrap();
        HeaderValue::from_str(text.split(';').next().unwrap()).unwrap()
    }

    fn test_now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    /// Lets `forward` issue a cookie at `now` (`u32::MAX` draws green, the last weighted group)
    /// and returns it as a request `Cookie` header.
    fn cookie_pinning_green(forward: &CompiledForward, now: SystemTime) -> HeaderValue {
        let choice = forward.choose_at(no_cookies(), u32::MAX, now);
        assert_eq!(choice.target_group, 1);
        let [plain, _] = choice.set_cookie.expect("cookies issued");
        as_request_cookie(&plain)
    }

    #[test]
    fn single_target_group() {
        let action = forward_action(Some("green"), &[], None);
        let forward = CompiledForward::compile(&action, &group_index).unwrap();
        for random in [0, u32::MAX / 2, u32::MAX] {
            let choice = forward.choose(no_cookies(), random);
            assert_eq!(choice.target_group, 1);
            assert_eq!(choice.set_cookie, None);
            assert_eq!(choice.stickiness, GroupStickiness::Disabled);
        }
    }

    #[test]
    fn weights_split_traffic_proportionally_and_zero_gets_nothing() {
        let forward = weighted(&[("blue", 10), ("green", 20), ("idle", 0)], None);
        let mut rng = fastrand::Rng::with_seed(7);
        let mut counts = [0u32; 3];
        let draws = 100_000;
        for _ in 0..draws {
            counts[forward.choose(no_cookies(), rng.u32(..)).target_group] += 1;
        }
        assert_eq!(counts[2], 0, "weight 0 is never chosen");
        let green_share = f64::from(counts[1]) / f64::from(draws);
        assert!(
            (green_share - 2.0 / 3.0).abs() < 0.01,
            "green got {green_share}"
        );
        // The extremes of the random range stay inside weighted groups.
        assert_eq!(forward.choose(no_cookies(), 0).target_group, 0);
        assert_eq!(forward.choose(no_cookies(), u32::MAX).target_group, 1);
    }

    #[test]
    fn forward_compile_errors() {
        let bad = [
            forward_action(None, &[], None),
            forward_action(Some("blue"), &[("green", 1)], None),
            forward_action(Some("nope"), &[], None),
            forward_action(None, &[("blue", 0), ("green", 0)], None),
            forward_action(None, &[("blue", 1000)], None),
            forward_action(None, &[("blue", 1), ("blue", 1)], None),
            forward_action(Some("blue"), &[], Some(0)),
            forward_action(Some("blue"), &[], Some(604_801)),
        ];
        for action in bad {
            let compiled = CompiledForward::compile(&action, &group_index);
            assert!(compiled.is_err(), "{action:?}");
        }
    }

    #[test]
    fn stickiness_issues_cookies_and_pins_the_group() {
        let forward = weighted(&[("blue", 1), ("green", 1)], Some(3600));
        let now = test_now();
        let first = forward.choose_at(no_cookies(), u32::MAX, now);
        assert_eq!(first.target_group, 1);
        assert_eq!(first.stickiness, GroupStickiness::NewSession);
        let [plain, cors] = first.set_cookie.expect("cookies issued");
        let expires = httpdate::fmt_http_date(now + Duration::from_secs(3600));
        let plain_text = plain.to_str().unwrap();
        assert!(plain_text.starts_with("AWSALBTG="));
        assert!(plain_text.ends_with(&format!("; Expires={expires}; Path=/")));
        let cors_text = cors.to_str().unwrap();
        assert!(cors_text.starts_with("AWSALBTGCORS="));
        assert!(cors_text.ends_with(&format!(
            "; Expires={expires}; Path=/; SameSite=None; Secure"
        )));
        assert!(
            !plain_text.contains("green"),
            "the group name is not readable in the cookie"
        );

        // A random draw that would pick blue is overridden by the cookie, among other cookies.
        let cookie = as_request_cookie(&plain);
        let header =
            HeaderValue::from_str(&format!("session=abc; {}", cookie.to_str().unwrap())).unwrap();
        let later = now + Duration::from_secs(60);
        let pinned = forward.choose_at([&header].into_iter(), 0, later);
        assert_eq!(pinned.target_group, 1);
        assert_eq!(pinned.stickiness, GroupStickiness::Pinned);
        assert!(
            pinned.set_cookie.is_some(),
            "expiry is refreshed on every response"
        );
    }

    #[test]
    fn expired_cookie_rebalances() {
        let forward = weighted(&[("blue", 1), ("green", 1)], Some(60));
        let now = test_now();
        let cookie = cookie_pinning_green(&forward, now);
        let late = now + Duration::from_secs(61);
        let choice = forward.choose_at([&cookie].into_iter(), 0, late);
        assert_eq!(choice.target_group, 0);
        assert_eq!(choice.stickiness, GroupStickiness::NewSession);
        assert!(choice.set_cookie.is_some(), "a new cookie is issued");
    }

    #[test]
    fn tampered_or_foreign_cookies_are_invalid() {
        let forward = weighted(&[("blue", 1), ("green", 1)], Some(3600));
        let now = test_now();
        let genuine = cookie_pinning_green(&forward, now);
        let genuine = genuine.to_str().unwrap();
        let value = genuine.strip_prefix("AWSALBTG=").unwrap();
        // Point the cookie at blue while keeping green's hash; and push the expiry out.
        let to_blue = format!("AWSALBTG={}{}", &value[..32], hex_of("blue"));
        let longer = format!("AWSALBTG={:016x}{}", u64::MAX, &value[16..]);
        for forged in [
            to_blue,
            longer,
            "AWSALBTG=garbage".into(),
            format!("AWSALBTG={value}%3D"),
        ] {
            let header = HeaderValue::from_str(&forged).unwrap();
            let choice = forward.choose_at([&header].into_iter(), u32::MAX, now);
            assert_eq!(
                choice.stickiness,
                GroupStickiness::InvalidCookie,
                "{forged}"
            );
            assert!(choice.set_cookie.is_some());
        }
        // The CORS twin alone does not pin (ALB reads AWSALBTG).
        let cors_only = HeaderValue::from_str(&format!("AWSALBTGCORS={value}")).unwrap();
        let choice = forward.choose_at([&cors_only].into_iter(), 0, now);
        assert_eq!(choice.stickiness, GroupStickiness::NewSession);
    }

    #[test]
    fn cookie_for_zero_weight_group_rebalances() {
        let before = weighted(&[("blue", 1), ("green", 1)], Some(3600));
        let now = test_now();
        let cookie = cookie_pinning_green(&before, now);
        let after = weighted(&[("blue", 1), ("green", 0)], Some(3600));
        let choice = after.choose_at([&cookie].into_iter(), u32::MAX, now);
        assert_eq!(choice.target_group, 0);
        assert_eq!(choice.stickiness, GroupStickiness::NewSession);
    }

    fn hex_of(text: &str) -> String {
        text.bytes().map(|byte| format!("{byte:02x}")).collect()
    }

    fn redirect(
        protocol: &str,
        host: &str,
        port: &str,
        path: &str,
        query: &str,
    ) -> Result<CompiledRedirect, String> {
        let action = RedirectAction {
            protocol: protocol.into(),
            host: host.into(),
            port: port.into(),
            path: path.into(),
            query: query.into(),
            status_code: RedirectStatus::Http301,
        };
        CompiledRedirect::compile(&action, Protocol::Http)
    }

    fn http_request<'a>(path: &'a str, query: Option<&'a str>) -> RedirectRequest<'a> {
        RedirectRequest {
            protocol: Protocol::Http,
            host: "example.com",
            port: 80,
            path,
            query,
        }
    }

    fn location(redirect: &CompiledRedirect, request: &RedirectRequest<'_>) -> String {
        redirect
            .location(request)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn canonical_http_to_https_redirect() {
        let to_https = redirect("HTTPS", "#{host}", "443", "/#{path}", "#{query}").unwrap();
        assert_eq!(to_https.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(
            location(&to_https, &http_request("/a/b", Some("x=1&y=2"))),
            "https://example.com/a/b?x=1&y=2"
        );
        assert_eq!(
            location(&to_https, &http_request("/", None)),
            "https://example.com/"
        );
        assert_eq!(
            location(&to_https, &http_request("/", Some(""))),
            "https://example.com/"
        );
        let on_8080 = RedirectRequest {
            port: 8080,
            ..http_request("/p", None)
        };
        assert_eq!(location(&to_https, &on_8080), "https://example.com/p");
        let keep_port = redirect("HTTPS", "#{host}", "#{port}", "/#{path}", "#{query}").unwrap();
        assert_eq!(location(&keep_port, &on_8080), "https://example.com:8080/p");
        assert_eq!(
            location(&keep_port, &http_request("/p", None)),
            "https://example.com:80/p"
        );
    }

    #[test]
    fn path_placeholder_drops_its_leading_slash() {
        let moved = redirect(
            "#{protocol}",
            "#{host}",
            "#{port}",
            "/new/#{path}",
            "#{query}",
        )
        .unwrap();
        assert_eq!(
            location(&moved, &http_request("/old/page", Some("q=1"))),
            "http://example.com/new/old/page?q=1"
        );
        assert_eq!(
            location(&moved, &http_request("/", None)),
            "http://example.com/new/"
        );
        let everything = redirect(
            "#{protocol}",
            "new.#{host}",
            "8443",
            "/#{host}/#{port}/#{path}",
            "from=#{protocol}://#{host}:#{port}/#{path}&#{query}",
        )
        .unwrap();
        assert_eq!(
            location(&everything, &http_request("/x", Some("k=v"))),
            "http://new.example.com:8443/example.com/80/x?from=http://example.com:80/x&k=v"
        );
    }

    #[test]
    fn redirect_compile_errors() {
        assert!(redirect("#{protocol}", "#{host}", "#{port}", "/#{path}", "#{query}").is_err());
        assert!(redirect("#{protocol}", "#{host}", "#{port}", "/#{path}", "changed").is_err());
        assert!(redirect("FTP", "#{host}", "#{port}", "/x", "").is_err());
        assert!(redirect("HTTPS", "#{path}", "#{port}", "/", "").is_err());
        assert!(redirect("HTTPS", "#{host}", "0", "/", "").is_err());
        assert!(redirect("HTTPS", "#{host}", "70000", "/", "").is_err());
        assert!(redirect("HTTPS", "#{host}", "#{port}", "#{path}", "").is_err());
        assert!(redirect("HTTPS", "#{host}", "#{port}", "/#{query}", "").is_err());
        assert!(redirect("HTTPS", "#{host}", "#{port}", "/", "#{nope}").is_err());
        let https_to_http = RedirectAction {
            protocol: "HTTP".into(),
            host: "#{host}".into(),
            port: "80".into(),
            path: "/#{path}".into(),
            query: "#{query}".into(),
            status_code: RedirectStatus::Http302,
        };
        assert!(CompiledRedirect::compile(&https_to_http, Protocol::Https).is_err());
        let found = CompiledRedirect::compile(&https_to_http, Protocol::Http).unwrap();
        assert_eq!(found.status(), StatusCode::FOUND);
    }

    #[test]
    fn location_over_8k_fails() {
        let to_https = redirect("HTTPS", "#{host}", "443", "/#{path}", "#{query}").unwrap();
        let base = "https://example.com/".len();
        let fits = format!("/{}", "a".repeat(MAX_LOCATION_LENGTH - base));
        assert_eq!(
            location(&to_https, &http_request(&fits, None)).len(),
            MAX_LOCATION_LENGTH
        );
        let too_long = format!("/{}", "a".repeat(MAX_LOCATION_LENGTH - base + 1));
        assert_eq!(
            to_https.location(&http_request(&too_long, None)),
            Err(RedirectError::UrlLimitExceeded {
                length: MAX_LOCATION_LENGTH + 1
            })
        );
        let control = http_request("/a\u{1}b", None);
        assert_eq!(
            to_https.location(&control),
            Err(RedirectError::InvalidLocation)
        );
    }

    #[test]
    fn fixed_response_parts() {
        let action = FixedResponseAction {
            status_code: 503,
            content_type: Some("application/json".into()),
            message_body: r#"{"error":"maintenance"}"#.into(),
        };
        let fixed = CompiledFixedResponse::compile(&action).unwrap();
        let response = fixed.response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(
            fixed.body(),
            Bytes::from_static(br#"{"error":"maintenance"}"#)
        );

        let plain = FixedResponseAction {
            status_code: 200,
            content_type: None,
            message_body: String::new(),
        };
        let fixed = CompiledFixedResponse::compile(&plain).unwrap();
        assert_eq!(fixed.content_type(), DEFAULT_FIXED_CONTENT_TYPE);
        assert!(fixed.body().is_empty());

        for status_code in [100, 301, 302, 600, 99] {
            let bad = FixedResponseAction {
                status_code,
                ..plain.clone()
            };
            assert!(
                CompiledFixedResponse::compile(&bad).is_err(),
                "{status_code}"
            );
        }
    }
}
