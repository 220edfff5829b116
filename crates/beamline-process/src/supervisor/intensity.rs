//! Restart intensity: OTP's "at most N restarts in T" rule, as a sliding window over restart
//! times. Pure: the caller passes `now`.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::process::ProcessId;
use crate::supervisor::ChildId;

/// How many restarts a supervisor tolerates, and over what window, before it gives up.
///
/// More than `max_restarts` restarts within any `period` makes the supervisor stop all its
/// children and exit with [`RestartIntensityExceeded`], which its own supervisor sees as an
/// abnormal exit (escalation). The default is OTP's: 3 restarts in 5 seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::exhaustive_structs)] // closed: OTP's intensity is exactly this pair, built as a literal
pub struct Intensity {
    /// Restarts tolerated within `period` (0: the first restart already escalates).
    pub max_restarts: u32,
    /// The length of the sliding window.
    pub period: Duration,
}

impl Intensity {
    /// At most `max_restarts` restarts within `period`.
    pub fn new(max_restarts: u32, period: Duration) -> Self {
        Self {
            max_restarts,
            period,
        }
    }
}

impl Default for Intensity {
    fn default() -> Self {
        Self::new(3, Duration::from_secs(5))
    }
}

/// Why a supervisor exited after a crash loop: the [`ExitReason::Error`](crate::ExitReason::Error)
/// its parent receives (get it back with
/// [`ExitReason::downcast_error`](crate::ExitReason::downcast_error)).
#[derive(Clone, Debug, thiserror::Error)]
#[error(
    "supervisor {supervisor} gave up: restarting child {child} would exceed {} restarts in {:?}",
    intensity.max_restarts,
    intensity.period
)]
#[non_exhaustive]
pub struct RestartIntensityExceeded {
    /// The supervisor that gave up.
    pub supervisor: ProcessId,
    /// The child whose exit would have been one restart too many.
    pub child: ChildId,
    /// The limit that was exceeded.
    pub intensity: Intensity,
}

/// Restart times within the current window.
#[derive(Debug)]
pub(crate) struct RestartWindow {
    intensity: Intensity,
    restarts: VecDeque<Instant>,
}

impl RestartWindow {
    pub(crate) fn new(intensity: Intensity) -> Self {
        Self {
            intensity,
            restarts: VecDeque::new(),
        }
    }

    pub(crate) fn intensity(&self) -> Intensity {
        self.intensity
    }

    /// Records a restart at `now`. False if it makes more than `max_restarts` restarts within
    /// the last `period` (restarts at least `period` old no longer count).
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        while let Some(&oldest) = self.restarts.front() {
            if now.saturating_duration_since(oldest) >= self.intensity.period {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        self.restarts.push_back(now);
        self.restarts.len() <= self.intensity.max_restarts as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn allows_max_restarts_within_the_period_then_refuses() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new(Intensity::new(3, 5 * S));
        assert!(w.allow(t0));
        assert!(w.allow(t0 + S));
        assert!(w.allow(t0 + 2 * S));
        assert!(
            !w.allow(t0 + 3 * S),
            "a fourth restart within 5 s escalates"
        );
    }

    #[test]
    fn the_window_slides() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new(Intensity::new(3, 5 * S));
        for i in 0..3 {
            assert!(w.allow(t0 + i * S));
        }
        // At t0+5 s the restart at t0 is a full period old and no longer counts.
        assert!(w.allow(t0 + 5 * S));
        // Restarts at 1, 2, 5 and now 5.5 s: four within 5 s.
        assert!(!w.allow(t0 + 5 * S + S / 2));
    }

    #[test]
    fn spaced_out_restarts_never_escalate() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new(Intensity::new(1, 5 * S));
        for i in 0..100 {
            assert!(w.allow(t0 + i * 5 * S));
        }
    }

    #[test]
    fn zero_max_restarts_escalates_on_the_first() {
        let mut w = RestartWindow::new(Intensity::new(0, 5 * S));
        assert!(!w.allow(Instant::now()));
    }
}
