//! What a run produces: a summary, a per-second timeline, scaling activities, threshold verdicts
//! and elasticity metrics. It is rendered as text, `--json` (this struct, serialized; schema in
//! `docs/loadtest-report.schema.json`), SVG/PNG charts and an HTML report.
//!
//! Units are in the field names (`_ms`, `_seconds`, `_per_second`) so the JSON reads without
//! a manual. Latencies are milliseconds as floats with microsecond resolution.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::elasticity::ElasticityMetrics;

/// The JSON report's schema version; bumped on any incompatible change.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// Latency percentiles from an HDR histogram (1 µs – 60 s, 3 significant figures), in ms.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct LatencySummary {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p99_9_ms: f64,
    /// 99.99th percentile.
    pub p99_99_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// Arithmetic mean.
    pub mean_ms: f64,
}

/// Why a request failed without an HTTP status, by class, so that a report says "connect" or
/// "reset" rather than "error".
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
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

impl ErrorClass {
    /// Every class, in report order.
    pub const ALL: [ErrorClass; 5] = [
        ErrorClass::Connect,
        ErrorClass::Timeout,
        ErrorClass::Reset,
        ErrorClass::Tls,
        ErrorClass::Other,
    ];

    /// The name used in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ErrorClass::Connect => "connect",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Reset => "reset",
            ErrorClass::Tls => "tls",
            ErrorClass::Other => "other",
        }
    }
}

/// One second of a run: offered vs achieved load, latency, errors, and — when the run was
/// given a scalegate admin URL — the service's task counts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct TimelinePoint {
    /// Seconds since the start of the run (this point covers `[second, second + 1)`).
    pub second: u64,
    /// Requests the schedule intended to send in this second.
    pub offered: u64,
    /// Requests actually sent in this second.
    pub sent: u64,
    /// Responses (any status) received in this second.
    pub achieved: u64,
    /// Failed requests completing in this second: transport errors and statuses outside
    /// 200–399.
    pub errors: u64,
    /// Latency of requests completing in this second, from their intended send time; `None`
    /// when nothing completed.
    pub latency: Option<LatencySummary>,
    /// The service's desired count, when an admin URL was given.
    pub desired_tasks: Option<u32>,
    /// Running tasks, when known.
    pub running_tasks: Option<u32>,
    /// Healthy tasks (the supply curve of the elasticity metrics), when known.
    pub healthy_tasks: Option<u32>,
    /// Tasks the offered load needs (the demand curve), when a per-task capacity is known.
    pub demand_tasks: Option<u32>,
}

/// A scaling activity of the service under test, placed on the run's clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScalingEvent {
    /// Seconds since the start of the run when the activity started (may be fractional).
    pub at_second: f64,
    /// The activity's description, e.g. "Setting desired count to 4.".
    pub description: String,
    /// Why it happened, as the autoscaler recorded it.
    pub cause: String,
    /// `Successful`, `Failed`, `InProgress`, …
    pub status: String,
}

/// A threshold and whether the run met it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ThresholdResult {
    /// The threshold as written, e.g. `p99<50ms`.
    pub threshold: String,
    /// The observed value, in the threshold's unit (seconds for latency, a fraction for rates).
    pub observed: f64,
    /// Whether it passed.
    pub passed: bool,
}

/// How the run generated load.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct RunSetup {
    /// The first (or only) URL requested.
    pub url: String,
    /// `open` or `closed`.
    pub model: String,
    /// `http1`, `http2` (TLS with ALPN h2) or `h2c`.
    pub protocol: String,
    /// Closed model: connections; open model: the cap on requests in flight.
    pub concurrency: u64,
    /// Generator threads.
    pub threads: u64,
    /// A short description of the schedule, e.g. `constant 100/s for 30s`.
    pub schedule: String,
}

/// Response time after each rise in demand: how long until healthy tasks met it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CapacityRecovery {
    /// Second at which demand rose.
    pub at_second: u64,
    /// Demand before the rise, in tasks.
    pub from_tasks: u32,
    /// Demand after the rise, in tasks.
    pub to_tasks: u32,
    /// Seconds until healthy tasks ≥ demand; `None` if that never happened before demand
    /// changed again or the run ended.
    pub seconds_to_adequate: Option<f64>,
}

/// Elasticity results: how the service's supply of tasks followed demand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ElasticityReport {
    /// Requests per second one task serves within the SLO.
    pub capacity_per_task: f64,
    /// Where the capacity came from: `given` or `probe`.
    pub capacity_source: String,
    /// SPEC Research Group metrics.
    pub metrics: ElasticityMetrics,
    /// Seconds in which p99 exceeded the SLO or any request failed.
    pub slo_violation_seconds: u64,
    /// The p99 SLO used for `slo_violation_seconds`, in ms.
    pub slo_p99_ms: f64,
    /// Recovery after each rise in demand.
    pub recoveries: Vec<CapacityRecovery>,
}

/// Everything a run measured.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct RunReport {
    /// [`REPORT_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// How load was generated.
    pub setup: RunSetup,
    /// Wall-clock length of the run, including the wait for the last responses.
    pub duration_seconds: f64,
    /// Requests the schedule intended to send.
    pub intended_requests: u64,
    /// Requests sent.
    pub sent_requests: u64,
    /// Requests answered with any status.
    pub completed_requests: u64,
    /// Failed requests: transport errors and statuses outside 200–399.
    pub failed_requests: u64,
    /// Requests sent later than `late_after_ms` after their intended time (open model).
    pub late_requests: u64,
    /// Requests never sent because the run ended first (open model, all connections busy).
    pub unsent_requests: u64,
    /// The lateness tolerance, in ms.
    pub late_after_ms: f64,
    /// Intended requests per second over the schedule.
    pub offered_rate_per_second: f64,
    /// Responses per second over the schedule.
    pub achieved_rate_per_second: f64,
    /// Response bytes received (bodies).
    pub bytes_received: u64,
    /// Latency from intended send time to response: the honest number (open model). In the
    /// closed model this is the same as `service_time`.
    pub latency: LatencySummary,
    /// Latency from actual send time to response ("service time", wrk2's `-U`), for contrast.
    pub service_time: LatencySummary,
    /// Responses by HTTP status code (keys are the codes as strings).
    pub status_counts: BTreeMap<String, u64>,
    /// Failures without a status, by class.
    pub errors: BTreeMap<ErrorClass, u64>,
    /// The first error message seen in each class, to say why requests failed (e.g.
    /// `connect to 127.0.0.1:1: Connection refused (os error 111)`).
    #[serde(default)]
    pub error_examples: BTreeMap<ErrorClass, String>,
    /// Per-second timeline.
    pub timeline: Vec<TimelinePoint>,
    /// The service under test, when an admin URL was given.
    pub service: Option<String>,
    /// Its scaling activities during the run.
    pub scaling_events: Vec<ScalingEvent>,
    /// Threshold verdicts; any failure makes the run's exit code non-zero.
    pub thresholds: Vec<ThresholdResult>,
    /// Elasticity metrics, when demand and supply were both known.
    pub elasticity: Option<ElasticityReport>,
}

impl RunReport {
    /// Whether every threshold passed (vacuously true without thresholds).
    pub fn passed(&self) -> bool {
        self.thresholds.iter().all(|result| result.passed)
    }
}

/// The JSON Schema of `--json` and `report.json`, committed as
/// `docs/loadtest-report.schema.json` for tools that consume reports.
pub fn json_schema_text() -> String {
    let schema = schemars::schema_for!(RunReport);
    serde_json::to_string_pretty(&schema).expect("schema serializes") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails when the committed schema is stale; `SCALEGATE_BLESS=1 cargo test -p
    /// scalegate-loadtest schema` rewrites it.
    #[test]
    fn committed_schema_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/loadtest-report.schema.json");
        let expected = json_schema_text();
        if std::env::var_os("SCALEGATE_BLESS").is_some() {
            std::fs::write(&path, &expected).unwrap();
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == expected,
            "docs/loadtest-report.schema.json is out of date; regenerate it with:\n    \
             SCALEGATE_BLESS=1 cargo test -p scalegate-loadtest schema\n"
        );
    }

    #[test]
    fn reports_round_trip_through_json() {
        let mut report = RunReport {
            schema_version: REPORT_SCHEMA_VERSION,
            ..RunReport::default()
        };
        report.errors.insert(ErrorClass::Connect, 3);
        report.status_counts.insert("200".into(), 7);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["errors"]["connect"], 3);
        assert_eq!(json["status_counts"]["200"], 7);
        let back: RunReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
    }
}
