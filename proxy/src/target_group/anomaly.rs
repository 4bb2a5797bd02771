//! Anomaly detection and mitigation, ALB's "automatic target weights": a target whose error
//! ratio stands out from its peers' is reported anomalous and, when mitigation is on, its share
//! of traffic is cut step by step and given back step by step once it behaves again.
//!
//! AWS does not publish ALB's thresholds; these are scalegate's:
//!
//! - **Errors** are 5xx responses from the target plus connection errors; the **error ratio** is
//!   errors ÷ requests over a sliding window of the last [`WINDOW_SECONDS`] (30) seconds, kept
//!   as one-second buckets filled from the deltas of each target's cumulative counters. A
//!   counter that goes backwards (the target was re-created) starts that target afresh: empty
//!   window, full weight.
//! - **Who is judged**: detection runs only when the group has at least [`MINIMUM_TARGETS`] (3)
//!   healthy targets, as in ALB, and only targets with at least [`MINIMUM_REQUESTS`] (20)
//!   requests in the window are judged; at least three targets must have that much traffic,
//!   so a target is always compared with at least two peers.
//! - **Anomalous** when a target's error ratio is at least [`MINIMUM_ERROR_RATIO`] (10 %) *and*
//!   at least [`PEER_RATIO_MULTIPLIER`] (3) × the median error ratio of its judged peers plus
//!   [`PEER_RATIO_MARGIN`] (5 percentage points). The median ignores a single other bad peer;
//!   the margin keeps a target from standing out against error-free peers over a few errors.
//!   When most targets fail alike, the median is high and none stands out: the problem is not
//!   one target.
//! - **Mitigation** (only with `anomaly_mitigation` on): an anomalous target's weight halves at
//!   once and then every [`MITIGATION_STEP`] (5 s) while it stays anomalous, down to
//!   [`MITIGATION_FLOOR_WEIGHT`] (1 % of a full share, "negligible"). Once judged normal it
//!   doubles every [`MITIGATION_STEP`] back to full ("gradually increase"). A mitigated target
//!   whose low weight leaves it too little traffic to judge still counts as anomalous, but is
//!   probed with more traffic: its weight doubles every [`PROBE_STEP`] (10 s) until it is
//!   judged again or back to full.
//! - **At most half** of the targets are mitigated at once: when more than half are anomalous,
//!   the peers are the problem, so mitigation stops and every weight recovers as above.
//! - **Without mitigation**, verdicts still say which targets are anomalous (ALB always reports
//!   `AnomalousHostCount`), with full weight.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::target_group::balancer::CumulativeWeights;

/// ALB only detects anomalies in groups of at least this many healthy targets; fewer give no
/// meaningful majority to compare with. Also the number of targets with enough traffic needed
/// for any judgement.
pub const MINIMUM_TARGETS: usize = 3;

/// Length of the sliding window, in one-second buckets: long enough to gather a sample at low
/// traffic, short enough that a recovered target is noticed within half a minute.
pub const WINDOW_SECONDS: usize = 30;

/// Requests a target needs in the window to be judged; below this a few errors are noise.
pub const MINIMUM_REQUESTS: u64 = 20;

/// An error ratio below this is never anomalous, however clean the peers are.
pub const MINIMUM_ERROR_RATIO: f64 = 0.10;

/// How many times its peers' median error ratio a target's must reach to stand out.
pub const PEER_RATIO_MULTIPLIER: f64 = 3.0;

/// Added to the scaled peer median, so that error-free peers do not make a few errors stand out.
pub const PEER_RATIO_MARGIN: f64 = 0.05;

/// Time between two weight changes of a target that is judged: halving while anomalous,
/// doubling once normal.
pub const MITIGATION_STEP: Duration = Duration::from_secs(5);

/// Time between two doublings of a mitigated target that has too little traffic to be judged:
/// slower than a normal recovery, since nothing shows it has recovered.
pub const PROBE_STEP: Duration = Duration::from_secs(10);

/// The lowest weight mitigation sets (1 % of a full share): negligible traffic, but enough to
/// notice a recovery.
pub const MITIGATION_FLOOR_WEIGHT: u32 = CumulativeWeights::FULL_WEIGHT / 100;

const FULL_WEIGHT: u32 = CumulativeWeights::FULL_WEIGHT;

/// One target's cumulative counters as read from its metrics, given every evaluation tick; the
/// detector works on their deltas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetCounters {
    /// Requests sent to the target.
    pub requests: u64,
    /// Of those, 5xx responses from the target plus connection errors.
    pub errors: u64,
}

/// The detector's conclusion about one target, as DescribeTargetHealth's `AnomalyDetection`
/// reports it, plus the weight the balancer should give it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnomalyVerdict {
    /// `Result: anomalous` (else `normal`).
    pub anomalous: bool,
    /// `MitigationInEffect: yes`: the target gets less than a full share.
    pub mitigated: bool,
    /// Weight on the [`CumulativeWeights::FULL_WEIGHT`] scale.
    pub weight: u32,
}

/// Per-target sliding windows and mitigation weights for one target group, keyed by target
/// address; owned by the group's evaluation task, never touched by the request path.
#[derive(Debug)]
pub struct AnomalyDetector {
    mitigation: bool,
    targets: HashMap<SocketAddr, TargetState>,
    /// The instant second 0 of the bucket clock started (the first update).
    origin: Option<Instant>,
    /// The second (since `origin`) the current buckets belong to.
    current_second: u64,
    /// Counts updates, to forget targets an update did not mention.
    generation: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    requests: u64,
    errors: u64,
}

#[derive(Debug)]
struct TargetState {
    buckets: [Bucket; WINDOW_SECONDS],
    /// The counters of the previous update, to take deltas from.
    last_counters: TargetCounters,
    weight: u32,
    anomalous: bool,
    /// When `weight` last changed; `None` lets the first change happen at once.
    last_weight_change: Option<Instant>,
    /// The update that last mentioned this target.
    generation: u64,
}

impl TargetState {
    fn new(counters: TargetCounters, generation: u64) -> Self {
        TargetState {
            buckets: [Bucket::default(); WINDOW_SECONDS],
            last_counters: counters,
            weight: FULL_WEIGHT,
            anomalous: false,
            last_weight_change: None,
            generation,
        }
    }

    fn window(&self) -> Bucket {
        self.buckets
            .iter()
            .fold(Bucket::default(), |sum, bucket| Bucket {
                requests: sum.requests + bucket.requests,
                errors: sum.errors + bucket.errors,
            })
    }

    /// Moves the weight one step (halving or doubling) if the last change is `step` old.
    fn step_weight(&mut self, now: Instant, direction: Direction, step: Duration) {
        let weight = match direction {
            Direction::Down => (self.weight / 2).max(MITIGATION_FLOOR_WEIGHT),
            Direction::Up => self.weight.saturating_mul(2).min(FULL_WEIGHT),
        };
        let due = self
            .last_weight_change
            .is_none_or(|last| now.saturating_duration_since(last) >= step);
        if weight != self.weight && due {
            self.weight = weight;
            self.last_weight_change = Some(now);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Down,
    Up,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Judgement {
    Anomalous,
    Normal,
    /// Too little traffic (or too few peers with traffic) to say.
    Unjudged,
}

impl AnomalyDetector {
    /// A detector for one target group; `mitigation` is the group's
    /// `load_balancing.algorithm.anomaly_mitigation` (only meaningful with weighted random).
    pub fn new(mitigation: bool) -> Self {
        AnomalyDetector {
            mitigation,
            targets: HashMap::new(),
            origin: None,
            current_second: 0,
            generation: 0,
        }
    }

    /// Turns mitigation on or off (a config reload) without losing the windows; when turned
    /// off, weights return to full at the next update.
    pub fn set_mitigation(&mut self, mitigation: bool) {
        self.mitigation = mitigation;
    }

    /// Called about once a second with every healthy target's cumulative counters (addresses
    /// unique); returns verdicts in the same order. Targets absent from a call are forgotten,
    /// so one that comes back starts afresh at full weight.
    pub fn update(
        &mut self,
        now: Instant,
        targets: &[(SocketAddr, TargetCounters)],
    ) -> Vec<AnomalyVerdict> {
        self.generation += 1;
        let generation = self.generation;
        self.advance_clock(now);
        let bucket = self.current_second as usize % WINDOW_SECONDS;

        // Record this tick's deltas and read each target's window.
        let mut windows = Vec::with_capacity(targets.len());
        for &(address, counters) in targets {
            let state = self
                .targets
                .entry(address)
                .or_insert_with(|| TargetState::new(counters, generation));
            if state.generation != generation {
                state.generation = generation;
                let last = state.last_counters;
                if counters.requests < last.requests || counters.errors < last.errors {
                    // A re-created target behind the same address: its window and weight
                    // describe something else, so it starts afresh from these counters.
                    *state = TargetState::new(counters, generation);
                } else {
                    state.buckets[bucket].requests += counters.requests - last.requests;
                    state.buckets[bucket].errors += counters.errors - last.errors;
                    state.last_counters = counters;
                }
            }
            windows.push(state.window());
        }
        self.targets
            .retain(|_, state| state.generation == generation);

        let judgements = judge(&windows);
        let anomalous: Vec<bool> = targets
            .iter()
            .zip(&judgements)
            .map(|((address, _), judgement)| match judgement {
                Judgement::Anomalous => true,
                Judgement::Normal => false,
                // Mitigation starves a target of the traffic that would judge it: it stays
                // anomalous while mitigated, until traffic shows otherwise.
                Judgement::Unjudged => {
                    let state = &self.targets[address];
                    state.anomalous && state.weight < FULL_WEIGHT
                }
            })
            .collect();
        let anomalous_count = anomalous.iter().filter(|&&anomalous| anomalous).count();
        let mitigate = self.mitigation && anomalous_count * 2 <= targets.len();

        targets
            .iter()
            .zip(judgements.iter().zip(anomalous))
            .map(|((address, _), (&judgement, anomalous))| {
                let state = self.targets.get_mut(address).expect("recorded above");
                state.anomalous = anomalous;
                if !self.mitigation {
                    state.weight = FULL_WEIGHT;
                } else if mitigate && judgement == Judgement::Anomalous {
                    state.step_weight(now, Direction::Down, MITIGATION_STEP);
                } else if mitigate && anomalous {
                    state.step_weight(now, Direction::Up, PROBE_STEP);
                } else {
                    state.step_weight(now, Direction::Up, MITIGATION_STEP);
                }
                AnomalyVerdict {
                    anomalous,
                    mitigated: state.weight < FULL_WEIGHT,
                    weight: state.weight,
                }
            })
            .collect()
    }

    /// Moves the bucket clock to `now`, emptying the buckets of the seconds that passed.
    fn advance_clock(&mut self, now: Instant) {
        let origin = *self.origin.get_or_insert(now);
        let second = now.saturating_duration_since(origin).as_secs();
        if second <= self.current_second {
            return;
        }
        let passed = (second - self.current_second).min(WINDOW_SECONDS as u64);
        for state in self.targets.values_mut() {
            for offset in 1..=passed {
                let index = (self.current_second + offset) % WINDOW_SECONDS as u64;
                state.buckets[index as usize] = Bucket::default();
            }
        }
        self.current_second = second;
    }
}

/// Judges each window against the others (same order), per the module's thresholds.
fn judge(windows: &[Bucket]) -> Vec<Judgement> {
    let ratio = |window: &Bucket| {
        (window.requests >= MINIMUM_REQUESTS)
            .then(|| window.errors.min(window.requests) as f64 / window.requests as f64)
    };
    let mut ratios: Vec<f64> = if windows.len() >= MINIMUM_TARGETS {
        windows.iter().filter_map(ratio).collect()
    } else {
        Vec::new()
    };
    if ratios.len() < MINIMUM_TARGETS {
        return vec![Judgement::Unjudged; windows.len()];
    }
    ratios.sort_by(f64::total_cmp);
    windows
        .iter()
        .map(|window| match ratio(window) {
            None => Judgement::Unjudged,
            Some(own) => {
                let position = ratios.partition_point(|&other| other < own);
                let peers = median_excluding(&ratios, position);
                if own >= MINIMUM_ERROR_RATIO
                    && own >= PEER_RATIO_MULTIPLIER * peers + PEER_RATIO_MARGIN
                {
                    Judgement::Anomalous
                } else {
                    Judgement::Normal
                }
            }
        })
        .collect()
}

/// The median of `sorted` without its element at `removed` (at least two remain).
fn median_excluding(sorted: &[f64], removed: usize) -> f64 {
    let len = sorted.len() - 1;
    let at = |index: usize| {
        if index < removed {
            sorted[index]
        } else {
            sorted[index + 1]
        }
    };
    if len % 2 == 1 {
        at(len / 2)
    } else {
        (at(len / 2 - 1) + at(len / 2)) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a detector one simulated second at a time, with traffic chosen per target from
    /// its current weight, as a balancer would send it.
    struct Simulation {
        detector: AnomalyDetector,
        start: Instant,
        second: u64,
        counters: Vec<TargetCounters>,
        verdicts: Vec<AnomalyVerdict>,
    }

    impl Simulation {
        fn new(targets: usize, mitigation: bool) -> Self {
            Simulation {
                detector: AnomalyDetector::new(mitigation),
                start: Instant::now(),
                second: 0,
                counters: vec![TargetCounters::default(); targets],
                verdicts: vec![
                    AnomalyVerdict {
                        anomalous: false,
                        mitigated: false,
                        weight: FULL_WEIGHT,
                    };
                    targets
                ],
            }
        }

        fn address(index: usize) -> SocketAddr {
            SocketAddr::from(([127, 0, 0, 1], 8000 + index as u16))
        }

        /// One second: `traffic(target, weight)` gives the target's (requests, errors).
        fn tick(&mut self, traffic: impl Fn(usize, u32) -> (u64, u64)) -> &[AnomalyVerdict] {
            for (index, counters) in self.counters.iter_mut().enumerate() {
                let (requests, errors) = traffic(index, self.verdicts[index].weight);
                counters.requests += requests;
                counters.errors += errors;
            }
            let input: Vec<_> = self
                .counters
                .iter()
                .enumerate()
                .map(|(index, &counters)| (Self::address(index), counters))
                .collect();
            self.second += 1;
            let now = self.start + Duration::from_secs(self.second);
            self.verdicts = self.detector.update(now, &input);
            &self.verdicts
        }
    }

    /// 1000 requests a second at full weight, fewer in proportion to the weight.
    fn weighted_requests(weight: u32) -> u64 {
        1_000 * u64::from(weight) / u64::from(FULL_WEIGHT)
    }

    fn half_failing(requests: u64) -> (u64, u64) {
        (requests, requests.div_ceil(2))
    }

    fn assert_never_anomalous(
        simulation: &mut Simulation,
        seconds: u64,
        traffic: impl Fn(usize, u32) -> (u64, u64) + Copy,
    ) {
        for _ in 0..seconds {
            let verdicts = simulation.tick(traffic);
            for verdict in verdicts {
                assert!(!verdict.anomalous && !verdict.mitigated, "{verdicts:?}");
                assert_eq!(verdict.weight, FULL_WEIGHT);
            }
        }
    }

    #[test]
    fn failing_target_is_cut_to_the_floor_step_by_step_then_recovers_step_by_step() {
        let mut simulation = Simulation::new(4, true);
        let mut weights = vec![FULL_WEIGHT];
        let mut changed_at = Vec::new();
        // Target 0 fails half its requests until its weight reaches the floor and stays there.
        let mut floor_since = None;
        for second in 1..=120 {
            let verdicts = simulation
                .tick(|target, weight| {
                    let requests = weighted_requests(weight);
                    if target == 0 {
                        half_failing(requests)
                    } else {
                        (requests, 0)
                    }
                })
                .to_vec();
            assert!(verdicts[1..].iter().all(|v| !v.anomalous && !v.mitigated));
            if second > 1 {
                assert!(verdicts[0].anomalous, "second {second}: {verdicts:?}");
                assert!(verdicts[0].mitigated);
            }
            if verdicts[0].weight != *weights.last().expect("a weight") {
                weights.push(verdicts[0].weight);
                changed_at.push(second);
            }
            if verdicts[0].weight == MITIGATION_FLOOR_WEIGHT {
                let since = *floor_since.get_or_insert(second);
                if second - since >= 20 {
                    break;
                }
            }
        }
        assert_eq!(
            weights,
            [
                10_000,
                5_000,
                2_500,
                1_250,
                625,
                312,
                156,
                MITIGATION_FLOOR_WEIGHT
            ]
        );
        assert!(changed_at
            .windows(2)
            .all(|pair| pair[1] - pair[0] == MITIGATION_STEP.as_secs()));

        // It stops failing: within a window it is normal again, then doubles back to full.
        let mut weights = vec![MITIGATION_FLOOR_WEIGHT];
        for _ in 0..120 {
            let verdicts = simulation.tick(|_, weight| (weighted_requests(weight), 0));
            let weight = verdicts[0].weight;
            if weight != *weights.last().expect("a weight") {
                assert!(!verdicts[0].anomalous, "{verdicts:?}");
                weights.push(weight);
            }
            if weight == FULL_WEIGHT {
                assert_eq!(
                    verdicts[0],
                    AnomalyVerdict {
                        anomalous: false,
                        mitigated: false,
                        weight: FULL_WEIGHT
                    }
                );
                break;
            }
        }
        assert_eq!(
            weights,
            [100, 200, 400, 800, 1_600, 3_200, 6_400, FULL_WEIGHT]
        );
    }

    #[test]
    fn peers_with_similar_error_rates_are_not_anomalous() {
        let mut simulation = Simulation::new(4, true);
        let percent = [8, 10, 12, 9];
        assert_never_anomalous(&mut simulation, 60, |target, _| {
            (1_000, 10 * percent[target])
        });
    }

    #[test]
    fn two_targets_are_never_anomalous() {
        let mut simulation = Simulation::new(2, true);
        assert_never_anomalous(&mut simulation, 60, |target, _| {
            if target == 0 {
                half_failing(1_000)
            } else {
                (1_000, 0)
            }
        });
    }

    #[test]
    fn most_targets_failing_is_not_an_anomaly() {
        let mut simulation = Simulation::new(4, true);
        assert_never_anomalous(&mut simulation, 60, |target, _| {
            if target < 3 {
                half_failing(1_000)
            } else {
                (1_000, 0)
            }
        });
    }

    #[test]
    fn too_few_requests_are_not_judged() {
        let mut simulation = Simulation::new(4, true);
        // Target 0 fails every request but gets one only every other second: 15 per window.
        let second = std::cell::Cell::new(0u64);
        for _ in 0..90 {
            second.set(second.get() + 1);
            let verdicts = simulation.tick(|target, _| match target {
                0 if second.get().is_multiple_of(2) => (1, 1),
                0 => (0, 0),
                _ => (1_000, 0),
            });
            assert!(!verdicts[0].anomalous && verdicts[0].weight == FULL_WEIGHT);
        }
    }

    #[test]
    fn without_mitigation_anomalies_are_reported_at_full_weight() {
        let mut simulation = Simulation::new(3, false);
        for second in 1..=30 {
            let verdicts = simulation.tick(|target, weight| {
                let requests = weighted_requests(weight);
                if target == 0 {
                    half_failing(requests)
                } else {
                    (requests, 0)
                }
            });
            assert_eq!(verdicts[0].anomalous, second > 1, "{verdicts:?}");
            assert!(verdicts
                .iter()
                .all(|verdict| !verdict.mitigated && verdict.weight == FULL_WEIGHT));
        }
    }

    #[test]
    fn mitigation_stops_when_more_than_half_would_be_mitigated() {
        // Targets 0 and 1 fail and are mitigated (two of five), then get no traffic at all, so
        // they stay anomalous without being judged; when target 2 fails too, three of five are
        // anomalous and mitigation stops.
        let mut simulation = Simulation::new(5, true);
        let failing = |target: usize| target < 2;
        for _ in 0..40 {
            simulation.tick(|target, _| {
                if failing(target) {
                    half_failing(1_000)
                } else {
                    (1_000, 0)
                }
            });
        }
        let verdicts = &simulation.verdicts;
        assert!(
            verdicts[0].mitigated && verdicts[1].mitigated,
            "{verdicts:?}"
        );
        for _ in 0..WINDOW_SECONDS + 1 {
            let verdicts = simulation.tick(
                |target, _| {
                    if failing(target) {
                        (0, 0)
                    } else {
                        (1_000, 0)
                    }
                },
            );
            assert!(
                verdicts[0].anomalous && verdicts[1].anomalous,
                "{verdicts:?}"
            );
        }
        let starved = simulation.verdicts[0].weight;
        assert!(starved < FULL_WEIGHT / 4, "{:?}", simulation.verdicts);

        let mut recovered = false;
        for _ in 0..60 {
            let verdicts = simulation.tick(|target, _| match target {
                0 | 1 => (0, 0),
                2 => half_failing(1_000),
                _ => (1_000, 0),
            });
            assert_eq!(verdicts[2].weight, FULL_WEIGHT, "{verdicts:?}");
            assert!(verdicts[0].weight >= starved);
            if verdicts[..2].iter().all(|v| v.weight == FULL_WEIGHT) {
                assert!(verdicts[2].anomalous, "{verdicts:?}");
                recovered = true;
                break;
            }
        }
        assert!(recovered, "{:?}", simulation.verdicts);
    }

    #[test]
    fn counters_going_backwards_start_the_target_afresh() {
        let mut simulation = Simulation::new(3, true);
        for _ in 0..10 {
            simulation.tick(|target, _| {
                if target == 0 {
                    half_failing(1_000)
                } else {
                    (1_000, 0)
                }
            });
        }
        assert!(simulation.verdicts[0].anomalous && simulation.verdicts[0].mitigated);
        // Target 0 is re-created and behaves: only its error counter shows it (it restarted
        // and already served more requests than before). Its old failures are forgotten.
        simulation.counters[0].errors = 0;
        simulation.counters[0].requests += 50_000;
        for _ in 0..5 {
            let verdicts = simulation.tick(|_, _| (1_000, 0));
            assert_eq!(verdicts[0].weight, FULL_WEIGHT, "{verdicts:?}");
            assert!(!verdicts[0].anomalous, "{verdicts:?}");
        }
        // Every counter restarting from zero is handled the same way.
        simulation.counters = vec![TargetCounters::default(); 3];
        let verdicts = simulation.tick(|_, _| (1_000, 0));
        assert!(verdicts.iter().all(|v| !v.anomalous), "{verdicts:?}");
    }

    #[test]
    fn absent_targets_are_forgotten() {
        let mut simulation = Simulation::new(3, true);
        for _ in 0..10 {
            simulation.tick(|target, _| {
                if target == 0 {
                    half_failing(1_000)
                } else {
                    (1_000, 0)
                }
            });
        }
        assert!(simulation.verdicts[0].mitigated);
        let later = simulation.start + Duration::from_secs(20);
        let others: Vec<_> = (1..3)
            .map(|index| (Simulation::address(index), simulation.counters[index]))
            .collect();
        simulation.detector.update(later, &others);
        let all: Vec<_> = (0..3)
            .map(|index| (Simulation::address(index), simulation.counters[index]))
            .collect();
        let verdicts = simulation
            .detector
            .update(later + Duration::from_secs(1), &all);
        assert_eq!(
            verdicts[0],
            AnomalyVerdict {
                anomalous: false,
                mitigated: false,
                weight: FULL_WEIGHT
            }
        );
    }

    #[test]
    fn median_leaves_out_the_judged_target() {
        let sorted = [0.0, 0.1, 0.2, 0.9];
        assert_eq!(median_excluding(&sorted, 3), 0.1);
        assert_eq!(median_excluding(&sorted, 0), 0.2);
        assert!((median_excluding(&sorted[..3], 1) - 0.1).abs() < 1e-12);
    }
}
