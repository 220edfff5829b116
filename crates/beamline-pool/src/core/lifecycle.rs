//! A pool's upkeep and end: the maintenance task (reap, expire, top up), metrics, and
//! `close`.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use super::{Core, Phase, Reap, Store, unwind};
use crate::Manager;
use crate::clock::to_millis;
use crate::metrics::PoolMetrics;

impl<M: Manager, S: Store<Conn = M::Connection>> Core<M, S> {
    /// Closes idle connections past their time and tops `min_idle` up.
    fn maintain(self: &Arc<Self>) {
        self.clock.refresh();
        let now = self.clock.now();
        let mut guard = self.lock();
        let st = &mut *guard;
        if st.phase == Phase::Closed {
            return;
        }
        let reap = Reap {
            now,
            idle_before: self
                .config
                .idle_timeout
                .and_then(|t| now.checked_sub(to_millis(t))),
            min_idle: self.config.min_idle,
        };
        let mut closed = Vec::new();
        st.store.reap(reap, &mut st.tally, &mut closed);
        self.finish(guard, closed);
    }

    pub(crate) fn metrics(&self) -> PoolMetrics {
        let st = self.lock();
        let fast = S::fast_checkouts(&self.fast) - st.tally.fast_rejected;
        let mut wait_time = st.tally.wait_time;
        wait_time.add_immediate(fast);
        PoolMetrics {
            max_size: self.config.max_size,
            size: st.tally.open,
            idle: st.store.idle(),
            in_use: st.store.in_use(st.tally.open),
            users: st.store.users(st.tally.open),
            connecting: st.connecting,
            waiters: st.waiters.waiting(),
            checkouts: st.tally.checkouts + fast,
            wait_time,
            timeouts: st.tally.timeouts,
            created: st.tally.created,
            connect_failures: st.tally.connect_failures,
            closed: st.tally.closed,
            detached: st.tally.detached,
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().phase == Phase::Closed
    }

    /// Fails every queued checkout with `Closed`, closes idle connections, and marks the pool
    /// so that connections in use close when they come back and attempts under way close
    /// what they open.
    pub(crate) fn close(self: &Arc<Self>) {
        let mut guard = self.lock();
        let st = &mut *guard;
        if st.phase == Phase::Closed {
            return;
        }
        st.phase = Phase::Closed;
        // Before closing idle connections: a fast return after this sees the gate and settles.
        self.gate.0.close();
        let mut wakers = Vec::new();
        st.waiters.fail_all(|| self.closed_error(), &mut wakers);
        let mut closed = Vec::new();
        st.store.close_idle(&mut st.tally, &mut closed);
        let in_use = st.store.in_use(st.tally.open);
        st.count_closing(&closed);
        drop(guard);
        if let Some(maintenance) = self.maintenance.get() {
            maintenance.abort();
        }
        tracing::debug!(pool = %self.name, in_use, "pool closed");
        wakers.into_iter().for_each(Waker::wake);
        self.dispose(closed);
    }
}

impl<M: Manager, S: Store<Conn = M::Connection>> Drop for Core<M, S> {
    fn drop(&mut self) {
        if let Some(maintenance) = self.maintenance.get() {
            maintenance.abort();
        }
    }
}

impl<M: Manager, S: Store<Conn = M::Connection>> fmt::Debug for Core<M, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.name)
            .field("metrics", &self.metrics())
            .finish_non_exhaustive()
    }
}

/// The maintenance task: every tick, advance the clock, reap, top up. It holds the pool weakly
/// and ends when the pool is dropped (or is aborted by `close`).
///
/// The user code a tick runs (the `Drop` of the connections it closes) may panic: the panic
/// is logged and the task goes on, so reaping, lifetime expiry and `min_idle` top-up never
/// stop silently. The books are already right by then (see [`Core::dispose`]).
pub(super) async fn maintain<M: Manager, S: Store<Conn = M::Connection>>(
    core: std::sync::Weak<Core<M, S>>,
    tick: Duration,
) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(core) = core.upgrade() else {
            return;
        };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| core.maintain())) {
            let panic = unwind::message(&*payload);
            tracing::error!(pool = %core.name, %panic, "user code panicked during pool maintenance; maintenance goes on");
        }
    }
}
