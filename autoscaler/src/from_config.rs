//! From the validated config to the autoscaler's own types: task definition revisions, services
//! and each service's scalable target, engine settings and policies.
//!
//! The config crate describes what the user wrote, with AWS's field names and defaults left
//! for helpers to apply; the autoscaler works on resolved values (durations, effective
//! cooldowns, parsed schedules). Mapping in one place keeps the defaults the config documents
//! and the ones the engine applies from drifting apart: every default the config states is
//! applied here, through the config's own helpers, and handed to the engine explicitly.
//!
//! Validation has already run, so mapping should not fail; the few things only the engine can
//! parse (schedule expressions, start and end times) are still checked and reported as a
//! [`MappingError`] rather than trusted blindly.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use scalegate_config as config;

use crate::engine::{AwsParameters, EngineSettings, FastParameters};
use crate::scaling::{
    AdjustmentType, Alarm, ComparisonOperator, MetricSpec, PredefinedMetricType, ScalableTarget,
    ScalingPolicy, ScheduleError, ScheduleExpression, ScheduledAction, Statistic, StepAdjustment,
    StepScaling, SuspendedState, TargetTracking, TimingProfile,
};
use crate::service::{
    ContainerPort, DeploymentConfiguration, Service, TaskDefinition, TaskDefinitionRevision,
};

/// Why a validated config could not be expressed in the autoscaler's terms. Config validation
/// rejects all of these, so one reaching the caller is a disagreement between the two crates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// A policy's metric cannot be watched: no metric, or `ALBRequestCountPerTarget` without a
    /// target group it can count.
    #[error("service `{service}`, policy `{policy}`: {reason}")]
    Metric {
        /// The service.
        service: String,
        /// The policy.
        policy: String,
        /// What is missing.
        reason: String,
    },
    /// The engine refuses a scheduled action's schedule expression or time zone.
    #[error("service `{service}`, scheduled action `{action}`: {source}")]
    Schedule {
        /// The service.
        service: String,
        /// The scheduled action.
        action: String,
        /// The engine's reason.
        #[source]
        source: ScheduleError,
    },
    /// A scheduled action's `start_time` or `end_time` is not an RFC 3339 timestamp.
    #[error(
        "service `{service}`, scheduled action `{action}`: {field} `{value}` is not an RFC 3339 \
         timestamp: {reason}"
    )]
    Timestamp {
        /// The service.
        service: String,
        /// The scheduled action.
        action: String,
        /// `start_time` or `end_time`.
        field: &'static str,
        /// The text as written.
        value: String,
        /// The parser's reason.
        reason: String,
    },
}

// ---------------------------------------------------------------------------------------
// Task definitions

/// ECS's task definition registry: every revision of every family, so that a changed
/// definition becomes `family:N+1` while running tasks keep naming `family:N`.
///
/// Revisions are numbered from 1 in registration order and never removed (ECS keeps
/// deregistered revisions too); registering unchanged content returns the latest revision, so
/// a config reload that does not touch a definition does not start a deployment.
#[derive(Debug, Clone, Default)]
pub struct TaskDefinitionStore {
    families: BTreeMap<String, Vec<TaskDefinition>>,
}

impl TaskDefinitionStore {
    /// An empty registry.
    pub fn new() -> Self {
        TaskDefinitionStore::default()
    }

    /// Registers `definition` (from the config file in `base_dir`) and returns its revision:
    /// the family's latest one when its content is the same, else a new `family:N+1`.
    ///
    /// A relative `command` containing `/` and a relative `working_dir` are resolved against
    /// `base_dir`, as the config documents (and as [`scalegate_config::load`] already does, so
    /// resolving a loaded config again changes nothing); a bare command name stays as it is and
    /// is looked up on `PATH` when a task starts.
    pub fn register(
        &mut self,
        definition: &config::TaskDefinition,
        base_dir: &Path,
    ) -> TaskDefinition {
        let revisions = self.families.entry(definition.family.clone()).or_default();
        let next = TaskDefinitionRevision {
            family: definition.family.clone(),
            revision: u32::try_from(revisions.len() + 1).unwrap_or(u32::MAX),
        };
        let candidate = task_definition(definition, base_dir, next);
        if let Some(latest) = revisions.last() {
            if same_content(latest, &candidate) {
                return latest.clone();
            }
        }
        revisions.push(candidate.clone());
        candidate
    }

    /// The family's newest revision: what services of the family run.
    pub fn latest(&self, family: &str) -> Option<&TaskDefinition> {
        self.families
            .get(family)
            .and_then(|revisions| revisions.last())
    }

    /// Every revision of the family, oldest first; empty for an unknown family.
    pub fn revisions(&self, family: &str) -> &[TaskDefinition] {
        self.families.get(family).map_or(&[], Vec::as_slice)
    }

    /// One revision, for tasks that still run it after the family moved on.
    pub fn get(&self, revision: &TaskDefinitionRevision) -> Option<&TaskDefinition> {
        let index = usize::try_from(revision.revision).ok()?.checked_sub(1)?;
        self.revisions(&revision.family).get(index)
    }
}

/// Whether two revisions run the same thing: every field but the revision number.
fn same_content(a: &TaskDefinition, b: &TaskDefinition) -> bool {
    let TaskDefinition {
        revision: _,
        command,
        args,
        env,
        working_dir,
        cpu_units,
        memory_mib,
        container_port,
        stop_timeout,
    } = a;
    *command == b.command
        && *args == b.args
        && *env == b.env
        && *working_dir == b.working_dir
        && *cpu_units == b.cpu_units
        && *memory_mib == b.memory_mib
        && *container_port == b.container_port
        && *stop_timeout == b.stop_timeout
}

fn task_definition(
    definition: &config::TaskDefinition,
    base_dir: &Path,
    revision: TaskDefinitionRevision,
) -> TaskDefinition {
    TaskDefinition {
        revision,
        command: resolve_command(&definition.command, base_dir),
        args: definition.args.clone(),
        env: definition.env.clone(),
        working_dir: definition
            .working_dir
            .as_ref()
            .map(|directory| resolve_path(directory, base_dir)),
        cpu_units: definition.cpu,
        memory_mib: definition.memory,
        container_port: match definition.port {
            config::TaskPort::Dynamic => ContainerPort::Dynamic,
            config::TaskPort::Fixed(port) => ContainerPort::Fixed(port),
        },
        stop_timeout: Duration::from_secs(definition.stop_timeout_seconds),
    }
}

/// Like a shell: a bare name is looked up on `PATH` later; a relative path with `/` is a file
/// next to the config (`./` parts dropped, so `./app` and `app/..` read as the config does).
fn resolve_command(command: &str, base_dir: &Path) -> String {
    let path = Path::new(command);
    if !command.contains('/') || path.is_absolute() {
        return command.to_string();
    }
    let inside: PathBuf = path
        .components()
        .filter(|part| *part != Component::CurDir)
        .collect();
    base_dir.join(inside).to_string_lossy().into_owned()
}

fn resolve_path(path: &Path, base_dir: &Path) -> PathBuf {
    if path.is_relative() {
        base_dir.join(path)
    } else {
        path.to_path_buf()
    }
}

// ---------------------------------------------------------------------------------------
// Services

/// The ECS service a config service describes, running `task_definition` (the revision of the
/// family it names, from [`TaskDefinitionStore::register`] or [`TaskDefinitionStore::latest`]).
///
/// With `scaling`, the desired count is brought into `[min_capacity, max_capacity]`, as
/// RegisterScalableTarget does; the registry name `service.namespace` becomes `dns_name`.
pub fn service_from_config(
    service: &config::Service,
    task_definition: &TaskDefinitionRevision,
) -> Service {
    let desired_count = match &service.scaling {
        Some(scaling) => scalable_target(&service.name, scaling).clamp(service.desired_count),
        None => service.desired_count,
    };
    Service {
        name: service.name.clone(),
        task_definition: task_definition.clone(),
        desired_count,
        deployment: DeploymentConfiguration {
            minimum_healthy_percent: service.deployment_configuration.minimum_healthy_percent,
            maximum_percent: service.deployment_configuration.maximum_percent,
        },
        health_check_grace_period: Duration::from_secs(service.health_check_grace_period_seconds),
        target_groups: service
            .load_balancers
            .iter()
            .map(|balancer| balancer.target_group.clone())
            .collect(),
        dns_name: service
            .registry_name()
            .map(|(namespace, name)| format!("{name}.{namespace}")),
    }
}

// ---------------------------------------------------------------------------------------
// Scaling

/// Everything the engine needs to scale one service: its scalable target, its settings and its
/// policies, in configuration order.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceScalingPlan {
    /// Min, max and suspended flags (RegisterScalableTarget).
    pub target: ScalableTarget,
    /// The service's profile and both profiles' parameters.
    pub settings: EngineSettings,
    /// Target-tracking and step policies first, under their own names, then scheduled actions.
    /// Each entry's name is unique within the plan (the engine's `PolicyInput::name`): a
    /// scheduled action's is its own name, unless a policy already has that name; then
    /// `scheduled:` is put in front (again, until it is unique). The action itself keeps its
    /// own name, which is what its activities show.
    pub policies: Vec<(String, ScalingPolicy)>,
}

/// The service's scaling as the engine runs it, or `None` when the service has no `scaling`
/// (it keeps its desired count).
///
/// Cooldowns are resolved with the config's own helpers
/// ([`config::ServiceScaling::scale_out_cooldown_seconds`] and friends) and set on every
/// policy, so the engine's defaults never decide them. The `fast` parameters the config has no
/// field for (`scale_out_tolerance`, `max_scale_in_ratio`) keep the engine's defaults.
pub fn scaling_from_config(
    service: &config::Service,
) -> Result<Option<ServiceScalingPlan>, MappingError> {
    let Some(scaling) = &service.scaling else {
        return Ok(None);
    };
    let mut policies = Vec::with_capacity(scaling.policies.len() + scaling.scheduled_actions.len());
    for policy in &scaling.policies {
        let mapped = match policy {
            config::ScalingPolicy::TargetTracking(policy) => {
                ScalingPolicy::TargetTracking(target_tracking(service, scaling, policy)?)
            }
            config::ScalingPolicy::StepScaling(policy) => {
                ScalingPolicy::StepScaling(step_scaling(service, scaling, policy)?)
            }
        };
        policies.push((policy.name().to_string(), mapped));
    }
    for action in &scaling.scheduled_actions {
        let mut name = action.name.clone();
        while policies.iter().any(|(taken, _)| *taken == name) {
            name.insert_str(0, SCHEDULED_PREFIX);
        }
        let mapped = scheduled_action(&service.name, action)?;
        policies.push((name, ScalingPolicy::Scheduled(mapped)));
    }
    Ok(Some(ServiceScalingPlan {
        target: scalable_target(&service.name, scaling),
        settings: EngineSettings {
            profile: scaling.profile.into(),
            fast: (&scaling.fast).into(),
            aws: AwsParameters::default(),
        },
        policies,
    }))
}

/// Put before a scheduled action's name in a plan when a policy has the same name.
const SCHEDULED_PREFIX: &str = "scheduled:";

fn scalable_target(service: &str, scaling: &config::ServiceScaling) -> ScalableTarget {
    ScalableTarget {
        service: service.to_string(),
        min_capacity: scaling.min_capacity,
        max_capacity: scaling.max_capacity,
        suspended: SuspendedState {
            dynamic_scaling_in_suspended: scaling.suspended_state.dynamic_scaling_in_suspended,
            dynamic_scaling_out_suspended: scaling.suspended_state.dynamic_scaling_out_suspended,
            scheduled_scaling_suspended: scaling.suspended_state.scheduled_scaling_suspended,
        },
    }
}

fn target_tracking(
    service: &config::Service,
    scaling: &config::ServiceScaling,
    policy: &config::TargetTrackingPolicy,
) -> Result<TargetTracking, MappingError> {
    Ok(TargetTracking {
        metric: metric(
            service,
            &policy.name,
            policy.predefined_metric_specification.as_ref(),
            policy.customized_metric_specification.as_ref(),
        )?,
        target_value: policy.target_value,
        scale_out_cooldown: Some(Duration::from_secs(
            scaling.scale_out_cooldown_seconds(policy),
        )),
        scale_in_cooldown: Some(Duration::from_secs(
            scaling.scale_in_cooldown_seconds(policy),
        )),
        disable_scale_in: policy.disable_scale_in,
        profile: policy.profile.map(TimingProfile::from),
        // Without overrides the policy runs the service's parameters (`settings.fast`).
        fast: policy
            .fast
            .as_ref()
            .map(|_| FastParameters::from(&scaling.fast_profile_of(policy))),
    })
}

fn step_scaling(
    service: &config::Service,
    scaling: &config::ServiceScaling,
    policy: &config::StepScalingPolicy,
) -> Result<StepScaling, MappingError> {
    let alarm = &policy.alarm;
    Ok(StepScaling {
        alarm: Alarm {
            metric: metric(
                service,
                &policy.name,
                alarm.predefined_metric_specification.as_ref(),
                alarm.customized_metric_specification.as_ref(),
            )?,
            statistic: alarm.statistic.into(),
            period: Duration::from_secs(alarm.period_seconds),
            threshold: alarm.threshold,
            comparison: alarm.comparison_operator.into(),
            evaluation_periods: alarm.evaluation_periods,
            datapoints_to_alarm: alarm.effective_datapoints_to_alarm(),
        },
        adjustment_type: policy.adjustment_type.into(),
        steps: policy
            .step_adjustments
            .iter()
            .map(|step| StepAdjustment {
                lower_bound: step.metric_interval_lower_bound,
                upper_bound: step.metric_interval_upper_bound,
                scaling_adjustment: step.scaling_adjustment,
            })
            .collect(),
        min_adjustment_magnitude: policy.min_adjustment_magnitude,
        metric_aggregation_type: match policy.metric_aggregation_type {
            config::MetricAggregationType::Average => Statistic::Average,
            config::MetricAggregationType::Minimum => Statistic::Minimum,
            config::MetricAggregationType::Maximum => Statistic::Maximum,
        },
        cooldown: Duration::from_secs(scaling.step_cooldown_seconds(policy)),
        profile: policy.profile.map(TimingProfile::from),
    })
}

/// The metric of a policy or alarm: exactly one of the two specifications (validation's rule).
///
/// A scraped metric with labels becomes a Prometheus selector, `name{label="value",...}`, with
/// labels in name order and values escaped as the exposition format escapes them (`\\`, `\"`,
/// `\n`); the metric collector reads [`MetricSpec::Scraped`]'s `metric` in that form.
fn metric(
    service: &config::Service,
    policy: &str,
    predefined: Option<&config::PredefinedMetricSpecification>,
    customized: Option<&config::CustomizedMetricSpecification>,
) -> Result<MetricSpec, MappingError> {
    let error = |reason: &str| MappingError::Metric {
        service: service.name.clone(),
        policy: policy.to_string(),
        reason: reason.to_string(),
    };
    match (predefined, customized) {
        (Some(predefined), None) => {
            let metric = PredefinedMetricType::from(predefined.predefined_metric_type);
            let target_group = predefined.target_group(service).map(str::to_string);
            if metric == PredefinedMetricType::AlbRequestCountPerTarget && target_group.is_none() {
                return Err(error(
                    "ALBRequestCountPerTarget needs a resource_label when the service has \
                     other than one target group",
                ));
            }
            Ok(MetricSpec::Predefined {
                metric,
                target_group,
            })
        }
        (None, Some(config::CustomizedMetricSpecification::Scrape(scraped))) => {
            Ok(MetricSpec::Scraped {
                url: scraped.url.clone(),
                metric_name: scraped.metric_name.clone(),
                labels: scraped.labels.clone(),
            })
        }
        (None, Some(config::CustomizedMetricSpecification::Promql(query))) => {
            Ok(MetricSpec::PromQl {
                server: query.server_url.clone(),
                query: query.query.clone(),
            })
        }
        _ => Err(error(
            "needs exactly one of predefined_metric_specification and \
             customized_metric_specification",
        )),
    }
}

fn scheduled_action(
    service: &str,
    action: &config::ScheduledAction,
) -> Result<ScheduledAction, MappingError> {
    let schedule_error = |source| MappingError::Schedule {
        service: service.to_string(),
        action: action.name.clone(),
        source,
    };
    let time = |field: &'static str, value: &Option<String>| {
        value
            .as_deref()
            .map(|text| {
                text.parse::<jiff::Timestamp>()
                    .map(SystemTime::from)
                    .map_err(|error| MappingError::Timestamp {
                        service: service.to_string(),
                        action: action.name.clone(),
                        field,
                        value: text.to_string(),
                        reason: error.to_string(),
                    })
            })
            .transpose()
    };
    let mapped = ScheduledAction {
        name: action.name.clone(),
        schedule: ScheduleExpression::parse(&action.schedule).map_err(schedule_error)?,
        timezone: action.timezone.clone(),
        start_time: time("start_time", &action.start_time)?,
        end_time: time("end_time", &action.end_time)?,
        min_capacity: action.scalable_target_action.min_capacity,
        max_capacity: action.scalable_target_action.max_capacity,
    };
    mapped.validate().map_err(schedule_error)?;
    Ok(mapped)
}

// ---------------------------------------------------------------------------------------
// Enumerations and parameters with the same meaning on both sides

impl From<config::TimingProfile> for TimingProfile {
    fn from(profile: config::TimingProfile) -> Self {
        match profile {
            config::TimingProfile::Fast => TimingProfile::Fast,
            config::TimingProfile::Aws => TimingProfile::Aws,
        }
    }
}

impl From<&config::FastProfile> for FastParameters {
    /// The config's `fast` block: windows and cooldowns in seconds, the panic threshold as a
    /// percentage (200 → 2.0); tolerance and scale-in ratio, which the config does not expose,
    /// keep [`FastParameters::default`].
    fn from(profile: &config::FastProfile) -> Self {
        FastParameters {
            stable_window: Duration::from_secs(profile.stable_window_seconds),
            panic_window: Duration::from_secs(profile.panic_window_seconds),
            panic_threshold: f64::from(profile.panic_threshold_percent) / 100.0,
            scale_out_cooldown: Duration::from_secs(profile.scale_out_cooldown_seconds),
            scale_in_cooldown: Duration::from_secs(profile.scale_in_cooldown_seconds),
            ..FastParameters::default()
        }
    }
}

impl From<config::PredefinedMetricType> for PredefinedMetricType {
    fn from(metric: config::PredefinedMetricType) -> Self {
        match metric {
            config::PredefinedMetricType::EcsServiceAverageCpuUtilization => {
                PredefinedMetricType::EcsServiceAverageCpuUtilization
            }
            config::PredefinedMetricType::EcsServiceAverageMemoryUtilization => {
                PredefinedMetricType::EcsServiceAverageMemoryUtilization
            }
            config::PredefinedMetricType::AlbRequestCountPerTarget => {
                PredefinedMetricType::AlbRequestCountPerTarget
            }
        }
    }
}

impl From<config::Statistic> for Statistic {
    fn from(statistic: config::Statistic) -> Self {
        match statistic {
            config::Statistic::Average => Statistic::Average,
            config::Statistic::Minimum => Statistic::Minimum,
            config::Statistic::Maximum => Statistic::Maximum,
            config::Statistic::Sum => Statistic::Sum,
            config::Statistic::SampleCount => Statistic::SampleCount,
        }
    }
}

impl From<config::ComparisonOperator> for ComparisonOperator {
    fn from(operator: config::ComparisonOperator) -> Self {
        match operator {
            config::ComparisonOperator::GreaterThanOrEqualToThreshold => {
                ComparisonOperator::GreaterThanOrEqualToThreshold
            }
            config::ComparisonOperator::GreaterThanThreshold => {
                ComparisonOperator::GreaterThanThreshold
            }
            config::ComparisonOperator::LessThanThreshold => ComparisonOperator::LessThanThreshold,
            config::ComparisonOperator::LessThanOrEqualToThreshold => {
                ComparisonOperator::LessThanOrEqualToThreshold
            }
        }
    }
}

impl From<config::AdjustmentType> for AdjustmentType {
    fn from(adjustment: config::AdjustmentType) -> Self {
        match adjustment {
            config::AdjustmentType::ChangeInCapacity => AdjustmentType::ChangeInCapacity,
            config::AdjustmentType::PercentChangeInCapacity => {
                AdjustmentType::PercentChangeInCapacity
            }
            config::AdjustmentType::ExactCapacity => AdjustmentType::ExactCapacity,
        }
    }
}

#[cfg(test)]
mod tests;
