//! Headers a target sees (spec §4.1): X-Forwarded-*, X-Amzn-Trace-Id, Host rewriting,
//! hop-by-hop removal.

mod common;

use common::*;

fn config(backend: &Backend) -> String {
    format!(
        "{ADMIN}listeners:\n  - name: web\n    address: 127.0.0.1:0\n    default_action:\n      forward:\n        target_group: app\ntarget_groups:\n  - name: app\n    targets: [\"{}\"]\n",
        backend.target()
    )
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.chars().all(|c| c.is_ascii_hexdigit())
}

/// `1-<8 hex>-<24 hex>`.
fn is_trace_id(id: &str) -> bool {
    let mut parts = id.split('-');
    parts.next() == Some("1")
        && parts.next().is_some_and(|p| is_hex(p, 8))
        && parts.next().is_some_and(|p| is_hex(p, 24))
        && parts.next().is_none()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_trace_id_and_host() {
    let backend = Backend::start("app");
    let gate = Scalegate::start(&config(&backend));
    let address = gate.listener_address("web");
    let base = format!("http://{address}");
    let http = client();

    let seen = echo(
        http.get(format!("{base}/path?x=1"))
            .header("host", "Shop.Example.COM"),
    )
    .await;
    assert_eq!(seen.status, 200);
    assert_eq!(seen.json["path"], "/path");
    assert_eq!(seen.json["query"], "x=1");
    assert_eq!(seen.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(
        seen.header("x-forwarded-port"),
        Some(address.port().to_string())
    );
    // Lower-cased, and the listener port appended (not 80/443).
    assert_eq!(
        seen.header("host"),
        Some(format!("shop.example.com:{}", address.port()))
    );
    let trace = seen.header("x-amzn-trace-id").expect("trace id added");
    let root = trace.strip_prefix("Root=").expect("Root= field");
    assert!(is_trace_id(root), "{trace}");

    // X-Forwarded-For appends to an incoming one.
    let seen = echo(
        http.get(&base)
            .header("x-forwarded-for", "203.0.113.9, 198.51.100.2"),
    )
    .await;
    assert_eq!(
        seen.header("x-forwarded-for").as_deref(),
        Some("203.0.113.9, 198.51.100.2, 127.0.0.1")
    );
    // A client cannot spoof the proto or port.
    let seen = echo(
        http.get(&base)
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-port", "443"),
    )
    .await;
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(
        seen.header("x-forwarded-port"),
        Some(address.port().to_string())
    );

    // An incoming Root gets a Self field; Root and custom fields are kept.
    let incoming = "Root=1-63441c4a-abcdef012345678912345678;CalledFrom=app";
    let seen = echo(http.get(&base).header("x-amzn-trace-id", incoming)).await;
    let trace = seen.header("x-amzn-trace-id").unwrap();
    let (self_field, rest) = trace.split_once(';').unwrap();
    assert!(
        is_trace_id(self_field.strip_prefix("Self=").unwrap_or("")),
        "{trace}"
    );
    assert_eq!(rest, incoming);

    // Two requests get different trace ids.
    let a = echo(http.get(&base)).await.header("x-amzn-trace-id");
    let b = echo(http.get(&base)).await.header("x-amzn-trace-id");
    assert_ne!(a, b);

    // A Host with its own port keeps it.
    let seen = echo(http.get(&base).header("host", "example.com:9000")).await;
    assert_eq!(seen.header("host").as_deref(), Some("example.com:9000"));
}

#[test]
fn hop_by_hop_headers_never_reach_the_target() {
    let backend = Backend::start("app");
    let gate = Scalegate::start(&config(&backend));
    let address = gate.listener_address("web");
    let request = "GET /hop HTTP/1.1\r\nHost: example.com\r\nConnection: close, X-Secret\r\nX-Secret: hunter2\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic abc\r\nTE: trailers\r\nX-Kept: yes\r\n\r\n";
    let response = raw_exchange(address, request.as_bytes());
    assert_eq!(raw_status(&response), Some(200), "{response}");
    let body = &response[response.find("\r\n\r\n").expect("head ends") + 4..];
    // The body may be chunked; the JSON object is inside it.
    let json_start = body.find('{').expect("json body");
    let json_end = body.rfind('}').expect("json body");
    let echo: serde_json::Value = serde_json::from_str(&body[json_start..=json_end]).unwrap();
    let headers = echo["headers"].as_object().unwrap();
    for gone in [
        "x-secret",
        "keep-alive",
        "proxy-authorization",
        "te",
        "connection",
    ] {
        assert!(
            !headers.contains_key(gone),
            "{gone} reached the target: {headers:?}"
        );
    }
    assert_eq!(echo["headers"]["x-kept"][0], "yes");
}

#[test]
fn curl_sees_forwarded_headers() {
    require_tool("curl");
    let backend = Backend::start("app");
    let gate = Scalegate::start(&config(&backend));
    let address = gate.listener_address("web");
    let output = std::process::Command::new("curl")
        .args(["-sS", "--noproxy", "*", "-H", "X-Forwarded-For: 192.0.2.1"])
        .arg(format!("http://{address}/curl"))
        .output()
        .expect("curl runs");
    assert!(output.status.success(), "{output:?}");
    let echo: serde_json::Value = serde_json::from_slice(&output.stdout).expect("echo json");
    assert_eq!(
        echo["headers"]["x-forwarded-for"][0],
        "192.0.2.1, 127.0.0.1"
    );
    assert_eq!(
        echo["headers"]["host"][0],
        format!("127.0.0.1:{}", address.port())
    );
}
