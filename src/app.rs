//! Everything `scalegate run` starts, in data-flow order, and how a reload reaches each part.
//!
//! The parts stay independent crates; this is the one place that knows all of them: the
//! embedded registry (discovery), the proxy with its target groups, and the watches that feed
//! those groups from DNS or files.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use scalegate_config::Config;
use scalegate_discovery::registry::{serve_dns, DnsServer, EmbeddedRegistry};
use scalegate_discovery::DiscoveryMetrics;
use scalegate_proxy::metrics::Metrics;
use scalegate_proxy::Proxy;
use tokio::sync::Mutex;

use crate::services::{ServiceEnvironment, Services};
use crate::target_discovery::{RegistryLocation, TargetDiscoveryWiring};

/// The running parts of `scalegate run`.
pub struct App {
    /// The load balancer: listeners, rules, target groups.
    pub proxy: Arc<Proxy>,
    /// Every Prometheus series of the process.
    pub metrics: Arc<Metrics>,
    /// The embedded Cloud Map-style registry; empty (and its DNS server not started) while no
    /// namespace is configured.
    pub registry: Arc<EmbeddedRegistry>,
    /// The registry's DNS server, once a config has namespaces.
    dns: Mutex<Option<DnsServer>>,
    /// Where the DNS server listens, once started; readable without awaiting (admin API).
    dns_address: Arc<std::sync::Mutex<Option<SocketAddr>>>,
    /// The address the registry was configured with at start (a change needs a restart).
    dns_configured_address: SocketAddr,
    /// Discovery watches feeding target groups.
    pub discovery: Arc<TargetDiscoveryWiring>,
    /// Services: their schedulers, tasks and autoscaling.
    pub services: Arc<Services>,
}

impl App {
    /// Starts the registry (when configured), the proxy, the discovery watches (a watch of a
    /// registry name finds the registry already answering), then the services, whose tasks
    /// register into target groups and the registry that now exist.
    pub async fn start(config: &Config, environment: ServiceEnvironment) -> anyhow::Result<App> {
        let metrics = Metrics::new(&config.load_balancer.name);
        let discovery_metrics = DiscoveryMetrics::register(metrics.registry());
        let registry = EmbeddedRegistry::new(discovery_metrics.clone());
        registry.configure(&config.registry);
        let dns = if config.registry.namespaces.is_empty() {
            None
        } else {
            Some(start_dns(&registry, config.registry.address).await?)
        };
        let proxy =
            Arc::new(Proxy::start(config, Arc::clone(&metrics)).context("cannot start the proxy")?);
        metrics.record_reload(true);
        let discovery =
            TargetDiscoveryWiring::new(Arc::clone(proxy.target_groups()), discovery_metrics);
        let location = RegistryLocation {
            namespaces: namespace_names(config),
            registry: Arc::clone(&registry),
        };
        let watches = discovery
            .prepare(config, &location)
            .context("cannot start discovery")?;
        discovery.commit(watches);
        let services = Arc::new(Services::new(
            Arc::clone(proxy.target_groups()),
            Arc::clone(&registry),
            metrics.registry(),
            environment,
        )?);
        let prepared = services
            .prepare(config)
            .await
            .context("cannot start services")?;
        services.commit(prepared).await;
        Ok(App {
            proxy,
            metrics,
            registry,
            dns_address: Arc::new(std::sync::Mutex::new(
                dns.as_ref().map(DnsServer::local_addr),
            )),
            dns: Mutex::new(dns),
            dns_configured_address: config.registry.address,
            discovery,
            services,
        })
    }

    /// Tells the registry's DNS address, when it serves; for the admin API.
    pub fn dns_address(&self) -> impl Fn() -> Option<SocketAddr> + Clone + Send + Sync + 'static {
        let address = Arc::clone(&self.dns_address);
        move || *address.lock().expect("dns address lock")
    }

    /// Applies a validated config to every part, in data-flow order. Whatever can fail is
    /// done before anything running changes, so an error leaves the previous config serving.
    pub async fn apply(&self, config: &Config) -> anyhow::Result<()> {
        let services = self.services.prepare(config).await.context("services")?;
        let mut dns = self.dns.lock().await;
        if dns.is_none() && !config.registry.namespaces.is_empty() {
            // Serving nothing until configured below, so starting it early changes nothing.
            let server = start_dns(&self.registry, config.registry.address).await?;
            *self.dns_address.lock().expect("dns address lock") = Some(server.local_addr());
            *dns = Some(server);
        } else if config.registry.address != self.dns_configured_address {
            tracing::warn!(
                configured = %config.registry.address,
                "registry address changed: it takes effect at the next restart"
            );
        }
        drop(dns);
        let location = RegistryLocation {
            namespaces: namespace_names(config),
            registry: Arc::clone(&self.registry),
        };
        let watches = self
            .discovery
            .prepare(config, &location)
            .context("discovery")?;
        self.proxy.apply(config).context("proxy")?;
        self.registry.configure(&config.registry);
        self.discovery.commit(watches);
        self.services.commit(services).await;
        Ok(())
    }

    /// Stops the services' tasks the graceful way while the proxy still drains them, then
    /// discovery, lets open requests finish for up to `grace`, then stops the registry.
    pub async fn shutdown(&self, grace: Duration) {
        self.services.shutdown().await;
        self.discovery.stop();
        self.proxy.shutdown(grace).await;
        if let Some(dns) = self.dns.lock().await.take() {
            dns.shutdown().await;
        }
    }
}

async fn start_dns(
    registry: &Arc<EmbeddedRegistry>,
    address: SocketAddr,
) -> anyhow::Result<DnsServer> {
    let dns = serve_dns(Arc::clone(registry), address)
        .await
        .with_context(|| format!("cannot start the registry's DNS server on {address}"))?;
    tracing::info!(namespaces = ?registry.namespaces(), "registry serving");
    Ok(dns)
}

fn namespace_names(config: &Config) -> Vec<String> {
    config
        .registry
        .namespaces
        .iter()
        .map(|namespace| namespace.name.clone())
        .collect()
}
