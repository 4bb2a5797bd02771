//! Feeds target groups from their discovery sources.
//!
//! One watch per target group that has `discovery`: its add/remove updates become
//! registrations with [`RegistrationSource::Discovery`], so a new address enters `initial` and
//! is health-checked, and a vanished one drains. A reload that changes a group's discovery
//! settings restarts its watch from the addresses it had found (no flap); a reload that removes
//! them drains what discovery registered. This is the only place where the discovery crate
//! meets the proxy's target groups.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use scalegate_config::{Config, TargetDiscovery};
use scalegate_discovery::registry::EmbeddedRegistry;
use scalegate_discovery::watch::{self, WatchSpec, WatchStatusHandle};
use scalegate_discovery::{DiscoveryMetrics, TargetUpdate};
use scalegate_proxy::target_group::{RegistrationError, RegistrationSource, TargetGroups};
use tokio::task::JoinHandle;

/// What the watch of one group needs to know about the embedded registry: the namespaces it
/// serves, so names inside them are asked there (in-process) without configuring name servers.
#[derive(Clone)]
pub struct RegistryLocation {
    /// Namespaces served, such as `scalegate.local`.
    pub namespaces: Vec<String>,
    /// The registry.
    pub registry: Arc<EmbeddedRegistry>,
}

/// The running watches, by target group name.
pub struct TargetDiscoveryWiring {
    groups: Arc<TargetGroups>,
    metrics: DiscoveryMetrics,
    watches: Mutex<HashMap<String, RunningWatch>>,
}

/// Watches built from a config and not yet started; see [`TargetDiscoveryWiring::prepare`].
pub struct PreparedWatches {
    wanted: HashMap<String, (WatchSpec, WatchKey)>,
}

/// The addresses a watch registered, shared between its forwarding task and the wiring.
type Discovered = Arc<Mutex<Option<BTreeSet<SocketAddr>>>>;

/// What a watch is started from; a reload with the same key keeps the watch running.
type WatchKey = (TargetDiscovery, u16, Vec<String>);

struct RunningWatch {
    /// What the watch was started from; a reload with the same settings keeps it running.
    started_from: WatchKey,
    description: String,
    /// Addresses this watch registered and has not removed; `None` once the watch is
    /// stopped, so an update racing the stop cannot register an address nobody tracks.
    discovered: Discovered,
    status: WatchStatusHandle,
    task: JoinHandle<()>,
}

impl Drop for RunningWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TargetDiscoveryWiring {
    /// No watches yet; [`TargetDiscoveryWiring::commit`] starts them.
    pub fn new(groups: Arc<TargetGroups>, metrics: DiscoveryMetrics) -> Arc<TargetDiscoveryWiring> {
        Arc::new(TargetDiscoveryWiring {
            groups,
            metrics,
            watches: Mutex::new(HashMap::new()),
        })
    }

    /// Builds the watches `config` asks for without starting any, so a reload can fail here
    /// before anything changed (an unreadable resolver configuration, say).
    pub fn prepare(
        &self,
        config: &Config,
        registry: &RegistryLocation,
    ) -> Result<PreparedWatches, scalegate_discovery::DiscoveryError> {
        let mut wanted = HashMap::new();
        for group in &config.target_groups {
            let Some(discovery) = &group.discovery else {
                continue;
            };
            let spec = WatchSpec::from_config(
                discovery,
                group.port,
                Some((registry.namespaces.as_slice(), &registry.registry)),
            )?;
            let started_from = (discovery.clone(), group.port, registry.namespaces.clone());
            wanted.insert(group.name.clone(), (spec, started_from));
        }
        Ok(PreparedWatches { wanted })
    }

    /// Starts, restarts or stops watches to match what was prepared. Must run after the proxy
    /// applied the same config, so every group named exists.
    pub fn commit(&self, prepared: PreparedWatches) {
        let PreparedWatches { wanted } = prepared;
        let mut watches = self.watches.lock().expect("discovery watches lock");
        let stale: Vec<String> = watches
            .iter()
            .filter(|(name, running)| match wanted.get(*name) {
                Some((_, started_from)) => *started_from != running.started_from,
                None => true,
            })
            .map(|(name, _)| name.clone())
            .collect();
        let mut carried = HashMap::new();
        for name in stale {
            let running = watches.remove(&name).expect("listed above");
            running.task.abort();
            // Waits for an update being applied, then closes the set to later ones.
            let discovered = running
                .discovered
                .lock()
                .expect("discovered targets lock")
                .take()
                .unwrap_or_default();
            if wanted.contains_key(&name) {
                // Restarted with new settings: the new watch starts from what was found, so
                // targets that are still there are not drained and re-registered.
                carried.insert(name, discovered);
            } else {
                tracing::info!(target_group = %name, targets = discovered.len(), "discovery removed from the target group; draining what it registered");
                self.remove(&name, discovered.into_iter().collect());
            }
        }
        for (name, (spec, started_from)) in wanted {
            if watches.contains_key(&name) {
                continue;
            }
            let initial = carried.remove(&name).unwrap_or_default();
            let description = spec.describe();
            tracing::info!(target_group = %name, source = %description, "discovery watching");
            let discovered = Arc::new(Mutex::new(Some(initial.clone())));
            let watch = watch::spawn(spec, &name, initial, self.metrics.clone());
            let status = watch.status_handle();
            let task = tokio::spawn(forward_updates(
                name.clone(),
                watch,
                Arc::clone(&self.groups),
                Arc::clone(&discovered),
            ));
            watches.insert(
                name,
                RunningWatch {
                    started_from,
                    description,
                    discovered,
                    status,
                    task,
                },
            );
        }
    }

    /// Each watch's state, for `GET /api/discovery`.
    pub fn describe(&self) -> serde_json::Value {
        let watches = self.watches.lock().expect("discovery watches lock");
        let mut names: Vec<&String> = watches.keys().collect();
        names.sort();
        let entries: Vec<serde_json::Value> = names
            .into_iter()
            .map(|name| {
                let running = &watches[name];
                serde_json::json!({
                    "target_group": name,
                    "source": running.description,
                    "status": running.status.snapshot(),
                })
            })
            .collect();
        serde_json::json!({ "watches": entries })
    }

    /// Stops every watch, leaving the targets registered (shutdown).
    pub fn stop(&self) {
        self.watches.lock().expect("discovery watches lock").clear();
    }

    fn remove(&self, group_name: &str, addresses: Vec<SocketAddr>) {
        if let Some(group) = self.groups.get(group_name) {
            deregister_each(&group, &addresses);
        }
    }
}

/// Applies one watch's updates to its group for as long as the watch runs.
async fn forward_updates(
    group_name: String,
    mut watch: watch::Watch,
    groups: Arc<TargetGroups>,
    discovered: Discovered,
) {
    loop {
        let Some(update) = watch.next().await else {
            break;
        };
        let Some(group) = groups.get(&group_name) else {
            continue;
        };
        // The lock is held while the group changes, so a stop either waits for this update
        // (and carries or drains its addresses) or comes first (and this update is dropped).
        let mut discovered = discovered.lock().expect("discovered targets lock");
        let Some(discovered) = discovered.as_mut() else {
            break;
        };
        match update {
            TargetUpdate::Add(addresses) => {
                discovered.extend(register_each(&group, &addresses));
            }
            TargetUpdate::Remove(addresses) => {
                deregister_each(&group, &addresses);
                for address in &addresses {
                    discovered.remove(address);
                }
            }
        }
    }
}

/// Registers addresses one by one, so one refused address (the group is full) does not keep
/// the others out; returns those registered.
fn register_each(
    group: &Arc<scalegate_proxy::target_group::TargetGroup>,
    addresses: &[SocketAddr],
) -> Vec<SocketAddr> {
    let mut accepted = Vec::with_capacity(addresses.len());
    for address in addresses {
        match group.register(&[*address], RegistrationSource::Discovery) {
            Ok(()) => accepted.push(*address),
            Err(error) => {
                tracing::error!(target_group = %group.name(), %address, %error, "discovered target not registered")
            }
        }
    }
    accepted
}

/// Deregisters addresses one by one; one already deregistered through the admin API is not an
/// error here.
fn deregister_each(
    group: &Arc<scalegate_proxy::target_group::TargetGroup>,
    addresses: &[SocketAddr],
) {
    for address in addresses {
        match group.deregister(&[*address], RegistrationSource::Discovery) {
            Ok(()) | Err(RegistrationError::NotRegistered(..)) => {}
            Err(error) => {
                tracing::error!(target_group = %group.name(), %address, %error, "discovered target not deregistered")
            }
        }
    }
}
