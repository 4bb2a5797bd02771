//! Step scaling: an alarm, and adjustments chosen by how far past its threshold the metric is.
//!
//! The alarm is the user's (metric, statistic, period, threshold, comparison, M of N). Under
//! `aws` its periods are clock-aligned and it triggers the policy as each period ends while it is
//! in ALARM (CloudWatch re-invokes Auto Scaling actions every period an alarm stays in ALARM);
//! under `fast` it is evaluated every second over periods ending now. When triggered, the
//! newest period aggregated by `MetricAggregationType` picks the step (bounds relative to the
//! threshold, [`StepAdjustment::select`]), and the adjustment applies to the running count.
//!
//! Cooldown, as AWS describes it: within the cooldown after a scale-out, a scale-out applies
//! its adjustment to the capacity *before* that scale-out, so the capacity it added counts
//! (+2 then +3 adds 1); after a scale-in, scale-in waits for the cooldown (under `aws` a
//! scale-out ends that wait; under `fast` a scale-in also waits for the cooldown after a
//! scale-out, so direction never reverses inside it).

use super::alarm::{AlarmRule, AlarmState};
use super::history::{align_down, sub, Alignment, MetricHistory};
use super::profile::EngineSettings;
use super::words::{number, seconds};
use super::{Block, Context, InVote, Vote, Want};
use crate::activity::NotScaledReasonCode;
use crate::scaling::{AdjustmentType, StepAdjustment, StepScaling, TimingProfile};

/// What a step policy remembers between evaluations.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct StepState {
    /// The alarm's state.
    pub alarm: AlarmState,
    /// `aws`: end of the newest period evaluated.
    last_period_end: Option<std::time::SystemTime>,
}

/// One step policy's vote at `ctx.now`.
pub(crate) fn evaluate(
    name: &str,
    policy: &StepScaling,
    history: Option<&MetricHistory>,
    settings: &EngineSettings,
    ctx: &Context<'_>,
    state: &mut StepState,
) -> Vote {
    let profile = settings.step_profile(policy);
    let alarm = &policy.alarm;
    let rule = AlarmRule {
        statistic: alarm.statistic,
        period: alarm.period,
        threshold: alarm.threshold,
        comparison: alarm.comparison,
        evaluation_periods: alarm.evaluation_periods,
        datapoints_to_alarm: alarm.datapoints_to_alarm,
        alignment: match profile {
            TimingProfile::Aws => Alignment::Clock,
            TimingProfile::Fast => Alignment::Sliding,
        },
    };
    if profile == TimingProfile::Aws {
        let boundary = align_down(ctx.now, alarm.period);
        if state.last_period_end == Some(boundary) {
            return Vote::abstain();
        }
        state.last_period_end = Some(boundary);
    }
    let Some(history) = history else {
        state.alarm = AlarmState::InsufficientData;
        return Vote::abstain();
    };
    let evaluation = rule.evaluate(history, ctx.now, state.alarm);
    state.alarm = evaluation.state;
    if evaluation.state != AlarmState::Alarm {
        return Vote::abstain();
    }
    let metric = alarm.metric.to_string();
    let Some(value) = history.aggregate(
        sub(evaluation.period_end, alarm.period),
        evaluation.period_end,
        policy.metric_aggregation_type,
    ) else {
        return Vote::abstain();
    };
    let Some(step) = StepAdjustment::select(&policy.steps, value, alarm.threshold) else {
        return Vote::abstain();
    };
    let adjustment = step.scaling_adjustment;
    let trigger = format!("monitor alarm {name} in state ALARM triggered policy {name}");
    let bounds = format!(
        "[{}, {})",
        step.lower_bound.map_or_else(|| "-∞".to_string(), number),
        step.upper_bound.map_or_else(|| "+∞".to_string(), number)
    );
    let described = format!(
        "{}; {:?} {} is {} from the threshold, in step {bounds}",
        rule.describe(&metric, &evaluation),
        policy.metric_aggregation_type,
        number(value),
        number(value - alarm.threshold)
    );
    let change = |base: u32| {
        let capacity =
            policy
                .adjustment_type
                .apply(base, adjustment, policy.min_adjustment_magnitude);
        let what = match policy.adjustment_type {
            AdjustmentType::ChangeInCapacity => format!("{adjustment:+} tasks"),
            AdjustmentType::PercentChangeInCapacity => match policy.min_adjustment_magnitude {
                Some(min) => format!("{adjustment:+} % (at least {min} tasks)"),
                None => format!("{adjustment:+} %"),
            },
            AdjustmentType::ExactCapacity => format!("exactly {adjustment} tasks"),
        };
        (capacity, format!("{what} on {base} gives {capacity}"))
    };
    let running_capacity = change(ctx.running).0;
    let scales_out = match policy.adjustment_type {
        AdjustmentType::ExactCapacity => running_capacity > ctx.desired,
        _ => adjustment > 0,
    };
    let scales_in = match policy.adjustment_type {
        AdjustmentType::ExactCapacity => running_capacity < ctx.desired,
        _ => adjustment < 0,
    };
    if scales_out {
        let cooldown_base = ctx.clocks.last_out_within(ctx.now, policy.cooldown);
        let (capacity, arithmetic, blocked) = match cooldown_base {
            Some((from, left)) if policy.adjustment_type != AdjustmentType::ExactCapacity => {
                let (capacity, arithmetic) = change(from);
                let arithmetic = format!(
                    "{arithmetic} (within the cooldown of {} the adjustment counts from the {from} \
                     tasks before the last scale-out)",
                    seconds(policy.cooldown)
                );
                let blocked = (capacity <= ctx.desired).then(|| Block {
                    code: NotScaledReasonCode::ScaleOutCooldown,
                    why: format!(
                        "the capacity the last scale-out added already covers this step; the \
                         cooldown has {} left",
                        seconds(left)
                    ),
                });
                (capacity, arithmetic, blocked)
            }
            _ => {
                let (capacity, arithmetic) = change(ctx.running);
                (capacity, format!("{arithmetic} running"), None)
            }
        };
        return Vote {
            out: Some(Want {
                policy: name.to_string(),
                capacity,
                trigger,
                detail: format!("{described}: {arithmetic}"),
                blocked,
                triggered: true,
            }),
            in_vote: InVote::Abstain,
        };
    }
    if scales_in {
        let (capacity, arithmetic) = change(ctx.running);
        // Zero running tasks is no measurement of a service whose tasks are starting.
        if capacity >= ctx.desired || ctx.running == 0 {
            return Vote::abstain();
        }
        let left = match profile {
            TimingProfile::Aws => ctx.clocks.aws_in_cooldown_left(ctx.now, policy.cooldown),
            TimingProfile::Fast => ctx.clocks.any_within(ctx.now, policy.cooldown),
        };
        let blocked = left.map(|left| Block {
            code: NotScaledReasonCode::ScaleInCooldown,
            why: format!("the cooldown has {} left", seconds(left)),
        });
        return Vote {
            out: None,
            in_vote: InVote::Ready(Want {
                policy: name.to_string(),
                capacity,
                trigger,
                detail: format!("{described}: {arithmetic} running"),
                blocked,
                triggered: true,
            }),
        };
    }
    Vote::abstain()
}
