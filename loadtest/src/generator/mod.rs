//! The load generator: sends requests on a schedule (open model) or as fast as N connections
//! allow (closed model), and reports what happened second by second.
//!
//! INTERFACE SKETCH (issue 6): the helper implementing the generator fills this module in;
//! the runner (`crate::run`) consumes exactly this API.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{HeaderMap, Method, Uri};

use crate::report::ErrorClass;
use crate::schedule::{LoadModel, Schedule};

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

/// Totals only known at the end.
#[derive(Debug, Clone, Default)]
pub struct LoadTotals {
    /// Requests never sent because the run ended first.
    pub unsent: u64,
    /// From start to the last completion.
    pub elapsed: Duration,
    /// Connections opened in all (a healthy keep-alive run opens few).
    pub connections_opened: u64,
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

// TEMPORARY (integrator's stub until helper-gen merges; replaced by theirs).
/// Stub.
pub fn start(
    _template: RequestTemplate,
    _schedule: Schedule,
    _options: GeneratorOptions,
) -> Result<RunningLoad, GeneratorError> {
    Err(GeneratorError::Invalid("not yet".into()))
}
/// Stub.
pub struct RunningLoad;
/// Stub.
#[derive(Clone)]
pub struct StopHandle;
impl StopHandle {
    /// Stub.
    pub fn stop(&self) {}
}
impl RunningLoad {
    /// Stub.
    pub async fn next_second(&mut self) -> Option<SecondStats> {
        None
    }
    /// Stub.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle
    }
    /// Stub.
    pub fn finish(self) -> Result<LoadTotals, GeneratorError> {
        Ok(LoadTotals::default())
    }
}
