//! The local backend's task runtime: each task is a child process (group) of scalegate.
//!
//! [`LocalRuntime`] implements [`TaskRuntime`] for local processes; the service scheduler drives
//! it. Per task it:
//!
//! - starts the command with the task definition's arguments, environment and working
//!   directory, plus the metadata ECS would inject (`PORT`, `SCALEGATE_TASK_ID`,
//!   `SCALEGATE_SERVICE`, `SCALEGATE_TASK_DEFINITION` as `family:N`, and
//!   `ECS_CONTAINER_METADATA_URI_V4` when a metadata base URL is configured), stdin from
//!   `/dev/null`, as the leader of a new process group (`process.rs`);
//! - puts the `task-exec` supervisor in front of it, so that a crash of scalegate kills the task
//!   ([`supervisor`]; [`Launcher`]);
//! - captures stdout and stderr line by line into `tracing` and a per-task log file (`logs.rs`);
//! - reports the process's exit as a [`TaskEvent::Exited`] and records it on the task;
//! - stops it as ECS does: SIGTERM to the group, up to the stop timeout, then SIGKILL;
//! - measures its CPU and memory from `/proc` against the reserved CPU units and MiB
//!   (`usage.rs`).
//!
//! States: the runtime owns the process-level part of the ECS lifecycle. A started task is
//! `PENDING` here until it is stopped; `ACTIVATING`, `RUNNING` and `DEACTIVATING` are about
//! registration and health, which the scheduler tracks in its own view of the task. Stopping
//! moves the task to `STOPPING`; when the process has exited, `DEPROVISIONING` (the group's
//! leftovers are killed, the rest of its output reaches the log file) and then `STOPPED`, with
//! the stop reason and the exit, and its port free again. Stopped tasks stay listed (a bounded number of them) so their exit can still be read.
//!
//! Dropping the last handle to the runtime SIGKILLs the process groups of tasks still running:
//! a task never outlives its runtime.

mod backoff;
mod logs;
mod ports;
mod process;
pub mod supervisor;
mod usage;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

pub use backoff::RestartBackoff;
pub use logs::{log_file_path, TASK_OUTPUT_TARGET};
pub use process::Launcher;
pub use supervisor::SupervisorArgs;

use crate::backend::{BackendError, ResourceUsage, TaskEvent, TaskRuntime};
use crate::service::TaskDefinition;
use crate::task::{StopReason, Task, TaskExit, TaskId, TaskState};
use logs::{LogLine, Stream, TaskLabels};
use usage::{CpuSample, ProcSnapshot};

/// How long after SIGKILL the runtime waits for the exit before reporting an error. A process
/// only survives SIGKILL while stuck in the kernel (uninterruptible I/O).
const KILL_WAIT: Duration = Duration::from_secs(10);

/// How long one walk of `/proc` serves further usage samples: long enough for a sampling round
/// over every task to share one walk, short enough that each round walks afresh.
const SNAPSHOT_REUSE: Duration = Duration::from_millis(250);

/// How long an exited task's remaining output may take to reach its log file before the exit
/// is reported anyway.
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

/// Task events kept for slow receivers before they lag.
const EVENT_BUFFER: usize = 1024;

/// Settings of the local runtime.
#[derive(Debug, Clone)]
pub struct LocalRuntimeConfig {
    /// Where task log files go: `<log_dir>/<service>/<task-id>.log`.
    pub log_dir: PathBuf,
    /// Base of the task metadata URL, e.g. `http://127.0.0.1:9901/v4`: a task gets
    /// `<base>/<task-id>` in `ECS_CONTAINER_METADATA_URI_V4`. Unset, the variable is not set.
    pub metadata_base_url: Option<String>,
    /// How commands are started; `scalegate run` uses [`Launcher::current_executable`].
    pub launcher: Launcher,
    /// Longest line kept from a task's output; the rest of a longer line is dropped and counted.
    pub max_line_bytes: usize,
    /// How many stopped tasks [`TaskRuntime::list`] still reports (the oldest are forgotten).
    pub stopped_tasks_kept: usize,
}

impl LocalRuntimeConfig {
    /// Defaults: 16 KiB lines, 100 stopped tasks kept, no metadata URL, and the
    /// [`Launcher::Direct`] launcher (which needs no `task-exec`; `scalegate run` sets the
    /// supervisor).
    pub fn new(log_dir: impl Into<PathBuf>) -> Self {
        LocalRuntimeConfig {
            log_dir: log_dir.into(),
            metadata_base_url: None,
            launcher: Launcher::Direct,
            max_line_bytes: 16 * 1024,
            stopped_tasks_kept: 100,
        }
    }
}

/// Runs tasks as local processes. Cheap to clone; clones share the tasks.
#[derive(Clone)]
pub struct LocalRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    config: LocalRuntimeConfig,
    table: Mutex<Table>,
    events: broadcast::Sender<TaskEvent>,
    ports: Mutex<ports::PortPicker>,
    snapshot: Mutex<Option<Arc<ProcSnapshot>>>,
}

#[derive(Default)]
struct Table {
    tasks: BTreeMap<TaskId, Entry>,
    /// Stopped tasks, oldest first, for forgetting the oldest.
    stopped: VecDeque<TaskId>,
}

struct Entry {
    task: Task,
    /// The process group (= the leader's PID).
    pgid: Pid,
    port: u16,
    cpu_units: u32,
    memory_mib: u32,
    /// The CPU counter at the previous usage sample (at start: zero at spawn time).
    last_cpu: CpuSample,
    /// The previous result, returned again if asked twice within one `/proc` walk.
    last_usage: ResourceUsage,
    /// The final task, once stopped; `stop` waits on it.
    stopped: watch::Receiver<Option<Task>>,
}

impl LocalRuntime {
    /// A runtime with no tasks yet. The log directory is created when the first task starts.
    pub fn new(config: LocalRuntimeConfig) -> Self {
        LocalRuntime {
            inner: Arc::new(Inner {
                config,
                table: Mutex::new(Table::default()),
                events: broadcast::channel(EVENT_BUFFER).0,
                ports: Mutex::new(ports::PortPicker::default()),
                snapshot: Mutex::new(None),
            }),
        }
    }

    /// The runtime's settings.
    pub fn config(&self) -> &LocalRuntimeConfig {
        &self.inner.config
    }

    /// A free loopback port for a task's `$PORT` (ECS dynamic port mapping): the kernel's pick,
    /// never the port of a live task nor one handed out recently.
    pub fn allocate_port(&self) -> Result<u16, BackendError> {
        let in_use: HashSet<u16> = lock(&self.inner.table)
            .tasks
            .values()
            .filter(|entry| entry.task.state != TaskState::Stopped)
            .map(|entry| entry.port)
            .collect();
        lock(&self.inner.ports)
            .pick(&in_use)
            .map_err(|error| BackendError::StartFailed(format!("no port for $PORT: {error}")))
    }

    /// One task as the runtime sees it.
    pub fn task(&self, id: &TaskId) -> Option<Task> {
        lock(&self.inner.table)
            .tasks
            .get(id)
            .map(|entry| entry.task.clone())
    }

    async fn start_task(
        &self,
        service: &str,
        definition: &TaskDefinition,
        id: TaskId,
        port: u16,
    ) -> Result<Task, BackendError> {
        let config = &self.inner.config;
        for (what, name) in [("service name", service), ("task ID", id.0.as_str())] {
            if !process::is_safe_path_component(name) {
                return Err(BackendError::StartFailed(format!(
                    "{what} `{name}` cannot name a log file (letters, digits, `-`, `_`, `.`)"
                )));
            }
        }
        if lock(&self.inner.table).tasks.contains_key(&id) {
            return Err(BackendError::StartFailed(format!(
                "task ID `{id}` is already in use"
            )));
        }
        process::check_command(definition).map_err(BackendError::StartFailed)?;

        // PROVISIONING: the log stream.
        let log_path = log_file_path(&config.log_dir, service, &id.0);
        let log_file = open_log_file(&log_path).await.map_err(|error| {
            BackendError::StartFailed(format!(
                "cannot open log file {}: {error}",
                log_path.display()
            ))
        })?;

        // PENDING: the process.
        let metadata = process::TaskMetadata {
            id: &id,
            service,
            port,
            metadata_url: config
                .metadata_base_url
                .as_ref()
                .map(|base| format!("{}/{id}", base.trim_end_matches('/'))),
        };
        let mut child = process::task_command(&config.launcher, definition, &metadata)
            .spawn()
            .map_err(|error| {
                BackendError::StartFailed(format!("cannot run `{}`: {error}", definition.command))
            })?;
        let spawned_at = Instant::now();
        let pid = child
            .id()
            .ok_or_else(|| BackendError::StartFailed("the process vanished at once".into()))?;
        let pgid = Pid::from_raw(pid as i32);

        let task = Task {
            id: id.clone(),
            service: service.to_string(),
            revision: definition.revision.clone(),
            state: TaskState::Pending,
            desired_state: TaskState::Running,
            address: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
            created_at: SystemTime::now(),
            stop_reason: None,
            pid: Some(pid),
            exit: None,
            stopped_at: None,
        };
        // From here on nothing awaits until the exit watcher owns the child, so a caller that
        // drops this future cannot leave a process nobody watches.
        let (stopped_sender, stopped_receiver) = watch::channel(None);
        match lock(&self.inner.table).tasks.entry(id.clone()) {
            std::collections::btree_map::Entry::Occupied(_) => {
                // A concurrent start with the same ID won the race.
                let _ = process::signal_group(pgid, Signal::SIGKILL);
                return Err(BackendError::StartFailed(format!(
                    "task ID `{id}` is already in use"
                )));
            }
            std::collections::btree_map::Entry::Vacant(vacant) => vacant.insert(Entry {
                task: task.clone(),
                pgid,
                port,
                cpu_units: definition.cpu_units,
                memory_mib: definition.memory_mib,
                last_cpu: CpuSample {
                    ticks: 0,
                    at: spawned_at,
                },
                last_usage: ResourceUsage::default(),
                stopped: stopped_receiver,
            }),
        };

        // Output: two readers feeding one file writer.
        let labels = TaskLabels {
            task_id: id.0.as_str().into(),
            service: service.into(),
        };
        let (lines, line_receiver) = mpsc::channel(logs::LINE_QUEUE);
        let writer = tokio::spawn(logs::write_log_file(log_file, log_path, line_receiver));
        let describe = format!(
            "started {} {:?} as pid {pid} (group {pid}), $PORT={port}",
            definition.revision, definition.command
        );
        // The queue is new and empty: this cannot fail for want of room.
        let _ = lines.try_send(LogLine {
            at: SystemTime::now(),
            stream: Stream::Scalegate,
            text: describe,
        });
        let mut readers = Vec::with_capacity(2);
        if let Some(stdout) = child.stdout.take() {
            readers.push(tokio::spawn(logs::pump_lines(
                stdout,
                Stream::Stdout,
                config.max_line_bytes,
                labels.clone(),
                lines.clone(),
            )));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(tokio::spawn(logs::pump_lines(
                stderr,
                Stream::Stderr,
                config.max_line_bytes,
                labels.clone(),
                lines.clone(),
            )));
        }
        tracing::info!(
            task_id = %id,
            service,
            pid,
            port,
            revision = %definition.revision,
            "task started"
        );

        tokio::spawn(watch_exit(
            Arc::downgrade(&self.inner),
            id,
            child,
            pgid,
            stopped_sender,
            Output {
                readers,
                writer,
                lines,
            },
        ));
        Ok(task)
    }

    async fn stop_task(
        &self,
        id: &TaskId,
        reason: StopReason,
        stop_timeout: Duration,
    ) -> Result<Task, BackendError> {
        let (pgid, mut stopped, first_stop) = {
            let mut table = lock(&self.inner.table);
            let entry = table
                .tasks
                .get_mut(id)
                .ok_or_else(|| BackendError::TaskNotFound(id.clone()))?;
            if entry.task.state == TaskState::Stopped {
                return Ok(entry.task.clone());
            }
            let first_stop = entry.task.state < TaskState::Stopping;
            if first_stop {
                entry.task.state = TaskState::Stopping;
                entry.task.desired_state = TaskState::Stopped;
                entry.task.stop_reason = Some(reason.clone());
            }
            (entry.pgid, entry.stopped.clone(), first_stop)
        };
        // A second stop of a stopping task waits with the first, without a second SIGTERM
        // (many programs take a second SIGTERM as "quit now").
        if first_stop {
            tracing::info!(task_id = %id, reason = ?reason, "stopping task: SIGTERM");
            send_to_group(id, pgid, Signal::SIGTERM);
        }
        if let Ok(task) = tokio::time::timeout(stop_timeout, wait_stopped(&mut stopped)).await {
            return task;
        }
        tracing::warn!(
            task_id = %id,
            "task did not stop within {stop_timeout:?} of SIGTERM: SIGKILL"
        );
        send_to_group(id, pgid, Signal::SIGKILL);
        match tokio::time::timeout(KILL_WAIT, wait_stopped(&mut stopped)).await {
            Ok(task) => task,
            Err(_) => Err(BackendError::Other(format!(
                "task {id} did not exit within {KILL_WAIT:?} of SIGKILL"
            ))),
        }
    }

    async fn task_usage(&self, id: &TaskId) -> Result<ResourceUsage, BackendError> {
        let pgid = {
            let table = lock(&self.inner.table);
            match table.tasks.get(id) {
                Some(entry) if entry.task.state != TaskState::Stopped => entry.pgid,
                _ => return Err(BackendError::TaskNotFound(id.clone())),
            }
        };
        let snapshot = self.snapshot_including(pgid).await?;
        let totals = snapshot
            .groups
            .get(&pgid.as_raw())
            .copied()
            .unwrap_or_default();
        let mut table = lock(&self.inner.table);
        let entry = table
            .tasks
            .get_mut(id)
            .ok_or_else(|| BackendError::TaskNotFound(id.clone()))?;
        let now = CpuSample {
            ticks: totals.cpu_ticks,
            at: snapshot.taken_at,
        };
        if now.at > entry.last_cpu.at {
            entry.last_usage = usage::usage_between(
                entry.last_cpu,
                now,
                totals,
                entry.cpu_units,
                entry.memory_mib,
            );
            entry.last_cpu = now;
        }
        Ok(entry.last_usage)
    }

    /// A `/proc` walk that covers `pgid`: the last one if recent and it covered the group,
    /// otherwise a new walk over every live task's group.
    async fn snapshot_including(&self, pgid: Pid) -> Result<Arc<ProcSnapshot>, BackendError> {
        if let Some(snapshot) = lock(&self.inner.snapshot).as_ref() {
            if snapshot.taken_at.elapsed() < SNAPSHOT_REUSE
                && snapshot.groups.contains_key(&pgid.as_raw())
            {
                return Ok(Arc::clone(snapshot));
            }
        }
        let supervised = self.inner.config.launcher.is_supervised();
        let mut wanted: HashMap<i32, bool> = lock(&self.inner.table)
            .tasks
            .values()
            .filter(|entry| entry.task.state != TaskState::Stopped)
            .map(|entry| (entry.pgid.as_raw(), supervised))
            .collect();
        wanted.insert(pgid.as_raw(), supervised);
        let snapshot = tokio::task::spawn_blocking(move || usage::scan(&wanted))
            .await
            .map(Arc::new)
            .map_err(|error| BackendError::Other(format!("reading /proc failed: {error}")))?;
        *lock(&self.inner.snapshot) = Some(Arc::clone(&snapshot));
        Ok(snapshot)
    }
}

impl TaskRuntime for LocalRuntime {
    fn allocate_port(&self) -> Result<u16, BackendError> {
        LocalRuntime::allocate_port(self)
    }

    fn start(
        &self,
        service: &str,
        definition: &TaskDefinition,
        id: TaskId,
        port: u16,
    ) -> impl std::future::Future<Output = Result<Task, BackendError>> + Send {
        self.start_task(service, definition, id, port)
    }

    fn stop(
        &self,
        id: &TaskId,
        reason: StopReason,
        stop_timeout: Duration,
    ) -> impl std::future::Future<Output = Result<Task, BackendError>> + Send {
        self.stop_task(id, reason, stop_timeout)
    }

    fn list(&self) -> impl std::future::Future<Output = Result<Vec<Task>, BackendError>> + Send {
        let mut tasks: Vec<Task> = lock(&self.inner.table)
            .tasks
            .values()
            .map(|entry| entry.task.clone())
            .collect();
        tasks.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        std::future::ready(Ok(tasks))
    }

    fn usage(
        &self,
        id: &TaskId,
    ) -> impl std::future::Future<Output = Result<ResourceUsage, BackendError>> + Send {
        self.task_usage(id)
    }

    fn subscribe(&self) -> broadcast::Receiver<TaskEvent> {
        self.inner.events.subscribe()
    }
}

impl Inner {
    /// Records the exit: `DEPROVISIONING` while the group's leftovers are killed, then
    /// `STOPPED`. Returns the final task and whether a stop had been requested.
    fn finish(&self, id: &TaskId, exit: TaskExit) -> Option<(Task, bool)> {
        let mut table = lock(&self.table);
        let entry = table.tasks.get_mut(id)?;
        let stop_requested = entry.task.stop_reason.is_some();
        let task = &mut entry.task;
        task.state = TaskState::Stopped;
        task.desired_state = TaskState::Stopped;
        task.exit = Some(exit);
        task.stopped_at = Some(SystemTime::now());
        task.stop_reason
            .get_or_insert(StopReason::EssentialContainerExited {
                exit_code: exit.code(),
            });
        let task = task.clone();
        table.stopped.push_back(id.clone());
        while table.stopped.len() > self.config.stopped_tasks_kept {
            if let Some(oldest) = table.stopped.pop_front() {
                table.tasks.remove(&oldest);
            }
        }
        Some((task, stop_requested))
    }

    fn set_state(&self, id: &TaskId, state: TaskState) {
        if let Some(entry) = lock(&self.table).tasks.get_mut(id) {
            if entry.task.state.can_transition_to(state) {
                entry.task.state = state;
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let table = self.table.get_mut().unwrap_or_else(|e| e.into_inner());
        for (id, entry) in &table.tasks {
            if entry.task.state != TaskState::Stopped {
                tracing::warn!(task_id = %id, "task runtime dropped: SIGKILL to the task");
                let _ = process::signal_group(entry.pgid, Signal::SIGKILL);
            }
        }
    }
}

/// A task's output handling: the stream readers, the file writer, and a way to add the
/// runtime's own last line.
struct Output {
    readers: Vec<JoinHandle<()>>,
    writer: JoinHandle<()>,
    lines: mpsc::Sender<LogLine>,
}

/// Waits for the task's process to exit, then cleans up and reports it. The report comes once
/// the task's output is in its log file (or [`OUTPUT_DRAIN`] passed), so whoever learns of the
/// exit can read the complete log.
async fn watch_exit(
    runtime: Weak<Inner>,
    id: TaskId,
    mut child: tokio::process::Child,
    pgid: Pid,
    stopped: watch::Sender<Option<Task>>,
    output: Output,
) {
    let exit = match child.wait().await {
        Ok(status) => process::task_exit(status),
        Err(error) => {
            tracing::warn!(task_id = %id, "cannot wait for the task's process: {error}");
            TaskExit::Code(-1)
        }
    };
    let Some(runtime) = runtime.upgrade() else {
        return;
    };
    runtime.set_state(&id, TaskState::Deprovisioning);
    // What the leader left behind in its group (background jobs of a shell) goes with it, as a
    // container's processes go with its main process. The group cannot be reused while any of
    // them lives; if none does, this finds nothing.
    let _ = process::signal_group(pgid, Signal::SIGKILL);
    // The pipes reach end of file once every process holding them is gone; one that left the
    // group may hold them forever, hence the deadline.
    let drained_by = tokio::time::Instant::now() + OUTPUT_DRAIN;
    for reader in output.readers {
        let _ = tokio::time::timeout_at(drained_by, reader).await;
    }
    let Some((task, stop_requested)) = runtime.finish(&id, exit) else {
        return;
    };
    let described = process::describe_exit(exit);
    let stop_code = task
        .stop_reason
        .as_ref()
        .map_or("", |reason| reason.stop_code());
    if stop_requested {
        tracing::info!(task_id = %id, service = %task.service, "task stopped: {described}");
    } else {
        tracing::warn!(task_id = %id, service = %task.service, "task exited: {described}");
    }
    let _ = output
        .lines
        .send(LogLine {
            at: SystemTime::now(),
            stream: Stream::Scalegate,
            text: format!("stopped ({stop_code}): {described}"),
        })
        .await;
    drop(output.lines);
    let _ = tokio::time::timeout(OUTPUT_DRAIN, output.writer).await;
    let event = TaskEvent::Exited {
        id,
        service: task.service.clone(),
        exit,
        at: task.stopped_at.unwrap_or_else(SystemTime::now),
        stop_requested,
    };
    stopped.send_replace(Some(task));
    let _ = runtime.events.send(event);
}

async fn wait_stopped(stopped: &mut watch::Receiver<Option<Task>>) -> Result<Task, BackendError> {
    match stopped.wait_for(Option::is_some).await {
        Ok(task) => Ok(task.clone().expect("waited for Some")),
        Err(_) => Err(BackendError::Unavailable(
            "the task runtime is shutting down".into(),
        )),
    }
}

fn send_to_group(id: &TaskId, pgid: Pid, signal: Signal) {
    if let Err(errno) = process::signal_group(pgid, signal) {
        tracing::warn!(task_id = %id, "cannot send {signal} to process group {pgid}: {errno}");
    }
}

async fn open_log_file(path: &std::path::Path) -> std::io::Result<tokio::fs::File> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
}

/// The runtime's locks guard plain data and are never held across an await; a panic while
/// holding one leaves consistent data, so poisoning is ignored.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests;
