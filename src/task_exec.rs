//! `scalegate task-exec --parent-pid <PID> -- <command> [args...]`: the hidden subcommand every
//! local task runs under.
//!
//! The local task runtime starts each task as this supervisor rather than as the command itself,
//! so that a crash of scalegate (SIGKILL, OOM kill, panic=abort) takes the task's whole process
//! group with it instead of leaving orphans behind. The work, and the reasons for it, are in
//! `scalegate_autoscaler::local::supervisor`; this is the binary's doorway to it, kept apart from
//! the runtime so that the argument format is defined in one place (`SupervisorArgs`).

use std::ffi::OsString;

use scalegate_autoscaler::local::supervisor::{self, SupervisorArgs};

/// Supervises `command` (program first, then its arguments) on behalf of the scalegate whose
/// process ID is `parent_pid`; exits as the command exits and never returns. Call it before
/// logging or a tokio runtime is set up: the supervisor installs its own signal handlers.
pub fn run(parent_pid: u32, command: Vec<OsString>) -> ! {
    let mut command = command.into_iter();
    let Some(program) = command.next() else {
        eprintln!("scalegate task-exec: no command after --");
        std::process::exit(supervisor::SUPERVISOR_FAILED);
    };
    supervisor::run(SupervisorArgs {
        parent_pid,
        command: program,
        args: command.collect(),
    })
}
