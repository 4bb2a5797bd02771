//! A config compiled for the request path: everything a request needs, immutable, swapped
//! whole on reload so requests in flight finish on the config they started with.

use std::sync::Arc;
use std::time::Duration;

use http::uri::Scheme;
use http::HeaderValue;
use scalegate_config::{Config, LoadBalancer, Protocol, XffMode};
use tokio_rustls::TlsAcceptor;

use crate::access_log::AccessLogger;
use crate::metrics::{ListenerMetrics, TargetGroupMetrics};
use crate::routing::ListenerRoutes;
use crate::target_group::{PreparedGroup, TargetGroup};

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

/// A target group as one config version sees it: how to talk to its targets, plus the
/// long-lived group (targets, health, routing table) that outlives reloads.
pub struct TargetGroupRuntime {
    /// Name from the config.
    pub name: String,
    /// The name as the access log shares it, without copying per request.
    pub log_name: Arc<str>,
    /// `http` or `https` to targets.
    pub scheme: Scheme,
    /// HTTP version spoken to targets.
    pub protocol_version: scalegate_config::ProtocolVersion,
    /// Time to wait for response headers before a 504.
    pub response_timeout: Duration,
    /// Per-group metrics.
    pub metrics: TargetGroupMetrics,
    /// Targets, health and routing.
    pub group: Arc<TargetGroup>,
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
    /// Compiles the config's load balancer around already prepared target groups (in config
    /// order).
    pub(crate) fn compile(
        config: &Config,
        groups: &[PreparedGroup],
        access_log: Option<AccessLogger>,
    ) -> SharedState {
        let load_balancer = LoadBalancerSettings::new(&config.load_balancer);
        let target_groups = config
            .target_groups
            .iter()
            .zip(groups)
            .map(|(group, prepared)| TargetGroupRuntime {
                name: group.name.clone(),
                log_name: Arc::from(group.name.as_str()),
                scheme: match group.protocol {
                    Protocol::Http => Scheme::HTTP,
                    Protocol::Https => Scheme::HTTPS,
                },
                protocol_version: group.protocol_version,
                response_timeout: Duration::from_secs(
                    group
                        .response_timeout_seconds
                        .unwrap_or(config.load_balancer.idle_timeout_seconds),
                ),
                metrics: prepared.group.metrics().clone(),
                group: Arc::clone(&prepared.group),
            })
            .collect();
        SharedState {
            load_balancer,
            target_groups,
            access_log,
        }
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
