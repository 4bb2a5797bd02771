//! `scalegate task-exec`, the supervisor local tasks run under: a task outlives neither a
//! graceful nor a killed scalegate. Needs `main.rs` to dispatch the hidden `task-exec`
//! subcommand to `task_exec::run`.

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    binary, poll_until, process_group_members as group_members, process_is_dead as is_dead,
};

/// A `sh` stands in for scalegate: it starts `scalegate task-exec` for a task with two
/// background children, reports the supervisor's PID, and is then SIGKILLed. The supervisor
/// must take the whole task down with it.
#[test]
fn killing_the_parent_kills_the_task_group() {
    let script = format!(
        "'{}' task-exec --parent-pid $$ -- sh -c 'sleep 1000 & sleep 1000 & wait' & \
         echo $!; wait",
        binary()
    );
    let mut parent = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(parent.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let supervisor: i32 = line.trim().parse().unwrap();
    let mut members = Vec::new();
    assert!(
        poll_until(Duration::from_secs(20), || {
            members = group_members(supervisor);
            members.len() >= 4
        }),
        "supervisor, shell and two sleeps in one group: {members:?}"
    );

    parent.kill().unwrap();
    parent.wait().unwrap();
    assert!(
        poll_until(Duration::from_secs(20), || members
            .iter()
            .all(|&pid| is_dead(pid))),
        "survivors: {:?}",
        members
            .iter()
            .filter(|&&pid| !is_dead(pid))
            .collect::<Vec<_>>()
    );
}

#[test]
fn the_command_exit_is_the_supervisor_exit() {
    let status = Command::new(binary())
        .args(["task-exec", "--parent-pid"])
        .arg(std::process::id().to_string())
        .args(["--", "sh", "-c", "exit 7"])
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(7));
}

#[test]
fn task_exec_is_hidden_from_help() {
    let output = Command::new(binary()).arg("--help").output().unwrap();
    assert!(!String::from_utf8_lossy(&output.stdout).contains("task-exec"));
}
