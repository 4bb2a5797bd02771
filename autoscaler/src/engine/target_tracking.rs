//! Target tracking under both profiles.
//!
//! `aws`: two alarms per policy, as Application Auto Scaling creates them. AlarmHigh: the
//! one-minute average above the target for 3 of 3 datapoints; AlarmLow: below 90 % of the target
//! for 15 of 15. When a minute ends with AlarmHigh in ALARM (CloudWatch re-invokes Auto Scaling
//! actions every minute an alarm stays in ALARM) the policy asks for
//! `ceil(running × metric / target)` tasks, metric being the newest datapoint; with AlarmLow in
//! ALARM it is ready to scale in to the same formula, which never removes so much that the
//! metric would exceed the target.
//!
//! `fast`: every second, over the service's *load* — each sample × the running tasks when it
//! was taken, so that a window straddling a scale-out does not count the old per-task values
//! against the new task count. Desired capacity is `ceil(load / target)`.
//! - Normal scale-out: the stable window's average load, when it puts the metric more than
//!   the tolerance above the target.
//! - Panic scale-out: the panic window's average load, when it puts the metric at or above
//!   `panic_threshold × target`; never blocked by a cooldown. That starts panic mode (Knative's):
//!   until a whole stable window passes without reaching the threshold again, capacity follows
//!   the larger of the two windows' loads and never scales in.
//! - Stable-window decisions (normal scale-out, scale-in) need samples covering the whole
//!   stable window; before that only the panic window acts.
//! - Scale-in: only when the stable window is fully covered by samples, to
//!   `ceil(highest panic-window average load in the stable window / target)`, at most halving
//!   (`max_scale_in_ratio`), and not within the scale-in cooldown after any scaling.

use std::time::{Duration, SystemTime};

use super::alarm::{AlarmEvaluation, AlarmRule, AlarmState};
use super::history::{align_down, sub, Alignment, MetricHistory, Sample};
use super::profile::{EngineSettings, FastParameters};
use super::words::{number, seconds};
use super::{Block, Context, InVote, Vote, Want};
use crate::activity::NotScaledReasonCode;
use crate::scaling::{
    target_tracking_capacity, ComparisonOperator, Statistic, TargetTracking, TimingProfile,
};

/// What a target-tracking policy remembers between evaluations.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TrackingState {
    /// `aws`: AlarmHigh's state.
    pub high: AlarmState,
    /// `aws`: AlarmLow's state.
    pub low: AlarmState,
    /// `aws`: end of the newest period evaluated.
    last_period_end: Option<SystemTime>,
    /// `aws`: the scale-in the last evaluation found, kept until the next minute so that the
    /// policy's vote stands between evaluations.
    scale_in: Option<Basis>,
    /// `aws`: why the policy is not ready to scale in, in words.
    not_ready: String,
    /// `fast`: when panic mode began.
    panic_since: Option<SystemTime>,
    /// `fast`: the last time the panic window reached the panic threshold.
    panic_over_at: Option<SystemTime>,
}

/// A capacity with the words that justify it.
#[derive(Debug, Clone, PartialEq)]
struct Basis {
    capacity: u32,
    trigger: String,
    detail: String,
}

/// One target-tracking policy's vote at `ctx.now`.
pub(crate) fn evaluate(
    name: &str,
    policy: &TargetTracking,
    history: Option<&MetricHistory>,
    settings: &EngineSettings,
    ctx: &Context<'_>,
    state: &mut TrackingState,
) -> Vote {
    match settings.tracking_profile(policy) {
        TimingProfile::Aws => evaluate_aws(name, policy, history, settings, ctx, state),
        TimingProfile::Fast => evaluate_fast(name, policy, history, settings, ctx, state),
    }
}

fn alarm_name(ctx: &Context<'_>, name: &str, which: &str) -> String {
    format!("TargetTracking-{}-{which}-{name}", ctx.service)
}

fn evaluate_aws(
    name: &str,
    policy: &TargetTracking,
    history: Option<&MetricHistory>,
    settings: &EngineSettings,
    ctx: &Context<'_>,
    state: &mut TrackingState,
) -> Vote {
    let aws = &settings.aws;
    let target = policy.target_value;
    let metric = policy.metric.to_string();
    let boundary = align_down(ctx.now, aws.period);
    let mut out = None;
    // CloudWatch evaluates once a period; between evaluations the policy's scale-in vote
    // stands (for the all-agree rule) but does not trigger anything by itself.
    let evaluated_now = state.last_period_end != Some(boundary);
    if evaluated_now {
        state.last_period_end = Some(boundary);
        let high_rule = AlarmRule {
            statistic: Statistic::Average,
            period: aws.period,
            threshold: target,
            comparison: ComparisonOperator::GreaterThanThreshold,
            evaluation_periods: aws.high_datapoints,
            datapoints_to_alarm: aws.high_datapoints,
            alignment: Alignment::Clock,
        };
        let low_rule = AlarmRule {
            threshold: target * aws.low_threshold_ratio,
            comparison: ComparisonOperator::LessThanThreshold,
            evaluation_periods: aws.low_datapoints,
            datapoints_to_alarm: aws.low_datapoints,
            ..high_rule
        };
        let empty = MetricHistory::new(Duration::ZERO);
        let history = history.unwrap_or(&empty);
        let high = high_rule.evaluate(history, ctx.now, state.high);
        let low = low_rule.evaluate(history, ctx.now, state.low);
        state.high = high.state;
        state.low = low.state;
        if high.state == AlarmState::Alarm {
            let alarm = alarm_name(ctx, name, "AlarmHigh");
            out = aws_basis(name, &alarm, &high_rule, &high, &metric, target, ctx).map(|basis| {
                let mut detail = basis.detail;
                if let Some(left) = ctx
                    .clocks
                    .out_cooldown_left(ctx.now, settings.scale_out_cooldown(policy))
                {
                    detail.push_str(&format!(
                        "; within the scale-out cooldown ({} left) only a larger scale-out \
                         than the last one goes ahead",
                        seconds(left)
                    ));
                }
                Want {
                    policy: name.to_string(),
                    capacity: basis.capacity,
                    trigger: basis.trigger,
                    detail,
                    blocked: None,
                    triggered: true,
                }
            });
        }
        let low_alarm = alarm_name(ctx, name, "AlarmLow");
        state.scale_in = None;
        if low.state == AlarmState::Alarm {
            state.scale_in = aws_basis(name, &low_alarm, &low_rule, &low, &metric, target, ctx);
        }
        state.not_ready = format!(
            "monitor alarm {low_alarm} is in state {} ({}; it needs {} of {} below {}, 90 % of \
             the target)",
            low.state.as_str(),
            low_rule.describe(&metric, &low),
            aws.low_datapoints,
            aws.low_datapoints,
            number(low_rule.threshold)
        );
    }
    let in_vote = if policy.disable_scale_in {
        InVote::Abstain
    } else {
        match &state.scale_in {
            None => InVote::NotReady {
                policy: name.to_string(),
                why: state.not_ready.clone(),
            },
            Some(basis) => {
                let cooldown = settings.scale_in_cooldown(policy);
                scale_in_vote(
                    name,
                    basis,
                    ctx,
                    ctx.clocks.aws_in_cooldown_left(ctx.now, cooldown),
                    evaluated_now,
                )
            }
        }
    };
    Vote { out, in_vote }
}

/// The capacity an `aws` alarm in ALARM asks for, from its newest datapoint.
fn aws_basis(
    name: &str,
    alarm: &str,
    rule: &AlarmRule,
    evaluation: &AlarmEvaluation,
    metric: &str,
    target: f64,
    ctx: &Context<'_>,
) -> Option<Basis> {
    let value = evaluation.latest()?;
    let capacity = target_tracking_capacity(ctx.running, value, target)?;
    let arithmetic = if ctx.running == 0 {
        format!("no running task, so the minimum possible amount: {capacity}")
    } else {
        format!(
            "{} running tasks × {} / {} = {}, rounded up to {capacity}",
            ctx.running,
            number(value),
            number(target),
            number(f64::from(ctx.running) * value / target)
        )
    };
    Some(Basis {
        capacity,
        trigger: format!("monitor alarm {alarm} in state ALARM triggered policy {name}"),
        detail: format!("{}; {arithmetic}", rule.describe(metric, evaluation)),
    })
}

/// A ready-to-scale-in basis as a vote, once the running count and cooldown allow it.
fn scale_in_vote(
    name: &str,
    basis: &Basis,
    ctx: &Context<'_>,
    cooldown_left: Option<Duration>,
    triggered: bool,
) -> InVote {
    if ctx.running == 0 {
        return InVote::NotReady {
            policy: name.to_string(),
            why: format!("policy {name} has no running task to measure"),
        };
    }
    if basis.capacity >= ctx.desired {
        return InVote::NotReady {
            policy: name.to_string(),
            why: format!(
                "policy {name} needs {} tasks, not fewer than the desired {} ({})",
                basis.capacity, ctx.desired, basis.detail
            ),
        };
    }
    let blocked = cooldown_left.map(|left| Block {
        code: NotScaledReasonCode::ScaleInCooldown,
        why: format!("the scale-in cooldown has {} left", seconds(left)),
    });
    InVote::Ready(Want {
        policy: name.to_string(),
        capacity: basis.capacity,
        trigger: basis.trigger.clone(),
        detail: basis.detail.clone(),
        blocked,
        triggered,
    })
}

fn evaluate_fast(
    name: &str,
    policy: &TargetTracking,
    history: Option<&MetricHistory>,
    settings: &EngineSettings,
    ctx: &Context<'_>,
    state: &mut TrackingState,
) -> Vote {
    let fast = settings.fast_parameters(policy);
    let target = policy.target_value;
    let metric = policy.metric.to_string();
    let not_ready = |why: String| Vote {
        out: None,
        in_vote: if policy.disable_scale_in {
            InVote::Abstain
        } else {
            InVote::NotReady {
                policy: name.to_string(),
                why,
            }
        },
    };
    let Some(history) = history else {
        return not_ready(format!("policy {name} has no metric history"));
    };
    if !(target > 0.0 && target.is_finite()) {
        return not_ready(format!("policy {name} has no positive target value"));
    }
    let load = |sample: &Sample| sample.value * f64::from(ctx.capacity_log.at(sample.at).max(1));
    let mean_load = |window: Duration, until: SystemTime| {
        let (sum, count) = history
            .window(sub(until, window), until)
            .fold((0.0, 0u32), |(sum, count), sample| {
                (sum + load(sample), count + 1)
            });
        (count > 0).then(|| sum / f64::from(count))
    };
    let (Some(panic_load), Some(stable_load)) = (
        mean_load(fast.panic_window, ctx.now),
        mean_load(fast.stable_window, ctx.now),
    ) else {
        return not_ready(format!(
            "policy {name} has no {metric} sample in the last {}",
            seconds(fast.panic_window)
        ));
    };
    let covered = coverage(name, &metric, &fast, history, ctx.now);
    let per_task = f64::from(ctx.running.max(1));
    let wanted = |load: f64| target_tracking_capacity(1, load, target).unwrap_or(0);
    let panic_metric = panic_load / per_task;
    let stable_metric = stable_load / per_task;

    // Panic mode, as Knative's: entered when the panic window reaches the threshold, left only
    // after a whole stable window below it; while in it, capacity follows the larger of the two
    // windows and never decreases.
    let over_threshold = panic_metric >= fast.panic_threshold * target;
    if over_threshold {
        state.panic_over_at = Some(ctx.now);
        state.panic_since.get_or_insert(ctx.now);
    }
    let panicking = state.panic_over_at.is_some_and(|at| {
        ctx.now.duration_since(at).unwrap_or(Duration::ZERO) < fast.stable_window
    });
    if !panicking {
        state.panic_over_at = None;
        state.panic_since = None;
    }

    let mut out = None;
    if panicking {
        let basis = if covered.is_ok() {
            panic_load.max(stable_load)
        } else {
            panic_load
        };
        let capacity = wanted(basis);
        if capacity > ctx.desired {
            let why = if over_threshold {
                format!(
                    "{metric} averaged {} per running task over the last {} with {} running, at \
                     least {} × the target {}",
                    number(panic_metric),
                    seconds(fast.panic_window),
                    ctx.running,
                    number(fast.panic_threshold),
                    number(target)
                )
            } else {
                format!(
                    "panic mode (since {}) holds for a stable window of {} after {metric} last \
                     reached {} × the target {} over the panic window",
                    super::schedule::timestamp(state.panic_since.unwrap_or(ctx.now)),
                    seconds(fast.stable_window),
                    number(fast.panic_threshold),
                    number(target)
                )
            };
            out = Some(Want {
                policy: name.to_string(),
                capacity,
                trigger: format!("policy {name} (fast profile, panic window)"),
                detail: format!(
                    "{why}; load {} / {} = {}, rounded up to {capacity}",
                    number(basis),
                    number(target),
                    number(basis / target)
                ),
                blocked: None,
                triggered: true,
            });
        }
    } else if covered.is_ok() && stable_metric > target * (1.0 + fast.scale_out_tolerance) {
        let capacity = wanted(stable_load);
        if capacity > ctx.desired {
            let cooldown = settings.scale_out_cooldown(policy);
            let blocked = ctx
                .clocks
                .in_at_within(ctx.now, cooldown)
                .map(|left| Block {
                    code: NotScaledReasonCode::ScaleOutCooldown,
                    why: format!(
                    "the last scale-in was less than the scale-out cooldown of {} ago ({} left); \
                     only the panic window may scale out now",
                    seconds(cooldown),
                    seconds(left)
                ),
                });
            out = Some(Want {
                policy: name.to_string(),
                capacity,
                trigger: format!("policy {name} (fast profile, stable window)"),
                detail: format!(
                    "{metric} averaged {} per running task over the last {} with {} running, \
                     more than {} % above the target {}; load {} / {} = {}, rounded up to \
                     {capacity}",
                    number(stable_metric),
                    seconds(fast.stable_window),
                    ctx.running,
                    number(fast.scale_out_tolerance * 100.0),
                    number(target),
                    number(stable_load),
                    number(target),
                    number(stable_load / target)
                ),
                blocked,
                triggered: true,
            });
        }
    }

    let in_vote = if policy.disable_scale_in {
        InVote::Abstain
    } else if panicking {
        InVote::NotReady {
            policy: name.to_string(),
            why: format!(
                "policy {name} is in panic mode, which never scales in and lasts a stable window \
                 of {} after {metric} last reached {} × the target",
                seconds(fast.stable_window),
                number(fast.panic_threshold)
            ),
        }
    } else if let Err(why) = covered {
        InVote::NotReady {
            policy: name.to_string(),
            why,
        }
    } else {
        let cooldown = settings.scale_in_cooldown(policy);
        fast_scale_in(name, &metric, target, &fast, history, ctx, &load, cooldown)
    };
    Vote { out, in_vote }
}

/// Whether samples cover the whole stable window: no stretch longer than the panic window
/// without one, from the window's start to now. Stable-window decisions need it; missing data
/// is never evidence.
fn coverage(
    name: &str,
    metric: &str,
    fast: &FastParameters,
    history: &MetricHistory,
    now: SystemTime,
) -> Result<(), String> {
    let window_start = sub(now, fast.stable_window);
    let mut previous = window_start;
    let times = history.window(window_start, now).map(|sample| sample.at);
    for time in times.chain([now]) {
        let gap = time.duration_since(previous).unwrap_or(Duration::ZERO);
        if gap > fast.panic_window {
            return Err(format!(
                "policy {name} waits for {metric} samples to cover the whole stable window of {} \
                 (none for {} before {})",
                seconds(fast.stable_window),
                seconds(gap),
                super::schedule::timestamp(time)
            ));
        }
        previous = time;
    }
    Ok(())
}

/// The `fast` scale-in vote: the covered stable window must show for its whole length that
/// fewer tasks keep the metric at or below the target.
#[allow(clippy::too_many_arguments)]
fn fast_scale_in(
    name: &str,
    metric: &str,
    target: f64,
    fast: &FastParameters,
    history: &MetricHistory,
    ctx: &Context<'_>,
    load: &dyn Fn(&Sample) -> f64,
    cooldown: Duration,
) -> InVote {
    if ctx.running == 0 {
        return InVote::NotReady {
            policy: name.to_string(),
            why: format!("policy {name} has no running task to measure"),
        };
    }
    // The highest short-window average of the load anywhere in the stable window (the short
    // windows clipped to it: only what the stable window shows counts).
    let window_start = sub(ctx.now, fast.stable_window);
    let highest = history
        .window(window_start, ctx.now)
        .map(|sample| {
            let (sum, count) = history
                .window(
                    sub(sample.at, fast.panic_window).max(window_start),
                    sample.at,
                )
                .fold((0.0, 0u32), |(sum, count), s| (sum + load(s), count + 1));
            sum / f64::from(count.max(1))
        })
        .fold(0.0, f64::max);
    let needed = target_tracking_capacity(1, highest, target).unwrap_or(ctx.desired);
    let floor = ((f64::from(ctx.desired) / fast.max_scale_in_ratio).ceil() as u32)
        .min(ctx.desired.saturating_sub(1));
    let capacity = needed.max(floor);
    let mut detail = format!(
        "over the whole last {} the highest {} average load of {metric} was {} ({} per running \
         task with {} running); {} / {} = {}, rounded up to {needed}",
        seconds(fast.stable_window),
        seconds(fast.panic_window),
        number(highest),
        number(highest / f64::from(ctx.running)),
        ctx.running,
        number(highest),
        number(target),
        number(highest / target)
    );
    if capacity > needed {
        detail.push_str(&format!(
            "; one scale-in keeps at least {capacity} (at most ÷{})",
            number(fast.max_scale_in_ratio)
        ));
    }
    let basis = Basis {
        capacity,
        trigger: format!("policy {name} (fast profile, stable window)"),
        detail,
    };
    scale_in_vote(
        name,
        &basis,
        ctx,
        ctx.clocks.any_within(ctx.now, cooldown),
        true,
    )
}
