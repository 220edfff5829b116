//! The send timeout of one stream: how long a write may make no progress.
//!
//! "No progress" means no byte accepted by the socket (for TLS, by the TCP socket under the
//! session), so a slow reader that keeps taking bytes is never cut off. The timer costs
//! nothing while writes go through: it is armed when a write-side poll is pending, and
//! allocated the first time one is.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Where a stream's writes stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sending {
    /// The last write-side poll went through (or none waited yet).
    Flowing,
    /// A write-side poll is waiting on the socket, which had accepted `mark` bytes when the
    /// wait began; the timer runs.
    Stalled { mark: u64 },
    /// The send timeout passed: every later write fails.
    TimedOut,
}

/// The send timeout's state machine and its timer.
#[derive(Debug)]
pub(crate) struct SendTimer {
    timeout: Option<Duration>,
    sending: Sending,
    /// Boxed: allocated only once a write first waits.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl SendTimer {
    pub(crate) fn new(timeout: Option<Duration>) -> Self {
        Self {
            timeout,
            sending: Sending::Flowing,
            sleep: None,
        }
    }

    /// The timeout, once it has passed.
    pub(crate) fn timed_out(&self) -> Option<Duration> {
        match self.sending {
            Sending::TimedOut => self.timeout,
            Sending::Flowing | Sending::Stalled { .. } => None,
        }
    }

    /// A write-side poll went through.
    pub(crate) fn flowing(&mut self) {
        if let Sending::Stalled { .. } = self.sending {
            self.sending = Sending::Flowing;
        }
    }

    /// A write-side poll is pending, with `sent` bytes accepted by the socket so far. Starts
    /// the timer if the stream was flowing or the socket took bytes since it started; ready
    /// (once) when the timeout has passed with no byte accepted.
    pub(crate) fn poll_stalled(&mut self, cx: &mut Context<'_>, sent: u64) -> Poll<Duration> {
        let Some(timeout) = self.timeout else {
            return Poll::Pending;
        };
        match self.sending {
            Sending::Stalled { mark } if mark == sent => {}
            Sending::TimedOut => return Poll::Ready(timeout),
            Sending::Flowing | Sending::Stalled { .. } => {
                self.sending = Sending::Stalled { mark: sent };
                let at = Instant::now() + timeout;
                match &mut self.sleep {
                    Some(sleep) => sleep.as_mut().reset(at),
                    None => self.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
                }
            }
        }
        let Some(sleep) = &mut self.sleep else {
            return Poll::Pending;
        };
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.sending = Sending::TimedOut;
        Poll::Ready(timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn poll(timer: &mut SendTimer, sent: u64) -> Poll<Duration> {
        timer.poll_stalled(&mut Context::from_waker(Waker::noop()), sent)
    }

    const S: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn a_stall_without_progress_times_out_once_and_for_good() {
        let mut timer = SendTimer::new(Some(30 * S));
        assert!(poll(&mut timer, 0).is_pending());
        tokio::time::sleep(29 * S).await;
        assert!(poll(&mut timer, 0).is_pending());
        tokio::time::sleep(S).await;
        assert_eq!(poll(&mut timer, 0), Poll::Ready(30 * S));
        assert_eq!(timer.timed_out(), Some(30 * S));
        // Sticky: a later success does not revive the stream.
        timer.flowing();
        assert_eq!(poll(&mut timer, 99), Poll::Ready(30 * S));
    }

    #[tokio::test(start_paused = true)]
    async fn any_byte_accepted_restarts_the_wait() {
        let mut timer = SendTimer::new(Some(30 * S));
        assert!(poll(&mut timer, 0).is_pending());
        for sent in 1..10 {
            tokio::time::sleep(20 * S).await;
            assert!(poll(&mut timer, sent).is_pending(), "moving, at {sent}");
        }
        // A poll that went through ends the stall; the next one starts from zero.
        timer.flowing();
        tokio::time::sleep(100 * S).await;
        assert!(poll(&mut timer, 9).is_pending());
        tokio::time::sleep(29 * S).await;
        assert!(poll(&mut timer, 9).is_pending());
        assert_eq!(timer.timed_out(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn no_timeout_no_timer() {
        let mut timer = SendTimer::new(None);
        assert!(poll(&mut timer, 0).is_pending());
        tokio::time::sleep(3600 * S).await;
        assert!(poll(&mut timer, 0).is_pending());
        assert!(timer.sleep.is_none());
    }
}
