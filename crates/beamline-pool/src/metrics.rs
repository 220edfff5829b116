//! What a pool reports about itself: gauges, counters and the wait-time histogram.

use std::time::Duration;

/// Why the pool closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// Its user marked it broken, or [`Manager::is_broken`](crate::Manager::is_broken) said so.
    Broken,
    /// Its user's task panicked while holding it: its state is unknown, so it is never reused.
    Panicked,
    /// [`Manager::check`](crate::Manager::check) failed on checkout.
    CheckFailed,
    /// [`Manager::recycle`](crate::Manager::recycle) failed on checkout.
    RecycleFailed,
    /// It sat idle longer than the idle timeout (beyond `min_idle`).
    IdleTimeout,
    /// It reached its max lifetime.
    MaxLifetime,
    /// The pool was closed.
    PoolClosed,
}

impl CloseReason {
    /// Every reason, in the order of [`ClosedCounts`]' fields.
    pub const ALL: [CloseReason; 7] = [
        CloseReason::Broken,
        CloseReason::Panicked,
        CloseReason::CheckFailed,
        CloseReason::RecycleFailed,
        CloseReason::IdleTimeout,
        CloseReason::MaxLifetime,
        CloseReason::PoolClosed,
    ];

    /// A short lowercase name (`broken`, `idle_timeout`...) for metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            CloseReason::Broken => "broken",
            CloseReason::Panicked => "panicked",
            CloseReason::CheckFailed => "check_failed",
            CloseReason::RecycleFailed => "recycle_failed",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::MaxLifetime => "max_lifetime",
            CloseReason::PoolClosed => "pool_closed",
        }
    }

    const fn index(self) -> usize {
        match self {
            CloseReason::Broken => 0,
            CloseReason::Panicked => 1,
            CloseReason::CheckFailed => 2,
            CloseReason::RecycleFailed => 3,
            CloseReason::IdleTimeout => 4,
            CloseReason::MaxLifetime => 5,
            CloseReason::PoolClosed => 6,
        }
    }
}

/// Connections closed since the pool started, by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClosedCounts([u64; 7]);

impl ClosedCounts {
    /// How many were closed for `reason`.
    pub const fn get(&self, reason: CloseReason) -> u64 {
        self.0[reason.index()]
    }

    /// How many were closed for any reason.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// `(reason, count)` for every reason, zeros included.
    pub fn iter(&self) -> impl Iterator<Item = (CloseReason, u64)> + '_ {
        CloseReason::ALL.iter().map(|&r| (r, self.get(r)))
    }

    pub(crate) fn add(&mut self, reason: CloseReason) {
        self.0[reason.index()] += 1;
    }
}

/// How long successful checkouts waited, as counts per bucket.
///
/// Bucket `i` counts checkouts that waited at most [`WaitHistogram::BOUNDS`]`[i]` (and more
/// than the bound before it); the last bucket counts everything longer. A checkout served at
/// once, without queueing, lands in the first bucket (`0`) without reading a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WaitHistogram([u64; 8]);

impl WaitHistogram {
    /// The upper bounds of the first seven buckets; the eighth is unbounded.
    pub const BOUNDS: [Duration; 7] = [
        Duration::ZERO,
        Duration::from_micros(100),
        Duration::from_millis(1),
        Duration::from_millis(10),
        Duration::from_millis(100),
        Duration::from_secs(1),
        Duration::from_secs(10),
    ];

    /// The count in each bucket.
    pub const fn buckets(&self) -> &[u64; 8] {
        &self.0
    }

    /// Checkouts counted (the sum of all buckets).
    pub fn count(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Counts a checkout that waited `waited` (`None`: it did not queue, no clock was read)
    /// and returns its bucket.
    pub(crate) fn record(&mut self, waited: Option<Duration>) -> usize {
        let bucket = waited.map_or(0, |waited| {
            Self::BOUNDS
                .iter()
                .position(|&bound| waited <= bound)
                .unwrap_or(Self::BOUNDS.len())
        });
        self.0[bucket] += 1;
        bucket
    }

    /// Adds checkouts that did not wait, counted elsewhere (the fast path's shards).
    pub(crate) fn add_immediate(&mut self, count: u64) {
        self.0[0] += count;
    }

    /// Takes back a count made by [`record`](Self::record).
    pub(crate) fn forget(&mut self, bucket: usize) {
        if let Some(count) = self.0.get_mut(bucket) {
            *count = count.saturating_sub(1);
        }
    }
}

/// A snapshot of a pool: gauges of this instant and counters since it started.
///
/// Taken under the pool's lock, so the gauges agree with each other
/// (`size == idle + in_use` for the exclusive pool).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolMetrics {
    /// The configured maximum.
    pub max_size: usize,
    /// Open connections: idle, in use, and (shared pool) draining.
    pub size: usize,
    /// Open connections nobody uses.
    pub idle: usize,
    /// Open connections with at least one user.
    pub in_use: usize,
    /// Checkouts holding a connection (equal to `in_use` for the exclusive pool; up to
    /// `max_users` per connection for the shared pool).
    pub users: usize,
    /// Connect attempts under way or waiting out their backoff.
    pub connecting: usize,
    /// Checkouts queued for a connection.
    pub waiters: usize,
    /// Successful checkouts: connections handed to callers. A connection that fails its
    /// recycle or check on the way (or, shared, is found broken) is not counted; the checkout
    /// that goes on is, once.
    pub checkouts: u64,
    /// How long successful checkouts waited.
    pub wait_time: WaitHistogram,
    /// Checkouts that failed with [`CheckoutError::Timeout`](crate::CheckoutError::Timeout).
    pub timeouts: u64,
    /// Connections opened.
    pub created: u64,
    /// Connect attempts that failed or timed out.
    pub connect_failures: u64,
    /// Connections closed, by reason.
    pub closed: ClosedCounts,
    /// Connections taken out of the pool by `detach`.
    pub detached: u64,
}

/// The counters a pool keeps under its lock, and the count of open connections they imply.
///
/// `checkouts` and `wait_time` (whose first bucket counts checkouts that did not wait) come
/// first: every checkout writes them, and [`State`](crate::core::State) keeps them on the
/// lock's cache line.
#[derive(Debug, Default)]
#[repr(C)]
pub(crate) struct Tally {
    pub(crate) checkouts: u64,
    pub(crate) wait_time: WaitHistogram,
    /// Open connections (idle, in use, draining), not counting attempts under way.
    pub(crate) open: usize,
    pub(crate) timeouts: u64,
    pub(crate) created: u64,
    pub(crate) connect_failures: u64,
    pub(crate) closed: ClosedCounts,
    pub(crate) detached: u64,
    /// Fast-path checkouts (counted in the store's shards) that were then rejected.
    pub(crate) fast_rejected: u64,
}

/// The wait-time "bucket" of a checkout the fast path served: counted in the store, not here.
pub(crate) const FAST: usize = usize::MAX;

impl Tally {
    /// A connection was opened.
    pub(crate) fn opened(&mut self) {
        self.open += 1;
        self.created += 1;
    }

    /// A connection leaves the pool for `reason`.
    pub(crate) fn closed(&mut self, reason: CloseReason) {
        self.open -= 1;
        self.closed.add(reason);
    }

    /// A checkout got a connection after waiting `waited` (`None`: without queueing).
    /// Returns the wait-time bucket, to [`unchecked`](Self::unchecked) it if need be.
    #[inline]
    pub(crate) fn checked_out(&mut self, waited: Option<Duration>) -> usize {
        self.checkouts += 1;
        self.wait_time.record(waited)
    }

    /// Takes back a checkout whose connection was rejected before reaching its caller.
    pub(crate) fn unchecked(&mut self, bucket: usize) {
        if bucket == FAST {
            self.fast_rejected += 1;
        } else {
            self.checkouts -= 1;
            self.wait_time.forget(bucket);
        }
    }

    /// A connection leaves the pool with its user.
    pub(crate) fn detached(&mut self) {
        self.open -= 1;
        self.detached += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_land_in_their_bucket() {
        let mut h = WaitHistogram::default();
        assert_eq!(h.record(None), 0);
        h.record(Some(Duration::ZERO));
        h.record(Some(Duration::from_micros(50)));
        h.record(Some(Duration::from_millis(1)));
        let two_ms = h.record(Some(Duration::from_millis(2)));
        assert_eq!(two_ms, 3);
        assert_eq!(h.record(Some(Duration::from_secs(60))), 7);
        assert_eq!(h.buckets(), &[2, 1, 1, 1, 0, 0, 0, 1]);
        assert_eq!(h.count(), 6);
        h.forget(two_ms);
        assert_eq!(h.buckets()[3], 0);
        h.forget(3);
        assert_eq!(h.buckets()[3], 0, "never below zero");
    }

    #[test]
    fn closed_counts_by_reason() {
        let mut t = Tally::default();
        for _ in 0..3 {
            t.opened();
        }
        t.closed(CloseReason::Broken);
        t.closed(CloseReason::MaxLifetime);
        t.detached();
        assert_eq!(t.open, 0);
        assert_eq!(t.closed.get(CloseReason::Broken), 1);
        assert_eq!(t.closed.get(CloseReason::MaxLifetime), 1);
        assert_eq!(t.closed.total(), 2);
        assert_eq!(t.detached, 1);
        let names: Vec<_> = t.closed.iter().map(|(r, _)| r.name()).collect();
        assert_eq!(names.len(), CloseReason::ALL.len());
        assert!(names.contains(&"idle_timeout"));
    }
}
