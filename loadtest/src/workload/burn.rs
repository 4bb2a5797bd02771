//! Burning a measured amount of CPU.
//!
//! The loop spins until the calling thread's own CPU clock (`CLOCK_THREAD_CPUTIME_ID`) has
//! advanced by the amount asked for. Counting the thread's CPU time rather than wall time keeps
//! the accounting honest: a request with `cpu_ms=50` adds 50 ms to the process's utime in
//! `/proc/<pid>/stat` whether it had a core to itself or shared one with ten others (then it
//! simply takes longer, as a CPU-bound request on a busy server does).

use std::hint::black_box;
use std::time::Duration;

use rustix::time::{clock_gettime, ClockId};

/// Spin iterations between two reads of the CPU clock: a few tens of microseconds of work, so
/// the overshoot is small and the clock reads (a system call each) cost under 1%.
const SPINS_PER_CHECK: u32 = 20_000;

/// CPU time the calling thread has used so far.
pub fn thread_cpu_time() -> Duration {
    let now = clock_gettime(ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

/// Keeps the calling thread busy until it has used `amount` of CPU; returns the CPU time
/// actually used (a little more than `amount`). Blocks: call it on a blocking thread.
pub fn burn_cpu(amount: Duration) -> Duration {
    let start = thread_cpu_time();
    // A linear congruential step the optimiser cannot remove (`black_box`).
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    loop {
        for _ in 0..SPINS_PER_CHECK {
            state = black_box(
                state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407),
            );
        }
        let used = thread_cpu_time().saturating_sub(start);
        if used >= amount {
            return used;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burns_at_least_the_amount_and_not_much_more() {
        let amount = Duration::from_millis(30);
        let before = thread_cpu_time();
        let used = burn_cpu(amount);
        let measured = thread_cpu_time() - before;
        assert!(used >= amount, "{used:?}");
        assert!(measured >= amount, "{measured:?}");
        // Overshoot is one spin batch (tens of µs); allow for a slow, shared CI core.
        assert!(used < amount + Duration::from_millis(10), "{used:?}");
    }

    #[test]
    fn zero_costs_one_batch_at_most() {
        assert!(burn_cpu(Duration::ZERO) < Duration::from_millis(10));
    }
}
