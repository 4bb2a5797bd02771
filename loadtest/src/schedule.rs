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
}
