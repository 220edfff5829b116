//! The start handshake: how a supervisor waits for an acknowledged child's start (OTP's
//! synchronous `start_link`, which returns once the child's `init` has).

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::exit::ExitReason;
use crate::process::{Pid, StartAck, Timeout};

/// A child did not acknowledge its start ([`Context::started`](crate::Context::started))
/// within its start timeout ([`ChildSpec::acknowledged`](crate::ChildSpec::acknowledged)), so
/// its supervisor killed it. Found inside the [`ExitReason::Error`] of a failed start
/// ([`StartError::Child`](crate::StartError::Child),
/// [`StartChildError::Failed`](crate::StartChildError::Failed)); get it back with
/// [`ExitReason::downcast_error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no start acknowledgement within {timeout:?}")]
#[non_exhaustive]
pub struct StartTimeout {
    /// The child's start timeout.
    pub timeout: Duration,
}

/// Runs in the child's task when it acknowledges, before the supervisor hears of it.
pub(crate) type OnAck = Box<dyn FnOnce() + Send>;

/// How waiting for a child's start ended.
pub(crate) enum Waited {
    /// It acknowledged (or is not acknowledged: started once spawned).
    Acknowledged,
    /// It exited first, with this reason.
    Exited(ExitReason),
    /// Its start timeout passed first; it is still running.
    TimedOut(Duration),
}

/// A child that was just spawned, and the acknowledgement to wait for if it has one.
pub(crate) struct Starting {
    pub(crate) pid: Pid,
    ack: Option<(oneshot::Receiver<()>, Timeout)>,
}

impl Starting {
    /// A handshake with the process `pid` is about to run: the ack to hand to its
    /// [`Context`](crate::Context), which runs `on_ack` (if any) and then wakes the waiting
    /// half, returned second.
    pub(crate) fn handshake(pid: Pid, timeout: Timeout, on_ack: Option<OnAck>) -> (StartAck, Self) {
        let (tx, rx) = oneshot::channel();
        let ack: StartAck = Box::new(move || {
            if let Some(on_ack) = on_ack {
                on_ack();
            }
            let _ = tx.send(());
        });
        let starting = Self {
            pid,
            ack: Some((rx, timeout)),
        };
        (ack, starting)
    }

    /// A child that counts as started once spawned.
    pub(crate) fn spawned(pid: Pid) -> Self {
        Self { pid, ack: None }
    }

    /// Waits for the acknowledgement, the child's exit or its start timeout, whichever comes
    /// first (an acknowledgement that comes with the exit wins).
    pub(crate) async fn wait(&mut self) -> Waited {
        let Some((rx, timeout)) = self.ack.as_mut() else {
            return Waited::Acknowledged;
        };
        let limit = match *timeout {
            Timeout::After(limit) => Some(limit),
            Timeout::Infinity => None,
        };
        let mut exited = pin!(self.pid.exited());
        let mut deadline = pin!(limit.map(tokio::time::sleep));
        // The ack is dropped unused when the body drops its `Context` without acknowledging;
        // the child's exit or the timeout decides then.
        let mut acking = true;
        poll_fn(|cx| {
            if acking {
                match Pin::new(&mut *rx).poll(cx) {
                    Poll::Ready(Ok(())) => return Poll::Ready(Waited::Acknowledged),
                    Poll::Ready(Err(_)) => acking = false,
                    Poll::Pending => {}
                }
            }
            if let Poll::Ready(reason) = exited.as_mut().poll(cx) {
                return Poll::Ready(Waited::Exited(reason));
            }
            if let (Some(sleep), Some(limit)) = (deadline.as_mut().as_pin_mut(), limit)
                && sleep.poll(cx).is_ready()
            {
                return Poll::Ready(Waited::TimedOut(limit));
            }
            Poll::Pending
        })
        .await
    }

    /// Waits for the start: `Err` is the reason it failed (the child's exit reason, or
    /// [`StartTimeout`] after killing it).
    pub(crate) async fn acknowledged(mut self) -> Result<Pid, ExitReason> {
        match self.wait().await {
            Waited::Acknowledged => Ok(self.pid),
            Waited::Exited(reason) => Err(reason),
            Waited::TimedOut(timeout) => {
                self.pid.kill();
                self.pid.exited().await;
                Err(ExitReason::error(StartTimeout { timeout }))
            }
        }
    }
}
