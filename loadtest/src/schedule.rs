//! What rate to offer when, and how requests are paced.

use std::time::Duration;

/// How requests are issued.
///
/// The open model is the default for rate-driven runs because it is the only honest one when
/// the server stalls: latency counts from each request's *intended* send time, so a stall cannot
/// hide itself (no coordinated omission), and requests that could not leave on time are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadModel {
    /// Requests leave at the schedule's rate whatever the server does; at most `max_in_flight`
    /// are outstanding, and a request that cannot be sent on time is counted as late.
    Open {
        /// Cap on outstanding requests (the worker pool grows up to it).
        max_in_flight: usize,
    },
    /// `connections` connections each send the next request when the previous one answers: for
    /// maximum-throughput tests, where the server sets the rate.
    Closed {
        /// Concurrent connections.
        connections: usize,
    },
}

/// One leg of a staged schedule: move linearly from the previous rate to `target_rate` over
/// `duration` (k6's `stages`).
///
/// The shapes users ask for are compositions: a **ramp** is a stage to a new rate, a **hold** a
/// stage to the same rate, a **step** a zero-length stage (the rate jumps) followed by a hold,
/// a **spike** a short ramp up, a hold and a short ramp down.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    /// How long the stage lasts; zero makes the rate jump.
    pub duration: Duration,
    /// Requests per second at the end of the stage.
    pub target_rate: f64,
}

/// Replay of a per-interval count trace, compressed in time and scaled in rate.
///
/// Trace interval *i* becomes replay bucket *i*, `bucket` long, offering
/// `counts[i] × scale / bucket` requests per second: with the World Cup trace, `bucket = 5 s`
/// and `scale = 1/2000` turn a busy day into a two-hour run peaking near 21.5 req/s.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceReplay {
    /// Requests per trace interval, in order.
    pub counts: Vec<f64>,
    /// Replay time per trace interval.
    pub bucket: Duration,
    /// Multiplier applied to every count (e.g. 1/2000).
    pub scale: f64,
}

/// The offered rate over time.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// `rate` requests per second for `duration`.
    Constant {
        /// Requests per second.
        rate: f64,
        /// Run length.
        duration: Duration,
    },
    /// Starting at `start_rate`, each stage in turn.
    Stages {
        /// Rate at time zero.
        start_rate: f64,
        /// The legs.
        stages: Vec<Stage>,
    },
    /// A replayed trace.
    Trace(TraceReplay),
}

impl Schedule {
    /// Total run length.
    pub fn duration(&self) -> Duration {
        match self {
            Schedule::Constant { duration, .. } => *duration,
            Schedule::Stages { stages, .. } => stages.iter().map(|stage| stage.duration).sum(),
            Schedule::Trace(replay) => replay.bucket * replay.counts.len() as u32,
        }
    }

    /// The intended rate, in requests per second, `elapsed` into the run; `None` once the
    /// schedule has ended. The generator turns this into intended send times.
    pub fn rate_at(&self, elapsed: Duration) -> Option<f64> {
        match self {
            Schedule::Constant { rate, duration } => (elapsed < *duration).then_some(*rate),
            Schedule::Stages { start_rate, stages } => {
                let mut from = *start_rate;
                let mut stage_start = Duration::ZERO;
                for stage in stages {
                    let stage_end = stage_start + stage.duration;
                    if elapsed < stage_end {
                        let progress =
                            (elapsed - stage_start).as_secs_f64() / stage.duration.as_secs_f64();
                        return Some(from + (stage.target_rate - from) * progress);
                    }
                    from = stage.target_rate;
                    stage_start = stage_end;
                }
                None
            }
            Schedule::Trace(replay) => {
                if replay.bucket.is_zero() {
                    return None;
                }
                let index = (elapsed.as_secs_f64() / replay.bucket.as_secs_f64()) as usize;
                let count = replay.counts.get(index)?;
                Some(count * replay.scale / replay.bucket.as_secs_f64())
            }
        }
    }
}

/// One piece of a schedule on which the rate is linear in time (constant when `slope` is 0).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Piece {
    /// Seconds since the start at which the piece begins.
    start: f64,
    /// Its length in seconds (positive).
    length: f64,
    /// Rate at `start`, requests per second.
    start_rate: f64,
    /// Change of rate per second.
    slope: f64,
    /// Requests intended before `start`.
    count_before: f64,
}

impl Piece {
    /// Requests intended during the first `offset` seconds of the piece.
    fn count_within(&self, offset: f64) -> f64 {
        let offset = offset.clamp(0.0, self.length);
        self.start_rate * offset + self.slope * offset * offset / 2.0
    }

    /// The offset into the piece at which `count` requests have been intended (the inverse of
    /// [`Piece::count_within`]): the linear case divides, the ramp solves the quadratic in the
    /// form that stays exact when the start rate is zero and stable when the slope is small.
    fn offset_of_count(&self, count: f64) -> f64 {
        if count <= 0.0 {
            return 0.0;
        }
        let offset = if self.slope == 0.0 {
            count / self.start_rate
        } else {
            let discriminant =
                (self.start_rate * self.start_rate + 2.0 * self.slope * count).max(0.0);
            2.0 * count / (self.start_rate + discriminant.sqrt())
        };
        if offset.is_finite() {
            offset.clamp(0.0, self.length)
        } else {
            self.length
        }
    }
}

/// A schedule's cumulative request count `C(t)` and its exact inverse, prepared once so that
/// finding the intended time of each request costs a binary search, not a walk over the stages.
///
/// Request *n* (from 0) is intended at the first instant the count passes *n*:
/// `inf { t : C(t) > n }`. So stretches where the rate is zero never send anything, the first
/// request leaves when the rate first becomes positive, and second *s* holds exactly
/// `⌈C(s+1)⌉ − ⌈C(s)⌉` requests.
#[derive(Debug, Clone, PartialEq)]
pub struct CumulativeCurve {
    /// Pieces with a positive length, in time order.
    pieces: Vec<Piece>,
    /// `C(duration)`.
    total: f64,
}

impl CumulativeCurve {
    fn new(schedule: &Schedule) -> Self {
        let mut pieces = Vec::new();
        let mut start = 0.0;
        let mut count_before = 0.0;
        let mut push = |length: f64, start_rate: f64, end_rate: f64| {
            if length > 0.0 {
                let piece = Piece {
                    start,
                    length,
                    start_rate,
                    slope: (end_rate - start_rate) / length,
                    count_before,
                };
                count_before += piece.count_within(length);
                start += length;
                pieces.push(piece);
            }
        };
        match schedule {
            Schedule::Constant { rate, duration } => push(duration.as_secs_f64(), *rate, *rate),
            Schedule::Stages { start_rate, stages } => {
                let mut from = *start_rate;
                for stage in stages {
                    push(stage.duration.as_secs_f64(), from, stage.target_rate);
                    from = stage.target_rate;
                }
            }
            Schedule::Trace(replay) => {
                let bucket = replay.bucket.as_secs_f64();
                for count in &replay.counts {
                    let rate = count * replay.scale / bucket;
                    push(bucket, rate, rate);
                }
            }
        }
        CumulativeCurve {
            pieces,
            total: count_before,
        }
    }

    /// Requests intended during the first `elapsed` of the run (fractional; `C(t)`).
    pub fn cumulative(&self, elapsed: Duration) -> f64 {
        let seconds = elapsed.as_secs_f64();
        let index = self.pieces.partition_point(|piece| piece.start <= seconds);
        match index.checked_sub(1).map(|last| &self.pieces[last]) {
            Some(piece) => piece.count_before + piece.count_within(seconds - piece.start),
            None => 0.0,
        }
    }

    /// Requests intended over the whole schedule (`C(duration)`, fractional).
    pub fn total(&self) -> f64 {
        self.total
    }

    /// The instant, since the start, at which the cumulative count first exceeds `count`;
    /// `None` when the schedule never gets there.
    pub fn time_of_count(&self, count: f64) -> Option<Duration> {
        if count.is_nan() || count >= self.total {
            return None;
        }
        // The first piece whose end count exceeds `count`; pieces before it end at or below.
        let index = self.pieces.partition_point(|piece| {
            piece.count_before + piece.count_within(piece.length) <= count
        });
        let piece = self.pieces.get(index)?;
        let seconds = piece.start + piece.offset_of_count(count - piece.count_before);
        Some(Duration::from_secs_f64(seconds))
    }

    /// When request `n` (from 0) is intended; `None` past the end of the schedule.
    pub fn time_of_request(&self, n: u64) -> Option<Duration> {
        self.time_of_count(n as f64)
    }
}

impl Schedule {
    /// The cumulative count and its inverse, prepared for many look-ups (the generator's pacing).
    pub fn curve(&self) -> CumulativeCurve {
        CumulativeCurve::new(self)
    }

    /// Requests intended during the first `elapsed` of the run: the integral of
    /// [`Schedule::rate_at`], fractional.
    pub fn cumulative(&self, elapsed: Duration) -> f64 {
        self.curve().cumulative(elapsed)
    }

    /// When request `n` (from 0) is intended, the exact inverse of [`Schedule::cumulative`]
    /// (see [`CumulativeCurve`]); `None` past the end. For many look-ups build
    /// [`Schedule::curve`] once.
    pub fn time_of_request(&self, n: u64) -> Option<Duration> {
        self.curve().time_of_request(n)
    }

    /// Checks that every rate is finite and non-negative and every duration finite, so that
    /// pacing can trust the curve.
    pub fn validate(&self) -> Result<(), String> {
        let rate_ok = |rate: f64| rate.is_finite() && rate >= 0.0;
        match self {
            Schedule::Constant { rate, .. } if !rate_ok(*rate) => {
                Err(format!("rate must be a non-negative number, got {rate}"))
            }
            Schedule::Stages { start_rate, stages } => {
                if let Some(bad) = std::iter::once(*start_rate)
                    .chain(stages.iter().map(|stage| stage.target_rate))
                    .find(|rate| !rate_ok(*rate))
                {
                    return Err(format!(
                        "stage rates must be non-negative numbers, got {bad}"
                    ));
                }
                Ok(())
            }
            Schedule::Trace(replay) => {
                if !replay.scale.is_finite() || replay.scale < 0.0 {
                    return Err(format!(
                        "trace scale must be a non-negative number, got {}",
                        replay.scale
                    ));
                }
                if replay.bucket.is_zero() && !replay.counts.is_empty() {
                    return Err("trace bucket length must be positive".to_string());
                }
                match replay.counts.iter().position(|count| !rate_ok(*count)) {
                    Some(index) => Err(format!(
                        "trace interval {index} has an invalid count {}",
                        replay.counts[index]
                    )),
                    None => Ok(()),
                }
            }
            Schedule::Constant { .. } => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn constant_rate_until_the_end() {
        let schedule = Schedule::Constant {
            rate: 100.0,
            duration: secs(10.0),
        };
        assert_eq!(schedule.rate_at(secs(0.0)), Some(100.0));
        assert_eq!(schedule.rate_at(secs(9.99)), Some(100.0));
        assert_eq!(schedule.rate_at(secs(10.0)), None);
        assert_eq!(schedule.duration(), secs(10.0));
    }

    #[test]
    fn stages_ramp_linearly_and_zero_length_stages_step() {
        let schedule = Schedule::Stages {
            start_rate: 0.0,
            stages: vec![
                Stage {
                    duration: secs(10.0),
                    target_rate: 100.0,
                }, // ramp
                Stage {
                    duration: secs(10.0),
                    target_rate: 100.0,
                }, // hold
                Stage {
                    duration: Duration::ZERO,
                    target_rate: 400.0,
                }, // step ×4
                Stage {
                    duration: secs(5.0),
                    target_rate: 400.0,
                }, // hold
            ],
        };
        assert_eq!(schedule.rate_at(secs(0.0)), Some(0.0));
        assert_eq!(schedule.rate_at(secs(5.0)), Some(50.0));
        assert_eq!(schedule.rate_at(secs(15.0)), Some(100.0));
        assert_eq!(schedule.rate_at(secs(20.0)), Some(400.0));
        assert_eq!(schedule.rate_at(secs(24.9)), Some(400.0));
        assert_eq!(schedule.rate_at(secs(25.0)), None);
        assert_eq!(schedule.duration(), secs(25.0));
    }

    #[test]
    fn trace_buckets_are_compressed_and_scaled() {
        let schedule = Schedule::Trace(TraceReplay {
            counts: vec![10_000.0, 20_000.0],
            bucket: secs(5.0),
            scale: 1.0 / 2000.0,
        });
        assert_eq!(schedule.rate_at(secs(0.0)), Some(1.0));
        assert_eq!(schedule.rate_at(secs(7.0)), Some(2.0));
        assert_eq!(schedule.rate_at(secs(10.0)), None);
        assert_eq!(schedule.duration(), secs(10.0));
    }

    fn stage(duration: Duration, target_rate: f64) -> Stage {
        Stage {
            duration,
            target_rate,
        }
    }

    /// Requests intended in second `s`, counted from the inverse.
    fn per_second_from_inverse(schedule: &Schedule) -> Vec<u64> {
        let curve = schedule.curve();
        let mut counts = vec![0u64; schedule.duration().as_secs_f64().ceil() as usize];
        let mut n = 0;
        while let Some(at) = curve.time_of_request(n) {
            counts[at.as_secs() as usize] += 1;
            n += 1;
        }
        counts
    }

    #[test]
    fn cumulative_integrates_constant_ramps_and_traces() {
        let constant = Schedule::Constant {
            rate: 2000.0,
            duration: secs(3.0),
        };
        assert_eq!(constant.cumulative(secs(1.5)), 3000.0);
        assert_eq!(constant.cumulative(secs(10.0)), 6000.0);
        let ramp = Schedule::Stages {
            start_rate: 0.0,
            stages: vec![stage(secs(10.0), 100.0)],
        };
        assert_eq!(ramp.cumulative(secs(5.0)), 125.0);
        assert_eq!(ramp.cumulative(secs(10.0)), 500.0);
        let trace = Schedule::Trace(TraceReplay {
            counts: vec![10.0, 0.0, 30.0],
            bucket: secs(5.0),
            scale: 1.0,
        });
        assert_eq!(trace.cumulative(secs(7.0)), 10.0);
        assert_eq!(trace.cumulative(secs(12.5)), 25.0);
    }

    #[test]
    fn time_of_request_inverts_the_cumulative_count() {
        let schedule = Schedule::Stages {
            start_rate: 10.0,
            stages: vec![stage(secs(7.0), 250.0), stage(secs(3.0), 40.0)],
        };
        let curve = schedule.curve();
        for n in [1u64, 17, 300, 909, 910, 1000, 1344] {
            let at = curve.time_of_request(n).unwrap();
            let count = curve.cumulative(at);
            assert!((count - n as f64).abs() < 1e-6, "n={n} at={at:?} C={count}");
        }
        assert_eq!(curve.time_of_request(0), Some(Duration::ZERO));
        let total = curve.total();
        assert_eq!(curve.time_of_request(total.ceil() as u64), None);
    }

    #[test]
    fn zero_rate_stretches_send_nothing() {
        let schedule = Schedule::Stages {
            start_rate: 0.0,
            stages: vec![
                stage(secs(2.0), 0.0),
                stage(Duration::ZERO, 5.0),
                stage(secs(1.0), 5.0),
                stage(Duration::ZERO, 0.0),
                stage(secs(2.0), 0.0),
                stage(Duration::ZERO, 5.0),
                stage(secs(1.0), 5.0),
            ],
        };
        assert_eq!(schedule.time_of_request(0), Some(secs(2.0)));
        assert_eq!(schedule.time_of_request(5), Some(secs(5.0)));
        assert_eq!(per_second_from_inverse(&schedule), vec![0, 0, 5, 0, 0, 5]);
    }

    #[test]
    fn each_second_holds_the_integral_of_its_rate() {
        // A ramp from 0 to 200/s over 4 s (C(s) = 25 s²), then a hold at 200/s.
        let schedule = Schedule::Stages {
            start_rate: 0.0,
            stages: vec![stage(secs(4.0), 200.0), stage(secs(2.0), 200.0)],
        };
        assert_eq!(
            per_second_from_inverse(&schedule),
            vec![25, 75, 125, 175, 200, 200]
        );
        let trace = Schedule::Trace(TraceReplay {
            counts: vec![3.0, 0.0, 7.0],
            bucket: secs(1.0),
            scale: 1.0,
        });
        assert_eq!(per_second_from_inverse(&trace), vec![3, 0, 7]);
    }

    #[test]
    fn validation_refuses_negative_and_non_finite_rates() {
        let negative = Schedule::Constant {
            rate: -1.0,
            duration: secs(1.0),
        };
        assert!(negative.validate().is_err());
        let nan_stage = Schedule::Stages {
            start_rate: 0.0,
            stages: vec![stage(secs(1.0), f64::NAN)],
        };
        assert!(nan_stage.validate().is_err());
        let fine = Schedule::Constant {
            rate: 10.0,
            duration: secs(1.0),
        };
        assert!(fine.validate().is_ok());
    }
}
