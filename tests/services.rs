//! Services end to end, with the real binary on loopback: tasks of scalegate's own workload
//! server behind a listener, scaled by a requests-per-target policy; crashed and unhealthy
//! tasks replaced; graceful and not-so-graceful exits that leave no process behind; a reload
//! that deploys a new revision; task output and metadata; the services admin API; the bundled
//! example. Every wait is a poll with a deadline and every load is bounded in count and time.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{
    admin_json, binary, client, gateway_config, metric_sum, metrics_text, poll_until,
    process_group_members, process_is_dead, promtool_accepts, workload_definition,
    workload_service, Exchange, Scalegate, SteadyLoad,
};
use reqwest::Method;
use serde_json::{json, Value};

/// Starts the gateway with service `app` of `desired` workload tasks (and `scaling`, as
/// [`workload_service`] takes it) and waits until every task serves; returns the gateway and
/// that snapshot of the service.
async fn serving_gateway(desired: u32, scaling: Option<&str>) -> (Scalegate, Value) {
    let gate = Scalegate::start(&gateway_config(&format!(
        "{}{}",
        workload_definition(""),
        workload_service(desired, scaling)
    )));
    let snapshot = wait_for_service(
        &gate,
        "app",
        &format!("serving with {desired} healthy task(s)"),
        Duration::from_secs(60),
        |s| all_serving(s, desired as usize),
    )
    .await;
    (gate, snapshot)
}

/// `GET /api/services/{name}`; panics unless it answers 200.
async fn service(gate: &Scalegate, name: &str) -> Value {
    let (status, body) =
        admin_json(gate, Method::GET, &format!("/api/services/{name}"), None).await;
    assert_eq!(status, 200, "GET /api/services/{name}: {body}");
    body
}

/// Waits until service `app` wants `count` tasks and all of them serve.
async fn wait_for_scaled(gate: &Scalegate, count: u32, what: &str, deadline: Duration) -> Value {
    wait_for_service(gate, "app", what, deadline, |s| {
        s["desired_count"] == count && all_serving(s, count as usize)
    })
    .await
}

/// Service `app`'s scaling activities, newest first.
async fn app_activities(gate: &Scalegate) -> Vec<Value> {
    let (status, body) = admin_json(gate, Method::GET, "/api/services/app/activities", None).await;
    assert_eq!(status, 200, "{body}");
    body["scaling_activities"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Polls service `name` until `condition` holds of its snapshot; returns that snapshot, or
/// panics with the last one and scalegate's log.
async fn wait_for_service(
    gate: &Scalegate,
    name: &str,
    what: &str,
    deadline: Duration,
    condition: impl Fn(&Value) -> bool,
) -> Value {
    let end = Instant::now() + deadline;
    let mut last = service(gate, name).await;
    while !condition(&last) && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
        last = service(gate, name).await;
    }
    assert!(
        condition(&last),
        "service {name}: not {what} within {deadline:?}; last snapshot:\n{}\nlog:\n{}",
        serde_json::to_string_pretty(&last).unwrap_or_default(),
        gate.log_text()
    );
    last
}

/// `PUT /api/services/{name}/desired_count` (UpdateService), then waits until exactly
/// `count` tasks are RUNNING and none is on its way; returns that snapshot.
async fn set_desired_count_and_wait(gate: &Scalegate, name: &str, count: u32) -> Value {
    let body = json!({ "desired_count": count }).to_string();
    let path = format!("/api/services/{name}/desired_count");
    let (status, answer) = admin_json(gate, Method::PUT, &path, Some(&body)).await;
    assert_eq!((status, &answer), (200, &json!({ "desired_count": count })));
    wait_for_service(
        gate,
        name,
        &format!("running {count} task(s)"),
        Duration::from_secs(20),
        |s| {
            s["desired_count"] == count
                && s["running_count"] == count
                && live_tasks(s).len() == count as usize
        },
    )
    .await
}

/// The snapshot's tasks.
fn tasks(snapshot: &Value) -> Vec<&Value> {
    snapshot["tasks"]
        .as_array()
        .map(|tasks| tasks.iter().collect())
        .unwrap_or_default()
}

/// Tasks not yet STOPPED.
fn live_tasks(snapshot: &Value) -> Vec<&Value> {
    tasks(snapshot)
        .into_iter()
        .filter(|task| task["last_status"] != "STOPPED")
        .collect()
}

/// The task `id` of the snapshot.
fn task<'a>(snapshot: &'a Value, id: &str) -> Option<&'a Value> {
    tasks(snapshot)
        .into_iter()
        .find(|task| task["task_id"] == id)
}

/// RUNNING, wanted RUNNING, and healthy in the target group.
fn is_serving(task: &Value) -> bool {
    task["last_status"] == "RUNNING"
        && task["desired_status"] == "RUNNING"
        && task["health_status"] == "HEALTHY"
}

/// Whether exactly `count` tasks are live, all of them serving.
fn all_serving(snapshot: &Value, count: usize) -> bool {
    let live = live_tasks(snapshot);
    live.len() == count && live.iter().all(|task| is_serving(task))
}

fn task_id(task: &Value) -> String {
    task["task_id"].as_str().expect("task_id").to_string()
}

/// The workload task that answered an exchange (its JSON body's `task_id`).
fn answered_by_task(exchange: &Exchange) -> Option<String> {
    let body: Value = serde_json::from_str(&exchange.answered_by).ok()?;
    body["task_id"].as_str().map(str::to_string)
}

/// Asserts that no request of `exchanges` failed (non-200 or transport error).
fn assert_no_failures(what: &str, exchanges: &[Exchange]) {
    let failures: Vec<&Exchange> = exchanges.iter().filter(|e| e.failed()).collect();
    assert!(
        failures.is_empty(),
        "{what}: {} of {} requests failed, first ones: {:?}",
        failures.len(),
        exchanges.len(),
        failures.iter().take(5).collect::<Vec<_>>()
    );
}

/// The `fast` profile sped up so that a test sees a scale-in within a minute: a 10 s stable
/// window instead of 60, a 2 s panic window instead of 6, a 5 s scale-in cooldown instead of 30.
/// The algorithm is the same; only its windows are shorter.
const FAST_FOR_TESTS: &str =
    "      fast: {stable_window_seconds: 10, panic_window_seconds: 2, scale_in_cooldown_seconds: 5}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_scales_the_service_out_and_back_in_without_failed_requests() {
    // 1200 requests per task per minute: 20 per second per task.
    let scaling = format!(
        "      min_capacity: 1\n      max_capacity: 3\n{FAST_FOR_TESTS}      policies:
        - target_tracking:
            name: requests-1200
            target_value: 1200
            predefined_metric_specification:
              predefined_metric_type: ALBRequestCountPerTarget
"
    );
    let (gate, _) = serving_gateway(1, Some(&scaling)).await;
    let url = gate.url("web");

    // A light load (two clients, at most about 13 requests per second: under one task's
    // target) runs through the whole test, across scale-out and scale-in; a heavy one makes the
    // service scale out.
    let light = SteadyLoad::start(format!("{url}/?sleep_ms=150"), 2, 5_000);
    assert!(light.wait_for_more(3, Duration::from_secs(20)).await);
    let heavy_started = Instant::now();
    let heavy = SteadyLoad::start(format!("{url}/?sleep_ms=5"), 4, 40_000);
    let scaled_out = wait_for_service(&gate, "app", "scaled out", Duration::from_secs(30), |s| {
        s["desired_count"].as_u64().unwrap_or(0) > 1
    })
    .await;
    eprintln!(
        "scaled out to {} after {:?}",
        scaled_out["desired_count"],
        heavy_started.elapsed()
    );
    let activities = app_activities(&gate).await;
    let scale_out = activities
        .iter()
        .find(|a| a["to_capacity"].as_u64() > a["from_capacity"].as_u64())
        .unwrap_or_else(|| panic!("no scale-out activity: {activities:?}"))
        .clone();
    let cause = scale_out["cause"].as_str().unwrap_or("");
    assert!(
        cause.contains("requests-1200") && cause.contains("ALBRequestCountPerTarget"),
        "the cause names the policy and its metric: {scale_out}"
    );

    // The new tasks join the target group and take their share of the heavy load.
    let out = wait_for_service(
        &gate,
        "app",
        "serving with every task it wants",
        Duration::from_secs(60),
        |s| {
            let desired = s["desired_count"].as_u64().unwrap_or(0);
            desired > 1 && s["healthy_count"].as_u64() == Some(desired)
        },
    )
    .await;
    let serving: BTreeSet<String> = live_tasks(&out).into_iter().map(task_id).collect();
    assert!(heavy.wait_for_more(200, Duration::from_secs(30)).await);
    let heavy_exchanges = heavy.finish().await;
    let answering: BTreeSet<String> = heavy_exchanges
        .iter()
        .filter_map(answered_by_task)
        .collect();
    assert!(
        answering.len() > 1,
        "the heavy load reached several tasks: {answering:?} (serving {serving:?})"
    );
    assert_no_failures("heavy load", &heavy_exchanges);

    // Only the light load now: the service scales back in to its minimum.
    let heavy_stopped = Instant::now();
    wait_for_scaled(&gate, 1, "back to one task", Duration::from_secs(120)).await;
    eprintln!("scaled back in after {:?}", heavy_stopped.elapsed());
    let activities = app_activities(&gate).await;
    assert!(
        activities.iter().any(|a| a["to_capacity"] == 1
            && a["from_capacity"].as_u64() > Some(1)
            && a["status_code"] == "Successful"),
        "a successful scale-in activity to 1: {activities:?}"
    );
    let stopped = service(&gate, "app").await;
    assert!(
        tasks(&stopped).iter().any(|t| t["last_status"] == "STOPPED"
            && t["stop_code"] == "ServiceSchedulerInitiated"
            && t["stopped_reason"]
                .as_str()
                .is_some_and(|reason| reason.contains("scale-in"))),
        "scale-in stopped tasks and said why: {stopped}"
    );
    assert!(light.wait_for_more(3, Duration::from_secs(20)).await);
    let light_exchanges = light.finish().await;
    assert_no_failures("light load", &light_exchanges);
    let during_scale_in = light_exchanges
        .iter()
        .filter(|exchange| exchange.sent > heavy_stopped)
        .count();
    eprintln!(
        "light load: {} requests, {during_scale_in} of them during scale-in; heavy load: {}",
        light_exchanges.len(),
        heavy_exchanges.len()
    );
    assert!(
        during_scale_in >= 20,
        "the light load kept running through scale-in: {during_scale_in} requests"
    );
}

/// Starts the gateway with one workload task (no scaling), waits until it serves, and sends
/// `POST <control_path>` straight to the task (not through the listener); returns the gateway,
/// the task's ID and the answer (a task told to exit may close before answering).
async fn one_serving_task_told(
    control_path: &str,
) -> (Scalegate, String, reqwest::Result<reqwest::Response>) {
    let (gate, snapshot) = serving_gateway(1, None).await;
    let task = live_tasks(&snapshot)[0];
    let address = task["address"].as_str().expect("address");
    let answer = client()
        .post(format!("http://{address}{control_path}"))
        .send()
        .await;
    (gate, task_id(task), answer)
}

#[tokio::test]
async fn a_crashed_task_is_replaced() {
    // The workload answers, then exits 3; the answer may or may not arrive.
    let (gate, crashed_id, _) = one_serving_task_told("/exit?code=3").await;
    let replaced = wait_for_service(
        &gate,
        "app",
        "replaced by a new healthy task",
        Duration::from_secs(60),
        |s| {
            task(s, &crashed_id).is_some_and(|t| t["last_status"] == "STOPPED")
                && live_tasks(s).len() == 1
                && live_tasks(s)
                    .iter()
                    .all(|t| is_serving(t) && t["task_id"] != crashed_id.as_str())
        },
    )
    .await;
    let old = task(&replaced, &crashed_id).unwrap();
    assert_eq!(old["stop_code"], "EssentialContainerExited", "{old}");
    assert_eq!(old["exit"], "exit code 3", "{old}");
    assert_eq!(old["desired_status"], "STOPPED", "{old}");
}

#[tokio::test]
async fn an_unhealthy_task_is_replaced_replacement_first() {
    let (gate, sick_id, answer) = one_serving_task_told("/health/fail").await;
    assert!(answer.expect("health flipped").status().is_success());

    // The first snapshot in which the scheduler gave up on the sick task: its replacement is
    // already serving by then.
    let stopping = wait_for_service(
        &gate,
        "app",
        "stopping the unhealthy task",
        Duration::from_secs(90),
        |s| task(s, &sick_id).is_some_and(|t| t["desired_status"] == "STOPPED"),
    )
    .await;
    let replacements: Vec<&Value> = live_tasks(&stopping)
        .into_iter()
        .filter(|t| t["task_id"] != sick_id.as_str())
        .collect();
    assert!(
        replacements.iter().any(|t| is_serving(t)),
        "a replacement serves before the unhealthy task is stopped: {stopping}"
    );
    let done = wait_for_service(
        &gate,
        "app",
        "done with the unhealthy task",
        Duration::from_secs(30),
        |s| task(s, &sick_id).is_some_and(|t| t["last_status"] == "STOPPED"),
    )
    .await;
    let old = task(&done, &sick_id).unwrap();
    assert_eq!(old["stop_code"], "ServiceSchedulerInitiated", "{old}");
    assert!(
        old["stopped_reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("ELB health checks")),
        "{old}"
    );
}

/// Starts two workload tasks, then stops scalegate with `signal_name`; every process of every
/// task's group must be gone afterwards. Graceful signals must also stop each task the graceful
/// way (SIGTERM, exit 0) before scalegate exits.
async fn stop_leaves_no_process(signal_name: &str) {
    let (mut gate, snapshot) = serving_gateway(2, None).await;
    let mut members = Vec::new();
    let mut ids = Vec::new();
    for task in live_tasks(&snapshot) {
        let pid = task["pid"].as_i64().expect("task pid") as i32;
        ids.push(task_id(task));
        // The task-exec supervisor and the workload under it, in one group.
        let mut group = Vec::new();
        assert!(
            poll_until(Duration::from_secs(10), || {
                group = process_group_members(pid);
                group.len() >= 2
            }),
            "task group {pid}: {group:?}"
        );
        members.extend(group);
    }
    let graceful = signal_name != "KILL";
    let exited = gate.stop_with(signal_name, Duration::from_secs(30));
    assert!(
        exited,
        "scalegate exits on SIG{signal_name}:\n{}",
        gate.log_text()
    );
    if graceful {
        // Nothing is left at the moment scalegate is gone (a zombie reaped late aside).
        for id in &ids {
            assert!(
                gate.has_log(
                    |l| l["message"] == "task stopped: exit code 0" && l["task_id"] == id.as_str()
                ),
                "task {id} stopped gracefully (SIGTERM, exit 0):\n{}",
                gate.log_text()
            );
        }
    }
    assert!(
        poll_until(Duration::from_secs(20), || members
            .iter()
            .all(|&pid| process_is_dead(pid))),
        "after SIG{signal_name}, processes left behind: {:?}",
        members
            .iter()
            .filter(|&&pid| !process_is_dead(pid))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn ctrl_c_stops_tasks_gracefully_and_leaves_no_process() {
    stop_leaves_no_process("INT").await;
}

#[tokio::test]
async fn sigterm_stops_tasks_gracefully_and_leaves_no_process() {
    stop_leaves_no_process("TERM").await;
}

#[tokio::test]
async fn sigkill_of_scalegate_leaves_no_orphan_task() {
    stop_leaves_no_process("KILL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_with_a_changed_task_definition_deploys_without_failed_requests() {
    let (gate, before) = serving_gateway(2, None).await;
    assert_eq!(before["task_definition"], "app:1");
    let old: BTreeSet<String> = live_tasks(&before).into_iter().map(task_id).collect();
    let load = SteadyLoad::start(format!("{}/?sleep_ms=20", gate.url("web")), 2, 20_000);
    assert!(load.wait_for_more(20, Duration::from_secs(20)).await);

    gate.rewrite_config(&gateway_config(&format!(
        "{}{}",
        workload_definition(r#", --cpu-ms, "1""#),
        workload_service(2, None)
    )));
    let after = wait_for_service(
        &gate,
        "app",
        "deployed app:2",
        Duration::from_secs(120),
        |s| {
            s["task_definition"] == "app:2"
                && s["deployment_in_progress"] == false
                && all_serving(s, 2)
                && live_tasks(s)
                    .iter()
                    .all(|t| t["task_definition"] == "app:2")
        },
    )
    .await;
    for id in &old {
        let stopped = task(&after, id).unwrap_or_else(|| panic!("old task {id} listed: {after}"));
        assert_eq!(stopped["last_status"], "STOPPED", "{stopped}");
        assert_eq!(
            stopped["stop_code"], "ServiceSchedulerInitiated",
            "{stopped}"
        );
    }
    let new: BTreeSet<String> = live_tasks(&after).into_iter().map(task_id).collect();
    assert!(load.wait_for_more(50, Duration::from_secs(30)).await);
    let exchanges = load.finish().await;
    assert_no_failures("load during the deployment", &exchanges);
    let last_answers: BTreeSet<String> = exchanges
        .iter()
        .rev()
        .take(20)
        .filter_map(answered_by_task)
        .collect();
    assert!(
        last_answers.is_subset(&new) && !last_answers.is_empty(),
        "the new revision's tasks serve at the end: {last_answers:?} (new {new:?})"
    );
}

#[tokio::test]
async fn task_output_reaches_the_log_and_the_task_log_file_and_metadata_is_served() {
    let gate = Scalegate::start(
        r#"admin:
  address: 127.0.0.1:0
task_definitions:
  - family: echo
    command: sh
    args: [-c, 'echo "meta=$ECS_CONTAINER_METADATA_URI_V4"; echo "to stderr" >&2; exec sleep 600']
    stop_timeout_seconds: 2
services:
  - name: echoer
    task_definition: echo
    desired_count: 1
"#,
    );
    let line = gate.wait_for_log(
        |l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("meta="))
        },
        Duration::from_secs(20),
    );
    let id = line["task_id"]
        .as_str()
        .expect("task_id on the line")
        .to_string();
    assert_eq!(line["service"], "echoer", "{line}");
    assert_eq!(line["stream"], "stdout", "{line}");
    let metadata_url = line["message"].as_str().unwrap()["meta=".len()..].to_string();
    assert_eq!(
        metadata_url,
        format!("http://{}/v4/{id}", gate.admin_address()),
        "ECS_CONTAINER_METADATA_URI_V4"
    );
    let stderr = gate.wait_for_log(|l| l["message"] == "to stderr", Duration::from_secs(20));
    assert_eq!(stderr["task_id"], id.as_str(), "{stderr}");
    assert_eq!(stderr["stream"], "stderr", "{stderr}");

    // The task's own log file, one per task like a CloudWatch log stream.
    let file = gate.task_log_dir().join("echoer").join(format!("{id}.log"));
    let mut text = String::new();
    assert!(
        poll_until(Duration::from_secs(20), || {
            text = std::fs::read_to_string(&file).unwrap_or_default();
            text.contains(" stdout meta=http://") && text.contains(" stderr to stderr")
        }),
        "{}: {text:?}",
        file.display()
    );

    // The metadata endpoint, without the admin token, at the URL the task was given.
    let task_metadata: Value = client()
        .get(format!("{metadata_url}/task"))
        .send()
        .await
        .expect("metadata answers")
        .json()
        .await
        .expect("metadata is JSON");
    assert_eq!(task_metadata["Family"], "echo", "{task_metadata}");
    assert_eq!(task_metadata["Revision"], "1", "{task_metadata}");
    assert_eq!(task_metadata["ServiceName"], "echoer", "{task_metadata}");
    assert_eq!(task_metadata["KnownStatus"], "RUNNING", "{task_metadata}");
    let container: Value = client()
        .get(&metadata_url)
        .send()
        .await
        .expect("metadata answers")
        .json()
        .await
        .expect("metadata is JSON");
    assert_eq!(container["DockerId"], id.as_str(), "{container}");
    let unknown = client()
        .get(format!(
            "http://{}/v4/no-such-task/task",
            gate.admin_address()
        ))
        .send()
        .await
        .expect("metadata answers");
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn the_services_api_changes_counts_stops_tasks_and_reports_metrics() {
    let gate = Scalegate::start(&format!(
        r#"admin:
  address: 127.0.0.1:0
task_definitions:
  - family: idle
    command: sleep
    args: ["600"]
    stop_timeout_seconds: 2
services:
  - name: plain
    task_definition: idle
    desired_count: 1
  - name: scaled
    task_definition: idle
    desired_count: 2
    scaling:
      min_capacity: 1
      max_capacity: 2
{FAST_FOR_TESTS}      policies:
        - target_tracking:
            name: cpu-50
            target_value: 50
            predefined_metric_specification:
              predefined_metric_type: ECSServiceAverageCPUUtilization
"#
    ));
    let one = |s: &Value| s["running_count"] == 1 && live_tasks(s).len() == 1;
    wait_for_service(
        &gate,
        "plain",
        "running one task",
        Duration::from_secs(20),
        one,
    )
    .await;

    // UpdateService: up to 3, then down to 1.
    set_desired_count_and_wait(&gate, "plain", 3).await;
    let scaled_in = set_desired_count_and_wait(&gate, "plain", 1).await;
    let stopped: Vec<&Value> = tasks(&scaled_in)
        .into_iter()
        .filter(|t| t["last_status"] == "STOPPED")
        .collect();
    assert_eq!(stopped.len(), 2, "{scaled_in}");
    assert!(
        stopped
            .iter()
            .all(|t| t["stop_code"] == "ServiceSchedulerInitiated"),
        "{scaled_in}"
    );

    // StopTask: the named task stops as the user asked, and the service replaces it.
    let victim = task_id(live_tasks(&scaled_in)[0]);
    let (status, body) = admin_json(
        &gate,
        Method::POST,
        &format!("/api/services/plain/tasks/{victim}/stop"),
        None,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let replaced = wait_for_service(
        &gate,
        "plain",
        "replacing the stopped task",
        Duration::from_secs(20),
        |s| {
            task(s, &victim).is_some_and(|t| t["last_status"] == "STOPPED")
                && one(s)
                && live_tasks(s)[0]["task_id"] != victim.as_str()
        },
    )
    .await;
    let stopped = task(&replaced, &victim).unwrap();
    assert_eq!(stopped["stop_code"], "UserInitiated", "{stopped}");
    assert_eq!(
        stopped["stopped_reason"], "Task stopped by user",
        "{stopped}"
    );

    // Unknown services and tasks: 404 with a JSON error; a bad body: 400.
    for (method, path, body) in [
        (Method::GET, "/api/services/nope", None),
        (Method::GET, "/api/services/nope/activities", None),
        (
            Method::PUT,
            "/api/services/nope/desired_count",
            Some(r#"{"desired_count": 1}"#),
        ),
        (Method::POST, "/api/services/nope/tasks/abc/stop", None),
        (
            Method::POST,
            "/api/services/plain/tasks/no-such-task/stop",
            None,
        ),
    ] {
        let (status, answer) = admin_json(&gate, method.clone(), path, body).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
        assert!(answer["error"].is_string(), "{method} {path}: {answer}");
    }
    let (status, answer) = admin_json(
        &gate,
        Method::PUT,
        "/api/services/plain/desired_count",
        Some(r#"{"desired": 1}"#),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].is_string(), "{answer}");
    let (status, all) = admin_json(&gate, Method::GET, "/api/services", None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = all["services"]
        .as_array()
        .map(|services| {
            services
                .iter()
                .filter_map(|s| s["service_name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(names, ["plain", "scaled"], "{all}");

    // The idle `scaled` service uses no CPU: the policy scales it in to its minimum, which
    // makes a scaling activity.
    wait_for_service(
        &gate,
        "scaled",
        "scaled in to one",
        Duration::from_secs(60),
        |s| s["desired_count"] == 1 && one(s),
    )
    .await;
    let settled = |text: &str| {
        metric_sum(
            text,
            "scalegate_scaling_activities_total",
            &[("service", "scaled"), ("status", "Successful")],
        ) >= 1.0
            && metric_sum(
                text,
                "scalegate_service_tasks",
                &[("service", "scaled"), ("count", "running")],
            ) == 1.0
    };
    let end = Instant::now() + Duration::from_secs(10);
    let mut text = metrics_text(&gate).await;
    while !settled(&text) && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
        text = metrics_text(&gate).await;
    }
    assert!(settled(&text), "{text}");
    for (service, count, value) in [
        ("plain", "desired", 1.0),
        ("plain", "running", 1.0),
        ("plain", "pending", 0.0),
        ("plain", "healthy", 1.0),
        ("scaled", "desired", 1.0),
    ] {
        assert_eq!(
            metric_sum(
                &text,
                "scalegate_service_tasks",
                &[("service", service), ("count", count)]
            ),
            value,
            "{service} {count}:\n{text}"
        );
    }
    for (bound, value) in [("min", 1.0), ("max", 2.0)] {
        assert_eq!(
            metric_sum(
                &text,
                "scalegate_scalable_target_capacity",
                &[("service", "scaled"), ("bound", bound)]
            ),
            value,
            "{bound}:\n{text}"
        );
    }
    assert!(
        text.lines()
            .any(|line| line.starts_with("scalegate_scaling_policy_metric{")
                && line.contains("policy=\"cpu-50\"")
                && line.contains("service=\"scaled\"")
                && line.contains("metric=\"ECSServiceAverageCPUUtilization\"")),
        "{text}"
    );
    promtool_accepts(&text);
}

#[tokio::test]
async fn the_bundled_example_checks_and_runs() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/scalegate.yaml");
    let output = std::process::Command::new(binary())
        .args(["check", "-c", example])
        .output()
        .expect("scalegate check runs");
    let explanation = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        explanation.lines().any(|line| line
            == "service app: task definition app, desired count 1, in target group(s) app, \
                registered as app.scalegate.local, scaled between 1 and 8 by policies \
                [cpu-50, requests-600]"),
        "{explanation}"
    );

    // The same file on free ports: its service comes up and serves through the listener.
    let text = std::fs::read_to_string(example).expect("example read");
    let mut yaml = text.clone();
    for fixed in ["127.0.0.1:8080", "127.0.0.1:9901", "127.0.0.1:8053"] {
        assert!(yaml.contains(fixed), "the example listens on {fixed}");
        yaml = yaml.replace(fixed, "127.0.0.1:0");
    }
    let gate = Scalegate::start(&yaml);
    let snapshot = wait_for_service(
        &gate,
        "app",
        "one healthy task",
        Duration::from_secs(60),
        |s| all_serving(s, 1),
    )
    .await;
    assert_eq!(snapshot["task_definition"], "app:1");
    let id = task_id(live_tasks(&snapshot)[0]);
    let response = client()
        .get(format!("{}/", gate.url("web")))
        .send()
        .await
        .expect("the listener answers");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("x-workload-task-id")
            .and_then(|value| value.to_str().ok()),
        Some(id.as_str())
    );
    let health = client()
        .get(format!("{}/healthz", gate.url("web")))
        .send()
        .await
        .expect("the listener answers");
    assert_eq!(health.text().await.unwrap(), "ok\n");
}

/// A Prometheus exposition endpoint serving one gauge whose value the test sets: the custom
/// metric a policy scrapes. Answers every connection once and closes it; the thread ends with
/// the test process.
struct GaugeEndpoint {
    address: std::net::SocketAddr,
    value: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl GaugeEndpoint {
    fn start() -> GaugeEndpoint {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let value = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let shared = std::sync::Arc::clone(&value);
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let gauge = shared.load(std::sync::atomic::Ordering::SeqCst);
                let body = format!(
                    "# HELP queue_depth Jobs waiting.\n# TYPE queue_depth gauge\n\
                     queue_depth{{queue=\"jobs\"}} {gauge}\nqueue_depth{{queue=\"other\"}} 1000\n"
                );
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        GaugeEndpoint { address, value }
    }

    fn set(&self, value: u64) {
        self.value.store(value, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_scraped_prometheus_metric_scales_the_service() {
    let endpoint = GaugeEndpoint::start();
    let scaling = format!(
        "      min_capacity: 1\n      max_capacity: 3\n{FAST_FOR_TESTS}      policies:
        - target_tracking:
            name: queue-10
            target_value: 10
            customized_metric_specification:
              scrape:
                url: http://{}/metrics
                metric_name: queue_depth
                labels: {{queue: jobs}}
",
        endpoint.address
    );
    let (gate, _) = serving_gateway(1, Some(&scaling)).await;
    endpoint.set(30);
    // 30 against a target of 10 with one task: three tasks (the series of the other queue,
    // 1000, must not count).
    wait_for_scaled(&gate, 3, "scaled out to 3", Duration::from_secs(60)).await;
    let scale_out = app_activities(&gate)
        .await
        .into_iter()
        .find(|activity| activity["to_capacity"] == 3)
        .unwrap_or_default();
    let cause = scale_out["cause"].as_str().unwrap_or_default();
    assert!(
        cause.contains("queue-10") && cause.contains(r#"queue_depth{queue="jobs"}"#),
        "{scale_out}"
    );
    let metrics = metrics_text(&gate).await;
    assert_eq!(
        metric_sum(
            &metrics,
            "scalegate_scaling_policy_metric",
            &[("service", "app"), ("policy", "queue-10")]
        ),
        30.0
    );
    // The queue empties: back to the minimum.
    endpoint.set(0);
    wait_for_scaled(&gate, 1, "scaled in to 1", Duration::from_secs(90)).await;
}
