//! The workload server's behaviour: what `scalegate workload` does per request, so that
//! examples and tests have a service whose cost and failures are known. Issue 5 implements the
//! server; this is the part its flags and admin endpoint will set.

use std::time::Duration;

/// Per-request behaviour of the workload server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkloadBehaviour {
    /// CPU time to burn per request, so CPU-based policies have something to track.
    pub cpu_per_request: Duration,
    /// Time to sleep per request (I/O-like latency without CPU).
    pub sleep_per_request: Duration,
    /// Status of successful responses.
    pub status: u16,
    /// Fraction (0–1) of requests answered with 500 instead.
    pub failure_fraction: f64,
    /// Whether the health endpoint answers 200 (`true`) or 503; flipped through the server's
    /// own endpoint to test unhealthy-task replacement.
    pub healthy: bool,
}

impl Default for WorkloadBehaviour {
    fn default() -> Self {
        WorkloadBehaviour {
            cpu_per_request: Duration::ZERO,
            sleep_per_request: Duration::ZERO,
            status: 200,
            failure_fraction: 0.0,
            healthy: true,
        }
    }
}
