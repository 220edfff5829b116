//! Connect attempts: each runs on its own task, waits out the backoff after a failure, and
//! delivers its outcome to the longest waiter — the connection, or the attempt's own error.
//!
//! An attempt task lives while it is wanted: before each attempt (and after each backoff
//! sleep) it checks, under the lock, that the queue or `min_idle` still needs it, and leaves
//! otherwise. It holds the pool weakly while it sleeps, so a dropped pool ends it.
//!
//! User code ([`Manager::create`], [`Manager::target`]) runs under [`catch_panic`]: a panic
//! is a failed attempt whose waiter gets [`CheckoutError::CreatePanicked`]. The task's place
//! in `connecting` is a [`Place`], given back exactly once however the task ends.

use std::sync::{Arc, Weak};

use tokio::time::Instant;

use super::unwind::catch_panic;
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

/// Why an attempt produced no connection.
enum Failure<E> {
    /// The manager's error or the connect timeout, and the target it names.
    Connect {
        target: String,
        cause: ConnectCause<E>,
    },
    /// `create` (or `target`) panicked, with this message.
    Panicked(Arc<str>),
}

/// One attempt task's place in `connecting`. Whoever decrements `connecting` for the task
/// does it under the pool lock and [`leaves`](Self::leave) in the same breath; if the task
/// ends any other way (its future dropped by a shutting-down runtime, a panic that escaped),
/// `Drop` gives the place back. It starts no replacement itself: the next change to the pool
/// (a checkout, a return, the maintenance tick) does.
pub(super) struct Place<M: Manager, S: Store<Conn = M::Connection>> {
    core: Weak<Core<M, S>>,
    held: bool,
}

impl<M: Manager, S: Store<Conn = M::Connection>> Place<M, S> {
    /// Marks the place given back (the caller decremented `connecting` under the lock).
    fn leave(&mut self) {
        self.held = false;
    }
}

impl<M: Manager, S: Store<Conn = M::Connection>> Drop for Place<M, S> {
    fn drop(&mut self) {
        if self.held
            && let Some(core) = self.core.upgrade()
        {
            core.lock().connecting -= 1;
        }
    }
}

impl<M: Manager, S: Store<Conn = M::Connection>> Core<M, S> {
    /// Starts `n` attempt tasks (already counted in `connecting`).
    pub(crate) fn spawn_connects(self: &Arc<Self>, n: usize) {
        for _ in 0..n {
            let place = Place {
                core: Arc::downgrade(self),
                held: true,
            };
            self.runtime.spawn(attempt_loop(place));
        }
    }

    fn next_attempt(&self, place: &mut Place<M, S>) -> Next {
        let mut st = self.lock();
        if st.wanted(&self.config) < st.connecting {
            st.connecting -= 1;
            place.leave();
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

    /// One attempt, with user code's panics caught: the connection, or why there is none.
    async fn attempt_caught(&self) -> Result<M::Connection, Failure<M::Error>> {
        let attempt = async {
            match self.attempt().await {
                Ok(conn) => Ok(conn),
                Err(cause) => Err(Failure::Connect {
                    target: self.manager.target(),
                    cause,
                }),
            }
        };
        catch_panic(attempt)
            .await
            .unwrap_or_else(|message| Err(Failure::Panicked(message)))
    }

    /// Delivers an attempt's outcome. Returns whether the task is done.
    fn attempted(
        self: &Arc<Self>,
        result: Result<M::Connection, Failure<M::Error>>,
        place: &mut Place<M, S>,
    ) -> bool {
        match result {
            Ok(conn) => {
                let conn = self.new_conn(conn, self.clock.refresh());
                let mut guard = self.lock();
                let st = &mut *guard;
                st.connecting -= 1;
                place.leave();
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
            Err(failure) => self.failed(failure, place),
        }
    }

    /// A failed attempt: its error goes to the longest waiter, the next attempt waits out the
    /// backoff. When the backoff gives up, every waiter gets the error and the task ends.
    /// A panic counts as a failure, so a manager that always panics is retried at the
    /// backoff's pace, never in a tight loop.
    fn failed(self: &Arc<Self>, failure: Failure<M::Error>, place: &mut Place<M, S>) -> bool {
        let now = self.clock.refresh();
        let mut guard = self.lock();
        let st = &mut *guard;
        st.tally.connect_failures += 1;
        st.connect.failures = st.connect.failures.saturating_add(1);
        let error = match failure {
            Failure::Connect { target, cause } => {
                let error =
                    ConnectError::new(self.name.clone(), target, st.connect.failures, cause);
                st.connect.last_error = Some(error.clone());
                CheckoutError::Connect(error)
            }
            Failure::Panicked(message) => CheckoutError::CreatePanicked {
                pool: self.name.clone(),
                message,
            },
        };
        let mut wakers = WakeList::default();
        let done = match st.connect.backoff.next_delay(now.into_std()) {
            Ok(delay) => {
                st.connect.retry_at = Some(now + delay);
                if let Ok(waker) = st.waiters.serve(Err(error.clone())) {
                    wakers.push(waker);
                }
                drop(guard);
                match &error {
                    CheckoutError::CreatePanicked { message, .. } => {
                        tracing::error!(pool = %self.name, panic = %message, retry_in = ?delay, "Manager::create panicked");
                    }
                    _ => {
                        // As an error, so a subscriber shows its sources (the manager's error) too.
                        tracing::warn!(pool = %self.name, error = &error as &(dyn std::error::Error + 'static), retry_in = ?delay, "connect attempt failed");
                    }
                }
                false
            }
            Err(give_up) => {
                let mut all = Vec::new();
                st.waiters.fail_all(|| error.clone(), &mut all);
                all.into_iter().for_each(|w| wakers.push(Some(w)));
                st.connect.retry_at = None;
                st.connect.failures = 0;
                st.connect.gave_up = true;
                st.connect.backoff.reset();
                st.connecting -= 1;
                place.leave();
                drop(guard);
                tracing::error!(pool = %self.name, error = &error as &(dyn std::error::Error + 'static), %give_up, "connect attempts gave up; waiters failed");
                true
            }
        };
        wakers.wake();
        done
    }
}

async fn attempt_loop<M: Manager, S: Store<Conn = M::Connection>>(mut place: Place<M, S>) {
    loop {
        let Some(core) = place.core.upgrade() else {
            return;
        };
        match core.next_attempt(&mut place) {
            Next::Stop => return,
            Next::After(at) => {
                drop(core);
                tokio::time::sleep_until(at).await;
            }
            Next::Now => {
                let result = core.attempt_caught().await;
                if core.attempted(result, &mut place) {
                    return;
                }
            }
        }
    }
}
