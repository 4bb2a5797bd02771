//! Waiting for an intended send time with microsecond precision.
//!
//! tokio's timer wheel ticks in milliseconds and fires on the tick after a deadline, so pacing
//! with it would send every request up to a millisecond or two late — and since latency counts
//! from the intended time, add that to every measured latency (a fast server's 100 µs would
//! read as 1 ms). The pacer waits on a Linux timerfd instead, through tokio's reactor, and wakes
//! at most once per [`MIN_STEP`]: at high rates each wake sends a batch (each request at most
//! that much late) instead of costing a timer per request.

use std::cell::Cell;
use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::time::{
    clock_gettime, timerfd_create, timerfd_settime, ClockId, Itimerspec, TimerfdClockId,
    TimerfdFlags, TimerfdTimerFlags, Timespec,
};
use tokio::io::unix::AsyncFd;

/// The shortest time between two wakes of the pacer. Every wake costs a sleep and a wake-up of
/// the thread; at 100,000 requests/s a thread waking every 100 µs fell behind its schedule, at
/// 250 µs it kept up to 150,000/s (one core, against nginx). Below 4,000 requests/s per thread
/// each request still gets its own wake.
pub(super) const MIN_STEP: Duration = Duration::from_micros(250);

/// A precise sleep for the pacer; falls back to tokio's timer if no timerfd can be had.
pub(super) struct PacingTimer {
    timerfd: Option<Timerfd>,
    last_wake: Cell<Instant>,
}

struct Timerfd {
    fd: AsyncFd<OwnedFd>,
    /// An instant and the same moment on `CLOCK_MONOTONIC` (what `Instant` reads on Linux), to
    /// turn deadlines into absolute timer settings.
    anchor: Instant,
    anchor_clock: Duration,
}

impl PacingTimer {
    /// A timer on the current runtime's reactor.
    pub(super) fn new() -> Self {
        let timerfd = Timerfd::new()
            .inspect_err(|error| {
                tracing::debug!(%error, "no timerfd; pacing with tokio's millisecond timer")
            })
            .ok();
        PacingTimer {
            timerfd,
            last_wake: Cell::new(Instant::now()),
        }
    }

    /// Returns at `deadline` plus the timer slack (tens of µs), never before; or, when the
    /// previous wake was less than [`MIN_STEP`] ago, [`MIN_STEP`] after it.
    pub(super) async fn sleep_until(&self, deadline: Instant) {
        let deadline = deadline.max(self.last_wake.get() + MIN_STEP);
        while Instant::now() < deadline {
            let waited = match &self.timerfd {
                Some(timerfd) => timerfd.wait(deadline).await,
                None => Err(io::Error::other("no timerfd")),
            };
            if waited.is_err() {
                tokio::time::sleep_until(deadline.into()).await;
            }
        }
        self.last_wake.set(Instant::now());
    }
}

impl Timerfd {
    fn new() -> io::Result<Self> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        let anchor = Instant::now();
        let clock = clock_gettime(ClockId::Monotonic);
        let anchor_clock = Duration::new(
            u64::try_from(clock.tv_sec).unwrap_or(0),
            u32::try_from(clock.tv_nsec).unwrap_or(0),
        );
        // tokio 1.54 deprecates `AsyncFd::new` because an fd *borrowed* from elsewhere could be
        // closed (and its number reused) while registered. This one is an `OwnedFd` the
        // `AsyncFd` owns until it deregisters it, which is the I/O safety `register` (unsafe,
        // and this crate forbids unsafe code) asks the caller to promise.
        #[allow(deprecated)]
        let fd = AsyncFd::new(fd)?;
        Ok(Timerfd {
            fd,
            anchor,
            anchor_clock,
        })
    }

    /// Arms the timer for `deadline` and waits for it to expire (or for an earlier expiry
    /// left from a cancelled wait; the caller checks the time again).
    async fn wait(&self, deadline: Instant) -> io::Result<()> {
        let clock = self.anchor_clock + deadline.saturating_duration_since(self.anchor);
        let setting = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec {
                tv_sec: i64::try_from(clock.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: clock.subsec_nanos().into(),
            },
        };
        timerfd_settime(self.fd.get_ref(), TimerfdTimerFlags::ABSTIME, &setting)?;
        loop {
            let mut ready = self.fd.readable().await?;
            let mut expirations = [0u8; 8];
            match ready.try_io(|fd| {
                rustix::io::read(fd.get_ref(), &mut expirations).map_err(io::Error::from)
            }) {
                Ok(result) => return result.map(|_| ()),
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_at_the_deadline_not_before() {
        let timer = PacingTimer::new();
        assert!(timer.timerfd.is_some(), "timerfd is available on Linux");
        for offset_micros in [20u64, 300, 2_500] {
            let deadline = Instant::now() + Duration::from_micros(offset_micros);
            timer.sleep_until(deadline).await;
            assert!(Instant::now() >= deadline);
        }
        // A deadline in the past returns at once.
        timer.sleep_until(Instant::now()).await;
    }
}
