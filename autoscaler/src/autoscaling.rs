//! The autoscaling loop of one service: every second, sample each policy's metric, evaluate the
//! [`Engine`], hand a changed desired count to the service's scheduler, and record what was
//! decided as scaling activities.
//!
//! This is where metrics meet decisions, and the only place with I/O around the pure engine:
//! CPU and memory come from the scheduler ([`ServiceHandle::utilization`]), request counts from
//! the load balancer through [`LoadBalancerMetrics`] (the binary implements it over the proxy),
//! custom metrics from Prometheus ([`crate::metrics`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::activity::{ScalingActivity, StatusCode};
use crate::engine::{
    retention_for, Engine, EngineSettings, EvaluationInputs, MetricHistory, PolicyInput,
};
use crate::scaling::{MetricSpec, PredefinedMetricType, ScalableTarget, ScalingPolicy};
use crate::scheduler::{ServiceHandle, ServiceSnapshot};

/// How often the loop samples and decides.
pub const EVALUATION_PERIOD: Duration = Duration::from_secs(1);
/// Activities kept per service, newest first.
const ACTIVITIES_KEPT: usize = 1000;

/// A target group's request volume, as the load balancer counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetGroupLoad {
    /// Requests routed to the group's targets since it was created (monotonic).
    pub requests_total: u64,
    /// Targets in service (healthy, or unchecked), the divisor of `RequestCountPerTarget`.
    pub healthy_targets: usize,
}

/// Where `ALBRequestCountPerTarget` comes from: the proxy in the same process.
pub trait LoadBalancerMetrics: Send + Sync + 'static {
    /// The group's load now; `None` when no such group exists.
    fn target_group_load(&self, target_group: &str) -> Option<TargetGroupLoad>;
}

/// What a service is scaled by: Application Auto Scaling's scalable target and policies.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingConfiguration {
    /// Min and max capacity and the suspended flags.
    pub target: ScalableTarget,
    /// The timing profile and its parameters.
    pub settings: EngineSettings,
    /// Policies and scheduled actions, by unique name.
    pub policies: Vec<(String, ScalingPolicy)>,
}

/// A bounded, newest-first record of a service's scaling activities
/// (`DescribeScalingActivities`).
#[derive(Debug, Clone, Default)]
pub struct ActivityLog {
    inner: Arc<Mutex<VecDeque<ScalingActivity>>>,
}

impl ActivityLog {
    /// Every kept activity, newest first; `include_not_scaled` as AWS's
    /// `IncludeNotScaledActivities`.
    pub fn list(&self, include_not_scaled: bool) -> Vec<ScalingActivity> {
        self.lock()
            .iter()
            .filter(|activity| include_not_scaled || !activity.is_not_scaled())
            .cloned()
            .collect()
    }

    fn push(&self, activity: ScalingActivity) {
        let mut activities = self.lock();
        activities.push_front(activity);
        activities.truncate(ACTIVITIES_KEPT);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<ScalingActivity>> {
        self.inner.lock().expect("activity log lock")
    }
}

/// The autoscaler's Prometheus series, shared by every service.
#[derive(Clone)]
pub struct AutoscalerMetrics {
    tasks: IntGaugeVec,
    capacity: IntGaugeVec,
    activities: IntCounterVec,
    metric_value: GaugeVec,
}

impl AutoscalerMetrics {
    /// Registers the series in `registry`; call once per process.
    pub fn register(registry: &Registry) -> AutoscalerMetrics {
        let tasks = IntGaugeVec::new(
            Opts::new(
                "scalegate_service_tasks",
                "A service's task counts, as DescribeServices reports them: desired, running, \
                 pending, healthy.",
            ),
            &["service", "count"],
        )
        .expect("valid metric definition");
        let capacity = IntGaugeVec::new(
            Opts::new(
                "scalegate_scalable_target_capacity",
                "A scalable target's capacity bounds in force (scheduled actions included).",
            ),
            &["service", "bound"],
        )
        .expect("valid metric definition");
        let activities = IntCounterVec::new(
            Opts::new(
                "scalegate_scaling_activities_total",
                "Scaling activities by final status (Successful, Failed; not-scaled decisions \
                 are Failed with reason NotScaled).",
            ),
            &["service", "status"],
        )
        .expect("valid metric definition");
        let metric_value = GaugeVec::new(
            Opts::new(
                "scalegate_scaling_policy_metric",
                "The latest sample of each scaling policy's metric.",
            ),
            &["service", "policy", "metric"],
        )
        .expect("valid metric definition");
        for collector in [
            Box::new(tasks.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(capacity.clone()),
            Box::new(activities.clone()),
            Box::new(metric_value.clone()),
        ] {
            registry
                .register(collector)
                .expect("autoscaler metrics are registered once");
        }
        AutoscalerMetrics {
            tasks,
            capacity,
            activities,
            metric_value,
        }
    }

    /// Publishes a service's counts.
    pub fn observe_service(&self, snapshot: &ServiceSnapshot) {
        let service = snapshot.service_name.as_str();
        for (count, value) in [
            ("desired", snapshot.desired_count),
            ("running", snapshot.running_count),
            ("pending", snapshot.pending_count),
            ("healthy", snapshot.healthy_count),
        ] {
            self.tasks
                .with_label_values(&[service, count])
                .set(i64::from(value));
        }
    }

    /// Drops a removed service's series.
    pub fn forget_service(&self, service: &str) {
        for count in ["desired", "running", "pending", "healthy"] {
            let _ = self.tasks.remove_label_values(&[service, count]);
        }
        for bound in ["min", "max"] {
            let _ = self.capacity.remove_label_values(&[service, bound]);
        }
    }

    fn record_activity(&self, activity: &ScalingActivity) {
        let status = if activity.is_not_scaled() {
            "NotScaled"
        } else {
            activity.status_code.as_str()
        };
        self.activities
            .with_label_values(&[activity.service.as_str(), status])
            .inc();
    }
}

/// A running autoscaling loop.
pub struct AutoscalerHandle {
    configuration: watch::Sender<ScalingConfiguration>,
    activities: ActivityLog,
    join: JoinHandle<()>,
}

impl AutoscalerHandle {
    /// The service's scaling activities, newest first.
    pub fn activities(&self) -> &ActivityLog {
        &self.activities
    }

    /// Applies new bounds and policies (a reload); policies whose metric is unchanged keep
    /// their history and state.
    pub fn update(&self, configuration: ScalingConfiguration) {
        self.configuration.send_replace(configuration);
    }

    /// Ends the loop; the service keeps its current desired count.
    pub fn stop(&self) {
        self.join.abort();
    }
}

impl Drop for AutoscalerHandle {
    fn drop(&mut self) {
        self.join.abort();
    }
}

/// Starts autoscaling `service` by `configuration`.
pub fn spawn<L: LoadBalancerMetrics>(
    service: ServiceHandle,
    configuration: ScalingConfiguration,
    load_balancer: Arc<L>,
    metrics: AutoscalerMetrics,
) -> AutoscalerHandle {
    let (sender, receiver) = watch::channel(configuration);
    let activities = ActivityLog::default();
    let join = tokio::spawn(run(
        service,
        receiver,
        load_balancer,
        metrics,
        activities.clone(),
    ));
    AutoscalerHandle {
        configuration: sender,
        activities,
        join,
    }
}

/// One policy's metric: how it is read and what was read.
struct PolicyMetric {
    spec: Option<MetricSpec>,
    history: MetricHistory,
    reader: Reader,
    /// Failed readings in a row, so a persistent failure is logged once a minute.
    failures: u32,
}

impl PolicyMetric {
    fn new(
        spec: Option<&MetricSpec>,
        retention: Duration,
        client: &crate::metrics::MetricClient,
    ) -> PolicyMetric {
        PolicyMetric {
            spec: spec.cloned(),
            history: MetricHistory::new(retention),
            reader: Reader::for_spec(spec, client),
            failures: 0,
        }
    }
}

enum Reader {
    None,
    Cpu,
    Memory,
    Requests {
        target_group: String,
        previous: Option<(Instant, u64)>,
    },
    Custom(Box<crate::metrics::CustomMetric>),
    /// The metric cannot be read at all (a malformed URL); said once, at setup.
    Broken,
}

impl Reader {
    fn for_spec(spec: Option<&MetricSpec>, client: &crate::metrics::MetricClient) -> Reader {
        match spec {
            None => Reader::None,
            Some(MetricSpec::Predefined {
                metric,
                target_group,
            }) => match metric {
                PredefinedMetricType::EcsServiceAverageCpuUtilization => Reader::Cpu,
                PredefinedMetricType::EcsServiceAverageMemoryUtilization => Reader::Memory,
                PredefinedMetricType::AlbRequestCountPerTarget => Reader::Requests {
                    target_group: target_group.clone().unwrap_or_default(),
                    previous: None,
                },
            },
            Some(custom) => match crate::metrics::CustomMetric::from_spec(client, custom) {
                Ok(Some(metric)) => Reader::Custom(Box::new(metric)),
                Ok(None) => Reader::None,
                Err(error) => {
                    tracing::error!(metric = %custom, %error, "a scaling policy's metric cannot be read");
                    Reader::Broken
                }
            },
        }
    }
}

fn metric_of(policy: &ScalingPolicy) -> Option<&MetricSpec> {
    match policy {
        ScalingPolicy::TargetTracking(tracking) => Some(&tracking.metric),
        ScalingPolicy::StepScaling(step) => Some(&step.alarm.metric),
        ScalingPolicy::Scheduled(_) => None,
    }
}

async fn run<L: LoadBalancerMetrics>(
    service: ServiceHandle,
    mut configuration: watch::Receiver<ScalingConfiguration>,
    load_balancer: Arc<L>,
    metrics: AutoscalerMetrics,
    activities: ActivityLog,
) {
    let client = crate::metrics::MetricClient::new();
    let mut current = configuration.borrow_and_update().clone();
    let mut engine = Engine::new(current.settings);
    let mut policy_metrics: HashMap<String, PolicyMetric> = HashMap::new();
    let mut tick = tokio::time::interval(EVALUATION_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if configuration.has_changed().unwrap_or(false) {
            let next = configuration.borrow_and_update().clone();
            if next.settings != current.settings {
                engine = Engine::new(next.settings);
            }
            current = next;
        }
        // Keep a policy's history while its metric is the same; start afresh otherwise.
        policy_metrics.retain(|name, _| current.policies.iter().any(|(other, _)| other == name));
        for (name, policy) in &current.policies {
            let spec = metric_of(policy);
            let retention = retention_for(policy, &current.settings);
            let entry = policy_metrics
                .entry(name.clone())
                .or_insert_with(|| PolicyMetric::new(spec, retention, &client));
            if entry.spec.as_ref() != spec {
                *entry = PolicyMetric::new(spec, retention, &client);
            }
            entry.history.set_retention(retention);
        }

        let now = SystemTime::now();
        let usage = if policy_metrics
            .values()
            .any(|metric| matches!(metric.reader, Reader::Cpu | Reader::Memory))
        {
            service.utilization().await.ok().flatten()
        } else {
            None
        };
        let service_name = service.name().to_string();
        // Every policy's reading at once: custom metrics wait on the network, up to their
        // timeout each, and must not add up past the one-second period.
        let readings = policy_metrics.iter_mut().map(|(name, metric)| {
            let load_balancer = load_balancer.as_ref();
            let service_name = service_name.as_str();
            let metric_values = &metrics.metric_value;
            async move {
                let value = match &mut metric.reader {
                    Reader::None | Reader::Broken => None,
                    Reader::Cpu => usage.map(|usage| usage.cpu_percent),
                    Reader::Memory => usage.map(|usage| usage.memory_percent),
                    Reader::Requests {
                        target_group,
                        previous,
                    } => sample_requests(load_balancer, target_group, previous),
                    Reader::Custom(custom) => match custom.sample().await {
                        Ok(value) => {
                            if metric.failures > 0 {
                                tracing::info!(service = %service_name, policy = %name, failures = metric.failures, "the policy's metric reads again");
                                metric.failures = 0;
                            }
                            value
                        }
                        Err(error) => {
                            // Missing data: the engine decides nothing on it (never "low load").
                            // Said on the first failure and once a minute after.
                            if metric.failures % 60 == 0 {
                                tracing::warn!(service = %service_name, policy = %name, %error, failures = metric.failures + 1, "cannot read the policy's metric");
                            }
                            metric.failures += 1;
                            None
                        }
                    },
                };
                if let Some(value) = value {
                    metric.history.record(now, value);
                    let metric_name = metric
                        .spec
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default();
                    metric_values
                        .with_label_values(&[service_name, name.as_str(), &metric_name])
                        .set(value);
                }
            }
        });
        futures_util::future::join_all(readings).await;

        let snapshot = service.snapshot();
        let inputs: Vec<PolicyInput<'_>> = current
            .policies
            .iter()
            .map(|(name, policy)| PolicyInput {
                name,
                policy,
                metric: policy_metrics
                    .get(name)
                    .filter(|metric| !metric.history.is_empty())
                    .map(|metric| &metric.history),
            })
            .collect();
        let decision = engine.evaluate(
            now,
            &EvaluationInputs {
                target: &current.target,
                desired_capacity: snapshot.desired_count,
                running_capacity: snapshot.running_count,
                deployment_in_progress: snapshot.deployment_in_progress,
                policies: &inputs,
            },
        );
        metrics
            .capacity
            .with_label_values(&[service_name.as_str(), "min"])
            .set(i64::from(decision.min_capacity));
        metrics
            .capacity
            .with_label_values(&[service_name.as_str(), "max"])
            .set(i64::from(decision.max_capacity));
        let outcome = if decision.changed() {
            service
                .set_desired_count(decision.desired_capacity)
                .map_err(|error| error.to_string())
        } else {
            Ok(())
        };
        for mut activity in decision.activities {
            if activity.status_code == StatusCode::Pending {
                match &outcome {
                    Ok(()) => activity.set_status(
                        StatusCode::Successful,
                        Some(format!(
                            "Successfully set desired count to {}.",
                            activity.to_capacity
                        )),
                        SystemTime::now(),
                    ),
                    Err(error) => activity.set_status(
                        StatusCode::Failed,
                        Some(error.clone()),
                        SystemTime::now(),
                    ),
                }
            }
            log_activity(&activity);
            metrics.record_activity(&activity);
            activities.push(activity);
        }
    }
}

/// `ALBRequestCountPerTarget` for the last interval: requests per second since the previous
/// reading × 60 (AWS's metric is per minute), divided by the healthy targets. `None` on the
/// first reading and while no target is healthy (AWS publishes no datapoint then either).
fn sample_requests<L: LoadBalancerMetrics + ?Sized>(
    load_balancer: &L,
    target_group: &str,
    previous: &mut Option<(Instant, u64)>,
) -> Option<f64> {
    let load = load_balancer.target_group_load(target_group)?;
    let now = Instant::now();
    let last = previous.replace((now, load.requests_total));
    let (then, requests_then) = last?;
    let elapsed = now.duration_since(then).as_secs_f64();
    if elapsed <= 0.0 || load.healthy_targets == 0 {
        return None;
    }
    let requests = load.requests_total.saturating_sub(requests_then) as f64;
    Some(requests / elapsed * 60.0 / load.healthy_targets as f64)
}

fn log_activity(activity: &ScalingActivity) {
    if activity.is_not_scaled() {
        tracing::info!(
            target: "scalegate::autoscaling",
            service = %activity.service,
            activity_id = %activity.activity_id,
            reason = activity.not_scaled_reasons.first().map(|reason| reason.code.as_str()).unwrap_or(""),
            "not scaled: {}",
            activity.cause
        );
    } else {
        tracing::info!(
            target: "scalegate::autoscaling",
            service = %activity.service,
            activity_id = %activity.activity_id,
            from = activity.from_capacity,
            to = activity.to_capacity,
            status = activity.status_code.as_str(),
            "{} Cause: {}",
            activity.description,
            activity.cause
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FixedLoad(Mutex<TargetGroupLoad>);

    impl LoadBalancerMetrics for FixedLoad {
        fn target_group_load(&self, _: &str) -> Option<TargetGroupLoad> {
            Some(*self.0.lock().unwrap())
        }
    }

    #[test]
    fn request_count_per_target_is_per_minute_per_healthy_target() {
        let load = FixedLoad(Mutex::new(TargetGroupLoad {
            requests_total: 1000,
            healthy_targets: 2,
        }));
        let mut previous = None;
        assert_eq!(sample_requests(&load, "web", &mut previous), None);
        // Pretend the previous reading was 2 s ago, 200 requests back.
        previous = Some((Instant::now() - Duration::from_secs(2), 800));
        let value = sample_requests(&load, "web", &mut previous).unwrap();
        // 100 requests/s × 60 / 2 targets = 3000 per target per minute (within timing slack).
        assert!((value - 3000.0).abs() < 30.0, "{value}");
        load.0.lock().unwrap().healthy_targets = 0;
        assert_eq!(sample_requests(&load, "web", &mut previous), None);
    }
}
