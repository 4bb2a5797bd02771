//! How the scheduler puts tasks behind the load balancer and in DNS, without knowing either.
//!
//! ECS registers a task with its service's target groups and its Cloud Map service while the
//! task is `ACTIVATING`, and deregisters it while `DEACTIVATING`. The scheduler does the same
//! through [`TaskRegistrar`], which the binary implements over the proxy's target groups and
//! the embedded registry, so that the autoscaler crate depends on neither.

use std::net::SocketAddr;
use std::time::Duration;

use crate::scheduler::plan::TaskHealth;
use crate::task::TaskId;

/// Where a service's tasks are registered: ECS's `loadBalancers` and `serviceRegistries`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceTargets {
    /// The service's name (for messages).
    pub service: String,
    /// Target groups every task joins, by name.
    pub target_groups: Vec<String>,
    /// Registry namespace and service every task registers under, if any.
    pub registry: Option<(String, String)>,
}

impl ServiceTargets {
    /// Whether tasks sit behind target groups, so that health means target health.
    pub fn has_load_balancer(&self) -> bool {
        !self.target_groups.is_empty()
    }
}

/// One task's registration: its ID (the registry's instance ID) and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskTarget {
    /// The task.
    pub id: TaskId,
    /// Where it serves.
    pub address: SocketAddr,
}

/// Why a registration failed; the task is then stopped as failed to start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RegistrationFailed(pub String);

/// Registers tasks with target groups and the registry, and reports what the load balancer
/// says of them. Calls are quick and synchronous: both sides live in the same process.
pub trait TaskRegistrar: Send + Sync + 'static {
    /// Registers the task in every target group and the registry (`ACTIVATING`).
    fn register(
        &self,
        service: &ServiceTargets,
        task: &TaskTarget,
    ) -> Result<(), RegistrationFailed>;

    /// Deregisters it everywhere it is registered (`DEACTIVATING`); the target groups start
    /// draining it. Returns how long its address must stay reachable for clients that resolved
    /// it from DNS before the deregistration (the record's TTL), zero without a registry.
    fn deregister(&self, service: &ServiceTargets, task: &TaskTarget) -> Duration;

    /// Whether no target group routes or drains the task any more: its in-flight requests are
    /// done, or the deregistration delay is over.
    fn drained(&self, service: &ServiceTargets, task: &TaskTarget) -> bool;

    /// The load balancer's verdict on the task: healthy when every target group says healthy
    /// (or checks are off), unhealthy when any says unhealthy. Implementations also pass the
    /// verdict on to the registry, as ECS does with Cloud Map's health.
    fn health(&self, service: &ServiceTargets, task: &TaskTarget) -> TaskHealth;
}
