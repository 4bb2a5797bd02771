//! Hot reload under load: change a rule, add and remove listeners, reject bad files, all with
//! zero failed requests.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

fn listener(name: &str, body: &str) -> String {
    format!(
        "  - name: {name}\n    address: 127.0.0.1:0\n    rules:\n      - priority: 5\n        conditions:\n          - path_pattern: [\"/app\"]\n        action:\n          forward:\n            target_group: app\n    default_action:\n      fixed_response:\n        status_code: 200\n        content_type: text/plain\n        message_body: \"{body}\"\n"
    )
}

fn config(backend: &Backend, listeners: &[(&str, &str)]) -> String {
    let listeners: String = listeners
        .iter()
        .map(|(name, body)| listener(name, body))
        .collect();
    format!(
        "{ADMIN}listeners:\n{listeners}target_groups:\n  - name: app\n    targets: [\"{}\"]\n",
        backend.target()
    )
}

async fn body(http: &reqwest::Client, url: &str) -> Option<String> {
    let response = http.get(url).send().await.ok()?;
    if response.status() != 200 {
        return None;
    }
    response.text().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_changes_rules_and_listeners_without_failures() {
    let backend = Backend::start("app");
    let gate = Scalegate::start(&config(&backend, &[("main", "v1"), ("old", "old")]));
    let main = gate.url("main");
    let old = gate.listener_address("old");
    let http = client();
    assert_eq!(body(&http, &main).await.as_deref(), Some("v1"));
    assert_eq!(
        body(&http, &format!("http://{old}/")).await.as_deref(),
        Some("old")
    );

    // Bounded load: 8 tasks, 3000 requests in all or 20 s, whichever comes first.
    let sent = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let saw_v2 = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut tasks = Vec::new();
    for task in 0..8 {
        let (http, main) = (http.clone(), main.clone());
        let (sent, failures, saw_v2) = (sent.clone(), failures.clone(), saw_v2.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline && sent.fetch_add(1, Ordering::Relaxed) < 3000 {
                // Half the tasks go through the forward rule, half hit the fixed response.
                let url = if task % 2 == 0 {
                    main.clone()
                } else {
                    format!("{main}/app")
                };
                match body(&http, &url).await.as_deref() {
                    Some("v2") => {
                        saw_v2.fetch_add(1, Ordering::Relaxed);
                    }
                    Some("v1") => {}
                    Some(other) if other.contains("\"backend\":\"app\"") => {}
                    other => {
                        eprintln!("failed request: {other:?}");
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    // Let some load run on v1, then reload: body v2, `old` removed, `new` added.
    assert!(
        poll_until_async(Duration::from_secs(10), || async {
            sent.load(Ordering::Relaxed) > 300
        })
        .await
    );
    gate.rewrite_config(&config(&backend, &[("main", "v2"), ("new", "new")]));
    gate.wait_for_log(
        |l| l["message"] == "config reloaded",
        Duration::from_secs(10),
    );
    let new = gate.wait_for_log(
        |l| l["message"] == "listening" && l["listener"] == "new",
        Duration::from_secs(10),
    );
    let new = new["address"].as_str().unwrap().to_string();
    assert!(
        poll_until_async(Duration::from_secs(5), || async {
            body(&http, &main).await.as_deref() == Some("v2")
        })
        .await,
        "main never answered v2"
    );
    assert_eq!(
        body(&http, &format!("http://{new}/")).await.as_deref(),
        Some("new")
    );
    assert!(
        poll_until(Duration::from_secs(5), || std::net::TcpStream::connect(old)
            .is_err()),
        "the removed listener still accepts connections"
    );

    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "requests failed during reload"
    );
    assert!(
        saw_v2.load(Ordering::Relaxed) > 0,
        "load never saw the new config"
    );
    assert!(!gate.log_text().contains("panicked"), "{}", gate.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reloads_are_rejected_and_counted() {
    let backend = Backend::start("app");
    let good = config(&backend, &[("main", "v1")]);
    let gate = Scalegate::start(&good);
    let main = gate.url("main");
    let http = client();
    assert_eq!(body(&http, &main).await.as_deref(), Some("v1"));

    // Invalid YAML.
    let (_, rejected_before) = gate.reload_counts();
    gate.rewrite_config("listeners: [ {name: main, address: \n");
    gate.sighup();
    assert!(
        poll_until(Duration::from_secs(10), || gate.reload_counts().1
            > rejected_before),
        "invalid YAML was not rejected:\n{}",
        gate.log_text()
    );
    assert_eq!(body(&http, &main).await.as_deref(), Some("v1"));

    // Valid YAML naming an unknown target group.
    let (_, rejected_before) = gate.reload_counts();
    gate.rewrite_config(
        &good
            .replace("target_group: app", "target_group: nope")
            .replace("v1", "v3"),
    );
    gate.sighup();
    assert!(
        poll_until(Duration::from_secs(10), || gate.reload_counts().1
            > rejected_before),
        "unknown target group was not rejected:\n{}",
        gate.log_text()
    );
    assert_eq!(body(&http, &main).await.as_deref(), Some("v1"));
    assert_eq!(gate.reload_counts().0, 0, "no bad file was applied");

    let metrics = metrics_text(&gate).await;
    assert!(
        metric_sum(
            &metrics,
            "scalegate_config_reloads_total",
            &[("result", "failure")]
        ) >= 2.0,
        "{metrics}"
    );
    assert_eq!(
        metric_sum(&metrics, "scalegate_config_last_reload_success", &[]),
        0.0,
        "{metrics}"
    );

    // A good file is applied again and the success counter moves.
    gate.rewrite_config(&good.replace("v1", "v4"));
    gate.sighup();
    gate.wait_for_log(
        |l| l["message"] == "config reloaded",
        Duration::from_secs(10),
    );
    assert!(
        poll_until_async(Duration::from_secs(5), || async {
            body(&http, &main).await.as_deref() == Some("v4")
        })
        .await
    );
    let metrics = metrics_text(&gate).await;
    assert!(
        metric_sum(
            &metrics,
            "scalegate_config_reloads_total",
            &[("result", "success")]
        ) >= 1.0,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_drops_metrics_of_what_left_the_config() {
    let first = Backend::start("first");
    let second = Backend::start("second");
    let both = format!(
        "{ADMIN}listeners:\n  - name: web\n    address: 127.0.0.1:0\n    default_action:\n      forward:\n        target_group: app\n  - name: extra\n    address: 127.0.0.1:0\n    default_action:\n      forward:\n        target_group: spare\ntarget_groups:\n  - name: app\n    targets: [\"{}\", \"{}\"]\n  - name: spare\n    targets: [\"{}\"]\n",
        first.target(),
        second.target(),
        second.target()
    );
    let gate = Scalegate::start(&both);
    let http = client();
    for _ in 0..4 {
        assert_eq!(
            http.get(gate.url("web")).send().await.unwrap().status(),
            200
        );
    }
    assert_eq!(
        http.get(gate.url("extra")).send().await.unwrap().status(),
        200
    );
    let before = metrics_text(&gate).await;
    assert!(
        before.contains(&format!("target=\"{}\"", second.target())),
        "{before}"
    );
    assert!(before.contains("target_group=\"spare\""), "{before}");
    assert!(before.contains("listener=\"extra\""), "{before}");

    // Drop the second target, the spare group and the extra listener.
    let one = format!(
        "{ADMIN}listeners:\n  - name: web\n    address: 127.0.0.1:0\n    default_action:\n      forward:\n        target_group: app\ntarget_groups:\n  - name: app\n    targets: [\"{}\"]\n",
        first.target()
    );
    gate.rewrite_config(&one);
    gate.sighup();
    let gone = poll_until_async(Duration::from_secs(10), || async {
        let text = metrics_text(&gate).await;
        !text.contains(&format!("target=\"{}\"", second.target()))
            && !text.contains("target_group=\"spare\"")
            && !text.contains("listener=\"extra\"")
    })
    .await;
    assert!(
        gone,
        "series of removed parts remain:\n{}",
        metrics_text(&gate).await
    );
    let after = metrics_text(&gate).await;
    assert!(
        after.contains(&format!("target=\"{}\"", first.target())),
        "{after}"
    );
    assert_eq!(
        http.get(gate.url("web")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_changes_on_reload_are_reported_not_ignored() {
    let backend = Backend::start("app");
    let good = config(&backend, &[("main", "v1")]);
    let gate = Scalegate::start(&good);
    let with_token = good.replace(
        "admin:\n  address: 127.0.0.1:0\n",
        "admin:\n  address: 127.0.0.1:0\n  auth_token: later\n",
    );
    assert_ne!(with_token, good, "the admin block was found");
    gate.rewrite_config(&with_token);
    gate.sighup();
    gate.wait_for_log(
        |line| {
            line["message"]
                .as_str()
                .is_some_and(|message| message.starts_with("admin settings"))
        },
        Duration::from_secs(10),
    );
    // The running admin API is unchanged until a restart: still open.
    let status = client()
        .get(format!("http://{}/metrics", gate.admin_address()))
        .send()
        .await
        .expect("admin answers")
        .status();
    assert_eq!(status, 200);
}
