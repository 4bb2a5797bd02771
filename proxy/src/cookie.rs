//! The one codec behind every stickiness cookie scalegate issues (`AWSALBTG` for target-group
//! stickiness, `AWSALB` and `AWSALBAPP-0` for target stickiness), so that parsing, signing and
//! `Set-Cookie` formatting are written, and reviewed, once.
//!
//! A value is `expiry (16 hex) + keyed hash (16 hex) + payload (hex)`. The expiry is the end of
//! the stickiness window in Unix seconds; it is not the cookie's own `Expires`, which may be
//! later (ALB's `AWSALB` lives 7 days whatever the window). The keyed hash (SipHash with a
//! per-process random key) covers the cookie's name, the expiry and the payload, so a value
//! cannot be edited, extended, or replayed as another kind of cookie. Values are signed, not
//! encrypted: the payload is only hex-encoded. They are made of hex digits alone, so they never
//! need URL-encoding (ALB does not accept URL-encoded values either).

use std::fmt::Write as _;
use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::HeaderValue;

/// Hex digits of the expiry, then of the keyed hash, at the start of every value.
const HEADER_DIGITS: usize = 32;
/// Lower-case hex digits: the only alphabet a value is written in, and the only one accepted,
/// so each (expiry, payload) has exactly one valid spelling.
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";
/// 9999-12-31T23:59:59Z, the last instant an HTTP date can express.
const LAST_HTTP_DATE: u64 = 253_402_300_799;

/// One kind of signed cookie: the name it is read and written under, which is also mixed into
/// the keyed hash, and the name of its cross-site twin if it has one.
///
/// ALB sends the twin with `SameSite=None; Secure` and the same value, because browsers only
/// send cookies without a `SameSite` attribute on same-site requests; the twin keeps CORS
/// requests sticky.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedCookie {
    /// The cookie's name; values verify only under this name.
    pub name: &'static str,
    /// The cross-site twin's name, if this kind has one.
    pub cors_twin: Option<&'static str>,
}

/// A value whose keyed hash verified: issued by this process for this kind of cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedValue<'v> {
    /// End of the stickiness window, Unix seconds; the caller compares it with its clock.
    pub valid_until: u64,
    payload_hex: &'v [u8],
}

/// Up to two `Set-Cookie` values (a cookie and its CORS twin) in a fixed-size array, so the
/// request path builds no list on the heap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetCookies([Option<HeaderValue>; 2]);

impl SignedCookie {
    /// Checks that `value` is well formed and was signed by this process for this cookie's
    /// name; `None` for anything else (tampered, truncated, URL-encoded, from another kind of
    /// cookie, or from before a restart). Expiry is not checked: an expired but genuine cookie
    /// is a new session, not an invalid one.
    pub fn verify<'v>(&self, value: &'v [u8]) -> Option<SignedValue<'v>> {
        if value.len() < HEADER_DIGITS || !value.len().is_multiple_of(2) {
            return None;
        }
        let valid_until = parse_hex_u64(&value[..16])?;
        let mac = parse_hex_u64(&value[16..HEADER_DIGITS])?;
        let payload_hex = &value[HEADER_DIGITS..];
        if !payload_hex
            .iter()
            .all(|&digit| hex_digit_value(digit).is_some())
        {
            return None;
        }
        (mac == self.mac(valid_until, payload_hex)).then_some(SignedValue {
            valid_until,
            payload_hex,
        })
    }

    /// `Set-Cookie` values carrying `payload`, sticky until `valid_until` (Unix seconds), the
    /// cookie itself kept by the browser until `cookie_expires`. ALB writes `Expires`, not
    /// `Max-Age`, and `Path=/`; the twin adds `SameSite=None; Secure`.
    ///
    /// Both values are slices of one buffer, so the twin costs no extra allocation.
    pub fn issue(&self, payload: &[u8], valid_until: u64, cookie_expires: u64) -> SetCookies {
        let value = self.signed_value(payload, valid_until);
        let date = httpdate::HttpDate::from(
            UNIX_EPOCH + Duration::from_secs(cookie_expires.min(LAST_HTTP_DATE)),
        );
        let twin_length = self
            .cors_twin
            .map_or(0, |twin| twin.len() + value.len() + 90);
        let mut text = String::with_capacity(self.name.len() + value.len() + 60 + twin_length);
        let _ = write!(text, "{}={value}; Expires={date}; Path=/", self.name);
        let first_end = text.len();
        if let Some(twin) = self.cors_twin {
            let _ = write!(
                text,
                "{twin}={value}; Expires={date}; Path=/; SameSite=None; Secure"
            );
        }
        let text = Bytes::from(text);
        let header = |range: std::ops::Range<usize>| {
            (!range.is_empty())
                .then(|| HeaderValue::from_maybe_shared(text.slice(range)).ok())
                .flatten()
        };
        SetCookies([header(0..first_end), header(first_end..text.len())])
    }

    /// The value itself: expiry, keyed hash, payload, all in lower-case hex.
    fn signed_value(&self, payload: &[u8], valid_until: u64) -> String {
        let mut value = String::with_capacity(HEADER_DIGITS + payload.len() * 2);
        push_hex_u64(&mut value, valid_until);
        push_hex_u64(&mut value, 0); // The hash goes here once the payload is written.
        for &byte in payload {
            value.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
            value.push(char::from(HEX_DIGITS[usize::from(byte & 15)]));
        }
        let mac = self.mac(valid_until, &value.as_bytes()[HEADER_DIGITS..]);
        let mut mac_hex = String::with_capacity(16);
        push_hex_u64(&mut mac_hex, mac);
        value.replace_range(16..HEADER_DIGITS, &mac_hex);
        value
    }

    /// The keyed hash over name, expiry and the payload's (canonical) hex spelling.
    fn mac(&self, valid_until: u64, payload_hex: &[u8]) -> u64 {
        signing_key().hash_one((self.name, valid_until, payload_hex))
    }
}

impl<'v> SignedValue<'v> {
    /// True if the payload is exactly `raw`; compares against the hex without decoding, so
    /// matching a cookie against a list of names allocates nothing.
    pub fn payload_equals(&self, raw: &[u8]) -> bool {
        self.payload_hex.len() == raw.len() * 2
            && raw
                .iter()
                .zip(self.payload_hex.chunks_exact(2))
                .all(|(&byte, pair)| {
                    pair[0] == HEX_DIGITS[usize::from(byte >> 4)]
                        && pair[1] == HEX_DIGITS[usize::from(byte & 15)]
                })
    }

    /// Decodes the payload into `buffer` (the caller's stack space), `None` if it does not fit.
    pub fn decode_payload<'b>(&self, buffer: &'b mut [u8]) -> Option<&'b [u8]> {
        let length = self.payload_hex.len() / 2;
        let decoded = buffer.get_mut(..length)?;
        for (byte, pair) in decoded.iter_mut().zip(self.payload_hex.chunks_exact(2)) {
            *byte = hex_digit_value(pair[0])? << 4 | hex_digit_value(pair[1])?;
        }
        Some(decoded)
    }
}

impl SetCookies {
    /// No cookies: the response is left alone.
    pub const fn none() -> SetCookies {
        SetCookies([None, None])
    }

    /// True if there is nothing to add to the response.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }

    /// The values, cookie first, then its CORS twin.
    pub fn iter(&self) -> std::iter::Flatten<std::slice::Iter<'_, Option<HeaderValue>>> {
        self.0.iter().flatten()
    }

    /// Both values, for a cookie that has a CORS twin (the shape [`crate::actions`] returns);
    /// `None` if either is missing.
    pub fn into_pair(self) -> Option<[HeaderValue; 2]> {
        let [first, twin] = self.0;
        Some([first?, twin?])
    }
}

impl IntoIterator for SetCookies {
    type Item = HeaderValue;
    type IntoIter = std::iter::Flatten<std::array::IntoIter<Option<HeaderValue>, 2>>;

    /// Yields the values to append as `Set-Cookie` headers.
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter().flatten()
    }
}

/// Every `name=value` pair in one `Cookie` header (`a=1; b=2`), trimmed; pairs without `=` are
/// skipped. Lets one pass over a header look for several names.
pub fn cookie_pairs(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    header.split(|&byte| byte == b';').filter_map(|pair| {
        let pair = pair.trim_ascii();
        let equals = pair.iter().position(|&byte| byte == b'=')?;
        Some((pair[..equals].trim_ascii(), pair[equals + 1..].trim_ascii()))
    })
}

/// The values of every cookie called `name` in one `Cookie` header.
pub fn cookie_values<'v>(header: &'v [u8], name: &'v [u8]) -> impl Iterator<Item = &'v [u8]> + 'v {
    cookie_pairs(header).filter_map(move |(pair_name, value)| (pair_name == name).then_some(value))
}

/// `time` in whole Unix seconds (0 before the epoch), the unit cookie expiries are kept in.
pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Per-process SipHash key: cookies stay valid for the life of this process (a restart
/// invalidates them and clients are balanced afresh, like ALB's rotating key does eventually).
fn signing_key() -> &'static RandomState {
    static KEY: OnceLock<RandomState> = OnceLock::new();
    KEY.get_or_init(RandomState::new)
}

fn push_hex_u64(out: &mut String, number: u64) {
    for shift in (0..16).rev() {
        out.push(char::from(
            HEX_DIGITS[((number >> (shift * 4)) & 15) as usize],
        ));
    }
}

fn parse_hex_u64(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |value, &digit| {
        Some(value << 4 | u64::from(hex_digit_value(digit)?))
    })
}

/// Lower-case only: see [`HEX_DIGITS`].
fn hex_digit_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: SignedCookie = SignedCookie {
        name: "TESTCOOKIE",
        cors_twin: None,
    };
    const TWINNED: SignedCookie = SignedCookie {
        name: "TESTPAIR",
        cors_twin: Some("TESTPAIRCORS"),
    };

    /// The value part of a Set-Cookie (`name=value; …`).
    fn value_of(set_cookie: &HeaderValue) -> &str {
        let text = set_cookie.to_str().unwrap();
        let pair = text.split(';').next().unwrap();
        pair.split_once('=').unwrap().1
    }

    #[test]
    fn issued_value_verifies_and_carries_its_payload() {
        let cookies = PLAIN.issue(b"hello", 1_000, 2_000);
        let [cookie] = cookies.iter().collect::<Vec<_>>()[..] else {
            panic!("one cookie without a twin: {cookies:?}");
        };
        let value = value_of(cookie);
        assert!(value.bytes().all(|b| HEX_DIGITS.contains(&b)), "{value}");
        let signed = PLAIN.verify(value.as_bytes()).expect("verifies");
        assert_eq!(signed.valid_until, 1_000);
        assert!(signed.payload_equals(b"hello"));
        assert!(!signed.payload_equals(b"hell"));
        assert!(!signed.payload_equals(b"hellp"));
        let mut buffer = [0u8; 8];
        assert_eq!(signed.decode_payload(&mut buffer), Some(&b"hello"[..]));
        let mut small = [0u8; 4];
        assert_eq!(signed.decode_payload(&mut small), None);
    }

    #[test]
    fn edits_and_other_names_do_not_verify() {
        let cookies = PLAIN.issue(b"payload", 1_000, 1_000);
        let value = value_of(cookies.iter().next().unwrap()).to_string();
        assert!(PLAIN.verify(value.as_bytes()).is_some());
        assert!(
            TWINNED.verify(value.as_bytes()).is_none(),
            "name is in the hash"
        );
        let mut bad = vec![
            value[..value.len() - 2].to_string(),
            value.to_uppercase(),
            format!("{value}%3D"),
            format!("{value}00"),
            format!("{:016x}{}", 2_000, &value[16..]),
            String::new(),
            "0".repeat(32),
        ];
        // Flip every digit in turn.
        for at in 0..value.len() {
            let mut bytes = value.clone().into_bytes();
            bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
            bad.push(String::from_utf8(bytes).unwrap());
        }
        for forged in bad {
            assert!(PLAIN.verify(forged.as_bytes()).is_none(), "{forged}");
        }
    }

    #[test]
    fn set_cookie_shapes() {
        let expires = 1_700_000_000;
        let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(expires));
        let [plain, cors] = TWINNED.issue(b"x", 5, expires).into_pair().expect("two");
        let value = value_of(&plain).to_string();
        assert_eq!(
            plain.to_str().unwrap(),
            format!("TESTPAIR={value}; Expires={date}; Path=/")
        );
        assert_eq!(
            cors.to_str().unwrap(),
            format!("TESTPAIRCORS={value}; Expires={date}; Path=/; SameSite=None; Secure")
        );
        let single = PLAIN.issue(b"x", 5, expires);
        assert_eq!(single.iter().count(), 1);
        assert!(single.clone().into_pair().is_none());
        assert!(!single.is_empty());
        assert!(SetCookies::none().is_empty());
        assert_eq!(SetCookies::none().into_iter().count(), 0);
        // Far-future expiries stay expressible as HTTP dates instead of panicking.
        let far = PLAIN.issue(b"x", u64::MAX, u64::MAX);
        assert!(far
            .iter()
            .next()
            .unwrap()
            .to_str()
            .unwrap()
            .contains("9999"));
    }

    #[test]
    fn cookie_header_parsing() {
        let header = b"a=1; TESTCOOKIE=first ;b=2;;noequals; TESTCOOKIE = second;TESTCOOKIEX=no";
        let values: Vec<&[u8]> = cookie_values(header, b"TESTCOOKIE").collect();
        assert_eq!(values, [&b"first"[..], &b"second"[..]]);
        let pairs: Vec<_> = cookie_pairs(b"x=1=2; y=").collect();
        assert_eq!(pairs, [(&b"x"[..], &b"1=2"[..]), (&b"y"[..], &b""[..])]);
    }

    #[test]
    fn unix_seconds_clamps_before_the_epoch() {
        assert_eq!(unix_seconds(UNIX_EPOCH + Duration::from_millis(2_500)), 2);
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }
}
