//! The typed [`Addr`] a process is messaged through, its [`Cast`] future and the call [`Timeout`].

use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tokio::sync::oneshot;

use super::core::Rejected;
use super::core::{Core, Process};
use super::deadline::Deadline;
use super::{Exited, Pid, ProcessId, Reply};
use crate::error::{CallError, CastError, TryCastError};
use crate::exit::ExitReason;

/// The address of a process that receives messages of type `M`: cheap to clone, safe to share.
///
/// An `Addr` names one incarnation. When the process exits, sends fail with its reason; a
/// supervised child that is restarted is a new process, reached through its stable
/// [`Child`](crate::Child) handle instead.
pub struct Addr<M> {
    pub(crate) proc: Arc<Process<M>>,
}

impl<M> Clone for Addr<M> {
    fn clone(&self) -> Self {
        Self {
            proc: self.proc.clone(),
        }
    }
}

impl<M: Send + 'static> Addr<M> {
    /// The process's id.
    pub fn id(&self) -> ProcessId {
        self.proc.id()
    }

    /// The untyped handle, for links and monitors.
    pub fn pid(&self) -> Pid {
        self.proc.pid()
    }

    /// True until the process starts exiting (or is killed).
    pub fn is_alive(&self) -> bool {
        Core::is_alive(&*self.proc)
    }

    /// Why the process ended, once it has.
    pub fn exit_reason(&self) -> Option<ExitReason> {
        Core::exit_reason(&*self.proc)
    }

    /// Waits for the process to end; see [`Pid::exited`].
    pub fn exited(&self) -> Exited {
        self.pid().exited()
    }

    /// Kills the process; see [`Pid::kill`].
    pub fn kill(&self) -> bool {
        Core::kill(&*self.proc)
    }

    /// User messages waiting in the mailbox.
    pub fn mailbox_len(&self) -> usize {
        self.proc.queued_messages()
    }

    /// Sends a message, waiting for mailbox space if it is full (backpressure). Waiting senders
    /// are served first come, first served. Cancel-safe: dropping the future before it
    /// completes sends nothing. Cooperative: it spends a unit of tokio's task budget, and
    /// yields first when the budget is spent, as a tokio channel's `send` does.
    ///
    /// # Errors
    /// [`CastError::Exited`] if the process exited (or is being killed) before the message was
    /// queued; the message comes back.
    pub fn cast(&self, message: M) -> Cast<'_, M> {
        Cast {
            proc: &self.proc,
            message: Some(message),
            waiter: None,
        }
    }

    /// Sends a message if there is room right now, without waiting. Cheap enough to drop slow
    /// consumers on a hot path: one short lock, no allocation.
    ///
    /// # Errors
    /// [`TryCastError::Full`] if the mailbox is at capacity, [`TryCastError::Exited`] if the
    /// process is gone; either way the message comes back.
    pub fn try_cast(&self, message: M) -> Result<(), TryCastError<M>> {
        self.proc
            .try_push(message, false)
            .map_err(|rejected| match rejected {
                Rejected::Full(message) => TryCastError::Full {
                    pid: self.id(),
                    message,
                },
                Rejected::Exited(reason, message) => TryCastError::Exited {
                    pid: self.id(),
                    reason,
                    message,
                },
            })
    }

    /// Sends a request and waits for its reply. `make` builds the message around the [`Reply`]
    /// the process answers through, e.g. `addr.call(Msg::Get, timeout)` for `Msg::Get(Reply<u64>)`.
    ///
    /// The call ends in the reply, a timeout, or the process's exit reason, and never hangs on
    /// a dead process: if the process panics or returns while holding the request, or exits
    /// with the request still queued, the call fails with [`CallError::Exited`] as soon as the
    /// exit is published. With [`Timeout::Infinity`] (OTP's `infinity`) only a process that
    /// stays alive without ever answering can keep the caller waiting.
    ///
    /// # Errors
    /// - [`CallError::Timeout`]: no reply within the timeout (time spent waiting for mailbox
    ///   space counts).
    /// - [`CallError::Exited`]: the process exited before replying.
    ///
    /// # Panics
    /// With a finite timeout, outside a tokio runtime with a time driver (as
    /// `tokio::time::timeout`).
    pub async fn call<R, F>(&self, make: F, timeout: impl Into<Timeout>) -> Result<R, CallError>
    where
        F: FnOnce(Reply<R>) -> M,
    {
        let pid = self.id();
        let exited = |reason| CallError::Exited { pid, reason };
        let timeout = match timeout.into() {
            Timeout::After(timeout) => timeout,
            Timeout::Infinity => return self.request(make).await.map_err(exited),
        };
        let mut deadline = std::pin::pin!(Deadline::after(timeout));
        let mut exchange = std::pin::pin!(self.request(make));
        std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = exchange.as_mut().poll(cx) {
                return Poll::Ready(result.map_err(exited));
            }
            deadline
                .as_mut()
                .poll(cx)
                .map(|()| Err(CallError::Timeout { pid, timeout }))
        })
        .await
    }

    /// A call without a deadline: ends in the reply or the process's exit reason. (Our own
    /// supervisors use it directly: they always answer or exit.)
    pub(crate) async fn request<R, F>(&self, make: F) -> Result<R, ExitReason>
    where
        F: FnOnce(Reply<R>) -> M,
    {
        let (tx, rx) = oneshot::channel();
        if let Err(CastError::Exited { reason, .. }) = self.cast(make(Reply { tx })).await {
            return Err(reason);
        }
        match rx.await {
            Ok(value) => Ok(value),
            // The reply was dropped unanswered: wait for the exit (within any deadline).
            Err(_) => Err(self.exited().await),
        }
    }
}

/// How long [`Addr::call`] waits for its reply. A [`Duration`] converts into
/// [`Timeout::After`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(clippy::exhaustive_enums)] // closed: OTP's timeout is a duration or infinity
pub enum Timeout {
    /// At most this long.
    After(Duration),
    /// Until the reply or the process's exit, however long (OTP's `infinity`). Skips the
    /// timer, which is most of what a call costs beyond its two messages. A process that
    /// calls itself this way waits for ever.
    Infinity,
}

impl From<Duration> for Timeout {
    fn from(timeout: Duration) -> Self {
        Self::After(timeout)
    }
}

impl<M> PartialEq for Addr<M> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.proc, &other.proc)
    }
}

impl<M> Eq for Addr<M> {}

impl<M: Send + 'static> Hash for Addr<M> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id().hash(state);
    }
}

impl<M: Send + 'static> fmt::Debug for Addr<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Addr({})", self.id())
    }
}

impl<M: Send + 'static> From<Addr<M>> for Pid {
    fn from(addr: Addr<M>) -> Self {
        Pid(addr.proc)
    }
}

/// The future of [`Addr::cast`]: resolves once the message is queued, or fails with the
/// process's exit reason (handing the message back). Dropping it before it resolves sends
/// nothing and gives up its place in line (a slot it had been promised passes to the next
/// waiting sender).
#[must_use = "futures do nothing unless awaited"]
pub struct Cast<'a, M: Send + 'static> {
    proc: &'a Arc<Process<M>>,
    message: Option<M>,
    /// Our place in line while the mailbox is full.
    waiter: Option<Arc<AtomicBool>>,
}

// The message is moved, never pinned, so `Cast` is `Unpin` whatever `M` is.
impl<M: Send + 'static> Unpin for Cast<'_, M> {}

impl<M: Send + 'static> Future for Cast<'_, M> {
    type Output = Result<(), CastError<M>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        cooperative(cx, |cx| self.poll_cast(cx))
    }
}

impl<M: Send + 'static> Cast<'_, M> {
    fn poll_cast(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), CastError<M>>> {
        let this = self;
        if this.waiter.is_none() {
            // Fast path: room, and nobody already waiting ahead of us.
            let Some(message) = this.message.take() else {
                return Poll::Ready(Ok(()));
            };
            match this.proc.try_push(message, true) {
                Ok(()) => return Poll::Ready(Ok(())),
                Err(Rejected::Full(message)) => this.message = Some(message),
                Err(Rejected::Exited(reason, message)) => {
                    return Poll::Ready(Err(CastError::Exited {
                        pid: this.proc.id(),
                        reason,
                        message,
                    }));
                }
            }
        }
        this.proc
            .poll_push(&mut this.message, &mut this.waiter, cx)
            .map_err(|(reason, message)| CastError::Exited {
                pid: this.proc.id(),
                reason,
                message,
            })
    }
}

impl<M: Send + 'static> Drop for Cast<'_, M> {
    fn drop(&mut self) {
        if let Some(waiter) = self.waiter.take() {
            self.proc.cancel_push(&waiter);
        }
    }
}

impl<M: Send + 'static> fmt::Debug for Cast<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cast")
            .field("pid", &self.proc.id())
            .field("waiting", &self.waiter.is_some())
            .finish()
    }
}

/// One poll of a mailbox operation under tokio's cooperative budget, as tokio's own channels
/// do: when the task has spent its budget, `Pending` (the task is woken at once, after the
/// others had their turn) before touching the mailbox, so a loop whose casts or receives are
/// always ready still gives its worker back. A ready outcome consumes one unit.
pub(super) fn cooperative<T>(
    cx: &mut TaskContext<'_>,
    poll: impl FnOnce(&mut TaskContext<'_>) -> Poll<T>,
) -> Poll<T> {
    let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
    let polled = poll(cx);
    if polled.is_ready() {
        coop.made_progress();
    }
    polled
}
