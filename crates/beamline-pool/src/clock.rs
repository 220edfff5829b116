//! The pool's coarse clock: milliseconds since the pool started, advanced by the maintenance
//! task and by the slow paths, read by checkouts with one relaxed atomic load.
//!
//! Reading the system clock costs about 25 ns here, as much as the rest of a checkout. Expiry
//! (idle timeout, max lifetime, "idle for" checks) does not need nanoseconds, so checkouts read
//! this counter instead. It follows tokio's clock, so a paused test clock drives it too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// A millisecond timestamp on a pool's coarse clock.
pub(crate) type Millis = u64;

#[derive(Debug)]
pub(crate) struct Clock {
    epoch: Instant,
    now: AtomicU64,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            epoch: Instant::now(),
            now: AtomicU64::new(0),
        }
    }

    /// When the pool started: the clock's zero.
    pub(crate) const fn epoch(&self) -> Instant {
        self.epoch
    }

    /// The last reading: at most one tick behind the real time while the runtime runs the
    /// maintenance task.
    #[inline]
    pub(crate) fn now(&self) -> Millis {
        self.now.load(Ordering::Relaxed)
    }

    /// Reads tokio's clock, advances the coarse clock to it (never backwards) and returns it.
    pub(crate) fn refresh(&self) -> Instant {
        let now = Instant::now();
        let millis = to_millis(now.saturating_duration_since(self.epoch));
        // Most refreshes land in the same millisecond: only write (and so take the cache line
        // from the cores reading it) when the clock moves.
        if millis > self.now.load(Ordering::Relaxed) {
            self.now.fetch_max(millis, Ordering::Relaxed);
        }
        now
    }
}

/// A duration in whole milliseconds, rounded up (so a deadline is never early), saturating.
pub(crate) fn to_millis(d: Duration) -> Millis {
    let ms = d.as_millis() + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
    Millis::try_from(ms).unwrap_or(Millis::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_round_up_and_saturate() {
        assert_eq!(to_millis(Duration::ZERO), 0);
        assert_eq!(to_millis(Duration::from_micros(1)), 1);
        assert_eq!(to_millis(Duration::from_millis(7)), 7);
        assert_eq!(to_millis(Duration::MAX), Millis::MAX);
    }

    #[tokio::test(start_paused = true)]
    async fn follows_tokio_time_and_never_goes_back() {
        let clock = Clock::new();
        assert_eq!(clock.now(), 0);
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(clock.now(), 0, "only a refresh moves it");
        clock.refresh();
        assert_eq!(clock.now(), 1500);
        clock.now.store(9999, Ordering::Relaxed);
        clock.refresh();
        assert_eq!(clock.now(), 9999);
    }
}
