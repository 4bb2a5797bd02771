//! `task-exec`: the small supervisor between scalegate and each task's process, so that a crash
//! of scalegate leaves no task behind.
//!
//! The runtime starts `scalegate task-exec --parent-pid <scalegate's pid> -- <command> <args>`
//! as the leader of a new process group. The supervisor:
//!
//! 1. handles the signals it waits for (so none can kill it unawares);
//! 2. asks the kernel for a parent-death signal (`PR_SET_PDEATHSIG`), then checks that its
//!    parent is still the scalegate that started it: if scalegate died before the request, no
//!    signal would ever come, and the supervisor exits without starting the task;
//! 3. marks itself a child subreaper, so the task's orphaned descendants become its children
//!    and are reaped (a task never leaves zombies behind, even where PID 1 does not reap);
//! 4. starts the command in its process group. Handled signals return to their default action
//!    at `exec`, so the command starts with a clean signal state (a blocked mask, the obvious
//!    alternative to handlers, would be inherited: std's spawn does not reset it, as a test
//!    here found);
//! 5. waits for signals: when its child exits it exits the same way (the same code, or killed by
//!    the same signal), so the runtime sees the task's own exit; on any other signal it checks
//!    its parent, and if scalegate is gone it SIGKILLs the whole process group, itself included.
//!
//! Signals scalegate sends to the group (SIGTERM at stop, SIGKILL after the stop timeout) reach
//! the command directly; the supervisor does not forward anything, so the command never gets a
//! signal twice.
//!
//! Why a supervisor and not `prctl` + `exec` of the command: the parent-death signal only
//! reaches the one process that asked for it. After an exec, a task that forks (`sh -c "a | b"`,
//! a pre-forking server) would lose only its first process when scalegate dies, and the rest
//! would run on as orphans. The supervisor turns the parent-death signal into a kill of the
//! whole group.
//!
//! Limitation: a descendant that leaves the task's process group (`setsid`, a daemonising
//! double fork) is out of reach of the group kill, as it is of the runtime's stop; it is still
//! reparented to the supervisor while that lives, but nothing kills it when scalegate crashes.
//! Making that airtight needs cgroups or PID namespaces (the Docker backend has them).
//!
//! Also a limitation of the parent-death signal itself: it fires when the *thread* that started
//! the supervisor exits. The supervisor therefore never trusts the signal alone; it compares its
//! parent process ID with the one it was given, and a signal from an exiting tokio worker thread
//! is ignored.

use std::convert::Infallible;
use std::ffi::OsString;
use std::process::Command;

use nix::errno::Errno;
use nix::sys::prctl;
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getpgrp, getpid, getppid, setpgid, Pid};
use signal_hook::consts::signal as sig;
use signal_hook::iterator::Signals;

/// The subcommand name the runtime puts before [`SupervisorArgs::to_args`].
pub const SUBCOMMAND: &str = "task-exec";

/// What the supervisor runs and for whom: the part of the command line after `task-exec`,
/// `--parent-pid <pid> -- <command> [args...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorArgs {
    /// The process ID of the scalegate that starts the supervisor; if the supervisor's parent
    /// is not (or no longer) this process, the task must not run.
    pub parent_pid: u32,
    /// The program to run, looked up in `PATH` when it has no `/`.
    pub command: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
}

/// Why a `task-exec` command line is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("usage: task-exec --parent-pid <PID> -- <COMMAND> [ARGS...]: {0}")]
pub struct SupervisorUsageError(String);

impl SupervisorArgs {
    /// The arguments after `task-exec`, in the shape [`SupervisorArgs::parse`] reads (and that
    /// the binary's `clap` definition accepts).
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args = vec![
            OsString::from("--parent-pid"),
            OsString::from(self.parent_pid.to_string()),
            OsString::from("--"),
            self.command.clone(),
        ];
        args.extend(self.args.iter().cloned());
        args
    }

    /// Reads the arguments after `task-exec`.
    pub fn parse(
        args: impl IntoIterator<Item = OsString>,
    ) -> Result<SupervisorArgs, SupervisorUsageError> {
        let mut args = args.into_iter();
        let mut parent_pid = None;
        loop {
            let Some(arg) = args.next() else {
                return Err(SupervisorUsageError("no command".into()));
            };
            match arg.to_str() {
                Some("--") => break,
                Some("--parent-pid") => {
                    let value = args.next().and_then(|v| v.to_str()?.parse::<u32>().ok());
                    parent_pid = Some(value.ok_or_else(|| {
                        SupervisorUsageError("--parent-pid needs a process ID".into())
                    })?);
                }
                _ => return Err(SupervisorUsageError(format!("unexpected argument {arg:?}"))),
            }
        }
        let parent_pid =
            parent_pid.ok_or_else(|| SupervisorUsageError("--parent-pid is required".into()))?;
        let command = args
            .next()
            .ok_or_else(|| SupervisorUsageError("no command after --".into()))?;
        Ok(SupervisorArgs {
            parent_pid,
            command,
            args: args.collect(),
        })
    }
}

/// Exit status when the supervisor itself fails before the command runs (as `env` and
/// `nohup` do): distinct from the shell's 126/127, which it uses for a command that cannot run.
pub const SUPERVISOR_FAILED: i32 = 125;

/// Runs the supervisor; never returns. Call it from `main`'s `task-exec` branch before
/// anything else installs signal handlers (a tokio runtime, for one).
pub fn run(args: SupervisorArgs) -> ! {
    match supervise(&args) {
        Ok(never) => match never {},
        Err(failure) => {
            // stderr is the task's stderr: this lands in the task's log.
            eprintln!("scalegate task-exec: {}", failure.message);
            std::process::exit(failure.exit_code)
        }
    }
}

struct Failure {
    message: String,
    exit_code: i32,
}

fn failed(what: &str, errno: Errno) -> Failure {
    Failure {
        message: format!("{what}: {errno}"),
        exit_code: SUPERVISOR_FAILED,
    }
}

/// The signals the supervisor waits for instead of being killed by: its child's exit, the
/// parent-death signal, and whatever is sent to the group for the task.
const WAITED_SIGNALS: [i32; 9] = [
    sig::SIGCHLD,
    sig::SIGTERM,
    sig::SIGINT,
    sig::SIGHUP,
    sig::SIGQUIT,
    sig::SIGUSR1,
    sig::SIGUSR2,
    sig::SIGALRM,
    sig::SIGPIPE,
];

/// The parent-death signal. Any waited signal makes the supervisor check its parent; SIGTERM
/// is simply one it already waits for.
const PARENT_DEATH_SIGNAL: Signal = Signal::SIGTERM;

fn supervise(args: &SupervisorArgs) -> Result<Infallible, Failure> {
    let mut signals = Signals::new(WAITED_SIGNALS).map_err(|error| Failure {
        message: format!("cannot handle signals: {error}"),
        exit_code: SUPERVISOR_FAILED,
    })?;

    // The runtime starts us as a group leader; make sure of it when started by hand.
    let me = getpid();
    if getpgrp() != me {
        setpgid(me, me).map_err(|e| failed("cannot create a process group", e))?;
    }

    prctl::set_pdeathsig(PARENT_DEATH_SIGNAL)
        .map_err(|e| failed("cannot ask for a parent-death signal", e))?;
    // The race the parent-death signal cannot cover: the parent died before we asked.
    if !parent_alive(args.parent_pid) {
        return Err(Failure {
            message: format!(
                "parent process {} is gone; not starting the task",
                args.parent_pid
            ),
            exit_code: SUPERVISOR_FAILED,
        });
    }
    prctl::set_child_subreaper(true).map_err(|e| failed("cannot become a subreaper", e))?;

    let child = Command::new(&args.command)
        .args(&args.args)
        .spawn()
        .map_err(|error| Failure {
            message: format!("cannot run {:?}: {error}", args.command),
            exit_code: if error.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            },
        })?;
    let child = Pid::from_raw(child.id() as i32);

    for signal in signals.forever() {
        if signal == sig::SIGCHLD {
            if let Some(status) = reap(child) {
                exit_like(status);
            }
        } else if !parent_alive(args.parent_pid) {
            // scalegate is gone: take the task with us. This ends the supervisor too.
            let _ = killpg(me, Signal::SIGKILL);
            std::process::exit(SUPERVISOR_FAILED);
        }
    }
    Err(Failure {
        message: "signal delivery stopped".into(),
        exit_code: SUPERVISOR_FAILED,
    })
}

fn parent_alive(expected: u32) -> bool {
    getppid().as_raw() == expected as i32
}

/// Reaps every exited child (the command and adopted orphans); returns the command's status
/// once it has exited.
fn reap(command: Pid) -> Option<WaitStatus> {
    let mut command_status = None;
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return command_status,
            Ok(status) => {
                if status.pid() == Some(command)
                    && matches!(status, WaitStatus::Exited(..) | WaitStatus::Signaled(..))
                {
                    command_status = Some(status);
                }
            }
        }
    }
}

/// Ends the supervisor the way its command ended, so that the runtime reads the command's exit.
fn exit_like(status: WaitStatus) -> ! {
    match status {
        WaitStatus::Exited(_, code) => std::process::exit(code),
        WaitStatus::Signaled(_, signal, _) => {
            // Die of the same signal, with its default action. No core file of the supervisor
            // for a command that dumped core.
            let _ = prctl::set_dumpable(false);
            let _ = signal_hook::low_level::emulate_default_handler(signal as i32);
            // Still alive: the signal does not terminate by default. Report it as shells do.
            std::process::exit(128 + signal as i32)
        }
        _ => std::process::exit(SUPERVISOR_FAILED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn arguments_round_trip() {
        let args = SupervisorArgs {
            parent_pid: 42,
            command: "sh".into(),
            args: os(&["-c", "echo --parent-pid -- hi"]),
        };
        assert_eq!(
            args.to_args(),
            os(&[
                "--parent-pid",
                "42",
                "--",
                "sh",
                "-c",
                "echo --parent-pid -- hi"
            ])
        );
        assert_eq!(SupervisorArgs::parse(args.to_args()).unwrap(), args);
    }

    #[test]
    fn malformed_arguments_are_refused() {
        for bad in [
            &[][..],
            &["--parent-pid", "1"],
            &["--parent-pid", "1", "--"],
            &["--", "sh"],
            &["--parent-pid", "x", "--", "sh"],
            &["--verbose", "--", "sh"],
        ] {
            assert!(
                SupervisorArgs::parse(os(bad)).is_err(),
                "{bad:?} should be refused"
            );
        }
    }
}
