//! The ECS service scheduler for the backends where scalegate runs the tasks (local processes,
//! Docker): [`plan()`] decides, a loop (issue 5) carries the plan out through a
//! [`crate::TaskRuntime`], registering and deregistering tasks for discovery.

pub mod plan;

pub use plan::{plan, Plan, ServiceSpec, TaskHealth, TaskView};
