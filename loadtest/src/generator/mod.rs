//! The load generator: sends requests on a schedule (open model) or as fast as N connections
//! allow (closed model), and reports what happened second by second.
//!
//! [`start`] spawns `threads` OS threads, each a current-thread tokio runtime that owns every
//! `threads`-th request of the schedule (open model) or its share of the connections (closed
//! model) and records what happened per second in its own HDR histograms; [`RunningLoad`]
//! merges the threads' seconds and hands them out in order.
//!
//! - `target`: the URL's address, TLS, and the requests built once from the template.
//! - `http1`: the lean HTTP/1.1 client (a prebuilt request out, the response parsed in place).
//! - `exchange`: how a request ended, error classes, and one HTTP/2 request over hyper.
//! - `stats`: per-thread, per-second recording and the merge.
//! - `timer`: waiting for intended send times with microsecond precision (timerfd).
//! - `worker`: the per-thread runtime — pacing, connection pools, the open and closed models.

mod exchange;
mod http1;
mod stats;
mod target;
mod timer;
mod worker;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{HeaderMap, Method, Uri};
use tokio::sync::{mpsc, watch};

use crate::report::ErrorClass;
use crate::schedule::{LoadModel, Schedule};

use self::stats::{Collector, ThreadReport, ThreadTotals};
use self::target::Target;

/// What every request looks like. URLs rotate round-robin; they share one scheme and authority
/// (one connection pool).
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    /// Request method.
    pub method: Method,
    /// One or more absolute `http://` or `https://` URLs, same scheme and authority.
    pub urls: Vec<Uri>,
    /// Extra headers sent with every request (a `host` header here overrides the URL's).
    pub headers: HeaderMap,
    /// Request body (empty for none); `content-length` is set from it.
    pub body: Bytes,
}

/// Which HTTP version to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// HTTP/1.1 with keep-alive, one request in flight per connection.
    #[default]
    Http1,
    /// HTTP/2: over `https://` negotiated by ALPN (`h2` required), over `http://` with prior
    /// knowledge (h2c). Many streams per connection.
    Http2,
}

/// TLS settings for `https://` targets.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Accept any certificate (for local tests with self-signed certificates).
    pub insecure: bool,
    /// Trust these PEM CA certificates in addition to the bundled Mozilla roots.
    pub ca_file: Option<PathBuf>,
}

/// How arrivals are spaced within the schedule's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Arrivals {
    /// Evenly spaced: request n leaves when the schedule's cumulative count reaches n.
    #[default]
    Uniform,
    /// A Poisson process with the schedule's rate (exponential gaps), as real users arrive.
    Poisson,
}

/// Everything about *how* load is sent, apart from what and when.
#[derive(Debug, Clone)]
pub struct GeneratorOptions {
    /// Open (rate-driven) or closed (N connections flat out).
    pub model: LoadModel,
    /// HTTP/1.1 or HTTP/2.
    pub protocol: Protocol,
    /// Generator threads, each a current-thread runtime with its own share of the load.
    pub threads: usize,
    /// HTTP/2: connections to open (closed model: `connections` are streams spread over
    /// these); ignored for HTTP/1.1.
    pub http2_connections: usize,
    /// Deadline for a whole request, from actual send to the end of the body.
    pub timeout: Duration,
    /// Deadline for TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
    /// A request sent later than this after its intended time counts as late.
    pub late_after: Duration,
    /// Arrival spacing (open model).
    pub arrivals: Arrivals,
    /// TLS settings.
    pub tls: TlsOptions,
    /// Seed for Poisson arrivals, so a run can be repeated exactly; `None` picks one at random.
    /// (Added by the generator: the runner may leave it `None`.)
    pub seed: Option<u64>,
}

impl Default for GeneratorOptions {
    /// An open-model HTTP/1.1 run on one thread with up to 1000 requests in flight, 10 s request
    /// and 5 s connect timeouts, and requests more than 10 ms behind schedule counted as late.
    fn default() -> Self {
        GeneratorOptions {
            model: LoadModel::Open {
                max_in_flight: 1000,
            },
            protocol: Protocol::Http1,
            threads: 1,
            http2_connections: 1,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            late_after: Duration::from_millis(10),
            arrivals: Arrivals::Uniform,
            tls: TlsOptions::default(),
            seed: None,
        }
    }
}

/// What happened in one second of the run, merged over all threads.
#[derive(Debug, Clone)]
pub struct SecondStats {
    /// Seconds since the start (covers `[second, second + 1)`).
    pub second: u64,
    /// Requests whose intended send time fell in this second.
    pub intended: u64,
    /// Requests actually sent in this second.
    pub sent: u64,
    /// Of those sent, how many left more than `late_after` after their intended time.
    pub late: u64,
    /// Requests that completed (response or error) in this second.
    pub completed: u64,
    /// Of those, failures: errors and statuses outside 200–399.
    pub failed: u64,
    /// Responses by status code, by completion second.
    pub statuses: BTreeMap<u16, u64>,
    /// Transport failures by class, by completion second.
    pub errors: BTreeMap<ErrorClass, u64>,
    /// Body bytes received.
    pub bytes: u64,
    /// Microseconds from intended send time to completion (closed model: from actual send),
    /// for requests completing in this second (errors included).
    pub latency: Histogram<u64>,
    /// Microseconds from actual send to completion.
    pub service_time: Histogram<u64>,
}

impl SecondStats {
    /// Nothing happened in `second` (yet): the starting point for recording or summing.
    pub fn empty(second: u64) -> Self {
        SecondStats {
            second,
            intended: 0,
            sent: 0,
            late: 0,
            completed: 0,
            failed: 0,
            statuses: BTreeMap::new(),
            errors: BTreeMap::new(),
            bytes: 0,
            latency: stats::latency_histogram(),
            service_time: stats::latency_histogram(),
        }
    }

    /// Adds `other`'s counts and histograms to these (another thread's share of the same
    /// second, or another second when summing a run); `second` is left as it is.
    pub fn add(&mut self, other: &SecondStats) {
        self.intended += other.intended;
        self.sent += other.sent;
        self.late += other.late;
        self.completed += other.completed;
        self.failed += other.failed;
        self.bytes += other.bytes;
        for (status, count) in &other.statuses {
            *self.statuses.entry(*status).or_insert(0) += count;
        }
        for (class, count) in &other.errors {
            *self.errors.entry(*class).or_insert(0) += count;
        }
        add_histogram(&mut self.latency, &other.latency);
        add_histogram(&mut self.service_time, &other.service_time);
    }
}

/// Adds `from` to `into`. Histograms of the generator's making share bounds, so this cannot
/// fail; values of one built elsewhere beyond `into`'s range saturate at its highest value.
fn add_histogram(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    if into.add(from).is_err() {
        for value in from.iter_recorded() {
            into.saturating_record_n(value.value_iterated_to(), value.count_at_value());
        }
    }
}

/// Totals only known at the end.
#[derive(Debug, Clone, Default)]
pub struct LoadTotals {
    /// Requests never sent because the run ended first.
    pub unsent: u64,
    /// From start to the last completion.
    pub elapsed: Duration,
    /// Connections opened in all (a healthy keep-alive run opens few).
    pub connections_opened: u64,
    /// The first message seen for each error class, so a report can say *why* requests failed
    /// ("connection refused", "server did not negotiate HTTP/2"). (Added by the generator.)
    pub error_samples: BTreeMap<ErrorClass, String>,
}

/// Why load could not be started or finished.
#[derive(Debug, thiserror::Error)]
pub enum GeneratorError {
    /// Bad input (URL, TLS files, options), with a message for the user.
    #[error("{0}")]
    Invalid(String),
    /// A generator thread failed.
    #[error("generator thread failed: {0}")]
    Thread(String),
}

/// Stops a run early (Ctrl-C): no new requests are sent, requests in flight get up to the
/// request timeout to finish, then [`RunningLoad::next_second`] drains and returns `None`.
#[derive(Debug, Clone)]
pub struct StopHandle {
    stop: Arc<watch::Sender<bool>>,
}

impl StopHandle {
    /// Asks every generator thread to stop; returns at once and may be called any number of
    /// times, from any thread.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }
}

/// A run in progress: its per-second results as they become final, a way to stop it, and its
/// threads to join at the end.
#[derive(Debug)]
pub struct RunningLoad {
    collector: Collector,
    threads: Vec<JoinHandle<Result<ThreadTotals, String>>>,
    stop: StopHandle,
    started: Instant,
}

/// Starts load in background OS threads and returns at once.
///
/// The template, schedule and options are checked first (URLs, TLS files, rates), so a mistake
/// is reported before anything is sent; the target's host name is resolved once, here.
pub fn start(
    template: RequestTemplate,
    schedule: Schedule,
    options: GeneratorOptions,
) -> Result<RunningLoad, GeneratorError> {
    validate_options(&options)?;
    schedule.validate().map_err(GeneratorError::Invalid)?;
    let target = Arc::new(Target::new(&template, &options)?);
    let curve = Arc::new(schedule.curve());
    let seed = options.seed.unwrap_or_else(|| fastrand::u64(..));
    let (stop_sender, stop_receiver) = watch::channel(false);
    let stop = StopHandle {
        stop: Arc::new(stop_sender),
    };
    let (sink, reports) = mpsc::unbounded_channel::<ThreadReport>();
    let started = Instant::now();
    let mut threads = Vec::with_capacity(options.threads);
    for index in 0..options.threads {
        let plan = worker::ThreadPlan {
            index,
            threads: options.threads,
            started,
            duration: schedule.duration(),
            curve: Arc::clone(&curve),
            target: Arc::clone(&target),
            options: options.clone(),
            seed,
            stop: stop_receiver.clone(),
            sink: sink.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("loadgen-{index}"))
            .spawn(move || worker::run_thread(plan));
        match spawned {
            Ok(handle) => threads.push(handle),
            Err(error) => {
                stop.stop();
                for handle in threads {
                    let _ = handle.join();
                }
                return Err(GeneratorError::Thread(format!(
                    "could not start generator thread {index}: {error}"
                )));
            }
        }
    }
    Ok(RunningLoad {
        collector: Collector::new(reports, options.threads),
        threads,
        stop,
        started,
    })
}

fn validate_options(options: &GeneratorOptions) -> Result<(), GeneratorError> {
    let invalid = |message: &str| Err(GeneratorError::Invalid(message.to_string()));
    if options.threads == 0 {
        return invalid("threads must be at least 1");
    }
    match options.model {
        LoadModel::Open { max_in_flight: 0 } => {
            return invalid("max in flight must be at least 1");
        }
        LoadModel::Closed { connections: 0 } => {
            return invalid("connections must be at least 1");
        }
        _ => {}
    }
    if options.timeout.is_zero() {
        return invalid("the request timeout must be positive");
    }
    if options.connect_timeout.is_zero() {
        return invalid("the connect timeout must be positive");
    }
    Ok(())
}

impl RunningLoad {
    /// The next finished second, merged over all threads, in order, every second from 0 with
    /// none skipped (empty seconds included); `None` once the run is over and all in-flight
    /// requests completed or timed out. Cancel-safe, usable from any tokio runtime.
    pub async fn next_second(&mut self) -> Option<SecondStats> {
        self.collector.next_second().await
    }

    /// A handle that stops the run early (Ctrl-C): no new requests; in-flight ones get up to
    /// `timeout` to finish; then [`RunningLoad::next_second`] drains and returns `None`.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Joins the threads and sums their totals; call after `next_second` returned `None` (it
    /// blocks until the threads are done).
    pub fn finish(mut self) -> Result<LoadTotals, GeneratorError> {
        let mut totals = LoadTotals::default();
        let mut last_completion: Option<Instant> = None;
        let mut failures = Vec::new();
        for (index, handle) in std::mem::take(&mut self.threads).into_iter().enumerate() {
            match handle.join() {
                Ok(Ok(thread)) => {
                    totals.unsent += thread.unsent;
                    totals.connections_opened += thread.connections_opened;
                    last_completion = last_completion.max(thread.last_completion);
                    for (class, message) in thread.error_samples {
                        totals.error_samples.entry(class).or_insert(message);
                    }
                }
                Ok(Err(message)) => failures.push(format!("thread {index}: {message}")),
                Err(panic) => failures.push(format!(
                    "thread {index} panicked: {}",
                    panic_message(&panic)
                )),
            }
        }
        if !failures.is_empty() {
            return Err(GeneratorError::Thread(failures.join("; ")));
        }
        totals.elapsed = last_completion
            .map(|at| at.saturating_duration_since(self.started))
            .unwrap_or_default();
        Ok(totals)
    }
}

impl Drop for RunningLoad {
    /// A run dropped before it ended stops, so its threads do not send load nobody reads.
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop.stop();
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|message| message.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_send<T: Send>(_: &T) {}

    #[test]
    fn a_run_can_be_driven_from_any_runtime() {
        fn send_and_sync<T: Send + Sync>() {}
        send_and_sync::<StopHandle>();
        let template = RequestTemplate {
            method: Method::GET,
            urls: vec![Uri::from_static("http://127.0.0.1:9/")],
            headers: HeaderMap::new(),
            body: Bytes::new(),
        };
        let schedule = Schedule::Constant {
            rate: 0.0,
            duration: Duration::ZERO,
        };
        let mut running = start(template, schedule, GeneratorOptions::default()).unwrap();
        is_send(&running);
        is_send(&running.next_second());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let seconds = runtime.block_on(async {
            let mut seconds = Vec::new();
            while let Some(second) = running.next_second().await {
                seconds.push(second);
            }
            seconds
        });
        assert!(seconds.iter().all(|second| second.sent == 0));
        let totals = running.finish().unwrap();
        assert_eq!(totals.connections_opened, 0);
    }
}
