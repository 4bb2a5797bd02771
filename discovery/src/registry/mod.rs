//! The embedded Cloud Map-style registry: namespaces, services, instances and their DNS records.
//!
//! Names follow Cloud Map: an instance of service `web` in namespace `scalegate.local` answers
//! `web.scalegate.local` (A/AAAA) and `_web._tcp.web.scalegate.local` (SRV plus A records in the
//! additional section). The [`Registry`] trait is what backends call when a task enters
//! `ACTIVATING` or `DEACTIVATING`; the embedded server implements it in issue 4 and a Cloud Map
//! client can implement it in issue 8.
//!
//! The pieces: [`EmbeddedRegistry`] holds the state (namespaces → services → instances) behind
//! one lock, [`serve_dns`] answers for it over UDP and TCP with hickory-server, and the answer
//! logic itself (`answer.rs`) is a pure function from that state and a query to a response, so
//! it is tested without sockets.
//!
//! Differences from Cloud Map, on purpose:
//! - health changes ([`EmbeddedRegistry::set_instance_health`]) take effect on the next answer;
//!   Cloud Map waits about 30 s after `UpdateInstanceCustomHealthStatus`
//!   (aws/containers-roadmap#449), which only delays recovery;
//! - a deregistered instance keeps answering at `instance-id.service.namespace` for one TTL
//!   ([`Deregistered`]), so clients that cached it are not cut off (aws/containers-roadmap#343).

mod answer;
mod server;
mod store;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::DiscoveryError;

pub use server::{serve_dns, DnsServer};
pub use store::{
    EmbeddedRegistry, InstanceSource, InstanceView, NamespaceView, RegistryView, ServiceView,
};

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

/// An instance's health as the registry reports it (Cloud Map's `HealthStatus`), spelled
/// `HEALTHY`, `UNHEALTHY`, `UNKNOWN` in JSON and attributes as Cloud Map spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HealthStatus {
    /// Served in answers.
    #[default]
    Healthy,
    /// Served only when no instance of the service is healthy (fail-open).
    Unhealthy,
    /// No health information yet.
    Unknown,
}

impl HealthStatus {
    /// Every status, so that metrics publish one series per status and none is forgotten.
    pub const ALL: [HealthStatus; 3] = [
        HealthStatus::Healthy,
        HealthStatus::Unhealthy,
        HealthStatus::Unknown,
    ];

    /// Cloud Map's spelling, used in JSON, attributes and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "HEALTHY",
            HealthStatus::Unhealthy => "UNHEALTHY",
            HealthStatus::Unknown => "UNKNOWN",
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HealthStatus {
    type Err = String;

    /// Parses Cloud Map's spelling (case-insensitive, so `healthy` from a shell works too).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        HealthStatus::ALL
            .into_iter()
            .find(|status| status.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| format!("unknown health status `{text}` (HEALTHY, UNHEALTHY, UNKNOWN)"))
    }
}

/// Which instances `DiscoverInstances` returns (Cloud Map's `HealthStatusFilter`), spelled
/// `HEALTHY`, `UNHEALTHY`, `ALL`, `HEALTHY_OR_ELSE_ALL` as in Cloud Map's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
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

impl HealthStatusFilter {
    /// Every filter, for parsing and error messages that list them.
    pub const ALL: [HealthStatusFilter; 4] = [
        HealthStatusFilter::Healthy,
        HealthStatusFilter::Unhealthy,
        HealthStatusFilter::All,
        HealthStatusFilter::HealthyOrElseAll,
    ];

    /// Cloud Map's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatusFilter::Healthy => "HEALTHY",
            HealthStatusFilter::Unhealthy => "UNHEALTHY",
            HealthStatusFilter::All => "ALL",
            HealthStatusFilter::HealthyOrElseAll => "HEALTHY_OR_ELSE_ALL",
        }
    }

    /// The instances of `instances` this filter keeps, in their order.
    pub fn apply(self, instances: &[ServiceInstance]) -> Vec<&ServiceInstance> {
        let with = |health: HealthStatus| {
            instances
                .iter()
                .filter(|instance| instance.health == health)
                .collect::<Vec<_>>()
        };
        match self {
            HealthStatusFilter::Healthy => with(HealthStatus::Healthy),
            HealthStatusFilter::Unhealthy => with(HealthStatus::Unhealthy),
            HealthStatusFilter::All => instances.iter().collect(),
            HealthStatusFilter::HealthyOrElseAll => {
                let healthy = with(HealthStatus::Healthy);
                if healthy.is_empty() {
                    instances.iter().collect()
                } else {
                    healthy
                }
            }
        }
    }
}

impl FromStr for HealthStatusFilter {
    type Err = String;

    /// Parses Cloud Map's spelling, case-insensitively.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        HealthStatusFilter::ALL
            .into_iter()
            .find(|filter| filter.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| {
                format!(
                    "unknown health status filter `{text}` (HEALTHY, UNHEALTHY, ALL, HEALTHY_OR_ELSE_ALL)"
                )
            })
    }
}

/// One registered instance of a service: in scalegate, usually one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInstance {
    /// Unique within the service (case-insensitively, as DNS compares names); a DNS label of
    /// letters, digits, hyphens and underscores, ≤63 characters, so that
    /// `instance-id.service.namespace` can be an SRV target. The task ID for tasks.
    pub instance_id: String,
    /// Address published in A/AAAA records.
    pub address: IpAddr,
    /// Port published in SRV records.
    pub port: u16,
    /// Current health; flipped by the backend from the target group's health checks. At first
    /// registration the `AWS_INIT_HEALTH_STATUS` attribute, when present, wins over this field;
    /// re-registering an existing instance keeps its current health.
    pub health: HealthStatus,
    /// Custom attributes (≤30, key ≤255, value ≤1024, ≤5000 characters in all), such as
    /// `ECS_SERVICE_NAME`. Discovery fills in `AWS_INSTANCE_IPV4`/`AWS_INSTANCE_IPV6` and
    /// `AWS_INSTANCE_PORT` from `address` and `port`.
    pub attributes: BTreeMap<String, String>,
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
pub fn multivalue_answer<'a>(
    instances: impl IntoIterator<Item = &'a ServiceInstance>,
    rotation: usize,
) -> Vec<&'a ServiceInstance> {
    let instances: Vec<&ServiceInstance> = instances.into_iter().collect();
    let healthy: Vec<&ServiceInstance> = instances
        .iter()
        .filter(|instance| instance.health == HealthStatus::Healthy)
        .copied()
        .collect();
    let pool: Vec<&ServiceInstance> = if healthy.is_empty() {
        instances
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
    fn statuses_and_filters_use_cloud_map_spelling() {
        assert_eq!("unhealthy".parse(), Ok(HealthStatus::Unhealthy));
        assert!("sick".parse::<HealthStatus>().is_err());
        assert_eq!(
            "healthy_or_else_all".parse(),
            Ok(HealthStatusFilter::HealthyOrElseAll)
        );
        assert_eq!(
            serde_json::to_string(&HealthStatusFilter::HealthyOrElseAll).unwrap(),
            r#""HEALTHY_OR_ELSE_ALL""#
        );
        assert_eq!(
            serde_json::from_str::<HealthStatus>(r#""UNHEALTHY""#).unwrap(),
            HealthStatus::Unhealthy
        );
        for filter in HealthStatusFilter::ALL {
            assert_eq!(filter.as_str().parse(), Ok(filter));
        }
    }

    #[test]
    fn empty_service_has_an_empty_answer() {
        assert!(multivalue_answer(&[], 3).is_empty());
    }
}
