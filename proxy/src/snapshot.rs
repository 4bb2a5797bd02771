//! A config compiled for the request path: everything a request needs, immutable, swapped
//! whole on reload so requests in flight finish on the config they started with.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::HeaderValue;
use scalegate_config::{Config, LoadBalancer, Protocol, XffMode};
use tokio_rustls::TlsAcceptor;

use crate::access_log::AccessLogger;
use crate::metrics::{ListenerMetrics, Metrics, TargetGroupMetrics, TargetMetrics};
use crate::routing::ListenerRoutes;
use crate::upstream::{PoolSettings, TargetPool};

/// Load-balancer attributes in the form the request path uses them.
#[derive(Debug)]
pub struct LoadBalancerSettings {
    /// Name, also the Host synthesised for HTTP/1.0 requests without one.
    pub name: String,
    /// `idle_timeout.timeout_seconds`.
    pub idle_timeout: Duration,
    /// `client_keep_alive.seconds`.
    pub client_keep_alive: Duration,
    /// Time allowed to read a request head.
    pub header_read_timeout: Duration,
    /// X-Forwarded-For handling.
    pub xff_mode: XffMode,
    /// Append the client port to X-Forwarded-For.
    pub xff_client_port: bool,
    /// Send Host unchanged.
    pub preserve_host_header: bool,
    /// Drop headers with names outside `[-A-Za-z0-9]+`.
    pub drop_invalid_header_fields: bool,
    /// Host value used when a request has none.
    pub default_host: HeaderValue,
}

impl LoadBalancerSettings {
    fn new(lb: &LoadBalancer) -> Self {
        LoadBalancerSettings {
            name: lb.name.clone(),
            idle_timeout: Duration::from_secs(lb.idle_timeout_seconds),
            client_keep_alive: Duration::from_secs(lb.client_keep_alive_seconds),
            header_read_timeout: Duration::from_secs(lb.header_read_timeout_seconds),
            xff_mode: lb.xff_header_processing_mode,
            xff_client_port: lb.xff_client_port,
            preserve_host_header: lb.preserve_host_header,
            drop_invalid_header_fields: lb.drop_invalid_header_fields,
            default_host: HeaderValue::from_str(&lb.name)
                .unwrap_or(HeaderValue::from_static("scalegate")),
        }
    }
}

/// A registered target as the request path needs it.
pub struct TargetRuntime {
    /// Where to connect.
    pub address: SocketAddr,
    /// `ip:port` for the upstream URI.
    pub authority: Authority,
    /// Per-target metrics, resolved once.
    pub metrics: TargetMetrics,
    /// One connection pool per worker.
    pools: Vec<Arc<TargetPool>>,
}

impl TargetRuntime {
    /// The pool `worker` sends through; every worker has its own.
    pub fn pool(&self, worker: usize) -> &Arc<TargetPool> {
        &self.pools[worker % self.pools.len()]
    }
}

/// A target group: its targets and its round-robin position.
pub struct TargetGroupRuntime {
    /// Name from the config.
    pub name: String,
    /// The name as the access log shares it, without copying per request.
    pub log_name: Arc<str>,
    /// `http` or `https` to targets.
    pub scheme: Scheme,
    /// HTTP version spoken to targets.
    pub protocol_version: scalegate_config::ProtocolVersion,
    /// Registered targets.
    pub targets: Vec<TargetRuntime>,
    /// Time to wait for response headers before a 504.
    pub response_timeout: Duration,
    /// Per-group metrics.
    pub metrics: TargetGroupMetrics,
    next: AtomicUsize,
}

impl TargetGroupRuntime {
    /// The next target in round-robin order, or `None` when the group has no targets.
    pub fn next_target(&self) -> Option<&TargetRuntime> {
        match self.targets.len() {
            0 => None,
            1 => self.targets.first(),
            len => Some(&self.targets[self.next.fetch_add(1, Ordering::Relaxed) % len]),
        }
    }
}

/// What all listeners of one config version share.
pub struct SharedState {
    /// Load-balancer attributes.
    pub load_balancer: LoadBalancerSettings,
    /// Target groups, indexed by the routes' target-group indices.
    pub target_groups: Vec<TargetGroupRuntime>,
    /// The access log, when enabled.
    pub access_log: Option<AccessLogger>,
}

impl SharedState {
    /// Compiles the config's load balancer and target groups, reusing `previous`'s connection
    /// pools (and their warm connections) for targets whose group settings did not change.
    pub fn compile(
        config: &Config,
        previous: Option<&SharedState>,
        metrics: &Arc<Metrics>,
        workers: usize,
        access_log: Option<AccessLogger>,
    ) -> Result<SharedState, String> {
        let load_balancer = LoadBalancerSettings::new(&config.load_balancer);
        let mut reusable: HashMap<(&str, SocketAddr), &Vec<Arc<TargetPool>>> = HashMap::new();
        if let Some(previous) = previous {
            for group in &previous.target_groups {
                for target in &group.targets {
                    reusable.insert((group.name.as_str(), target.address), &target.pools);
                }
            }
        }
        let mut target_groups = Vec::with_capacity(config.target_groups.len());
        for group in &config.target_groups {
            let settings = PoolSettings::new(group, load_balancer.idle_timeout);
            let mut targets = Vec::with_capacity(group.targets.len());
            for target in &group.targets {
                let address = target
                    .socket_addr(group.port)
                    .map_err(|error| format!("target group {}: {error}", group.name))?;
                let authority = Authority::try_from(address.to_string())
                    .map_err(|error| format!("target group {}: {error}", group.name))?;
                let target_metrics = metrics.target(&group.name, &address.to_string());
                let pools = match reusable.get(&(group.name.as_str(), address)) {
                    Some(pools)
                        if pools
                            .first()
                            .is_some_and(|pool| *pool.settings() == settings) =>
                    {
                        pools.to_vec()
                    }
                    _ => (0..workers.max(1))
                        .map(|_| TargetPool::new(address, settings.clone(), target_metrics.clone()))
                        .collect(),
                };
                targets.push(TargetRuntime {
                    address,
                    authority,
                    metrics: target_metrics,
                    pools,
                });
            }
            target_groups.push(TargetGroupRuntime {
                name: group.name.clone(),
                log_name: Arc::from(group.name.as_str()),
                scheme: match group.protocol {
                    Protocol::Http => Scheme::HTTP,
                    Protocol::Https => Scheme::HTTPS,
                },
                protocol_version: group.protocol_version,
                targets,
                response_timeout: Duration::from_secs(
                    group
                        .response_timeout_seconds
                        .unwrap_or(config.load_balancer.idle_timeout_seconds),
                ),
                metrics: metrics.target_group(&group.name),
                next: AtomicUsize::new(0),
            });
        }
        Ok(SharedState {
            load_balancer,
            target_groups,
            access_log,
        })
    }

    /// Index of a target group by name, for compiling forward actions.
    pub fn target_group_index(&self, name: &str) -> Option<usize> {
        self.target_groups
            .iter()
            .position(|group| group.name == name)
    }
}

/// One listener's compiled view: its rules and TLS plus the shared state they point into.
pub struct ListenerRuntime {
    /// Listener name, used in metrics and logs.
    pub name: String,
    /// HTTP or HTTPS.
    pub protocol: Protocol,
    /// The bound port (port 0 in the config resolved).
    pub port: u16,
    /// Accept h2c with prior knowledge.
    pub http2_prior_knowledge: bool,
    /// Compiled rules.
    pub routes: ListenerRoutes,
    /// TLS acceptor for HTTPS.
    pub tls: Option<TlsAcceptor>,
    /// Per-listener metrics.
    pub metrics: ListenerMetrics,
    /// Value of X-Forwarded-Port.
    pub forwarded_port: HeaderValue,
    /// Value of X-Forwarded-Proto.
    pub forwarded_proto: HeaderValue,
    /// Shared load-balancer state.
    pub shared: Arc<SharedState>,
}
