//! CloudWatch-style alarms: M of N datapoints breaching a threshold.
//!
//! Missing data is treated as CloudWatch's `missing` (its default): a missing datapoint is
//! neither breaching nor not breaching. The alarm goes to `ALARM` when at least M of the N
//! datapoints breach, to `OK` when so many datapoints are present and not breaching that M
//! breaches are no longer possible, and otherwise keeps its state; with no datapoint at all it is
//! `INSUFFICIENT_DATA`, in which AWS's target tracking does not scale.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::history::{datapoints, Alignment, MetricHistory};
use super::words::number;
use crate::scaling::{ComparisonOperator, Statistic};

/// An alarm's state, with CloudWatch's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum AlarmState {
    /// Not breaching.
    #[serde(rename = "OK")]
    Ok,
    /// Breaching: the alarm triggers its policy.
    #[serde(rename = "ALARM")]
    Alarm,
    /// Not enough data to tell.
    #[default]
    #[serde(rename = "INSUFFICIENT_DATA")]
    InsufficientData,
}

impl AlarmState {
    /// CloudWatch's spelling, as causes quote it.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

/// What an alarm compares, and over which datapoints.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct AlarmRule {
    pub statistic: Statistic,
    pub period: Duration,
    pub threshold: f64,
    pub comparison: ComparisonOperator,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
    pub alignment: Alignment,
}

/// One evaluation of an alarm.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AlarmEvaluation {
    pub state: AlarmState,
    /// End of the newest datapoint's period.
    pub period_end: SystemTime,
    /// The datapoints, oldest first; `None` is missing.
    pub datapoints: Vec<Option<f64>>,
    /// How many datapoints breach.
    pub breaching: u32,
}

impl AlarmEvaluation {
    /// The newest datapoint that is present.
    pub fn latest(&self) -> Option<f64> {
        self.datapoints.iter().rev().flatten().next().copied()
    }
}

impl AlarmRule {
    /// Evaluates the alarm at `now`, given its state before.
    pub fn evaluate(
        &self,
        history: &MetricHistory,
        now: SystemTime,
        previous: AlarmState,
    ) -> AlarmEvaluation {
        let evaluation_periods = self.evaluation_periods.max(1);
        let needed = self.datapoints_to_alarm.clamp(1, evaluation_periods);
        let (period_end, points) = datapoints(
            history,
            now,
            self.period,
            evaluation_periods,
            self.statistic,
            self.alignment,
        );
        let present = points.iter().flatten().count() as u32;
        let breaching = points
            .iter()
            .flatten()
            .filter(|value| self.comparison.breaches(**value, self.threshold))
            .count() as u32;
        let state = if present == 0 {
            AlarmState::InsufficientData
        } else if breaching >= needed {
            AlarmState::Alarm
        } else if present - breaching > evaluation_periods - needed {
            AlarmState::Ok
        } else {
            previous
        };
        AlarmEvaluation {
            state,
            period_end,
            datapoints: points,
            breaching,
        }
    }

    /// The evaluation in words: "ECSServiceAverageCPUUtilization > 50 for 3 of 3 datapoints of
    /// 60 s (92.1, 95, 93.5)".
    pub fn describe(&self, metric: &str, evaluation: &AlarmEvaluation) -> String {
        let values: Vec<String> = evaluation
            .datapoints
            .iter()
            .map(|point| point.map_or_else(|| "missing".to_string(), number))
            .collect();
        format!(
            "{metric} {} {} for {} of {} datapoints of {} s ({})",
            self.comparison.symbol(),
            number(self.threshold),
            evaluation.breaching,
            self.evaluation_periods.max(1),
            number(self.period.as_secs_f64()),
            values.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn rule(evaluation_periods: u32, datapoints_to_alarm: u32) -> AlarmRule {
        AlarmRule {
            statistic: Statistic::Average,
            period: Duration::from_secs(10),
            threshold: 50.0,
            comparison: ComparisonOperator::GreaterThanThreshold,
            evaluation_periods,
            datapoints_to_alarm,
            alignment: Alignment::Clock,
        }
    }

    fn history(values: &[(u64, f64)]) -> MetricHistory {
        let mut history = MetricHistory::new(Duration::from_secs(1000));
        for (second, value) in values {
            history.record(t(*second), *value);
        }
        history
    }

    #[test]
    fn m_of_n_goes_to_alarm() {
        // Periods (0,10], (10,20], (20,30]: 60, 40, 70 → 2 of 3 breach.
        let history = history(&[(5, 60.0), (15, 40.0), (25, 70.0)]);
        let evaluation = rule(3, 2).evaluate(&history, t(30), AlarmState::Ok);
        assert_eq!(evaluation.state, AlarmState::Alarm);
        assert_eq!(evaluation.breaching, 2);
        assert_eq!(evaluation.latest(), Some(70.0));
        let evaluation = rule(3, 3).evaluate(&history, t(30), AlarmState::InsufficientData);
        assert_eq!(evaluation.state, AlarmState::Ok);
    }

    #[test]
    fn missing_datapoints_keep_the_state() {
        // Only the newest period has data, and it breaches: 1 of 3 with 2 missing.
        let history = history(&[(25, 70.0)]);
        let evaluation = rule(3, 3).evaluate(&history, t(30), AlarmState::Ok);
        assert_eq!(evaluation.state, AlarmState::Ok);
        let evaluation = rule(3, 3).evaluate(&history, t(30), AlarmState::Alarm);
        assert_eq!(evaluation.state, AlarmState::Alarm);
        // Nothing at all: insufficient data.
        let evaluation = rule(3, 3).evaluate(&history, t(100), AlarmState::Alarm);
        assert_eq!(evaluation.state, AlarmState::InsufficientData);
    }

    #[test]
    fn describes_itself_with_the_datapoints() {
        let history = history(&[(5, 60.0), (25, 70.5)]);
        let rule = rule(3, 2);
        let evaluation = rule.evaluate(&history, t(30), AlarmState::Ok);
        assert_eq!(
            rule.describe("CPU", &evaluation),
            "CPU > 50 for 2 of 3 datapoints of 10 s (60, missing, 70.5)"
        );
    }
}
