//! Starting a caller's future on its behalf: poll it once, here and now, then hand it over.
//!
//! The [`Connection`](crate::Connection) contract says a request takes its place in line on
//! the first poll of its `call` future. So the driver starts the offline queue in queue
//! order by polling each queued call once itself, and hands each future to its caller, who
//! polls it to the end with its own waker (every future registers the waker of its latest
//! poll, so the no-op waker of the first one is simply replaced).
//!
//! That first poll is the connection's code, run by the driver: it runs with no lock held,
//! and a panic in it is caught and returned as the panic's message instead of unwinding
//! through the driver.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use beamline_failure::panic_message;

/// A future polled once where it was made, for its new owner to finish.
pub(super) struct Handover<F: Future> {
    state: State<F>,
}

enum State<F: Future> {
    Running(F),
    /// It finished on its first poll; the output waits for the owner.
    Done(Option<F::Output>),
}

/// Polls `future` once, now, with a waker that does nothing, and returns it to be handed to
/// the task that finishes it. `Err` holds the message of a panic in that first poll (the
/// future is dropped then).
pub(super) fn poll_once<F: Future + Unpin>(mut future: F) -> Result<Handover<F>, Arc<str>> {
    let mut cx = Context::from_waker(Waker::noop());
    let state = match catch_panic(|| Pin::new(&mut future).poll(&mut cx))? {
        Poll::Pending => State::Running(future),
        Poll::Ready(output) => State::Done(Some(output)),
    };
    Ok(Handover { state })
}

// Only `F` is ever polled in place; the output is moved out, never pinned.
impl<F: Future + Unpin> Unpin for Handover<F> {}

impl<F: Future + Unpin> Future for Handover<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        match &mut self.get_mut().state {
            State::Running(future) => Pin::new(future).poll(cx),
            // Taken once; a future is not polled again after it returned `Ready`.
            State::Done(output) => output.take().map_or(Poll::Pending, Poll::Ready),
        }
    }
}

/// Runs `f`, catching a panic in it as the panic's message.
pub(crate) fn catch_panic<R>(f: impl FnOnce() -> R) -> Result<R, Arc<str>> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| panic_message(payload.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_future_ready_at_once_keeps_its_output() {
        let handed = poll_once(std::future::ready(7)).unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        let mut handed = std::pin::pin!(handed);
        assert_eq!(handed.as_mut().poll(&mut cx), Poll::Ready(7));
    }

    #[test]
    fn the_first_poll_happens_before_the_handover() {
        let polled = std::cell::Cell::new(0);
        let future = std::future::poll_fn(|_| {
            polled.set(polled.get() + 1);
            if polled.get() < 2 {
                Poll::Pending
            } else {
                Poll::Ready("done")
            }
        });
        let handed = poll_once(Box::pin(future)).unwrap();
        assert_eq!(polled.get(), 1);
        let mut cx = Context::from_waker(Waker::noop());
        let mut handed = std::pin::pin!(handed);
        assert_eq!(handed.as_mut().poll(&mut cx), Poll::Ready("done"));
    }

    #[test]
    fn a_panic_in_the_first_poll_is_its_message() {
        let future = std::future::poll_fn(|_| -> Poll<()> { panic!("boom {}", 7) });
        let err = poll_once(Box::pin(future)).err().unwrap();
        assert_eq!(&*err, "boom 7");
        assert_eq!(&*panic_message(&"static"), "static");
        assert_eq!(&*panic_message(&42u8), "panic with a non-string payload");
    }
}
