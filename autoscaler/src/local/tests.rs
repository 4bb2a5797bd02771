//! The local runtime against real processes (`sh`, `sleep`), with the direct launcher; the
//! supervisor is tested end to end in `tests/local_supervisor.rs`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::*;
use crate::service::{ContainerPort, TaskDefinitionRevision};

/// Generous: the machine may be busy compiling.
const DEADLINE: Duration = Duration::from_secs(20);

fn runtime(dir: &Path) -> LocalRuntime {
    LocalRuntime::new(LocalRuntimeConfig::new(dir.join("logs")))
}

fn sh(script: &str) -> TaskDefinition {
    TaskDefinition {
        revision: TaskDefinitionRevision {
            family: "web".into(),
            revision: 3,
        },
        command: "sh".into(),
        args: vec!["-c".into(), script.into()],
        env: BTreeMap::new(),
        working_dir: None,
        cpu_units: 1024,
        memory_mib: 256,
        container_port: ContainerPort::Dynamic,
        stop_timeout: Duration::from_secs(30),
    }
}

async fn start(runtime: &LocalRuntime, definition: &TaskDefinition) -> Task {
    let port = runtime.allocate_port().unwrap();
    runtime
        .start("web", definition, TaskId::random(), port)
        .await
        .unwrap()
}

/// Polls `check` until it returns `Some`, failing the test at the deadline.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn log_of(runtime: &LocalRuntime, task: &Task) -> String {
    let path = log_file_path(&runtime.config().log_dir, &task.service, &task.id.0);
    std::fs::read_to_string(path).unwrap_or_default()
}

async fn log_contains(runtime: &LocalRuntime, task: &Task, text: &str) -> String {
    eventually(&format!("`{text}` in the log"), || async {
        let log = log_of(runtime, task);
        log.contains(text).then_some(log)
    })
    .await
}

async fn next_exit(events: &mut broadcast::Receiver<TaskEvent>, id: &TaskId) -> TaskEvent {
    tokio::time::timeout(DEADLINE, async {
        loop {
            let event = events.recv().await.expect("event channel open");
            let TaskEvent::Exited { id: exited, .. } = &event;
            if exited == id {
                return event;
            }
        }
    })
    .await
    .expect("the exit is reported")
}

/// Members of a process group, from `/proc`.
fn group_members(pgid: u32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|line| usage::parse_stat(&line))
                .is_some_and(|stat| stat.pgrp == pgid as i32)
        })
        .collect()
}

/// Gone, or a zombie nobody has reaped yet (PID 1 of a container may never reap).
fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(line) => line
            .rfind(')')
            .and_then(|end| line[end + 1..].split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

async fn all_dead(pids: &[i32]) {
    eventually("every process of the group to die", || async {
        pids.iter().all(|&pid| is_dead(pid)).then_some(())
    })
    .await
}

#[tokio::test]
async fn the_task_sees_its_port_metadata_environment_and_working_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LocalRuntimeConfig::new(dir.path().join("logs"));
    config.metadata_base_url = Some("http://127.0.0.1:9901/v4/".into());
    let runtime = LocalRuntime::new(config);
    let workdir = dir.path().join("work");
    std::fs::create_dir(&workdir).unwrap();
    let mut definition = sh(
        "echo \"port=$PORT id=$SCALEGATE_TASK_ID service=$SCALEGATE_SERVICE \
         definition=$SCALEGATE_TASK_DEFINITION metadata=$ECS_CONTAINER_METADATA_URI_V4 \
         custom=$CUSTOM pwd=$(pwd)\"; read line; echo \"stdin=[$line]\"",
    );
    definition
        .env
        .insert("CUSTOM".into(), "from-definition".into());
    definition.env.insert("PORT".into(), "1".into());
    definition.working_dir = Some(workdir.clone());
    let mut events = runtime.subscribe();
    let port = runtime.allocate_port().unwrap();
    let id = TaskId::random();

    let task = runtime
        .start("web", &definition, id.clone(), port)
        .await
        .unwrap();
    assert_eq!(task.state, TaskState::Pending);
    assert_eq!(task.desired_state, TaskState::Running);
    assert!(task.pid.is_some());
    assert_eq!(task.address, Some(SocketAddr::from(([127, 0, 0, 1], port))));
    assert_eq!(task.revision.to_string(), "web:3");

    next_exit(&mut events, &id).await;
    let log = log_contains(&runtime, &task, "stdin=").await;
    let expected = format!(
        "stdout port={port} id={id} service=web definition=web:3 \
         metadata=http://127.0.0.1:9901/v4/{id} custom=from-definition pwd={}",
        workdir.display()
    );
    assert!(log.contains(&expected), "{expected}\nnot in:\n{log}");
    assert!(
        log.contains("stdout stdin=[]"),
        "stdin is /dev/null:\n{log}"
    );
}

/// Records every event's fields.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<HashMap<String, String>>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Captured {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _context: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Fields(HashMap<String, String>);
        impl tracing::field::Visit for Fields {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.0.insert(field.name().into(), value.into());
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
                self.0.insert(field.name().into(), format!("{value:?}"));
            }
        }
        let mut fields = Fields(HashMap::new());
        event.record(&mut fields);
        fields
            .0
            .insert("target".into(), event.metadata().target().into());
        self.0.lock().unwrap().push(fields.0);
    }
}

#[tokio::test]
async fn output_lines_reach_tracing_and_the_log_file_with_the_task_id() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let captured = Captured::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(captured.clone()));
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let mut events = runtime.subscribe();
    let task = start(&runtime, &sh("echo to-stdout; echo to-stderr >&2")).await;
    next_exit(&mut events, &task.id).await;

    let log = log_contains(&runtime, &task, "stopped (").await;
    let lines: Vec<&str> = log.lines().collect();
    // `<timestamp> <stream> <text>`, the runtime's own notes first and last.
    for (line, stream, text) in [
        (lines.first().unwrap(), "scalegate", "started web:3 \"sh\""),
        (
            lines.last().unwrap(),
            "scalegate",
            "stopped (EssentialContainerExited): exit code 0",
        ),
    ] {
        let mut parts = line.splitn(3, ' ');
        let timestamp = parts.next().unwrap();
        assert!(timestamp.ends_with('Z') && timestamp.len() == 24, "{line}");
        assert_eq!(parts.next(), Some(stream), "{line}");
        assert!(parts.next().unwrap().starts_with(text), "{line}");
    }
    assert!(log.contains(" stdout to-stdout\n"), "{log}");
    assert!(log.contains(" stderr to-stderr\n"), "{log}");

    let events = captured.0.lock().unwrap().clone();
    for (stream, text) in [("stdout", "to-stdout"), ("stderr", "to-stderr")] {
        assert!(
            events.iter().any(|event| {
                event.get("target").map(String::as_str) == Some(TASK_OUTPUT_TARGET)
                    && event.get("task_id") == Some(&task.id.0)
                    && event.get("service").map(String::as_str) == Some("web")
                    && event.get("stream").map(String::as_str) == Some(stream)
                    && event.get("message").map(String::as_str) == Some(text)
            }),
            "no {stream} event for {text}: {events:#?}"
        );
    }
}

#[tokio::test]
async fn an_exit_is_reported_with_its_code_and_recorded_on_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let mut events = runtime.subscribe();
    let task = start(&runtime, &sh("exit 3")).await;

    let TaskEvent::Exited {
        exit,
        stop_requested,
        service,
        ..
    } = next_exit(&mut events, &task.id).await;
    assert_eq!(exit, TaskExit::Code(3));
    assert!(!stop_requested);
    assert_eq!(service, "web");

    let stopped = runtime.task(&task.id).unwrap();
    assert_eq!(stopped.state, TaskState::Stopped);
    assert_eq!(stopped.desired_state, TaskState::Stopped);
    assert_eq!(stopped.exit, Some(TaskExit::Code(3)));
    assert_eq!(
        stopped.stop_reason,
        Some(StopReason::EssentialContainerExited { exit_code: Some(3) })
    );
    assert!(stopped.stopped_at.is_some());
    // A stopped task is not measured, and stopping it again just returns it.
    assert!(matches!(
        runtime.usage(&task.id).await,
        Err(BackendError::TaskNotFound(_))
    ));
    let again = runtime
        .stop(&task.id, StopReason::UserInitiated, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(again, stopped);
}

#[tokio::test]
async fn stop_sends_sigterm_and_a_task_that_handles_it_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let mut events = runtime.subscribe();
    let task = start(
        &runtime,
        &sh("trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.05; done"),
    )
    .await;
    log_contains(&runtime, &task, "stdout ready").await;

    let started = Instant::now();
    let reason = StopReason::ScaleIn {
        rule: "newest task".into(),
    };
    let stopped = runtime
        .stop(&task.id, reason.clone(), Duration::from_secs(15))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "no SIGKILL needed"
    );
    assert_eq!(stopped.state, TaskState::Stopped);
    assert_eq!(stopped.exit, Some(TaskExit::Code(0)));
    assert_eq!(stopped.stop_reason, Some(reason));
    let TaskEvent::Exited { stop_requested, .. } = next_exit(&mut events, &task.id).await;
    assert!(stop_requested);
    log_contains(&runtime, &task, "stdout got TERM").await;
    log_contains(
        &runtime,
        &task,
        "stopped (ServiceSchedulerInitiated): exit code 0",
    )
    .await;
}

#[tokio::test]
async fn a_task_ignoring_sigterm_is_killed_after_the_stop_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let task = start(
        &runtime,
        &sh("trap '' TERM; echo ready; while :; do sleep 0.05; done"),
    )
    .await;
    log_contains(&runtime, &task, "stdout ready").await;

    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let stopped = runtime
        .stop(&task.id, StopReason::UserInitiated, timeout)
        .await
        .unwrap();
    assert!(started.elapsed() >= timeout);
    assert_eq!(stopped.exit, Some(TaskExit::Signal(9)));
    assert_eq!(stopped.stop_reason, Some(StopReason::UserInitiated));
    log_contains(&runtime, &task, "killed by signal 9 (SIGKILL)").await;
}

#[tokio::test]
async fn stopping_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let task = start(&runtime, &sh("sleep 1000 & sleep 1000 & echo ready; wait")).await;
    log_contains(&runtime, &task, "stdout ready").await;
    let pid = task.pid.unwrap();
    let members = eventually("three processes in the group", || async {
        let members = group_members(pid);
        (members.len() >= 3).then_some(members)
    })
    .await;

    runtime
        .stop(&task.id, StopReason::UserInitiated, Duration::from_secs(10))
        .await
        .unwrap();
    all_dead(&members).await;
}

#[tokio::test]
async fn processes_left_behind_by_an_exited_task_are_killed() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let mut events = runtime.subscribe();
    let task = start(&runtime, &sh("sleep 1000 & echo \"left=$!\"; exit 0")).await;
    let log = log_contains(&runtime, &task, "stdout left=").await;
    let left: i32 = log
        .split("left=")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .and_then(|pid| pid.trim().parse().ok())
        .unwrap();
    next_exit(&mut events, &task.id).await;
    all_dead(&[left]).await;
}

#[tokio::test]
async fn a_busy_task_uses_about_one_core_and_an_idle_one_none() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let busy = start(&runtime, &sh("while :; do :; done")).await;
    let idle = start(&runtime, &sh("exec sleep 1000")).await;
    // Baselines: the first sample also covers start-up.
    runtime.usage(&busy.id).await.unwrap();
    runtime.usage(&idle.id).await.unwrap();

    // Measurement windows of at least half a second, until the busy loop got its core (the
    // machine may be busy with other work, so a window may show less).
    let busy_percent = eventually("a window with the busy task near one core", || async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let usage = runtime.usage(&busy.id).await.unwrap();
        assert!(usage.cpu_percent <= 200.0, "{usage:?}");
        (usage.cpu_percent >= 30.0).then_some(usage.cpu_percent)
    })
    .await;
    assert!((30.0..=200.0).contains(&busy_percent));

    let idle_usage = runtime.usage(&idle.id).await.unwrap();
    assert!(idle_usage.cpu_percent < 10.0, "{idle_usage:?}");
    assert!(idle_usage.memory_percent > 0.0, "RSS is not zero");
    let busy_usage = runtime.usage(&busy.id).await.unwrap();
    assert!(busy_usage.memory_percent > 0.0);

    for task in [busy, idle] {
        runtime
            .stop(&task.id, StopReason::UserInitiated, Duration::from_secs(5))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn start_failures_are_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let mut missing = sh("true");
    missing.command = "no-such-command-anywhere".into();
    let error = runtime
        .start("web", &missing, TaskId::random(), 1)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, BackendError::StartFailed(message) if message.contains("not found")),
        "{error}"
    );
    let error = runtime
        .start("../etc", &sh("true"), TaskId::random(), 1)
        .await
        .unwrap_err();
    assert!(matches!(error, BackendError::StartFailed(_)), "{error}");

    let task = start(&runtime, &sh("exec sleep 1000")).await;
    let error = runtime
        .start("web", &sh("true"), task.id.clone(), 1)
        .await
        .unwrap_err();
    assert!(matches!(error, BackendError::StartFailed(_)), "{error}");
    assert!(matches!(
        runtime
            .stop(
                &TaskId("nope".into()),
                StopReason::UserInitiated,
                Duration::ZERO
            )
            .await,
        Err(BackendError::TaskNotFound(_))
    ));
    runtime
        .stop(&task.id, StopReason::UserInitiated, Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test]
async fn list_reports_live_and_recently_stopped_tasks_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LocalRuntimeConfig::new(dir.path().join("logs"));
    config.stopped_tasks_kept = 1;
    let runtime = LocalRuntime::new(config);
    let mut events = runtime.subscribe();
    let first = start(&runtime, &sh("exit 0")).await;
    next_exit(&mut events, &first.id).await;
    let second = start(&runtime, &sh("exit 1")).await;
    next_exit(&mut events, &second.id).await;
    let live = start(&runtime, &sh("exec sleep 1000")).await;

    let listed: Vec<(TaskId, TaskState)> = runtime
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|task| (task.id, task.state))
        .collect();
    assert_eq!(
        listed,
        [
            (second.id, TaskState::Stopped),
            (live.id.clone(), TaskState::Pending)
        ],
        "the oldest stopped task is forgotten"
    );
    runtime
        .stop(&live.id, StopReason::UserInitiated, Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test]
async fn concurrent_stops_share_one_sigterm_and_one_result() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let task = start(
        &runtime,
        &sh("trap 'echo TERM; exit 0' TERM; echo ready; while :; do sleep 0.05; done"),
    )
    .await;
    log_contains(&runtime, &task, "stdout ready").await;
    let (first, second) = tokio::join!(
        runtime.stop(&task.id, StopReason::UserInitiated, Duration::from_secs(10)),
        runtime.stop(
            &task.id,
            StopReason::SchedulerShutdown,
            Duration::from_secs(10)
        ),
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first, second);
    assert_eq!(first.stop_reason, Some(StopReason::UserInitiated));
    assert_eq!(log_of(&runtime, &task).matches("stdout TERM").count(), 1);
}

#[tokio::test]
async fn dropping_the_runtime_kills_its_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let task = start(&runtime, &sh("sleep 1000 & echo ready; wait")).await;
    log_contains(&runtime, &task, "stdout ready").await;
    let members = group_members(task.pid.unwrap());
    assert!(members.len() >= 2);
    drop(runtime);
    all_dead(&members).await;
}

#[tokio::test]
async fn a_direct_command_starts_with_a_clean_signal_state() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let mut events = runtime.subscribe();
    let mut definition = sh("");
    definition.command = "cat".into();
    definition.args = vec!["/proc/self/status".into()];
    let task = start(&runtime, &definition).await;
    next_exit(&mut events, &task.id).await;
    let log = log_contains(&runtime, &task, "SigIgn:").await;
    let mask = |name: &str| -> u64 {
        let value = log
            .lines()
            .find_map(|line| line.split_once(&format!("stdout {name}:")).map(|(_, v)| v))
            .unwrap_or_else(|| panic!("{name} not in\n{log}"));
        u64::from_str_radix(value.trim(), 16).unwrap()
    };
    assert_eq!(mask("SigBlk"), 0);
    let sigpipe = 1 << (13 - 1);
    assert_eq!(
        mask("SigIgn") & sigpipe,
        0,
        "Rust ignores SIGPIPE; the task must not"
    );
}
