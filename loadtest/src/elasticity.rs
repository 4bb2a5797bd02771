//! SPEC Research Group elasticity metrics: how closely the supply of tasks followed demand.
//!
//! Demand `d_t` is the number of tasks the load at time t needs (offered rate / per-task
//! capacity, rounded up); supply `s_t` is the healthy tasks the autoscaler provided. Both are
//! sampled every `interval` (1 s in scalegate's timeline) and read as step functions, as
//! BUNGEE's reference implementation reads them. Definitions are in the autoscaling reference,
//! §5.1; `docs/loadtest.md` (issue 6) restates them for users.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How well supply followed demand over a run.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ElasticityMetrics {
    /// Under-provisioning accuracy θ_U: average tasks missing, `Σ max(d − s, 0)·Δt / T`.
    pub under_provisioning_accuracy: f64,
    /// Over-provisioning accuracy θ_O: average tasks in excess, `Σ max(s − d, 0)·Δt / T`.
    pub over_provisioning_accuracy: f64,
    /// Under-provisioning timeshare τ_U: fraction of time with `s < d`.
    pub under_provisioning_timeshare: f64,
    /// Over-provisioning timeshare τ_O: fraction of time with `s > d`.
    pub over_provisioning_timeshare: f64,
    /// Instability υ: fraction of intervals in which supply and demand did not move in the same
    /// direction, `Σ min(|sgn Δs − sgn Δd|, 1) / (n − 1)`.
    pub instability: f64,
    /// Jitter j: `(E_S − E_D) / T` in adaptations per minute, E counting unit changes. Negative:
    /// supply too inert; positive: supply oscillates more than demand.
    pub jitter_per_minute: f64,
    /// Task-seconds supplied, `Σ s·Δt`: what the run cost.
    pub task_seconds: f64,
}

impl ElasticityMetrics {
    /// Computes the metrics from equally spaced samples. `None` when the series are empty, of
    /// different lengths, or the interval is zero.
    pub fn from_samples(demand: &[f64], supply: &[f64], interval: Duration) -> Option<Self> {
        if demand.is_empty() || demand.len() != supply.len() || interval.is_zero() {
            return None;
        }
        let n = demand.len() as f64;
        let dt = interval.as_secs_f64();
        let total_seconds = n * dt;
        let mut metrics = ElasticityMetrics::default();
        for (&d, &s) in demand.iter().zip(supply) {
            metrics.under_provisioning_accuracy += (d - s).max(0.0);
            metrics.over_provisioning_accuracy += (s - d).max(0.0);
            metrics.under_provisioning_timeshare += f64::from(u8::from(s < d));
            metrics.over_provisioning_timeshare += f64::from(u8::from(s > d));
            metrics.task_seconds += s * dt;
        }
        metrics.under_provisioning_accuracy /= n;
        metrics.over_provisioning_accuracy /= n;
        metrics.under_provisioning_timeshare /= n;
        metrics.over_provisioning_timeshare /= n;

        let steps =
            |series: &[f64]| -> Vec<f64> { series.windows(2).map(|w| w[1] - w[0]).collect() };
        let (demand_steps, supply_steps) = (steps(demand), steps(supply));
        if !demand_steps.is_empty() {
            let unstable = demand_steps
                .iter()
                .zip(&supply_steps)
                .filter(|(dd, ds)| sign(**ds) != sign(**dd))
                .count();
            metrics.instability = unstable as f64 / demand_steps.len() as f64;
        }
        let changes = |steps: &[f64]| -> f64 { steps.iter().map(|step| step.abs()).sum() };
        metrics.jitter_per_minute =
            (changes(&supply_steps) - changes(&demand_steps)) / (total_seconds / 60.0);
        Some(metrics)
    }
}

fn sign(value: f64) -> i8 {
    if value > 0.0 {
        1
    } else if value < 0.0 {
        -1
    } else {
        0
    }
}

/// Tasks needed to serve `rate` requests per second when one task serves
/// `capacity_per_task`: `ceil(rate / capacity)`. `None` for a capacity that is not positive.
pub fn demand_in_tasks(rate: f64, capacity_per_task: f64) -> Option<f64> {
    (capacity_per_task > 0.0 && rate >= 0.0).then(|| (rate / capacity_per_task).ceil())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn perfect_tracking_scores_zero() {
        let curve = [1.0, 2.0, 4.0, 2.0];
        let m = ElasticityMetrics::from_samples(&curve, &curve, Duration::from_secs(1)).unwrap();
        assert_eq!(m.under_provisioning_accuracy, 0.0);
        assert_eq!(m.over_provisioning_timeshare, 0.0);
        assert_eq!(m.instability, 0.0);
        assert_eq!(m.jitter_per_minute, 0.0);
        assert!(close(m.task_seconds, 9.0));
    }

    #[test]
    fn lagging_supply_is_hand_computed() {
        // Supply follows demand one second late.
        let demand = [1.0, 2.0, 2.0, 1.0];
        let supply = [1.0, 1.0, 2.0, 2.0];
        let m = ElasticityMetrics::from_samples(&demand, &supply, Duration::from_secs(1)).unwrap();
        assert!(close(m.under_provisioning_accuracy, 0.25));
        assert!(close(m.over_provisioning_accuracy, 0.25));
        assert!(close(m.under_provisioning_timeshare, 0.25));
        assert!(close(m.over_provisioning_timeshare, 0.25));
        // Δd = +1, 0, −1; Δs = 0, +1, 0: every interval disagrees.
        assert!(close(m.instability, 1.0));
        // E_S = 1, E_D = 2 over 4 s = 1/15 min.
        assert!(close(m.jitter_per_minute, -15.0));
        assert!(close(m.task_seconds, 6.0));
    }

    #[test]
    fn mismatched_or_empty_series_are_refused() {
        let one = Duration::from_secs(1);
        assert!(ElasticityMetrics::from_samples(&[], &[], one).is_none());
        assert!(ElasticityMetrics::from_samples(&[1.0], &[1.0, 2.0], one).is_none());
        assert!(ElasticityMetrics::from_samples(&[1.0], &[1.0], Duration::ZERO).is_none());
    }

    #[test]
    fn demand_rounds_up_to_whole_tasks() {
        assert_eq!(demand_in_tasks(250.0, 100.0), Some(3.0));
        assert_eq!(demand_in_tasks(200.0, 100.0), Some(2.0));
        assert_eq!(demand_in_tasks(0.0, 100.0), Some(0.0));
        assert_eq!(demand_in_tasks(10.0, 0.0), None);
    }
}

/// Seconds in which the service missed its SLO: p99 above `slo_p99_ms`, or any request failed.
/// Seconds in which nothing completed count only if requests failed.
pub fn slo_violation_seconds(timeline: &[crate::report::TimelinePoint], slo_p99_ms: f64) -> u64 {
    timeline
        .iter()
        .filter(|point| {
            point.errors > 0
                || point
                    .latency
                    .is_some_and(|latency| latency.p99_ms > slo_p99_ms)
        })
        .count() as u64
}

/// Time to adequate capacity after each rise in demand that left supply short: from the first
/// second with `demand > supply` after a rise, until the first second with
/// `supply ≥ demand`. Rises while still short extend the same recovery (its `to_tasks` is the
/// highest demand seen). A shortage the run ends in has no recovery time. Series are per
/// second.
pub fn recoveries(demand: &[u32], supply: &[u32]) -> Vec<crate::report::CapacityRecovery> {
    let mut recoveries = Vec::new();
    let mut open: Option<crate::report::CapacityRecovery> = None;
    for (second, (&d, &s)) in demand.iter().zip(supply).enumerate() {
        let previous = if second == 0 { d } else { demand[second - 1] };
        match open.as_mut() {
            Some(recovery) if s >= d => {
                recovery.seconds_to_adequate = Some((second as u64 - recovery.at_second) as f64);
                recoveries.push(open.take().expect("open recovery"));
            }
            Some(recovery) => recovery.to_tasks = recovery.to_tasks.max(d),
            None if d > previous && s < d => {
                open = Some(crate::report::CapacityRecovery {
                    at_second: second as u64,
                    from_tasks: previous,
                    to_tasks: d,
                    seconds_to_adequate: None,
                });
            }
            None => {}
        }
    }
    recoveries.extend(open);
    recoveries
}

#[cfg(test)]
mod recovery_tests {
    use super::*;
    use crate::report::{LatencySummary, TimelinePoint};

    #[test]
    fn a_step_recovers_when_supply_catches_up() {
        // Demand steps 1 → 4 at second 2; supply reaches 2 at 4 and 4 at 6.
        let demand = [1, 1, 4, 4, 4, 4, 4, 4];
        let supply = [1, 1, 1, 1, 2, 2, 4, 4];
        let found = recoveries(&demand, &supply);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].at_second, 2);
        assert_eq!((found[0].from_tasks, found[0].to_tasks), (1, 4));
        assert_eq!(found[0].seconds_to_adequate, Some(4.0));
    }

    #[test]
    fn rises_within_a_shortage_merge_and_unfinished_ones_have_no_time() {
        let demand = [1, 2, 3, 3, 1, 5, 5];
        let supply = [1, 1, 1, 3, 3, 3, 3];
        let found = recoveries(&demand, &supply);
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].at_second, found[0].to_tasks), (1, 3));
        assert_eq!(found[0].seconds_to_adequate, Some(2.0));
        assert_eq!(found[1].at_second, 5);
        assert_eq!(found[1].seconds_to_adequate, None);
        // A rise that supply already covers is no recovery.
        assert!(recoveries(&[1, 2], &[3, 3]).is_empty());
    }

    #[test]
    fn slo_seconds_count_slow_or_failing_seconds() {
        let point = |p99_ms: f64, errors: u64| TimelinePoint {
            latency: Some(LatencySummary {
                p99_ms,
                ..LatencySummary::default()
            }),
            errors,
            ..TimelinePoint::default()
        };
        let timeline = [
            point(10.0, 0),
            point(150.0, 0),
            point(10.0, 2),
            TimelinePoint::default(),
        ];
        assert_eq!(slo_violation_seconds(&timeline, 100.0), 2);
    }
}
