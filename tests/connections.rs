//! Connections (spec §4.2, §4.3): target connections are pooled and reused, a target that
//! closes its keep-alive connections silently causes no 502, a client that goes away is
//! counted as 460, and idle client connections are closed after the idle timeout.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use http_body_util::BodyExt;

/// One listener forwarding everything to `target`, on one worker, with `extra` appended to
/// the `load_balancer:` block. Health checks are off: these tests count the target's
/// connections and responses, and a check is one more of each.
fn config(target: &str, extra: &str) -> String {
    format!(
        r#"{ADMIN}{ONE_WORKER}{extra}listeners:
  - name: web
    address: 127.0.0.1:0
    default_action:
      forward:
        target_group: app
target_groups:
  - name: app
    targets: ["{target}"]
    health_check:
      enabled: false
"#
    )
}

fn target_labels(target: &str) -> [(&str, &str); 2] {
    [("target_group", "app"), ("target", target)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_requests_on_one_client_connection_reuse_one_target_connection() {
    let backend = Backend::start("app");
    let gate = Scalegate::start(&config(&backend.target(), ""));
    let address = gate.listener_address("web");

    // One client connection, made by hand so no client pool can open a second.
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let mut connection_ids = std::collections::BTreeSet::new();
    for i in 0..50 {
        let request = hyper::Request::get(format!("/reuse/{i}"))
            .header("host", "example.com")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        sender.ready().await.expect("client connection still open");
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        connection_ids.insert(response.headers()["x-connection"].clone());
        response.into_body().collect().await.unwrap();
    }
    let metrics = metrics_text(&gate).await;
    let target = backend.target();
    let opened = metric_sum(
        &metrics,
        "scalegate_target_connections_total",
        &target_labels(&target),
    );
    assert_eq!(
        opened, 1.0,
        "50 sequential requests on one worker open one target connection\n{metrics}"
    );
    assert_eq!(
        backend.connections_accepted(),
        1,
        "the target saw {connection_ids:?}"
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "scalegate_client_connections_total",
            &[("listener", "web")]
        ),
        1.0,
        "the client kept one connection\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_closing_an_idle_connection_causes_no_502() {
    let backend = ClosingBackend::start("app", SilentClose::AfterIdle(Duration::from_millis(100)));
    let gate = Scalegate::start(&config(&backend.target(), ""));
    let base = gate.url("web");
    let target = backend.target();
    let labels = target_labels(&target);
    let http = client();

    let first = http.get(format!("{base}/one")).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.text().await.unwrap().contains("\"connection\":1"));

    // The target closes the pooled connection silently; wait until the proxy has seen it.
    let (metrics, closed) = poll_metric(
        &gate,
        "scalegate_target_connections_active",
        &labels,
        Duration::from_secs(5),
        |open| open == 0.0,
    )
    .await;
    assert!(
        closed,
        "the proxy never noticed the target closed its connection\n{metrics}"
    );

    let second = http.get(format!("{base}/two")).send().await.unwrap();
    assert_eq!(
        second.status(),
        200,
        "a closed pooled connection is not a 502"
    );
    assert!(second.text().await.unwrap().contains("\"connection\":2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_closing_after_every_response_causes_no_502() {
    let backend = ClosingBackend::start("app", SilentClose::AfterEachResponse);
    let gate = Scalegate::start(&config(&backend.target(), ""));
    let base = gate.url("web");
    let http = client();

    let mut failures = Vec::new();
    for i in 0..200 {
        let response = http.get(format!("{base}/n/{i}")).send().await.unwrap();
        if response.status() != 200 {
            failures.push((i, response.status().as_u16()));
        }
    }
    let metrics = metrics_text(&gate).await;
    assert!(
        failures.is_empty(),
        "{} of 200 requests failed when the target closes silently after each response \
         (request index, status): {failures:?}\ntarget errors logged (run with \
         SCALEGATE_TEST_RUST_LOG=debug to see them): {:#?}\n{metrics}",
        failures.len(),
        gate.logs()
            .into_iter()
            .filter(|line| line["message"] == "target request failed")
            .collect::<Vec<_>>()
    );
    assert_eq!(backend.responses(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_closing_while_the_target_works_is_460() {
    let backend = Backend::start("app");
    let gate = Scalegate::start(&config(&backend.target(), ""));
    let address = gate.listener_address("web");
    let labels = [("listener", "web"), ("code", "460")];

    // The target takes 10 s; the client sends the request and goes away without reading.
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .write_all(b"GET /sleep/10000 HTTP/1.1\r\nHost: example.com\r\n\r\n")
        .unwrap();
    let target = backend.target();
    let (metrics, dispatched) = poll_metric(
        &gate,
        "scalegate_target_requests_total",
        &target_labels(&target),
        Duration::from_secs(5),
        |sent| sent >= 1.0,
    )
    .await;
    assert!(
        dispatched,
        "the request never reached the target\n{metrics}"
    );
    drop(stream);

    // Well before the target answers, the proxy notices and counts a 460.
    let (metrics, counted) = poll_metric(
        &gate,
        "scalegate_elb_responses_total",
        &labels,
        Duration::from_secs(5),
        |count| count >= 1.0,
    )
    .await;
    assert!(
        counted,
        "no 460 counted for a client that went away\n{metrics}"
    );
}

#[test]
fn idle_client_connection_is_closed_after_the_idle_timeout() {
    let backend = Backend::start("app");
    let gate = Scalegate::start(&config(&backend.target(), "  idle_timeout_seconds: 1\n"));
    let address = gate.listener_address("web");

    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .write_all(b"GET /idle HTTP/1.1\r\nHost: example.com\r\n\r\n")
        .unwrap();
    // Read the response, then keep reading: the next read returns 0 when the proxy closes.
    let started = Instant::now();
    let deadline = started + Duration::from_secs(5);
    let mut received = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    let mut closed_after = None;
    while Instant::now() < deadline {
        stream
            .set_read_timeout(Some(deadline.saturating_duration_since(Instant::now())))
            .unwrap();
        match stream.read(&mut buffer) {
            Ok(0) => {
                closed_after = Some(started.elapsed());
                break;
            }
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(error) => panic!("read failed: {error}"),
        }
    }
    let response = String::from_utf8_lossy(&received);
    assert_eq!(raw_status(&response), Some(200), "{response}");
    let closed_after =
        closed_after.expect("the proxy did not close the idle connection within 5 s");
    assert!(
        closed_after >= Duration::from_millis(900),
        "closed after {closed_after:?}, before the 1 s idle timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_target_connections_idle_past_the_idle_timeout_are_closed() {
    let backend = Backend::start("app");
    let target = backend.target();
    let gate = Scalegate::start(&config(&target, "  idle_timeout_seconds: 1\n"));
    let url = gate.url("web");
    let http = client();
    // Two requests at once need two target connections; both go back to the pool.
    let (first, second) = tokio::join!(
        http.get(format!("{url}/sleep/200")).send(),
        http.get(format!("{url}/sleep/200")).send()
    );
    assert_eq!(first.unwrap().status(), 200);
    assert_eq!(second.unwrap().status(), 200);
    let labels = target_labels(&target);
    let (text, both) = poll_metric(
        &gate,
        "scalegate_target_connections_active",
        &labels,
        Duration::from_secs(5),
        |open| open == 2.0,
    )
    .await;
    assert!(both, "expected two pooled target connections:\n{text}");

    // Sequential traffic keeps reusing the most recent connection; the other one sits idle
    // and must be closed once it has been idle for the idle timeout (1 s), as on ALB.
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut closed = false;
    let mut sent = 0;
    while Instant::now() < deadline && sent < 2_000 {
        assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
        sent += 1;
        let text = metrics_text(&gate).await;
        if metric_sum(&text, "scalegate_target_connections_active", &labels) == 1.0 {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "the idle pooled connection was not closed after {sent} requests"
    );
}
