//! Per-second results: each generator thread records into its own seconds (no locks, no
//! messages per request) and sends a second to the collector once the thread's clock has passed
//! it; the collector merges a second once every thread has sent it (or finished).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::mpsc;

use super::exchange::Failure;
use super::SecondStats;
use crate::report::ErrorClass;

/// Histogram range: 1 µs to 60 s (larger values saturate), 3 significant figures.
const LOWEST_MICROS: u64 = 1;
const HIGHEST_MICROS: u64 = 60_000_000;
const SIGNIFICANT_FIGURES: u8 = 3;

/// An empty latency histogram with the generator's range and precision.
pub(super) fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LOWEST_MICROS, HIGHEST_MICROS, SIGNIFICANT_FIGURES)
        .expect("1 µs – 60 s at 3 significant figures is a valid histogram")
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// What a thread tells the collector.
#[derive(Debug)]
pub(super) enum ThreadReport {
    /// A second the thread's clock has passed; nothing more will be recorded in it.
    Second {
        /// The sending thread.
        thread: usize,
        /// Its results for that second.
        stats: Box<SecondStats>,
    },
    /// The thread is done (sent after its last second, also when it panicked).
    Finished {
        /// The thread.
        thread: usize,
    },
}

/// A thread's totals for [`super::LoadTotals`].
#[derive(Debug, Clone, Default)]
pub(super) struct ThreadTotals {
    /// Requests that were due but never sent.
    pub unsent: u64,
    /// Connections opened.
    pub connections_opened: u64,
    /// When the thread's last request completed.
    pub last_completion: Option<Instant>,
    /// The first failure message of each class.
    pub error_samples: BTreeMap<ErrorClass, String>,
}

/// One thread's recorder: the seconds it has not yet sent, oldest first.
#[derive(Debug)]
pub(super) struct Recorder {
    thread: usize,
    started: Instant,
    late_after: Duration,
    /// Seconds before this one have been sent.
    first_pending: u64,
    pending: VecDeque<SecondStats>,
    sink: mpsc::UnboundedSender<ThreadReport>,
    /// Totals so far.
    pub totals: ThreadTotals,
}

impl Recorder {
    /// A recorder for thread `thread` of a run that started at `started`.
    pub(super) fn new(
        thread: usize,
        started: Instant,
        late_after: Duration,
        sink: mpsc::UnboundedSender<ThreadReport>,
    ) -> Self {
        Recorder {
            thread,
            started,
            late_after,
            first_pending: 0,
            pending: VecDeque::new(),
            sink,
            totals: ThreadTotals::default(),
        }
    }

    /// The second of the run `at` falls in.
    pub(super) fn second_of(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_secs()
    }

    /// When second `second` starts.
    pub(super) fn start_of(&self, second: u64) -> Instant {
        self.started + Duration::from_secs(second)
    }

    fn slot(&mut self, at: Instant) -> &mut SecondStats {
        // Events are recorded when they happen and seconds are sent only once the clock is past
        // them, so `at` is never in a sent second; clamping keeps a mistake from panicking.
        let second = self.second_of(at).max(self.first_pending);
        let index = usize::try_from(second - self.first_pending).unwrap_or(usize::MAX);
        while self.pending.len() <= index {
            let next = self.first_pending + self.pending.len() as u64;
            self.pending.push_back(SecondStats::empty(next));
        }
        &mut self.pending[index]
    }

    /// A request became due at `intended` (open model: counted by the pacer when it hands the
    /// request out, before the second is sent).
    pub(super) fn intended(&mut self, intended: Instant) {
        self.slot(intended).intended += 1;
    }

    /// A request was sent at `sent`, intended at `intended`.
    pub(super) fn sent(&mut self, intended: Instant, sent: Instant) {
        let late = sent.saturating_duration_since(intended) > self.late_after;
        let slot = self.slot(sent);
        slot.sent += 1;
        slot.late += u64::from(late);
    }

    /// Undoes [`Recorder::sent`] (and [`Recorder::intended`] at the same instant when
    /// `also_intended`): hyper handed the request back unsent (the connection had closed), and
    /// it will be sent again. If that second has already gone out (it almost never has: the
    /// hand-back takes microseconds) the counts stay.
    pub(super) fn unsent_again(&mut self, intended: Instant, sent: Instant, also_intended: bool) {
        if self.second_of(sent) < self.first_pending {
            return;
        }
        let late = sent.saturating_duration_since(intended) > self.late_after;
        let slot = self.slot(sent);
        slot.sent = slot.sent.saturating_sub(1);
        slot.late = slot.late.saturating_sub(u64::from(late));
        if also_intended {
            slot.intended = slot.intended.saturating_sub(1);
        }
    }

    /// A request completed at `done` with a response (`status`, `bytes` of body) or failed.
    pub(super) fn completed(
        &mut self,
        intended: Instant,
        sent: Instant,
        done: Instant,
        outcome: Result<(u16, u64), &Failure>,
    ) {
        let latency = micros(done.saturating_duration_since(intended));
        let service_time = micros(done.saturating_duration_since(sent));
        self.totals.last_completion = Some(done);
        let slot = self.slot(done);
        slot.completed += 1;
        slot.latency.saturating_record(latency);
        slot.service_time.saturating_record(service_time);
        match outcome {
            Ok((status, bytes)) => {
                *slot.statuses.entry(status).or_insert(0) += 1;
                slot.bytes += bytes;
                slot.failed += u64::from(!(200..400).contains(&status));
            }
            Err(failure) => {
                *slot.errors.entry(failure.class).or_insert(0) += 1;
                slot.failed += 1;
                if let std::collections::btree_map::Entry::Vacant(sample) =
                    self.totals.error_samples.entry(failure.class)
                {
                    tracing::warn!(
                        class = failure.class.name(),
                        error = %failure.message,
                        "request failed (first of its class in this thread)"
                    );
                    sample.insert(failure.message.clone());
                }
            }
        }
    }

    /// Sends every second that ended before `now`, empty ones included.
    pub(super) fn send_seconds_before(&mut self, now: Instant) {
        let current = self.second_of(now);
        while self.first_pending < current {
            let stats = self
                .pending
                .pop_front()
                .unwrap_or_else(|| SecondStats::empty(self.first_pending));
            self.send(stats);
        }
    }

    /// At the end of the thread's work: sends the seconds that ended and any later one holding
    /// results (the partial last second).
    pub(super) fn send_remaining(&mut self, now: Instant) {
        self.send_seconds_before(now);
        while let Some(stats) = self.pending.pop_front() {
            self.send(stats);
        }
    }

    fn send(&mut self, stats: SecondStats) {
        debug_assert_eq!(stats.second, self.first_pending);
        self.first_pending += 1;
        // The receiver is gone only when nobody reads the run any more; results can be dropped.
        let _ = self.sink.send(ThreadReport::Second {
            thread: self.thread,
            stats: Box::new(stats),
        });
    }
}

/// Merges the threads' seconds and releases them in order.
#[derive(Debug)]
pub(super) struct Collector {
    reports: mpsc::UnboundedReceiver<ThreadReport>,
    /// Per thread: how many of its seconds have arrived (it has sent seconds `0..n`).
    seconds_received: Vec<u64>,
    finished: Vec<bool>,
    /// Seconds some thread has sent that are not yet released.
    merging: BTreeMap<u64, SecondStats>,
    next: u64,
}

impl Collector {
    /// A collector for `threads` threads reporting on `reports`.
    pub(super) fn new(reports: mpsc::UnboundedReceiver<ThreadReport>, threads: usize) -> Self {
        Collector {
            reports,
            seconds_received: vec![0; threads],
            finished: vec![false; threads],
            merging: BTreeMap::new(),
            next: 0,
        }
    }

    /// The next second once every thread has passed it; `None` when all threads finished and
    /// every second was released. Cancel-safe: state changes only between awaits.
    pub(super) async fn next_second(&mut self) -> Option<SecondStats> {
        loop {
            if let Some(ready) = self.release() {
                return ready;
            }
            match self.reports.recv().await {
                Some(report) => self.receive(report),
                // Every thread dropped its sender: nothing more will come.
                None => self.finished.iter_mut().for_each(|done| *done = true),
            }
        }
    }

    /// `Some(Some(second))` to release, `Some(None)` at the end, `None` to wait for more.
    fn release(&mut self) -> Option<Option<SecondStats>> {
        let next = self.next;
        let passed = self
            .seconds_received
            .iter()
            .zip(&self.finished)
            .all(|(received, finished)| *finished || *received > next);
        if !passed {
            return None;
        }
        match self.merging.remove(&next) {
            Some(stats) => {
                self.next += 1;
                Some(Some(stats))
            }
            // Every thread has finished without reaching this second.
            None => Some(None),
        }
    }

    fn receive(&mut self, report: ThreadReport) {
        match report {
            ThreadReport::Second { thread, stats } => {
                self.seconds_received[thread] = stats.second + 1;
                match self.merging.get_mut(&stats.second) {
                    Some(merged) => merged.add(&stats),
                    None => {
                        self.merging.insert(stats.second, *stats);
                    }
                }
            }
            ThreadReport::Finished { thread } => self.finished[thread] = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder(
        thread: usize,
        started: Instant,
        sink: &mpsc::UnboundedSender<ThreadReport>,
    ) -> Recorder {
        Recorder::new(thread, started, Duration::from_millis(10), sink.clone())
    }

    #[tokio::test]
    async fn seconds_are_released_in_order_once_every_thread_passed_them() {
        let (sink, reports) = mpsc::unbounded_channel();
        let started = Instant::now();
        let at = |seconds: f64| started + Duration::from_secs_f64(seconds);
        let mut collector = Collector::new(reports, 2);
        let mut fast = recorder(0, started, &sink);
        let mut slow = recorder(1, started, &sink);

        fast.intended(at(0.5));
        fast.sent(at(0.5), at(0.52));
        fast.completed(at(0.5), at(0.52), at(2.1), Ok((200, 10)));
        fast.send_remaining(at(2.5));
        sink.send(ThreadReport::Finished { thread: 0 }).unwrap();
        slow.intended(at(0.2));
        slow.sent(at(0.2), at(0.2));
        slow.completed(
            at(0.2),
            at(0.2),
            at(0.3),
            Err(&Failure::new(ErrorClass::Reset, "reset".to_string())),
        );
        slow.send_seconds_before(at(1.0));

        let first = collector.next_second().await.unwrap();
        assert_eq!(
            (first.second, first.intended, first.sent, first.late),
            (0, 2, 2, 1)
        );
        assert_eq!(first.completed, 1);
        assert_eq!(first.failed, 1);
        assert_eq!(first.errors.get(&ErrorClass::Reset), Some(&1));
        // Second 1 waits for the slow thread.
        let pending =
            tokio::time::timeout(Duration::from_millis(20), collector.next_second()).await;
        assert!(
            pending.is_err(),
            "second 1 released before every thread passed it"
        );
        slow.send_remaining(at(1.5));
        sink.send(ThreadReport::Finished { thread: 1 }).unwrap();
        let second = collector.next_second().await.unwrap();
        assert_eq!((second.second, second.completed), (1, 0));
        let third = collector.next_second().await.unwrap();
        assert_eq!(third.second, 2);
        assert_eq!(third.statuses.get(&200), Some(&1));
        assert_eq!(third.bytes, 10);
        assert_eq!(third.latency.len(), 1);
        assert!(third.latency.value_at_quantile(1.0) >= 1_600_000);
        assert!(collector.next_second().await.is_none());
        assert!(collector.next_second().await.is_none());
    }

    #[test]
    fn latencies_beyond_a_minute_saturate() {
        let (sink, _reports) = mpsc::unbounded_channel();
        let started = Instant::now();
        let mut recorder = recorder(0, started, &sink);
        let done = started + Duration::from_secs(120);
        recorder.completed(started, started, done, Ok((200, 0)));
        let slot = recorder.slot(done);
        assert_eq!(slot.latency.len(), 1);
        assert!(slot.latency.max() >= 59_000_000);
    }
}
