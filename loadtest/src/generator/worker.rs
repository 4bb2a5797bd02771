//! One generator thread: a current-thread runtime whose tasks share state through `Rc` and
//! `RefCell` (no locks), with
//!
//! - the **pacer** (open model): hands out the thread's requests at their intended times to
//!   workers, starting a worker while fewer than the thread's share of `max_in_flight` exist
//!   and queueing otherwise;
//! - **workers**: each carries one request at a time — over its own keep-alive HTTP/1.1
//!   connection (the lean client in `http1`), or as a stream on one of the thread's HTTP/2
//!   connections (hyper). In the closed model a worker is one of the `connections` loops;
//! - the **supervisor**: sends each finished second to the collector and waits for the workers.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Sleep;

use super::exchange::{exchange_http2, Exchange, Failure};
use super::http1::Http1Connection;
use super::stats::{Recorder, ThreadReport, ThreadTotals};
use super::target::{Http2Sender, Target};
use super::timer::PacingTimer;
use super::{Arrivals as ArrivalKind, GeneratorOptions, Protocol};
use crate::report::ErrorClass;
use crate::schedule::{CumulativeCurve, LoadModel};

/// After a failed connect, a closed-model loop waits this long before its next request, so a
/// refused port yields a steady trickle of `connect` errors rather than a busy loop.
const CLOSED_CONNECT_BACKOFF: Duration = Duration::from_millis(10);

/// Everything one generator thread needs.
pub(super) struct ThreadPlan {
    /// This thread's number, `0..threads`.
    pub index: usize,
    /// How many threads share the load.
    pub threads: usize,
    /// The run's time zero, shared by all threads.
    pub started: Instant,
    /// The schedule's length.
    pub duration: Duration,
    /// The schedule's cumulative count (open model pacing).
    pub curve: Arc<CumulativeCurve>,
    /// Where requests go.
    pub target: Arc<Target>,
    /// How to send.
    pub options: GeneratorOptions,
    /// Poisson seed, the same in every thread so that together they draw one process.
    pub seed: u64,
    /// Becomes `true` on stop.
    pub stop: watch::Receiver<bool>,
    /// Where finished seconds go.
    pub sink: mpsc::UnboundedSender<ThreadReport>,
}

/// Runs one generator thread to the end and returns its totals.
pub(super) fn run_thread(plan: ThreadPlan) -> Result<ThreadTotals, String> {
    // Tells the collector this thread is done however it ends, panics included, so that
    // `next_second` cannot wait forever.
    let _finished = FinishedGuard {
        sink: plan.sink.clone(),
        thread: plan.index,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot build the thread's runtime: {error}"))?;
    let local = tokio::task::LocalSet::new();
    Ok(local.block_on(&runtime, run(plan)))
}

struct FinishedGuard {
    sink: mpsc::UnboundedSender<ThreadReport>,
    thread: usize,
}

impl Drop for FinishedGuard {
    fn drop(&mut self) {
        let _ = self.sink.send(ThreadReport::Finished {
            thread: self.thread,
        });
    }
}

/// What every task of the thread shares.
struct Shared {
    target: Arc<Target>,
    recorder: RefCell<Recorder>,
    timeout: Duration,
    /// Stop was asked: workers take no new request.
    stopped: Cell<bool>,
    /// Workers alive.
    workers: Cell<usize>,
    /// Signalled when the last worker exits.
    workers_done: Notify,
    /// Connect attempts so far, to rotate over the target's addresses.
    connect_attempts: Cell<usize>,
    /// The thread's HTTP/2 connections (empty for HTTP/1.1).
    http2: Vec<Http2Slot>,
}

impl Shared {
    fn next_connect_attempt(&self) -> usize {
        let attempt = self.connect_attempts.get();
        self.connect_attempts.set(attempt.wrapping_add(1));
        attempt
    }

    /// Records that `job` left at `sent` (the closed model counts it as intended then too);
    /// returns when it was intended.
    fn record_sent(&self, job: Job, sent: Instant) -> Instant {
        let intended = job.intended.unwrap_or(sent);
        let mut recorder = self.recorder.borrow_mut();
        if job.intended.is_none() {
            recorder.intended(sent);
        }
        recorder.sent(intended, sent);
        intended
    }

    /// A request that failed before it could be sent (connect, TLS): it counts as sent when
    /// the attempt began and completed, failed, now.
    fn fail_unsendable(&self, job: Job, attempted: Instant, failure: &Failure) {
        let intended = self.record_sent(job, attempted);
        self.recorder
            .borrow_mut()
            .completed(intended, attempted, Instant::now(), Err(failure));
    }
}

/// One request to send.
#[derive(Debug, Clone, Copy)]
struct Job {
    /// When the schedule wanted it sent; `None` in the closed model (latency = service time).
    intended: Option<Instant>,
    /// Which of the template's URLs.
    url: usize,
    /// Already handed back unsent once by a closing connection; a second time is a failure, so
    /// a server that closes every connection at once cannot make a worker loop.
    resent: bool,
}

/// Where workers get their next request.
trait JobSource {
    /// The next request, waiting for one if need be; `None` when the worker should exit.
    async fn next_job(&self, shared: &Shared) -> Option<Job>;

    /// Called after a connect failure consumed a request.
    async fn after_connect_failure(&self);
}

/// Closed model: a new request as soon as the previous one finished, until the end.
struct Continuous {
    end: Instant,
    next_url: Cell<usize>,
    url_count: usize,
}

impl JobSource for Continuous {
    async fn next_job(&self, shared: &Shared) -> Option<Job> {
        if shared.stopped.get() || Instant::now() >= self.end {
            return None;
        }
        let url = self.next_url.get();
        self.next_url.set(if url + 1 == self.url_count {
            0
        } else {
            url + 1
        });
        Some(Job {
            intended: None,
            url,
            resent: false,
        })
    }

    async fn after_connect_failure(&self) {
        tokio::time::sleep(CLOSED_CONNECT_BACKOFF).await;
    }
}

/// Open model: requests the pacer made due, waiting for a worker.
struct Queue {
    jobs: RefCell<VecDeque<Job>>,
    /// Workers waiting for a job that have not been woken yet.
    idle: Cell<usize>,
    wake: Notify,
    /// Signalled when a worker takes the last queued job (the drain after the schedule).
    emptied: Notify,
    /// No more jobs will be queued.
    closed: Cell<bool>,
}

impl JobSource for Queue {
    async fn next_job(&self, _shared: &Shared) -> Option<Job> {
        loop {
            let next = self.jobs.borrow_mut().pop_front();
            if let Some(job) = next {
                if self.jobs.borrow().is_empty() {
                    self.emptied.notify_one();
                }
                return Some(job);
            }
            if self.closed.get() {
                return None;
            }
            self.idle.set(self.idle.get() + 1);
            self.wake.notified().await;
        }
    }

    async fn after_connect_failure(&self) {}
}

/// Counts a worker alive until dropped.
struct WorkerGuard(Rc<Shared>);

impl WorkerGuard {
    fn new(shared: &Rc<Shared>) -> Self {
        shared.workers.set(shared.workers.get() + 1);
        WorkerGuard(Rc::clone(shared))
    }
}

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        let left = self.0.workers.get() - 1;
        self.0.workers.set(left);
        if left == 0 {
            self.0.workers_done.notify_one();
        }
    }
}

async fn run(plan: ThreadPlan) -> ThreadTotals {
    let ThreadPlan {
        index,
        threads,
        started,
        duration,
        curve,
        target,
        options,
        seed,
        mut stop,
        sink,
    } = plan;
    let end = started + duration;
    let share = |total: usize| total / threads + usize::from(index < total % threads);
    let http2_connections = |streams: usize| match options.protocol {
        Protocol::Http1 => 0,
        Protocol::Http2 => options.http2_connections.max(1).min(streams.max(1)),
    };
    let (streams, connections) = match options.model {
        LoadModel::Open { max_in_flight } => {
            let cap = share(max_in_flight).max(1);
            (cap, http2_connections(cap))
        }
        LoadModel::Closed { connections } => {
            let loops = share(connections);
            (loops, http2_connections(loops))
        }
    };
    let shared = Rc::new(Shared {
        recorder: RefCell::new(Recorder::new(index, started, options.late_after, sink)),
        target,
        timeout: options.timeout,
        stopped: Cell::new(false),
        workers: Cell::new(0),
        workers_done: Notify::new(),
        connect_attempts: Cell::new(index),
        http2: (0..connections).map(|_| Http2Slot::default()).collect(),
    });
    match options.model {
        LoadModel::Open { .. } => {
            let pacer = Pacer {
                curve: &curve,
                arrivals: ArrivalSequence::new(options.arrivals, seed, index, threads),
                started,
                end,
                max_workers: streams,
                send_deadline: end + options.timeout,
            };
            pacer.run(&shared, &mut stop).await;
        }
        LoadModel::Closed { .. } => {
            let source = Rc::new(Continuous {
                end,
                next_url: Cell::new(0),
                url_count: shared.target.url_count(),
            });
            for worker in 0..streams {
                spawn_worker(&shared, &source, worker);
            }
        }
    }
    wait_for_workers(&shared, &mut stop).await;
    let mut recorder = shared.recorder.borrow_mut();
    recorder.send_remaining(Instant::now());
    std::mem::take(&mut recorder.totals)
}

fn spawn_worker<S: JobSource + 'static>(shared: &Rc<Shared>, source: &Rc<S>, number: usize) {
    let guard = WorkerGuard::new(shared);
    let shared = Rc::clone(shared);
    let source = Rc::clone(source);
    tokio::task::spawn_local(async move {
        let _guard = guard;
        if shared.http2.is_empty() {
            http1_worker(&shared, &*source).await;
        } else {
            let slot = number % shared.http2.len();
            http2_worker(&shared, &*source, slot).await;
        }
    });
}

/// Until every worker has exited: sends each second as it ends; on stop, tells workers to
/// take no new request (they finish the one in flight, bounded by the request timeout).
async fn wait_for_workers(shared: &Shared, stop: &mut watch::Receiver<bool>) {
    loop {
        let now = Instant::now();
        shared.recorder.borrow_mut().send_seconds_before(now);
        if shared.workers.get() == 0 {
            return;
        }
        let next_second = {
            let recorder = shared.recorder.borrow();
            recorder.start_of(recorder.second_of(now) + 1)
        };
        tokio::select! {
            () = tokio::time::sleep_until(next_second.into()) => {}
            () = shared.workers_done.notified() => {}
            () = stopped(stop), if !shared.stopped.get() => shared.stopped.set(true),
        }
    }
}

/// Resolves once stop was asked (or the run's owner went away).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// The thread's arrivals: request `index + k × threads` of the run, for k = 0, 1, …
enum ArrivalSequence {
    /// Request n at the instant the cumulative count passes n.
    Uniform { next: u64, step: u64 },
    /// Arrival i at the instant the cumulative count passes `X_i`, where `X_i` is the sum of
    /// i + 1 unit exponentials: a Poisson process with the schedule's (varying) rate. Every
    /// thread draws the same sequence and keeps its own share.
    Poisson {
        rng: fastrand::Rng,
        /// `X` of the last arrival drawn.
        position: f64,
        /// Arrivals drawn so far.
        drawn: u64,
        next: u64,
        step: u64,
    },
}

impl ArrivalSequence {
    fn new(kind: ArrivalKind, seed: u64, index: usize, threads: usize) -> Self {
        let (next, step) = (index as u64, threads as u64);
        match kind {
            ArrivalKind::Uniform => ArrivalSequence::Uniform { next, step },
            ArrivalKind::Poisson => ArrivalSequence::Poisson {
                rng: fastrand::Rng::with_seed(seed),
                position: 0.0,
                drawn: 0,
                next,
                step,
            },
        }
    }

    /// The next of this thread's arrivals: its offset from the start and its number in the
    /// whole run.
    fn next(&mut self, curve: &CumulativeCurve) -> Option<(Duration, u64)> {
        match self {
            ArrivalSequence::Uniform { next, step } => {
                let n = *next;
                *next += *step;
                Some((curve.time_of_request(n)?, n))
            }
            ArrivalSequence::Poisson {
                rng,
                position,
                drawn,
                next,
                step,
            } => {
                while *drawn <= *next {
                    *position += -(1.0 - rng.f64()).ln();
                    *drawn += 1;
                }
                let n = *next;
                *next += *step;
                Some((curve.time_of_count(*position)?, n))
            }
        }
    }
}

/// Open model: hands out this thread's requests at their intended times.
struct Pacer<'a> {
    curve: &'a CumulativeCurve,
    arrivals: ArrivalSequence,
    started: Instant,
    end: Instant,
    max_workers: usize,
    /// Queued requests may still leave until then (end + timeout); later ones are unsent.
    send_deadline: Instant,
}

impl Pacer<'_> {
    async fn run(mut self, shared: &Rc<Shared>, stop: &mut watch::Receiver<bool>) {
        let queue = Rc::new(Queue {
            jobs: RefCell::new(VecDeque::new()),
            idle: Cell::new(0),
            wake: Notify::new(),
            emptied: Notify::new(),
            closed: Cell::new(false),
        });
        let url_count = shared.target.url_count() as u64;
        let timer = PacingTimer::new();
        let mut spawned = 0;
        let mut next = self.next_arrival();
        loop {
            let now = Instant::now();
            while let Some((intended, n)) = next.filter(|(intended, _)| *intended <= now) {
                shared.recorder.borrow_mut().intended(intended);
                queue.jobs.borrow_mut().push_back(Job {
                    intended: Some(intended),
                    url: (n % url_count) as usize,
                    resent: false,
                });
                if queue.idle.get() > 0 {
                    queue.idle.set(queue.idle.get() - 1);
                    queue.wake.notify_one();
                } else if shared.workers.get() < self.max_workers {
                    spawn_worker(shared, &queue, spawned);
                    spawned += 1;
                }
                next = self.next_arrival();
            }
            shared.recorder.borrow_mut().send_seconds_before(now);
            if next.is_none() && now >= self.end {
                break;
            }
            let wake_at = next
                .map_or(self.end, |(intended, _)| intended)
                .min(self.next_second(shared, now));
            tokio::select! {
                () = timer.sleep_until(wake_at) => {}
                () = stopped(stop) => {
                    shared.stopped.set(true);
                    break;
                }
            }
        }
        // After the schedule: queued requests may still leave until end + timeout.
        while !shared.stopped.get() && !queue.jobs.borrow().is_empty() {
            let now = Instant::now();
            shared.recorder.borrow_mut().send_seconds_before(now);
            if now >= self.send_deadline {
                break;
            }
            let wake_at = self.send_deadline.min(self.next_second(shared, now));
            tokio::select! {
                () = tokio::time::sleep_until(wake_at.into()) => {}
                () = queue.emptied.notified() => {}
                () = stopped(stop) => shared.stopped.set(true),
            }
        }
        let unsent = queue.jobs.borrow_mut().drain(..).count() as u64;
        shared.recorder.borrow_mut().totals.unsent += unsent;
        queue.closed.set(true);
        queue.wake.notify_waiters();
    }

    fn next_arrival(&mut self) -> Option<(Instant, u64)> {
        let (offset, n) = self.arrivals.next(self.curve)?;
        Some((self.started + offset, n))
    }

    fn next_second(&self, shared: &Shared, now: Instant) -> Instant {
        let recorder = shared.recorder.borrow();
        recorder.start_of(recorder.second_of(now) + 1)
    }
}

/// How a request on a connection ended, for the worker that owns the connection.
enum Sent {
    /// Answered; the connection may carry the next one.
    Reusable,
    /// Done (answered or failed); the connection must not be reused.
    Retire,
    /// Never sent: the connection had closed. The job goes out again on a new connection.
    Again(Job),
}

/// Sends one request and records it: `exchange` starts it (on some connection) when called,
/// and is bounded by the request timeout. `deadline` is the worker's timer, reset per request
/// rather than created.
async fn send_one<F>(
    shared: &Shared,
    job: Job,
    deadline: &mut Pin<&mut Sleep>,
    exchange: impl FnOnce() -> F,
) -> Sent
where
    F: Future<Output = Exchange>,
{
    let sent = Instant::now();
    let intended = shared.record_sent(job, sent);
    deadline.as_mut().reset((sent + shared.timeout).into());
    let exchanging = exchange();
    let result = tokio::select! {
        biased;
        result = exchanging => result,
        () = deadline.as_mut() => Exchange::Failed(Failure::timeout()),
    };
    let done = Instant::now();
    let mut recorder = shared.recorder.borrow_mut();
    match result {
        Exchange::Response {
            status,
            bytes,
            reusable,
        } => {
            recorder.completed(intended, sent, done, Ok((status, bytes)));
            if reusable {
                Sent::Reusable
            } else {
                Sent::Retire
            }
        }
        Exchange::Failed(failure) => {
            recorder.completed(intended, sent, done, Err(&failure));
            Sent::Retire
        }
        Exchange::NotSent if !job.resent => {
            // Counted again when it is sent (the closed model also counts it as intended then).
            recorder.unsent_again(intended, sent, job.intended.is_none());
            Sent::Again(Job {
                resent: true,
                ..job
            })
        }
        Exchange::NotSent => {
            recorder.completed(intended, sent, done, Err(&closed_before_sending()));
            Sent::Retire
        }
    }
}

/// The failure of a request whose connection closed before it could be written, twice.
fn closed_before_sending() -> Failure {
    Failure::new(
        ErrorClass::Reset,
        "the connection closed before the request could be sent".to_string(),
    )
}

/// A worker with its own HTTP/1.1 connection, opened when the first job arrives and replaced
/// when the server closed it while idle, answered `Connection: close`, or a request failed.
async fn http1_worker(shared: &Shared, source: &impl JobSource) {
    let mut deadline = pin!(tokio::time::sleep(Duration::ZERO));
    let mut connection: Option<Http1Connection> = None;
    let head_requests = shared.target.is_head();
    while let Some(job) = source.next_job(shared).await {
        // A keep-alive connection the server closed while idle is replaced before it is used,
        // so the request does not fail on it.
        if connection.as_mut().is_some_and(|open| !open.is_open()) {
            connection = None;
        }
        let open = match &mut connection {
            Some(open) => open,
            None => {
                let attempted = Instant::now();
                match shared
                    .target
                    .connect_http1(shared.next_connect_attempt())
                    .await
                {
                    Ok(opened) => {
                        shared.recorder.borrow_mut().totals.connections_opened += 1;
                        connection.insert(opened)
                    }
                    Err(failure) => {
                        shared.fail_unsendable(job, attempted, &failure);
                        source.after_connect_failure().await;
                        continue;
                    }
                }
            }
        };
        let request = shared.target.http1_request(job.url);
        let sent = send_one(shared, job, &mut deadline, || {
            open.exchange(request, head_requests)
        })
        .await;
        if !matches!(sent, Sent::Reusable) {
            connection = None;
        }
    }
}

/// One of a thread's HTTP/2 connections, opened by the first worker that needs it and
/// replaced when it closes (GOAWAY, error).
#[derive(Default)]
struct Http2Slot {
    sender: RefCell<Option<Http2Sender>>,
    connecting: Cell<bool>,
    connected: Notify,
}

impl Http2Slot {
    fn is_open(&self) -> bool {
        self.sender
            .borrow()
            .as_ref()
            .is_some_and(|sender| !sender.is_closed())
    }

    /// Makes sure the slot has an open connection: one worker connects, the others wait for
    /// it; if it fails they try in turn, each spending its own request on the attempt.
    async fn ensure_open(&self, shared: &Shared) -> Result<(), Failure> {
        loop {
            if self.is_open() {
                return Ok(());
            }
            if self.connecting.get() {
                self.connected.notified().await;
                continue;
            }
            self.connecting.set(true);
            let _connecting = ConnectingGuard(self);
            let sender = shared
                .target
                .connect_http2(shared.next_connect_attempt())
                .await?;
            shared.recorder.borrow_mut().totals.connections_opened += 1;
            *self.sender.borrow_mut() = Some(sender);
            return Ok(());
        }
    }
}

/// Clears `connecting` and wakes waiters however the connect attempt ends.
struct ConnectingGuard<'a>(&'a Http2Slot);

impl Drop for ConnectingGuard<'_> {
    fn drop(&mut self) {
        self.0.connecting.set(false);
        self.0.connected.notify_waiters();
    }
}

/// A worker carrying one stream at a time on HTTP/2 connection `slot` of the thread.
async fn http2_worker(shared: &Shared, source: &impl JobSource, slot: usize) {
    let slot = &shared.http2[slot];
    let mut deadline = pin!(tokio::time::sleep(Duration::ZERO));
    let mut carried: Option<Job> = None;
    loop {
        let job = match carried.take() {
            Some(job) => job,
            None => match source.next_job(shared).await {
                Some(job) => job,
                None => return,
            },
        };
        let attempted = Instant::now();
        if let Err(failure) = slot.ensure_open(shared).await {
            shared.fail_unsendable(job, attempted, &failure);
            source.after_connect_failure().await;
            continue;
        }
        let sent = send_one(shared, job, &mut deadline, || {
            let request = shared.target.http2_request(job.url);
            let mut sender = slot.sender.borrow_mut();
            let sender = sender.as_mut().expect("ensure_open left a connection");
            exchange_http2(sender.try_send_request(request))
        })
        .await;
        if let Sent::Again(job) = sent {
            carried = Some(job);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Schedule;

    /// Every arrival of a run, in time order, as the threads' sequences together give them.
    fn arrivals(
        kind: ArrivalKind,
        threads: usize,
        curve: &CumulativeCurve,
    ) -> Vec<(Duration, u64)> {
        let mut all: Vec<(Duration, u64)> = (0..threads)
            .flat_map(|index| {
                let mut sequence = ArrivalSequence::new(kind, 7, index, threads);
                std::iter::from_fn(move || sequence.next(curve)).collect::<Vec<_>>()
            })
            .collect();
        all.sort_by_key(|(_, n)| *n);
        all
    }

    #[test]
    fn threads_share_out_exactly_the_single_thread_arrivals() {
        let curve = Schedule::Stages {
            start_rate: 10.0,
            stages: vec![crate::schedule::Stage {
                duration: Duration::from_secs(3),
                target_rate: 300.0,
            }],
        }
        .curve();
        for kind in [ArrivalKind::Uniform, ArrivalKind::Poisson] {
            let alone = arrivals(kind, 1, &curve);
            for threads in [2, 3, 7] {
                assert_eq!(
                    arrivals(kind, threads, &curve),
                    alone,
                    "{kind:?} on {threads} threads"
                );
            }
            let numbers: Vec<u64> = alone.iter().map(|(_, n)| *n).collect();
            assert_eq!(numbers, (0..alone.len() as u64).collect::<Vec<_>>());
            assert!(alone.windows(2).all(|pair| pair[0].0 <= pair[1].0));
        }
        // Uniform arrivals are exactly the schedule's integral (465 requests); Poisson ones
        // are near it.
        assert_eq!(arrivals(ArrivalKind::Uniform, 1, &curve).len(), 465);
        let poisson = arrivals(ArrivalKind::Poisson, 1, &curve).len();
        assert!(poisson.abs_diff(465) < 110, "{poisson} Poisson arrivals");
    }
}
