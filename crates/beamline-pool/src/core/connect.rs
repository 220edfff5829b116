//! Connect attempts: each runs on its own task, waits out the backoff after a failure, and
//! delivers its outcome to the longest waiter — the connection, or the attempt's own error.
//!
//! An attempt task lives while it is wanted: before each attempt (and after each backoff
//! sleep) it checks, under the lock, that the queue or `min_idle` still needs it, and leaves
//! otherwise. It holds the pool weakly while it sleeps, so a dropped pool ends it.

use std::sync::{Arc, Weak};

use tokio::time::Instant;

use super::{Core, Phase, Store, WakeList};
use crate::metrics::CloseReason;
use crate::{CheckoutError, ConnectCause, ConnectError, Manager};

/// What an attempt task does next.
enum Next {
    /// No longer wanted (or the pool closed): the task ends.
    Stop,
    /// Wanted, but the backoff says not before this.
    After(Instant),
    Now,
}

impl<M: Manager, S: Store<Conn = M::Connection>> Core<M, S> {
    /// Starts `n` attempt tasks (already counted in `connecting`).
    pub(crate) fn spawn_connects(self: &Arc<Self>, n: usize) {
        for _ in 0..n {
            self.runtime.spawn(attempt_loop(Arc::downgrade(self)));
        }
    }

    fn next_attempt(&self) -> Next {
        let mut st = self.lock();
        if st.wanted(&self.config) < st.connecting {
            st.connecting -= 1;
            return Next::Stop;
        }
        match st.connect.retry_at {
            Some(at) if at > Instant::now() => Next::After(at),
            _ => Next::Now,
        }
    }

    /// One call to [`Manager::create`] under the connect timeout.
    pub(crate) async fn attempt(&self) -> Result<M::Connection, ConnectCause<M::Error>> {
        let create = self.manager.create();
        let result = match self.config.connect_timeout {
            Some(limit) => match tokio::time::timeout(limit, create).await {
                Ok(result) => result,
                Err(_) => return Err(ConnectCause::TimedOut(limit)),
            },
            None => create.await,
        };
        result.map_err(|e| ConnectCause::Failed(Arc::new(e)))
    }

    /// Delivers an attempt's outcome. Returns whether the task is done.
    fn attempted(self: &Arc<Self>, result: Result<M::Connection, ConnectCause<M::Error>>) -> bool {
        match result {
            Ok(conn) => {
                let conn = self.new_conn(conn, self.clock.refresh());
                let mut guard = self.lock();
                let st = &mut *guard;
                st.connecting -= 1;
                st.connect.failures = 0;
                st.connect.retry_at = None;
                st.connect.last_error = None;
                st.connect.gave_up = false;
                st.connect.backoff.reset();
                st.tally.opened();
                if st.phase == Phase::Closed {
                    st.tally.closed(CloseReason::PoolClosed);
                    drop(guard);
                    drop(conn);
                    return true;
                }
                st.store.insert(conn);
                self.finish(guard, Vec::new());
                true
            }
            Err(cause) => self.failed(cause),
        }
    }

    /// A failed attempt: its error goes to the longest waiter, the next attempt waits out the
    /// backoff. When the backoff gives up, every waiter gets the error and the task ends.
    fn failed(self: &Arc<Self>, cause: ConnectCause<M::Error>) -> bool {
        let target = self.manager.target();
        let now = self.clock.refresh();
        let mut guard = self.lock();
        let st = &mut *guard;
        st.tally.connect_failures += 1;
        st.connect.failures = st.connect.failures.saturating_add(1);
        let error = ConnectError::new(self.name.clone(), target, st.connect.failures, cause);
        st.connect.last_error = Some(error.clone());
        let mut wakers = WakeList::default();
        let done = match st.connect.backoff.next_delay(now.into_std()) {
            Ok(delay) => {
                st.connect.retry_at = Some(now + delay);
                if let Ok(waker) = st.waiters.serve(Err(CheckoutError::Connect(error.clone()))) {
                    wakers.push(waker);
                }
                drop(guard);
                tracing::warn!(pool = %self.name, error = %error, retry_in = ?delay, "connect attempt failed");
                false
            }
            Err(give_up) => {
                let mut all = Vec::new();
                st.waiters
                    .fail_all(|| CheckoutError::Connect(error.clone()), &mut all);
                all.into_iter().for_each(|w| wakers.push(Some(w)));
                st.connect.retry_at = None;
                st.connect.failures = 0;
                st.connect.gave_up = true;
                st.connect.backoff.reset();
                st.connecting -= 1;
                drop(guard);
                tracing::error!(pool = %self.name, error = %error, %give_up, "connect attempts gave up; waiters failed");
                true
            }
        };
        wakers.wake();
        done
    }
}

async fn attempt_loop<M: Manager, S: Store<Conn = M::Connection>>(core: Weak<Core<M, S>>) {
    loop {
        let Some(strong) = core.upgrade() else {
            return;
        };
        match strong.next_attempt() {
            Next::Stop => return,
            Next::After(at) => {
                drop(strong);
                tokio::time::sleep_until(at).await;
            }
            Next::Now => {
                let result = strong.attempt().await;
                if strong.attempted(result) {
                    return;
                }
            }
        }
    }
}
