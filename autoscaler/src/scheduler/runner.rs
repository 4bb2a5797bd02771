//! The service scheduler's loop: one task per service that carries out [`plan()`] through a
//! [`TaskRuntime`] and a [`TaskRegistrar`].
//!
//! The loop owns the service's view of its tasks (ECS's `lastStatus` for each) and is the only
//! writer of it, so there are no locks to reason about: commands (a new desired count, a new
//! task definition revision, stop this task, shut down), task exits from the runtime, the ends of
//! stop sequences and a 250 ms tick all arrive on channels, and after each the loop plans again.
//!
//! Lifecycle as ECS runs it:
//! - start: `PROVISIONING`/`PENDING` (the runtime starts the process) → `ACTIVATING` (registered
//!   in target groups and the registry) → `RUNNING`;
//! - stop (scale-in, replacement, deployment, user, shutdown): `DEACTIVATING` (deregistered;
//!   wait until the target groups have drained it and the DNS TTL has passed) → `STOPPING`
//!   (SIGTERM, stop timeout, SIGKILL) → `STOPPED`;
//! - a task that exits on its own is deregistered at once and replaced, with ECS's restart
//!   throttle ([`RestartBackoff`]) for tasks that keep failing.

use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

// tokio's clock (the same as std's outside tests), so tests can run the loop on a paused clock.
use tokio::time::Instant;

use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::backend::{BackendError, ResourceUsage, TaskEvent, TaskRuntime};
use crate::local::RestartBackoff;
use crate::scheduler::plan::{plan, ServiceSpec, TaskHealth, TaskView};
use crate::scheduler::registrar::{ServiceTargets, TaskRegistrar, TaskTarget};
use crate::service::{ContainerPort, Service, TaskDefinition};
use crate::task::{StopReason, TaskExit, TaskId, TaskState};

/// How often the loop re-plans without being woken: health changes arrive this way.
const TICK: Duration = Duration::from_millis(250);
/// How often a stop sequence checks whether the target groups have drained the task.
const DRAIN_POLL: Duration = Duration::from_millis(100);
/// Longest a stop waits for draining: ALB's largest deregistration delay.
const DRAIN_LIMIT: Duration = Duration::from_secs(3600);
/// Stopped tasks kept for `describe` (ECS keeps them about an hour; a count bounds memory).
const STOPPED_KEPT: usize = 50;
/// Service events kept, newest first (ECS shows the last 100).
const EVENTS_KEPT: usize = 100;
/// Without a load balancer a task that stays up this long counts as started successfully,
/// which resets the restart throttle (with one, passing health checks does).
const PROVEN_UPTIME: Duration = Duration::from_secs(10);

/// What a scheduler runs: the service, the revision its tasks run, and where they register.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceDefinition {
    /// The service (its `task_definition` names `definition`'s revision).
    pub service: Service,
    /// The task definition revision to run.
    pub definition: TaskDefinition,
}

impl ServiceDefinition {
    /// Where the service's tasks register: its target groups and registry name
    /// (`service.namespace`, split at the first dot: the service is one DNS label).
    pub fn targets(&self) -> ServiceTargets {
        ServiceTargets {
            service: self.service.name.clone(),
            target_groups: self.service.target_groups.clone(),
            registry: self.service.dns_name.as_ref().and_then(|name| {
                name.split_once('.')
                    .map(|(service, namespace)| (namespace.to_string(), service.to_string()))
            }),
        }
    }
}

/// One task as `DescribeTasks` would show it, plus its health and restart context.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskSnapshot {
    /// The task's ID.
    pub task_id: String,
    /// `family:N`.
    pub task_definition: String,
    /// ECS `lastStatus`.
    pub last_status: &'static str,
    /// ECS `desiredStatus`: `RUNNING` or `STOPPED`.
    pub desired_status: &'static str,
    /// `HEALTHY`, `UNHEALTHY` or `UNKNOWN` (ECS `healthStatus`), from the target groups.
    pub health_status: &'static str,
    /// Where it serves.
    pub address: String,
    /// Its process group leader, for `ps` and `kill -- -PID`.
    pub pid: Option<u32>,
    /// When it was created.
    #[serde(with = "crate::activity::rfc3339")]
    pub created_at: SystemTime,
    /// When it stopped.
    #[serde(with = "crate::activity::rfc3339_option")]
    pub stopped_at: Option<SystemTime>,
    /// ECS `stopCode`.
    pub stop_code: Option<&'static str>,
    /// ECS `stoppedReason`, in words.
    pub stopped_reason: Option<String>,
    /// How its process ended, e.g. "exit code 1".
    pub exit: Option<String>,
}

/// A service event, as ECS lists them under the service ("has started 1 tasks", "has reached
/// a steady state").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceEvent {
    /// When it happened.
    #[serde(with = "crate::activity::rfc3339")]
    pub created_at: SystemTime,
    /// What happened.
    pub message: String,
}

/// A service as `DescribeServices` would show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceSnapshot {
    /// The service's name.
    pub service_name: String,
    /// The revision new tasks run.
    pub task_definition: String,
    /// Tasks wanted.
    pub desired_count: u32,
    /// Tasks in `RUNNING`.
    pub running_count: u32,
    /// Tasks in `PROVISIONING`, `PENDING` or `ACTIVATING`.
    pub pending_count: u32,
    /// Running tasks the load balancer reports healthy (all running ones without a load balancer).
    pub healthy_count: u32,
    /// Whether tasks of another revision are still live.
    pub deployment_in_progress: bool,
    /// While tasks keep failing to start: the wait before the next attempt, in seconds.
    pub restart_delay_seconds: Option<f64>,
    /// Live tasks, then recently stopped ones, newest first within each.
    pub tasks: Vec<TaskSnapshot>,
    /// Recent events, newest first.
    pub events: Vec<ServiceEvent>,
}

/// Why a command to a scheduler failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedulerError {
    /// The scheduler has shut down.
    #[error("service `{0}` is not running")]
    Stopped(String),
    /// The task is not one of the service's live tasks.
    #[error("task `{0}` is not a running task of this service")]
    UnknownTask(TaskId),
}

enum Command {
    SetDesired(u32),
    Update(Box<ServiceDefinition>),
    StopTask(
        TaskId,
        StopReason,
        oneshot::Sender<Result<(), SchedulerError>>,
    ),
    Utilization(oneshot::Sender<Option<ResourceUsage>>),
    Shutdown(oneshot::Sender<()>),
}

/// A running scheduler: send it commands, read its latest snapshot.
#[derive(Clone)]
pub struct ServiceHandle {
    name: String,
    commands: mpsc::UnboundedSender<Command>,
    snapshot: watch::Receiver<Arc<ServiceSnapshot>>,
    join: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
}

impl ServiceHandle {
    /// The service's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The latest snapshot (updated after every change).
    pub fn snapshot(&self) -> Arc<ServiceSnapshot> {
        Arc::clone(&self.snapshot.borrow())
    }

    /// A receiver that wakes on every new snapshot.
    pub fn watch(&self) -> watch::Receiver<Arc<ServiceSnapshot>> {
        self.snapshot.clone()
    }

    /// Sets the desired count (ECS `UpdateService --desired-count`).
    pub fn set_desired_count(&self, desired: u32) -> Result<(), SchedulerError> {
        self.send(Command::SetDesired(desired))
    }

    /// Moves the service to a new definition: a new revision starts a rolling deployment; new
    /// target groups or registry names apply to tasks started from now on.
    pub fn update(&self, definition: ServiceDefinition) -> Result<(), SchedulerError> {
        self.send(Command::Update(Box::new(definition)))
    }

    /// Stops one task the graceful way (ECS `StopTask`); the service then replaces it.
    pub async fn stop_task(&self, id: TaskId, reason: StopReason) -> Result<(), SchedulerError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::StopTask(id, reason, reply))?;
        answer.await.unwrap_or_else(|_| Err(self.stopped()))
    }

    /// Average CPU and memory use of the running tasks since the previous call, relative to
    /// what they reserved: `ECSServiceAverageCPUUtilization` and `…MemoryUtilization`. `None`
    /// while no task runs (AWS publishes no datapoint then).
    pub async fn utilization(&self) -> Result<Option<ResourceUsage>, SchedulerError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Utilization(reply))?;
        answer.await.map_err(|_| self.stopped())
    }

    /// Stops every task gracefully (deregister, drain, SIGTERM, stop timeout, SIGKILL) and
    /// ends the scheduler. Returns when all its tasks are stopped.
    pub async fn shutdown(&self) {
        let (reply, answer) = oneshot::channel();
        if self.send(Command::Shutdown(reply)).is_ok() {
            let _ = answer.await;
        }
        let join = self.join.lock().expect("join lock").take();
        if let Some(join) = join {
            let _ = join.await;
        }
    }

    fn send(&self, command: Command) -> Result<(), SchedulerError> {
        self.commands.send(command).map_err(|_| self.stopped())
    }

    fn stopped(&self) -> SchedulerError {
        SchedulerError::Stopped(self.name.clone())
    }
}

/// Starts the scheduler of one service.
pub fn spawn<R, G>(definition: ServiceDefinition, runtime: R, registrar: Arc<G>) -> ServiceHandle
where
    R: TaskRuntime + Clone + 'static,
    G: TaskRegistrar,
{
    let name = definition.service.name.clone();
    let (commands, command_receiver) = mpsc::unbounded_channel();
    let events = runtime.subscribe();
    let (stop_done, stop_done_receiver) = mpsc::unbounded_channel();
    let mut scheduler = Scheduler {
        desired: definition.service.desired_count,
        definition,
        runtime,
        registrar,
        tasks: BTreeMap::new(),
        stopped: VecDeque::new(),
        events_log: VecDeque::new(),
        backoff: RestartBackoff::new(RestartBackoff::DEFAULT_BASE, RestartBackoff::ECS_MAXIMUM),
        next_start: None,
        stop_done,
        steady: false,
        last_blocked: None,
    };
    let (publisher, snapshot) = watch::channel(Arc::new(scheduler.snapshot()));
    let join = tokio::spawn(async move {
        scheduler
            .run(command_receiver, events, stop_done_receiver, publisher)
            .await;
    });
    ServiceHandle {
        name,
        commands,
        snapshot,
        join: Arc::new(std::sync::Mutex::new(Some(join))),
    }
}

/// The scheduler's record of one task.
#[derive(Debug, Clone)]
struct ManagedTask {
    id: TaskId,
    definition: TaskDefinition,
    state: TaskState,
    health: TaskHealth,
    address: SocketAddr,
    pid: Option<u32>,
    created_at: SystemTime,
    started_at: Instant,
    /// The registration it was made with (a later update may change the service's).
    targets: ServiceTargets,
    registered: bool,
    /// Whether it proved it can run (healthy, or up long enough), so its exit is not a
    /// start failure.
    proven: bool,
    stop_reason: Option<StopReason>,
    exit: Option<TaskExit>,
    stopped_at: Option<SystemTime>,
}

impl ManagedTask {
    fn target(&self) -> TaskTarget {
        TaskTarget {
            id: self.id.clone(),
            address: self.address,
        }
    }

    fn snapshot(&self) -> TaskSnapshot {
        TaskSnapshot {
            task_id: self.id.0.clone(),
            task_definition: self.definition.revision.to_string(),
            last_status: self.state.as_str(),
            desired_status: if self.stop_reason.is_some() || self.state.is_stopping() {
                "STOPPED"
            } else {
                "RUNNING"
            },
            health_status: match self.health {
                TaskHealth::Healthy => "HEALTHY",
                TaskHealth::Unhealthy => "UNHEALTHY",
                TaskHealth::Unknown => "UNKNOWN",
            },
            address: self.address.to_string(),
            pid: self.pid,
            created_at: self.created_at,
            stopped_at: self.stopped_at,
            stop_code: self.stop_reason.as_ref().map(StopReason::stop_code),
            stopped_reason: self.stop_reason.as_ref().map(describe_stop_reason),
            exit: self.exit.map(|exit| exit.to_string()),
        }
    }
}

/// A stop sequence's progress, reported back to the loop.
enum StopProgress {
    /// Drained and past the DNS TTL: SIGTERM goes out now.
    Signalling(TaskId),
    /// Stopped (or the runtime failed to stop it).
    Done(TaskId, Result<crate::task::Task, BackendError>),
}

struct Scheduler<R, G> {
    definition: ServiceDefinition,
    desired: u32,
    runtime: R,
    registrar: Arc<G>,
    tasks: BTreeMap<TaskId, ManagedTask>,
    stopped: VecDeque<ManagedTask>,
    events_log: VecDeque<ServiceEvent>,
    backoff: RestartBackoff,
    /// No task starts before this (restart throttle).
    next_start: Option<Instant>,
    stop_done: mpsc::UnboundedSender<StopProgress>,
    /// Whether the "reached a steady state" event was logged since the last change.
    steady: bool,
    /// The last "unable to …" message, logged once per change.
    last_blocked: Option<String>,
}

impl<R, G> Scheduler<R, G>
where
    R: TaskRuntime + Clone + 'static,
    G: TaskRegistrar,
{
    async fn run(
        &mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut events: broadcast::Receiver<TaskEvent>,
        mut stop_progress: mpsc::UnboundedReceiver<StopProgress>,
        publisher: watch::Sender<Arc<ServiceSnapshot>>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutdown: Option<oneshot::Sender<()>> = None;
        // A closed channel answers at once forever; stop asking it.
        let mut events_open = true;
        loop {
            tokio::select! {
                command = commands.recv(), if shutdown.is_none() => match command {
                    Some(Command::Shutdown(reply)) => {
                        shutdown = Some(reply);
                        self.begin_shutdown();
                    }
                    Some(command) => self.handle(command).await,
                    // Every handle is gone: nobody can ask for a graceful stop any more.
                    None => {
                        shutdown = Some(oneshot::channel().0);
                        self.begin_shutdown();
                    }
                },
                event = events.recv(), if events_open => match event {
                    Ok(event) => self.on_task_event(event),
                    Err(broadcast::error::RecvError::Lagged(_)) => self.resynchronise().await,
                    Err(broadcast::error::RecvError::Closed) => events_open = false,
                },
                Some(progress) = stop_progress.recv() => self.on_stop_progress(progress),
                _ = tick.tick() => {}
            }
            if shutdown.is_some() {
                if self.tasks.is_empty() {
                    self.event(format!("service {} stopped", self.definition.service.name));
                    publisher.send_replace(Arc::new(self.snapshot()));
                    break;
                }
            } else {
                self.reconcile().await;
            }
            let snapshot = self.snapshot();
            publisher.send_if_modified(|current| {
                if **current == snapshot {
                    false
                } else {
                    *current = Arc::new(snapshot);
                    true
                }
            });
        }
        if let Some(reply) = shutdown {
            let _ = reply.send(());
        }
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::SetDesired(desired) => {
                if desired != self.desired {
                    self.event(format!(
                        "service {} desired count changed from {} to {desired}",
                        self.definition.service.name, self.desired
                    ));
                    self.desired = desired;
                    self.steady = false;
                }
            }
            Command::Update(definition) => {
                let revision_changed =
                    definition.definition.revision != self.definition.definition.revision;
                if revision_changed {
                    self.event(format!(
                        "service {} is deploying {} (was {})",
                        definition.service.name,
                        definition.definition.revision,
                        self.definition.definition.revision
                    ));
                    // ECS resets the restart throttle when a service is updated.
                    self.backoff.reset();
                    self.next_start = None;
                }
                self.definition = *definition;
                self.steady = false;
            }
            Command::StopTask(id, reason, reply) => {
                let live = self
                    .tasks
                    .get(&id)
                    .is_some_and(|task| !task.state.is_stopping());
                let answer = if live {
                    self.begin_stop(&id, reason);
                    Ok(())
                } else {
                    Err(SchedulerError::UnknownTask(id))
                };
                let _ = reply.send(answer);
            }
            Command::Utilization(reply) => {
                let _ = reply.send(self.utilization().await);
            }
            Command::Shutdown(_) => unreachable!("handled by the loop"),
        }
    }

    /// Plans and carries the plan out: health first (it changes the plan), then stops (they
    /// free room under `maximumPercent`), then starts.
    async fn reconcile(&mut self) {
        self.refresh_health();
        let now = Instant::now();
        let spec = ServiceSpec {
            desired: self.desired,
            revision: self.definition.definition.revision.clone(),
            deployment: self.definition.service.deployment,
            health_check_grace_period: self.definition.service.health_check_grace_period,
            has_load_balancer: !self.definition.service.target_groups.is_empty(),
        };
        let views: Vec<TaskView> = self
            .tasks
            .values()
            .map(|task| TaskView {
                id: task.id.clone(),
                revision: task.definition.revision.clone(),
                state: task.state,
                started_at: task.started_at.into_std(),
                health: task.health,
            })
            .collect();
        let decided = plan(&spec, &views, now.into_std());
        if decided.blocked != self.last_blocked {
            if let Some(blocked) = &decided.blocked {
                self.event(format!(
                    "service {} {blocked}",
                    self.definition.service.name
                ));
            }
            self.last_blocked = decided.blocked.clone();
        }
        for (id, reason) in decided.stop {
            self.begin_stop(&id, reason);
        }
        if decided.start > 0 {
            if self.next_start.is_some_and(|at| now < at) {
                return;
            }
            let mut started = Vec::new();
            for _ in 0..decided.start {
                match self.start_task().await {
                    Ok(id) => started.push(id),
                    Err(error) => {
                        let delay = self.backoff.record_failure();
                        self.next_start = Some(Instant::now() + delay);
                        self.event(format!(
                            "service {} was unable to start a task: {error}; next attempt in {}",
                            self.definition.service.name,
                            words_for(delay)
                        ));
                        break;
                    }
                }
            }
            if !started.is_empty() {
                let ids: Vec<String> = started.iter().map(|id| id.0.clone()).collect();
                self.event(format!(
                    "service {} has started {} tasks: {}",
                    self.definition.service.name,
                    started.len(),
                    ids.join(", ")
                ));
            }
        }
        self.note_steady_state();
    }

    /// Reads target health for registered tasks (by the registration each was made with),
    /// and marks tasks that proved they run.
    fn refresh_health(&mut self) {
        let mut proven_now = false;
        for task in self.tasks.values_mut() {
            if task.state != TaskState::Running {
                continue;
            }
            if task.targets.has_load_balancer() {
                let health = self.registrar.health(&task.targets, &task.target());
                if health != task.health {
                    tracing::info!(
                        service = %task.targets.service,
                        task_id = %task.id,
                        health = ?health,
                        "task health changed"
                    );
                    task.health = health;
                }
                if health == TaskHealth::Healthy && !task.proven {
                    task.proven = true;
                    proven_now = true;
                }
            } else {
                task.health = TaskHealth::Healthy;
                if !task.proven && task.started_at.elapsed() >= PROVEN_UPTIME {
                    task.proven = true;
                    proven_now = true;
                }
            }
        }
        if proven_now && self.backoff.consecutive_failures() > 0 {
            self.backoff.reset();
            self.next_start = None;
        }
    }

    async fn start_task(&mut self) -> Result<TaskId, BackendError> {
        let definition = self.definition.definition.clone();
        let port = match definition.container_port {
            ContainerPort::Fixed(port) => port,
            ContainerPort::Dynamic => self.runtime.allocate_port()?,
        };
        let id = TaskId::random();
        let started = self
            .runtime
            .start(&self.definition.service.name, &definition, id.clone(), port)
            .await?;
        let mut task = ManagedTask {
            id: id.clone(),
            definition,
            state: TaskState::Activating,
            health: TaskHealth::Unknown,
            address: started
                .address
                .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
            pid: started.pid,
            created_at: started.created_at,
            started_at: Instant::now(),
            targets: self.definition.targets(),
            registered: false,
            proven: false,
            stop_reason: None,
            exit: None,
            stopped_at: None,
        };
        match self.registrar.register(&task.targets, &task.target()) {
            Ok(()) => {
                task.registered = true;
                task.state = TaskState::Running;
                tracing::info!(
                    service = %self.definition.service.name,
                    task_id = %id,
                    address = %task.address,
                    "task registered and RUNNING"
                );
                self.tasks.insert(id.clone(), task);
                self.steady = false;
                Ok(id)
            }
            Err(error) => {
                // Registration may have half-succeeded: undo it, stop the process.
                self.registrar.deregister(&task.targets, &task.target());
                let message = format!("registration failed: {error}");
                self.tasks.insert(id.clone(), task);
                self.begin_stop(&id, StopReason::FailedToStart(message.clone()));
                Err(BackendError::StartFailed(message))
            }
        }
    }

    /// Moves a live task to `DEACTIVATING` and starts its stop sequence.
    fn begin_stop(&mut self, id: &TaskId, reason: StopReason) {
        let Some(task) = self.tasks.get_mut(id) else {
            return;
        };
        if task.state.is_stopping() {
            return;
        }
        tracing::info!(
            service = %task.targets.service,
            task_id = %id,
            reason = %describe_stop_reason(&reason),
            "stopping task: deregistering and draining"
        );
        task.state = TaskState::Deactivating;
        task.stop_reason = Some(reason.clone());
        self.steady = false;
        let keep_reachable = if task.registered {
            self.registrar.deregister(&task.targets, &task.target())
        } else {
            Duration::ZERO
        };
        let registered = task.registered;
        let targets = task.targets.clone();
        let target = task.target();
        let stop_timeout = task.definition.stop_timeout;
        let registrar = Arc::clone(&self.registrar);
        let runtime = self.runtime.clone();
        let progress = self.stop_done.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let deregistered = Instant::now();
            if registered {
                let drain_deadline = deregistered + DRAIN_LIMIT;
                while !registrar.drained(&targets, &target) && Instant::now() < drain_deadline {
                    tokio::time::sleep(DRAIN_POLL).await;
                }
            }
            tokio::time::sleep_until(deregistered + keep_reachable).await;
            let _ = progress.send(StopProgress::Signalling(id.clone()));
            let result = runtime.stop(&id, reason, stop_timeout).await;
            let _ = progress.send(StopProgress::Done(id, result));
        });
    }

    fn begin_shutdown(&mut self) {
        let live: Vec<TaskId> = self
            .tasks
            .values()
            .filter(|task| !task.state.is_stopping())
            .map(|task| task.id.clone())
            .collect();
        if !live.is_empty() {
            self.event(format!(
                "service {} is stopping {} tasks: scalegate is shutting down",
                self.definition.service.name,
                live.len()
            ));
        }
        for id in live {
            self.begin_stop(&id, StopReason::SchedulerShutdown);
        }
    }

    fn on_stop_progress(&mut self, progress: StopProgress) {
        match progress {
            StopProgress::Signalling(id) => {
                if let Some(task) = self.tasks.get_mut(&id) {
                    if task.state < TaskState::Stopping {
                        task.state = TaskState::Stopping;
                    }
                }
            }
            StopProgress::Done(id, result) => {
                let Some(mut task) = self.tasks.remove(&id) else {
                    return;
                };
                match result {
                    Ok(stopped) => {
                        task.exit = stopped.exit;
                        task.stopped_at = stopped.stopped_at.or(Some(SystemTime::now()));
                    }
                    Err(error) => {
                        tracing::warn!(task_id = %id, %error, "stopping the task failed");
                        task.stopped_at = Some(SystemTime::now());
                    }
                }
                task.state = TaskState::Stopped;
                let reason = task
                    .stop_reason
                    .as_ref()
                    .map(describe_stop_reason)
                    .unwrap_or_default();
                let exit = task
                    .exit
                    .map(|exit| format!(" ({exit})"))
                    .unwrap_or_default();
                self.event(format!(
                    "service {} has stopped 1 running tasks: task {id}: {reason}{exit}",
                    task.targets.service
                ));
                self.keep_stopped(task);
            }
        }
    }

    /// A task's process ended. If nobody asked for it, the task crashed: deregister it at
    /// once (there is nothing left to drain) and let the next plan replace it.
    fn on_task_event(&mut self, event: TaskEvent) {
        let TaskEvent::Exited {
            id,
            exit,
            at,
            stop_requested,
            ..
        } = event;
        if stop_requested {
            return; // The stop sequence reports it.
        }
        let Some(task) = self.tasks.get(&id) else {
            return;
        };
        if task.state >= TaskState::Stopping {
            return; // A requested stop is underway; its sequence reports the end.
        }
        let mut task = self.tasks.remove(&id).expect("present");
        if task.registered {
            self.registrar.deregister(&task.targets, &task.target());
        }
        let reason = task
            .stop_reason
            .clone()
            .unwrap_or(StopReason::EssentialContainerExited {
                exit_code: exit.code(),
            });
        task.stop_reason = Some(reason.clone());
        task.exit = Some(exit);
        task.stopped_at = Some(at);
        task.state = TaskState::Stopped;
        let throttle = if task.proven {
            String::new()
        } else {
            let delay = self.backoff.record_failure();
            self.next_start = Some(Instant::now() + delay);
            format!(
                "; it never became healthy, so the next start waits {} (ECS's restart throttle)",
                words_for(delay)
            )
        };
        tracing::warn!(
            service = %task.targets.service,
            task_id = %id,
            %exit,
            "task exited unexpectedly"
        );
        self.event(format!(
            "service {} task {id} stopped: {} ({exit}){throttle}",
            task.targets.service,
            describe_stop_reason(&reason)
        ));
        self.steady = false;
        self.keep_stopped(task);
    }

    /// After missed events, asks the runtime which of our tasks it already stopped.
    async fn resynchronise(&mut self) {
        let Ok(listed) = self.runtime.list().await else {
            return;
        };
        for task in listed {
            if task.state == TaskState::Stopped && self.tasks.contains_key(&task.id) {
                if let Some(exit) = task.exit {
                    self.on_task_event(TaskEvent::Exited {
                        id: task.id.clone(),
                        service: task.service.clone(),
                        exit,
                        at: task.stopped_at.unwrap_or_else(SystemTime::now),
                        stop_requested: false,
                    });
                }
            }
        }
    }

    async fn utilization(&self) -> Option<ResourceUsage> {
        let mut cpu = 0.0;
        let mut memory = 0.0;
        let mut counted = 0u32;
        for task in self.tasks.values() {
            if task.state != TaskState::Running {
                continue;
            }
            if let Ok(usage) = self.runtime.usage(&task.id).await {
                cpu += usage.cpu_percent;
                memory += usage.memory_percent;
                counted += 1;
            }
        }
        (counted > 0).then(|| ResourceUsage {
            cpu_percent: cpu / f64::from(counted),
            memory_percent: memory / f64::from(counted),
        })
    }

    fn keep_stopped(&mut self, task: ManagedTask) {
        self.stopped.push_front(task);
        self.stopped.truncate(STOPPED_KEPT);
    }

    fn note_steady_state(&mut self) {
        let counts = self.counts();
        let steady = counts.running == self.desired
            && counts.healthy == self.desired
            && counts.pending == 0
            && self.tasks.values().all(|task| {
                task.state == TaskState::Running
                    && task.definition.revision == self.definition.definition.revision
            });
        if steady && !self.steady {
            self.event(format!(
                "service {} has reached a steady state.",
                self.definition.service.name
            ));
        }
        self.steady = steady;
    }

    fn event(&mut self, message: String) {
        tracing::info!(target: "scalegate::service", "{message}");
        self.events_log.push_front(ServiceEvent {
            created_at: SystemTime::now(),
            message,
        });
        self.events_log.truncate(EVENTS_KEPT);
    }

    /// Task counts; `refresh_health` has made every running task without a load balancer
    /// healthy, so healthy means healthy here whatever the registration.
    fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for task in self.tasks.values() {
            match task.state {
                TaskState::Provisioning | TaskState::Pending | TaskState::Activating => {
                    counts.pending += 1
                }
                TaskState::Running => {
                    counts.running += 1;
                    if task.health == TaskHealth::Healthy {
                        counts.healthy += 1;
                    }
                }
                _ => {}
            }
        }
        counts
    }

    fn snapshot(&self) -> ServiceSnapshot {
        let counts = self.counts();
        let revision = &self.definition.definition.revision;
        let mut live: Vec<&ManagedTask> = self.tasks.values().collect();
        live.sort_by_key(|task| std::cmp::Reverse(task.created_at));
        ServiceSnapshot {
            service_name: self.definition.service.name.clone(),
            task_definition: revision.to_string(),
            desired_count: self.desired,
            running_count: counts.running,
            pending_count: counts.pending,
            healthy_count: counts.healthy,
            deployment_in_progress: self
                .tasks
                .values()
                .any(|task| !task.state.is_stopping() && &task.definition.revision != revision),
            restart_delay_seconds: self
                .next_start
                .and_then(|at| at.checked_duration_since(Instant::now()))
                .map(|left| left.as_secs_f64()),
            tasks: live
                .into_iter()
                .chain(self.stopped.iter())
                .map(ManagedTask::snapshot)
                .collect(),
            events: self.events_log.iter().cloned().collect(),
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    running: u32,
    pending: u32,
    healthy: u32,
}

/// ECS's `stoppedReason` wording for each stop reason.
pub fn describe_stop_reason(reason: &StopReason) -> String {
    match reason {
        StopReason::ScaleIn { rule } => {
            format!("Scaling activity initiated by the service scheduler: scale-in chose this task ({rule})")
        }
        StopReason::DeploymentReplaced => {
            "Scaling activity initiated by deployment: replaced by a newer task definition revision"
                .into()
        }
        StopReason::FailedHealthChecks => "Task failed ELB health checks".into(),
        StopReason::EssentialContainerExited { .. } => "Essential container in task exited".into(),
        StopReason::FailedToStart(why) => format!("Task failed to start: {why}"),
        StopReason::UserInitiated => "Task stopped by user".into(),
        StopReason::SchedulerShutdown => "scalegate is shutting down".into(),
    }
}

fn words_for(delay: Duration) -> String {
    let seconds = delay.as_secs();
    if seconds >= 60 {
        format!("{} min {} s", seconds / 60, seconds % 60)
    } else {
        format!("{:.1} s", delay.as_secs_f64())
    }
}

#[cfg(test)]
#[path = "runner_tests.rs"]
mod tests;
