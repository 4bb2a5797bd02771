//! Metric history: one sample a second per metric, kept as long as the longest policy window.
//!
//! Samples are what the metric collector measured (`ECSServiceAverageCPUUtilization` across
//! the running tasks, requests per target, a scraped gauge). A sample stamped `t` stands for
//! the second ending at `t`, so a window or period `(start, end]` holds the samples with
//! `start < t ≤ end`: the 60-second period ending 12:01:00 holds the samples 12:00:01 … 12:01:00.
//!
//! Missing data is missing, never zero: a second without a sample contributes nothing, a period
//! without a sample is a missing datapoint, and the engine never reads silence as low load
//! (AWS: "does not interpret insufficient data as low utilization").

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::scaling::Statistic;

/// One measurement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// End of the second it measures.
    #[serde(with = "crate::activity::rfc3339")]
    pub at: SystemTime,
    /// The metric's value.
    pub value: f64,
}

/// A bounded, time-ordered series of samples of one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricHistory {
    samples: VecDeque<Sample>,
    retention: Duration,
}

impl MetricHistory {
    /// An empty history that keeps samples for `retention` behind the newest one; use
    /// [`crate::engine::retention_for`] to size it for a policy.
    pub fn new(retention: Duration) -> Self {
        MetricHistory {
            samples: VecDeque::new(),
            retention,
        }
    }

    /// How far back samples are kept.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// Changes how far back samples are kept (policies changed); drops what is now too old.
    pub fn set_retention(&mut self, retention: Duration) {
        self.retention = retention;
        self.prune();
    }

    /// Records a sample. Returns `false`, recording nothing, for a value that is not a finite
    /// number or a time before the newest sample; a sample at the newest sample's time
    /// replaces it.
    pub fn record(&mut self, at: SystemTime, value: f64) -> bool {
        if !value.is_finite() {
            return false;
        }
        match self.samples.back_mut() {
            Some(last) if at < last.at => return false,
            Some(last) if at == last.at => last.value = value,
            _ => self.samples.push_back(Sample { at, value }),
        }
        self.prune();
        true
    }

    fn prune(&mut self) {
        let Some(newest) = self.samples.back().map(|sample| sample.at) else {
            return;
        };
        let Some(horizon) = newest.checked_sub(self.retention) else {
            return;
        };
        while self
            .samples
            .front()
            .is_some_and(|sample| sample.at <= horizon)
        {
            self.samples.pop_front();
        }
    }

    /// Number of samples held.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether no sample is held.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The newest sample.
    pub fn latest(&self) -> Option<Sample> {
        self.samples.back().copied()
    }

    /// The oldest sample still held.
    pub fn oldest(&self) -> Option<Sample> {
        self.samples.front().copied()
    }

    /// All samples, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Sample> + '_ {
        self.samples.iter()
    }

    /// The samples with `after < at ≤ until`, oldest first.
    pub fn window(&self, after: SystemTime, until: SystemTime) -> impl Iterator<Item = &Sample> {
        let start = self.samples.partition_point(|sample| sample.at <= after);
        self.samples
            .range(start..)
            .take_while(move |sample| sample.at <= until)
    }

    /// The samples of `(after, until]` combined by `statistic`, as CloudWatch makes a datapoint
    /// of a period; `None` (a missing datapoint) when the window holds no sample.
    pub fn aggregate(
        &self,
        after: SystemTime,
        until: SystemTime,
        statistic: Statistic,
    ) -> Option<f64> {
        aggregate(
            self.window(after, until).map(|sample| sample.value),
            statistic,
        )
    }
}

/// Combines values as CloudWatch's statistics do; `None` for no values.
pub fn aggregate(values: impl Iterator<Item = f64>, statistic: Statistic) -> Option<f64> {
    let mut count = 0u64;
    let mut sum = 0.0;
    let mut min = f64::INFINITY;
    let mut max = f64::NEG_INFINITY;
    for value in values {
        count += 1;
        sum += value;
        min = min.min(value);
        max = max.max(value);
    }
    if count == 0 {
        return None;
    }
    Some(match statistic {
        Statistic::Average => sum / count as f64,
        Statistic::Minimum => min,
        Statistic::Maximum => max,
        Statistic::Sum => sum,
        Statistic::SampleCount => count as f64,
    })
}

/// How periods are laid on the time line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alignment {
    /// On multiples of the period since the Unix epoch, as CloudWatch aligns them; the newest
    /// period is the last one that has ended.
    Clock,
    /// Ending now: the `fast` profile's every-second evaluation.
    Sliding,
}

/// The newest `count` periods of `period` before `now` as datapoints, oldest first, and the end
/// of the newest one.
pub(crate) fn datapoints(
    history: &MetricHistory,
    now: SystemTime,
    period: Duration,
    count: u32,
    statistic: Statistic,
    alignment: Alignment,
) -> (SystemTime, Vec<Option<f64>>) {
    let end = match alignment {
        Alignment::Clock => align_down(now, period),
        Alignment::Sliding => now,
    };
    let points = (0..count)
        .rev()
        .map(|k| {
            let until = sub(end, period * k);
            history.aggregate(sub(until, period), until, statistic)
        })
        .collect();
    (end, points)
}

/// Nanoseconds since the Unix epoch (negative before it).
pub(crate) fn nanos(time: SystemTime) -> i128 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => after.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    }
}

/// The inverse of [`nanos`].
pub(crate) fn from_nanos(nanos: i128) -> SystemTime {
    let magnitude = Duration::new(
        (nanos.unsigned_abs() / 1_000_000_000) as u64,
        (nanos.unsigned_abs() % 1_000_000_000) as u32,
    );
    if nanos >= 0 {
        SystemTime::UNIX_EPOCH + magnitude
    } else {
        SystemTime::UNIX_EPOCH - magnitude
    }
}

/// `time` rounded down to a multiple of `period` since the epoch.
pub(crate) fn align_down(time: SystemTime, period: Duration) -> SystemTime {
    let period = period.as_nanos().max(1) as i128;
    from_nanos(nanos(time).div_euclid(period) * period)
}

/// `time − by`, saturating at the epoch's far past instead of panicking.
pub(crate) fn sub(time: SystemTime, by: Duration) -> SystemTime {
    time.checked_sub(by).unwrap_or(SystemTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn keeps_only_the_retention_window() {
        let mut history = MetricHistory::new(Duration::from_secs(10));
        for second in 1..=30 {
            assert!(history.record(t(second), second as f64));
        }
        assert_eq!(history.len(), 10);
        assert_eq!(history.oldest().unwrap().at, t(21));
        assert_eq!(history.latest().unwrap().value, 30.0);
    }

    #[test]
    fn refuses_non_finite_values_and_time_travel() {
        let mut history = MetricHistory::new(Duration::from_secs(60));
        assert!(history.record(t(5), 1.0));
        assert!(!history.record(t(4), 2.0));
        assert!(!history.record(t(6), f64::NAN));
        assert!(history.record(t(5), 3.0));
        assert_eq!(history.len(), 1);
        assert_eq!(history.latest().unwrap().value, 3.0);
    }

    #[test]
    fn aggregates_a_period_as_cloudwatch_statistics() {
        let mut history = MetricHistory::new(Duration::from_secs(600));
        for (second, value) in [(1, 10.0), (2, 20.0), (3, 60.0), (4, 30.0)] {
            history.record(t(second), value);
        }
        let stat = |statistic| history.aggregate(t(0), t(3), statistic);
        assert_eq!(stat(Statistic::Average), Some(30.0));
        assert_eq!(stat(Statistic::Minimum), Some(10.0));
        assert_eq!(stat(Statistic::Maximum), Some(60.0));
        assert_eq!(stat(Statistic::Sum), Some(90.0));
        assert_eq!(stat(Statistic::SampleCount), Some(3.0));
        assert_eq!(history.aggregate(t(10), t(20), Statistic::Average), None);
    }

    #[test]
    fn clock_aligned_datapoints_cover_whole_minutes() {
        let mut history = MetricHistory::new(Duration::from_secs(600));
        for second in 1..=150 {
            history.record(t(second), if second <= 60 { 1.0 } else { 2.0 });
        }
        let (end, points) = datapoints(
            &history,
            t(150),
            Duration::from_secs(60),
            3,
            Statistic::Average,
            Alignment::Clock,
        );
        assert_eq!(end, t(120));
        assert_eq!(points, vec![None, Some(1.0), Some(2.0)]);
        let (end, points) = datapoints(
            &history,
            t(150),
            Duration::from_secs(60),
            2,
            Statistic::SampleCount,
            Alignment::Sliding,
        );
        assert_eq!(end, t(150));
        assert_eq!(points, vec![Some(60.0), Some(60.0)]);
    }

    #[test]
    fn time_conversions_round_trip() {
        for value in [0i128, 1, -1, 1_777_000_000_123_456_789, -5_000_000_001] {
            assert_eq!(nanos(from_nanos(value)), value);
        }
        assert_eq!(align_down(t(125), Duration::from_secs(60)), t(120));
    }
}
