//! Scaling activities: every decision, as `DescribeScalingActivities` reports it.
//!
//! Users of AWS complain that scaling is opaque; here every evaluation that changes capacity,
//! or that would have and did not, is an activity with its cause in words and the metric values
//! behind it. Issue 5 keeps them in a bounded in-memory log served by the admin API.

use std::fmt;
use std::time::SystemTime;

/// An activity's status, with Application Auto Scaling's `StatusCode` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
        }
    }
}

/// A reason with the capacities that applied (`NotScaledReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq)]
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
    pub start_time: SystemTime,
    /// When it reached a final status.
    pub end_time: Option<SystemTime>,
    /// For activities that did not scale: why not.
    pub not_scaled_reasons: Vec<NotScaledReason>,
}

#[cfg(test)]
mod tests {
    use super::*;

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
