//! Where tasks run: the interface the autoscaler drives, and the one scalegate's scheduler drives.
//!
//! Two levels, because AWS and scalegate split the work differently:
//!
//! - [`Backend`] is service-level, what the autoscaler talks to: set a desired count, read the
//!   counts back, read utilisation. On AWS (issue 8) it is UpdateService / DescribeServices /
//!   CloudWatch, and ECS itself starts and stops tasks.
//! - [`TaskRuntime`] is task-level: start one task, stop one task, measure one task. For local
//!   processes (issue 5) and Docker (issue 7) scalegate is the ECS service scheduler, and that
//!   scheduler is a [`Backend`] built over a [`TaskRuntime`]. Keeping the scheduler out of the
//!   runtimes means deployments, replacement, draining and scale-in order are written once.

use std::future::Future;
use std::time::{Duration, SystemTime};

use tokio::sync::broadcast;

use crate::service::TaskDefinition;
use crate::task::{StopReason, Task, TaskExit, TaskId};

/// Why a backend call failed. A failure becomes a `Failed` scaling activity with this message
/// in its cause; it never stops the autoscaler.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend does not know the service (ECS `ServiceNotFoundException`).
    #[error("service `{0}` not found")]
    ServiceNotFound(String),
    /// The backend does not know the task.
    #[error("task `{0}` not found")]
    TaskNotFound(TaskId),
    /// The backend is unreachable or refused access (Docker socket missing, AWS access denied).
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// The call may succeed if repeated later (AWS throttling); callers back off and retry.
    #[error("throttled: {0}")]
    Throttled(String),
    /// A task could not be started (command not found, image absent, port in use).
    #[error("cannot start task: {0}")]
    StartFailed(String),
    /// Anything else the backend reported, verbatim.
    #[error("{0}")]
    Other(String),
}

impl BackendError {
    /// Whether retrying with backoff may help.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            BackendError::Throttled(_) | BackendError::Unavailable(_)
        )
    }
}

/// A service's counts as the backend sees them (DescribeServices).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceStatus {
    /// The desired count the backend is working towards.
    pub desired_count: u32,
    /// Tasks in `RUNNING`; target tracking starts from this, not from the desired count.
    pub running_count: u32,
    /// Tasks in `PROVISIONING`, `PENDING` or `ACTIVATING`.
    pub pending_count: u32,
    /// Running tasks that every target group reports healthy.
    pub healthy_count: u32,
    /// Whether a deployment is in progress; scale-in is held while it is.
    pub deployment_in_progress: bool,
    /// The tasks themselves, when the backend lists them.
    pub tasks: Vec<Task>,
}

/// Resource use relative to what was reserved, in percent (may exceed 100, as ECS's can when
/// CPU is not capped at task level).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ResourceUsage {
    /// CPU used / CPU units reserved × 100.
    pub cpu_percent: f64,
    /// Memory used / memory reserved × 100.
    pub memory_percent: f64,
}

/// A place services run: local processes, Docker, or AWS ECS.
///
/// Methods return `Send` futures (rather than `async fn`) so that the autoscaler can drive a
/// backend from a spawned task without knowing which backend it is.
pub trait Backend: Send + Sync {
    /// Asks for `desired` tasks. Returns once the backend accepted the request; reaching the
    /// count is observed through [`Backend::describe_service`].
    fn set_desired_count(
        &self,
        service: &str,
        desired: u32,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// The service's current counts and tasks.
    fn describe_service(
        &self,
        service: &str,
    ) -> impl Future<Output = Result<ServiceStatus, BackendError>> + Send;

    /// Average utilisation over the service's running tasks: the source of
    /// `ECSServiceAverageCPUUtilization` and `ECSServiceAverageMemoryUtilization`.
    fn utilization(
        &self,
        service: &str,
    ) -> impl Future<Output = Result<ResourceUsage, BackendError>> + Send;
}

/// Something that happened to a task without the scheduler asking for it, or the end of
/// something it asked for: the scheduler learns of crashes from these instead of polling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskEvent {
    /// The task's process ended and the task is `STOPPED`. With `stop_requested` false it
    /// crashed or exited on its own, and the scheduler replaces it (with backoff).
    Exited {
        /// The task.
        id: TaskId,
        /// Its service.
        service: String,
        /// How it ended.
        exit: TaskExit,
        /// When the exit was observed.
        at: SystemTime,
        /// Whether [`TaskRuntime::stop`] had been called for it (the exit was asked for).
        stop_requested: bool,
    },
}

/// Starts, stops and measures single tasks, for the backends where scalegate is the scheduler.
///
/// Draining is not the runtime's job: by the time [`TaskRuntime::stop`] is called the scheduler
/// has deregistered the task and waited for draining and the DNS TTL.
pub trait TaskRuntime: Send + Sync {
    /// Starts a task of `definition` for `service` with the given ID and port (`$PORT`),
    /// returning it in `PENDING` or later. The service is a parameter because a task definition
    /// can be shared by services while a task (its log stream, its metadata) belongs to one.
    fn start(
        &self,
        service: &str,
        definition: &TaskDefinition,
        id: TaskId,
        port: u16,
    ) -> impl Future<Output = Result<Task, BackendError>> + Send;

    /// Signals the task to stop (SIGTERM), waits up to `stop_timeout`, then kills it (SIGKILL).
    /// Returns the task once it is `STOPPED`, with its stop reason and exit, so the caller does
    /// not race the exit event to learn how it ended. Stopping a stopped task returns it as is.
    fn stop(
        &self,
        id: &TaskId,
        reason: StopReason,
        stop_timeout: Duration,
    ) -> impl Future<Output = Result<Task, BackendError>> + Send;

    /// A free host port for a task's `$PORT` (ECS dynamic port mapping): never the port of one
    /// of the runtime's live tasks.
    fn allocate_port(&self) -> Result<u16, BackendError>;

    /// The tasks this runtime knows, including ones a previous scalegate started (Docker labels),
    /// so that a restart adopts them instead of starting duplicates.
    fn list(&self) -> impl Future<Output = Result<Vec<Task>, BackendError>> + Send;

    /// One task's resource use since the previous call.
    fn usage(
        &self,
        id: &TaskId,
    ) -> impl Future<Output = Result<ResourceUsage, BackendError>> + Send;

    /// Task events from now on. The channel is bounded: a receiver that falls behind gets
    /// `RecvError::Lagged` and should resynchronise with [`TaskRuntime::list`].
    fn subscribe(&self) -> broadcast::Receiver<TaskEvent>;
}
