//! What a run produces: a summary, a per-second timeline, and threshold verdicts. Issue 6
//! renders it as text, `--json`, SVG/PNG charts and an HTML report.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::elasticity::ElasticityMetrics;
use crate::threshold::Threshold;

/// Latency percentiles from an HDR histogram (1 µs – 60 s, 3 significant figures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatencySummary {
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p99_9: Duration,
    /// 99.99th percentile.
    pub p99_99: Duration,
    /// Largest.
    pub max: Duration,
}

/// Why a request failed without an HTTP status, by class, so that a report says "connect" or
/// "reset" rather than "error".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorClass {
    /// The connection could not be established (refused, unreachable, connect timeout).
    Connect,
    /// No complete response within the request timeout.
    Timeout,
    /// The connection was reset or closed mid-response (including HTTP/2 RST_STREAM, GOAWAY).
    Reset,
    /// TLS handshake or certificate failure.
    Tls,
    /// Anything else (malformed response, body read error).
    Other,
}

/// One second of a run: offered vs achieved load, latency, errors, and — when the run was
/// given a scalegate admin URL — the service's task counts and scaling activities.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TimelinePoint {
    /// Seconds since the start of the run.
    pub second: u64,
    /// Requests the schedule intended to send in this second.
    pub offered: u64,
    /// Responses received in this second.
    pub achieved: u64,
    /// Latency percentiles of requests completing in this second (from intended send time).
    pub latency: LatencySummary,
    /// Failed requests (error classes and 5xx) in this second.
    pub errors: u64,
    /// The service's desired count, when known.
    pub desired_tasks: Option<u32>,
    /// Running tasks, when known.
    pub running_tasks: Option<u32>,
    /// Healthy tasks (the supply curve of the elasticity metrics), when known.
    pub healthy_tasks: Option<u32>,
    /// Descriptions of scaling activities that started in this second.
    pub scaling_events: Vec<String>,
}

/// A threshold and whether the run met it.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdResult {
    /// The threshold.
    pub threshold: Threshold,
    /// The observed value, in the threshold's unit.
    pub observed: f64,
    /// Whether it passed.
    pub passed: bool,
}

/// Everything a run measured.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunReport {
    /// Wall-clock length of the run.
    pub duration: Duration,
    /// Requests sent.
    pub requests: u64,
    /// Requests per second the schedule asked for, on average.
    pub offered_rate: f64,
    /// Responses per second received, on average.
    pub achieved_rate: f64,
    /// Requests that could not be sent at their intended time (open model).
    pub late_requests: u64,
    /// Latency from intended send time to response: the honest number.
    pub latency: LatencySummary,
    /// Latency from actual send time to response ("service time", wrk2's `-U`), for contrast.
    pub service_time: LatencySummary,
    /// Responses by HTTP status code.
    pub status_counts: BTreeMap<u16, u64>,
    /// Failures without a status, by class.
    pub errors: BTreeMap<ErrorClass, u64>,
    /// Per-second timeline.
    pub timeline: Vec<TimelinePoint>,
    /// Threshold verdicts; any failure makes the run's exit code non-zero.
    pub thresholds: Vec<ThresholdResult>,
    /// Elasticity metrics, when demand and supply were both known.
    pub elasticity: Option<ElasticityMetrics>,
    /// Seconds in which p99 latency exceeded the SLO or requests failed.
    pub slo_violation_seconds: Option<u64>,
}

impl RunReport {
    /// Whether every threshold passed (vacuously true without thresholds).
    pub fn passed(&self) -> bool {
        self.thresholds.iter().all(|result| result.passed)
    }
}
