//! The admin endpoint: `/healthz`, `/metrics` counters after real traffic, and promtool's
//! opinion of the exposition format (spec §5).

mod common;

use common::*;

fn config(backend: &Backend) -> String {
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
          - path_pattern: ["/fixed"]
        action:
          fixed_response:
            status_code: 200
            message_body: "fixed"
    default_action:
      forward:
        target_group: app
target_groups:
  - name: app
    targets: ["{}"]
  - name: dead
    targets: ["{}"]
"#,
        backend.target(),
        refused_port()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_with_traffic_and_promtool_accepts_the_output() {
    let backend = Backend::start("app");
    let gate = Scalegate::start(&config(&backend));
    let base = gate.url("web");
    let admin = gate.admin_address();
    let http = client();

    let health = http
        .get(format!("http://{admin}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let before = metrics_text(&gate).await;
    let requests_before = metric_sum(&before, "scalegate_requests_total", &[("listener", "web")]);
    for _ in 0..20 {
        assert_eq!(
            http.get(format!("{base}/ok"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    for _ in 0..3 {
        assert_eq!(
            http.get(format!("{base}/status/404"))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
    }
    assert_eq!(
        http.get(format!("{base}/dead"))
            .send()
            .await
            .unwrap()
            .status(),
        502
    );
    assert_eq!(
        http.get(format!("{base}/fixed"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let after = metrics_text(&gate).await;
    let requests = metric_sum(&after, "scalegate_requests_total", &[("listener", "web")]);
    assert!(
        requests - requests_before >= 23.0,
        "requests {requests_before} -> {requests}\n{after}"
    );
    let target_2xx = metric_sum(
        &after,
        "scalegate_target_responses_total",
        &[("target_group", "app"), ("code_class", "2xx")],
    );
    assert!(target_2xx >= 20.0, "{after}");
    let target_4xx = metric_sum(
        &after,
        "scalegate_target_responses_total",
        &[("target_group", "app"), ("code_class", "4xx")],
    );
    assert!(target_4xx >= 3.0, "{after}");
    let elb_502 = metric_sum(
        &after,
        "scalegate_elb_responses_total",
        &[("listener", "web"), ("code", "502")],
    );
    assert!(elb_502 >= 1.0, "{after}");
    assert!(
        metric_sum(
            &after,
            "scalegate_fixed_responses_total",
            &[("listener", "web")]
        ) >= 1.0,
        "{after}"
    );
    assert!(
        metric_sum(
            &after,
            "scalegate_target_connection_errors_total",
            &[("target_group", "dead")]
        ) >= 1.0,
        "{after}"
    );
    assert!(
        metric_sum(
            &after,
            "scalegate_target_response_time_seconds_count",
            &[("target_group", "app")]
        ) >= 23.0,
        "{after}"
    );

    promtool_accepts(&after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_answers_404_for_unknown_paths() {
    let backend = Backend::start("app");
    let gate = Scalegate::start(&config(&backend));
    let response = client()
        .get(format!("http://{}/nope", gate.admin_address()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_lists_listeners_with_their_bound_addresses() {
    let backend = Backend::start("app");
    let gate = Scalegate::start(&config(&backend));
    let listeners: serde_json::Value = client()
        .get(format!("http://{}/api/listeners", gate.admin_address()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let web = listeners
        .as_array()
        .and_then(|all| all.iter().find(|l| l["name"] == "web"))
        .unwrap_or_else(|| panic!("no listener named web in {listeners}"));
    // Configured on port 0; the API shows the port actually bound.
    assert_eq!(web["address"], gate.listener_address("web").to_string());
    assert_eq!(web["protocol"], "HTTP");
}
