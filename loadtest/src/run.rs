//! One load test from plan to report: drive the generator, follow the service under test,
//! show progress, then summarise, judge thresholds and compute elasticity.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;

use crate::admin::{AdminClient, AdminError, ServiceCounts};
use crate::cli::{CapacitySource, LoadtestPlan};
use crate::elasticity::{self, ElasticityMetrics};
use crate::generator::{self, GeneratorError, GeneratorOptions, RequestTemplate, SecondStats};
use crate::progress::Progress;
use crate::report::{
    ElasticityReport, ErrorClass, LatencySummary, RunReport, RunSetup, ScalingEvent,
    ThresholdResult, TimelinePoint, REPORT_SCHEMA_VERSION,
};
use crate::schedule::{LoadModel, Schedule};
use crate::threshold::{Threshold, ThresholdMetric};

/// k6's exit code when thresholds failed, so CI scripts written for k6 read scalegate the same.
pub const THRESHOLDS_FAILED_EXIT_CODE: u8 = 99;

/// Why a run could not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The generator refused the plan or failed.
    #[error(transparent)]
    Generator(#[from] GeneratorError),
    /// The admin API could not be read at the start.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The capacity probe could not run.
    #[error("capacity probe: {0}")]
    Probe(String),
    /// Writing the report failed.
    #[error("{0}")]
    Output(String),
}

/// Runs the plan to completion (or Ctrl-C) and returns its report; the caller renders it.
pub async fn run(plan: &LoadtestPlan) -> Result<RunReport, RunError> {
    let admin = match &plan.watch {
        Some(watch) => Some(
            AdminClient::connect(&watch.admin, watch.token.clone(), watch.service.clone()).await?,
        ),
        None => None,
    };
    let capacity = match (plan.capacity, &admin) {
        (CapacitySource::Given(capacity), _) => Some((capacity, "given")),
        (CapacitySource::Probe, Some(admin)) => {
            let capacity = probe_capacity(plan, admin).await?;
            Some((capacity, "probe"))
        }
        _ => None,
    };
    let progress = Progress::new(plan.progress, plan.schedule.duration());
    let collected = collect(
        &plan.template,
        &plan.schedule,
        &plan.options,
        admin.as_ref(),
        &progress,
    )
    .await?;
    progress.finish();

    let scaling_events = match &admin {
        Some(admin) => scaling_events(admin, collected.started_at_wall).await,
        None => Vec::new(),
    };
    let mut report = collected.into_report(plan);
    report.service = admin.as_ref().map(|admin| admin.service().to_string());
    report.scaling_events = scaling_events;
    if let Some((capacity, source)) = capacity {
        let schedule_seconds = plan.schedule.duration().as_secs_f64().ceil() as u64;
        report.elasticity = elasticity_report(
            &mut report,
            schedule_seconds,
            capacity,
            source,
            plan.slo_p99,
        );
    }
    Ok(report)
}

/// Prints and writes what the plan asked for; returns the process exit code (0, or
/// [`THRESHOLDS_FAILED_EXIT_CODE`]).
pub fn deliver(plan: &LoadtestPlan, report: &RunReport) -> Result<u8, RunError> {
    if plan.json {
        println!("{}", to_json(report));
    } else {
        print!("{}", crate::render::summary_text(report));
    }
    if let Some(dir) = &plan.output {
        let files = write_output(report, dir)?;
        if !plan.json {
            println!("\nReport written:");
            for file in files {
                println!("  {}", file.display());
            }
        }
    }
    Ok(if report.passed() {
        0
    } else {
        THRESHOLDS_FAILED_EXIT_CODE
    })
}

/// The JSON report, pretty-printed.
pub fn to_json(report: &RunReport) -> String {
    serde_json::to_string_pretty(report).expect("reports serialize")
}

/// Writes `report.json` and the rendered charts and HTML into `dir`.
pub fn write_output(report: &RunReport, dir: &Path) -> Result<Vec<PathBuf>, RunError> {
    std::fs::create_dir_all(dir)
        .map_err(|error| RunError::Output(format!("cannot create {}: {error}", dir.display())))?;
    let json = dir.join("report.json");
    std::fs::write(&json, to_json(report))
        .map_err(|error| RunError::Output(format!("cannot write {}: {error}", json.display())))?;
    let mut files = vec![json];
    files.extend(
        crate::render::write_report_files(report, dir)
            .map_err(|error| RunError::Output(error.to_string()))?,
    );
    Ok(files)
}

/// Everything the generator reported, merged, plus the service's counts per second.
struct Collected {
    started_at_wall: SystemTime,
    seconds: Vec<SecondStats>,
    service_counts: BTreeMap<u64, ServiceCounts>,
    /// Every second summed: counts, statuses, errors and whole-run histograms.
    total: SecondStats,
    elapsed: Duration,
    unsent: u64,
    error_examples: BTreeMap<ErrorClass, String>,
}

/// Drives one generator run to its end, following the service if given.
async fn collect(
    template: &RequestTemplate,
    schedule: &Schedule,
    options: &GeneratorOptions,
    admin: Option<&AdminClient>,
    progress: &Progress,
) -> Result<Collected, RunError> {
    let started_at_wall = SystemTime::now();
    let started = tokio::time::Instant::now();
    let mut load = generator::start(template.clone(), schedule.clone(), options.clone())?;
    let stop = load.stop_handle();
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stop.stop();
        }
    });
    let service_counts = Arc::new(Mutex::new(BTreeMap::new()));
    let poller = admin.map(|admin| {
        let admin = admin.clone();
        let service_counts = Arc::clone(&service_counts);
        tokio::spawn(async move {
            // Sample mid-second, so each sample belongs to one timeline second.
            let mut ticks = tokio::time::interval_at(
                started + Duration::from_millis(500),
                Duration::from_secs(1),
            );
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                let tick = ticks.tick().await;
                let second = (tick - started).as_secs();
                if let Ok(counts) = admin.counts().await {
                    service_counts
                        .lock()
                        .expect("poisoned")
                        .insert(second, counts);
                }
            }
        })
    });

    let mut total = SecondStats::empty(0);
    let mut seconds = Vec::new();
    while let Some(second) = load.next_second().await {
        total.add(&second);
        let counts = service_counts
            .lock()
            .expect("poisoned")
            .get(&second.second)
            .copied();
        progress.second(&second, counts);
        seconds.push(second);
    }
    ctrl_c.abort();
    if let Some(poller) = poller {
        poller.abort();
    }
    let totals = load.finish()?;
    let service_counts = std::mem::take(&mut *service_counts.lock().expect("poisoned"));
    Ok(Collected {
        started_at_wall,
        seconds,
        service_counts,
        total,
        elapsed: totals.elapsed,
        unsent: totals.unsent,
        error_examples: totals.error_samples,
    })
}

impl Collected {
    fn into_report(self, plan: &LoadtestPlan) -> RunReport {
        let mut report = RunReport {
            schema_version: REPORT_SCHEMA_VERSION,
            setup: setup_of(plan),
            duration_seconds: self.elapsed.as_secs_f64(),
            late_after_ms: plan.options.late_after.as_secs_f64() * 1e3,
            unsent_requests: self.unsent,
            latency: summarize(&self.total.latency),
            service_time: summarize(&self.total.service_time),
            intended_requests: self.total.intended,
            sent_requests: self.total.sent,
            completed_requests: self.total.completed,
            failed_requests: self.total.failed,
            late_requests: self.total.late,
            bytes_received: self.total.bytes,
            status_counts: self
                .total
                .statuses
                .iter()
                .map(|(status, count)| (status.to_string(), *count))
                .collect(),
            errors: self.total.errors.clone(),
            error_examples: self.error_examples,
            ..RunReport::default()
        };
        let mut last_counts: Option<ServiceCounts> = None;
        for second in &self.seconds {
            if let Some(counts) = self.service_counts.get(&second.second) {
                last_counts = Some(*counts);
            }
            report.timeline.push(TimelinePoint {
                second: second.second,
                offered: second.intended,
                sent: second.sent,
                achieved: second.completed,
                errors: second.failed,
                latency: (!second.latency.is_empty()).then(|| summarize(&second.latency)),
                desired_tasks: last_counts.map(|counts| counts.desired_count),
                running_tasks: last_counts.map(|counts| counts.running_count),
                healthy_tasks: last_counts.map(|counts| counts.healthy_count),
                demand_tasks: None,
            });
        }
        let schedule_seconds = plan.schedule.duration().as_secs_f64().max(1e-9);
        report.offered_rate_per_second = report.intended_requests as f64 / schedule_seconds;
        report.achieved_rate_per_second = report.completed_requests as f64 / schedule_seconds;
        report.thresholds = plan
            .thresholds
            .iter()
            .map(|threshold| {
                let observed = observe(threshold, &self.total.latency, &report);
                ThresholdResult {
                    threshold: threshold.to_string(),
                    observed,
                    passed: threshold.passes(observed),
                }
            })
            .collect();
        report
    }
}

fn setup_of(plan: &LoadtestPlan) -> RunSetup {
    let (model, concurrency) = match plan.options.model {
        LoadModel::Open { max_in_flight } => ("open", max_in_flight),
        LoadModel::Closed { connections } => ("closed", connections),
    };
    let scheme_is_tls = plan.template.urls[0].scheme_str() == Some("https");
    let protocol = match (plan.options.protocol, scheme_is_tls) {
        (generator::Protocol::Http1, _) => "http1",
        (generator::Protocol::Http2, true) => "http2",
        (generator::Protocol::Http2, false) => "h2c",
    };
    RunSetup {
        url: plan.template.urls[0].to_string(),
        model: model.to_string(),
        protocol: protocol.to_string(),
        concurrency: concurrency as u64,
        threads: plan.options.threads as u64,
        schedule: describe_schedule(&plan.schedule, plan.options.model),
    }
}

/// A one-line description of a schedule for report headers.
pub fn describe_schedule(schedule: &Schedule, model: LoadModel) -> String {
    let seconds = |duration: Duration| format!("{}s", trim_float(duration.as_secs_f64()));
    match (schedule, model) {
        (_, LoadModel::Closed { connections }) => {
            format!(
                "{connections} connections flat out for {}",
                seconds(schedule.duration())
            )
        }
        (Schedule::Constant { rate, duration }, _) => {
            format!(
                "constant {}/s for {}",
                trim_float(*rate),
                seconds(*duration)
            )
        }
        (Schedule::Stages { start_rate, stages }, _) => {
            let legs: Vec<String> = stages
                .iter()
                .map(|stage| {
                    format!(
                        "{}:{}",
                        seconds(stage.duration),
                        trim_float(stage.target_rate)
                    )
                })
                .collect();
            format!(
                "stages from {}/s: {}",
                trim_float(*start_rate),
                legs.join(",")
            )
        }
        (Schedule::Trace(replay), _) => format!(
            "trace replay: {} intervals of {} at ×{}",
            replay.counts.len(),
            seconds(replay.bucket),
            trim_float(replay.scale)
        ),
    }
}

fn trim_float(value: f64) -> String {
    let text = format!("{value:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The observed value of one threshold, in its unit.
fn observe(threshold: &Threshold, latency: &Histogram<u64>, report: &RunReport) -> f64 {
    let fraction = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            part as f64 / whole as f64
        }
    };
    match threshold.metric {
        ThresholdMetric::LatencyPercentile(percentile) => {
            latency.value_at_quantile(percentile / 100.0) as f64 / 1e6
        }
        ThresholdMetric::MaxLatency => latency.max() as f64 / 1e6,
        ThresholdMetric::ErrorRate => fraction(report.failed_requests, report.completed_requests),
        ThresholdMetric::LateRate => fraction(
            report.late_requests + report.unsent_requests,
            report.intended_requests.max(report.sent_requests),
        ),
    }
}

/// Percentiles of a histogram of microseconds, in ms.
pub fn summarize(histogram: &Histogram<u64>) -> LatencySummary {
    if histogram.is_empty() {
        return LatencySummary::default();
    }
    let ms = |micros: u64| micros as f64 / 1e3;
    LatencySummary {
        p50_ms: ms(histogram.value_at_quantile(0.50)),
        p90_ms: ms(histogram.value_at_quantile(0.90)),
        p99_ms: ms(histogram.value_at_quantile(0.99)),
        p99_9_ms: ms(histogram.value_at_quantile(0.999)),
        p99_99_ms: ms(histogram.value_at_quantile(0.9999)),
        max_ms: ms(histogram.max()),
        mean_ms: histogram.mean() / 1e3,
    }
}

/// The service's scaling activities that started during the run, on the run's clock.
async fn scaling_events(admin: &AdminClient, started: SystemTime) -> Vec<ScalingEvent> {
    let Ok(activities) = admin.activities().await else {
        return Vec::new();
    };
    let mut events: Vec<ScalingEvent> = activities
        .into_iter()
        .filter_map(|activity| {
            let at = activity.started()?.duration_since(started).ok()?;
            Some(ScalingEvent {
                at_second: at.as_secs_f64(),
                description: activity.description,
                cause: activity.cause,
                status: activity.status_code,
            })
        })
        .collect();
    events.sort_by(|a, b| a.at_second.total_cmp(&b.at_second));
    events
}

/// Fills the timeline's demand and computes the elasticity report over the schedule's
/// seconds, when the service's counts were followed.
fn elasticity_report(
    report: &mut RunReport,
    schedule_seconds: u64,
    capacity: f64,
    source: &str,
    slo_p99: Duration,
) -> Option<ElasticityReport> {
    for point in &mut report.timeline {
        point.demand_tasks =
            elasticity::demand_in_tasks(point.offered as f64, capacity).map(|tasks| tasks as u32);
    }
    // The schedule's seconds only: the wait for the last answers has no demand to meet.
    let scheduled = report.timeline.iter().filter(|point| {
        point.second < schedule_seconds
            && point.healthy_tasks.is_some()
            && point.demand_tasks.is_some()
    });
    let (demand, supply): (Vec<u32>, Vec<u32>) = scheduled
        .map(|point| {
            (
                point.demand_tasks.unwrap_or(0),
                point.healthy_tasks.unwrap_or(0),
            )
        })
        .unzip();
    let as_f64 = |series: &[u32]| series.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
    let metrics: ElasticityMetrics = ElasticityMetrics::from_samples(
        &as_f64(&demand),
        &as_f64(&supply),
        Duration::from_secs(1),
    )?;
    let slo_ms = slo_p99.as_secs_f64() * 1e3;
    Some(ElasticityReport {
        capacity_per_task: capacity,
        capacity_source: source.to_string(),
        metrics,
        slo_violation_seconds: elasticity::slo_violation_seconds(&report.timeline, slo_ms),
        slo_p99_ms: slo_ms,
        recoveries: elasticity::recoveries(&demand, &supply),
    })
}

/// Measures what one task serves within the SLO: a rate rising ×1.5 every few seconds sent
/// straight to one healthy task (bypassing the load balancer), until a step's p99 exceeds the
/// SLO, a request fails, or the task stops keeping up. The last step that passed is the
/// capacity.
async fn probe_capacity(plan: &LoadtestPlan, admin: &AdminClient) -> Result<f64, RunError> {
    const STEP: Duration = Duration::from_secs(3);
    const FIRST_RATE: f64 = 5.0;
    const GROWTH: f64 = 1.5;
    const STEPS: usize = 20;
    let tasks = admin.tasks().await?;
    let task = tasks
        .iter()
        .find(|task| task.last_status == "RUNNING" && task.health_status == "HEALTHY")
        .or_else(|| tasks.iter().find(|task| task.last_status == "RUNNING"))
        .ok_or_else(|| {
            RunError::Probe(format!("service `{}` has no running task", admin.service()))
        })?;
    let mut template = plan.template.clone();
    template.urls = template
        .urls
        .iter()
        .map(|url| {
            let path = url.path_and_query().map_or("/", |path| path.as_str());
            format!("http://{}{path}", task.address).parse()
        })
        .collect::<Result<_, _>>()
        .map_err(|error| RunError::Probe(format!("task address {}: {error}", task.address)))?;
    let rates: Vec<f64> = (0..STEPS)
        .map(|step| FIRST_RATE * GROWTH.powi(step as i32))
        .collect();
    let schedule = Schedule::Stages {
        start_rate: rates[0],
        stages: rates
            .iter()
            .flat_map(|&rate| {
                [
                    crate::schedule::Stage {
                        duration: Duration::ZERO,
                        target_rate: rate,
                    },
                    crate::schedule::Stage {
                        duration: STEP,
                        target_rate: rate,
                    },
                ]
            })
            .collect(),
    };
    let options = GeneratorOptions {
        model: LoadModel::Open {
            max_in_flight: 1000,
        },
        protocol: generator::Protocol::Http1,
        ..plan.options.clone()
    };
    eprintln!(
        "probing the capacity of task {} at {} (rate ×{GROWTH} every {}s from {FIRST_RATE}/s, p99 SLO {} ms)",
        task.task_id,
        task.address,
        STEP.as_secs(),
        plan.slo_p99.as_millis()
    );
    let mut load = generator::start(template, schedule, options)?;
    let stop = load.stop_handle();
    let step_seconds = STEP.as_secs();
    let slo_us = plan.slo_p99.as_micros() as u64;
    let mut capacity = None;
    let mut step_stats: Vec<SecondStats> = Vec::new();
    let mut failed_at = None;
    while let Some(second) = load.next_second().await {
        if failed_at.is_some() {
            continue; // draining after stop
        }
        let step = (second.second / step_seconds) as usize;
        step_stats.push(second);
        if step_stats.len() as u64 == step_seconds {
            // The step's first second warms up; judge the rest.
            let judged = &step_stats[1..];
            let mut step_total = SecondStats::empty(0);
            for stats in judged {
                step_total.add(stats);
            }
            let keeps_up = step_total.completed as f64 >= 0.95 * step_total.intended as f64;
            let passed = step_total.failed == 0
                && keeps_up
                && step_total.latency.value_at_quantile(0.99) <= slo_us;
            if passed {
                capacity = Some(rates[step.min(rates.len() - 1)]);
            } else {
                failed_at = Some(step);
                stop.stop();
            }
            step_stats.clear();
        }
    }
    load.finish()?;
    let capacity = capacity.ok_or_else(|| {
        RunError::Probe(format!(
            "task {} did not serve even {FIRST_RATE}/s within the SLO",
            task.address
        ))
    })?;
    eprintln!("capacity per task: {capacity:.1} requests/s");
    Ok(capacity)
}

/// Blocks on a fresh runtime: the binary's entry point for `scalegate loadtest`.
pub fn run_blocking(plan: &LoadtestPlan) -> Result<RunReport, RunError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|error| RunError::Output(format!("cannot start a runtime: {error}")))?
        .block_on(run(plan))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_are_in_milliseconds() {
        let mut histogram = SecondStats::empty(0).latency;
        for micros in 1..=1000u64 {
            histogram.record(micros * 1000).unwrap();
        }
        let summary = summarize(&histogram);
        assert!((summary.p50_ms - 500.0).abs() < 1.0, "{summary:?}");
        assert!((summary.p99_ms - 990.0).abs() < 1.0, "{summary:?}");
        assert!((summary.max_ms - 1000.0).abs() < 1.0, "{summary:?}");
        assert_eq!(
            summarize(&SecondStats::empty(0).latency),
            LatencySummary::default()
        );
    }

    #[test]
    fn schedules_describe_themselves() {
        let open = LoadModel::Open { max_in_flight: 10 };
        let constant = Schedule::Constant {
            rate: 100.0,
            duration: Duration::from_secs(30),
        };
        assert_eq!(describe_schedule(&constant, open), "constant 100/s for 30s");
        assert_eq!(
            describe_schedule(&constant, LoadModel::Closed { connections: 8 }),
            "8 connections flat out for 30s"
        );
    }
}
