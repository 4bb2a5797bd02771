//! scalegate's data plane: an HTTP(S) proxy that behaves like an AWS Application Load
//! Balancer.
//!
//! [`Proxy`] owns the worker runtimes and listeners. A config is compiled into immutable
//! snapshots ([`snapshot`]) that the request path ([`handler`]) reads without locks; a reload
//! compiles a new snapshot completely (binding new listeners, reading certificates) before
//! swapping it in, so a bad reload changes nothing.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod actions;
pub mod admin;
pub mod body;
pub mod handler;
pub mod headers;
pub mod matching;
pub mod metrics;
pub mod routing;
pub mod server;
pub mod snapshot;
pub mod target_group;
pub mod tls;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::HeaderValue;
use scalegate_config::{AccessLog, Config, Protocol};
use tokio::sync::watch;

use crate::access_log::AccessLogger;
use crate::metrics::Metrics;
use crate::routing::ListenerRoutes;
use crate::server::{AcceptContext, BoundSockets, ConnectionCount, Workers};
use crate::snapshot::{ListenerRuntime, SharedState};

/// Why a config could not be applied; the running config is untouched when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A listener's address could not be bound.
    #[error("listener {listener}: cannot bind {address}: {source}")]
    Bind {
        /// Listener name.
        listener: String,
        /// Configured address.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A part of the config could not be compiled (certificates, rules, targets).
    #[error("{0}")]
    Compile(String),
    /// Worker threads could not start.
    #[error("cannot start worker runtimes: {0}")]
    Runtime(std::io::Error),
}

/// A listener as it is running: its name and the address it actually bound.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BoundListener {
    /// Listener name.
    pub name: String,
    /// HTTP or HTTPS.
    pub protocol: String,
    /// Bound address (port 0 in the config resolved).
    pub address: SocketAddr,
}

struct ActiveListener {
    configured: SocketAddr,
    bound: BoundListener,
    runtime: Arc<ArcSwap<ListenerRuntime>>,
    stop: watch::Sender<bool>,
}

struct ProxyState {
    shared: Option<Arc<SharedState>>,
    listeners: Vec<ActiveListener>,
    /// The access-log settings in force and their logger, kept across reloads that leave them
    /// unchanged so the writer thread and file stay open.
    access_log: Option<(AccessLog, Option<AccessLogger>)>,
}

/// The running load balancer: worker runtimes plus the listeners of the current config.
pub struct Proxy {
    metrics: Arc<Metrics>,
    workers: Mutex<Option<Workers>>,
    state: Mutex<ProxyState>,
    shutdown: watch::Sender<bool>,
    connections: Arc<ConnectionCount>,
}

impl Proxy {
    /// Starts the workers and every listener of `config`.
    pub fn start(config: &Config, metrics: Arc<Metrics>) -> Result<Proxy, ProxyError> {
        let workers = Workers::start(&config.load_balancer.runtime).map_err(ProxyError::Runtime)?;
        let (shutdown, _) = watch::channel(false);
        let proxy = Proxy {
            metrics,
            workers: Mutex::new(Some(workers)),
            state: Mutex::new(ProxyState {
                shared: None,
                listeners: Vec::new(),
                access_log: None,
            }),
            shutdown,
            connections: Arc::new(ConnectionCount::default()),
        };
        proxy.apply(config)?;
        Ok(proxy)
    }

    /// Applies a new config: everything is compiled and every new listener bound first; only
    /// then are snapshots swapped, new listeners started and removed ones stopped. Requests in
    /// flight finish on the snapshot they started with.
    pub fn apply(&self, config: &Config) -> Result<(), ProxyError> {
        let workers_guard = self.workers.lock().expect("workers lock");
        let Some(workers) = workers_guard.as_ref() else {
            return Err(ProxyError::Compile("the proxy is shutting down".into()));
        };
        if workers.mode() != config.load_balancer.runtime.mode {
            tracing::warn!("load_balancer.runtime changes take effect at the next restart");
        }
        let mut state = self.state.lock().expect("proxy state lock");
        let access_log = match &state.access_log {
            Some((settings, logger)) if *settings == config.access_log => logger.clone(),
            _ => AccessLogger::from_config(
                &config.access_log,
                &config.load_balancer.name,
                self.metrics.access_log_dropped(),
            )
            .map_err(|error| ProxyError::Compile(format!("access_log: {error}")))?,
        };
        let shared = Arc::new(
            SharedState::compile(
                config,
                state.shared.as_deref(),
                &self.metrics,
                workers.pool_count(),
                access_log.clone(),
            )
            .map_err(ProxyError::Compile)?,
        );

        // Compile and bind everything before touching what runs.
        struct Planned {
            existing: Option<usize>,
            configured: SocketAddr,
            sockets: Option<BoundSockets>,
            bound: BoundListener,
            runtime: Arc<ListenerRuntime>,
        }
        let mut planned = Vec::with_capacity(config.listeners.len());
        for listener in &config.listeners {
            let name = listener.display_name();
            // The same configured address is the same listener; with port 0 (any free port)
            // several listeners share that address, so those are matched by name too. Each
            // running listener is reused at most once.
            let existing = state
                .listeners
                .iter()
                .enumerate()
                .position(|(index, active)| {
                    active.configured == listener.address
                        && (listener.address.port() != 0 || active.bound.name == name)
                        && !planned.iter().any(|p: &Planned| p.existing == Some(index))
                });
            let (sockets, address) = match existing {
                Some(index) => (None, state.listeners[index].bound.address),
                None => {
                    let sockets = server::bind(listener.address, workers).map_err(|source| {
                        ProxyError::Bind {
                            listener: name.clone(),
                            address: listener.address,
                            source,
                        }
                    })?;
                    let address = sockets.local_address;
                    (Some(sockets), address)
                }
            };
            let routes =
                ListenerRoutes::compile(listener, &|group| shared.target_group_index(group))
                    .map_err(|reason| ProxyError::Compile(format!("listener {name}: {reason}")))?;
            let tls = match (&listener.protocol, &listener.tls) {
                (Protocol::Https, Some(tls)) => Some(
                    tls::build_acceptor(tls, config.load_balancer.http2_enabled).map_err(
                        |reason| ProxyError::Compile(format!("listener {name}: {reason}")),
                    )?,
                ),
                (Protocol::Https, None) => {
                    return Err(ProxyError::Compile(format!(
                        "listener {name}: HTTPS needs certificates"
                    )))
                }
                _ => None,
            };
            let protocol = listener.protocol;
            let runtime = Arc::new(ListenerRuntime {
                name: name.clone(),
                protocol,
                port: address.port(),
                http2_prior_knowledge: listener.http2_prior_knowledge,
                routes,
                tls,
                metrics: self.metrics.listener(&name),
                forwarded_port: HeaderValue::from(address.port()),
                forwarded_proto: HeaderValue::from_static(match protocol {
                    Protocol::Http => "http",
                    Protocol::Https => "https",
                }),
                shared: Arc::clone(&shared),
            });
            let bound = BoundListener {
                name,
                protocol: protocol.as_str().to_string(),
                address,
            };
            planned.push(Planned {
                existing,
                configured: listener.address,
                sockets,
                bound,
                runtime,
            });
        }

        // Commit.
        let mut previous: Vec<Option<ActiveListener>> =
            state.listeners.drain(..).map(Some).collect();
        let mut next = Vec::with_capacity(planned.len());
        for plan in planned {
            match plan.existing {
                Some(index) => {
                    let mut active = previous[index]
                        .take()
                        .expect("each existing listener is reused once");
                    active.runtime.store(plan.runtime);
                    active.bound = plan.bound;
                    next.push(active);
                }
                None => {
                    let runtime = Arc::new(ArcSwap::new(plan.runtime));
                    let (stop, stop_receiver) = watch::channel(false);
                    let context = AcceptContext {
                        listener: Arc::clone(&runtime),
                        stop: stop_receiver,
                        shutdown: self.shutdown.subscribe(),
                        connections: Arc::clone(&self.connections),
                    };
                    let sockets = plan.sockets.expect("a new listener was bound");
                    server::spawn_accept_loops(workers, sockets, context)
                        .map_err(ProxyError::Runtime)?;
                    tracing::info!(listener = %plan.bound.name, protocol = %plan.bound.protocol, address = %plan.bound.address, "listening");
                    next.push(ActiveListener {
                        configured: plan.configured,
                        bound: plan.bound,
                        runtime,
                        stop,
                    });
                }
            }
        }
        for removed in previous.into_iter().flatten() {
            tracing::info!(listener = %removed.bound.name, address = %removed.bound.address, "listener removed");
            let _ = removed.stop.send(true);
        }
        state.listeners = next;
        // Series of listeners, groups and targets that left the config go too, so /metrics
        // does not keep reporting what no longer exists.
        self.metrics
            .retain_listeners(|name| state.listeners.iter().any(|l| l.bound.name == name));
        self.metrics
            .retain_target_groups(|name| shared.target_group_index(name).is_some());
        self.metrics.retain_targets(|group, target| {
            shared.target_groups.iter().any(|g| {
                g.name == group && g.targets.iter().any(|t| t.authority.as_str() == target)
            })
        });
        state.shared = Some(shared);
        state.access_log = Some((config.access_log.clone(), access_log));
        Ok(())
    }

    /// Reopens the access-log file (after logrotate moved it); called on SIGHUP.
    pub fn reopen_access_log(&self) {
        let state = self.state.lock().expect("proxy state lock");
        if let Some((_, Some(logger))) = &state.access_log {
            if let Err(error) = logger.reopen() {
                tracing::warn!(%error, "cannot reopen the access log");
            }
        }
    }

    /// The listeners running now, with their bound addresses (served at the admin API's
    /// `/api/listeners`, so port-0 listeners can be found).
    pub fn listeners(&self) -> Vec<BoundListener> {
        self.state
            .lock()
            .expect("proxy state lock")
            .listeners
            .iter()
            .map(|l| l.bound.clone())
            .collect()
    }

    /// Stops accepting, lets open connections finish their requests for up to `grace`, then
    /// stops the workers.
    pub async fn shutdown(&self, grace: Duration) {
        let _ = self.shutdown.send(true);
        let deadline = Instant::now() + grace;
        while self.connections.get() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let workers = self.workers.lock().expect("workers lock").take();
        if let Some(workers) = workers {
            let _ = tokio::task::spawn_blocking(move || workers.stop()).await;
        }
    }
}
