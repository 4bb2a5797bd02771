//! Scaling activities: every decision, as `DescribeScalingActivities` reports it.
//!
//! Users of AWS complain that scaling is opaque; here every evaluation that changes capacity,
//! or that would have and did not, is an activity with its cause in words and the metric values
//! behind it. Issue 5 keeps them in a bounded in-memory log served by the admin API.
//!
//! Activities serialize to JSON with snake_case fields, AWS's spellings for codes and
//! RFC 3339 times.

use std::fmt;
use std::time::SystemTime;

use serde::Serialize;

/// An activity's status, with Application Auto Scaling's `StatusCode` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum StatusCode {
    /// Decided; the backend has not answered yet.
    Pending,
    /// The backend accepted the new desired count and is working towards it.
    InProgress,
    /// The new capacity was reached.
    Successful,
    /// A newer activity changed the desired capacity before this one finished.
    Overridden,
    /// Timed out, or the backend cannot fulfil the request.
    Unfulfilled,
    /// The backend refused (its error is in the status message).
    Failed,
}

impl StatusCode {
    /// AWS's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusCode::Pending => "Pending",
            StatusCode::InProgress => "InProgress",
            StatusCode::Successful => "Successful",
            StatusCode::Overridden => "Overridden",
            StatusCode::Unfulfilled => "Unfulfilled",
            StatusCode::Failed => "Failed",
        }
    }

    /// Whether the activity is finished and has an end time.
    pub fn is_final(self) -> bool {
        !matches!(self, StatusCode::Pending | StatusCode::InProgress)
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a policy that wanted to scale did not (`NotScaledReason.Code`).
///
/// The first five are AWS's codes. The others are scalegate's, for reasons AWS leaves out of
/// its activity log; they say why capacity did not move when a policy wanted it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum NotScaledReasonCode {
    /// Scaling would push the metric back across the target and cause the reverse action.
    AutoScalingAnticipatedFlapping,
    /// The backend reported the service cannot be scaled now.
    TargetServicePutResourceAsUnscalable,
    /// Already at the maximum capacity.
    AlreadyAtMaxCapacity,
    /// Already at the minimum capacity.
    AlreadyAtMinCapacity,
    /// Already at the computed capacity.
    AlreadyAtDesiredCapacity,
    /// scalegate: a scale-out waits for the scale-out cooldown (a step policy's adjustment
    /// counted from before its last scale-out adds nothing; the `fast` profile's stable window
    /// just after a scale-in).
    ScaleOutCooldown,
    /// scalegate: a scale-in waits for the scale-in cooldown.
    ScaleInCooldown,
    /// scalegate: `DynamicScalingOutSuspended` is set.
    DynamicScalingOutSuspended,
    /// scalegate: `DynamicScalingInSuspended` is set.
    DynamicScalingInSuspended,
    /// scalegate: `ScheduledScalingSuspended` is set, so a due scheduled action was skipped.
    ScheduledScalingSuspended,
    /// scalegate: a deployment is in progress; AWS holds scale-in until it ends.
    DeploymentInProgress,
    /// scalegate: a policy wanted to scale in but another policy does not agree (scale-in needs
    /// every policy that may scale in).
    PoliciesDisagree,
}

impl NotScaledReasonCode {
    /// AWS's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            NotScaledReasonCode::AutoScalingAnticipatedFlapping => "AutoScalingAnticipatedFlapping",
            NotScaledReasonCode::TargetServicePutResourceAsUnscalable => {
                "TargetServicePutResourceAsUnscalable"
            }
            NotScaledReasonCode::AlreadyAtMaxCapacity => "AlreadyAtMaxCapacity",
            NotScaledReasonCode::AlreadyAtMinCapacity => "AlreadyAtMinCapacity",
            NotScaledReasonCode::AlreadyAtDesiredCapacity => "AlreadyAtDesiredCapacity",
            NotScaledReasonCode::ScaleOutCooldown => "ScaleOutCooldown",
            NotScaledReasonCode::ScaleInCooldown => "ScaleInCooldown",
            NotScaledReasonCode::DynamicScalingOutSuspended => "DynamicScalingOutSuspended",
            NotScaledReasonCode::DynamicScalingInSuspended => "DynamicScalingInSuspended",
            NotScaledReasonCode::ScheduledScalingSuspended => "ScheduledScalingSuspended",
            NotScaledReasonCode::DeploymentInProgress => "DeploymentInProgress",
            NotScaledReasonCode::PoliciesDisagree => "PoliciesDisagree",
        }
    }
}

impl fmt::Display for NotScaledReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reason with the capacities that applied (`NotScaledReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NotScaledReason {
    /// The reason.
    pub code: NotScaledReasonCode,
    /// Capacity at the time.
    pub current_capacity: Option<u32>,
    /// Minimum capacity at the time.
    pub min_capacity: Option<u32>,
    /// Maximum capacity at the time.
    pub max_capacity: Option<u32>,
}

/// One scaling decision and what became of it.
///
/// The engine creates activities that change the desired count as `Pending` (the caller moves
/// them on as the backend answers), scheduled actions that only move bounds as `Successful`,
/// and "not scaled" activities as `Failed` with [`ScalingActivity::not_scaled_reasons`] set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScalingActivity {
    /// Unique ID.
    pub activity_id: String,
    /// The service scaled.
    pub service: String,
    /// What was done, e.g. "Setting desired count to 4.".
    pub description: String,
    /// Why, in words with the metric values, e.g. "monitor alarm … in state ALARM triggered
    /// policy cpu-70 (ECSServiceAverageCPUUtilization 93.5 > 70 for 3 datapoints)".
    pub cause: String,
    /// Capacity before.
    pub from_capacity: u32,
    /// Capacity asked for.
    pub to_capacity: u32,
    /// Where it is.
    pub status_code: StatusCode,
    /// Detail for the status, such as the backend's error.
    pub status_message: Option<String>,
    /// When it was decided.
    #[serde(with = "rfc3339")]
    pub start_time: SystemTime,
    /// When it reached a final status.
    #[serde(with = "rfc3339_option")]
    pub end_time: Option<SystemTime>,
    /// For activities that did not scale: why not.
    pub not_scaled_reasons: Vec<NotScaledReason>,
}

impl ScalingActivity {
    /// Whether this activity records a decision not to scale.
    pub fn is_not_scaled(&self) -> bool {
        !self.not_scaled_reasons.is_empty()
    }

    /// Moves the activity to `status`, stamping the end time when the status is final.
    pub fn set_status(&mut self, status: StatusCode, message: Option<String>, at: SystemTime) {
        self.status_code = status;
        self.status_message = message;
        if status.is_final() {
            self.end_time = Some(at);
        }
    }
}

/// Serializes a [`SystemTime`] as an RFC 3339 string in UTC ("2026-03-29T01:00:00Z").
pub(crate) mod rfc3339 {
    use std::time::SystemTime;

    /// The serde `serialize_with` hook.
    pub fn serialize<S: serde::Serializer>(
        time: &SystemTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&crate::engine::schedule::timestamp(*time))
    }
}

/// [`rfc3339`] for optional times (`null` when absent).
pub(crate) mod rfc3339_option {
    use std::time::SystemTime;

    /// The serde `serialize_with` hook.
    pub fn serialize<S: serde::Serializer>(
        time: &Option<SystemTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => super::rfc3339::serialize(time, serializer),
            None => serializer.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_with_aws_codes_and_rfc3339_times() {
        let activity = ScalingActivity {
            activity_id: "a".into(),
            service: "web".into(),
            description: "Setting desired count to 4.".into(),
            cause: "because".into(),
            from_capacity: 2,
            to_capacity: 4,
            status_code: StatusCode::InProgress,
            status_message: None,
            start_time: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_774_746_000),
            end_time: None,
            not_scaled_reasons: vec![NotScaledReason {
                code: NotScaledReasonCode::AlreadyAtMaxCapacity,
                current_capacity: Some(4),
                min_capacity: None,
                max_capacity: Some(4),
            }],
        };
        let json = serde_json::to_value(&activity).unwrap();
        assert_eq!(json["status_code"], "InProgress");
        assert_eq!(json["start_time"], "2026-03-29T01:00:00Z");
        assert_eq!(json["end_time"], serde_json::Value::Null);
        assert_eq!(
            json["not_scaled_reasons"][0]["code"],
            "AlreadyAtMaxCapacity"
        );
    }

    #[test]
    fn only_pending_and_in_progress_are_open() {
        assert!(!StatusCode::Pending.is_final());
        assert!(!StatusCode::InProgress.is_final());
        for code in [
            StatusCode::Successful,
            StatusCode::Overridden,
            StatusCode::Unfulfilled,
            StatusCode::Failed,
        ] {
            assert!(code.is_final(), "{code}");
        }
    }
}
