//! Load-balancer generated errors (spec §4.3): 502, 503, 504, 405, 463, 431.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;

fn config(app: &Backend, dead: SocketAddr, hole: SocketAddr) -> String {
    format!(
        r#"{ADMIN}listeners:
  - name: web
    address: 127.0.0.1:0
    rules:
      - priority: 1
        conditions:
          - path_pattern: ["/dead"]
        action:
          forward:
            target_group: dead
      - priority: 2
        conditions:
          - path_pattern: ["/empty"]
        action:
          forward:
            target_group: empty
      - priority: 3
        conditions:
          - path_pattern: ["/hole"]
        action:
          forward:
            target_group: hole
    default_action:
      forward:
        target_group: app
target_groups:
  - name: app
    targets: ["{app}"]
  - name: dead
    targets: ["{dead}"]
  - name: empty
    targets: []
  - name: hole
    response_timeout_seconds: 1
    targets: ["{hole}"]
"#,
        app = app.target()
    )
}

struct Setup {
    _app: Backend,
    _hole: BlackHole,
    gate: Scalegate,
}

fn setup() -> Setup {
    let app = Backend::start("app");
    let hole = BlackHole::start();
    let gate = Scalegate::start(&config(&app, refused_port(), hole.address));
    Setup {
        _app: app,
        _hole: hole,
        gate,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_failures_map_to_502_503_504() {
    let setup = setup();
    let base = setup.gate.url("web");
    let http = client();

    let response = http.get(format!("{base}/dead")).send().await.unwrap();
    assert_eq!(response.status(), 502);
    assert!(response.text().await.unwrap().contains("502 Bad Gateway"));

    let response = http.get(format!("{base}/empty")).send().await.unwrap();
    assert_eq!(response.status(), 503);

    let started = Instant::now();
    let response = http.get(format!("{base}/hole")).send().await.unwrap();
    assert_eq!(response.status(), 504);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "504 after {waited:?}, expected about the 1 s response timeout"
    );

    // The healthy group still serves.
    let response = http.get(format!("{base}/ok")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_is_405_and_too_many_forwarded_addresses_is_463() {
    let setup = setup();
    let base = setup.gate.url("web");
    let http = client();

    let response = http
        .request(reqwest::Method::TRACE, format!("{base}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);

    let addresses = |n: usize| {
        (0..n)
            .map(|i| format!("10.0.{}.{}", i / 250, i % 250 + 1))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let response = http
        .get(format!("{base}/"))
        .header("x-forwarded-for", addresses(30))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "30 addresses are allowed");
    let response = http
        .get(format!("{base}/"))
        .header("x-forwarded-for", addresses(31))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 463);
    // Split over two header lines counts the same.
    let response = http
        .get(format!("{base}/"))
        .header("x-forwarded-for", addresses(20))
        .header("x-forwarded-for", addresses(11))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 463);
}

/// The next connection is served normally, and nothing panicked.
fn still_serving(setup: &Setup) {
    let address = setup.gate.listener_address("web");
    let response = raw_exchange(
        address,
        b"GET /after HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(raw_status(&response), Some(200), "{response:.300}");
    assert!(
        !setup.gate.log_text().contains("panicked"),
        "{}",
        setup.gate.log_text()
    );
}

/// Sends a raw request head that must be refused with 431, then checks the proxy still serves.
fn assert_431_then_serving(head: &str, what: &str) {
    let setup = setup();
    let address = setup.gate.listener_address("web");
    let request = format!("GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n{head}\r\n");
    let response = raw_exchange(address, request.as_bytes());
    assert_eq!(raw_status(&response), Some(431), "{what}: {response:.200}");
    still_serving(&setup);
}

#[test]
fn single_header_over_16k_is_431_and_the_proxy_keeps_serving() {
    // One 20 KB header (ALB's single-header limit is 16 KB).
    let big = "a".repeat(20 * 1024);
    assert_431_then_serving(&format!("X-Big: {big}\r\n"), "20 KB header");
}

#[test]
fn request_head_over_64k_is_431_and_the_proxy_keeps_serving() {
    // A 70 KB head made of headers that are each under the single-header limit.
    let chunk = "b".repeat(7 * 1024);
    let head: String = (0..10)
        .map(|i| format!("X-Part-{i}: {chunk}\r\n"))
        .collect();
    assert_431_then_serving(&head, "70 KB head");
}

#[test]
fn request_line_over_16k_is_414() {
    let setup = setup();
    let address = setup.gate.listener_address("web");
    let path = format!("/{}", "p".repeat(17 * 1024));
    let request = format!("GET {path} HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n");
    let response = raw_exchange(address, request.as_bytes());
    assert_eq!(raw_status(&response), Some(414), "{response:.200}");
}
