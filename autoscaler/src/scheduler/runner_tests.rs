//! The scheduler loop against an in-memory runtime and registrar, on tokio's paused clock: the
//! order of registration, draining and signals, crash replacement with its throttle, health
//! replacement, deployments and shutdown.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::broadcast;

use super::*;
use crate::backend::{BackendError, ResourceUsage, TaskEvent, TaskRuntime};
use crate::scheduler::plan::TaskHealth;
use crate::scheduler::registrar::{RegistrationFailed, ServiceTargets, TaskRegistrar, TaskTarget};
use crate::service::{ContainerPort, DeploymentConfiguration, Service, TaskDefinition};
use crate::task::{StopReason, Task, TaskExit, TaskId, TaskState};

/// What happened, in order, across runtime and registrar.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Start(TaskId),
    Register(TaskId),
    Deregister(TaskId),
    Stop(TaskId),
}

#[derive(Default)]
struct World {
    calls: Vec<Call>,
    tasks: BTreeMap<TaskId, Task>,
    next_port: u16,
    /// Health the registrar reports per task (default: healthy).
    health: HashMap<TaskId, TaskHealth>,
    /// Tasks the registrar still reports draining.
    draining: HashSet<TaskId>,
    /// Whether the next start fails.
    fail_starts: bool,
}

#[derive(Clone)]
struct FakeRuntime {
    world: Arc<Mutex<World>>,
    events: broadcast::Sender<TaskEvent>,
}

impl FakeRuntime {
    fn crash(&self, id: &TaskId, code: i32) {
        let mut world = self.world.lock().unwrap();
        let task = world.tasks.get_mut(id).unwrap();
        task.state = TaskState::Stopped;
        task.exit = Some(TaskExit::Code(code));
        drop(world);
        let _ = self.events.send(TaskEvent::Exited {
            id: id.clone(),
            service: "web".into(),
            exit: TaskExit::Code(code),
            at: SystemTime::now(),
            stop_requested: false,
        });
    }
}

impl TaskRuntime for FakeRuntime {
    fn start(
        &self,
        service: &str,
        definition: &TaskDefinition,
        id: TaskId,
        port: u16,
    ) -> impl std::future::Future<Output = Result<Task, BackendError>> + Send {
        let mut world = self.world.lock().unwrap();
        let result = if world.fail_starts {
            Err(BackendError::StartFailed("no such command".into()))
        } else {
            world.calls.push(Call::Start(id.clone()));
            let task = Task {
                id: id.clone(),
                service: service.to_string(),
                revision: definition.revision.clone(),
                state: TaskState::Pending,
                desired_state: TaskState::Running,
                address: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
                created_at: SystemTime::now(),
                stop_reason: None,
                pid: Some(1000 + u32::from(port)),
                exit: None,
                stopped_at: None,
            };
            world.tasks.insert(id, task.clone());
            Ok(task)
        };
        std::future::ready(result)
    }

    fn stop(
        &self,
        id: &TaskId,
        reason: StopReason,
        _stop_timeout: Duration,
    ) -> impl std::future::Future<Output = Result<Task, BackendError>> + Send {
        let mut world = self.world.lock().unwrap();
        world.calls.push(Call::Stop(id.clone()));
        let task = world.tasks.get_mut(id).unwrap();
        task.state = TaskState::Stopped;
        task.stop_reason = Some(reason);
        task.exit = Some(TaskExit::Code(0));
        task.stopped_at = Some(SystemTime::now());
        std::future::ready(Ok(task.clone()))
    }

    fn allocate_port(&self) -> Result<u16, BackendError> {
        let mut world = self.world.lock().unwrap();
        world.next_port += 1;
        Ok(20000 + world.next_port)
    }

    fn list(&self) -> impl std::future::Future<Output = Result<Vec<Task>, BackendError>> + Send {
        std::future::ready(Ok(self
            .world
            .lock()
            .unwrap()
            .tasks
            .values()
            .cloned()
            .collect()))
    }

    fn usage(
        &self,
        _id: &TaskId,
    ) -> impl std::future::Future<Output = Result<ResourceUsage, BackendError>> + Send {
        std::future::ready(Ok(ResourceUsage {
            cpu_percent: 40.0,
            memory_percent: 10.0,
        }))
    }

    fn subscribe(&self) -> broadcast::Receiver<TaskEvent> {
        self.events.subscribe()
    }
}

struct FakeRegistrar {
    world: Arc<Mutex<World>>,
    keep_reachable: Duration,
}

impl TaskRegistrar for FakeRegistrar {
    fn register(&self, _: &ServiceTargets, task: &TaskTarget) -> Result<(), RegistrationFailed> {
        self.world
            .lock()
            .unwrap()
            .calls
            .push(Call::Register(task.id.clone()));
        Ok(())
    }

    fn deregister(&self, _: &ServiceTargets, task: &TaskTarget) -> Duration {
        self.world
            .lock()
            .unwrap()
            .calls
            .push(Call::Deregister(task.id.clone()));
        self.keep_reachable
    }

    fn drained(&self, _: &ServiceTargets, task: &TaskTarget) -> bool {
        !self.world.lock().unwrap().draining.contains(&task.id)
    }

    fn health(&self, _: &ServiceTargets, task: &TaskTarget) -> TaskHealth {
        *self
            .world
            .lock()
            .unwrap()
            .health
            .get(&task.id)
            .unwrap_or(&TaskHealth::Healthy)
    }
}

fn definition(revision: &str, desired: u32) -> ServiceDefinition {
    let revision: crate::service::TaskDefinitionRevision = revision.parse().unwrap();
    ServiceDefinition {
        service: Service {
            name: "web".into(),
            task_definition: revision.clone(),
            desired_count: desired,
            deployment: DeploymentConfiguration::default(),
            health_check_grace_period: Duration::from_secs(10),
            target_groups: vec!["web".into()],
            dns_name: Some("web.local".into()),
        },
        definition: TaskDefinition {
            revision,
            command: "serve".into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            working_dir: None,
            cpu_units: 1024,
            memory_mib: 512,
            container_port: ContainerPort::Dynamic,
            stop_timeout: Duration::from_secs(30),
        },
    }
}

struct Fixture {
    world: Arc<Mutex<World>>,
    runtime: FakeRuntime,
    handle: ServiceHandle,
}

fn start(desired: u32, keep_reachable: Duration) -> Fixture {
    let world = Arc::new(Mutex::new(World::default()));
    let runtime = FakeRuntime {
        world: Arc::clone(&world),
        events: broadcast::channel(64).0,
    };
    let registrar = Arc::new(FakeRegistrar {
        world: Arc::clone(&world),
        keep_reachable,
    });
    let handle = spawn(definition("web:1", desired), runtime.clone(), registrar);
    Fixture {
        world,
        runtime,
        handle,
    }
}

impl Fixture {
    /// Waits (on the paused clock) until the snapshot satisfies `condition`.
    async fn until(&self, what: &str, condition: impl Fn(&ServiceSnapshot) -> bool) {
        let mut watch = self.handle.watch();
        let reached = tokio::time::timeout(Duration::from_secs(3600), async {
            loop {
                if condition(&watch.borrow_and_update()) {
                    return;
                }
                watch.changed().await.expect("scheduler alive");
            }
        })
        .await;
        assert!(
            reached.is_ok(),
            "never reached: {what}; last snapshot {:#?}",
            self.handle.snapshot()
        );
    }

    fn calls(&self) -> Vec<Call> {
        self.world.lock().unwrap().calls.clone()
    }

    fn live_ids(&self) -> Vec<TaskId> {
        self.handle
            .snapshot()
            .tasks
            .iter()
            .filter(|task| task.last_status == "RUNNING")
            .map(|task| TaskId(task.task_id.clone()))
            .collect()
    }
}

fn steady(count: u32) -> impl Fn(&ServiceSnapshot) -> bool {
    move |snapshot| {
        snapshot.desired_count == count
            && snapshot.running_count == count
            && snapshot.healthy_count == count
            && snapshot
                .tasks
                .iter()
                .filter(|task| task.last_status != "STOPPED")
                .count()
                == count as usize
    }
}

#[tokio::test(start_paused = true)]
async fn starts_the_desired_count_registering_each_task_after_it_started() {
    let fixture = start(3, Duration::ZERO);
    fixture.until("3 healthy", steady(3)).await;
    let calls = fixture.calls();
    for id in fixture.live_ids() {
        let started = calls
            .iter()
            .position(|call| *call == Call::Start(id.clone()));
        let registered = calls
            .iter()
            .position(|call| *call == Call::Register(id.clone()));
        assert!(started < registered, "{calls:?}");
    }
    let snapshot = fixture.handle.snapshot();
    assert!(snapshot
        .events
        .iter()
        .any(|event| event.message == "service web has reached a steady state."));
}

#[tokio::test(start_paused = true)]
async fn scale_in_deregisters_then_waits_for_draining_and_the_ttl_before_stopping() {
    let fixture = start(2, Duration::from_secs(5));
    fixture.until("2 healthy", steady(2)).await;
    // Keep every task draining until the test says otherwise.
    let ids = fixture.live_ids();
    fixture.world.lock().unwrap().draining = ids.iter().cloned().collect();
    fixture.handle.set_desired_count(1).unwrap();
    fixture
        .until("one task deactivating", |snapshot| {
            snapshot
                .tasks
                .iter()
                .any(|task| task.last_status == "DEACTIVATING")
        })
        .await;
    let victim = fixture
        .handle
        .snapshot()
        .tasks
        .iter()
        .find(|task| task.last_status == "DEACTIVATING")
        .map(|task| TaskId(task.task_id.clone()))
        .unwrap();
    // Much later (the paused clock jumps), still draining: no signal yet.
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(!fixture.calls().contains(&Call::Stop(victim.clone())));
    fixture.world.lock().unwrap().draining.clear();
    fixture.until("1 task left", steady(1)).await;
    let calls = fixture.calls();
    let deregistered = calls
        .iter()
        .position(|call| *call == Call::Deregister(victim.clone()))
        .unwrap();
    let stopped = calls
        .iter()
        .position(|call| *call == Call::Stop(victim.clone()))
        .unwrap();
    assert!(deregistered < stopped);
    let stopped_task = fixture
        .handle
        .snapshot()
        .tasks
        .iter()
        .find(|task| task.task_id == victim.0)
        .cloned()
        .unwrap();
    assert_eq!(stopped_task.last_status, "STOPPED");
    assert_eq!(stopped_task.stop_code, Some("ServiceSchedulerInitiated"));
    assert!(stopped_task
        .stopped_reason
        .unwrap()
        .contains("scale-in chose this task"));
}

#[tokio::test(start_paused = true)]
async fn the_dns_ttl_is_waited_even_when_drained_at_once() {
    let fixture = start(1, Duration::from_secs(5));
    fixture.until("1 healthy", steady(1)).await;
    let id = fixture.live_ids().remove(0);
    let asked = tokio::time::Instant::now();
    fixture.handle.set_desired_count(0).unwrap();
    fixture
        .until("stopped", |snapshot| {
            snapshot.running_count == 0
                && snapshot
                    .tasks
                    .iter()
                    .all(|task| task.last_status == "STOPPED")
        })
        .await;
    assert!(
        asked.elapsed() >= Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    assert!(fixture.calls().contains(&Call::Stop(id)));
}

#[tokio::test(start_paused = true)]
async fn a_crashed_task_is_replaced_and_repeated_start_failures_are_throttled() {
    let fixture = start(1, Duration::ZERO);
    // Never healthy: crashes count as failed starts.
    fixture
        .until("1 running", |snapshot| snapshot.running_count == 1)
        .await;
    let first = fixture.live_ids().remove(0);
    fixture
        .world
        .lock()
        .unwrap()
        .health
        .insert(first.clone(), TaskHealth::Unknown);
    fixture.runtime.crash(&first, 3);
    fixture
        .until("crash recorded", |snapshot| {
            snapshot.tasks.iter().any(|task| {
                task.task_id == first.0
                    && task.stop_code == Some("EssentialContainerExited")
                    && task.exit.as_deref() == Some("exit code 3")
            })
        })
        .await;
    let crashed_at = tokio::time::Instant::now();
    fixture
        .until("replacement running", |snapshot| {
            snapshot.running_count == 1
                && snapshot
                    .tasks
                    .iter()
                    .any(|task| task.task_id != first.0 && task.last_status == "RUNNING")
        })
        .await;
    // The first failure waits RestartBackoff's base (1 s) before the next start.
    assert!(crashed_at.elapsed() >= Duration::from_secs(1));
    let second = fixture
        .live_ids()
        .into_iter()
        .find(|id| *id != first)
        .unwrap();
    fixture
        .world
        .lock()
        .unwrap()
        .health
        .insert(second.clone(), TaskHealth::Unknown);
    fixture.runtime.crash(&second, 1);
    let crashed_at = tokio::time::Instant::now();
    fixture
        .until("third task", |snapshot| {
            snapshot.running_count == 1
                && snapshot
                    .tasks
                    .iter()
                    .filter(|task| task.last_status == "STOPPED")
                    .count()
                    == 2
        })
        .await;
    // Second failure in a row: 2 s.
    assert!(
        crashed_at.elapsed() >= Duration::from_secs(2),
        "{:?}",
        crashed_at.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_start_failure_is_an_event_and_retried_with_backoff() {
    let fixture = start(1, Duration::ZERO);
    fixture.world.lock().unwrap().fail_starts = true;
    fixture
        .until("failure event", |snapshot| {
            snapshot.events.iter().any(|event| {
                event.message.contains("was unable to start a task")
                    && event.message.contains("no such command")
            })
        })
        .await;
    assert!(fixture.handle.snapshot().restart_delay_seconds.is_some());
    fixture.world.lock().unwrap().fail_starts = false;
    fixture.until("recovered", steady(1)).await;
}

#[tokio::test(start_paused = true)]
async fn an_unhealthy_task_is_replaced_first_then_stopped() {
    let fixture = start(1, Duration::ZERO);
    fixture.until("1 healthy", steady(1)).await;
    let sick = fixture.live_ids().remove(0);
    fixture
        .world
        .lock()
        .unwrap()
        .health
        .insert(sick.clone(), TaskHealth::Unhealthy);
    fixture
        .until("sick task stopped", |snapshot| {
            snapshot.tasks.iter().any(|task| {
                task.task_id == sick.0
                    && task.last_status == "STOPPED"
                    && task.stopped_reason.as_deref() == Some("Task failed ELB health checks")
            })
        })
        .await;
    let calls = fixture.calls();
    let replacement_started = calls
        .iter()
        .position(|call| matches!(call, Call::Start(id) if *id != sick))
        .unwrap();
    let sick_stopped = calls
        .iter()
        .position(|call| *call == Call::Stop(sick.clone()))
        .unwrap();
    assert!(replacement_started < sick_stopped, "{calls:?}");
    fixture.until("healthy again", steady(1)).await;
}

#[tokio::test(start_paused = true)]
async fn a_new_revision_deploys_and_replaces_every_old_task() {
    let fixture = start(2, Duration::ZERO);
    fixture.until("2 healthy", steady(2)).await;
    fixture.handle.update(definition("web:2", 2)).unwrap();
    fixture
        .until("all on :2", |snapshot| {
            steady(2)(snapshot)
                && snapshot
                    .tasks
                    .iter()
                    .filter(|task| task.last_status == "RUNNING")
                    .all(|task| task.task_definition == "web:2")
        })
        .await;
    let snapshot = fixture.handle.snapshot();
    assert!(!snapshot.deployment_in_progress);
    assert_eq!(
        snapshot
            .tasks
            .iter()
            .filter(|task| task.stop_code == Some("ServiceSchedulerInitiated")
                && task.task_definition == "web:1")
            .count(),
        2
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_every_task_the_graceful_way() {
    let fixture = start(3, Duration::from_secs(2));
    fixture.until("3 healthy", steady(3)).await;
    let ids = fixture.live_ids();
    fixture.handle.shutdown().await;
    let calls = fixture.calls();
    for id in ids {
        assert!(calls.contains(&Call::Deregister(id.clone())));
        assert!(calls.contains(&Call::Stop(id)));
    }
    assert!(fixture.handle.set_desired_count(1).is_err());
}

#[tokio::test(start_paused = true)]
async fn utilization_averages_running_tasks() {
    let fixture = start(2, Duration::ZERO);
    fixture.until("2 healthy", steady(2)).await;
    let usage = fixture.handle.utilization().await.unwrap().unwrap();
    assert_eq!(usage.cpu_percent, 40.0);
    assert_eq!(usage.memory_percent, 10.0);
}

#[tokio::test(start_paused = true)]
async fn stop_task_is_user_initiated_and_the_task_is_replaced() {
    let fixture = start(1, Duration::ZERO);
    fixture.until("1 healthy", steady(1)).await;
    let id = fixture.live_ids().remove(0);
    fixture
        .handle
        .stop_task(id.clone(), StopReason::UserInitiated)
        .await
        .unwrap();
    fixture
        .until("replaced", |snapshot| {
            steady(1)(snapshot)
                && snapshot
                    .tasks
                    .iter()
                    .any(|task| task.task_id == id.0 && task.stop_code == Some("UserInitiated"))
        })
        .await;
    assert_eq!(
        fixture
            .handle
            .stop_task(TaskId("nope".into()), StopReason::UserInitiated)
            .await,
        Err(SchedulerError::UnknownTask(TaskId("nope".into())))
    );
}
