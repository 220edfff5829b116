//! A connection's read-idle and lifetime deadlines, and the one timer that serves both.
//!
//! The timer is reset lazily: bytes arriving only move `last_read`, and when the timer fires
//! early it is pushed to the real deadline. An active connection so touches its timer once
//! per read timeout, not once per read.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::TimeoutKind;

/// The pure part: when the connection times out, given what it has received and when.
#[derive(Debug)]
pub(crate) struct Deadlines {
    read_timeout: Option<Duration>,
    lifetime_end: Option<Instant>,
    last_read: Instant,
    /// The byte count last seen; a change means the peer sent something.
    seen: u64,
}

impl Deadlines {
    pub(crate) fn new(
        now: Instant,
        read_timeout: Option<Duration>,
        lifetime: Option<Duration>,
    ) -> Self {
        Self {
            read_timeout,
            lifetime_end: lifetime.map(|l| now + l),
            last_read: now,
            seen: 0,
        }
    }

    /// Notes the stream's received-byte count; if it moved, the read deadline restarts from
    /// `now()` (called only then, so a quiet wake-up reads no clock).
    pub(crate) fn observe(&mut self, bytes_read: u64, now: impl FnOnce() -> Instant) {
        if bytes_read != self.seen {
            self.seen = bytes_read;
            if self.read_timeout.is_some() {
                self.last_read = now();
            }
        }
    }

    /// Restarts the read deadline from `now` (a handler chose to keep waiting).
    pub(crate) fn restart_read(&mut self, now: Instant) {
        self.last_read = now;
    }

    /// The earliest deadline, if any timer is configured.
    pub(crate) fn next(&self) -> Option<Instant> {
        let read = self.read_timeout.map(|t| self.last_read + t);
        match (read, self.lifetime_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Which deadline has passed at `now` (the lifetime first: it cannot be extended).
    pub(crate) fn expired(&self, now: Instant) -> Option<TimeoutKind> {
        if self.lifetime_end.is_some_and(|end| now >= end) {
            return Some(TimeoutKind::Lifetime);
        }
        if self.read_timeout.is_some_and(|t| now >= self.last_read + t) {
            return Some(TimeoutKind::ReadIdle);
        }
        None
    }
}

/// Polls `sleep` against `deadlines`: ready with the deadline that passed. `sleep` must have
/// been created at `deadlines.next()` (or earlier); it is never polled when no timer is
/// configured, so an untimed connection registers nothing with tokio's timer.
pub(crate) fn poll_expired(
    mut sleep: Pin<&mut Sleep>,
    deadlines: &Deadlines,
    cx: &mut Context<'_>,
) -> Poll<TimeoutKind> {
    loop {
        let Some(next) = deadlines.next() else {
            return Poll::Pending;
        };
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if let Some(kind) = deadlines.expired(Instant::now()) {
            return Poll::Ready(kind);
        }
        // Fired early: bytes arrived (or a handler restarted the wait) since it was set.
        sleep.as_mut().reset(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn only_received_bytes_move_the_read_deadline() {
        let t0 = Instant::now();
        let mut d = Deadlines::new(t0, Some(10 * S), None);
        assert_eq!(d.next(), Some(t0 + 10 * S));
        d.observe(0, || unreachable!("no bytes: no clock read"));
        assert_eq!(d.next(), Some(t0 + 10 * S));
        d.observe(5, || t0 + 4 * S);
        assert_eq!(d.next(), Some(t0 + 14 * S));
        assert_eq!(d.expired(t0 + 13 * S), None);
        assert_eq!(d.expired(t0 + 14 * S), Some(TimeoutKind::ReadIdle));
        d.restart_read(t0 + 14 * S);
        assert_eq!(d.expired(t0 + 20 * S), None);
    }

    #[test]
    fn the_lifetime_wins_and_cannot_be_extended() {
        let t0 = Instant::now();
        let mut d = Deadlines::new(t0, Some(10 * S), Some(15 * S));
        d.observe(1, || t0 + 9 * S);
        assert_eq!(d.next(), Some(t0 + 15 * S));
        assert_eq!(d.expired(t0 + 15 * S), Some(TimeoutKind::Lifetime));
        d.restart_read(t0 + 15 * S);
        assert_eq!(d.expired(t0 + 15 * S), Some(TimeoutKind::Lifetime));
    }

    #[test]
    fn no_timers_no_deadline() {
        let t0 = Instant::now();
        let mut d = Deadlines::new(t0, None, None);
        d.observe(3, || unreachable!("no read timeout: no clock read"));
        assert_eq!(d.next(), None);
        assert_eq!(d.expired(t0 + 1000 * S), None);
        let only_lifetime = Deadlines::new(t0, None, Some(S));
        assert_eq!(only_lifetime.next(), Some(t0 + S));
    }

    #[tokio::test(start_paused = true)]
    async fn the_timer_fires_at_the_real_deadline_after_early_wakeups() {
        let t0 = Instant::now();
        let mut d = Deadlines::new(t0, Some(10 * S), None);
        let sleep = tokio::time::sleep_until(d.next().unwrap());
        tokio::pin!(sleep);
        tokio::time::sleep(6 * S).await;
        d.observe(1, Instant::now); // read at t0 + 6 s: deadline t0 + 16 s
        let kind = std::future::poll_fn(|cx| poll_expired(sleep.as_mut(), &d, cx)).await;
        assert_eq!(kind, TimeoutKind::ReadIdle);
        assert_eq!(Instant::now() - t0, 16 * S);
    }
}
