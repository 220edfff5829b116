//! [`catch_panic`]: a future's panics as typed exit reasons, for the plain tasks and callbacks
//! that are not processes.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project::pin_project;

use crate::exit::ExitReason;

/// Runs `future`, turning a panic in any of its polls into `Err(`[`ExitReason::Panicked`]`)`
/// with the panic's message, instead of an unwind through its caller (or its task).
///
/// Every process already runs this way; use it for the few plain tasks a library keeps (an
/// accept loop, a maintenance tick) so that their panics are reported as a reason, not lost
/// with the task. [`serve`](crate::serve) wraps each `GenServer` callback in it, so that
/// `terminate` still runs after a panic.
///
/// # Examples
/// ```
/// use beamline_process::{ExitReason, catch_panic};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # std::panic::set_hook(Box::new(|_| {}));
/// let reason = catch_panic(async { panic!("the loop broke") }).await.unwrap_err();
/// assert!(matches!(reason, ExitReason::Panicked(message) if &*message == "the loop broke"));
/// assert_eq!(catch_panic(async { 7 }).await.unwrap(), 7);
/// # }
/// ```
pub fn catch_panic<F: Future>(future: F) -> CatchPanic<F> {
    CatchPanic(future)
}

/// The future of [`catch_panic`].
#[pin_project]
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct CatchPanic<F>(#[pin] F);

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, ExitReason>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.project().0;
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(ExitReason::from_panic(&*payload))),
        }
    }
}
