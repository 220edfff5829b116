//! Catching a panic in user code the pool's own tasks run, so that it becomes a typed
//! outcome instead of ending the task with its bookkeeping half done.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::Arc;

/// Polls `future` to its end, turning a panic in any poll into `Err(message)`.
///
/// Unwind safety: what the future borrows is the pool's state behind its lock, whose
/// critical sections never run user code, and the manager, which the pool only calls; a
/// panic leaves neither half-changed.
pub(crate) async fn catch_panic<F: Future>(future: F) -> Result<F::Output, Arc<str>> {
    let mut future = pin!(future);
    std::future::poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(poll) => poll.map(Ok),
            Err(payload) => std::task::Poll::Ready(Err(message(&*payload))),
        },
    )
    .await
}

/// A panic payload's message.
pub(crate) fn message(payload: &(dyn Any + Send)) -> Arc<str> {
    if let Some(s) = payload.downcast_ref::<&str>() {
        Arc::from(*s)
    } else if let Some(s) = payload.downcast_ref::<String>() {
        Arc::from(s.as_str())
    } else {
        Arc::from("<non-string panic payload>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_in_any_poll_is_its_message() {
        let mut polls = 0;
        let pending_once = std::future::poll_fn(|cx| {
            polls += 1;
            if polls == 1 {
                cx.waker().wake_by_ref();
                return std::task::Poll::Pending;
            }
            std::panic::panic_any(7_u8)
        });
        let caught: Result<(), _> = catch_panic(pending_once).await;
        assert_eq!(caught.unwrap_err().as_ref(), "<non-string panic payload>");
        let caught = catch_panic(async { panic!("boom {}", 1) }).await;
        let caught: Result<(), _> = caught;
        assert_eq!(caught.unwrap_err().as_ref(), "boom 1");
        assert_eq!(catch_panic(async { 3 }).await.unwrap(), 3);
    }
}
