//! The `task-exec` supervisor end to end, with real processes.
//!
//! The supervisor must be a binary the runtime can start, so this test is its own `main`
//! (`harness = false`): started as `<this test> task-exec ...` it is the supervisor, exactly as
//! `scalegate task-exec ...` is; started as `<this test> parent <dir>` it is a stand-in for
//! scalegate that starts a task and waits to be killed; otherwise it runs the tests below, one
//! after another. Arguments that do not start with `-` filter tests by name.

use std::ffi::OsString;
use std::future::Future;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use scalegate_autoscaler::local::{
    log_file_path, supervisor, Launcher, LocalRuntime, LocalRuntimeConfig, SupervisorArgs,
};
use scalegate_autoscaler::service::{ContainerPort, TaskDefinition, TaskDefinitionRevision};
use scalegate_autoscaler::task::TaskExit;
use scalegate_autoscaler::{StopReason, Task, TaskId, TaskRuntime};

const DEADLINE: Duration = Duration::from_secs(20);

type TestFn = fn() -> Pin<Box<dyn Future<Output = ()>>>;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    match args.next().as_ref().and_then(|arg| arg.to_str()) {
        Some(supervisor::SUBCOMMAND) => match SupervisorArgs::parse(args) {
            Ok(parsed) => supervisor::run(parsed),
            Err(error) => {
                eprintln!("{error}");
                return ExitCode::from(2);
            }
        },
        Some("parent") => return parent(PathBuf::from(args.next().expect("parent <dir>"))),
        _ => {}
    }

    let tests: [(&str, TestFn); 7] = [
        ("exits_pass_through_the_supervisor", || {
            Box::pin(exits_pass_through_the_supervisor())
        }),
        ("stop_reaches_the_command_through_the_supervisor", || {
            Box::pin(stop_reaches_the_command_through_the_supervisor())
        }),
        ("the_command_starts_with_a_clean_signal_state", || {
            Box::pin(the_command_starts_with_a_clean_signal_state())
        }),
        ("killing_scalegate_kills_its_tasks", || {
            Box::pin(killing_scalegate_kills_its_tasks())
        }),
        (
            "a_supervisor_whose_parent_is_gone_does_not_start_the_task",
            || Box::pin(a_supervisor_whose_parent_is_gone_does_not_start_the_task()),
        ),
        ("a_command_that_cannot_run_exits_127", || {
            Box::pin(a_command_that_cannot_run_exits_127())
        }),
        (
            "the_exit_of_the_starting_thread_is_not_the_death_of_scalegate",
            || Box::pin(the_exit_of_the_starting_thread_is_not_the_death_of_scalegate()),
        ),
    ];
    // libtest's command line, as much of it as cargo test and cargo-nextest use:
    // `--list [--format terse] [--ignored]`, `--exact NAME`, name filters.
    let mut filters = Vec::new();
    let (mut list, mut ignored, mut exact) = (false, false, false);
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--list" => list = true,
            "--ignored" => ignored = true,
            "--exact" => exact = true,
            "--format" | "--test-threads" | "--color" => {
                arguments.next();
            }
            other if other.starts_with('-') => {}
            filter => filters.push(filter.to_string()),
        }
    }
    let selected: Vec<_> = tests
        .iter()
        .filter(|(name, _)| {
            filters.is_empty()
                || filters.iter().any(|f| {
                    if exact {
                        name == f
                    } else {
                        name.contains(f.as_str())
                    }
                })
        })
        .collect();
    if list {
        // No test here is ignored.
        if !ignored {
            for (name, _) in &selected {
                println!("{name}: test");
            }
        }
        return ExitCode::SUCCESS;
    }
    println!("\nrunning {} tests", selected.len());
    let mut failed = Vec::new();
    for (name, test) in &selected {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let outcome = std::panic::catch_unwind(|| runtime.block_on(test()));
        drop(runtime);
        println!(
            "test {name} ... {}",
            if outcome.is_ok() { "ok" } else { "FAILED" }
        );
        if outcome.is_err() {
            failed.push(*name);
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        selected.len() - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The launcher for this very binary, as `Launcher::current_executable` is for scalegate.
fn supervised_runtime(dir: &Path) -> LocalRuntime {
    let mut config = LocalRuntimeConfig::new(dir.join("logs"));
    config.launcher = Launcher::current_executable();
    LocalRuntime::new(config)
}

fn definition(command: &str, args: &[&str]) -> TaskDefinition {
    TaskDefinition {
        revision: TaskDefinitionRevision {
            family: "web".into(),
            revision: 1,
        },
        command: command.into(),
        args: args.iter().map(|arg| arg.to_string()).collect(),
        env: Default::default(),
        working_dir: None,
        cpu_units: 1024,
        memory_mib: 256,
        container_port: ContainerPort::Dynamic,
        stop_timeout: Duration::from_secs(30),
    }
}

fn sh(script: &str) -> TaskDefinition {
    definition("sh", &["-c", script])
}

async fn start(runtime: &LocalRuntime, definition: &TaskDefinition) -> Task {
    let port = runtime.allocate_port().unwrap();
    runtime
        .start("web", definition, TaskId::random(), port)
        .await
        .unwrap()
}

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

async fn log_contains(runtime: &LocalRuntime, task: &Task, text: &str) -> String {
    let path = log_file_path(&runtime.config().log_dir, &task.service, &task.id.0);
    eventually(&format!("`{text}` in {}", path.display()), || async {
        let log = std::fs::read_to_string(&path).unwrap_or_default();
        log.contains(text).then_some(log)
    })
    .await
}

async fn stopped(runtime: &LocalRuntime, task: &Task) -> Task {
    eventually("the task to stop", || async {
        runtime.task(&task.id).filter(|task| task.exit.is_some())
    })
    .await
}

fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let line = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &line[line.rfind(')')? + 1..];
    Some(after_name.split_whitespace().map(str::to_string).collect())
}

/// Members of a process group, from `/proc`.
fn group_members(pgid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| stat_fields(pid).is_some_and(|fields| fields[2] == pgid.to_string()))
        .collect()
}

/// Gone, or a zombie nobody reaped (PID 1 of a container may never reap).
fn is_dead(pid: i32) -> bool {
    stat_fields(pid).is_none_or(|fields| fields[0] == "Z" || fields[0] == "X")
}

async fn all_dead(pids: &[i32]) {
    eventually("every process of the group to die", || async {
        pids.iter().all(|&pid| is_dead(pid)).then_some(())
    })
    .await
}

async fn exits_pass_through_the_supervisor() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = supervised_runtime(dir.path());
    let code = start(&runtime, &sh("echo hello; exit 7")).await;
    let signalled = start(&runtime, &sh("kill -TERM $$")).await;
    assert_eq!(stopped(&runtime, &code).await.exit, Some(TaskExit::Code(7)));
    log_contains(&runtime, &code, "stdout hello").await;
    assert_eq!(
        stopped(&runtime, &signalled).await.exit,
        Some(TaskExit::Signal(15)),
        "killed by a signal, reported as that signal"
    );
}

async fn stop_reaches_the_command_through_the_supervisor() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = supervised_runtime(dir.path());
    let polite = start(
        &runtime,
        &sh("trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.05; done"),
    )
    .await;
    let stubborn = start(
        &runtime,
        &sh("trap '' TERM; sleep 1000 & echo ready; while :; do sleep 0.05; done"),
    )
    .await;
    log_contains(&runtime, &polite, "stdout ready").await;
    log_contains(&runtime, &stubborn, "stdout ready").await;
    let stubborn_group = group_members(stubborn.pid.unwrap() as i32);
    assert!(
        stubborn_group.len() >= 3,
        "supervisor, shell and sleep: {stubborn_group:?}"
    );

    let reason = StopReason::SchedulerShutdown;
    let polite = runtime
        .stop(&polite.id, reason.clone(), Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!(polite.exit, Some(TaskExit::Code(0)));
    let started = Instant::now();
    let stubborn_stopped = runtime
        .stop(&stubborn.id, reason, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(stubborn_stopped.exit, Some(TaskExit::Signal(9)));
    all_dead(&stubborn_group).await;
    // The command got exactly one SIGTERM: the supervisor forwards nothing.
    let log = log_contains(&runtime, &stubborn, "stopped (").await;
    assert!(
        !log.contains("task-exec"),
        "the supervisor stayed quiet:\n{log}"
    );
}

async fn the_command_starts_with_a_clean_signal_state() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = supervised_runtime(dir.path());
    let task = start(&runtime, &definition("cat", &["/proc/self/status"])).await;
    assert_eq!(stopped(&runtime, &task).await.exit, Some(TaskExit::Code(0)));
    let log = log_contains(&runtime, &task, "SigIgn:").await;
    let mask = |name: &str| -> u64 {
        let line = log
            .lines()
            .find_map(|line| line.split_once(&format!("stdout {name}:")).map(|(_, v)| v))
            .unwrap_or_else(|| panic!("{name} not in\n{log}"));
        u64::from_str_radix(line.trim(), 16).unwrap()
    };
    assert_eq!(mask("SigBlk"), 0, "the command starts with signals blocked");
    let sigpipe = 1 << (13 - 1);
    assert_eq!(
        mask("SigIgn") & sigpipe,
        0,
        "SIGPIPE is ignored in the command"
    );
}

/// `parent <dir>`: a stand-in for scalegate. Starts one task whose shell has two background
/// children, prints the task's process group, and waits to be killed.
fn parent(dir: PathBuf) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let tasks = supervised_runtime(&dir);
        let task = start(&tasks, &sh("sleep 1000 & sleep 1000 & echo ready; wait")).await;
        log_contains(&tasks, &task, "stdout ready").await;
        println!("group={}", task.pid.unwrap());
        std::future::pending::<()>().await;
    });
    ExitCode::FAILURE
}

async fn killing_scalegate_kills_its_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let mut parent = Command::new(std::env::current_exe().unwrap())
        .arg("parent")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    BufReader::new(parent.stdout.take().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    let group: i32 = first_line
        .trim()
        .strip_prefix("group=")
        .unwrap_or_else(|| panic!("unexpected parent output {first_line:?}"))
        .parse()
        .unwrap();
    let members = group_members(group);
    assert!(
        members.len() >= 4,
        "supervisor, shell, two sleeps: {members:?}"
    );

    parent.kill().unwrap(); // SIGKILL: no cleanup code runs in the parent.
    parent.wait().unwrap();
    all_dead(&members).await;
}

fn supervisor_command(parent_pid: u32, command: &str, args: &[&str]) -> Command {
    let mut child = Command::new(std::env::current_exe().unwrap());
    child.arg(supervisor::SUBCOMMAND).args(
        SupervisorArgs {
            parent_pid,
            command: command.into(),
            args: args.iter().map(OsString::from).collect(),
        }
        .to_args(),
    );
    child
}

async fn a_supervisor_whose_parent_is_gone_does_not_start_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    // Our PID is the parent's, but the supervisor is told to expect PID 1: to it, the scalegate
    // that started it is gone.
    let output = supervisor_command(1, "touch", &[marker.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(supervisor::SUPERVISOR_FAILED));
    assert!(!marker.exists(), "the task must not run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("parent process 1 is gone"), "{stderr}");
}

async fn a_command_that_cannot_run_exits_127() {
    let output = supervisor_command(std::process::id(), "no-such-command-anywhere", &[])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(127));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("scalegate task-exec: cannot run \"no-such-command-anywhere\""),
        "{stderr}"
    );
}

async fn the_exit_of_the_starting_thread_is_not_the_death_of_scalegate() {
    // The parent-death signal fires when the thread that started the supervisor exits. Start
    // it from a thread that ends once the command runs: the task must carry on.
    let mut child = std::thread::spawn(|| {
        let mut child = supervisor_command(
            std::process::id(),
            "sh",
            &["-c", "echo started; sleep 0.5; echo still-here"],
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line, "started\n");
        (child, stdout)
    })
    .join()
    .unwrap();
    let (ref mut process, ref mut stdout) = child;
    let mut rest = String::new();
    std::io::Read::read_to_string(stdout, &mut rest).unwrap();
    let status = process.wait().unwrap();
    assert_eq!(rest, "still-here\n");
    assert_eq!(status.code(), Some(0));
}
