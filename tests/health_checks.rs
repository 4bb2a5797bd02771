//! Target health through the real binary (issue 3, spec §2–3): failing targets leave rotation
//! within interval × unhealthy threshold and come back after the healthy threshold, fail-open,
//! registration (no traffic before the first pass) and draining through the admin API and
//! reload, the ALB reason codes, disabled checks, unused groups and what a check looks like.
//!
//! Checks run every 5 s with thresholds of 2 (ALB's minimums), so a state change driven by
//! checks takes up to ~10 s; the waits of one test run concurrently where they can.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use tokio::task::JoinHandle;

use common::*;

/// `health_check.interval_seconds` of every test group.
const INTERVAL_SECONDS: u64 = 5;
/// `health_check.timeout_seconds` of every test group.
const TIMEOUT_SECONDS: u64 = 2;
/// Room for a loaded 2-core machine running several of these tests at once.
const SLACK: Duration = Duration::from_secs(5);

/// The longest a state change that needs `checks` consecutive checks may take: that many
/// intervals (the first may just have started), one check timeout, and slack.
fn within_checks(checks: u64) -> Duration {
    Duration::from_secs(INTERVAL_SECONDS * checks + TIMEOUT_SECONDS) + SLACK
}

/// A new target is checked within a second of registration; healthy after one pass.
const FIRST_PASS: Duration = Duration::from_secs(10);

/// A target group checked on `/health` every 5 s, timeout 2 s, both thresholds 2.
fn group(name: &str, targets: &[String]) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "  - name: {name}\n    targets: [{}]\n    health_check:\n      path: /health\n      interval_seconds: {INTERVAL_SECONDS}\n      timeout_seconds: {TIMEOUT_SECONDS}\n      healthy_threshold_count: 2\n      unhealthy_threshold_count: 2\n",
        targets.join(", ")
    )
}

/// One listener `web` forwarding everything to `app`, plus the given groups.
fn config(groups: &[String]) -> String {
    format!(
        "{ADMIN}listeners:\n  - name: web\n    address: 127.0.0.1:0\n    default_action:\n      forward:\n        target_group: app\ntarget_groups:\n{}",
        groups.concat()
    )
}

/// Sends `count` GETs one after another; every one must be answered 200 by a backend.
/// Returns how many requests each backend answered.
async fn spread(http: &reqwest::Client, url: &str, count: usize) -> BTreeMap<String, usize> {
    let mut answered = BTreeMap::new();
    for _ in 0..count {
        let echo = echo(http.get(url)).await;
        assert_eq!(echo.status, 200, "{:?}", echo.json);
        *answered.entry(echo.backend().to_string()).or_insert(0) += 1;
    }
    answered
}

/// Every target description of `group` (`GET /api/target-groups/{group}/health`).
async fn descriptions(gate: &Scalegate, group: &str) -> Vec<Value> {
    let (status, body) = admin_json(
        gate,
        Method::GET,
        &format!("/api/target-groups/{group}/health"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["target_health_descriptions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The description of one target, asked for explicitly (`?targets=ip:port`).
async fn description(gate: &Scalegate, group: &str, target: &str) -> Value {
    let (status, body) = admin_json(
        gate,
        Method::GET,
        &format!("/api/target-groups/{group}/health?targets={target}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["target_health_descriptions"][0].clone()
}

/// `ip:port` of a target description.
fn address_of(description: &Value) -> String {
    format!(
        "{}:{}",
        description["target"]["id"].as_str().unwrap_or(""),
        description["target"]["port"]
    )
}

/// `(state, reason)` of a target description.
fn health_of(description: &Value) -> (String, String) {
    let health = &description["target_health"];
    (
        health["state"].as_str().unwrap_or("").to_string(),
        health["reason"].as_str().unwrap_or("").to_string(),
    )
}

/// The group's summary in `GET /api/target-groups`.
async fn summary(gate: &Scalegate, group: &str) -> Value {
    let (status, body) = admin_json(gate, Method::GET, "/api/target-groups", None).await;
    assert_eq!(status, 200, "{body}");
    body["target_groups"]
        .as_array()
        .and_then(|groups| groups.iter().find(|g| g["name"] == group).cloned())
        .unwrap_or_else(|| panic!("no target group {group} in {body}"))
}

/// Waits until the routing table the proxy uses has `count` targets (the admin API shows
/// the state a moment before the table is republished).
async fn wait_for_routable(gate: &Scalegate, group: &str, count: u64) {
    let routed = poll_until_async(Duration::from_secs(5), || async {
        summary(gate, group).await["load"]["routable_targets"] == count
    })
    .await;
    assert!(
        routed,
        "{group} never routed to {count} targets: {}",
        summary(gate, group).await
    );
}

/// Waits for `target` to reach `state`, panicking with the group's health and the log if
/// it does not within `deadline`; returns how long it took.
async fn expect_state(
    gate: &Scalegate,
    group: &str,
    target: String,
    state: &str,
    deadline: Duration,
) -> Duration {
    let started = Instant::now();
    if !wait_for_target_state(gate, group, &target, state, deadline).await {
        panic!(
            "{target} not {state} within {deadline:?}: {:?}\nlog:\n{}",
            descriptions(gate, group).await,
            gate.log_text()
        );
    }
    started.elapsed()
}

/// Starts requests one at a time until one is held by `slow` (whose delay keeps it in
/// flight); returns that request. Requests that went elsewhere finish first.
async fn request_in_flight_at(
    http: &reqwest::Client,
    url: &str,
    slow: &Backend,
) -> JoinHandle<Echo> {
    for _ in 0..8 {
        let before = slow.control.served();
        let request = tokio::spawn(echo(http.get(url)));
        let held = poll_until_async(Duration::from_secs(10), || async {
            slow.control.served() > before || request.is_finished()
        })
        .await;
        assert!(held, "a request neither finished nor reached {}", slow.id);
        if slow.control.served() > before {
            return request;
        }
        request.await.expect("request task");
    }
    panic!("no request reached {} in 8 tries", slow.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_target_leaves_rotation_and_returns_after_the_healthy_threshold() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let gate = Scalegate::start(&config(&[group("app", &[a.target(), b.target()])]));
    let (url, http) = (gate.url("web"), client());
    tokio::join!(
        expect_state(&gate, "app", a.target(), "healthy", FIRST_PASS),
        expect_state(&gate, "app", b.target(), "healthy", FIRST_PASS),
    );
    wait_for_routable(&gate, "app", 2).await;
    let answered = spread(&http, &url, 20).await;
    assert!(
        answered.get("a") >= Some(&5) && answered.get("b") >= Some(&5),
        "round robin over two healthy targets: {answered:?}"
    );

    b.control.set_health(503);
    let took = expect_state(&gate, "app", b.target(), "unhealthy", within_checks(2)).await;
    eprintln!("b unhealthy {took:?} after its /health started failing");
    wait_for_routable(&gate, "app", 1).await;
    let served_before = b.control.served();
    let answered = spread(&http, &url, 20).await;
    assert_eq!(answered.get("a"), Some(&20), "{answered:?}");
    assert_eq!(
        b.control.served(),
        served_before,
        "an unhealthy target got requests"
    );

    let b_health = description(&gate, "app", &b.target()).await;
    assert_eq!(
        health_of(&b_health),
        ("unhealthy".into(), "Target.ResponseCodeMismatch".into()),
        "{b_health}"
    );
    let text = b_health["target_health"]["description"]
        .as_str()
        .unwrap_or("");
    assert!(
        text.contains("503"),
        "description names the code: {b_health}"
    );
    assert_eq!(b_health["last_health_check"]["passed"], false, "{b_health}");
    assert_eq!(summary(&gate, "app").await["fail_open"], false);

    let group_label = [("target_group", "app")];
    let (metrics, one) = poll_metric(
        &gate,
        "scalegate_target_group_unhealthy_targets",
        &group_label,
        Duration::from_secs(5),
        |value| value == 1.0,
    )
    .await;
    assert!(one, "{metrics}");
    assert_eq!(
        metric_sum(
            &metrics,
            "scalegate_target_group_healthy_targets",
            &group_label
        ),
        1.0,
        "{metrics}"
    );
    let mismatches = metric_sum(
        &metrics,
        "scalegate_target_group_health_checks_total",
        &[
            ("target_group", "app"),
            ("result", "Target.ResponseCodeMismatch"),
        ],
    );
    assert!(mismatches >= 2.0, "two failed checks counted: {metrics}");
    assert!(
        metric_sum(
            &metrics,
            "scalegate_target_group_health_checks_total",
            &[("target_group", "app"), ("result", "success")],
        ) >= 2.0,
        "{metrics}"
    );

    // Recovery: two passes (the healthy threshold) bring it back.
    b.control.set_health(200);
    let took = expect_state(&gate, "app", b.target(), "healthy", within_checks(2)).await;
    eprintln!("b healthy {took:?} after its /health recovered");
    assert_eq!(
        health_of(&description(&gate, "app", &b.target()).await),
        ("healthy".into(), String::new())
    );
    wait_for_routable(&gate, "app", 2).await;
    let answered = spread(&http, &url, 20).await;
    assert!(
        answered.get("b") >= Some(&5),
        "the recovered target is back in rotation: {answered:?}"
    );
    let (metrics, none) = poll_metric(
        &gate,
        "scalegate_target_group_unhealthy_targets",
        &group_label,
        Duration::from_secs(5),
        |value| value == 0.0,
    )
    .await;
    assert!(none, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_targets_unhealthy_fails_open_until_one_recovers() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let gate = Scalegate::start(&config(&[group("app", &[a.target(), b.target()])]));
    let (url, http) = (gate.url("web"), client());
    tokio::join!(
        expect_state(&gate, "app", a.target(), "healthy", FIRST_PASS),
        expect_state(&gate, "app", b.target(), "healthy", FIRST_PASS),
    );
    let group_label = [("target_group", "app")];
    let before = metrics_text(&gate).await;
    assert_eq!(
        metric_sum(
            &before,
            "scalegate_target_group_fail_open_events_total",
            &group_label
        ),
        0.0,
        "{before}"
    );

    a.control.set_health(503);
    b.control.set_health(503);
    tokio::join!(
        expect_state(&gate, "app", a.target(), "unhealthy", within_checks(2)),
        expect_state(&gate, "app", b.target(), "unhealthy", within_checks(2)),
    );
    assert!(
        poll_until_async(Duration::from_secs(5), || async {
            summary(&gate, "app").await["fail_open"] == true
        })
        .await,
        "no fail-open with every target unhealthy: {}",
        summary(&gate, "app").await
    );
    let routing_before = metric_sum(
        &metrics_text(&gate).await,
        "scalegate_target_group_unhealthy_routing_requests_total",
        &group_label,
    );
    let answered = spread(&http, &url, 20).await;
    assert!(
        answered.get("a") >= Some(&5) && answered.get("b") >= Some(&5),
        "failing open routes to every target: {answered:?}"
    );
    let during = metrics_text(&gate).await;
    assert!(
        metric_sum(
            &during,
            "scalegate_target_group_fail_open_events_total",
            &group_label
        ) >= 1.0,
        "{during}"
    );
    let routing_during = metric_sum(
        &during,
        "scalegate_target_group_unhealthy_routing_requests_total",
        &group_label,
    );
    assert!(
        routing_during - routing_before >= 20.0,
        "unhealthy routing {routing_before} -> {routing_during}"
    );
    assert_eq!(
        metric_sum(
            &during,
            "scalegate_target_group_unhealthy_targets",
            &group_label
        ),
        2.0,
        "{during}"
    );
    assert!(gate.has_log(|l| l["message"]
        .as_str()
        .is_some_and(|m| m.contains("fail-open"))
        && l["level"] == "WARN"));

    // One recovers: fail-open ends and only it gets traffic.
    a.control.set_health(200);
    expect_state(&gate, "app", a.target(), "healthy", within_checks(2)).await;
    assert!(
        poll_until_async(Duration::from_secs(5), || async {
            summary(&gate, "app").await["fail_open"] == false
        })
        .await,
        "fail-open did not end: {}",
        summary(&gate, "app").await
    );
    wait_for_routable(&gate, "app", 1).await;
    let answered = spread(&http, &url, 20).await;
    assert_eq!(answered.get("a"), Some(&20), "{answered:?}");
    let after = metrics_text(&gate).await;
    assert_eq!(
        metric_sum(
            &after,
            "scalegate_target_group_unhealthy_routing_requests_total",
            &group_label
        ),
        routing_during,
        "requests counted as unhealthy routing after fail-open ended"
    );
    assert_eq!(
        metric_sum(
            &after,
            "scalegate_target_group_fail_open_events_total",
            &group_label
        ),
        metric_sum(
            &during,
            "scalegate_target_group_fail_open_events_total",
            &group_label
        ),
    );

    // Every target-group family is exposed, and Prometheus accepts the exposition.
    for family in [
        "scalegate_target_group_healthy_targets",
        "scalegate_target_group_unhealthy_targets",
        "scalegate_target_group_targets",
        "scalegate_target_group_health_checks_total",
        "scalegate_target_group_health_check_duration_seconds_bucket",
        "scalegate_target_group_retries_total",
        "scalegate_target_group_fail_open_events_total",
        "scalegate_target_group_unhealthy_routing_requests_total",
        "scalegate_target_group_non_sticky_requests_total",
        "scalegate_target_group_anomalous_targets",
        "scalegate_target_group_mitigated_targets",
        "scalegate_target_group_request_count_per_target",
        "scalegate_target_outstanding_requests",
        "scalegate_target_requests_total",
    ] {
        assert!(
            after
                .lines()
                .any(|line| line.starts_with(&format!("{family}{{"))
                    && line.contains("target_group=\"app\"")),
            "no {family} series for app:\n{after}"
        );
    }
    promtool_accepts(&after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_target_gets_traffic_only_after_passing_and_drains_on_deregistration() {
    let a = Backend::start("a");
    let new = Backend::start("new");
    new.control.set_health(503);
    let gate = Scalegate::start(&config(&[group("app", &[a.target()])]));
    let (url, http) = (gate.url("web"), client());
    expect_state(&gate, "app", a.target(), "healthy", FIRST_PASS).await;

    let body = format!("{{\"targets\": [\"{}\"]}}", new.target());
    let (status, registered) = admin_json(
        &gate,
        Method::POST,
        "/api/target-groups/app/register",
        Some(&body),
    )
    .await;
    assert_eq!(status, 200, "{registered}");
    let entry = &registered["target_health_descriptions"][0];
    assert_eq!(address_of(entry), new.target(), "{registered}");
    let (state, reason) = health_of(entry);
    assert_eq!(state, "initial", "{registered}");
    assert!(
        reason == "Elb.RegistrationInProgress" || reason == "Elb.InitialHealthChecking",
        "{registered}"
    );
    let answered = spread(&http, &url, 10).await;
    assert_eq!(answered.get("a"), Some(&10), "{answered:?}");

    // Its first check fails: still `initial` (one failure is below the threshold), no traffic.
    assert!(
        poll_until_async(FIRST_PASS, || async {
            description(&gate, "app", &new.target()).await["last_health_check"]["passed"] == false
        })
        .await,
        "no failed first check: {}",
        description(&gate, "app", &new.target()).await
    );
    assert!(new.control.health_checks() >= 1);
    assert_eq!(
        health_of(&description(&gate, "app", &new.target()).await),
        ("initial".into(), "Elb.InitialHealthChecking".into())
    );
    let answered = spread(&http, &url, 20).await;
    assert_eq!(answered.get("a"), Some(&20), "{answered:?}");
    assert_eq!(new.control.served(), 0, "a target in initial got requests");

    // It passes: healthy, and in rotation.
    new.control.set_health(200);
    expect_state(&gate, "app", new.target(), "healthy", within_checks(2)).await;
    wait_for_routable(&gate, "app", 2).await;
    let answered = spread(&http, &url, 20).await;
    assert!(answered.get("new") >= Some(&5), "{answered:?}");

    // Deregistered with a request in flight: draining, no new requests, then gone.
    new.control.set_delay(Duration::from_secs(3));
    let in_flight = request_in_flight_at(&http, &url, &new).await;
    let served_before = new.control.served();
    let body = format!(
        "{{\"targets\": [{{\"id\": \"127.0.0.1\", \"port\": {}}}]}}",
        new.address.port()
    );
    let (status, deregistered) = admin_json(
        &gate,
        Method::POST,
        "/api/target-groups/app/deregister",
        Some(&body),
    )
    .await;
    assert_eq!(status, 200, "{deregistered}");
    let entry = &deregistered["target_health_descriptions"][0];
    assert_eq!(
        health_of(entry),
        ("draining".into(), "Target.DeregistrationInProgress".into()),
        "{deregistered}"
    );
    assert_eq!(entry["outstanding_requests"], 1, "{deregistered}");
    let answered = spread(&http, &url, 10).await;
    assert_eq!(answered.get("a"), Some(&10), "{answered:?}");
    assert_eq!(
        new.control.served(),
        served_before,
        "a draining target got a request"
    );

    let finished = in_flight.await.expect("request task");
    assert_eq!(
        (finished.status, finished.backend()),
        (200, "new"),
        "the in-flight request finished"
    );
    assert!(
        poll_until_async(Duration::from_secs(5), || async {
            descriptions(&gate, "app")
                .await
                .iter()
                .all(|d| address_of(d) != new.target())
        })
        .await,
        "the drained target was not removed: {:?}",
        descriptions(&gate, "app").await
    );
    assert_eq!(
        health_of(&description(&gate, "app", &new.target()).await),
        ("unused".into(), "Target.NotRegistered".into())
    );
    gate.wait_for_log(
        |l| l["message"] == "target deregistered" && l["address"] == new.target(),
        Duration::from_secs(5),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_refused_connections_have_their_reason_codes() {
    let a = Backend::start("a");
    let black_hole = BlackHole::start();
    let refused = refused_port();
    let gate = Scalegate::start(&config(&[group(
        "app",
        &[
            a.target(),
            black_hole.address.to_string(),
            refused.to_string(),
        ],
    )]));
    tokio::join!(
        expect_state(&gate, "app", a.target(), "healthy", FIRST_PASS),
        expect_state(
            &gate,
            "app",
            black_hole.address.to_string(),
            "unhealthy",
            within_checks(2)
        ),
        expect_state(
            &gate,
            "app",
            refused.to_string(),
            "unhealthy",
            within_checks(2)
        ),
    );
    let silent = description(&gate, "app", &black_hole.address.to_string()).await;
    assert_eq!(
        health_of(&silent),
        ("unhealthy".into(), "Target.Timeout".into()),
        "{silent}"
    );
    let latency = silent["last_health_check"]["latency_milliseconds"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(
        latency >= (TIMEOUT_SECONDS * 1000) as f64 * 0.9,
        "a timed-out check took its timeout: {silent}"
    );
    let closed = description(&gate, "app", &refused.to_string()).await;
    assert_eq!(
        health_of(&closed),
        ("unhealthy".into(), "Target.FailedHealthChecks".into()),
        "{closed}"
    );

    let metrics = metrics_text(&gate).await;
    for reason in ["Target.Timeout", "Target.FailedHealthChecks"] {
        assert!(
            metric_sum(
                &metrics,
                "scalegate_target_group_health_checks_total",
                &[("target_group", "app"), ("result", reason)],
            ) >= 2.0,
            "{reason}:\n{metrics}"
        );
    }
    assert_eq!(
        metric_sum(
            &metrics,
            "scalegate_target_group_unhealthy_targets",
            &[("target_group", "app")]
        ),
        2.0,
        "{metrics}"
    );

    // Only the healthy target gets requests: none fails.
    wait_for_routable(&gate, "app", 1).await;
    let answered = spread(&client(), &gate.url("web"), 10).await;
    assert_eq!(answered.get("a"), Some(&10), "{answered:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_checks_route_at_once_and_unused_groups_are_not_checked() {
    let plain = Backend::start("plain");
    // Its /health fails, which must not matter: nothing checks it.
    plain.control.set_health(503);
    let checked = Backend::start("checked");
    let spare = Backend::start("spare");
    let yaml = format!(
        "{ADMIN}listeners:\n  - name: web\n    address: 127.0.0.1:0\n    rules:\n      - priority: 1\n        conditions:\n          - path_pattern: [\"/checked\"]\n        action:\n          forward:\n            target_group: checked\n    default_action:\n      forward:\n        target_group: plain\ntarget_groups:\n  - name: plain\n    targets: [\"{}\"]\n    health_check:\n      enabled: false\n      path: /health\n{}{}",
        plain.target(),
        group("checked", &[checked.target()]),
        group("spare", &[spare.target()]),
    );
    let gate = Scalegate::start(&yaml);
    let http = client();

    // Routed at once, without any check.
    let echo = echo(http.get(gate.url("web"))).await;
    assert_eq!((echo.status, echo.backend()), (200, "plain"));
    assert_eq!(
        health_of(&description(&gate, "plain", &plain.target()).await),
        ("unavailable".into(), "Target.HealthCheckDisabled".into())
    );
    let spare_health = description(&gate, "spare", &spare.target()).await;
    assert_eq!(
        health_of(&spare_health),
        ("unused".into(), "Target.NotInUse".into()),
        "{spare_health}"
    );
    let spare_summary = summary(&gate, "spare").await;
    assert_eq!(spare_summary["in_use"], false, "{spare_summary}");
    assert_eq!(summary(&gate, "plain").await["health_checks"], false);

    // By the time the checked group's target has had two checks, an unused group's target
    // would have had its first (due within a second of start) if it were checked at all.
    assert!(
        poll_until_async(within_checks(1), || async {
            checked.control.health_checks() >= 2
        })
        .await,
        "the checked group's target was not checked twice"
    );
    assert_eq!(
        spare.control.health_checks(),
        0,
        "an unused group was checked"
    );
    assert_eq!(plain.control.health_checks(), 0, "disabled checks ran");
    assert_eq!(
        health_of(&description(&gate, "spare", &spare.target()).await),
        ("unused".into(), "Target.NotInUse".into())
    );

    let metrics = metrics_text(&gate).await;
    for (group, state) in [("plain", "unavailable"), ("spare", "unused")] {
        assert_eq!(
            metric_sum(
                &metrics,
                "scalegate_target_group_targets",
                &[("target_group", group), ("state", state)],
            ),
            1.0,
            "{group} {state}:\n{metrics}"
        );
    }
    assert_eq!(
        metric_sum(
            &metrics,
            "scalegate_target_group_health_checks_total",
            &[("target_group", "spare")],
        ),
        0.0,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_look_like_albs() {
    let a = Backend::start("a");
    let gate = Scalegate::start(&config(&[group("app", &[a.target()])]));
    expect_state(&gate, "app", a.target(), "healthy", FIRST_PASS).await;
    let headers = a.control.last_health_headers().expect("a /health request");
    let user_agent = headers.get("user-agent").cloned().unwrap_or_default();
    assert!(
        user_agent.len() == 1 && user_agent[0].starts_with("ELB-HealthChecker/2.0"),
        "{headers:?}"
    );
    assert_eq!(
        headers.get("host"),
        Some(&vec![format!("127.0.0.1:{}", a.address.port())]),
        "{headers:?}"
    );
    let health = description(&gate, "app", &a.target()).await;
    assert_eq!(
        health["health_check_port"],
        a.address.port().to_string(),
        "{health}"
    );
    assert_eq!(health["last_health_check"]["passed"], true, "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_drains_removed_targets_and_checks_added_ones() {
    let a = Backend::start("a");
    let removed = Backend::start("removed");
    let added = Backend::start("added");
    let gate = Scalegate::start(&config(&[group("app", &[a.target(), removed.target()])]));
    let (url, http) = (gate.url("web"), client());
    tokio::join!(
        expect_state(&gate, "app", a.target(), "healthy", FIRST_PASS),
        expect_state(&gate, "app", removed.target(), "healthy", FIRST_PASS),
    );
    wait_for_routable(&gate, "app", 2).await;

    removed.control.set_delay(Duration::from_secs(4));
    let in_flight = request_in_flight_at(&http, &url, &removed).await;
    let served_before = removed.control.served();
    gate.rewrite_config(&config(&[group("app", &[a.target(), added.target()])]));
    gate.wait_for_log(
        |l| l["message"] == "config reloaded",
        Duration::from_secs(10),
    );

    // The removed target drains: no new requests, its in-flight one finishes.
    let draining = description(&gate, "app", &removed.target()).await;
    assert_eq!(
        health_of(&draining),
        ("draining".into(), "Target.DeregistrationInProgress".into()),
        "{draining}"
    );
    let answered = spread(&http, &url, 10).await;
    assert_eq!(answered.get("removed"), None, "{answered:?}");
    assert_eq!(removed.control.served(), served_before);
    let finished = in_flight.await.expect("request task");
    assert_eq!((finished.status, finished.backend()), (200, "removed"));
    assert!(
        poll_until_async(Duration::from_secs(5), || async {
            descriptions(&gate, "app")
                .await
                .iter()
                .all(|d| address_of(d) != removed.target())
        })
        .await,
        "the removed target is still listed: {:?}",
        descriptions(&gate, "app").await
    );

    // The added target starts `initial`, then passes its first check.
    gate.wait_for_log(
        |l| {
            l["message"] == "target registered"
                && l["address"] == added.target()
                && l["state"] == "initial"
        },
        Duration::from_secs(5),
    );
    expect_state(&gate, "app", added.target(), "healthy", FIRST_PASS).await;
    gate.wait_for_log(
        |l| {
            l["message"] == "target health changed"
                && l["address"] == added.target()
                && l["from"] == "initial"
                && l["to"] == "healthy"
        },
        Duration::from_secs(5),
    );
    wait_for_routable(&gate, "app", 2).await;
    let answered = spread(&http, &url, 20).await;
    assert!(answered.get("added") >= Some(&5), "{answered:?}");
    assert_eq!(answered.get("removed"), None, "{answered:?}");
    assert_eq!(removed.control.served(), served_before);
}
