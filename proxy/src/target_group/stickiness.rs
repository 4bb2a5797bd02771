//! Target stickiness inside one target group (§2.4): the `lb_cookie` kind, where the load
//! balancer's own `AWSALB` cookie names the target for a configured duration, and the
//! `app_cookie` kind, where stickiness follows a cookie the application sets and the load
//! balancer's `AWSALBAPP-0` cookie names the target.
//!
//! Both are signed with the shared codec in [`crate::cookie`]; the payload is the target's
//! address as text (`10.0.0.5:8080`, `[::1]:8080`), so a cookie keeps working across reloads
//! as long as that address is still registered. Whether it is (and healthy) is the caller's
//! check: this module only says which address a request asks for and which cookies a response
//! carries.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderValue};

use crate::cookie::{cookie_pairs, unix_seconds, SignedCookie};

pub use crate::cookie::SetCookies;

/// `lb_cookie`'s cookie, `AWSALB`, with its cross-site twin `AWSALBCORS`. One name for every
/// target group, as in ALB.
pub const LOAD_BALANCER_COOKIE: SignedCookie = SignedCookie {
    name: "AWSALB",
    cors_twin: Some("AWSALBCORS"),
};

/// `app_cookie`'s cookie. ALB shards long values over `AWSALBAPP-0..3`; ours is a signed
/// address, far below 4K, so only the first shard is ever written. ALB adds `SameSite=None;
/// Secure` to it only for Chromium 80+ user agents; without user-agent sniffing it is sent
/// plain (a `Secure` cookie would be dropped on plain-HTTP listeners).
pub const APPLICATION_COOKIE: SignedCookie = SignedCookie {
    name: "AWSALBAPP-0",
    cors_twin: None,
};

/// How long browsers keep `AWSALB` and `AWSALBAPP-0`: ALB's fixed 7 days. The stickiness
/// window, which may be shorter, is signed inside the value.
pub const COOKIE_LIFETIME: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The longest address text a payload can hold: `[` + IPv6 (IPv4-suffixed) + `%` + scope id +
/// `]:` + port is at most 64 bytes.
const MAX_ADDRESS_TEXT: usize = 64;

/// A target group's stickiness setting (`stickiness.type` with its attributes), decided once
/// per group so the request path only matches on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetStickiness {
    /// `lb_cookie`: ALB-issued `AWSALB` (+ `AWSALBCORS`) cookie naming the target, valid for
    /// `duration`.
    LoadBalancerCookie {
        /// `stickiness.lb_cookie.duration_seconds`.
        duration: Duration,
    },
    /// `app_cookie`: follows the application's cookie `cookie_name`. When a response from the
    /// target sets that cookie, the load balancer issues `AWSALBAPP-0` naming the target; later
    /// requests carrying both cookies go back to that target while `duration` lasts.
    ApplicationCookie {
        /// `stickiness.app_cookie.cookie_name`, compared case-sensitively.
        cookie_name: String,
        /// `stickiness.app_cookie.duration_seconds`.
        duration: Duration,
    },
}

/// What a request's cookies say about its target, for routing, `NonStickyRequestCount` and
/// the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StickyLookup {
    /// No usable session: no cookie of ours, an expired one, or (`app_cookie`) the
    /// application's own cookie is missing. The caller balances as usual.
    NewSession,
    /// A cookie of ours was present but not one this process issued (tampered, truncated,
    /// URL-encoded, another kind of cookie's value, or from before a restart). The caller
    /// balances as usual.
    Invalid,
    /// A valid, unexpired cookie names this target; the caller still checks that it is
    /// registered and routable, and balances if not.
    Pinned(SocketAddr),
}

impl TargetStickiness {
    /// The target a request is pinned to, if it carries a valid, unexpired cookie of ours;
    /// `cookie_headers` are the request's `Cookie` header values (any number of them).
    ///
    /// `lb_cookie` reads `AWSALB` and its twin `AWSALBCORS` (browsers send only the twin on
    /// cross-site requests, which is what the twin is for). `app_cookie` pins only while the
    /// request also carries the application's cookie: ALB's documented way to end a session
    /// is for the application to expire its cookie.
    pub fn pinned_target<'h>(
        &self,
        cookie_headers: impl Iterator<Item = &'h HeaderValue>,
        now: SystemTime,
    ) -> StickyLookup {
        let now_seconds = unix_seconds(now);
        let mut pinned = None;
        let mut invalid = false;
        let mut application_cookie_seen = false;
        for header in cookie_headers {
            for (name, value) in cookie_pairs(header.as_bytes()) {
                let cookie = match self {
                    TargetStickiness::LoadBalancerCookie { .. } => {
                        let cookie = LOAD_BALANCER_COOKIE;
                        if name != cookie.name.as_bytes()
                            && Some(name) != cookie.cors_twin.map(str::as_bytes)
                        {
                            continue;
                        }
                        cookie
                    }
                    TargetStickiness::ApplicationCookie { cookie_name, .. } => {
                        if name == cookie_name.as_bytes() {
                            application_cookie_seen = true;
                            continue;
                        }
                        if name != APPLICATION_COOKIE.name.as_bytes() {
                            continue;
                        }
                        APPLICATION_COOKIE
                    }
                };
                if pinned.is_some() {
                    continue;
                }
                match decode_target(cookie, value) {
                    Some((target, valid_until)) if valid_until > now_seconds => {
                        pinned = Some(target);
                    }
                    // Genuine but expired: a new session, not an invalid cookie.
                    Some(_) => {}
                    None => invalid = true,
                }
            }
        }
        let needs_application_cookie = matches!(self, TargetStickiness::ApplicationCookie { .. });
        match pinned {
            Some(target) if application_cookie_seen || !needs_application_cookie => {
                StickyLookup::Pinned(target)
            }
            Some(_) => StickyLookup::NewSession,
            None if invalid => StickyLookup::Invalid,
            None => StickyLookup::NewSession,
        }
    }

    /// `Set-Cookie` values to add to a response from `target`; `response_headers` are the
    /// target's response headers, for `app_cookie` to see whether the application set its
    /// cookie.
    ///
    /// `lb_cookie`: always, as ALB re-issues its cookie on every response, resetting the
    /// window. `app_cookie`: when the response sets `cookie_name` (a session starts or is
    /// renewed), or when `request_was_pinned`: [`Self::pinned_target`] returned
    /// [`StickyLookup::Pinned`] for this request, whether or not that target could be used.
    /// That refreshes the window of a live session, and moves a session whose target failed
    /// to `target`, where ALB keeps it even if the old target recovers.
    pub fn set_cookies(
        &self,
        target: SocketAddr,
        response_headers: &HeaderMap,
        request_was_pinned: bool,
        now: SystemTime,
    ) -> SetCookies {
        let now_seconds = unix_seconds(now);
        let (cookie, duration) = match self {
            TargetStickiness::LoadBalancerCookie { duration } => (LOAD_BALANCER_COOKIE, duration),
            TargetStickiness::ApplicationCookie {
                cookie_name,
                duration,
            } => {
                if !request_was_pinned && !sets_cookie(response_headers, cookie_name) {
                    return SetCookies::none();
                }
                (APPLICATION_COOKIE, duration)
            }
        };
        let mut address = AddressText::default();
        if fmt::write(&mut address, format_args!("{target}")).is_err() {
            return SetCookies::none();
        }
        cookie.issue(
            address.as_bytes(),
            now_seconds.saturating_add(duration.as_secs()),
            now_seconds.saturating_add(COOKIE_LIFETIME.as_secs()),
        )
    }
}

/// The target and window end of a value of `cookie`, `None` unless this process signed it.
fn decode_target(cookie: SignedCookie, value: &[u8]) -> Option<(SocketAddr, u64)> {
    let signed = cookie.verify(value)?;
    let mut buffer = [0u8; MAX_ADDRESS_TEXT];
    let text = std::str::from_utf8(signed.decode_payload(&mut buffer)?).ok()?;
    Some((text.parse().ok()?, signed.valid_until))
}

/// True if any `Set-Cookie` in `headers` sets a cookie called `name`.
fn sets_cookie(headers: &HeaderMap, name: &str) -> bool {
    headers.get_all(SET_COOKIE).iter().any(|set_cookie| {
        let bytes = set_cookie.as_bytes();
        let pair = bytes.split(|&byte| byte == b';').next().unwrap_or(bytes);
        pair.iter()
            .position(|&byte| byte == b'=')
            .is_some_and(|equals| pair[..equals].trim_ascii() == name.as_bytes())
    })
}

/// A target address formatted on the stack, so issuing a cookie allocates only its headers.
struct AddressText {
    bytes: [u8; MAX_ADDRESS_TEXT],
    length: usize,
}

impl Default for AddressText {
    fn default() -> Self {
        AddressText {
            bytes: [0; MAX_ADDRESS_TEXT],
            length: 0,
        }
    }
}

impl AddressText {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.length]
    }
}

impl fmt::Write for AddressText {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let end = self.length + text.len();
        self.bytes
            .get_mut(self.length..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(text.as_bytes());
        self.length = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::GROUP_COOKIE;
    use crate::cookie::SignedCookie;
    use std::net::{Ipv6Addr, SocketAddrV6};
    use std::time::UNIX_EPOCH;

    const DAY: Duration = Duration::from_secs(86_400);

    fn test_now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn lb_cookie(duration: Duration) -> TargetStickiness {
        TargetStickiness::LoadBalancerCookie { duration }
    }

    fn app_cookie(duration: Duration) -> TargetStickiness {
        TargetStickiness::ApplicationCookie {
            cookie_name: "SESSION".into(),
            duration,
        }
    }

    fn ipv4_target() -> SocketAddr {
        "10.0.3.7:8080".parse().unwrap()
    }

    fn ipv6_target() -> SocketAddr {
        "[2001:db8::17]:443".parse().unwrap()
    }

    fn no_headers() -> HeaderMap {
        HeaderMap::new()
    }

    fn app_sets_session() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.append(SET_COOKIE, HeaderValue::from_static("other=1; Path=/"));
        headers.append(
            SET_COOKIE,
            HeaderValue::from_static("SESSION=abc123; Path=/; HttpOnly"),
        );
        headers
    }

    /// The `name=value` part of a Set-Cookie.
    fn pair_of(set_cookie: &HeaderValue) -> &str {
        set_cookie.to_str().unwrap().split(';').next().unwrap()
    }

    fn header(text: &str) -> HeaderValue {
        HeaderValue::from_str(text).unwrap()
    }

    fn lookup(
        stickiness: &TargetStickiness,
        headers: &[HeaderValue],
        now: SystemTime,
    ) -> StickyLookup {
        stickiness.pinned_target(headers.iter(), now)
    }

    /// Issues the lb_cookie for `target` at `now` and returns `AWSALB=…` as a request cookie.
    fn issued_lb_cookie(
        stickiness: &TargetStickiness,
        target: SocketAddr,
        now: SystemTime,
    ) -> String {
        let cookies = stickiness.set_cookies(target, &no_headers(), false, now);
        pair_of(cookies.iter().next().expect("AWSALB issued")).to_string()
    }

    #[test]
    fn lb_cookie_round_trip_for_ipv4_and_ipv6() {
        let stickiness = lb_cookie(DAY);
        let now = test_now();
        let scoped: SocketAddr = SocketAddrV6::new(Ipv6Addr::LOCALHOST, 9000, 0, 3).into();
        for target in [ipv4_target(), ipv6_target(), scoped] {
            let cookie = issued_lb_cookie(&stickiness, target, now);
            assert!(cookie.starts_with("AWSALB="), "{cookie}");
            let value = &cookie["AWSALB=".len()..];
            assert!(value.bytes().all(|b| b.is_ascii_hexdigit()), "{value}");
            let later = now + DAY - Duration::from_secs(1);
            assert_eq!(
                lookup(&stickiness, &[header(&cookie)], later),
                StickyLookup::Pinned(target)
            );
        }
    }

    #[test]
    fn lb_cookie_set_cookie_shapes() {
        let stickiness = lb_cookie(Duration::from_secs(60));
        let now = test_now();
        let cookies = stickiness.set_cookies(ipv4_target(), &no_headers(), false, now);
        let [plain, cors] = cookies.into_pair().expect("AWSALB and AWSALBCORS");
        // The cookie lives 7 days whatever the (here 60 s) stickiness window.
        let expires = httpdate::fmt_http_date(now + COOKIE_LIFETIME);
        let value = pair_of(&plain).strip_prefix("AWSALB=").unwrap();
        assert_eq!(
            plain.to_str().unwrap(),
            format!("AWSALB={value}; Expires={expires}; Path=/")
        );
        assert_eq!(
            cors.to_str().unwrap(),
            format!("AWSALBCORS={value}; Expires={expires}; Path=/; SameSite=None; Secure")
        );
        assert!(!plain.to_str().unwrap().contains("Max-Age"));
    }

    #[test]
    fn expired_cookie_is_a_new_session() {
        let stickiness = lb_cookie(Duration::from_secs(60));
        let now = test_now();
        let cookie = issued_lb_cookie(&stickiness, ipv4_target(), now);
        let at_end = now + Duration::from_secs(60);
        assert_eq!(
            lookup(&stickiness, &[header(&cookie)], at_end),
            StickyLookup::NewSession
        );
        assert_eq!(lookup(&stickiness, &[], now), StickyLookup::NewSession);
    }

    #[test]
    fn tampered_cookie_is_invalid() {
        let stickiness = lb_cookie(DAY);
        let now = test_now();
        let cookie = issued_lb_cookie(&stickiness, ipv4_target(), now);
        let value = &cookie["AWSALB=".len()..];
        // Flip one digit of the keyed hash.
        let mut forged = value.as_bytes().to_vec();
        forged[20] = if forged[20] == b'0' { b'1' } else { b'0' };
        let forged = String::from_utf8(forged).unwrap();
        // Repoint the cookie at another target, keeping the hash.
        let other = hex("10.0.3.8:8080");
        let repointed = format!("{}{other}", &value[..32]);
        for bad in [forged, repointed, "garbage".into(), format!("{value}%3D")] {
            assert_eq!(
                lookup(&stickiness, &[header(&format!("AWSALB={bad}"))], now),
                StickyLookup::Invalid,
                "{bad}"
            );
        }
        // A genuine cookie alongside an invalid one still pins.
        let both = [header("AWSALB=garbage"), header(&cookie)];
        assert_eq!(
            lookup(&stickiness, &both, now),
            StickyLookup::Pinned(ipv4_target())
        );
    }

    #[test]
    fn other_kinds_of_cookie_are_not_accepted_as_awsalb() {
        let now = test_now();
        let valid_until = unix_seconds(now) + 3600;
        let target_text = ipv4_target().to_string();
        let group = SignedCookie {
            name: GROUP_COOKIE,
            cors_twin: None,
        };
        let stickiness = lb_cookie(DAY);
        for kind in [group, APPLICATION_COOKIE] {
            let issued = kind.issue(target_text.as_bytes(), valid_until, valid_until);
            let value = pair_of(issued.iter().next().unwrap())
                .split_once('=')
                .unwrap()
                .1;
            assert_eq!(
                lookup(&stickiness, &[header(&format!("AWSALB={value}"))], now),
                StickyLookup::Invalid,
                "{} value replayed as AWSALB",
                kind.name
            );
        }
    }

    #[test]
    fn cors_twin_alone_pins_and_cookies_are_found_among_others() {
        let stickiness = lb_cookie(DAY);
        let now = test_now();
        let cookie = issued_lb_cookie(&stickiness, ipv6_target(), now);
        let value = &cookie["AWSALB=".len()..];
        let twin_only = header(&format!("AWSALBCORS={value}"));
        assert_eq!(
            lookup(&stickiness, &[twin_only], now),
            StickyLookup::Pinned(ipv6_target())
        );
        let mixed = header(&format!("a=1; AWSALBTG=zz; {cookie}; b=2"));
        assert_eq!(
            lookup(&stickiness, &[header("x=y"), mixed], now),
            StickyLookup::Pinned(ipv6_target())
        );
        let lookalike = header(&format!("XAWSALB={value}; AWSALBX={value}"));
        assert_eq!(
            lookup(&stickiness, &[lookalike], now),
            StickyLookup::NewSession
        );
    }

    #[test]
    fn app_cookie_issued_only_when_the_app_sets_its_cookie_or_on_refresh() {
        let stickiness = app_cookie(Duration::from_secs(600));
        let now = test_now();
        let target = ipv6_target();
        assert!(stickiness
            .set_cookies(target, &no_headers(), false, now)
            .is_empty());
        let mut unrelated = HeaderMap::new();
        unrelated.append(SET_COOKIE, HeaderValue::from_static("SESSIONX=1"));
        unrelated.append(SET_COOKIE, HeaderValue::from_static("x=1; SESSION=2"));
        assert!(stickiness
            .set_cookies(target, &unrelated, false, now)
            .is_empty());

        let issued = stickiness.set_cookies(target, &app_sets_session(), false, now);
        let [cookie] = issued.iter().collect::<Vec<_>>()[..] else {
            panic!("only AWSALBAPP-0, no CORS twin: {issued:?}");
        };
        let expires = httpdate::fmt_http_date(now + COOKIE_LIFETIME);
        let text = cookie.to_str().unwrap();
        assert!(text.starts_with("AWSALBAPP-0="), "{text}");
        assert!(
            text.ends_with(&format!("; Expires={expires}; Path=/")),
            "{text}"
        );

        let refreshed = stickiness.set_cookies(target, &no_headers(), true, now);
        assert_eq!(refreshed.iter().count(), 1, "a pinned request refreshes");
    }

    #[test]
    fn app_cookie_round_trip_needs_the_application_cookie() {
        let stickiness = app_cookie(Duration::from_secs(600));
        let now = test_now();
        for target in [ipv4_target(), ipv6_target()] {
            let issued = stickiness.set_cookies(target, &app_sets_session(), false, now);
            let ours = pair_of(issued.iter().next().unwrap()).to_string();
            let later = now + Duration::from_secs(599);
            let with_app = [header("SESSION=abc123"), header(&ours)];
            assert_eq!(
                lookup(&stickiness, &with_app, later),
                StickyLookup::Pinned(target)
            );
            let in_one_header = [header(&format!("{ours}; SESSION=abc123"))];
            assert_eq!(
                lookup(&stickiness, &in_one_header, later),
                StickyLookup::Pinned(target)
            );
            // The application expired its cookie: the session ends.
            assert_eq!(
                lookup(&stickiness, &[header(&ours)], later),
                StickyLookup::NewSession
            );
            let expired = now + Duration::from_secs(600);
            assert_eq!(
                lookup(&stickiness, &with_app, expired),
                StickyLookup::NewSession
            );
            // An lb_cookie value is not an app cookie.
            let lb_value = issued_lb_cookie(&lb_cookie(DAY), target, now);
            let replayed = lb_value.replace("AWSALB=", "AWSALBAPP-0=");
            assert_eq!(
                lookup(&stickiness, &[header("SESSION=1"), header(&replayed)], now),
                StickyLookup::Invalid
            );
        }
    }

    fn hex(text: &str) -> String {
        text.bytes().map(|byte| format!("{byte:02x}")).collect()
    }
}
