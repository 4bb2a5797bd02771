//! HTTP/2 through the proxy (h2c prior knowledge, h2load), HTTP2 target groups, and WebSocket
//! upgrades.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

fn config(http1: &Backend, http2: &Backend) -> String {
    format!(
        r#"{ADMIN}listeners:
  - name: h2c
    address: 127.0.0.1:0
    http2_prior_knowledge: true
    rules:
      - priority: 1
        conditions:
          - path_pattern: ["/h2/*"]
        action:
          forward:
            target_group: h2
    default_action:
      forward:
        target_group: h1
target_groups:
  - name: h1
    targets: ["{}"]
  - name: h2
    protocol_version: HTTP2
    targets: ["{}"]
"#,
        http1.target(),
        http2.target()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_clients_and_http2_target_groups() {
    let h1 = Backend::start("h1");
    let h2 = Backend::start("h2");
    let gate = Scalegate::start(&config(&h1, &h2));
    let base = gate.url("h2c");

    let h2_client = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    // HTTP/2 client → HTTP/1.1 target.
    let response = h2_client.get(format!("{base}/x")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let seen: serde_json::Value = response.json().await.unwrap();
    assert_eq!(seen["backend"], "h1");
    assert_eq!(seen["version"], "HTTP/1.1");
    assert_eq!(seen["headers"]["x-forwarded-proto"][0], "http");
    assert!(seen["headers"]["host"][0]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));

    // HTTP/2 client → HTTP2 target group.
    let seen: serde_json::Value = h2_client
        .get(format!("{base}/h2/y"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["backend"], "h2");
    assert_eq!(seen["version"], "HTTP/2.0");
    assert_eq!(seen["path"], "/h2/y");

    // HTTP/1.1 client on the same listener → HTTP2 target group.
    let seen = echo(client().post(format!("{base}/h2/z")).body("payload")).await;
    assert_eq!(seen.backend(), "h2");
    assert_eq!(seen.json["version"], "HTTP/2.0");
    assert_eq!(seen.json["body"], "payload");
}

#[test]
fn h2load_has_no_failures() {
    if !optional_tool("h2load") {
        return;
    }
    let h1 = Backend::start("h1");
    let h2 = Backend::start("h2");
    let gate = Scalegate::start(&config(&h1, &h2));
    let address = gate.listener_address("h2c");
    for path in ["/load", "/h2/load"] {
        let output = std::process::Command::new("timeout")
            .args(["60", "h2load", "-n", "2000", "-c", "10", "-m", "10"])
            .arg(format!("http://{address}{path}"))
            .output()
            .expect("h2load runs");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "h2load failed: {text}");
        assert!(
            text.contains("2000 succeeded, 0 failed, 0 errored, 0 timeout"),
            "{path}: {text}"
        );
        assert!(text.contains("2000 2xx"), "{path}: {text}");
    }
}

#[test]
fn websocket_upgrade_passes_through_and_echoes() {
    let h1 = Backend::start("h1");
    let h2 = Backend::start("h2");
    let gate = Scalegate::start(&config(&h1, &h2));
    let address = gate.listener_address("h2c");
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 16 * 1024, "no end of response head");
        let n = stream.read(&mut byte).expect("response head");
        assert_eq!(n, 1, "closed before the response head ended: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    for message in [&b"hello"[..], b"second message", &[0u8, 1, 2, 255]] {
        stream.write_all(message).unwrap();
        let mut echoed = vec![0u8; message.len()];
        stream.read_exact(&mut echoed).expect("echo");
        assert_eq!(echoed, message);
    }
}
