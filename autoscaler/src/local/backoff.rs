//! How long the scheduler waits before restarting a task that keeps failing.
//!
//! ECS's service throttle logic: when tasks repeatedly stop before reaching `RUNNING`, the
//! scheduler increases the time between restart attempts "up to a maximum of 15 minutes", and
//! resets it when the service is updated; tasks that reached `RUNNING` are not throttled (the
//! reference, `alb-ecs-semantics.md` §6.2). AWS does not publish the starting interval or the
//! growth. scalegate doubles from 1 s: local processes start in milliseconds, so the first
//! retries are quick enough to ride out a port briefly in use, and a command that can never
//! start reaches the 15-minute ceiling after eleven failures (about 17 minutes of retrying).

use std::time::Duration;

/// Exponential restart backoff: `base × 2^(failures − 1)`, capped.
///
/// The scheduler keeps one per service, calls [`RestartBackoff::record_failure`] when a task
/// fails (and waits the returned delay before the next start), and
/// [`RestartBackoff::reset`] when a task reaches `RUNNING` or the service is updated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartBackoff {
    base: Duration,
    cap: Duration,
    consecutive_failures: u32,
}

impl RestartBackoff {
    /// The first delay: 1 s (scalegate's choice; AWS does not publish its own).
    pub const DEFAULT_BASE: Duration = Duration::from_secs(1);
    /// ECS's ceiling on the throttled restart interval: 15 minutes.
    pub const ECS_MAXIMUM: Duration = Duration::from_secs(15 * 60);

    /// A backoff doubling from `base` up to `cap` (a `cap` below `base` is raised to it).
    pub fn new(base: Duration, cap: Duration) -> Self {
        RestartBackoff {
            base,
            cap: cap.max(base),
            consecutive_failures: 0,
        }
    }

    /// Counts one more failure and returns how long to wait before the next start.
    pub fn record_failure(&mut self) -> Duration {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.delay()
    }

    /// The wait before the next start: zero until something failed.
    pub fn delay(&self) -> Duration {
        if self.consecutive_failures == 0 {
            return Duration::ZERO;
        }
        // 2^31 × anything already exceeds any sensible cap; saturate instead of overflowing.
        let doublings = (self.consecutive_failures - 1).min(31);
        self.base
            .checked_mul(1u32 << doublings)
            .map_or(self.cap, |delay| delay.min(self.cap))
    }

    /// Failures since the last reset.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Forgets the failures: a task reached `RUNNING`, or the service was updated.
    pub fn reset(&mut self) {
        self.consecutive_failures = 0;
    }
}

impl Default for RestartBackoff {
    /// 1 s doubling up to ECS's 15 minutes.
    fn default() -> Self {
        RestartBackoff::new(Self::DEFAULT_BASE, Self::ECS_MAXIMUM)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_base_up_to_the_cap() {
        let mut backoff = RestartBackoff::default();
        assert_eq!(backoff.delay(), Duration::ZERO);
        let delays: Vec<u64> = (0..12)
            .map(|_| backoff.record_failure().as_secs())
            .collect();
        assert_eq!(
            delays,
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900],
            "capped at ECS's 15 minutes"
        );
        assert_eq!(backoff.consecutive_failures(), 12);
    }

    #[test]
    fn reset_starts_again_from_the_base() {
        let mut backoff = RestartBackoff::new(Duration::from_millis(100), Duration::from_secs(1));
        backoff.record_failure();
        backoff.record_failure();
        backoff.reset();
        assert_eq!(backoff.delay(), Duration::ZERO);
        assert_eq!(backoff.record_failure(), Duration::from_millis(100));
    }

    #[test]
    fn many_failures_do_not_overflow() {
        let mut backoff = RestartBackoff::new(Duration::from_secs(1 << 40), Duration::MAX);
        for _ in 0..100 {
            backoff.record_failure();
        }
        assert_eq!(backoff.delay(), Duration::MAX);
        assert_eq!(
            RestartBackoff::new(Duration::from_secs(5), Duration::from_secs(1)).record_failure(),
            Duration::from_secs(5),
            "a cap below the base is raised to it"
        );
    }
}
