//! A watch of a name inside the embedded registry, answered in-process.
//!
//! Why not over DNS: a DNS answer carries at most 8 instances (Cloud Map's multivalue limit,
//! which the registry's DNS server keeps), so a target group following a service of more than
//! 8 tasks through DNS would see a different subset on every refresh. In the same process the
//! registry gives the full list, and its change notification replaces polling: a registration
//! reaches the target group at once, not after a TTL. The answer is the one DNS would give
//! without the limit: healthy instances, or all of them when none is healthy.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use scalegate_config::AddressFamily;

use super::Reporter;
use crate::registry::{EmbeddedRegistry, HealthStatusFilter, ServiceInstance};
use crate::{DiscoveryError, TtlBounds};

/// What a watched name means inside a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RegistryName {
    /// `service.namespace` (A/AAAA, with the configured port) or `_service._tcp.service.namespace`
    /// (SRV, with each instance's port).
    Service {
        namespace: String,
        service: String,
        srv: bool,
    },
    /// `instance-id.service.namespace`: one instance's address, with the configured port.
    Instance {
        namespace: String,
        service: String,
        instance_id: String,
    },
    /// A name in the namespace that can never hold addresses (`_tcp.service.namespace`, deeper
    /// names): always empty, as DNS would answer.
    Nothing,
}

impl RegistryName {
    /// Splits `name` (already known to be inside `namespace`) into what it names.
    pub(super) fn parse(name: &str, namespace: &str, srv: bool) -> RegistryName {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let namespace = namespace.trim_end_matches('.').to_ascii_lowercase();
        let relative = name
            .strip_suffix(&namespace)
            .and_then(|prefix| prefix.strip_suffix('.'))
            .unwrap_or("");
        let labels: Vec<&str> = relative.split('.').filter(|l| !l.is_empty()).collect();
        match labels.as_slice() {
            [service] => RegistryName::Service {
                namespace,
                service: service.to_string(),
                srv,
            },
            [underscored, "_tcp" | "_udp", service]
                if underscored.strip_prefix('_') == Some(*service) =>
            {
                RegistryName::Service {
                    namespace,
                    service: service.to_string(),
                    srv: true,
                }
            }
            [instance_id, service] if !instance_id.starts_with('_') && !srv => {
                RegistryName::Instance {
                    namespace,
                    service: service.to_string(),
                    instance_id: instance_id.to_string(),
                }
            }
            _ => RegistryName::Nothing,
        }
    }
}

/// The watch task: read the registry, publish, wait for the next change (or `bounds.max` as a
/// safety net), forever.
pub(super) async fn run(
    registry: Arc<EmbeddedRegistry>,
    name: RegistryName,
    port: u16,
    family: AddressFamily,
    bounds: TtlBounds,
    mut reporter: Reporter,
) {
    let mut changes = registry.subscribe();
    loop {
        changes.borrow_and_update();
        let targets = current_targets(&registry, &name, port, family);
        reporter.success(targets);
        reporter.schedule(bounds.max);
        // A closed channel cannot happen while `registry` is held; the timeout is the safety net.
        let _ = tokio::time::timeout(bounds.max, changes.changed()).await;
    }
}

/// The addresses `name` stands for now. A namespace or service that does not exist (yet) has
/// none: in-process there is no outage to guard against, only the registry's own state.
fn current_targets(
    registry: &EmbeddedRegistry,
    name: &RegistryName,
    port: u16,
    family: AddressFamily,
) -> BTreeSet<SocketAddr> {
    let listed = |namespace: &str, service: &str, filter| match registry
        .discover_instances(namespace, service, filter)
    {
        Ok(instances) => instances,
        Err(DiscoveryError::NotFound { .. }) => Vec::new(),
        Err(error) => {
            tracing::warn!(%namespace, %service, %error, "registry lookup failed");
            Vec::new()
        }
    };
    let wanted = |instance: &ServiceInstance| match family {
        AddressFamily::Any => true,
        AddressFamily::Ipv4 => instance.address.is_ipv4(),
        AddressFamily::Ipv6 => instance.address.is_ipv6(),
    };
    match name {
        RegistryName::Service {
            namespace,
            service,
            srv,
        } => listed(namespace, service, HealthStatusFilter::HealthyOrElseAll)
            .into_iter()
            .filter(|instance| wanted(instance))
            .map(|instance| {
                SocketAddr::new(instance.address, if *srv { instance.port } else { port })
            })
            .collect(),
        RegistryName::Instance {
            namespace,
            service,
            instance_id,
        } => listed(namespace, service, HealthStatusFilter::All)
            .into_iter()
            .filter(|instance| instance.instance_id.eq_ignore_ascii_case(instance_id))
            .filter(|instance| wanted(instance))
            .map(|instance| SocketAddr::new(instance.address, port))
            .collect(),
        RegistryName::Nothing => BTreeSet::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_services_and_instances() {
        let ns = "scalegate.local";
        assert_eq!(
            RegistryName::parse("App.Scalegate.Local.", ns, false),
            RegistryName::Service {
                namespace: ns.into(),
                service: "app".into(),
                srv: false
            }
        );
        assert_eq!(
            RegistryName::parse("_app._tcp.app.scalegate.local", ns, true),
            RegistryName::Service {
                namespace: ns.into(),
                service: "app".into(),
                srv: true
            }
        );
        assert_eq!(
            RegistryName::parse("app-1.app.scalegate.local", ns, false),
            RegistryName::Instance {
                namespace: ns.into(),
                service: "app".into(),
                instance_id: "app-1".into()
            }
        );
        assert_eq!(
            RegistryName::parse("_tcp.app.scalegate.local", ns, false),
            RegistryName::Nothing
        );
        assert_eq!(
            RegistryName::parse("a.b.c.scalegate.local", ns, false),
            RegistryName::Nothing
        );
    }
}
