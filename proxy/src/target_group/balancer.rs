//! Picking a target for a request: ALB's three algorithms, plus the relative weights that slow
//! start and anomaly mitigation put on targets.
//!
//! A pick runs once per request (and once more per retry), so it allocates nothing, takes no
//! lock and makes no system call: round robin's cursor is one atomic shared by all worker
//! threads, and weights come as a [`CumulativeWeights`] table built once per routing snapshot.
//! Randomness comes in as a `u64` from the caller, so the request path can use its
//! thread-local generator and tests can seed one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Which ALB algorithm a target group uses (`load_balancing.algorithm.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// `round_robin`, ALB's default: targets take turns; suits similar requests and targets.
    #[default]
    RoundRobin,
    /// `least_outstanding_requests`: the target with the fewest requests in flight; suits
    /// requests of uneven cost or targets of uneven capacity. Ignores weights: ALB cannot combine
    /// it with slow start, and anomaly mitigation only applies to weighted random.
    LeastOutstandingRequests,
    /// `weighted_random`: a random target, in proportion to its weight; the only algorithm
    /// anomaly mitigation works with.
    WeightedRandom,
}

/// Per-candidate relative weights (slow-start ramp, anomaly mitigation) as a cumulative table,
/// built once per routing snapshot rather than per request, so a weighted pick is one binary
/// search.
///
/// Weights are relative, on a scale where [`CumulativeWeights::FULL_WEIGHT`] is a full share: a
/// candidate's share of traffic is its weight divided by the sum of all weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CumulativeWeights {
    /// `ends[i]` is the sum of the weights of candidates `0..=i`: candidate `i` owns the draws
    /// in `ends[i - 1]..ends[i]`, so a zero weight owns none. Never empty, last entry non-zero.
    ends: Box<[u64]>,
}

impl CumulativeWeights {
    /// The weight of a target with a full share of traffic (out of slow start, not mitigated).
    pub const FULL_WEIGHT: u32 = 10_000;

    /// Builds the table, or returns `None` when every weight is the same (all full, typically),
    /// so callers keep the uniform fast paths and the exact rotation of round robin.
    ///
    /// A zero weight is allowed and that candidate is never picked; if every weight is zero the
    /// result is also `None` (uniform), because making the whole group unroutable is worse than
    /// ignoring weights.
    pub fn new(weights: impl IntoIterator<Item = u32>) -> Option<CumulativeWeights> {
        let mut total = 0u64;
        let mut first = None;
        let mut all_equal = true;
        let ends: Box<[u64]> = weights
            .into_iter()
            .map(|weight| {
                all_equal &= *first.get_or_insert(weight) == weight;
                total += u64::from(weight);
                total
            })
            .collect();
        if all_equal || total == 0 {
            None
        } else {
            Some(CumulativeWeights { ends })
        }
    }

    /// Number of candidates; must equal the candidate count passed to [`Balancer::pick`].
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Always false (an empty table is represented as `None`); here because `len` is.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The index for a uniform random `u64`, each candidate drawn in proportion to its weight
    /// (binary search over the cumulative sums).
    pub fn pick(&self, random: u64) -> usize {
        let draw = scale(random, self.total());
        self.ends.partition_point(|&end| end <= draw)
    }

    /// Like [`pick`](Self::pick) but never `skip`: the draw covers the other candidates'
    /// weights only and jumps over `skip`'s range, so it is exact and needs no redraw. When the
    /// others all weigh zero they are picked uniformly (a retry beats a failed request).
    /// Needs at least two candidates and `skip < len`.
    fn pick_excluding(&self, random: u64, skip: usize) -> usize {
        let skipped = self.weight(skip);
        let rest = self.total() - skipped;
        if rest == 0 {
            return uniform_excluding(random, self.len(), skip);
        }
        let mut draw = scale(random, rest);
        if draw >= self.ends[skip] - skipped {
            draw += skipped;
        }
        self.ends.partition_point(|&end| end <= draw)
    }

    fn pick_among(&self, random: u64, skip: Option<usize>) -> usize {
        match skip {
            Some(skip) => self.pick_excluding(random, skip),
            None => self.pick(random),
        }
    }

    fn total(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    fn weight(&self, index: usize) -> u64 {
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        self.ends[index] - start
    }
}

/// A target group's picking state: one per group, shared by all worker threads.
#[derive(Debug)]
pub struct Balancer {
    algorithm: Algorithm,
    /// Round robin's position; wraps harmlessly.
    next: AtomicUsize,
}

impl Balancer {
    /// A balancer for `algorithm`, round robin starting at the first candidate.
    pub fn new(algorithm: Algorithm) -> Self {
        Balancer {
            algorithm,
            next: AtomicUsize::new(0),
        }
    }

    /// The algorithm this balancer applies.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Picks one of `count` candidates (indices `0..count`).
    ///
    /// - `weights`: the snapshot's table, if any; it must have `count` entries (one that does
    ///   not is ignored rather than misroute). Round robin with a table (slow start) picks by
    ///   weight instead of rotating: a weighted draw over a ramping table gives each target the
    ///   linearly growing share ALB describes, without per-target state or locks. Least
    ///   outstanding requests ignores it.
    /// - `outstanding(i)`: requests in flight on candidate `i`; read by least outstanding
    ///   requests only, once per candidate.
    /// - `skip`: a candidate that must not be chosen (the target a retry just failed on).
    /// - `random`: a uniform `u64` from the caller.
    ///
    /// Returns `None` when `count` is 0 or `skip` is the only candidate.
    pub fn pick(
        &self,
        count: usize,
        weights: Option<&CumulativeWeights>,
        outstanding: impl Fn(usize) -> usize,
        skip: Option<usize>,
        random: u64,
    ) -> Option<usize> {
        let skip = skip.filter(|&skip| skip < count);
        match (count, skip) {
            (0, _) | (1, Some(_)) => return None,
            (1, None) => return Some(0),
            (2, Some(skip)) => return Some(1 - skip),
            _ => {}
        }
        debug_assert!(
            weights.is_none_or(|table| table.len() == count),
            "a weights table must have one entry per candidate"
        );
        let weights = weights.filter(|table| table.len() == count);
        let index = match (self.algorithm, weights) {
            (Algorithm::LeastOutstandingRequests, _) => {
                least_outstanding(count, outstanding, skip, random)
            }
            (Algorithm::RoundRobin | Algorithm::WeightedRandom, Some(table)) => {
                table.pick_among(random, skip)
            }
            (Algorithm::RoundRobin, None) => {
                let index = self.next.fetch_add(1, Ordering::Relaxed) % count;
                match skip {
                    // The turn fell on the skipped target: any other one, at random, so its
                    // share spreads evenly rather than doubling its successor's.
                    Some(skip) if skip == index => uniform_excluding(random, count, skip),
                    _ => index,
                }
            }
            (Algorithm::WeightedRandom, None) => match skip {
                Some(skip) => uniform_excluding(random, count, skip),
                None => uniform(random, count),
            },
        };
        Some(index)
    }
}

/// Below this weight a target in slow start is not ramped, so one that has just entered slow
/// start still gets a trickle of traffic (1 % of a full share).
pub const SLOW_START_FLOOR_WEIGHT: u32 = CumulativeWeights::FULL_WEIGHT / 100;

/// The weight of a target `elapsed` into a slow start of `duration`: ALB "linearly increases"
/// a target's requests over the duration, so this is `FULL_WEIGHT × elapsed / duration`, never
/// below [`SLOW_START_FLOOR_WEIGHT`], and `FULL_WEIGHT` from `duration` on (at once when
/// `duration` is zero, i.e. slow start is off).
pub fn slow_start_weight(elapsed: Duration, duration: Duration) -> u32 {
    if elapsed >= duration {
        return CumulativeWeights::FULL_WEIGHT;
    }
    // elapsed < duration, so duration is non-zero and the ramp is below FULL_WEIGHT.
    let ramp =
        u128::from(CumulativeWeights::FULL_WEIGHT) * elapsed.as_nanos() / duration.as_nanos();
    u32::try_from(ramp)
        .unwrap_or(CumulativeWeights::FULL_WEIGHT)
        .max(SLOW_START_FLOOR_WEIGHT)
}

/// The least-loaded candidate other than `skip`; ties are broken uniformly at random
/// (reservoir sampling over the tied candidates, one pass), so with equal loads traffic spreads
/// evenly instead of piling on the first candidate.
fn least_outstanding(
    count: usize,
    outstanding: impl Fn(usize) -> usize,
    skip: Option<usize>,
    random: u64,
) -> usize {
    let mut state = random;
    let mut best: Option<(usize, usize)> = None;
    let mut ties = 0u64;
    for index in (0..count).filter(|&index| Some(index) != skip) {
        let load = outstanding(index);
        match best {
            Some((_, least)) if load > least => {}
            Some((_, least)) if load == least => {
                // Each of the `ties` candidates seen so far ends up chosen with chance 1/ties.
                ties += 1;
                if scale(next_random(&mut state), ties) == 0 {
                    best = Some((index, load));
                }
            }
            _ => {
                best = Some((index, load));
                ties = 1;
            }
        }
    }
    best.map_or(0, |(index, _)| index)
}

/// A uniform index in `0..count`.
fn uniform(random: u64, count: usize) -> usize {
    scale(random, count as u64) as usize
}

/// A uniform index in `0..count` other than `skip` (`count >= 2`, `skip < count`).
fn uniform_excluding(random: u64, count: usize, skip: usize) -> usize {
    let index = uniform(random, count - 1);
    if index >= skip {
        index + 1
    } else {
        index
    }
}

/// Maps a uniform `u64` onto `0..bound` by multiplying and keeping the high half: no division,
/// and a bias of at most `bound / 2^64`, far below anything measurable.
fn scale(random: u64, bound: u64) -> u64 {
    ((u128::from(random) * u128::from(bound)) >> 64) as u64
}

/// SplitMix64: further random numbers from the caller's one, for tie-breaking.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut mixed = *state;
    mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    mixed ^ (mixed >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PICKS: usize = 100_000;
    const FULL: u32 = CumulativeWeights::FULL_WEIGHT;

    /// Counts how often each of `count` candidates is picked over [`PICKS`] seeded picks.
    fn histogram(
        balancer: &Balancer,
        count: usize,
        weights: Option<&CumulativeWeights>,
        outstanding: impl Fn(usize) -> usize + Copy,
        skip: Option<usize>,
    ) -> Vec<usize> {
        let mut rng = fastrand::Rng::with_seed(42);
        let mut counts = vec![0; count];
        for _ in 0..PICKS {
            let index = balancer
                .pick(count, weights, outstanding, skip, rng.u64(..))
                .expect("a candidate");
            counts[index] += 1;
        }
        counts
    }

    fn assert_share(counts: &[usize], index: usize, expected: f64) {
        let share = counts[index] as f64 / counts.iter().sum::<usize>() as f64;
        assert!(
            (share - expected).abs() <= 0.02,
            "candidate {index}: share {share:.3}, expected {expected:.3} (counts {counts:?})"
        );
    }

    fn idle(_: usize) -> usize {
        0
    }

    const ALGORITHMS: [Algorithm; 3] = [
        Algorithm::RoundRobin,
        Algorithm::LeastOutstandingRequests,
        Algorithm::WeightedRandom,
    ];

    #[test]
    fn weights_all_equal_or_all_zero_are_uniform() {
        assert_eq!(CumulativeWeights::new([FULL; 4]), None);
        assert_eq!(CumulativeWeights::new([500; 3]), None);
        assert_eq!(CumulativeWeights::new([0; 3]), None);
        assert_eq!(CumulativeWeights::new([]), None);
        let table = CumulativeWeights::new([FULL, 0, 100]).expect("a table");
        assert_eq!(table.len(), 3);
        assert!(!table.is_empty());
    }

    #[test]
    fn weighted_pick_covers_the_whole_random_range() {
        let table = CumulativeWeights::new([1, 0, 3]).expect("a table");
        assert_eq!(table.pick(0), 0);
        assert_eq!(table.pick(u64::MAX / 4 - 1), 0);
        assert_eq!(table.pick(u64::MAX / 4 + 1), 2);
        assert_eq!(table.pick(u64::MAX), 2);
    }

    #[test]
    fn round_robin_rotates_exactly() {
        let balancer = Balancer::new(Algorithm::RoundRobin);
        let picks: Vec<_> = (0..7)
            .map(|_| balancer.pick(3, None, idle, None, 0).expect("a candidate"))
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn round_robin_with_weights_follows_the_weights() {
        let table = CumulativeWeights::new([FULL / 4, FULL * 3 / 4]).expect("a table");
        let counts = histogram(
            &Balancer::new(Algorithm::RoundRobin),
            2,
            Some(&table),
            idle,
            None,
        );
        assert_share(&counts, 0, 0.25);
        assert_share(&counts, 1, 0.75);
    }

    #[test]
    fn weighted_random_shares_follow_the_weights() {
        let balancer = Balancer::new(Algorithm::WeightedRandom);
        let table = CumulativeWeights::new([FULL / 4, FULL * 3 / 4]).expect("a table");
        let counts = histogram(&balancer, 2, Some(&table), idle, None);
        assert_share(&counts, 0, 0.25);
        assert_share(&counts, 1, 0.75);

        let counts = histogram(&balancer, 3, None, idle, None);
        for index in 0..3 {
            assert_share(&counts, index, 1.0 / 3.0);
        }
    }

    #[test]
    fn zero_weight_is_never_picked() {
        let table = CumulativeWeights::new([0, FULL, FULL / 2, 0]).expect("a table");
        for algorithm in [Algorithm::RoundRobin, Algorithm::WeightedRandom] {
            let counts = histogram(&Balancer::new(algorithm), 4, Some(&table), idle, None);
            assert_eq!((counts[0], counts[3]), (0, 0), "{algorithm:?}: {counts:?}");
            assert_share(&counts, 1, 2.0 / 3.0);
        }
    }

    #[test]
    fn least_outstanding_picks_the_minimum_and_splits_ties_evenly() {
        let loads = [5, 2, 7, 2, 3];
        let balancer = Balancer::new(Algorithm::LeastOutstandingRequests);
        let counts = histogram(&balancer, 5, None, |index| loads[index], None);
        assert_eq!(counts[0] + counts[2] + counts[4], 0, "{counts:?}");
        assert_share(&counts, 1, 0.5);
        assert_share(&counts, 3, 0.5);
    }

    #[test]
    fn least_outstanding_spreads_evenly_when_all_equal_and_ignores_weights() {
        let table = CumulativeWeights::new([FULL, 1, 1, 1]).expect("a table");
        let balancer = Balancer::new(Algorithm::LeastOutstandingRequests);
        let counts = histogram(&balancer, 4, Some(&table), |_| 3, None);
        for index in 0..4 {
            assert_share(&counts, index, 0.25);
        }
    }

    #[test]
    fn skip_is_honoured_by_every_algorithm() {
        let table = CumulativeWeights::new([1_000, 2_000, 3_000, 4_000]).expect("a table");
        for algorithm in ALGORITHMS {
            for weights in [None, Some(&table)] {
                let counts = histogram(&Balancer::new(algorithm), 4, weights, idle, Some(3));
                assert_eq!(counts[3], 0, "{algorithm:?} {weights:?}: {counts:?}");
                if weights.is_some() && algorithm != Algorithm::LeastOutstandingRequests {
                    // The others keep their relative shares: 1:2:3.
                    for (index, expected) in [(0, 1.0 / 6.0), (1, 2.0 / 6.0), (2, 3.0 / 6.0)] {
                        assert_share(&counts, index, expected);
                    }
                } else {
                    for index in 0..3 {
                        assert_share(&counts, index, 1.0 / 3.0);
                    }
                }
            }
        }
    }

    #[test]
    fn skip_with_only_zero_weights_left_picks_among_them_uniformly() {
        let table = CumulativeWeights::new([0, FULL, 0]).expect("a table");
        let counts = histogram(
            &Balancer::new(Algorithm::WeightedRandom),
            3,
            Some(&table),
            idle,
            Some(1),
        );
        assert_eq!(counts[1], 0);
        assert_share(&counts, 0, 0.5);
    }

    #[test]
    fn least_outstanding_skip_takes_the_next_least_loaded() {
        let loads = [4, 0, 1];
        let balancer = Balancer::new(Algorithm::LeastOutstandingRequests);
        let counts = histogram(&balancer, 3, None, |index| loads[index], Some(1));
        assert_eq!(counts, [0, 0, PICKS]);
    }

    #[test]
    fn edge_counts() {
        for algorithm in ALGORITHMS {
            let balancer = Balancer::new(algorithm);
            assert_eq!(balancer.pick(0, None, idle, None, 7), None);
            assert_eq!(balancer.pick(0, None, idle, Some(0), 7), None);
            assert_eq!(balancer.pick(1, None, idle, None, 7), Some(0));
            assert_eq!(balancer.pick(1, None, idle, Some(0), 7), None);
            // A skip that is not a candidate does not stop the pick.
            assert_eq!(balancer.pick(1, None, idle, Some(5), 7), Some(0));
            assert_eq!(balancer.pick(2, None, idle, Some(0), 7), Some(1));
            assert_eq!(balancer.pick(2, None, idle, Some(1), 7), Some(0));
            assert_eq!(balancer.algorithm(), algorithm);
        }
    }

    #[test]
    fn slow_start_ramps_linearly_from_a_floor_to_full() {
        let duration = Duration::from_secs(30);
        assert_eq!(slow_start_weight(Duration::ZERO, Duration::ZERO), FULL);
        assert_eq!(
            slow_start_weight(Duration::from_secs(5), Duration::ZERO),
            FULL
        );
        assert_eq!(
            slow_start_weight(Duration::ZERO, duration),
            SLOW_START_FLOOR_WEIGHT
        );
        assert_eq!(
            slow_start_weight(Duration::from_millis(10), duration),
            SLOW_START_FLOOR_WEIGHT
        );
        assert_eq!(
            slow_start_weight(Duration::from_secs(15), duration),
            FULL / 2
        );
        assert_eq!(
            slow_start_weight(Duration::from_millis(7_500), duration),
            FULL / 4
        );
        assert_eq!(slow_start_weight(duration, duration), FULL);
        assert_eq!(slow_start_weight(Duration::from_secs(90), duration), FULL);
    }
}
