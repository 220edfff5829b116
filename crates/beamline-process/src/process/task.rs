//! The future a process's tokio task runs: the body, with its panics caught and its end
//! (however it comes) published as the process's exit.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use pin_project::{pin_project, pinned_drop};

use super::core::Process;
use super::{Context, Pid, StartAck};
use crate::exit::ExitReason;

/// Wraps a body future. Every poll runs inside `catch_unwind`, so a panic becomes
/// [`ExitReason::Panicked`] instead of unwinding into the runtime; a kill request ends the body
/// at the next poll boundary; and if the task is dropped without finishing (aborted, or the
/// runtime shut down), the drop publishes the exit.
#[pin_project(PinnedDrop)]
pub(crate) struct ProcessTask<M: Send + 'static, F> {
    proc: Arc<Process<M>>,
    #[pin]
    body: Option<F>,
}

impl<M: Send + 'static, F> Future for ProcessTask<M, F>
where
    F: Future<Output = Result<(), ExitReason>>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let mut this = self.project();
        let Some(body) = this.body.as_mut().as_pin_mut() else {
            return Poll::Ready(());
        };
        let reason = if this.proc.kill_requested() {
            this.proc.kill_reason()
        } else {
            let polled = catch_unwind(AssertUnwindSafe(|| match body.poll(cx) {
                Poll::Ready(Ok(())) => Poll::Ready(ExitReason::Normal),
                Poll::Ready(Err(reason)) => Poll::Ready(reason),
                Poll::Pending => Poll::Pending,
            }));
            match polled {
                Ok(Poll::Ready(reason)) => reason,
                Ok(Poll::Pending) if this.proc.kill_requested() => this.proc.kill_reason(),
                Ok(Poll::Pending) => return Poll::Pending,
                Err(payload) => ExitReason::from_panic(&*payload),
            }
        };
        this.proc.finish(reason);
        // The body, and any `Reply` it still holds, drops only after the exit is published, so
        // a caller whose reply is dropped here finds the exit reason already set. A panicking
        // destructor cannot change a reason that is already published.
        let _ = catch_unwind(AssertUnwindSafe(|| this.body.set(None)));
        Poll::Ready(())
    }
}

#[pinned_drop]
impl<M: Send + 'static, F> PinnedDrop for ProcessTask<M, F> {
    fn drop(self: Pin<&mut Self>) {
        let this = self.project();
        if this.body.is_some() {
            let reason = this.proc.kill_reason();
            this.proc.finish(reason);
        }
    }
}

/// Builds the body from `start` and spawns it as the task of `proc`. `ack` is the start
/// handshake the body's [`Context::started`] calls, when someone waits for it.
///
/// `start` (user code) runs here, synchronously; if it panics, the process exits with that
/// panic before it ever runs, and the caller (often a supervisor) is not unwound.
///
/// # Panics
/// If called outside a tokio runtime (as `tokio::spawn`).
pub(crate) fn start<M, S, Fut>(
    proc: Arc<Process<M>>,
    parent: Option<Pid>,
    ack: Option<StartAck>,
    start: S,
) where
    M: Send + 'static,
    S: FnOnce(Context<M>) -> Fut,
    Fut: Future<Output = Result<(), ExitReason>> + Send + 'static,
{
    if let Some(ack) = ack {
        proc.set_start_ack(ack);
    }
    let ctx = Context {
        proc: proc.clone(),
        parent,
    };
    let body = match catch_unwind(AssertUnwindSafe(|| start(ctx))) {
        Ok(body) => body,
        Err(payload) => {
            proc.finish(ExitReason::from_panic(&*payload));
            return;
        }
    };
    tracing::trace!(pid = proc.id().0, "process started");
    let handle = tokio::spawn(ProcessTask {
        proc: proc.clone(),
        body: Some(body),
    });
    proc.set_abort(handle.abort_handle());
}
