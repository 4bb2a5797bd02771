//! HTTPS to targets (spec §1.1, §4.2): the load balancer speaks TLS to an HTTPS target group
//! without validating the target's certificate (self-signed is fine, as on ALB), over HTTP/1.1
//! or, for an HTTP2 group, HTTP/2 negotiated by ALPN. The target here is a second scalegate
//! with an HTTPS listener.

mod common;

use common::*;

/// A scalegate that answers every HTTPS request with a fixed body, behind a self-signed
/// certificate for a name nobody resolves; its access log says which protocol each request
/// came in over.
fn https_target() -> Scalegate {
    let dir = tempfile::tempdir().expect("temp dir");
    let generated = rcgen::generate_simple_self_signed(vec!["target.invalid".to_string()])
        .expect("certificate");
    std::fs::write(dir.path().join("target.crt"), generated.cert.pem()).unwrap();
    std::fs::write(
        dir.path().join("target.key"),
        generated.key_pair.serialize_pem(),
    )
    .unwrap();
    let yaml = format!(
        r#"{ADMIN}access_log:
  enabled: true
  path: access.log
listeners:
  - name: secure
    protocol: HTTPS
    address: 127.0.0.1:0
    tls:
      default_certificate:
        certificate: target.crt
        private_key: target.key
    default_action:
      fixed_response:
        status_code: 200
        content_type: text/plain
        message_body: "from the https target"
"#
    );
    Scalegate::start_in(dir, &yaml)
}

/// The access-log `type` of every request the target has logged (`https`, `h2`).
fn logged_request_types(target: &Scalegate, expected_lines: usize) -> Vec<String> {
    let path = target.dir().join("access.log");
    let mut types = Vec::new();
    let complete = poll_until(std::time::Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        types = text
            .lines()
            .filter_map(|line| line.split(' ').next())
            .map(str::to_string)
            .collect();
        types.len() >= expected_lines
    });
    assert!(complete, "the target logged {types:?}");
    types
}

fn front(target: &Scalegate, protocol_version: &str) -> Scalegate {
    Scalegate::start(&format!(
        r#"{ADMIN}listeners:
  - name: web
    address: 127.0.0.1:0
    default_action:
      forward:
        target_group: secure
target_groups:
  - name: secure
    protocol: HTTPS
    protocol_version: {protocol_version}
    targets: ["{}"]
    # Health checks would be requests in the target's access log too, which counts them.
    health_check: {{enabled: false}}
"#,
        target.listener_address("secure")
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_target_group_speaks_tls_without_verifying_the_target() {
    let target = https_target();
    let gate = front(&target, "HTTP1");
    let http = client();
    for _ in 0..3 {
        let response = http.get(gate.url("web")).send().await.expect("request");
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "from the https target");
    }
    // The three requests shared one pooled TLS connection.
    let text = metrics_text(&gate).await;
    let opened = metric_sum(
        &text,
        "scalegate_target_connections_total",
        &[("target_group", "secure")],
    );
    assert!(
        (1.0..=2.0).contains(&opened),
        "target connections opened: {opened}\n{text}"
    );
    assert_eq!(
        logged_request_types(&target, 3),
        ["https", "https", "https"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_target_group_negotiates_h2_over_tls() {
    let target = https_target();
    let gate = front(&target, "HTTP2");
    let response = client().get(gate.url("web")).send().await.expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "from the https target");
    assert_eq!(logged_request_types(&target, 1), ["h2"]);
}
