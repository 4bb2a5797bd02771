//! Discovery's Prometheus series, registered into the process's registry so `/metrics` serves
//! them beside the proxy's.
//!
//! Why its own module: the discovery crate must not depend on the proxy (data flows the other
//! way), so it takes a `prometheus::Registry` and owns its families.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

/// Every discovery series: DNS watches (per target group) and the embedded registry.
#[derive(Clone)]
pub struct DiscoveryMetrics {
    /// `scalegate_discovery_resolutions_total{target_group, result}`: one per resolution of a
    /// watched name (or read of a watched file); `result` is one of
    /// [`crate::watch::ResolutionResult::ALL`].
    pub resolutions: IntCounterVec,
    /// `scalegate_discovery_kept_last_known_total{target_group}`: failed or suspicious answers
    /// after which the last known good targets were kept.
    pub kept_last_known: IntCounterVec,
    /// `scalegate_discovery_target_updates_total{target_group, change}`: targets added or
    /// removed by discovery (`change` is `add` or `remove`).
    pub target_updates: IntCounterVec,
    /// `scalegate_discovery_targets{target_group}`: addresses the source currently provides.
    pub targets: IntGaugeVec,
    /// `scalegate_discovery_last_success_timestamp_seconds{target_group}`: Unix time of the
    /// last good answer, to alert on a stale source.
    pub last_success: IntGaugeVec,
    /// `scalegate_registry_queries_total{protocol, rcode}`: DNS queries the embedded registry
    /// answered (`protocol` `udp`/`tcp`; `rcode` `NOERROR`, `NXDOMAIN`, `REFUSED`, ...).
    pub registry_queries: IntCounterVec,
    /// `scalegate_registry_truncated_total`: UDP answers sent with TC set because they did not
    /// fit; the client retries over TCP.
    pub registry_truncated: IntCounterVec,
    /// `scalegate_registry_instances{namespace, service, health}`: registered instances.
    pub registry_instances: IntGaugeVec,
}

impl DiscoveryMetrics {
    /// Creates the families and registers them in `registry`.
    pub fn register(registry: &Registry) -> DiscoveryMetrics {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let family =
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
            registry
                .register(Box::new(family.clone()))
                .expect("discovery metrics are registered once");
            family
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let family =
                IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
            registry
                .register(Box::new(family.clone()))
                .expect("discovery metrics are registered once");
            family
        };
        let registry_truncated = counter(
            "scalegate_registry_truncated_total",
            "UDP answers from the embedded registry truncated (TC set) because they did not fit.",
            &[],
        );
        // Without labels the one series can exist from the start at 0, so `/metrics` shows the
        // family (and `rate()` and alerts work) before the first truncation.
        registry_truncated.with_label_values::<&str>(&[]);
        DiscoveryMetrics {
            resolutions: counter(
                "scalegate_discovery_resolutions_total",
                "Resolutions of a target group's discovery source, by result.",
                &["target_group", "result"],
            ),
            kept_last_known: counter(
                "scalegate_discovery_kept_last_known_total",
                "Failed or suspicious answers after which the last known good targets were kept.",
                &["target_group"],
            ),
            target_updates: counter(
                "scalegate_discovery_target_updates_total",
                "Targets added to or removed from a target group by discovery.",
                &["target_group", "change"],
            ),
            targets: gauge(
                "scalegate_discovery_targets",
                "Addresses a target group's discovery source currently provides.",
                &["target_group"],
            ),
            last_success: gauge(
                "scalegate_discovery_last_success_timestamp_seconds",
                "Unix time of the last good answer from a target group's discovery source.",
                &["target_group"],
            ),
            registry_queries: counter(
                "scalegate_registry_queries_total",
                "DNS queries answered by the embedded registry, by transport and response code.",
                &["protocol", "rcode"],
            ),
            registry_truncated,
            registry_instances: gauge(
                "scalegate_registry_instances",
                "Instances registered in the embedded registry, by health.",
                &["namespace", "service", "health"],
            ),
        }
    }

    /// Metrics registered in a private registry, for tests and callers that do not export them.
    pub fn unregistered() -> DiscoveryMetrics {
        DiscoveryMetrics::register(&Registry::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_truncation_counter_is_exported_before_the_first_truncation() {
        let registry = Registry::new();
        let metrics = DiscoveryMetrics::register(&registry);
        let truncated = |registry: &Registry| {
            registry
                .gather()
                .iter()
                .find(|family| family.name() == "scalegate_registry_truncated_total")
                .map(|family| family.get_metric().len())
        };
        assert_eq!(truncated(&registry), Some(1));
        assert_eq!(
            metrics
                .registry_truncated
                .with_label_values::<&str>(&[])
                .get(),
            0
        );
    }
}
