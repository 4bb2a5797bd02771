//! Starting a task's process and signalling its process group.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::supervisor::SupervisorArgs;
use crate::service::TaskDefinition;
use crate::task::{TaskExit, TaskId};

/// How the runtime starts a task's command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launcher {
    /// Through the `task-exec` supervisor ([`super::supervisor`]): `<program> <args...>
    /// --parent-pid <pid> -- <command> <command args>`. A crash of scalegate then kills the
    /// task's whole process group. What `scalegate run` uses.
    Supervisor {
        /// The executable that understands `task-exec` (scalegate itself).
        program: PathBuf,
        /// What comes before the supervisor's own arguments, normally `["task-exec"]`.
        args: Vec<OsString>,
    },
    /// The command itself, as the leader of its own process group. Stopping works the same,
    /// but if scalegate is killed (SIGKILL, a crash) the task keeps running. For embedding and
    /// tests, where no executable understands `task-exec`.
    Direct,
}

impl Launcher {
    /// The supervisor in the running executable: `/proc/self/exe task-exec`. Through
    /// `/proc/self/exe` rather than the path, so that tasks still start after the binary on disk
    /// was replaced (a `cargo build` while scalegate runs): the running image is what is
    /// executed.
    pub fn current_executable() -> Launcher {
        Launcher::Supervisor {
            program: PathBuf::from("/proc/self/exe"),
            args: vec![OsString::from(super::supervisor::SUBCOMMAND)],
        }
    }

    pub(crate) fn is_supervised(&self) -> bool {
        matches!(self, Launcher::Supervisor { .. })
    }
}

/// Where ECS tells a container its task metadata endpoint (task metadata endpoint v4).
pub(crate) const METADATA_VARIABLE: &str = "ECS_CONTAINER_METADATA_URI_V4";

/// The environment scalegate adds to a task's, after the task definition's own (so these win),
/// like the variables the ECS agent injects.
#[derive(Debug, Clone)]
pub(crate) struct TaskMetadata<'a> {
    pub id: &'a TaskId,
    pub service: &'a str,
    pub port: u16,
    pub metadata_url: Option<String>,
}

/// The command that starts a task: stdin from `/dev/null`, stdout and stderr piped, a new
/// process group, the definition's environment and working directory plus scalegate's metadata.
/// The rest of scalegate's own environment is inherited (`PATH`, `HOME`): a local task is a
/// local program.
pub(crate) fn task_command(
    launcher: &Launcher,
    definition: &TaskDefinition,
    metadata: &TaskMetadata<'_>,
) -> tokio::process::Command {
    let mut command = match launcher {
        Launcher::Direct => {
            let mut command = tokio::process::Command::new(&definition.command);
            command.args(&definition.args);
            command
        }
        Launcher::Supervisor { program, args } => {
            let mut command = tokio::process::Command::new(program);
            // `ps` shows `scalegate task-exec ...`, not `/proc/self/exe task-exec ...`.
            if let Some(name) = std::env::current_exe()
                .ok()
                .and_then(|exe| exe.file_name().map(OsStr::to_os_string))
            {
                command.arg0(name);
            }
            command.args(args).args(
                SupervisorArgs {
                    parent_pid: std::process::id(),
                    command: definition.command.clone().into(),
                    args: definition.args.iter().map(OsString::from).collect(),
                }
                .to_args(),
            );
            command
        }
    };
    command
        .envs(&definition.env)
        .env("PORT", metadata.port.to_string())
        .env("SCALEGATE_TASK_ID", &metadata.id.0)
        .env("SCALEGATE_SERVICE", metadata.service)
        .env("SCALEGATE_TASK_DEFINITION", definition.revision.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // Dropping the child must not kill only its leader (the supervisor), which would orphan
        // the command: the runtime kills whole groups itself.
        .kill_on_drop(false);
    match &metadata.metadata_url {
        Some(url) => {
            command.env(METADATA_VARIABLE, url);
        }
        // Not scalegate's own: if scalegate itself runs on ECS, its container's URL must not
        // reach the task as if it were the task's.
        None if !definition.env.contains_key(METADATA_VARIABLE) => {
            command.env_remove(METADATA_VARIABLE);
        }
        None => {}
    }
    if let Some(dir) = &definition.working_dir {
        command.current_dir(dir);
    }
    command
}

/// Checks before starting that the command can be executed, so that a typo is reported as a
/// start failure with a clear message rather than as a task that exits with status 127 (the
/// supervisor would only find out after the runtime started it). Looks the command up the way
/// `execvp` will: in the task's `PATH` (its definition's, else scalegate's) when it has no `/`,
/// relative to the working directory when it does.
pub(crate) fn check_command(definition: &TaskDefinition) -> Result<(), String> {
    let command = Path::new(&definition.command);
    if definition.command.is_empty() {
        return Err("the command is empty".to_string());
    }
    if definition.command.contains('/') {
        let path = match &definition.working_dir {
            Some(dir) if command.is_relative() => dir.join(command),
            _ => command.to_path_buf(),
        };
        return if is_executable(&path) {
            Ok(())
        } else {
            Err(format!(
                "command `{}` is not an executable file",
                path.display()
            ))
        };
    }
    let path_variable = definition
        .env
        .get("PATH")
        .map(OsString::from)
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default();
    for dir in std::env::split_paths(&path_variable) {
        // An empty PATH entry means the current directory.
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let dir = match &definition.working_dir {
            Some(working_dir) if dir.is_relative() => working_dir.join(dir),
            _ => dir,
        };
        if is_executable(&dir.join(command)) {
            return Ok(());
        }
    }
    Err(format!(
        "command `{}` not found in PATH",
        definition.command
    ))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Sends `signal` to every process in the group. `Ok(false)` when the group no longer exists.
pub(crate) fn signal_group(pgid: Pid, signal: Signal) -> Result<bool, Errno> {
    match killpg(pgid, signal) {
        Ok(()) => Ok(true),
        Err(Errno::ESRCH) => Ok(false),
        Err(errno) => Err(errno),
    }
}

/// A process's exit as a task's.
pub(crate) fn task_exit(status: ExitStatus) -> TaskExit {
    match (status.code(), status.signal()) {
        (Some(code), _) => TaskExit::Code(code),
        (None, Some(signal)) => TaskExit::Signal(signal),
        // Stopped/continued statuses are never returned by `wait`.
        (None, None) => TaskExit::Code(-1),
    }
}

/// A signal number with its name, for messages: `15 (SIGTERM)`.
pub(crate) fn describe_exit(exit: TaskExit) -> String {
    match exit {
        TaskExit::Code(code) => format!("exit code {code}"),
        TaskExit::Signal(number) => match Signal::try_from(number) {
            Ok(signal) => format!("killed by signal {number} ({})", signal.as_str()),
            Err(_) => format!("killed by signal {number}"),
        },
    }
}

/// Whether a name is safe as one path component of the log directory (service names and task
/// IDs become `<log_dir>/<service>/<task-id>.log`).
pub(crate) fn is_safe_path_component(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{ContainerPort, TaskDefinitionRevision};
    use std::collections::BTreeMap;
    use std::time::Duration;

    pub(crate) fn definition(command: &str) -> TaskDefinition {
        TaskDefinition {
            revision: TaskDefinitionRevision {
                family: "web".into(),
                revision: 1,
            },
            command: command.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            working_dir: None,
            cpu_units: 1024,
            memory_mib: 512,
            container_port: ContainerPort::Dynamic,
            stop_timeout: Duration::from_secs(30),
        }
    }

    #[test]
    fn finds_commands_in_path_and_by_path() {
        assert_eq!(check_command(&definition("sh")), Ok(()));
        assert_eq!(check_command(&definition("/bin/sh")), Ok(()));
        let missing = check_command(&definition("no-such-command-here")).unwrap_err();
        assert!(missing.contains("not found in PATH"), "{missing}");
        let dir = tempfile::tempdir().unwrap();
        let not_executable = dir.path().join("data.txt");
        std::fs::write(&not_executable, "x").unwrap();
        std::fs::set_permissions(&not_executable, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = check_command(&definition(not_executable.to_str().unwrap())).unwrap_err();
        assert!(refused.contains("not an executable file"), "{refused}");
        assert!(check_command(&definition(dir.path().to_str().unwrap())).is_err());
        assert!(check_command(&definition("")).is_err());
    }

    #[test]
    fn the_task_path_decides_and_relative_commands_follow_the_working_dir() {
        let mut with_empty_path = definition("sh");
        with_empty_path
            .env
            .insert("PATH".into(), "/nonexistent".into());
        assert!(check_command(&with_empty_path).is_err());

        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("serve.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut relative = definition("./serve.sh");
        assert!(check_command(&relative).is_err());
        relative.working_dir = Some(dir.path().to_path_buf());
        assert_eq!(check_command(&relative), Ok(()));
    }

    #[test]
    fn exits_are_described_with_signal_names() {
        assert_eq!(describe_exit(TaskExit::Code(2)), "exit code 2");
        assert_eq!(
            describe_exit(TaskExit::Signal(15)),
            "killed by signal 15 (SIGTERM)"
        );
    }

    #[test]
    fn path_components_are_checked() {
        assert!(is_safe_path_component("web-1_a.b"));
        for bad in ["", ".", "..", "a/b", "a b", "é"] {
            assert!(!is_safe_path_component(bad), "{bad:?}");
        }
    }
}
