//! Waiting in the queue, and the checkout deadline.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project::{pin_project, pinned_drop};
use tokio::time::{Instant, Sleep};

use super::{Core, Store};
use crate::waiters::{Removed, WaiterId};
use crate::{CheckoutError, Manager};

/// A checkout's deadline, fixed the first time the checkout has to wait for something, so a
/// checkout served at once never reads the clock.
#[derive(Debug)]
pub(crate) struct Deadline {
    timeout: Option<Duration>,
    at: Option<Instant>,
}

impl Deadline {
    pub(crate) const fn new(timeout: Option<Duration>) -> Self {
        Self { timeout, at: None }
    }

    /// The deadline, fixing it at `now + timeout` on first use; `None` without a timeout.
    pub(crate) fn at(&mut self, now: Instant) -> Option<Instant> {
        let timeout = self.timeout?;
        Some(*self.at.get_or_insert(now + timeout))
    }
}

/// A queued checkout. Resolves to the connection it is served, the connect error it is served,
/// `Closed`, or `Timeout` at the deadline. Dropped early, it leaves the queue, and a connection
/// it was served in the meantime goes to the next waiter.
#[pin_project(PinnedDrop)]
pub(crate) struct Wait<'a, M: Manager, S: Store<Conn = M::Connection>> {
    core: &'a Arc<Core<M, S>>,
    id: WaiterId,
    started: Instant,
    #[pin]
    timer: Option<Sleep>,
    done: bool,
}

impl<'a, M: Manager, S: Store<Conn = M::Connection>> Wait<'a, M, S> {
    pub(crate) fn new(core: &'a Arc<Core<M, S>>, id: WaiterId, deadline: &mut Deadline) -> Self {
        let started = Instant::now();
        Self {
            core,
            id,
            started,
            timer: deadline.at(started).map(tokio::time::sleep_until),
            done: false,
        }
    }
}

impl<M: Manager, S: Store<Conn = M::Connection>> Future for Wait<'_, M, S> {
    /// The lease and its wait-time bucket.
    type Output = Result<(S::Lease, usize), CheckoutError<M::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let now = this.core.clock.refresh();
        let mut st = this.core.lock();
        if let Some(outcome) = st.waiters.poll(*this.id, cx.waker()) {
            *this.done = true;
            let waited = now - *this.started;
            return Poll::Ready(outcome.map(|lease| (lease, st.tally.checked_out(Some(waited)))));
        }
        drop(st);
        let Some(timer) = this.timer.as_pin_mut() else {
            return Poll::Pending;
        };
        if timer.poll(cx).is_pending() {
            return Poll::Pending;
        }
        *this.done = true;
        let mut st = this.core.lock();
        Poll::Ready(match st.waiters.remove(*this.id) {
            // Served between the two locks: take it rather than time out.
            Removed::Served(outcome) => {
                let waited = now - *this.started;
                outcome.map(|lease| (lease, st.tally.checked_out(Some(waited))))
            }
            Removed::Waiting | Removed::Gone => Err(this.core.timed_out(&mut st)),
        })
    }
}

#[pinned_drop]
impl<M: Manager, S: Store<Conn = M::Connection>> PinnedDrop for Wait<'_, M, S> {
    fn drop(self: Pin<&mut Self>) {
        if !self.done {
            self.core.cancel(self.id);
        }
    }
}
