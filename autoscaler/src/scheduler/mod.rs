//! The ECS service scheduler for the backends where scalegate runs the tasks (local processes,
//! Docker): [`plan()`] decides, [`runner`] carries the plan out through a [`crate::TaskRuntime`],
//! registering and deregistering tasks through a [`TaskRegistrar`].

pub mod plan;
pub mod registrar;
pub mod runner;

pub use plan::{plan, Plan, ServiceSpec, TaskHealth, TaskView};
pub use registrar::{RegistrationFailed, ServiceTargets, TaskRegistrar, TaskTarget};
pub use runner::{
    describe_stop_reason, spawn, SchedulerError, ServiceDefinition, ServiceEvent, ServiceHandle,
    ServiceSnapshot, TaskSnapshot,
};
