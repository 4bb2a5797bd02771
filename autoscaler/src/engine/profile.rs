//! The two timing profiles' parameters and defaults.
//!
//! `aws` copies what Application Auto Scaling does with a target-tracking policy for ECS (the
//! alarm shapes are observed, not documented; reference §1.1). `fast` is scalegate's own,
//! modelled on Knative's stable/panic windows and HPA's tolerance; docs/autoscaling.md explains
//! why it does not flap.

use std::time::Duration;

use crate::scaling::{StepScaling, TargetTracking, TimingProfile};

/// Parameters of the `fast` profile. Defaults are Knative's windows and threshold, HPA's
/// tolerance and Knative's scale-down rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FastParameters {
    /// The averaging window for normal scale-out, and the window that must show a scale-in for
    /// its whole length before it happens. Default 60 s (Knative's stable window).
    pub stable_window: Duration,
    /// The short window that reacts to bursts; it may only scale out. Default 6 s (Knative:
    /// 10 % of the stable window).
    pub panic_window: Duration,
    /// The panic window scales out only when the metric over it is at least this multiple of
    /// the target. Default 2.0 (Knative's panic threshold of 200 %).
    pub panic_threshold: f64,
    /// Normal scale-out needs the stable window's metric more than this fraction above the
    /// target: a dead band that keeps noise around the target from adding tasks. Default 0.1
    /// (HPA's tolerance).
    pub scale_out_tolerance: f64,
    /// One scale-in keeps at least `desired / max_scale_in_ratio` tasks (removing one task is
    /// always allowed). Default 2.0: at most halve per step (Knative's max scale-down rate).
    pub max_scale_in_ratio: f64,
    /// Scale-out cooldown of policies that set none: after a scale-in, scale-out from the
    /// stable window waits this long. Default 10 s, the config's documented default.
    pub scale_out_cooldown: Duration,
    /// Scale-in cooldown of policies that set none: after any scale-out or scale-in, scale-in
    /// waits this long. Default 30 s, the config's documented default.
    pub scale_in_cooldown: Duration,
}

impl Default for FastParameters {
    fn default() -> Self {
        FastParameters {
            stable_window: Duration::from_secs(60),
            panic_window: Duration::from_secs(6),
            panic_threshold: 2.0,
            scale_out_tolerance: 0.1,
            max_scale_in_ratio: 2.0,
            scale_out_cooldown: Duration::from_secs(10),
            scale_in_cooldown: Duration::from_secs(30),
        }
    }
}

/// The alarms Application Auto Scaling creates for a target-tracking policy, and ECS's default
/// cooldowns. AWS does not let users change the alarms; they are fields here so tests and
/// experiments can.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AwsParameters {
    /// Datapoint length. Default 60 s (ECS and ALB metrics are per minute).
    pub period: Duration,
    /// AlarmHigh: this many of this many datapoints above the target. Default 3.
    pub high_datapoints: u32,
    /// AlarmLow: this many of this many datapoints below the low threshold. Default 15.
    pub low_datapoints: u32,
    /// AlarmLow's threshold as a fraction of the target. Default 0.9.
    pub low_threshold_ratio: f64,
    /// Scale-out cooldown of policies that set none. Default 300 s.
    pub scale_out_cooldown: Duration,
    /// Scale-in cooldown of policies that set none. Default 300 s.
    pub scale_in_cooldown: Duration,
}

impl Default for AwsParameters {
    fn default() -> Self {
        AwsParameters {
            period: Duration::from_secs(60),
            high_datapoints: 3,
            low_datapoints: 15,
            low_threshold_ratio: 0.9,
            scale_out_cooldown: Duration::from_secs(300),
            scale_in_cooldown: Duration::from_secs(300),
        }
    }
}

/// A service's engine settings: the profile its policies use unless they name one, and the
/// parameters of both profiles.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EngineSettings {
    /// The service's profile.
    pub profile: TimingProfile,
    /// `fast` parameters of policies that set none.
    pub fast: FastParameters,
    /// `aws` alarm shapes and cooldown defaults.
    pub aws: AwsParameters,
}

impl EngineSettings {
    /// The profile a target-tracking policy runs under.
    pub fn tracking_profile(&self, policy: &TargetTracking) -> TimingProfile {
        policy.profile.unwrap_or(self.profile)
    }

    /// The profile a step policy's alarm runs under.
    pub fn step_profile(&self, policy: &StepScaling) -> TimingProfile {
        policy.profile.unwrap_or(self.profile)
    }

    /// The `fast` parameters of a target-tracking policy.
    pub fn fast_parameters(&self, policy: &TargetTracking) -> FastParameters {
        policy.fast.unwrap_or(self.fast)
    }

    /// A target-tracking policy's scale-out cooldown under its profile.
    pub fn scale_out_cooldown(&self, policy: &TargetTracking) -> Duration {
        policy
            .scale_out_cooldown
            .unwrap_or(match self.tracking_profile(policy) {
                TimingProfile::Aws => self.aws.scale_out_cooldown,
                TimingProfile::Fast => self.fast_parameters(policy).scale_out_cooldown,
            })
    }

    /// A target-tracking policy's scale-in cooldown under its profile.
    pub fn scale_in_cooldown(&self, policy: &TargetTracking) -> Duration {
        policy
            .scale_in_cooldown
            .unwrap_or(match self.tracking_profile(policy) {
                TimingProfile::Aws => self.aws.scale_in_cooldown,
                TimingProfile::Fast => self.fast_parameters(policy).scale_in_cooldown,
            })
    }
}
