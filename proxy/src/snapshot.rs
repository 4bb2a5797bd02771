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
use crate::upstream::{ClientSettings, UpstreamClient};

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
    /// Offer h2 by ALPN.
    pub http2_enabled: bool,
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
            http2_enabled: lb.http2_enabled,
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
}

/// A target group: its targets, its round-robin position and its pooled clients.
pub struct TargetGroupRuntime {
    /// Name from the config.
    pub name: String,
    /// The name as the access log shares it, without copying per request.
    pub log_name: Arc<str>,
    /// `http` or `https` to targets.
    pub scheme: Scheme,
    /// Registered targets.
    pub targets: Vec<TargetRuntime>,
    /// Time to wait for response headers before a 504.
    pub response_timeout: Duration,
    /// Per-group metrics.
    pub metrics: TargetGroupMetrics,
    settings: ClientSettings,
    clients: Arc<Vec<UpstreamClient>>,
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

    /// The client owned by `worker`; every worker has its own pool.
    pub fn client(&self, worker: usize) -> &UpstreamClient {
        &self.clients[worker % self.clients.len()]
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
    /// Compiles the config's load balancer and target groups, reusing `previous`'s clients
    /// (and their warm connections) for groups whose client settings did not change.
    pub fn compile(
        config: &Config,
        previous: Option<&SharedState>,
        metrics: &Arc<Metrics>,
        workers: usize,
        access_log: Option<AccessLogger>,
    ) -> Result<SharedState, String> {
        let load_balancer = LoadBalancerSettings::new(&config.load_balancer);
        let mut reusable: HashMap<&str, (&ClientSettings, &Arc<Vec<UpstreamClient>>)> =
            HashMap::new();
        if let Some(previous) = previous {
            for group in &previous.target_groups {
                reusable.insert(group.name.as_str(), (&group.settings, &group.clients));
            }
        }
        let mut target_groups = Vec::with_capacity(config.target_groups.len());
        for group in &config.target_groups {
            let settings = ClientSettings::new(group, load_balancer.idle_timeout);
            let clients = match reusable.get(group.name.as_str()) {
                Some((old, clients)) if **old == settings => Arc::clone(clients),
                _ => Arc::new(
                    (0..workers.max(1))
                        .map(|_| settings.build(metrics, &group.name))
                        .collect(),
                ),
            };
            let mut targets = Vec::with_capacity(group.targets.len());
            for target in &group.targets {
                let address = target
                    .socket_addr(group.port)
                    .map_err(|error| format!("target group {}: {error}", group.name))?;
                let authority = Authority::try_from(address.to_string())
                    .map_err(|error| format!("target group {}: {error}", group.name))?;
                let metrics = metrics.target(&group.name, &address.to_string());
                targets.push(TargetRuntime {
                    address,
                    authority,
                    metrics,
                });
            }
            target_groups.push(TargetGroupRuntime {
                name: group.name.clone(),
                log_name: Arc::from(group.name.as_str()),
                scheme: match group.protocol {
                    Protocol::Http => Scheme::HTTP,
                    Protocol::Https => Scheme::HTTPS,
                },
                targets,
                response_timeout: Duration::from_secs(
                    group
                        .response_timeout_seconds
                        .unwrap_or(config.load_balancer.idle_timeout_seconds),
                ),
                metrics: metrics.target_group(&group.name),
                settings,
                clients,
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
