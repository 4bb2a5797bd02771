//! The scaling decision engine: a pure function of metric history and time.
//!
//! [`Engine::evaluate`] takes the time, the scalable target, the desired and running counts,
//! whether a deployment is in progress, and each policy with its metric history, and returns a
//! [`Decision`]: the new desired count and the [`ScalingActivity`] records explaining it,
//! including "not scaled" ones. The engine keeps only what AWS keeps between evaluations —
//! alarm states, cooldown clocks, scheduled actions' next runs, bounds set by scheduled actions,
//! and the running counts it was told (so the `fast` profile can turn per-task metrics into
//! load) — so the same sequence of inputs always gives the same decisions. It does no I/O and
//! reads no clock; the caller evaluates it once a second.
//!
//! One evaluation:
//! 1. Scheduled actions that are due set new min/max capacity; desired moves into the range.
//! 2. The desired count is brought into `[min, max]` if it is outside (AWS clamps on
//!    registration).
//! 3. Each target-tracking and step policy votes ([`target_tracking`], [`step`]).
//! 4. Votes combine as AWS combines policies: scale out if any policy wants out, to the largest
//!    capacity asked for; scale in only if every policy that may scale in is ready, to the
//!    largest capacity among them; a policy that wants out vetoes scale-in. Scale-in is held
//!    during deployments, and suspended flags hold their direction.
//!
//! See docs/autoscaling.md for the algorithms and where they differ from AWS.

pub mod alarm;
pub mod cron;
pub mod history;
pub mod profile;
pub mod schedule;
pub mod step;
pub mod target_tracking;
mod words;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Serialize;

pub use alarm::AlarmState;
pub use history::{MetricHistory, Sample};
pub use profile::{AwsParameters, EngineSettings, FastParameters};
pub use schedule::{CronError, CronExpression, ScheduleError, ScheduleExpression};

use crate::activity::{NotScaledReason, NotScaledReasonCode, ScalingActivity, StatusCode};
use crate::scaling::{
    ScalableTarget, ScalingPolicy, ScheduledAction, StepScaling, SuspendedState, TargetTracking,
    TimingProfile,
};
use step::StepState;
use target_tracking::TrackingState;

/// A policy as the engine sees it: its name (unique per service), its definition, and the
/// history of the metric it watches (`None` for scheduled actions, or while no sample exists).
#[derive(Debug, Clone, Copy)]
pub struct PolicyInput<'a> {
    /// Unique per service; the engine keys its state by it.
    pub name: &'a str,
    /// The policy.
    pub policy: &'a ScalingPolicy,
    /// Its metric's history.
    pub metric: Option<&'a MetricHistory>,
}

/// Everything one evaluation depends on besides the time.
#[derive(Debug, Clone, Copy)]
pub struct EvaluationInputs<'a> {
    /// The scalable target: configured min/max and suspended flags.
    pub target: &'a ScalableTarget,
    /// The service's desired count now.
    pub desired_capacity: u32,
    /// Its running task count: target tracking's starting point, as on ECS.
    pub running_capacity: u32,
    /// Whether a deployment is in progress; scale-in waits for it.
    pub deployment_in_progress: bool,
    /// The policies, in configuration order.
    pub policies: &'a [PolicyInput<'a>],
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// The desired count before this evaluation.
    pub previous_desired_capacity: u32,
    /// The desired count to set; equal to the previous one when nothing changes.
    pub desired_capacity: u32,
    /// Minimum capacity in force (the configured one, or a scheduled action's).
    pub min_capacity: u32,
    /// Maximum capacity in force.
    pub max_capacity: u32,
    /// What was decided, in order: scheduled actions, bound corrections, policy scaling or
    /// "not scaled" records.
    pub activities: Vec<ScalingActivity>,
}

impl Decision {
    /// Whether the desired count changes.
    pub fn changed(&self) -> bool {
        self.desired_capacity != self.previous_desired_capacity
    }
}

/// How long a policy's metric history must reach back for the policy's windows and
/// datapoints; size [`MetricHistory::new`] with it.
pub fn retention_for(policy: &ScalingPolicy, settings: &EngineSettings) -> Duration {
    match policy {
        ScalingPolicy::TargetTracking(tracking) => match settings.tracking_profile(tracking) {
            TimingProfile::Aws => {
                let datapoints = settings
                    .aws
                    .high_datapoints
                    .max(settings.aws.low_datapoints);
                settings.aws.period * (datapoints + 1)
            }
            TimingProfile::Fast => {
                let fast = settings.fast_parameters(tracking);
                fast.stable_window + fast.panic_window + Duration::from_secs(1)
            }
        },
        ScalingPolicy::StepScaling(step) => {
            step.alarm.period * (step.alarm.evaluation_periods.max(1) + 1)
        }
        ScalingPolicy::Scheduled(_) => Duration::ZERO,
    }
}

/// Direction of a capacity change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Out,
    In,
}

/// A capacity a policy asks for, with its reasons in words.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Want {
    /// The policy's name.
    pub policy: String,
    /// The desired count it asks for, before min/max.
    pub capacity: u32,
    /// "monitor alarm … in state ALARM triggered policy …" or "policy … (fast profile, …)".
    pub trigger: String,
    /// The metric values and arithmetic behind `capacity`.
    pub detail: String,
    /// Set when the policy's own cooldown holds the change.
    pub blocked: Option<Block>,
    /// Whether the policy was triggered in this evaluation. An `aws` policy's scale-in vote
    /// stands between its once-a-minute evaluations but acts only when they happen.
    pub triggered: bool,
}

/// Why a wanted change is held.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Block {
    pub code: NotScaledReasonCode,
    pub why: String,
}

/// A policy's position on scaling in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum InVote {
    /// The policy does not take part (scale-in disabled, or a step policy not triggered).
    Abstain,
    /// Ready to scale in to this capacity.
    Ready(Want),
    /// Not ready; scale-in waits for it.
    NotReady { policy: String, why: String },
}

/// A policy's vote in one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Vote {
    pub out: Option<Want>,
    pub in_vote: InVote,
}

impl Vote {
    fn abstain() -> Self {
        Vote {
            out: None,
            in_vote: InVote::Abstain,
        }
    }
}

/// When the target last scaled by policy: the cooldown clocks.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Clocks {
    /// Recent policy scale-outs, oldest first: when, and from which desired count. Bounded.
    outs: VecDeque<(SystemTime, u32)>,
    /// The last policy scale-in.
    last_in: Option<SystemTime>,
}

/// A "not scaled" outcome that stops for longer than this and comes back is recorded again;
/// while it persists (an `aws` alarm repeats it every minute) it is recorded once.
const NOT_SCALED_LAPSE: Duration = Duration::from_secs(300);

/// How many scale-outs [`Clocks`] remembers; more than any cooldown sees in practice.
const REMEMBERED_SCALE_OUTS: usize = 64;

fn left(now: SystemTime, at: SystemTime, cooldown: Duration) -> Option<Duration> {
    let elapsed = now.duration_since(at).unwrap_or(Duration::ZERO);
    (elapsed < cooldown).then(|| cooldown - elapsed)
}

impl Clocks {
    fn record_out(&mut self, at: SystemTime, from: u32) {
        if self.outs.len() == REMEMBERED_SCALE_OUTS {
            self.outs.pop_front();
        }
        self.outs.push_back((at, from));
    }

    fn last_out(&self) -> Option<SystemTime> {
        self.outs.back().map(|(at, _)| *at)
    }

    /// Time left of a scale-out cooldown after the last scale-out.
    pub fn out_cooldown_left(&self, now: SystemTime, cooldown: Duration) -> Option<Duration> {
        self.last_out().and_then(|at| left(now, at, cooldown))
    }

    /// Within a scale-out cooldown: the desired count before the first scale-out inside the
    /// cooldown window (the capacity every scale-out since added counts), and the time left
    /// after the last one.
    pub fn last_out_within(&self, now: SystemTime, cooldown: Duration) -> Option<(u32, Duration)> {
        let left_after_last = self.out_cooldown_left(now, cooldown)?;
        let (_, from) = self
            .outs
            .iter()
            .find(|(at, _)| left(now, *at, cooldown).is_some())?;
        Some((*from, left_after_last))
    }

    /// Time left of a cooldown after the last scale-in.
    pub fn in_at_within(&self, now: SystemTime, cooldown: Duration) -> Option<Duration> {
        self.last_in.and_then(|at| left(now, at, cooldown))
    }

    /// AWS's scale-in cooldown: after a scale-in, unless a scale-out came since.
    pub fn aws_in_cooldown_left(&self, now: SystemTime, cooldown: Duration) -> Option<Duration> {
        let last_in = self.last_in?;
        if self.last_out().is_some_and(|out| out >= last_in) {
            return None;
        }
        left(now, last_in, cooldown)
    }

    /// Time left of a cooldown after the last scaling in either direction.
    pub fn any_within(&self, now: SystemTime, cooldown: Duration) -> Option<Duration> {
        let after_out = self.out_cooldown_left(now, cooldown);
        let after_in = self.in_at_within(now, cooldown);
        after_out.max(after_in)
    }
}

/// The running counts the engine was told, so a sample can be scaled by the running count of
/// its time.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CapacityLog {
    entries: VecDeque<(SystemTime, u32)>,
}

impl CapacityLog {
    fn record(&mut self, now: SystemTime, running: u32, retention: Duration) {
        if self.entries.back().is_some_and(|(at, _)| *at > now) {
            self.entries.clear();
        }
        if self.entries.back().map(|(_, count)| *count) != Some(running) {
            self.entries.push_back((now, running));
        }
        let horizon = history::sub(now, retention);
        // Keep the newest entry at or before the horizon: it says what ran at the horizon.
        while self.entries.len() > 1 && self.entries[1].0 <= horizon {
            self.entries.pop_front();
        }
    }

    /// The running count at `time`: the newest record at or before it, else the oldest.
    pub fn at(&self, time: SystemTime) -> u32 {
        let index = self.entries.partition_point(|(at, _)| *at <= time);
        let entry = if index == 0 {
            self.entries.front()
        } else {
            self.entries.get(index - 1)
        };
        entry.map_or(0, |(_, count)| *count)
    }
}

/// What policies see of the service in one evaluation.
pub(crate) struct Context<'a> {
    pub now: SystemTime,
    pub service: &'a str,
    /// Desired count after scheduled actions and bounds.
    pub desired: u32,
    pub running: u32,
    pub clocks: &'a Clocks,
    pub capacity_log: &'a CapacityLog,
}

/// A policy's remembered state, with the definition it belongs to (a changed definition
/// starts afresh).
#[derive(Debug, Clone, PartialEq)]
enum PolicyState {
    Tracking(TargetTracking, TrackingState),
    Step(StepScaling, StepState),
}

/// A scheduled action's remembered state.
#[derive(Debug, Clone)]
struct ScheduleState {
    definition: ScheduledAction,
    zone: Result<TimeZone, ScheduleError>,
    /// When `rate` schedules without a start time start counting: when the engine first saw
    /// the action.
    anchor: Timestamp,
    next_due: Option<Timestamp>,
}

impl ScheduleState {
    fn new(definition: &ScheduledAction, now: Timestamp) -> Self {
        let zone = schedule::time_zone(definition.timezone.as_deref());
        let mut state = ScheduleState {
            definition: definition.clone(),
            zone,
            anchor: now,
            next_due: None,
        };
        state.next_due = state.next_at_or_after(now);
        state
    }

    fn next_at_or_after(&self, from: Timestamp) -> Option<Timestamp> {
        let zone = self.zone.as_ref().ok()?;
        let start = self.definition.start_time.map(schedule::timestamp);
        let end = self.definition.end_time.map(schedule::timestamp);
        let from = start.map_or(from, |start| from.max(start));
        let anchor = start.unwrap_or(self.anchor);
        let next = self
            .definition
            .schedule
            .next_at_or_after(from, zone, anchor)?;
        (end.is_none_or(|end| next <= end)).then_some(next)
    }
}

/// A policy's decision outcome before it becomes an activity.
enum Outcome {
    Scale {
        direction: Direction,
        to: u32,
        want: Want,
        note: String,
    },
    NotScaled {
        code: NotScaledReasonCode,
        want: Want,
        why: String,
        policies: Vec<String>,
    },
}

/// The decision engine of one service. Create it once per scalable target and call
/// [`Engine::evaluate`] every second.
#[derive(Debug, Clone)]
pub struct Engine {
    settings: EngineSettings,
    policies: HashMap<String, PolicyState>,
    schedules: HashMap<String, ScheduleState>,
    clocks: Clocks,
    capacity_log: CapacityLog,
    /// The configured bounds last seen; a change is a new RegisterScalableTarget and drops
    /// bounds set by scheduled actions.
    configured_bounds: Option<(u32, u32)>,
    scheduled_bounds: Option<(u32, u32)>,
    /// The last "not scaled" outcome and when it last occurred, so that an outcome that
    /// persists is recorded once, not every second.
    last_not_scaled: Option<(String, SystemTime)>,
    activity_sequence: u64,
}

impl Engine {
    /// An engine with these settings and no history.
    pub fn new(settings: EngineSettings) -> Self {
        Engine {
            settings,
            policies: HashMap::new(),
            schedules: HashMap::new(),
            clocks: Clocks::default(),
            capacity_log: CapacityLog::default(),
            configured_bounds: None,
            scheduled_bounds: None,
            last_not_scaled: None,
            activity_sequence: 0,
        }
    }

    /// The settings the engine was made with.
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// The alarm states of a policy, by alarm name suffix: `AlarmHigh`/`AlarmLow` for an `aws`
    /// target-tracking policy, `Alarm` for a step policy; empty for others. For the admin API.
    pub fn alarm_states(&self, policy: &str) -> Vec<(&'static str, AlarmState)> {
        match self.policies.get(policy) {
            Some(PolicyState::Tracking(definition, state))
                if self.settings.tracking_profile(definition) == TimingProfile::Aws =>
            {
                vec![("AlarmHigh", state.high), ("AlarmLow", state.low)]
            }
            Some(PolicyState::Step(_, state)) => vec![("Alarm", state.alarm)],
            _ => Vec::new(),
        }
    }

    /// Decides at `now`. Deterministic: the same inputs after the same history give the same
    /// decision.
    pub fn evaluate(&mut self, now: SystemTime, inputs: &EvaluationInputs<'_>) -> Decision {
        let target = inputs.target;
        let service = target.service.as_str();
        let longest = inputs
            .policies
            .iter()
            .map(|input| retention_for(input.policy, &self.settings))
            .max()
            .unwrap_or(Duration::ZERO);
        self.capacity_log
            .record(now, inputs.running_capacity, longest);

        let configured = (
            target.min_capacity,
            target.max_capacity.max(target.min_capacity),
        );
        if self.configured_bounds != Some(configured) {
            self.configured_bounds = Some(configured);
            self.scheduled_bounds = None;
        }
        let mut activities = Vec::new();
        let mut desired = inputs.desired_capacity;

        self.run_scheduled_actions(now, inputs, &mut desired, &mut activities);

        let (min, max) = self.bounds();
        let clamped = desired.clamp(min, max);
        if clamped != desired {
            let (relation, bound) = if desired < min {
                ("below the minimum", min)
            } else {
                ("above the maximum", max)
            };
            let activity = self.activity(
                now,
                service,
                format!("Setting desired count to {clamped}."),
                format!(
                    "the desired count {desired} was {relation} capacity {bound} of the scalable \
                     target, changing the desired capacity from {desired} to {clamped}"
                ),
                desired,
                clamped,
                None,
            );
            activities.push(activity);
            desired = clamped;
        }

        let votes = self.collect_votes(now, inputs, desired);
        if let Some(outcome) = combine(
            &votes,
            desired,
            min,
            max,
            target.suspended,
            inputs.deployment_in_progress,
        ) {
            match outcome {
                Outcome::Scale {
                    direction,
                    to,
                    want,
                    note,
                } => {
                    let cause = format!(
                        "{} changing the desired capacity from {desired} to {to}. {}{note}",
                        want.trigger, want.detail
                    );
                    let activity = self.activity(
                        now,
                        service,
                        format!("Setting desired count to {to}."),
                        cause,
                        desired,
                        to,
                        None,
                    );
                    activities.push(activity);
                    match direction {
                        Direction::Out => self.clocks.record_out(now, desired),
                        Direction::In => self.clocks.last_in = Some(now),
                    }
                    self.last_not_scaled = None;
                    desired = to;
                }
                Outcome::NotScaled {
                    code,
                    want,
                    why,
                    policies,
                } => {
                    let key = format!("{code}|{desired}|{min}|{max}|{}", policies.join(","));
                    let repeated = self.last_not_scaled.as_ref().is_some_and(|(last, seen)| {
                        *last == key
                            && now.duration_since(*seen).unwrap_or(Duration::ZERO)
                                <= NOT_SCALED_LAPSE
                    });
                    self.last_not_scaled = Some((key, now));
                    if !repeated {
                        let cause = format!(
                            "{} would change the desired capacity from {desired} to {}. {}",
                            want.trigger, want.capacity, want.detail
                        );
                        let reason = NotScaledReason {
                            code,
                            current_capacity: Some(desired),
                            min_capacity: Some(min),
                            max_capacity: Some(max),
                        };
                        let activity = self.activity(
                            now,
                            service,
                            format!("Not scaled: desired count stays {desired}."),
                            cause,
                            desired,
                            desired,
                            Some((reason, format!("Not scaled ({code}): {why}."))),
                        );
                        activities.push(activity);
                    }
                }
            }
        }

        Decision {
            previous_desired_capacity: inputs.desired_capacity,
            desired_capacity: desired,
            min_capacity: min,
            max_capacity: max,
            activities,
        }
    }

    fn bounds(&self) -> (u32, u32) {
        self.scheduled_bounds
            .or(self.configured_bounds)
            .unwrap_or((0, u32::MAX))
    }

    fn collect_votes(
        &mut self,
        now: SystemTime,
        inputs: &EvaluationInputs<'_>,
        desired: u32,
    ) -> Vec<Vote> {
        let mut states = std::mem::take(&mut self.policies);
        let mut kept = HashMap::new();
        let mut votes = Vec::new();
        for input in inputs.policies {
            let ctx = Context {
                now,
                service: &inputs.target.service,
                desired,
                running: inputs.running_capacity,
                clocks: &self.clocks,
                capacity_log: &self.capacity_log,
            };
            let vote = match input.policy {
                ScalingPolicy::TargetTracking(policy) => {
                    let mut state = match states.remove(input.name) {
                        Some(PolicyState::Tracking(definition, state)) if definition == *policy => {
                            state
                        }
                        _ => TrackingState::default(),
                    };
                    let vote = target_tracking::evaluate(
                        input.name,
                        policy,
                        input.metric,
                        &self.settings,
                        &ctx,
                        &mut state,
                    );
                    kept.insert(
                        input.name.to_string(),
                        PolicyState::Tracking(policy.clone(), state),
                    );
                    vote
                }
                ScalingPolicy::StepScaling(policy) => {
                    let mut state = match states.remove(input.name) {
                        Some(PolicyState::Step(definition, state)) if definition == *policy => {
                            state
                        }
                        _ => StepState::default(),
                    };
                    let vote = step::evaluate(
                        input.name,
                        policy,
                        input.metric,
                        &self.settings,
                        &ctx,
                        &mut state,
                    );
                    kept.insert(
                        input.name.to_string(),
                        PolicyState::Step(policy.clone(), state),
                    );
                    vote
                }
                ScalingPolicy::Scheduled(_) => continue,
            };
            votes.push(vote);
        }
        self.policies = kept;
        votes
    }

    fn run_scheduled_actions(
        &mut self,
        now: SystemTime,
        inputs: &EvaluationInputs<'_>,
        desired: &mut u32,
        activities: &mut Vec<ScalingActivity>,
    ) {
        let service = inputs.target.service.as_str();
        let now_ts = schedule::timestamp(now);
        let mut previous = std::mem::take(&mut self.schedules);
        let mut due = Vec::new();
        for (order, input) in inputs.policies.iter().enumerate() {
            let ScalingPolicy::Scheduled(action) = input.policy else {
                continue;
            };
            let state = match previous.remove(&action.name) {
                Some(state) if state.definition == *action => state,
                _ => {
                    let state = ScheduleState::new(action, now_ts);
                    if let Err(error) = &state.zone {
                        let activity = self.activity(
                            now,
                            service,
                            format!("Scheduled action {} cannot run.", action.name),
                            format!(
                                "scheduled action name {} was not started: {error}",
                                action.name
                            ),
                            *desired,
                            *desired,
                            None,
                        );
                        let mut activity = activity;
                        activity.set_status(StatusCode::Failed, Some(error.to_string()), now);
                        activities.push(activity);
                    }
                    state
                }
            };
            if let Some(when) = state.next_due.filter(|when| *when <= now_ts) {
                due.push((when, order, action.name.clone()));
            }
            self.schedules.insert(action.name.clone(), state);
        }
        due.sort();
        for (when, _, name) in due {
            let Some(state) = self.schedules.get_mut(&name) else {
                continue;
            };
            state.next_due =
                state.next_at_or_after(when.max(now_ts) + jiff::SignedDuration::from_nanos(1));
            let action = state.definition.clone();
            let zone = state.zone.clone().unwrap_or(TimeZone::UTC);
            let local = when.to_zoned(zone);
            let trigger = format!(
                "scheduled action name {} ({} in {}) was triggered at {}",
                action.name,
                action.schedule,
                action.timezone.as_deref().unwrap_or("UTC"),
                local.strftime("%Y-%m-%dT%H:%M:%S%:z")
            );
            if inputs.target.suspended.scheduled_scaling_suspended {
                let (min, max) = self.bounds();
                let reason = NotScaledReason {
                    code: NotScaledReasonCode::ScheduledScalingSuspended,
                    current_capacity: Some(*desired),
                    min_capacity: Some(min),
                    max_capacity: Some(max),
                };
                let activity = self.activity(
                    now,
                    service,
                    format!("Scheduled action {} skipped.", action.name),
                    format!("{trigger}, but scheduled scaling is suspended"),
                    *desired,
                    *desired,
                    Some((
                        reason,
                        "Not scaled (ScheduledScalingSuspended): scheduled scaling is suspended."
                            .into(),
                    )),
                );
                activities.push(activity);
                continue;
            }
            let (min, max) = self.bounds();
            let mut new_min = action.min_capacity.unwrap_or(min);
            let mut new_max = action.max_capacity.unwrap_or(max);
            if new_min > new_max {
                // Only one bound was given and it crosses the other: the given one wins.
                if action.max_capacity.is_some() && action.min_capacity.is_none() {
                    new_min = new_max;
                } else {
                    new_max = new_min;
                }
            }
            self.scheduled_bounds = Some((new_min, new_max));
            let to = (*desired).clamp(new_min, new_max);
            let mut description =
                format!("Setting min capacity to {new_min} and max capacity to {new_max}");
            let mut cause = trigger;
            if to != *desired {
                description.push_str(&format!(" and desired count to {to}"));
                let relation = if to > *desired {
                    "below the new minimum"
                } else {
                    "above the new maximum"
                };
                cause.push_str(&format!(
                    " changing the desired capacity from {} to {to}, as {} is {relation}",
                    *desired, *desired
                ));
            }
            description.push('.');
            let mut activity = self.activity(now, service, description, cause, *desired, to, None);
            if to == *desired {
                activity.set_status(StatusCode::Successful, Some("Bounds updated.".into()), now);
            }
            activities.push(activity);
            *desired = to;
        }
    }

    /// A new activity: `Pending` when it changes the desired count, `Failed` with a reason
    /// when it records a decision not to scale, `Successful` otherwise.
    #[allow(clippy::too_many_arguments)]
    fn activity(
        &mut self,
        now: SystemTime,
        service: &str,
        description: String,
        cause: String,
        from: u32,
        to: u32,
        not_scaled: Option<(NotScaledReason, String)>,
    ) -> ScalingActivity {
        self.activity_sequence += 1;
        let millis = history::nanos(now).div_euclid(1_000_000) as u64;
        let sequence = self.activity_sequence;
        let activity_id = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (millis >> 16) as u32,
            millis & 0xffff,
            (sequence >> 48) & 0xfff,
            (sequence >> 36) & 0xfff,
            sequence & 0xffff_ffff_ffff
        );
        let (status_code, status_message, end_time, not_scaled_reasons) = match not_scaled {
            Some((reason, message)) => (StatusCode::Failed, Some(message), Some(now), vec![reason]),
            None if from != to => (StatusCode::Pending, None, None, Vec::new()),
            None => (StatusCode::Successful, None, Some(now), Vec::new()),
        };
        ScalingActivity {
            activity_id,
            service: service.to_string(),
            description,
            cause,
            from_capacity: from,
            to_capacity: to,
            status_code,
            status_message,
            start_time: now,
            end_time,
            not_scaled_reasons,
        }
    }
}

/// Combines the policies' votes (see the module documentation).
fn combine(
    votes: &[Vote],
    desired: u32,
    min: u32,
    max: u32,
    suspended: SuspendedState,
    deployment_in_progress: bool,
) -> Option<Outcome> {
    let not_scaled = |code, want: &Want, why: String, policies: Vec<String>| Outcome::NotScaled {
        code,
        want: want.clone(),
        why,
        policies,
    };
    let outs: Vec<&Want> = votes.iter().filter_map(|vote| vote.out.as_ref()).collect();
    let out_names = |wants: &[&Want]| {
        wants
            .iter()
            .map(|want| want.policy.clone())
            .collect::<Vec<_>>()
    };
    // 1. Any policy that wants more than the desired count scales out, to the largest.
    let effective: Vec<&Want> = outs
        .iter()
        .copied()
        .filter(|want| want.blocked.is_none() && want.capacity > desired)
        .collect();
    if let Some(winner) = largest(&effective) {
        let names = out_names(&effective);
        if suspended.dynamic_scaling_out_suspended {
            return Some(not_scaled(
                NotScaledReasonCode::DynamicScalingOutSuspended,
                winner,
                "dynamic scale-out is suspended".into(),
                names,
            ));
        }
        if desired >= max {
            return Some(not_scaled(
                NotScaledReasonCode::AlreadyAtMaxCapacity,
                winner,
                format!("the desired count is already at the maximum capacity {max}"),
                names,
            ));
        }
        let to = winner.capacity.min(max);
        let mut note = String::new();
        if to < winner.capacity {
            note.push_str(&format!("; capped at the maximum capacity {max}"));
        }
        for other in effective.iter().filter(|want| want.policy != winner.policy) {
            note.push_str(&format!(
                "; policy {} asked for {}",
                other.policy, other.capacity
            ));
        }
        return Some(Outcome::Scale {
            direction: Direction::Out,
            to,
            want: winner.clone(),
            note,
        });
    }
    // 2. A policy that wants out but is held, or finds nothing to add, vetoes scale-in.
    if let Some(held) = outs.iter().find(|want| want.blocked.is_some()) {
        let block = held.blocked.as_ref().expect("filtered on blocked");
        return Some(not_scaled(
            block.code,
            held,
            block.why.clone(),
            vec![held.policy.clone()],
        ));
    }
    if let Some(satisfied) = largest(&outs) {
        return Some(not_scaled(
            NotScaledReasonCode::AlreadyAtDesiredCapacity,
            satisfied,
            format!("the desired count {desired} already covers it"),
            out_names(&outs),
        ));
    }
    // 3. Scale in only when every policy that may scale in is ready, to the largest capacity.
    let ready: Vec<&Want> = votes
        .iter()
        .filter_map(|vote| match &vote.in_vote {
            InVote::Ready(want) => Some(want),
            _ => None,
        })
        .collect();
    if !ready.iter().any(|want| want.triggered) {
        return None;
    }
    let winner = largest(&ready)?;
    let names = out_names(&ready);
    let not_ready: Vec<String> = votes
        .iter()
        .filter_map(|vote| match &vote.in_vote {
            InVote::NotReady { why, .. } => Some(why.clone()),
            _ => None,
        })
        .collect();
    if !not_ready.is_empty() {
        return Some(not_scaled(
            NotScaledReasonCode::PoliciesDisagree,
            winner,
            format!(
                "scale-in needs every policy to agree, and {}",
                not_ready.join("; ")
            ),
            names,
        ));
    }
    if desired <= min {
        return Some(not_scaled(
            NotScaledReasonCode::AlreadyAtMinCapacity,
            winner,
            format!("the desired count is already at the minimum capacity {min}"),
            names,
        ));
    }
    if let Some(held) = ready.iter().find(|want| want.blocked.is_some()) {
        let block = held.blocked.as_ref().expect("filtered on blocked");
        return Some(not_scaled(block.code, held, block.why.clone(), names));
    }
    if suspended.dynamic_scaling_in_suspended {
        return Some(not_scaled(
            NotScaledReasonCode::DynamicScalingInSuspended,
            winner,
            "dynamic scale-in is suspended".into(),
            names,
        ));
    }
    if deployment_in_progress {
        return Some(not_scaled(
            NotScaledReasonCode::DeploymentInProgress,
            winner,
            "a deployment is in progress, and scale-in waits for it to finish".into(),
            names,
        ));
    }
    let to = winner.capacity.max(min);
    let mut note = String::new();
    if to > winner.capacity {
        note.push_str(&format!("; held at the minimum capacity {min}"));
    }
    for other in ready.iter().filter(|want| want.policy != winner.policy) {
        note.push_str(&format!(
            "; policy {} agreed at {}",
            other.policy, other.capacity
        ));
    }
    Some(Outcome::Scale {
        direction: Direction::In,
        to,
        want: winner.clone(),
        note,
    })
}

/// The want with the largest capacity (the first of equals).
fn largest<'w>(wants: &[&'w Want]) -> Option<&'w Want> {
    wants
        .iter()
        .copied()
        .fold(None, |best: Option<&Want>, want| match best {
            Some(best) if best.capacity >= want.capacity => Some(best),
            _ => Some(want),
        })
}

#[cfg(test)]
mod tests;
