//! The embedded Cloud Map-style registry: namespaces, services, instances and their DNS records.
//!
//! Names follow Cloud Map: an instance of service `web` in namespace `scalegate.local` answers
//! `web.scalegate.local` (A/AAAA) and `_web._tcp.web.scalegate.local` (SRV plus A records in the
//! additional section). The [`Registry`] trait is what backends call when a task enters
//! `ACTIVATING` or `DEACTIVATING`; the embedded server implements it in issue 4 and a Cloud Map
//! client can implement it in issue 8.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use crate::DiscoveryError;

/// Attribute carrying the instance's IPv4 address, as Cloud Map names it.
pub const AWS_INSTANCE_IPV4: &str = "AWS_INSTANCE_IPV4";
/// Attribute carrying the instance's IPv6 address.
pub const AWS_INSTANCE_IPV6: &str = "AWS_INSTANCE_IPV6";
/// Attribute carrying the instance's port (used in SRV records).
pub const AWS_INSTANCE_PORT: &str = "AWS_INSTANCE_PORT";
/// Attribute giving the health an instance starts with (`HEALTHY` unless set).
pub const AWS_INIT_HEALTH_STATUS: &str = "AWS_INIT_HEALTH_STATUS";

/// Records per multivalue answer, as Route 53 answers a Cloud Map `MULTIVALUE` service.
pub const MULTIVALUE_LIMIT: usize = 8;

/// An instance's health as the registry reports it (Cloud Map's `HealthStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HealthStatus {
    /// Served in answers.
    #[default]
    Healthy,
    /// Served only when no instance of the service is healthy (fail-open).
    Unhealthy,
    /// No health information yet.
    Unknown,
}

/// Which instances `DiscoverInstances` returns (Cloud Map's `HealthStatusFilter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HealthStatusFilter {
    /// Only healthy instances.
    Healthy,
    /// Only unhealthy instances.
    Unhealthy,
    /// Every instance.
    All,
    /// Healthy ones, or all of them when none is healthy: what DNS answers do.
    #[default]
    HealthyOrElseAll,
}

/// One registered instance of a service: in scalegate, usually one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInstance {
    /// Unique within the service, ≤64 characters (Cloud Map's limit); the task ID for tasks.
    pub instance_id: String,
    /// Address published in A/AAAA records.
    pub address: IpAddr,
    /// Port published in SRV records.
    pub port: u16,
    /// Current health; flipped by the backend from the target group's health checks.
    pub health: HealthStatus,
    /// Custom attributes (≤30), such as `ECS_SERVICE_NAME` and `ECS_TASK_DEFINITION_FAMILY`.
    pub attributes: BTreeMap<String, String>,
}

/// A DNS record the registry serves. A separate type from the instance so that the server and
/// `dig`-style tests can reason about answers without knowing about registrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsRecord {
    /// `name A address` or `name AAAA address`, depending on the address family.
    Address {
        /// Owner name, fully qualified.
        name: String,
        /// The instance's address.
        address: IpAddr,
        /// Record TTL.
        ttl: Duration,
    },
    /// `name SRV priority weight port target`; priority and weight are 1, as Cloud Map sets them.
    Srv {
        /// Owner name, `_service._tcp.service.namespace`.
        name: String,
        /// The instance's port.
        port: u16,
        /// `instance-id.service.namespace`, which has its own address record.
        target: String,
        /// Record TTL.
        ttl: Duration,
    },
}

/// What deregistration promises the caller.
///
/// Cloud Map removes an instance from DNS and ECS stops the task at once, so clients that
/// cached the record fail (aws/containers-roadmap#343). Here the registry says how long the
/// instance must stay reachable, and the backend waits that long before stopping the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deregistered {
    /// Keep the instance serving for at least this long: the record's TTL.
    pub keep_reachable_for: Duration,
}

/// Register, deregister, mark health, discover: Cloud Map's RegisterInstance,
/// DeregisterInstance, UpdateInstanceCustomHealthStatus and DiscoverInstances.
///
/// Async because implementations may be remote (Cloud Map on AWS); the embedded one answers at
/// once. Re-registering an existing instance ID updates it, as in Cloud Map.
pub trait Registry: Send + Sync {
    /// Adds or updates `instance` in `service` of `namespace`.
    fn register(
        &self,
        namespace: &str,
        service: &str,
        instance: ServiceInstance,
    ) -> impl Future<Output = Result<(), DiscoveryError>> + Send;

    /// Removes an instance from answers; the caller keeps it serving for the returned time.
    fn deregister(
        &self,
        namespace: &str,
        service: &str,
        instance_id: &str,
    ) -> impl Future<Output = Result<Deregistered, DiscoveryError>> + Send;

    /// Sets an instance's health, which decides whether answers include it.
    fn set_health(
        &self,
        namespace: &str,
        service: &str,
        instance_id: &str,
        health: HealthStatus,
    ) -> impl Future<Output = Result<(), DiscoveryError>> + Send;

    /// Lists a service's instances that pass `filter`.
    fn discover(
        &self,
        namespace: &str,
        service: &str,
        filter: HealthStatusFilter,
    ) -> impl Future<Output = Result<Vec<ServiceInstance>, DiscoveryError>> + Send;
}

/// The instances a multivalue DNS answer carries: up to [`MULTIVALUE_LIMIT`] healthy ones, or,
/// when none is healthy, up to that many of the others (Route 53's fail-open).
///
/// `rotation` picks where the window of eight starts, so that different queries spread over
/// more than eight instances, as Route 53 gives different resolvers different subsets.
pub fn multivalue_answer(instances: &[ServiceInstance], rotation: usize) -> Vec<&ServiceInstance> {
    let healthy: Vec<&ServiceInstance> = instances
        .iter()
        .filter(|instance| instance.health == HealthStatus::Healthy)
        .collect();
    let pool: Vec<&ServiceInstance> = if healthy.is_empty() {
        instances.iter().collect()
    } else {
        healthy
    };
    if pool.is_empty() {
        return pool;
    }
    let start = rotation % pool.len();
    pool.iter()
        .cycle()
        .skip(start)
        .take(pool.len().min(MULTIVALUE_LIMIT))
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(n: u8, health: HealthStatus) -> ServiceInstance {
        ServiceInstance {
            instance_id: format!("task-{n}"),
            address: IpAddr::from([10, 0, 0, n]),
            port: 8080,
            health,
            attributes: BTreeMap::new(),
        }
    }

    fn ids(answer: &[&ServiceInstance]) -> Vec<String> {
        answer.iter().map(|i| i.instance_id.clone()).collect()
    }

    #[test]
    fn only_healthy_instances_when_any_is_healthy() {
        let all = [
            instance(1, HealthStatus::Unhealthy),
            instance(2, HealthStatus::Healthy),
            instance(3, HealthStatus::Unknown),
        ];
        assert_eq!(ids(&multivalue_answer(&all, 0)), ["task-2"]);
    }

    #[test]
    fn fails_open_when_none_is_healthy() {
        let all = [
            instance(1, HealthStatus::Unhealthy),
            instance(2, HealthStatus::Unknown),
        ];
        assert_eq!(ids(&multivalue_answer(&all, 0)), ["task-1", "task-2"]);
    }

    #[test]
    fn at_most_eight_records_and_rotation_moves_the_window() {
        let all: Vec<ServiceInstance> = (1..=10)
            .map(|n| instance(n, HealthStatus::Healthy))
            .collect();
        let first = multivalue_answer(&all, 0);
        assert_eq!(first.len(), 8);
        assert_eq!(first[0].instance_id, "task-1");
        let rotated = multivalue_answer(&all, 9);
        assert_eq!(rotated.len(), 8);
        assert_eq!(ids(&rotated)[..2], ["task-10", "task-1"]);
    }

    #[test]
    fn empty_service_has_an_empty_answer() {
        assert!(multivalue_answer(&[], 3).is_empty());
    }
}
