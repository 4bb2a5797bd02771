//! The health-check scheduler: one task for every target of every group.
//!
//! Checks are kept in one time-ordered heap and run concurrently inside the scheduler's own
//! task (a bounded set of futures), so the cost does not grow as a task or thread per target.
//! A new target is checked within a second of registration (with jitter, so a group
//! registered at once does not probe in lockstep); after that every `interval`, each period
//! shortened by up to 10 % at random. Jitter only ever makes a check earlier, so "out of
//! rotation within interval × unhealthy threshold" holds, and the checks of targets that
//! started together drift apart over the interval instead of arriving as one burst.
//!
//! Once a second the scheduler also ticks every group (draining, slow start, anomaly
//! detection, gauges); a draining target's last request wakes it at once.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::probe::{probe, ProbeOutcome};
use super::{GroupSettings, Target, TargetGroup};

/// Most checks in flight at once; the rest wait their turn in the heap.
const MAX_CONCURRENT_CHECKS: usize = 512;
/// A new target's first check comes within this time (or the interval, if shorter).
const FIRST_CHECK_WITHIN: Duration = Duration::from_secs(1);
/// How often groups are ticked.
const TICK: Duration = Duration::from_secs(1);

struct ScheduledCheck {
    due: Instant,
    sequence: u64,
    generation: u64,
    group: Weak<TargetGroup>,
    target: Weak<Target>,
}

impl PartialEq for ScheduledCheck {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.sequence) == (other.due, other.sequence)
    }
}
impl Eq for ScheduledCheck {}
impl PartialOrd for ScheduledCheck {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for ScheduledCheck {
    /// Reversed, so the max-heap pops the earliest check first.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.due, other.sequence).cmp(&(self.due, self.sequence))
    }
}

type RunningCheck = Pin<Box<dyn Future<Output = (ScheduledCheck, ProbeOutcome)> + Send>>;

/// Runs every health check and group tick of the process.
pub struct HealthScheduler {
    sender: mpsc::UnboundedSender<ScheduledCheck>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<ScheduledCheck>>>,
    wake: Arc<Notify>,
    groups: Mutex<Vec<Weak<TargetGroup>>>,
}

impl HealthScheduler {
    /// A scheduler that runs once [`HealthScheduler::spawn`] is called.
    pub fn new() -> Arc<HealthScheduler> {
        let (sender, receiver) = mpsc::unbounded_channel();
        Arc::new(HealthScheduler {
            sender,
            receiver: Mutex::new(Some(receiver)),
            wake: Arc::new(Notify::new()),
            groups: Mutex::new(Vec::new()),
        })
    }

    /// Wakes the scheduler to sweep draining targets now.
    pub(crate) fn wake_handle(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// Includes `group` in the once-a-second ticks.
    pub(crate) fn add_group(&self, group: &Arc<TargetGroup>) {
        let mut groups = self.groups.lock().expect("scheduler groups lock");
        groups.retain(|known| known.strong_count() > 0);
        if !groups
            .iter()
            .any(|known| known.as_ptr() == Arc::as_ptr(group))
        {
            groups.push(Arc::downgrade(group));
        }
    }

    /// Schedules a target's first check (cancelling any it had).
    pub(crate) fn schedule_first(
        &self,
        group: &Arc<TargetGroup>,
        target: &Arc<Target>,
        settings: &GroupSettings,
    ) {
        let Some(check) = &settings.health_check else {
            return;
        };
        let generation = target.check_generation.fetch_add(1, Ordering::Relaxed) + 1;
        let window = FIRST_CHECK_WITHIN.min(check.interval);
        let jitter = window.mul_f64(fastrand::f64());
        self.push(ScheduledCheck {
            due: Instant::now() + jitter,
            sequence: 0,
            generation,
            group: Arc::downgrade(group),
            target: Arc::downgrade(target),
        });
    }

    fn push(&self, check: ScheduledCheck) {
        // The receiver lives as long as the scheduler task; if it has stopped (shutdown),
        // there is nothing left to check.
        let _ = self.sender.send(check);
    }

    /// Starts the scheduler task on the current runtime.
    pub fn spawn(self: &Arc<Self>) -> JoinHandle<()> {
        let receiver = self
            .receiver
            .lock()
            .expect("scheduler receiver lock")
            .take()
            .expect("the scheduler is spawned once");
        tokio::spawn(Arc::clone(self).run(receiver))
    }

    async fn run(self: Arc<Self>, mut incoming: mpsc::UnboundedReceiver<ScheduledCheck>) {
        let mut heap: BinaryHeap<ScheduledCheck> = BinaryHeap::new();
        let mut running: FuturesUnordered<RunningCheck> = FuturesUnordered::new();
        let mut sequence = 0u64;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next_due = heap
                .peek()
                .filter(|_| running.len() < MAX_CONCURRENT_CHECKS)
                .map(|check| check.due);
            tokio::select! {
                received = incoming.recv() => match received {
                    Some(mut check) => {
                        sequence += 1;
                        check.sequence = sequence;
                        heap.push(check);
                    }
                    None => return,
                },
                Some((check, outcome)) = running.next(), if !running.is_empty() => {
                    if let Some(next) = self.finish(check, &outcome) {
                        sequence += 1;
                        heap.push(ScheduledCheck { sequence, ..next });
                    }
                }
                () = sleep_until_due(next_due) => {}
                _ = tick.tick() => self.tick_groups(),
                () = self.wake.notified() => self.sweep_groups(),
            }
            let now = Instant::now();
            while running.len() < MAX_CONCURRENT_CHECKS
                && heap.peek().is_some_and(|check| check.due <= now)
            {
                let check = heap.pop().expect("peeked");
                if let Some(started) = start(check) {
                    running.push(started);
                }
            }
        }
    }

    /// Applies a finished check and returns the target's next check.
    fn finish(&self, check: ScheduledCheck, outcome: &ProbeOutcome) -> Option<ScheduledCheck> {
        let group = check.group.upgrade()?;
        let target = check.target.upgrade()?;
        group.record_check(&target, check.generation, outcome);
        let settings = group.settings();
        let interval = settings.health_check.as_ref()?.interval;
        if check.generation != target.check_generation.load(Ordering::Relaxed) {
            return None;
        }
        let period = interval.mul_f64(1.0 - 0.1 * fastrand::f64());
        let due = (check.due + period).max(Instant::now());
        Some(ScheduledCheck { due, ..check })
    }

    fn live_groups(&self) -> Vec<Arc<TargetGroup>> {
        let mut groups = self.groups.lock().expect("scheduler groups lock");
        groups.retain(|group| group.strong_count() > 0);
        groups.iter().filter_map(Weak::upgrade).collect()
    }

    fn tick_groups(&self) {
        let now = std::time::Instant::now();
        for group in self.live_groups() {
            group.tick(now);
        }
    }

    fn sweep_groups(&self) {
        let now = std::time::Instant::now();
        for group in self.live_groups() {
            group.sweep_draining(now);
        }
    }
}

/// Turns a due check into a running probe, unless it no longer applies.
fn start(check: ScheduledCheck) -> Option<RunningCheck> {
    let group = check.group.upgrade()?;
    let target = check.target.upgrade()?;
    if !group.check_starting(&target, check.generation) {
        return None;
    }
    let settings = group.settings();
    let probe_settings = settings.health_check.as_ref()?.probe.clone();
    let address = target.address;
    Some(Box::pin(async move {
        let outcome = probe(&probe_settings, address).await;
        (check, outcome)
    }))
}

async fn sleep_until_due(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}
