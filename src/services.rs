//! Services in `scalegate run`: the config's `task_definitions` and `services` become service
//! schedulers over the local task runtime, and each service with `scaling` gets an autoscaling
//! loop. This file is the glue between the autoscaler crate and the proxy and registry: it
//! implements the autoscaler's small interfaces ([`TaskRegistrar`], [`LoadBalancerMetrics`])
//! over the target groups and the embedded registry, so neither side reaches into the other.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use scalegate_autoscaler::autoscaling::{
    self, ActivityLog, AutoscalerHandle, AutoscalerMetrics, LoadBalancerMetrics,
    ScalingConfiguration, TargetGroupLoad,
};
use scalegate_autoscaler::from_config::{
    scaling_from_config, service_from_config, TaskDefinitionStore,
};
use scalegate_autoscaler::local::{Launcher, LocalRuntime, LocalRuntimeConfig};
use scalegate_autoscaler::scheduler::{
    self, RegistrationFailed, ServiceDefinition, ServiceHandle, ServiceSnapshot, ServiceTargets,
    TaskHealth, TaskRegistrar, TaskTarget,
};
use scalegate_autoscaler::{StopReason, TaskDefinition, TaskId};
use scalegate_config::Config;
use scalegate_discovery::registry::{EmbeddedRegistry, HealthStatus, ServiceInstance};
use scalegate_proxy::target_group::{HealthState, RegistrationSource, TargetGroups};

/// The command name that means "this scalegate binary", so that a task can run
/// `scalegate workload` whether or not scalegate is on `PATH` (e.g. under `cargo run`).
pub const SELF_COMMAND: &str = "scalegate";

/// Where `scalegate run` keeps what services need beyond the config.
#[derive(Debug, Clone)]
pub struct ServiceEnvironment {
    /// The config file's directory: relative commands and working directories start here.
    pub config_dir: PathBuf,
    /// Where task log files go (`<dir>/<service>/<task-id>.log`).
    pub task_log_dir: PathBuf,
    /// Base of the task metadata URL (`http://<admin>/v4`), when the admin API serves it.
    pub metadata_base_url: Option<String>,
}

/// Every service of the running config.
pub struct Services {
    runtime: LocalRuntime,
    registrar: Arc<ProxyRegistrar>,
    metrics: AutoscalerMetrics,
    environment: ServiceEnvironment,
    state: tokio::sync::Mutex<State>,
    /// Read by the admin API without awaiting.
    view: Arc<Mutex<BTreeMap<String, ServiceView>>>,
}

#[derive(Default)]
struct State {
    definitions: TaskDefinitionStore,
    running: HashMap<String, RunningService>,
}

struct RunningService {
    handle: ServiceHandle,
    autoscaler: Option<AutoscalerHandle>,
    observer: tokio::task::JoinHandle<()>,
}

/// What the admin API reads of one service.
#[derive(Clone)]
pub struct ServiceView {
    /// The scheduler.
    pub handle: ServiceHandle,
    /// Its scaling activities, when it scales.
    pub activities: Option<ActivityLog>,
}

impl Services {
    /// Starts nothing yet; [`Services::apply`] starts the config's services.
    pub fn new(
        target_groups: Arc<TargetGroups>,
        registry: Arc<EmbeddedRegistry>,
        metrics_registry: &prometheus::Registry,
        environment: ServiceEnvironment,
    ) -> anyhow::Result<Services> {
        let mut runtime_config = LocalRuntimeConfig::new(environment.task_log_dir.clone());
        runtime_config.metadata_base_url = environment.metadata_base_url.clone();
        runtime_config.launcher = Launcher::current_executable();
        Ok(Services {
            runtime: LocalRuntime::new(runtime_config),
            registrar: Arc::new(ProxyRegistrar {
                target_groups,
                registry,
                registry_health: Mutex::new(HashMap::new()),
            }),
            metrics: AutoscalerMetrics::register(metrics_registry),
            environment,
            state: tokio::sync::Mutex::new(State::default()),
            view: Arc::new(Mutex::new(BTreeMap::new())),
        })
    }

    /// The services as the admin API sees them, by name.
    pub fn view(&self) -> Arc<Mutex<BTreeMap<String, ServiceView>>> {
        Arc::clone(&self.view)
    }

    /// Checks what `config` asks of services without changing anything: every definition maps
    /// and every command can run. Called before the other parts apply a reload.
    pub async fn prepare(&self, config: &Config) -> anyhow::Result<Prepared> {
        let state = self.state.lock().await;
        let mut definitions = state.definitions.clone();
        drop(state);
        let mut services = Vec::new();
        for service in &config.services {
            let family = config
                .task_definitions
                .iter()
                .find(|definition| definition.family == service.task_definition)
                .with_context(|| {
                    format!(
                        "service {}: task definition {} not found",
                        service.name, service.task_definition
                    )
                })?;
            let mut definition = definitions.register(family, &self.environment.config_dir);
            resolve_self_command(&mut definition)?;
            let scaling = scaling_from_config(service)?.map(|plan| ScalingConfiguration {
                target: plan.target,
                settings: plan.settings,
                policies: plan.policies,
            });
            services.push(PreparedService {
                definition: ServiceDefinition {
                    service: service_from_config(service, &definition.revision),
                    definition,
                },
                scaling,
            });
        }
        Ok(Prepared {
            definitions,
            services,
        })
    }

    /// Carries out a prepared config: starts new services, updates changed ones (a new
    /// revision deploys; new scaling applies), and stops removed ones gracefully.
    pub async fn commit(&self, prepared: Prepared) {
        let mut state = self.state.lock().await;
        state.definitions = prepared.definitions;
        let wanted: Vec<String> = prepared
            .services
            .iter()
            .map(|service| service.definition.service.name.clone())
            .collect();
        let removed: Vec<String> = state
            .running
            .keys()
            .filter(|name| !wanted.contains(name))
            .cloned()
            .collect();
        for name in removed {
            if let Some(service) = state.running.remove(&name) {
                tracing::info!(service = %name, "service removed from the config: stopping its tasks");
                self.view.lock().expect("view lock").remove(&name);
                if let Some(autoscaler) = &service.autoscaler {
                    autoscaler.stop();
                }
                service.handle.set_desired_count(0).ok();
                service.handle.shutdown().await;
                service.observer.abort();
                self.metrics.forget_service(&name);
            }
        }
        for prepared in prepared.services {
            let name = prepared.definition.service.name.clone();
            match state.running.get_mut(&name) {
                Some(running) => {
                    // The desired count is the autoscaler's (or the API's) once running: a
                    // reload changes it only for services without scaling.
                    let desired = if prepared.scaling.is_some() {
                        running.handle.snapshot().desired_count
                    } else {
                        prepared.definition.service.desired_count
                    };
                    let mut definition = prepared.definition;
                    definition.service.desired_count = desired;
                    running.handle.update(definition).ok();
                    running.handle.set_desired_count(desired).ok();
                    match (&running.autoscaler, prepared.scaling) {
                        (Some(autoscaler), Some(scaling)) => autoscaler.update(scaling),
                        (None, Some(scaling)) => {
                            running.autoscaler =
                                Some(self.start_autoscaler(&running.handle, scaling));
                        }
                        (Some(autoscaler), None) => {
                            autoscaler.stop();
                            running.autoscaler = None;
                        }
                        (None, None) => {}
                    }
                    self.publish_view(&name, running);
                }
                None => {
                    tracing::info!(
                        service = %name,
                        task_definition = %prepared.definition.definition.revision,
                        desired = prepared.definition.service.desired_count,
                        "starting service"
                    );
                    let handle = scheduler::spawn(
                        prepared.definition,
                        self.runtime.clone(),
                        Arc::clone(&self.registrar),
                    );
                    let autoscaler = prepared
                        .scaling
                        .map(|scaling| self.start_autoscaler(&handle, scaling));
                    let observer = tokio::spawn(observe(handle.clone(), self.metrics.clone()));
                    let running = RunningService {
                        handle,
                        autoscaler,
                        observer,
                    };
                    self.publish_view(&name, &running);
                    state.running.insert(name, running);
                }
            }
        }
    }

    /// Shows a service to the admin API as it runs now.
    fn publish_view(&self, name: &str, running: &RunningService) {
        self.view.lock().expect("view lock").insert(
            name.to_string(),
            ServiceView {
                handle: running.handle.clone(),
                activities: running
                    .autoscaler
                    .as_ref()
                    .map(|autoscaler| autoscaler.activities().clone()),
            },
        );
    }

    fn start_autoscaler(
        &self,
        handle: &ServiceHandle,
        scaling: ScalingConfiguration,
    ) -> AutoscalerHandle {
        autoscaling::spawn(
            handle.clone(),
            scaling,
            Arc::clone(&self.registrar),
            self.metrics.clone(),
        )
    }

    /// Stops autoscaling, then every service's tasks the graceful way, all services at once.
    pub async fn shutdown(&self) {
        let mut state = self.state.lock().await;
        let running: Vec<RunningService> =
            state.running.drain().map(|(_, service)| service).collect();
        drop(state);
        for service in &running {
            if let Some(autoscaler) = &service.autoscaler {
                autoscaler.stop();
            }
        }
        let stops = running.iter().map(|service| service.handle.shutdown());
        futures_util::future::join_all(stops).await;
        for service in running {
            service.observer.abort();
        }
    }

    /// Stops one task (ECS `StopTask`); its service replaces it.
    pub async fn stop_task(&self, service: &str, task: &str) -> anyhow::Result<()> {
        let handle = self
            .view
            .lock()
            .expect("view lock")
            .get(service)
            .map(|view| view.handle.clone())
            .with_context(|| format!("service `{service}` not found"))?;
        handle
            .stop_task(TaskId(task.to_string()), StopReason::UserInitiated)
            .await?;
        Ok(())
    }
}

/// What [`Services::prepare`] checked, ready to commit.
pub struct Prepared {
    definitions: TaskDefinitionStore,
    services: Vec<PreparedService>,
}

struct PreparedService {
    definition: ServiceDefinition,
    scaling: Option<ScalingConfiguration>,
}

/// Resolves the [`SELF_COMMAND`] to this executable.
fn resolve_self_command(definition: &mut TaskDefinition) -> anyhow::Result<()> {
    if definition.command == SELF_COMMAND {
        let path = std::env::current_exe().context("cannot find scalegate's own executable")?;
        definition.command = path.to_string_lossy().into_owned();
    }
    Ok(())
}

/// Publishes each new snapshot of a service to Prometheus.
async fn observe(handle: ServiceHandle, metrics: AutoscalerMetrics) {
    let mut snapshots = handle.watch();
    loop {
        let snapshot: Arc<ServiceSnapshot> = Arc::clone(&snapshots.borrow_and_update());
        metrics.observe_service(&snapshot);
        if snapshots.changed().await.is_err() {
            return;
        }
    }
}

/// Registers tasks with the proxy's target groups and the embedded registry, and reads target
/// health and request counts back.
pub struct ProxyRegistrar {
    target_groups: Arc<TargetGroups>,
    registry: Arc<EmbeddedRegistry>,
    /// The health last given to the registry per task, so it is written only on change.
    registry_health: Mutex<HashMap<TaskId, HealthStatus>>,
}

impl TaskRegistrar for ProxyRegistrar {
    fn register(
        &self,
        service: &ServiceTargets,
        task: &TaskTarget,
    ) -> Result<(), RegistrationFailed> {
        for name in &service.target_groups {
            let group = self
                .target_groups
                .get(name)
                .ok_or_else(|| RegistrationFailed(format!("target group {name} does not exist")))?;
            group
                .register(&[task.address], RegistrationSource::Api)
                .map_err(|error| RegistrationFailed(error.to_string()))?;
        }
        if let Some((namespace, registry_service)) = &service.registry {
            // Behind a load balancer a task is not announced healthy until it passes checks.
            let health = if service.has_load_balancer() {
                HealthStatus::Unhealthy
            } else {
                HealthStatus::Healthy
            };
            let attributes = BTreeMap::from([
                ("ECS_SERVICE_NAME".to_string(), service.service.clone()),
                ("SCALEGATE_TASK_ID".to_string(), task.id.0.clone()),
            ]);
            self.registry
                .register_instance(
                    namespace,
                    registry_service,
                    ServiceInstance {
                        instance_id: task.id.0.clone(),
                        address: task.address.ip(),
                        port: task.address.port(),
                        health,
                        attributes,
                    },
                )
                .map_err(|error| RegistrationFailed(format!("registry: {error}")))?;
            self.registry_health
                .lock()
                .expect("registry health lock")
                .insert(task.id.clone(), health);
        }
        Ok(())
    }

    fn deregister(&self, service: &ServiceTargets, task: &TaskTarget) -> Duration {
        for name in &service.target_groups {
            if let Some(group) = self.target_groups.get(name) {
                // Not registered (never was, or an operator removed it): nothing to drain.
                let _ = group.deregister(&[task.address], RegistrationSource::Api);
            }
        }
        self.registry_health
            .lock()
            .expect("registry health lock")
            .remove(&task.id);
        match &service.registry {
            Some((namespace, registry_service)) => self
                .registry
                .deregister_instance(namespace, registry_service, &task.id.0)
                .map(|deregistered| deregistered.keep_reachable_for)
                .unwrap_or(Duration::ZERO),
            None => Duration::ZERO,
        }
    }

    fn drained(&self, service: &ServiceTargets, task: &TaskTarget) -> bool {
        service.target_groups.iter().all(|name| {
            self.target_groups
                .get(name)
                .is_none_or(|group| !group.registered_addresses().contains(&task.address))
        })
    }

    fn health(&self, service: &ServiceTargets, task: &TaskTarget) -> TaskHealth {
        let mut verdict = TaskHealth::Healthy;
        for name in &service.target_groups {
            let state = self.target_groups.get(name).and_then(|group| {
                group
                    .describe(Some(&[task.address]))
                    .first()
                    .map(|description| description.target_health.state)
            });
            match state {
                Some(HealthState::Healthy | HealthState::Unavailable) => {}
                Some(HealthState::Unhealthy) => {
                    verdict = TaskHealth::Unhealthy;
                    break;
                }
                _ => verdict = TaskHealth::Unknown,
            }
        }
        if let Some((namespace, registry_service)) = &service.registry {
            let status = match verdict {
                TaskHealth::Healthy => Some(HealthStatus::Healthy),
                TaskHealth::Unhealthy => Some(HealthStatus::Unhealthy),
                TaskHealth::Unknown => None,
            };
            let mut last = self.registry_health.lock().expect("registry health lock");
            if let Some(status) = status.filter(|status| last.get(&task.id) != Some(status)) {
                if self
                    .registry
                    .set_instance_health(namespace, registry_service, &task.id.0, status)
                    .is_ok()
                {
                    last.insert(task.id.clone(), status);
                }
            }
        }
        verdict
    }
}

impl LoadBalancerMetrics for ProxyRegistrar {
    fn target_group_load(&self, target_group: &str) -> Option<TargetGroupLoad> {
        let load = self.target_groups.get(target_group)?.load();
        Some(TargetGroupLoad {
            requests_total: load.requests_total,
            healthy_targets: load.healthy_targets,
        })
    }
}

/// The config file's directory, or the working directory for the bundled example.
pub fn config_dir(path: Option<&Path>) -> PathBuf {
    path.and_then(Path::parent)
        .filter(|parent| !parent.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}
