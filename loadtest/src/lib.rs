//! scalegate's load tester: honest open-loop load, trace replay, reports and elasticity metrics.
//!
//! This crate owns everything `scalegate loadtest` and `scalegate workload` do. It sits outside
//! scalegate's one-way data flow (config → discovery → target groups → proxy → metrics →
//! autoscaler → backend → discovery) and measures it from the client's side: load goes in
//! through the proxy, and the report compares demand with the supply of tasks the autoscaler
//! provided.
//!
//! - [`cli`]: `scalegate loadtest`'s arguments, checked into a [`cli::LoadtestPlan`].
//! - [`generator`]: the load itself — open or closed model, HTTP/1.1, h2 and h2c, TLS — and
//!   per-second HDR histograms.
//! - [`run`]: one run from plan to [`RunReport`]: timeline, thresholds, the service's task
//!   counts and scaling activities ([`admin`]), the capacity probe, elasticity.
//! - [`scenario`]: the same load once per autoscaling profile, compared side by side.
//! - [`schedule`]: what rate to offer when ([`Schedule`], [`Stage`]) and under which
//!   [`LoadModel`].
//! - [`trace`]: reading per-interval request-count CSVs such as the World Cup 1998 trace.
//! - [`threshold`]: k6-style pass/fail [`Threshold`]s (`p99<50ms`, `errors<0.1%`).
//! - [`report`]: the [`RunReport`] a run produces, its per-second timeline and error classes.
//! - [`elasticity`]: SPEC Research Group's [`ElasticityMetrics`] from demand and supply curves.
//! - [`render`]: the text summary, SVG/PNG charts and the self-contained HTML report.
//! - [`progress`]: live progress on stderr.
//! - [`workload`]: the workload server tasks run (`scalegate workload`): per-request CPU, sleep,
//!   status and failures, a flippable health endpoint, its own request counts.
#![forbid(unsafe_code)]

// Test fixtures shared with the integration tests name this crate by its external name.
#[cfg(test)]
extern crate self as scalegate_loadtest;

pub mod admin;
pub mod cli;
pub mod elasticity;
pub mod generator;
pub mod progress;
pub mod render;
pub mod report;
pub mod run;
pub mod scenario;
pub mod schedule;
pub mod threshold;
pub mod trace;
pub mod units;
pub mod workload;

pub use elasticity::ElasticityMetrics;
pub use report::{
    CapacityRecovery, ElasticityReport, ErrorClass, LatencySummary, RunReport, RunSetup,
    ScalingEvent, ThresholdResult, TimelinePoint, REPORT_SCHEMA_VERSION,
};
pub use schedule::{LoadModel, Schedule, Stage, TraceReplay};
pub use threshold::{Threshold, ThresholdMetric};
pub use trace::{parse_trace, TraceColumns, TraceError, TraceRow};

/// `scalegate loadtest`: runs the plan (or scenario) and returns the process exit code — 0,
/// 99 when thresholds failed (as k6), 2 for bad arguments, 1 when the run failed. Errors are
/// printed here, so the binary only maps the code.
pub fn command(args: cli::LoadtestArgs) -> u8 {
    if let Some(file) = &args.scenario {
        return scenario::command(file, !args.no_progress);
    }
    let plan = match args.into_plan() {
        Ok(plan) => plan,
        Err(message) => {
            eprintln!("scalegate loadtest: {message}");
            return 2;
        }
    };
    match run::run_blocking(&plan).and_then(|report| run::deliver(&plan, &report)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("scalegate loadtest: {error}");
            1
        }
    }
}
