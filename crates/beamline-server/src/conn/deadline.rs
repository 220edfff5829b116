//! A connection's read-idle and lifetime deadlines, and the one timer that serves both.
//!
//! The timer is reset lazily: bytes arriving only move `last_read`, and when the timer fires
//! early it is pushed to the real deadline. An active connection so touches its timer once
//! per read timeout, not once per read; and a wake-up that finds the timer registered and
//! not fired does not poll it at all.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project::pin_project;
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

/// The one timer of a connection's deadlines. Once polled (its waker registered with tokio's
/// timer), a wake-up that finds it not fired skips it: the data path of a busy connection pays
/// one load for its timers, not a poll.
#[pin_project]
#[derive(Debug)]
pub(crate) struct Alarm {
    #[pin]
    sleep: Sleep,
    /// Polled since its last reset, with this task's waker registered.
    armed: bool,
    /// Moved to the lifetime, past the read deadline, while a callback ran.
    beyond: bool,
}

impl Alarm {
    /// A timer at `deadlines.next()` (registered with tokio only when first polled, and never
    /// when no timer is configured).
    pub(crate) fn new(deadlines: &Deadlines) -> Self {
        Self {
            sleep: tokio::time::sleep_until(deadlines.next().unwrap_or_else(Instant::now)),
            armed: false,
            beyond: false,
        }
    }

    /// Ready once `at` has passed.
    fn poll_at(self: Pin<&mut Self>, at: Instant, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if this.sleep.deadline() != at {
            this.sleep.as_mut().reset(at);
            *this.armed = false;
        } else if *this.armed && !this.sleep.is_elapsed() {
            return Poll::Pending;
        }
        // A poll refused for lack of coop budget registers nothing: do not count on it.
        let budget = tokio::task::coop::has_budget_remaining();
        if this.sleep.poll(cx).is_pending() {
            *this.armed = budget;
            return Poll::Pending;
        }
        *this.armed = false;
        Poll::Ready(())
    }

    /// Moves the timer to `at` (to be polled again).
    fn reset(self: Pin<&mut Self>, at: Instant) {
        let this = self.project();
        this.sleep.reset(at);
        *this.armed = false;
    }

    /// Ready with the deadline that passed. Ignores deadlines that moved later meanwhile (it
    /// then waits for the real one); never registers a timer when none is configured.
    pub(crate) fn poll_expired(
        mut self: Pin<&mut Self>,
        deadlines: &Deadlines,
        cx: &mut Context<'_>,
    ) -> Poll<TimeoutKind> {
        // The common wake-up: registered, not fired. (Deadlines only move later, and every
        // reset disarms, so an armed timer is at or before the next deadline, unless the
        // lifetime race moved it beyond.)
        if self.armed && !self.beyond && !self.sleep.is_elapsed() {
            return Poll::Pending;
        }
        *self.as_mut().project().beyond = false;
        loop {
            let Some(next) = deadlines.next() else {
                return Poll::Pending;
            };
            // Not moved to a later `next` until it fires: it fires at the old deadline and is
            // pushed then, once per read timeout rather than once per read.
            let at = self.sleep.deadline().min(next);
            if self.as_mut().poll_at(at, cx).is_pending() {
                return Poll::Pending;
            }
            if let Some(kind) = deadlines.expired(Instant::now()) {
                return Poll::Ready(kind);
            }
            // Fired early: bytes arrived (or a handler restarted the wait) since it was set.
            self.as_mut().reset(next);
        }
    }

    /// Ready once the lifetime has passed, ignoring the read deadline: what a running callback
    /// is raced against. It may leave the timer at the lifetime, past the read deadline;
    /// [`poll_expired`](Self::poll_expired) moves it back.
    pub(crate) fn poll_lifetime(
        mut self: Pin<&mut Self>,
        deadlines: &Deadlines,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        let Some(end) = deadlines.lifetime_end else {
            return Poll::Pending;
        };
        loop {
            let at = self.sleep.deadline().min(end);
            if self.as_mut().poll_at(at, cx).is_pending() {
                return Poll::Pending;
            }
            if Instant::now() >= end {
                return Poll::Ready(());
            }
            // Fired for the read deadline: while a callback runs, only the lifetime counts.
            self.as_mut().reset(end);
            *self.as_mut().project().beyond = true;
        }
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
        let alarm = Alarm::new(&d);
        tokio::pin!(alarm);
        // Registered at t0 + 10 s.
        let polled = std::future::poll_fn(|cx| Poll::Ready(alarm.as_mut().poll_expired(&d, cx)));
        assert!(polled.await.is_pending());
        tokio::time::sleep(6 * S).await;
        d.observe(1, Instant::now); // read at t0 + 6 s: deadline t0 + 16 s
        let kind = std::future::poll_fn(|cx| alarm.as_mut().poll_expired(&d, cx)).await;
        assert_eq!(kind, TimeoutKind::ReadIdle);
        assert_eq!(Instant::now() - t0, 16 * S);
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_deadline_passed_during_a_callback_is_due_when_it_returns() {
        let t0 = Instant::now();
        let d = Deadlines::new(t0, Some(10 * S), Some(100 * S));
        let alarm = Alarm::new(&d);
        tokio::pin!(alarm);
        // A callback runs for 30 s, raced against the lifetime only.
        let race = std::future::poll_fn(|cx| alarm.as_mut().poll_lifetime(&d, cx));
        assert!(tokio::time::timeout(30 * S, race).await.is_err());
        let due = std::future::poll_fn(|cx| Poll::Ready(alarm.as_mut().poll_expired(&d, cx)));
        assert_eq!(due.await, Poll::Ready(TimeoutKind::ReadIdle));
        assert_eq!(Instant::now() - t0, 30 * S);
    }

    #[tokio::test(start_paused = true)]
    async fn the_lifetime_race_ignores_the_read_deadline_and_leaves_it_due() {
        let t0 = Instant::now();
        let d = Deadlines::new(t0, Some(10 * S), Some(25 * S));
        let alarm = Alarm::new(&d);
        tokio::pin!(alarm);
        std::future::poll_fn(|cx| alarm.as_mut().poll_lifetime(&d, cx)).await;
        assert_eq!(Instant::now() - t0, 25 * S);
        // The read deadline passed meanwhile: due at once, the lifetime first.
        let kind = std::future::poll_fn(|cx| alarm.as_mut().poll_expired(&d, cx)).await;
        assert_eq!(kind, TimeoutKind::Lifetime);
        assert_eq!(Instant::now() - t0, 25 * S);
    }
}
