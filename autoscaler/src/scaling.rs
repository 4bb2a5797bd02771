//! Scalable targets and scaling policies, with Application Auto Scaling's names and arithmetic.
//!
//! The decision engine ([`crate::engine`]) is a pure function of metric history and time over
//! these types. What is implemented here is the arithmetic AWS documents, so that both timing
//! profiles round, bound and step exactly as AWS does:
//! [`target_tracking_capacity`], [`percent_adjustment`], [`StepAdjustment::select`],
//! [`AdjustmentType::apply`] and [`ScalableTarget::clamp`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

pub use crate::engine::profile::FastParameters;
pub use crate::engine::schedule::{ScheduleError, ScheduleExpression};

/// Which kinds of scaling are paused (`SuspendedState` of RegisterScalableTarget).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct SuspendedState {
    /// Policies may not remove capacity.
    pub dynamic_scaling_in_suspended: bool,
    /// Policies may not add capacity.
    pub dynamic_scaling_out_suspended: bool,
    /// Scheduled actions do not run.
    pub scheduled_scaling_suspended: bool,
}

/// A service as Application Auto Scaling sees it: a desired count within bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalableTarget {
    /// The service (`ResourceId` `service/<cluster>/<service>` on AWS).
    pub service: String,
    /// No policy scales below this.
    pub min_capacity: u32,
    /// No policy scales above this.
    pub max_capacity: u32,
    /// Paused kinds of scaling.
    pub suspended: SuspendedState,
}

impl ScalableTarget {
    /// `capacity` bounded by `[min_capacity, max_capacity]`; policies never leave the range.
    pub fn clamp(&self, capacity: u32) -> u32 {
        capacity.clamp(self.min_capacity, self.max_capacity.max(self.min_capacity))
    }
}

/// Metrics Application Auto Scaling predefines for ECS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PredefinedMetricType {
    /// Service CPU used / CPU reserved, percent, averaged over running tasks.
    EcsServiceAverageCpuUtilization,
    /// Service memory used / memory reserved, percent.
    EcsServiceAverageMemoryUtilization,
    /// Requests per target per minute, from the proxy's target group.
    AlbRequestCountPerTarget,
}

impl PredefinedMetricType {
    /// AWS's `PredefinedMetricType` string.
    pub fn as_str(self) -> &'static str {
        match self {
            PredefinedMetricType::EcsServiceAverageCpuUtilization => {
                "ECSServiceAverageCPUUtilization"
            }
            PredefinedMetricType::EcsServiceAverageMemoryUtilization => {
                "ECSServiceAverageMemoryUtilization"
            }
            PredefinedMetricType::AlbRequestCountPerTarget => "ALBRequestCountPerTarget",
        }
    }
}

/// The metric a policy watches.
///
/// For [`PredefinedMetricType::AlbRequestCountPerTarget`] the target value is, as on AWS, requests
/// per target per *minute*: the collector should sample the one-minute request count per target
/// (a per-second rate × 60), every second.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricSpec {
    /// One of AWS's predefined ECS metrics; `target_group` names the group for
    /// `ALBRequestCountPerTarget` (AWS's `ResourceLabel`).
    Predefined {
        /// Which metric.
        metric: PredefinedMetricType,
        /// The target group, for request counts.
        target_group: Option<String>,
    },
    /// A Prometheus metric scraped from a URL (a gauge, or a counter's rate); read by
    /// [`crate::metrics::CustomMetric`].
    Scraped {
        /// Exposition URL.
        url: String,
        /// The metric's exact name (`_bucket`, `_sum`, `_count` series by their own names).
        metric_name: String,
        /// Label values that select series; labels not named may be anything, and several
        /// matching series are summed. Kept apart from the name so nothing re-parses them.
        labels: BTreeMap<String, String>,
    },
    /// A PromQL query against a Prometheus server, returning one number; read by
    /// [`crate::metrics::CustomMetric`].
    PromQl {
        /// Server base URL.
        server: String,
        /// The query.
        query: String,
    },
}

impl fmt::Display for MetricSpec {
    /// The metric as causes name it: AWS's predefined name, the scraped metric, or the query.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricSpec::Predefined { metric, .. } => f.write_str(metric.as_str()),
            MetricSpec::Scraped {
                metric_name,
                labels,
                ..
            } => write!(f, "{}", crate::metrics::Selector::new(metric_name, labels)),
            MetricSpec::PromQl { query, .. } => write!(f, "PromQL `{query}`"),
        }
    }
}

/// How quickly policies react.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum TimingProfile {
    /// Faithful to AWS: 60 s datapoints, scale-out alarm 3 of 3, scale-in alarm 15 of 15 below 90 %
    /// of target, 300 s cooldowns; shows locally what AWS would do with the same policy.
    Aws,
    /// Decides every second; a short scale-out-only window reacts to bursts (like Knative's panic
    /// mode), scale-in waits for a long stable window, and direction never reverses inside a
    /// cooldown, so it does not flap. Parameters: [`FastParameters`].
    #[default]
    Fast,
}

impl TimingProfile {
    /// The profile's name as configs write it.
    pub fn as_str(self) -> &'static str {
        match self {
            TimingProfile::Aws => "aws",
            TimingProfile::Fast => "fast",
        }
    }
}

/// Target tracking: keep a metric near a target value (`TargetTrackingScalingPolicyConfiguration`).
#[derive(Debug, Clone, PartialEq)]
pub struct TargetTracking {
    /// The metric; it must fall as capacity rises.
    pub metric: MetricSpec,
    /// The value to hold the metric at.
    pub target_value: f64,
    /// `aws`: after a scale-out, further scale-out only if larger (AWS's default for ECS:
    /// 300 s). `fast`: after a scale-in, scale-out from the stable window waits this long (the
    /// panic window never waits). `None` takes the profile's default.
    pub scale_out_cooldown: Option<Duration>,
    /// `aws`: after a scale-in, no further scale-in until this has passed; a scale-out ends it
    /// (AWS's default for ECS: 300 s). `fast`: after any scale-out or scale-in, scale-in waits
    /// this long. `None` takes the profile's default.
    pub scale_in_cooldown: Option<Duration>,
    /// This policy never removes capacity, and does not vote on scale-in.
    pub disable_scale_in: bool,
    /// Timing profile; the service's when unset.
    pub profile: Option<TimingProfile>,
    /// Parameters of the `fast` profile for this policy; the service's when unset.
    pub fast: Option<FastParameters>,
}

/// How a step's adjustment changes capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdjustmentType {
    /// Add (or remove) this many tasks.
    ChangeInCapacity,
    /// Add (or remove) this percentage of the current capacity, rounded as
    /// [`percent_adjustment`] says.
    PercentChangeInCapacity,
    /// Set capacity to exactly this.
    ExactCapacity,
}

impl AdjustmentType {
    /// The capacity after applying `adjustment` to `current`, before [`ScalableTarget::clamp`].
    /// `min_adjustment_magnitude` applies only to `PercentChangeInCapacity`, as in AWS.
    pub fn apply(
        self,
        current: u32,
        adjustment: i64,
        min_adjustment_magnitude: Option<u32>,
    ) -> u32 {
        let change = match self {
            AdjustmentType::ExactCapacity => {
                return adjustment.clamp(0, i64::from(u32::MAX)) as u32
            }
            AdjustmentType::ChangeInCapacity => adjustment,
            AdjustmentType::PercentChangeInCapacity => {
                percent_adjustment(current, adjustment as f64, min_adjustment_magnitude)
            }
        };
        (i64::from(current) + change).clamp(0, i64::from(u32::MAX)) as u32
    }
}

/// How the alarm combines a period's samples (`Statistic` / `MetricAggregationType`), as
/// CloudWatch does. Step policies' `MetricAggregationType` allows only the first three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum Statistic {
    /// Mean of the samples.
    #[default]
    Average,
    /// Smallest sample.
    Minimum,
    /// Largest sample.
    Maximum,
    /// Total of the samples.
    Sum,
    /// Number of samples.
    SampleCount,
}

/// How the alarm compares a datapoint with its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComparisonOperator {
    /// `>=`
    GreaterThanOrEqualToThreshold,
    /// `>`
    GreaterThanThreshold,
    /// `<`
    LessThanThreshold,
    /// `<=`
    LessThanOrEqualToThreshold,
}

impl ComparisonOperator {
    /// Whether `value` breaches `threshold`.
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            ComparisonOperator::GreaterThanOrEqualToThreshold => value >= threshold,
            ComparisonOperator::GreaterThanThreshold => value > threshold,
            ComparisonOperator::LessThanThreshold => value < threshold,
            ComparisonOperator::LessThanOrEqualToThreshold => value <= threshold,
        }
    }

    /// The operator as causes print it.
    pub fn symbol(self) -> &'static str {
        match self {
            ComparisonOperator::GreaterThanOrEqualToThreshold => ">=",
            ComparisonOperator::GreaterThanThreshold => ">",
            ComparisonOperator::LessThanThreshold => "<",
            ComparisonOperator::LessThanOrEqualToThreshold => "<=",
        }
    }
}

/// The CloudWatch-style alarm a step policy hangs on.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    /// The metric.
    pub metric: MetricSpec,
    /// How a period's samples become a datapoint.
    pub statistic: Statistic,
    /// Length of one datapoint.
    pub period: Duration,
    /// Threshold the datapoint is compared with.
    pub threshold: f64,
    /// The comparison.
    pub comparison: ComparisonOperator,
    /// Datapoints considered.
    pub evaluation_periods: u32,
    /// Breaching datapoints among them that put the alarm in ALARM ("M of N").
    pub datapoints_to_alarm: u32,
}

/// One step of a step scaling policy. Bounds are relative to the alarm threshold; `None` is
/// unbounded (−∞ below, +∞ above).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepAdjustment {
    /// `MetricIntervalLowerBound`.
    pub lower_bound: Option<f64>,
    /// `MetricIntervalUpperBound`.
    pub upper_bound: Option<f64>,
    /// `ScalingAdjustment`, interpreted by the policy's [`AdjustmentType`].
    pub scaling_adjustment: i64,
}

impl StepAdjustment {
    /// The step that applies when the metric is `metric` and the alarm threshold `threshold`.
    ///
    /// AWS: above the threshold the lower bound is inclusive and the upper exclusive; below it,
    /// the lower bound is exclusive and the upper inclusive.
    pub fn select(
        steps: &[StepAdjustment],
        metric: f64,
        threshold: f64,
    ) -> Option<&StepAdjustment> {
        let breach = metric - threshold;
        let above = breach >= 0.0;
        steps.iter().find(|step| {
            let lower_ok = step.lower_bound.is_none_or(|lower| {
                if above {
                    breach >= lower
                } else {
                    breach > lower
                }
            });
            let upper_ok = step.upper_bound.is_none_or(|upper| {
                if above {
                    breach < upper
                } else {
                    breach <= upper
                }
            });
            lower_ok && upper_ok
        })
    }
}

/// Step scaling: an alarm and the adjustments for how far past it the metric is.
#[derive(Debug, Clone, PartialEq)]
pub struct StepScaling {
    /// The alarm that triggers the policy.
    pub alarm: Alarm,
    /// How adjustments are read.
    pub adjustment_type: AdjustmentType,
    /// Non-overlapping, gap-free steps.
    pub steps: Vec<StepAdjustment>,
    /// Smallest change for `PercentChangeInCapacity`.
    pub min_adjustment_magnitude: Option<u32>,
    /// How the newest period's samples become the value steps are chosen by
    /// (`MetricAggregationType`: Average, Minimum or Maximum; AWS's default Average).
    pub metric_aggregation_type: Statistic,
    /// After a scale-out, a further scale-out applies its adjustment to the capacity before
    /// that scale-out (so +2 then +3 adds 1); after a scale-in, scale-in waits. Default 300 s.
    pub cooldown: Duration,
    /// `aws`: the alarm's periods are clock-aligned and it is evaluated as each ends, as
    /// CloudWatch does; `fast`: evaluated every second over periods ending now. The service's
    /// profile when unset.
    pub profile: Option<TimingProfile>,
}

/// A scheduled action: at the given times, set new capacity bounds (`ScalableTargetAction`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledAction {
    /// Action name, unique per target.
    pub name: String,
    /// When it runs; parse with [`ScheduleExpression::parse`].
    pub schedule: ScheduleExpression,
    /// IANA time zone of the schedule (DST-aware); UTC when unset.
    pub timezone: Option<String>,
    /// A recurring schedule does not run before this.
    pub start_time: Option<SystemTime>,
    /// A recurring schedule does not run after this.
    pub end_time: Option<SystemTime>,
    /// New minimum; capacity below it is raised to it.
    pub min_capacity: Option<u32>,
    /// New maximum; capacity above it is lowered to it.
    pub max_capacity: Option<u32>,
}

impl ScheduledAction {
    /// Checks what the schedule expression's type cannot: that the time zone exists. The
    /// engine reports an action with an unknown zone as a failed activity; config validation
    /// should call this first.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        crate::engine::schedule::time_zone(self.timezone.as_deref()).map(|_| ())
    }
}

/// A scaling policy attached to a scalable target.
///
/// Several policies combine as AWS combines them: scale out if any says out (to the largest
/// capacity), scale in only if all that may scale in agree; scale-in is held during deployments.
#[derive(Debug, Clone, PartialEq)]
pub enum ScalingPolicy {
    /// Hold a metric near a target.
    TargetTracking(TargetTracking),
    /// Adjust in steps when an alarm fires.
    StepScaling(StepScaling),
    /// Change min/max at given times.
    Scheduled(ScheduledAction),
}

/// Target tracking's desired capacity: `ceil(current × metric / target)`.
///
/// `current` is the *running* task count, not the desired count, as the ECS guide says (so a
/// service whose tasks cannot start does not run away). Rounding is up in both directions, which
/// is AWS's conservative rounding: never too little added, never too much removed. From zero
/// running tasks a positive metric asks for one task, AWS's "minimum possible amount".
/// `None` when there is no decision to make: a target that is not positive, or a metric that
/// is not a finite non-negative number (missing data is never read as low load).
/// The result is not bounded by min/max; see [`ScalableTarget::clamp`].
pub fn target_tracking_capacity(current: u32, metric: f64, target: f64) -> Option<u32> {
    if !(target > 0.0 && target.is_finite() && metric >= 0.0 && metric.is_finite()) {
        return None;
    }
    if current == 0 {
        return Some(u32::from(metric > 0.0));
    }
    let exact = f64::from(current) * metric / target;
    // Forgive a thousandth of a task: floating-point noise (3 × 0.7 / 0.7 is 3, not 4), and the
    // jitter of a rate measured over ~1 s samples (40 req/s per task can read 2400.01 per
    // minute against a target of 600, which must ask for 4 tasks, not 5). Far below the 10 %
    // tolerance any real decision has.
    let desired = (exact - 1e-3).ceil().max(0.0);
    Some(desired.min(f64::from(u32::MAX)) as u32)
}

/// The change `PercentChangeInCapacity` makes: `current × percent / 100`, rounded as AWS rounds
/// it — above 1 down (12.7 → 12), between 0 and 1 to 1, between 0 and −1 to −1, below −1 up
/// (−6.67 → −6) — then raised to `min_adjustment_magnitude` in the same direction.
pub fn percent_adjustment(
    current: u32,
    percent: f64,
    min_adjustment_magnitude: Option<u32>,
) -> i64 {
    let exact = f64::from(current) * percent / 100.0;
    let rounded = if exact > 1.0 {
        exact.floor()
    } else if exact > 0.0 {
        1.0
    } else if exact == 0.0 || exact.is_nan() {
        0.0
    } else if exact >= -1.0 {
        -1.0
    } else {
        exact.ceil()
    } as i64;
    match min_adjustment_magnitude.map(i64::from) {
        Some(min) if rounded != 0 && rounded.abs() < min => min * rounded.signum(),
        _ => rounded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_tracking_is_proportional_and_rounds_up() {
        assert_eq!(target_tracking_capacity(2, 100.0, 50.0), Some(4));
        assert_eq!(target_tracking_capacity(3, 60.0, 50.0), Some(4)); // 3.6 → 4
        assert_eq!(target_tracking_capacity(10, 26.0, 50.0), Some(6)); // 5.2 → 6, not 5
        assert_eq!(target_tracking_capacity(1, 2400.01, 600.0), Some(4)); // measurement jitter
        assert_eq!(target_tracking_capacity(1, 2401.0, 600.0), Some(5));
        assert_eq!(target_tracking_capacity(4, 50.0, 50.0), Some(4));
    }

    #[test]
    fn target_tracking_never_removes_so_much_that_the_metric_exceeds_the_target() {
        // For every case: the new count keeps current × metric / new ≤ target, and one task
        // fewer would not (conservative in both directions, and no more than needed).
        for current in 1..=40u32 {
            for metric_tenths in 0..=1500u32 {
                let metric = f64::from(metric_tenths) / 10.0;
                let target = 55.0;
                let new = target_tracking_capacity(current, metric, target).unwrap();
                let load = f64::from(current) * metric;
                assert!(
                    load <= f64::from(new) * target + 1e-6,
                    "{current} {metric} → {new}"
                );
                if new > 0 {
                    assert!(
                        load > f64::from(new - 1) * target + 1e-6,
                        "{current} {metric} → {new}"
                    );
                }
            }
        }
    }

    #[test]
    fn target_tracking_ignores_floating_point_noise() {
        assert_eq!(target_tracking_capacity(3, 0.7, 0.7), Some(3));
        assert_eq!(target_tracking_capacity(10, 0.3, 0.1 + 0.2), Some(10));
    }

    #[test]
    fn target_tracking_from_zero_and_to_zero() {
        assert_eq!(target_tracking_capacity(0, 500.0, 100.0), Some(1));
        assert_eq!(target_tracking_capacity(0, 0.0, 100.0), Some(0));
        assert_eq!(target_tracking_capacity(5, 0.0, 100.0), Some(0));
    }

    #[test]
    fn target_tracking_refuses_meaningless_input() {
        assert_eq!(target_tracking_capacity(2, 50.0, 0.0), None);
        assert_eq!(target_tracking_capacity(2, 50.0, -1.0), None);
        assert_eq!(target_tracking_capacity(2, f64::NAN, 50.0), None);
        assert_eq!(target_tracking_capacity(2, -1.0, 50.0), None);
    }

    #[test]
    fn percent_rounding_follows_the_aws_examples() {
        assert_eq!(percent_adjustment(11, 30.0, None), 3); // 3.3 → 3
        assert_eq!(percent_adjustment(14, 10.0, None), 1); // 1.4 → 1
        assert_eq!(percent_adjustment(100, 12.7, None), 12);
        assert_eq!(percent_adjustment(3, 22.333, None), 1); // 0.67 → 1
        assert_eq!(percent_adjustment(3, -22.333, None), -1); // −0.67 → −1
        assert_eq!(percent_adjustment(3, -222.333, None), -6); // −6.67 → −6
        assert_eq!(percent_adjustment(0, 50.0, None), 0);
    }

    #[test]
    fn min_adjustment_magnitude_raises_small_changes() {
        // "adds 25 percent … minimum amount of 2 … capacity of 4 … adds 2".
        assert_eq!(percent_adjustment(4, 25.0, Some(2)), 2);
        assert_eq!(percent_adjustment(4, -25.0, Some(2)), -2);
        assert_eq!(percent_adjustment(100, 25.0, Some(2)), 25);
    }

    #[test]
    fn adjustment_types_apply() {
        assert_eq!(AdjustmentType::ChangeInCapacity.apply(3, 2, None), 5);
        assert_eq!(AdjustmentType::ChangeInCapacity.apply(3, -5, None), 0);
        assert_eq!(
            AdjustmentType::PercentChangeInCapacity.apply(10, 200, None),
            30
        );
        assert_eq!(AdjustmentType::ExactCapacity.apply(10, 4, None), 4);
    }

    fn step(lower: Option<f64>, upper: Option<f64>, adjustment: i64) -> StepAdjustment {
        StepAdjustment {
            lower_bound: lower,
            upper_bound: upper,
            scaling_adjustment: adjustment,
        }
    }

    #[test]
    fn step_selection_follows_the_worked_example() {
        // Threshold 50 %: out steps 0–10 +0, 10–20 +10 %, 20–∞ +30 %;
        // in steps −10–0 0, −20–−10 −10 %, −∞–−20 −30 %.
        let steps = [
            step(Some(0.0), Some(10.0), 0),
            step(Some(10.0), Some(20.0), 10),
            step(Some(20.0), None, 30),
            step(Some(-10.0), Some(0.0), 0),
            step(Some(-20.0), Some(-10.0), -10),
            step(None, Some(-20.0), -30),
        ];
        let pick =
            |metric| StepAdjustment::select(&steps, metric, 50.0).map(|s| s.scaling_adjustment);
        assert_eq!(pick(55.0), Some(0));
        assert_eq!(pick(60.0), Some(10)); // lower bound inclusive above the threshold
        assert_eq!(pick(70.0), Some(30));
        assert_eq!(pick(40.0), Some(-10)); // upper bound inclusive below the threshold
        assert_eq!(pick(30.0), Some(-30));
        assert_eq!(pick(45.0), Some(0));
    }

    #[test]
    fn clamp_keeps_capacity_in_range() {
        let target = ScalableTarget {
            service: "web".into(),
            min_capacity: 1,
            max_capacity: 10,
            suspended: SuspendedState::default(),
        };
        assert_eq!(target.clamp(0), 1);
        assert_eq!(target.clamp(30), 10);
        assert_eq!(target.clamp(4), 4);
    }

    #[test]
    fn predefined_metric_names_match_aws() {
        assert_eq!(
            PredefinedMetricType::AlbRequestCountPerTarget.as_str(),
            "ALBRequestCountPerTarget"
        );
    }
}
