//! Tasks and their lifecycle, named as ECS names them.

use std::fmt;
use std::net::SocketAddr;
use std::time::SystemTime;

use crate::service::TaskDefinitionRevision;

/// A task's ID: unique for the life of the scalegate process (and, on Docker, a container label
/// so that a restarted scalegate can adopt its containers).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub String);

impl TaskId {
    /// A fresh ID in ECS's shape (32 lowercase hex digits), random so that IDs do not repeat
    /// across scalegate restarts and log files of different runs never collide.
    pub fn random() -> TaskId {
        TaskId(format!("{:032x}", fastrand::u128(..)))
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// ECS task lifecycle states, in lifecycle order (the derived `Ord` is that order).
///
/// Start: `PROVISIONING → PENDING → ACTIVATING` (target-group and Cloud Map registration) `→
/// RUNNING`. Stop: `RUNNING → DEACTIVATING` (deregistration and draining) `→ STOPPING`
/// (SIGTERM … stop timeout … SIGKILL) `→ DEPROVISIONING → STOPPED`. A task only moves forward,
/// though it may skip states (a task that fails to start goes from `PENDING` to `STOPPED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaskState {
    /// Resources (port, log stream) are being set up.
    Provisioning,
    /// The process or container is being started.
    Pending,
    /// Started; registering with target groups and the discovery registry.
    Activating,
    /// Registered and serving (once the target group reports it healthy).
    Running,
    /// Deregistered; waiting for draining and the DNS TTL before signalling.
    Deactivating,
    /// Signalled: SIGTERM, then SIGKILL after the stop timeout.
    Stopping,
    /// Exited; releasing resources.
    Deprovisioning,
    /// Gone; kept for a while so that its stop reason can be read.
    Stopped,
}

impl TaskState {
    /// Every state, in lifecycle order.
    pub const ALL: [TaskState; 8] = [
        TaskState::Provisioning,
        TaskState::Pending,
        TaskState::Activating,
        TaskState::Running,
        TaskState::Deactivating,
        TaskState::Stopping,
        TaskState::Deprovisioning,
        TaskState::Stopped,
    ];

    /// The name ECS uses (`lastStatus`).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Provisioning => "PROVISIONING",
            TaskState::Pending => "PENDING",
            TaskState::Activating => "ACTIVATING",
            TaskState::Running => "RUNNING",
            TaskState::Deactivating => "DEACTIVATING",
            TaskState::Stopping => "STOPPING",
            TaskState::Deprovisioning => "DEPROVISIONING",
            TaskState::Stopped => "STOPPED",
        }
    }

    /// Whether a task may move from `self` to `next`: forward only, skipping allowed.
    pub fn can_transition_to(self, next: TaskState) -> bool {
        next > self
    }

    /// Whether the task is on its way out (or gone): `DEACTIVATING` and later.
    pub fn is_stopping(self) -> bool {
        self >= TaskState::Deactivating
    }

    /// Whether the task counts against the deployment's `maximumPercent` ceiling: ECS counts
    /// tasks in `PENDING` and `RUNNING` (and, per the developer guide, `STOPPING`), so a
    /// replacement is not started while the task it replaces still holds resources.
    pub fn counts_toward_maximum(self) -> bool {
        !matches!(self, TaskState::Stopped)
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a task stopped, in words a user can act on, and the ECS `stopCode` it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// Removed by a scale-in; `rule` says how it was chosen (e.g. "newest task", "unhealthy
    /// first"), as the issue asks scale-in to explain itself.
    ScaleIn {
        /// The selection rule that picked this task.
        rule: String,
    },
    /// Replaced by a task of a newer task definition revision during a deployment.
    DeploymentReplaced,
    /// The target group reported it unhealthy after its grace period; a replacement was started
    /// first ("Task failed ELB health checks").
    FailedHealthChecks,
    /// The process or container exited by itself.
    EssentialContainerExited {
        /// Exit code, when it exited rather than being killed by a signal.
        exit_code: Option<i32>,
    },
    /// It never reached `RUNNING` (command not found, image absent, port in use).
    FailedToStart(String),
    /// Stopped by a user through the admin API.
    UserInitiated,
    /// scalegate is shutting down and stops its tasks gracefully.
    SchedulerShutdown,
}

impl StopReason {
    /// The ECS `stopCode` for this reason.
    pub fn stop_code(&self) -> &'static str {
        match self {
            StopReason::ScaleIn { .. }
            | StopReason::DeploymentReplaced
            | StopReason::FailedHealthChecks
            | StopReason::SchedulerShutdown => "ServiceSchedulerInitiated",
            StopReason::EssentialContainerExited { .. } => "EssentialContainerExited",
            StopReason::FailedToStart(_) => "TaskFailedToStart",
            StopReason::UserInitiated => "UserInitiated",
        }
    }
}

/// How a task's process ended: ECS reports a container's `exitCode`; a process killed by a
/// signal has none, so the signal is kept instead (SIGKILL after the stop timeout, the OOM killer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskExit {
    /// It exited with this status.
    Code(i32),
    /// A signal (its number) ended it.
    Signal(i32),
}

impl TaskExit {
    /// The exit code, when it exited rather than being killed.
    pub fn code(self) -> Option<i32> {
        match self {
            TaskExit::Code(code) => Some(code),
            TaskExit::Signal(_) => None,
        }
    }

    /// Whether it exited with status 0.
    pub fn success(self) -> bool {
        self == TaskExit::Code(0)
    }
}

impl fmt::Display for TaskExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskExit::Code(code) => write!(f, "exit code {code}"),
            TaskExit::Signal(signal) => write!(f, "killed by signal {signal}"),
        }
    }
}

/// A task as a backend reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// The task's ID.
    pub id: TaskId,
    /// The service that owns it.
    pub service: String,
    /// The task definition revision it runs.
    pub revision: TaskDefinitionRevision,
    /// Where it currently is in its lifecycle (`lastStatus`).
    pub state: TaskState,
    /// Where the scheduler wants it (`desiredStatus`: `RUNNING` or `STOPPED`).
    pub desired_state: TaskState,
    /// The address its container port is reachable at, once known.
    pub address: Option<SocketAddr>,
    /// When it was created; grace periods and scale-in order count from here.
    pub created_at: SystemTime,
    /// Why it stopped, once it is stopping.
    pub stop_reason: Option<StopReason>,
    /// The process ID of the task's process-group leader (local backend), so that a user can
    /// find it with `ps` and signal the whole task with `kill -- -PID`.
    pub pid: Option<u32>,
    /// How the process ended, once it has (`containers[].exitCode` in ECS).
    pub exit: Option<TaskExit>,
    /// When it reached `STOPPED` (ECS `stoppedAt`).
    pub stopped_at: Option<SystemTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_ordered_as_the_lifecycle() {
        let mut shuffled = TaskState::ALL;
        shuffled.reverse();
        shuffled.sort();
        assert_eq!(shuffled, TaskState::ALL);
        assert!(TaskState::Provisioning < TaskState::Running);
        assert!(TaskState::Running < TaskState::Deactivating);
    }

    #[test]
    fn transitions_only_move_forward() {
        assert!(TaskState::Pending.can_transition_to(TaskState::Activating));
        assert!(TaskState::Pending.can_transition_to(TaskState::Stopped));
        assert!(!TaskState::Running.can_transition_to(TaskState::Pending));
        assert!(!TaskState::Running.can_transition_to(TaskState::Running));
    }

    #[test]
    fn stopping_states_and_maximum_count() {
        assert!(!TaskState::Running.is_stopping());
        assert!(TaskState::Deactivating.is_stopping());
        assert!(TaskState::Stopping.counts_toward_maximum());
        assert!(!TaskState::Stopped.counts_toward_maximum());
    }

    #[test]
    fn random_ids_look_like_ecs_task_ids() {
        let id = TaskId::random();
        assert_eq!(id.0.len(), 32);
        assert!(id.0.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, TaskId::random());
    }

    #[test]
    fn exits_describe_themselves() {
        assert_eq!(TaskExit::Code(3).to_string(), "exit code 3");
        assert_eq!(TaskExit::Signal(9).to_string(), "killed by signal 9");
        assert_eq!(TaskExit::Signal(9).code(), None);
        assert!(TaskExit::Code(0).success());
        assert!(!TaskExit::Code(1).success());
    }

    #[test]
    fn names_and_stop_codes_match_ecs() {
        assert_eq!(TaskState::Deprovisioning.to_string(), "DEPROVISIONING");
        assert_eq!(
            StopReason::FailedToStart("no such file".into()).stop_code(),
            "TaskFailedToStart"
        );
        assert_eq!(
            StopReason::ScaleIn {
                rule: "newest".into()
            }
            .stop_code(),
            "ServiceSchedulerInitiated"
        );
    }
}
