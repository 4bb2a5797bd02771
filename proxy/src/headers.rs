//! Headers the load balancer adds, rewrites or removes on the way to a target and back.
//!
//! Follows ALB: X-Forwarded-For by the configured mode, X-Forwarded-Proto/Port, Host rewriting,
//! X-Amzn-Trace-Id, and hop-by-hop headers removed both ways.

use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use scalegate_config::XffMode;

/// `x-forwarded-for`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `x-forwarded-proto`.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `x-forwarded-port`.
pub static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
/// `x-amzn-trace-id`.
pub static X_AMZN_TRACE_ID: HeaderName = HeaderName::from_static("x-amzn-trace-id");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// ALB answers 463 when X-Forwarded-For carries more addresses than this.
pub const MAX_FORWARDED_FOR_ADDRESSES: usize = 30;

/// Counts the addresses already in X-Forwarded-For (all instances), for the 463 check.
pub fn forwarded_for_count(headers: &HeaderMap) -> usize {
    headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .map(|value| {
            value
                .as_bytes()
                .split(|&byte| byte == b',')
                .filter(|part| !part.trim_ascii().is_empty())
                .count()
        })
        .sum()
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1): the fixed list plus any named in
/// `Connection`. On an upgrade request `Connection`/`Upgrade` are kept so the target sees it.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the names, comparing without hashing; then remove only what is there
    // (each `HeaderMap::remove` hashes its key). Typical messages carry at most
    // `Connection: keep-alive`.
    let mut found: [Option<HeaderName>; 4] = Default::default();
    let mut extra: Vec<HeaderName> = Vec::new();
    for name in headers.keys().filter(|name| is_hop_by_hop(name)) {
        if keep_upgrade && (name == header::CONNECTION || name == header::UPGRADE) {
            continue;
        }
        match found.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => *slot = Some(name.clone()),
            None => extra.push(name.clone()),
        }
    }
    if let Some(connection) = headers.get(header::CONNECTION) {
        if connection.as_bytes().contains(&b',')
            || !is_standard_connection_token(connection.as_bytes())
        {
            let named = connection
                .to_str()
                .unwrap_or("")
                .split(',')
                .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
                .filter(|name| {
                    !(keep_upgrade && name == header::UPGRADE) && name != header::CONNECTION
                });
            extra.extend(named);
        }
    }
    for name in found.into_iter().flatten().chain(extra) {
        headers.remove(name);
    }
}

/// The fixed hop-by-hop names (RFC 9110 §7.6.1 and the historic `Keep-Alive` and
/// `Proxy-Connection`).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::UPGRADE
        || name == header::TE
        || name == header::TRAILER
        || name == header::TRANSFER_ENCODING
        || name == header::PROXY_AUTHENTICATE
        || name == header::PROXY_AUTHORIZATION
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

fn is_standard_connection_token(value: &[u8]) -> bool {
    value.eq_ignore_ascii_case(b"keep-alive") || value.eq_ignore_ascii_case(b"close")
}

/// Applies X-Forwarded-For according to ALB's `xff_header_processing.mode`; `client` is the
/// connection's address as [`client_address`] formats it (once per connection).
pub fn apply_forwarded_for(headers: &mut HeaderMap, mode: XffMode, client: &HeaderValue) {
    match mode {
        XffMode::Preserve => {}
        XffMode::Remove => {
            headers.remove(&X_FORWARDED_FOR);
        }
        XffMode::Append => {
            if !headers.contains_key(&X_FORWARDED_FOR) {
                headers.insert(&X_FORWARDED_FOR, client.clone());
                return;
            }
            // Join every incoming instance and the client into one value, written once.
            let mut value = Vec::with_capacity(64);
            for existing in headers.get_all(&X_FORWARDED_FOR) {
                let existing = existing.as_bytes().trim_ascii();
                if !existing.is_empty() {
                    value.extend_from_slice(existing);
                    value.extend_from_slice(b", ");
                }
            }
            value.extend_from_slice(client.as_bytes());
            if let Ok(value) = HeaderValue::from_maybe_shared(bytes::Bytes::from(value)) {
                headers.insert(&X_FORWARDED_FOR, value);
            }
        }
    }
}

/// The client's address as X-Forwarded-For shows it: `ip`, or `ip:port` / `[ipv6]:port` with
/// ALB's `xff_client_port`.
pub fn client_address(peer: SocketAddr, include_port: bool) -> HeaderValue {
    let text = match (include_port, canonical_ip(peer.ip())) {
        (false, ip) => ip.to_string(),
        (true, IpAddr::V4(v4)) => format!("{v4}:{}", peer.port()),
        (true, IpAddr::V6(v6)) => format!("[{v6}]:{}", peer.port()),
    };
    HeaderValue::from_maybe_shared(bytes::Bytes::from(text))
        .expect("an address is a valid header value")
}

/// Shows an IPv4 client that reached a dual-stack socket as plain IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        other => other,
    }
}

/// The Host to send to a target, following ALB without `preserve_host_header`: lower-cased;
/// on listener ports other than 80/443 the listener port is appended when absent; on 80/443
/// a port in the incoming Host is removed.
pub fn rewritten_host(host: &str, listener_port: u16) -> Option<HeaderValue> {
    let host = host.trim();
    let (name, port) = split_host_port(host);
    let name = name.to_ascii_lowercase();
    let value = if listener_port == 80 || listener_port == 443 {
        name
    } else if port.is_some() {
        format!("{name}:{}", port.unwrap_or_default())
    } else {
        format!("{name}:{listener_port}")
    };
    HeaderValue::from_str(&value).ok()
}

/// Splits `host[:port]`, keeping IPv6 literals (`[::1]:80`) intact; a trailing `:text` that is
/// not a port stays part of the host. The one place that parses a Host or `:authority`.
pub fn split_host_port(host: &str) -> (&str, Option<&str>) {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => {
                let rest = &host[end + 1..];
                (&host[..=end], rest.strip_prefix(':'))
            }
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            (name, Some(port))
        }
        _ => (host, None),
    }
}

/// Adds or updates X-Amzn-Trace-Id as ALB does: a new `Root=1-<epoch hex>-<24 hex>` when there
/// is no Root, else a `Self=` field (replacing an old one) ahead of the caller's fields.
pub fn apply_trace_id(headers: &mut HeaderMap) -> HeaderValue {
    let mut value = String::with_capacity(48);
    let existing = headers
        .get(&X_AMZN_TRACE_ID)
        .and_then(|value| value.to_str().ok());
    match existing {
        Some(existing)
            if existing
                .split(';')
                .any(|field| field.trim_start().starts_with("Root=")) =>
        {
            value.push_str("Self=");
            write_trace_id(&mut value);
            for field in existing
                .split(';')
                .map(str::trim)
                .filter(|f| !f.is_empty() && !f.starts_with("Self="))
            {
                value.push(';');
                value.push_str(field);
            }
        }
        _ => {
            value.push_str("Root=");
            write_trace_id(&mut value);
        }
    }
    let value = HeaderValue::from_maybe_shared(bytes::Bytes::from(value))
        .expect("trace id is visible ASCII");
    headers.insert(&X_AMZN_TRACE_ID, value.clone());
    value
}

/// The trace id an access-log line shows for a request that is not forwarded (fixed
/// response, redirect, error): the one the client sent, or a new `Root=` as ALB logs.
pub fn trace_id_for_log(headers: &HeaderMap) -> String {
    match headers
        .get(&X_AMZN_TRACE_ID)
        .and_then(|value| value.to_str().ok())
    {
        Some(existing) => existing.to_string(),
        None => {
            let mut value = String::with_capacity(40);
            value.push_str("Root=");
            write_trace_id(&mut value);
            value
        }
    }
}

/// `1-<8 hex epoch seconds>-<24 hex random>`, ALB's trace-id shape.
fn write_trace_id(out: &mut String) {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    out.push_str("1-");
    push_hex(out, u64::from(seconds as u32), 8);
    out.push('-');
    push_hex(out, fastrand::u64(..), 16);
    push_hex(out, u64::from(fastrand::u32(..)), 8);
}

/// Appends the low `digits` hex digits of `value`, zero-padded (faster than `format!`).
fn push_hex(out: &mut String, value: u64, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..digits).rev() {
        out.push(HEX[((value >> (shift * 4)) & 0xf) as usize] as char);
    }
}

/// Whether ALB's Host rewriting would change `host` on this listener port: upper case, a
/// port to append (ports other than 80/443) or one to remove (80/443). The common case —
/// already canonical — then costs no allocation.
pub fn host_needs_rewrite(host: &str, listener_port: u16) -> bool {
    let (_, port) = split_host_port(host);
    let default_port = listener_port == 80 || listener_port == 443;
    host.bytes()
        .any(|b| b.is_ascii_uppercase() || b.is_ascii_whitespace())
        || (default_port == port.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_id_has_alb_shape() {
        let mut headers = HeaderMap::new();
        let value = apply_trace_id(&mut headers);
        let text = value.to_str().unwrap();
        let id = text.strip_prefix("Root=1-").unwrap();
        let (epoch, random) = id.split_once('-').unwrap();
        assert_eq!(epoch.len(), 8);
        assert_eq!(random.len(), 24);
        assert!(epoch
            .chars()
            .chain(random.chars())
            .all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn trace_id_with_root_gets_self_and_keeps_fields() {
        let mut headers = HeaderMap::new();
        headers.insert(
            &X_AMZN_TRACE_ID,
            HeaderValue::from_static("Root=1-63441c4a-abcdef012345678912345678;CalledFrom=app"),
        );
        let value = apply_trace_id(&mut headers);
        let text = value.to_str().unwrap();
        assert!(text.starts_with("Self=1-"), "{text}");
        assert!(
            text.contains(";Root=1-63441c4a-abcdef012345678912345678;CalledFrom=app"),
            "{text}"
        );
        // A second hop replaces Self rather than adding another.
        let again = apply_trace_id(&mut headers);
        assert_eq!(again.to_str().unwrap().matches("Self=").count(), 1);
    }

    #[test]
    fn forwarded_for_modes() {
        let peer: SocketAddr = "192.0.2.7:5555".parse().unwrap();
        let mut headers = HeaderMap::new();
        apply_forwarded_for(&mut headers, XffMode::Append, &client_address(peer, false));
        assert_eq!(headers[&X_FORWARDED_FOR], "192.0.2.7");
        apply_forwarded_for(&mut headers, XffMode::Append, &client_address(peer, true));
        assert_eq!(headers[&X_FORWARDED_FOR], "192.0.2.7, 192.0.2.7:5555");
        apply_forwarded_for(
            &mut headers,
            XffMode::Preserve,
            &client_address(peer, false),
        );
        assert_eq!(headers[&X_FORWARDED_FOR], "192.0.2.7, 192.0.2.7:5555");
        apply_forwarded_for(&mut headers, XffMode::Remove, &client_address(peer, false));
        assert!(headers.get(&X_FORWARDED_FOR).is_none());
        let v6: SocketAddr = "[2001:db8::1]:80".parse().unwrap();
        apply_forwarded_for(&mut headers, XffMode::Append, &client_address(v6, true));
        assert_eq!(headers[&X_FORWARDED_FOR], "[2001:db8::1]:80");
        let mapped: SocketAddr = "[::ffff:192.0.2.9]:80".parse().unwrap();
        assert_eq!(client_address(mapped, false), "192.0.2.9");
    }

    #[test]
    fn counts_forwarded_addresses_across_instances() {
        let mut headers = HeaderMap::new();
        headers.append(
            &X_FORWARDED_FOR,
            HeaderValue::from_static("1.1.1.1, 2.2.2.2"),
        );
        headers.append(&X_FORWARDED_FOR, HeaderValue::from_static("3.3.3.3"));
        assert_eq!(forwarded_for_count(&headers), 3);
    }

    #[test]
    fn host_rewriting_follows_alb() {
        assert_eq!(
            rewritten_host("Example.COM", 8080).unwrap(),
            "example.com:8080"
        );
        assert_eq!(
            rewritten_host("example.com:9000", 8080).unwrap(),
            "example.com:9000"
        );
        assert_eq!(
            rewritten_host("example.com:8443", 443).unwrap(),
            "example.com"
        );
        assert_eq!(rewritten_host("example.com", 80).unwrap(), "example.com");
        assert_eq!(rewritten_host("[::1]:80", 8080).unwrap(), "[::1]:80");
        assert_eq!(rewritten_host("[::1]", 8080).unwrap(), "[::1]:8080");
    }

    #[test]
    fn host_needs_rewrite_agrees_with_rewritten_host() {
        for host in [
            "example.com",
            "Example.com",
            "example.com:8080",
            "EXAMPLE.COM:80",
            "[::1]",
            "[::1]:8080",
            "a.b:443",
        ] {
            for port in [80, 443, 8080, 9000] {
                let rewritten = rewritten_host(host, port).unwrap();
                assert_eq!(
                    host_needs_rewrite(host, port),
                    rewritten != host,
                    "{host} on {port} -> {rewritten:?}"
                );
            }
        }
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut headers, false);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-kept"));
    }

    #[test]
    fn upgrade_headers_survive_on_upgrade() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        remove_hop_by_hop(&mut headers, true);
        assert_eq!(headers[header::UPGRADE], "websocket");
        assert_eq!(headers[header::CONNECTION], "Upgrade");
    }
}
