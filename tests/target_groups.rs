//! Target groups under traffic, through the real binary (issue 3, spec §2): a target killed
//! with `kill -9` under load costs no client request, a draining target finishes its requests
//! and gets no new ones, slow start ramps a new target's share, least outstanding requests
//! spares a slow target, lb_cookie and app_cookie stickiness pin a client and move it when its
//! target dies, and anomaly mitigation starves a target that answers 500.
//!
//! Health checks use ALB's minimum interval (5 s) and thresholds (2); shares are measured on
//! the test backends' own request counters over bounded windows, with wide tolerances.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::*;

/// Health checks as fast as ALB allows: every 5 s on `/health`, two results to change state.
const FAST_CHECKS: &str = "    health_check:
      path: /health
      interval_seconds: 5
      timeout_seconds: 2
      healthy_threshold_count: 2
      unhealthy_threshold_count: 2
";

/// A listener `name` forwarding to target group `group`.
fn forward_listener(name: &str, group: &str) -> String {
    format!(
        "  - name: {name}
    address: 127.0.0.1:0
    default_action:
      forward:
        target_group: {group}
"
    )
}

/// A target group `name` with `targets`, [`FAST_CHECKS`] and `extra` settings (indented by
/// four spaces, each line ending in a newline).
fn target_group(name: &str, targets: &[String], extra: &str) -> String {
    let list = targets
        .iter()
        .map(|target| format!("\"{target}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!("  - name: {name}\n    targets: [{list}]\n{FAST_CHECKS}{extra}")
}

/// A whole config: one listener `web` forwarding to one target group `group`.
fn single_group_config(group: &str, targets: &[String], extra: &str) -> String {
    format!(
        "{ADMIN}listeners:\n{}target_groups:\n{}",
        forward_listener("web", group),
        target_group(group, targets, extra)
    )
}

/// `GET /api/target-groups/{group}/health`'s target descriptions.
async fn describe(gate: &Scalegate, group: &str) -> Vec<Value> {
    let response = client()
        .get(format!(
            "http://{}/api/target-groups/{group}/health",
            gate.admin_address()
        ))
        .send()
        .await
        .expect("admin answers");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("health JSON");
    body["target_health_descriptions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Polls the group's health until `wanted` holds; returns whether it did and the last
/// descriptions.
async fn poll_describe(
    gate: &Scalegate,
    group: &str,
    deadline: Duration,
    wanted: impl Fn(&[Value]) -> bool,
) -> (bool, Vec<Value>) {
    let end = Instant::now() + deadline;
    loop {
        let descriptions = describe(gate, group).await;
        if wanted(&descriptions) {
            return (true, descriptions);
        }
        if Instant::now() >= end {
            return (false, descriptions);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The description of `target` (`ip:port`) in `descriptions`, if it is listed.
fn find_target<'a>(descriptions: &'a [Value], target: &str) -> Option<&'a Value> {
    descriptions.iter().find(|description| {
        format!(
            "{}:{}",
            description["target"]["id"].as_str().unwrap_or(""),
            description["target"]["port"]
        ) == target
    })
}

/// `POST /api/target-groups/{group}/{operation}` with `targets`; returns the response body
/// after checking it is a 200.
async fn change_targets(gate: &Scalegate, group: &str, operation: &str, targets: &[&str]) -> Value {
    let response = client()
        .post(format!(
            "http://{}/api/target-groups/{group}/{operation}",
            gate.admin_address()
        ))
        .json(&json!({ "targets": targets }))
        .send()
        .await
        .expect("admin answers");
    let status = response.status();
    let body: Value = response.json().await.expect("JSON answer");
    assert_eq!(status, 200, "{operation} {targets:?}: {body}");
    body
}

/// Waits until every target in `targets` of `group` is `healthy`; panics with the group's
/// health otherwise.
async fn wait_all_healthy(gate: &Scalegate, group: &str, targets: &[String]) {
    let all_healthy = poll_until_async(Duration::from_secs(20), || async {
        let descriptions = describe(gate, group).await;
        targets.iter().all(|target| {
            find_target(&descriptions, target)
                .is_some_and(|description| description["target_health"]["state"] == "healthy")
        })
    })
    .await;
    assert!(
        all_healthy,
        "targets of {group} not all healthy: {:#?}",
        describe(gate, group).await
    );
}

/// One request of a load loop, as its client saw it.
#[derive(Debug, Clone)]
struct Exchange {
    /// When the request was sent.
    sent: Instant,
    /// The response status; `None` for a transport error.
    status: Option<u16>,
    /// The `x-backend` header, else the body (a fixed response names its process), else the
    /// transport error.
    answered_by: String,
}

impl Exchange {
    /// Anything but a 200 is a failed request for these tests.
    fn failed(&self) -> bool {
        self.status != Some(200)
    }
}

/// A closed-loop load: `tasks` clients, each sending its next GET (on a keep-alive
/// connection) as soon as the previous one is answered, until stopped or `cap` requests in
/// total, so no loop runs unbounded.
struct Load {
    stop: Arc<AtomicBool>,
    exchanges: Arc<Mutex<Vec<Exchange>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts the clients on the current runtime, all sending GET `url`.
    fn start(url: String, tasks: usize, cap: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let exchanges = Arc::new(Mutex::new(Vec::new()));
        let http = client();
        let tasks = (0..tasks)
            .map(|_| {
                let (stop, exchanges, http, url) = (
                    Arc::clone(&stop),
                    Arc::clone(&exchanges),
                    http.clone(),
                    url.clone(),
                );
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) && exchanges.lock().unwrap().len() < cap {
                        let sent = Instant::now();
                        let exchange = match http.get(&url).send().await {
                            Ok(response) => {
                                let status = response.status().as_u16();
                                let backend = response
                                    .headers()
                                    .get("x-backend")
                                    .map(|value| value.to_str().unwrap_or("").to_string());
                                let body = response.text().await;
                                let answered_by = match (backend, body) {
                                    (Some(backend), Ok(_)) => backend,
                                    (None, Ok(body)) => body.trim().to_string(),
                                    (_, Err(error)) => format!("body error: {error}"),
                                };
                                Exchange {
                                    sent,
                                    status: Some(status),
                                    answered_by,
                                }
                            }
                            Err(error) => Exchange {
                                sent,
                                status: None,
                                answered_by: format!("transport error: {error}"),
                            },
                        };
                        exchanges.lock().unwrap().push(exchange);
                    }
                })
            })
            .collect();
        Load {
            stop,
            exchanges,
            tasks,
        }
    }

    /// Requests answered (or failed) so far.
    fn count(&self) -> usize {
        self.exchanges.lock().unwrap().len()
    }

    /// Waits until `more` requests beyond `already` were answered; returns whether they were.
    async fn wait_for(&self, already: usize, more: usize, deadline: Duration) -> bool {
        poll_until_async(deadline, || async { self.count() >= already + more }).await
    }

    /// Lets the clients run until `cap` requests and returns every exchange.
    async fn finish_at_cap(self) -> Vec<Exchange> {
        for task in self.tasks {
            task.await.expect("load task");
        }
        let exchanges = self.exchanges.lock().unwrap().clone();
        exchanges
    }

    /// Stops the clients and returns every exchange.
    async fn finish(self) -> Vec<Exchange> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("load task");
        }
        let exchanges = self.exchanges.lock().unwrap().clone();
        exchanges
    }
}

/// How many of `exchanges` each answerer answered.
fn by_answerer<'a>(exchanges: impl IntoIterator<Item = &'a Exchange>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for exchange in exchanges {
        *counts.entry(exchange.answered_by.clone()).or_insert(0) += 1;
    }
    counts
}

/// Whether process `pid` has exited (it is a zombie waiting to be reaped, or gone): from then
/// on its sockets are closed.
fn process_exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) S ...`: the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

/// The share of requests `backend` served between two readings of every backend's counter.
fn share(before: &[usize], after: &[usize], backend: usize) -> f64 {
    let total: usize = after.iter().zip(before).map(|(a, b)| a - b).sum();
    assert!(total > 0, "no request in the window");
    (after[backend] - before[backend]) as f64 / total as f64
}

/// Every backend's request counter (health checks excluded), in order.
fn served(backends: &[&Backend]) -> Vec<usize> {
    backends
        .iter()
        .map(|backend| backend.control.served())
        .collect()
}

/// Spec: passive health (issue 3) — a target process killed with SIGKILL under load costs no
/// client request: requests on its dead connections are retried once on a survivor, it is
/// marked suspect and skipped, and its health checks then take it out of rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_of_a_target_under_load_fails_no_request() {
    // The victim is a separate process: a second scalegate whose listener answers every
    // request (its health checks included) with a fixed 200 naming it.
    let victim = Scalegate::start(&format!(
        "{ADMIN}listeners:
  - name: web
    address: 127.0.0.1:0
    default_action:
      fixed_response:
        status_code: 200
        content_type: text/plain
        message_body: victim
"
    ));
    let victim_target = victim.listener_address("web").to_string();
    let survivor_one = Backend::start("survivor-1");
    let survivor_two = Backend::start("survivor-2");
    let targets = [
        victim_target.clone(),
        survivor_one.target(),
        survivor_two.target(),
    ];
    let gate = Scalegate::start(&single_group_config("app", &targets, ""));
    wait_all_healthy(&gate, "app", &targets).await;

    let load = Load::start(format!("{}/", gate.url("web")), 8, 50_000);
    assert!(
        load.wait_for(0, 300, Duration::from_secs(20)).await,
        "load did not get going"
    );
    signal(victim.pid(), "KILL");
    assert!(
        poll_until_async(Duration::from_secs(10), || async {
            process_exited(victim.pid())
        })
        .await,
        "the victim did not die"
    );
    let dead_since = Instant::now();
    let answered_at_kill = load.count();
    let kept_going = load
        .wait_for(answered_at_kill, 600, Duration::from_secs(20))
        .await;
    // Meanwhile the victim must be skipped at once (suspect) and soon fail its checks.
    let left_rotation = poll_until_async(Duration::from_secs(5), || async {
        find_target(&describe(&gate, "app").await, &victim_target).is_some_and(|description| {
            description["suspect"] == true || description["target_health"]["state"] == "unhealthy"
        })
    })
    .await;
    let exchanges = load.finish().await;
    assert!(kept_going, "load stalled after the kill");
    eprintln!(
        "{} requests, {} after the kill",
        exchanges.len(),
        exchanges.iter().filter(|e| e.sent >= dead_since).count()
    );

    let failures: Vec<&Exchange> = exchanges.iter().filter(|e| e.failed()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed, e.g. {:?}",
        failures.len(),
        exchanges.len(),
        &failures[..failures.len().min(5)]
    );
    let before = by_answerer(exchanges.iter().filter(|e| e.sent < dead_since));
    assert!(
        before.get("victim").copied().unwrap_or(0) > 0,
        "the victim served nothing before it was killed: {before:?}"
    );
    let after = by_answerer(exchanges.iter().filter(|e| e.sent >= dead_since));
    assert_eq!(
        after.keys().cloned().collect::<Vec<_>>(),
        ["survivor-1", "survivor-2"],
        "requests after the kill: {after:?}"
    );
    assert!(
        left_rotation,
        "victim neither suspect nor unhealthy: {:#?}",
        describe(&gate, "app").await
    );
    let text = metrics_text(&gate).await;
    let retries = metric_sum(
        &text,
        "scalegate_target_group_retries_total",
        &[("target_group", "app")],
    );
    eprintln!("passive retries: {retries}");
    assert!(
        retries >= 1.0,
        "no passive retry counted, so how did the victim's connections not fail?\n{text}"
    );

    // Two failed checks later (interval 5 s) it is unhealthy; the survivors stay healthy.
    assert!(
        wait_for_target_state(
            &gate,
            "app",
            &victim_target,
            "unhealthy",
            Duration::from_secs(25)
        )
        .await,
        "victim not unhealthy: {:#?}",
        describe(&gate, "app").await
    );
    let states = target_states(&gate, "app").await;
    for survivor in [&survivor_one, &survivor_two] {
        assert!(
            states
                .iter()
                .any(|(address, state, _)| *address == survivor.target() && state == "healthy"),
            "{states:?}"
        );
    }
}

/// Spec §2 deregistration, issue 3: a target deregistered through the admin API under steady
/// load finishes every request it has in flight, gets no new one, shows `draining` meanwhile,
/// and is removed as soon as its last request ends, long before the 300 s default delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_target_finishes_in_flight_requests_and_gets_no_new_ones() {
    const SLOW: Duration = Duration::from_secs(6);
    const IN_FLIGHT: usize = 6;
    let draining = Backend::start("draining");
    let stays = Backend::start("stays");
    let gate = Scalegate::start(&single_group_config("app", &[draining.target()], ""));
    wait_all_healthy(&gate, "app", &[draining.target()]).await;

    // Slow requests, all on the only target.
    draining.control.set_delay(SLOW);
    let base = gate.url("web");
    let slow_requests: Vec<_> = (0..IN_FLIGHT)
        .map(|index| {
            let request = client().get(format!("{base}/slow/{index}"));
            tokio::spawn(async move { echo(request).await })
        })
        .collect();
    assert!(
        poll_until(Duration::from_secs(10), || draining.control.served()
            == IN_FLIGHT),
        "slow requests did not reach the target: {}",
        draining.control.served()
    );

    // A second target joins, steady load starts, then the first is deregistered.
    change_targets(&gate, "app", "register", &[&stays.target()]).await;
    wait_all_healthy(&gate, "app", &[stays.target()]).await;
    // Round robin soon sends each client to the slow target too (more requests in flight
    // there), so wait only for the first answers from the fast one.
    let load = Load::start(format!("{base}/steady"), 4, 20_000);
    assert!(load.wait_for(0, 2, Duration::from_secs(5)).await);
    let answer = change_targets(&gate, "app", "deregister", &[&draining.target()]).await;
    let deregistered_at = Instant::now();
    let description = &answer["target_health_descriptions"][0];
    assert_eq!(
        description["target_health"]["state"], "draining",
        "{answer}"
    );
    assert_eq!(
        description["target_health"]["reason"],
        "Target.DeregistrationInProgress"
    );
    assert!(
        description["outstanding_requests"].as_u64().unwrap_or(0) >= IN_FLIGHT as u64,
        "the slow requests should still be in flight (machine too slow?): {answer}"
    );
    let listed = describe(&gate, "app").await;
    let listed_draining = find_target(&listed, &draining.target()).expect("listed while draining");
    assert_eq!(listed_draining["target_health"]["state"], "draining");

    // Every in-flight request completes on the draining target.
    for request in slow_requests {
        let seen = request.await.expect("slow request task");
        assert_eq!(seen.status, 200);
        assert_eq!(seen.backend(), "draining");
    }
    // It leaves the health list once idle, not after the 300 s delay.
    let removed = poll_until_async(Duration::from_secs(15), || async {
        find_target(&describe(&gate, "app").await, &draining.target()).is_none()
    })
    .await;
    assert!(
        removed,
        "draining target still listed: {:#?}",
        describe(&gate, "app").await
    );
    assert!(deregistered_at.elapsed() < Duration::from_secs(30));
    let answered_at_removal = load.count();
    assert!(
        load.wait_for(answered_at_removal, 50, Duration::from_secs(10))
            .await
    );
    let exchanges = load.finish().await;

    let failures: Vec<&Exchange> = exchanges.iter().filter(|e| e.failed()).collect();
    assert!(failures.is_empty(), "failed: {failures:?}");
    let after = by_answerer(exchanges.iter().filter(|e| e.sent >= deregistered_at));
    assert_eq!(
        after.keys().cloned().collect::<Vec<_>>(),
        ["stays"],
        "requests sent after deregistration: {after:?}"
    );
    // The draining target served exactly the requests its clients saw it answer: the slow
    // ones and steady ones sent before deregistration, nothing more.
    let from_draining = exchanges
        .iter()
        .filter(|e| e.answered_by == "draining")
        .count();
    assert_eq!(draining.control.served(), IN_FLIGHT + from_draining);
}

/// Spec §2.3 slow start: a target that becomes healthy beside a healthy full-share target
/// starts with a small share of requests that grows linearly over the duration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_start_ramps_a_new_targets_share() {
    let old = Backend::start("old");
    let new = Backend::start("new");
    let gate = Scalegate::start(&single_group_config(
        "app",
        &[old.target()],
        "    slow_start_duration_seconds: 30\n",
    ));
    wait_all_healthy(&gate, "app", &[old.target()]).await;
    let load = Load::start(format!("{}/", gate.url("web")), 6, 200_000);
    assert!(load.wait_for(0, 50, Duration::from_secs(10)).await);

    change_targets(&gate, "app", "register", &[&new.target()]).await;
    let (healthy, descriptions) = poll_describe(&gate, "app", Duration::from_secs(15), |all| {
        find_target(all, &new.target())
            .is_some_and(|description| description["target_health"]["state"] == "healthy")
    })
    .await;
    let healthy_at = tokio::time::Instant::now();
    assert!(healthy, "{descriptions:#?}");
    let description = find_target(&descriptions, &new.target()).unwrap();
    assert_eq!(description["in_slow_start"], true, "{description:#}");

    let backends = [&old, &new];
    let window = |from: u64| async move {
        tokio::time::sleep_until(healthy_at + Duration::from_secs(from)).await;
        let before = served(&backends);
        tokio::time::sleep_until(healthy_at + Duration::from_secs(from + 3)).await;
        share(&before, &served(&backends), 1)
    };
    // Expected shares: about 5 % over seconds 0–3 (weight 0–10 % of a full share), about
    // 31 % over seconds 12–15 (weight 40–50 %).
    let first = window(0).await;
    let later = window(12).await;
    let exchanges = load.finish().await;
    eprintln!("new target's share: {first:.3} over seconds 0-3, {later:.3} over seconds 12-15");
    assert!(exchanges.iter().all(|e| !e.failed()), "a request failed");
    assert!(first < 0.25, "first window share {first:.3}");
    assert!(
        later > 0.15 && later > first * 2.0,
        "share did not grow: first window {first:.3}, later window {later:.3}"
    );
}

/// Spec §2.3: targets registered together into a group with no healthy target do not slow
/// start; they get equal shares at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_start_is_not_applied_to_a_group_that_had_no_healthy_target() {
    let first = Backend::start("first");
    let second = Backend::start("second");
    let targets = [first.target(), second.target()];
    let gate = Scalegate::start(&single_group_config(
        "app",
        &targets,
        "    slow_start_duration_seconds: 30\n",
    ));
    wait_all_healthy(&gate, "app", &targets).await;
    let descriptions = describe(&gate, "app").await;
    for description in &descriptions {
        assert_eq!(
            description["in_slow_start"], false,
            "a target of a fresh group is in slow start: {descriptions:#?}"
        );
    }
    let backends = [&first, &second];
    let before = served(&backends);
    let load = Load::start(format!("{}/", gate.url("web")), 4, 400);
    let exchanges = load.finish_at_cap().await;
    assert!(exchanges.iter().all(|e| !e.failed()), "a request failed");
    let second_share = share(&before, &served(&backends), 1);
    eprintln!("second target's share: {second_share:.3}");
    assert!(
        (0.35..=0.65).contains(&second_share),
        "second target's share {second_share:.3}"
    );
}

/// Spec §2.3: with the same closed-loop load (wrk, 8 connections), least outstanding requests
/// sends a slow target far fewer requests than round robin, which alternates strictly.
#[test]
fn least_outstanding_requests_spares_a_slow_target_that_round_robin_does_not() {
    require_tool("wrk");
    let fast_rr = Backend::start("fast-rr");
    let slow_rr = Backend::start("slow-rr");
    let fast_lor = Backend::start("fast-lor");
    let slow_lor = Backend::start("slow-lor");
    let config = format!(
        "{ADMIN}listeners:\n{}{}target_groups:\n{}{}",
        forward_listener("rr", "rr"),
        forward_listener("lor", "lor"),
        target_group("rr", &[fast_rr.target(), slow_rr.target()], ""),
        target_group(
            "lor",
            &[fast_lor.target(), slow_lor.target()],
            "    load_balancing_algorithm: least_outstanding_requests\n"
        ),
    );
    let gate = Scalegate::start(&config);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        wait_all_healthy(&gate, "rr", &[fast_rr.target(), slow_rr.target()]).await;
        wait_all_healthy(&gate, "lor", &[fast_lor.target(), slow_lor.target()]).await;
    });
    for slow in [&slow_rr, &slow_lor] {
        slow.control.set_delay(Duration::from_millis(200));
    }
    // Both loads at once: same machine load for both algorithms.
    let runs: Vec<_> = ["rr", "lor"]
        .iter()
        .map(|listener| {
            let url = format!("{}/", gate.url(listener));
            std::thread::spawn(move || {
                std::process::Command::new("timeout")
                    .args(["60", "wrk", "-t1", "-c8", "-d4s", &url])
                    .output()
                    .expect("wrk runs")
            })
        })
        .collect();
    for (listener, run) in ["rr", "lor"].iter().zip(runs) {
        let output = run.join().expect("wrk thread");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{listener}: wrk failed: {text}");
        assert!(
            !text.contains("Non-2xx") && !text.contains("Socket errors"),
            "{listener}: {text}"
        );
    }
    let slow_share = |fast: &Backend, slow: &Backend| {
        let (fast, slow) = (fast.control.served(), slow.control.served());
        assert!(fast + slow >= 20, "too few requests: {fast} + {slow}");
        slow as f64 / (fast + slow) as f64
    };
    let round_robin = slow_share(&fast_rr, &slow_rr);
    let least_outstanding = slow_share(&fast_lor, &slow_lor);
    eprintln!(
        "slow target's share: round robin {round_robin:.3}, least outstanding requests \
         {least_outstanding:.3}"
    );
    assert!(
        round_robin > 0.40,
        "round robin gave the slow target {round_robin:.3}"
    );
    assert!(
        least_outstanding < 0.25,
        "least outstanding requests gave the slow target {least_outstanding:.3} \
         (round robin {round_robin:.3})"
    );
}

/// The `name=value` of the `Set-Cookie` in `headers` that sets `name`, with its attributes.
fn set_cookie(headers: &reqwest::header::HeaderMap, name: &str) -> Option<(String, String)> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{name}=")))
        .map(|value| {
            let (pair, attributes) = value.split_once(';').unwrap_or((value, ""));
            (pair.to_string(), attributes.to_string())
        })
}

/// Spec §2.4 lb_cookie: `AWSALB` (+ `AWSALBCORS`) pins a client to one target across many
/// requests; when that target dies, the next request is answered by another target and the
/// cookie is rewritten to name it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lb_cookie_pins_a_client_and_moves_it_when_its_target_dies() {
    let mut backends: Vec<Backend> = ["a", "b", "c"].into_iter().map(Backend::start).collect();
    let targets: Vec<String> = backends.iter().map(Backend::target).collect();
    let gate = Scalegate::start(&single_group_config(
        "app",
        &targets,
        "    stickiness: {enabled: true, type: lb_cookie, duration_seconds: 3600}\n",
    ));
    wait_all_healthy(&gate, "app", &targets).await;
    let url = format!("{}/", gate.url("web"));
    let http = client();

    // Without a cookie, round robin spreads requests.
    let mut unpinned = BTreeSet::new();
    for _ in 0..6 {
        unpinned.insert(echo(http.get(&url)).await.backend().to_string());
    }
    assert!(unpinned.len() >= 2, "{unpinned:?}");

    let first = echo(http.get(&url)).await;
    let (mut cookie, attributes) =
        set_cookie(&first.response_headers, "AWSALB").expect("AWSALB set");
    assert!(attributes.contains("Expires="), "{attributes}");
    assert!(attributes.contains("Path=/"), "{attributes}");
    let (_, cors) = set_cookie(&first.response_headers, "AWSALBCORS").expect("AWSALBCORS set");
    assert!(cors.contains("Expires="), "{cors}");
    assert!(cors.contains("SameSite=None"), "{cors}");
    assert!(cors.contains("Secure"), "{cors}");

    // Pinned, like a browser that stores each response's cookie.
    let pinned = first.backend().to_string();
    for _ in 0..30 {
        let seen = echo(http.get(&url).header("cookie", &cookie)).await;
        assert_eq!(seen.status, 200);
        assert_eq!(seen.backend(), pinned);
        cookie = set_cookie(&seen.response_headers, "AWSALB")
            .expect("AWSALB re-issued")
            .0;
    }

    // Its target dies (port closed): the next request is answered elsewhere, with a new
    // cookie, and the client stays there.
    backends
        .iter_mut()
        .find(|backend| backend.id == pinned)
        .unwrap()
        .stop();
    let moved = echo(http.get(&url).header("cookie", &cookie)).await;
    assert_eq!(moved.status, 200);
    assert_ne!(moved.backend(), pinned);
    let (new_cookie, _) = set_cookie(&moved.response_headers, "AWSALB").expect("AWSALB rewritten");
    assert_ne!(new_cookie, cookie);
    let new_target = moved.backend().to_string();
    for _ in 0..10 {
        let seen = echo(http.get(&url).header("cookie", &new_cookie)).await;
        assert_eq!(seen.status, 200);
        assert_eq!(seen.backend(), new_target);
    }
}

/// Spec §2.4 app_cookie: when the target sets the application cookie, the load balancer adds
/// `AWSALBAPP-0`; requests carrying both stick to that target, while `AWSALBAPP-0` alone
/// (the application ended its session) does not pin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_cookie_pins_requests_that_carry_both_cookies() {
    let backends: Vec<Backend> = ["a", "b", "c"].into_iter().map(Backend::start).collect();
    let targets: Vec<String> = backends.iter().map(Backend::target).collect();
    let gate = Scalegate::start(&single_group_config(
        "app",
        &targets,
        "    stickiness: {enabled: true, type: app_cookie, cookie_name: SESSION}\n",
    ));
    wait_all_healthy(&gate, "app", &targets).await;
    let base = gate.url("web");
    let http = client();

    // A response that does not set the application cookie gets no AWSALBAPP-0.
    let plain = echo(http.get(format!("{base}/"))).await;
    assert!(set_cookie(&plain.response_headers, "AWSALBAPP-0").is_none());

    let started = echo(http.get(format!("{base}/set-cookie/SESSION"))).await;
    assert_eq!(started.status, 200);
    let (application, _) =
        set_cookie(&started.response_headers, "SESSION").expect("the target's cookie passes");
    let (balancer, _) =
        set_cookie(&started.response_headers, "AWSALBAPP-0").expect("AWSALBAPP-0 added");
    let pinned = started.backend().to_string();
    let both = format!("{application}; {balancer}");
    for _ in 0..20 {
        let seen = echo(http.get(format!("{base}/")).header("cookie", &both)).await;
        assert_eq!(seen.status, 200);
        assert_eq!(seen.backend(), pinned);
    }
    let mut unpinned = BTreeSet::new();
    for _ in 0..9 {
        let seen = echo(http.get(format!("{base}/")).header("cookie", &balancer)).await;
        unpinned.insert(seen.backend().to_string());
    }
    assert!(
        unpinned.len() >= 2,
        "AWSALBAPP-0 alone pinned: {unpinned:?}"
    );
}

/// Spec §2.3 automatic target weights: with weighted_random and anomaly mitigation, a target
/// that answers 500 to every request (while passing its health checks) is reported anomalous
/// and its share of traffic falls far below its third.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anomaly_mitigation_starves_a_target_that_answers_500() {
    let good_one = Backend::start("good-1");
    let good_two = Backend::start("good-2");
    let failing = Backend::start("failing");
    let backends = [&good_one, &good_two, &failing];
    let targets: Vec<String> = backends.iter().map(|b| b.target()).collect();
    let gate = Scalegate::start(&single_group_config(
        "app",
        &targets,
        "    load_balancing_algorithm: weighted_random\n    anomaly_mitigation: true\n",
    ));
    wait_all_healthy(&gate, "app", &targets).await;
    failing.control.set_status(500);
    let load = Load::start(format!("{}/", gate.url("web")), 4, 200_000);
    let load_started = Instant::now();

    let (anomalous, detected) = poll_describe(&gate, "app", Duration::from_secs(20), |all| {
        find_target(all, &failing.target()).is_some_and(|description| {
            description["anomaly_detection"]["result"] == "anomalous"
                && description["anomaly_detection"]["mitigation_in_effect"] == "yes"
        })
    })
    .await;
    assert!(anomalous, "not detected: {detected:#?}");
    let detected_at = tokio::time::Instant::now();
    eprintln!(
        "anomalous {:?} after the load started",
        load_started.elapsed()
    );
    for target in [&good_one, &good_two] {
        let description = find_target(&detected, &target.target()).unwrap();
        assert_eq!(description["anomaly_detection"]["result"], "normal");
    }

    // The weight halves at detection and every 5 s after: from second 10 it is at most 1/8
    // (a share of about 6 %).
    tokio::time::sleep_until(detected_at + Duration::from_secs(10)).await;
    let before = served(&backends);
    tokio::time::sleep_until(detected_at + Duration::from_secs(15)).await;
    let failing_share = share(&before, &served(&backends), 2);
    let (text, counted) = poll_metric(
        &gate,
        "scalegate_target_group_anomalous_targets",
        &[("target_group", "app")],
        Duration::from_secs(5),
        |value| value == 1.0,
    )
    .await;
    let exchanges = load.finish().await;
    eprintln!(
        "failing target's share over seconds 10-15 after detection: {failing_share:.3}; \
         {} of {} requests failed",
        exchanges.iter().filter(|e| e.failed()).count(),
        exchanges.len()
    );
    assert!(
        failing_share < 0.15,
        "the failing target still got {failing_share:.3} of the requests"
    );
    assert!(counted, "{text}");
    assert_eq!(
        metric_sum(
            &text,
            "scalegate_target_group_mitigated_targets",
            &[("target_group", "app")]
        ),
        1.0,
        "{text}"
    );
    let descriptions = describe(&gate, "app").await;
    let description = find_target(&descriptions, &failing.target()).unwrap();
    assert_eq!(description["target_health"]["state"], "healthy");
    assert_eq!(description["anomaly_detection"]["result"], "anomalous");
    assert_eq!(
        description["anomaly_detection"]["mitigation_in_effect"],
        "yes"
    );
}
