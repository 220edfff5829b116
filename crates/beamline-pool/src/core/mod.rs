//! The machinery both pools share: the lock-protected state, the FIFO queue, connect attempts
//! with backoff, the maintenance task and `close`.
//!
//! One `std::sync::Mutex` (the *pool lock*) guards the books, the queue and the store. Its
//! critical sections are a few comparisons and a push or a pop: no allocation, no clock read,
//! no user code (managers run outside it, connections are dropped after it is released,
//! wakers are woken after it).
//!
//! Each store also offers *fast paths* that skip the pool lock while no checkout is queued
//! (the [`Gate`] is clear): the exclusive store's per-thread shards of idle connections, the
//! shared store's per-slot atomic user counts.

mod connect;
mod lifecycle;
mod state;
mod store;
mod unwind;
mod wait;

use self::lifecycle::maintain;

/// The methods both pool handles share, on their `core` field.
macro_rules! handle_methods {
    () => {
        /// A snapshot of the pool's gauges and counters.
        pub fn metrics(&self) -> $crate::PoolMetrics {
            self.core.metrics()
        }

        /// Closes the pool: every queued checkout fails with
        /// [`CheckoutError::Closed`]($crate::CheckoutError::Closed), connections without a
        /// user are closed now and the others when their last user gives them back, a connect
        /// attempt under way closes what it opens, and every later checkout fails with
        /// `Closed`. Idempotent.
        pub fn close(&self) {
            self.core.close();
        }

        /// Whether [`close`](Self::close) was called.
        pub fn is_closed(&self) -> bool {
            self.core.is_closed()
        }

        /// The pool's name, as errors and traces show it.
        pub fn name(&self) -> &str {
            &self.core.name
        }

        /// The manager.
        pub fn manager(&self) -> &M {
            &self.core.manager
        }
    };
}
pub(crate) use handle_methods;

pub(crate) use state::{
    CacheAligned, ConnectState, Leased, Phase, Prepare, Prepared, State, Step, WakeList,
};
pub(crate) use store::{Conn, FastTake, Reap, Store, Verdict};
pub(crate) use wait::Deadline;

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use tokio::runtime::Handle;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::clock::{Clock, Millis, to_millis};
use crate::metrics::{CloseReason, FAST, Tally};
use crate::waiters::{Gate, Removed, WaiterId, Waiters};
use crate::{CheckoutError, ConfigError, ConnectError, Manager, PoolConfig, Start, StartError};

/// A pool's shared state and the manager, behind the pool handle's `Arc`.
pub(crate) struct Core<M: Manager, S: Store<Conn = M::Connection>> {
    pub(crate) manager: M,
    pub(crate) name: Arc<str>,
    pub(crate) config: PoolConfig,
    pub(crate) clock: Clock,
    /// Where connect attempts and maintenance run: the runtime the pool started on, so a
    /// guard dropped on any thread can still start a replacement.
    runtime: Handle,
    state: CacheAligned<Mutex<State<M::Error, S>>>,
    /// Read by every fast-path checkout and return; written only under the pool lock.
    pub(crate) gate: CacheAligned<Arc<Gate>>,
    /// The store's fast part, reached without the pool lock.
    pub(crate) fast: S::Fast,
    maintenance: OnceLock<AbortHandle>,
}

/// `pool-1`, `pool-2`... for pools started without a name.
fn default_name() -> Arc<str> {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    Arc::from(format!("pool-{}", NEXT.fetch_add(1, Ordering::Relaxed)))
}

/// A uniform draw in `[0, 1)`, from the standard library's per-process random hash keys.
fn random_unit() -> f64 {
    use std::hash::{BuildHasher, RandomState};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let bits = RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed));
    // The top 53 bits, as a fraction of 2^53: exactly representable, always below 1.
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

impl<M: Manager, S: Store<Conn = M::Connection>> Core<M, S> {
    /// Validates `config`, starts the maintenance task and, for an eager start, opens the
    /// first connections.
    pub(crate) async fn start(
        manager: M,
        config: PoolConfig,
        store: S,
    ) -> Result<Arc<Self>, StartError<M::Error>> {
        config.validate()?;
        let name = config.name.as_deref().map_or_else(default_name, Arc::from);
        let Ok(runtime) = Handle::try_current() else {
            return Err(StartError::NoRuntime { pool: name });
        };
        let backoff = config
            .backoff
            .build()
            .map_err(|e| StartError::Config(ConfigError::Backoff(e)))?;
        let gate = Arc::new(Gate::default());
        let core = Arc::new(Core {
            manager,
            name,
            clock: Clock::new(),
            runtime,
            fast: store.fast(),
            gate: CacheAligned(Arc::clone(&gate)),
            state: CacheAligned(Mutex::new(State {
                store,
                waiters: Waiters::new(gate),
                tally: Tally::default(),
                connecting: 0,
                closing: 0,
                phase: Phase::Open,
                connect: ConnectState {
                    backoff,
                    retry_at: None,
                    failures: 0,
                    last_error: None,
                    gave_up: false,
                },
            })),
            maintenance: OnceLock::new(),
            config,
        });
        if core.config.start == Start::Eager {
            core.open_eagerly().await?;
        }
        let maintenance = core
            .runtime
            .spawn(maintain(Arc::downgrade(&core), core.config.tick()));
        let _ = core.maintenance.set(maintenance.abort_handle());
        let start = core.lock().demand(&core.config);
        core.spawn_connects(start);
        tracing::debug!(pool = %core.name, max_size = core.config.max_size, "pool started");
        Ok(core)
    }

    async fn open_eagerly(self: &Arc<Self>) -> Result<(), StartError<M::Error>> {
        for _ in 0..self.config.min_idle.max(1) {
            match self.attempt().await {
                Ok(conn) => {
                    let now = self.clock.refresh();
                    let conn = self.new_conn(conn, now);
                    let mut st = self.lock();
                    st.tally.opened();
                    st.store.insert(conn);
                }
                Err(cause) => {
                    let error =
                        ConnectError::new(self.name.clone(), self.manager.target(), 1, cause);
                    self.close();
                    return Err(StartError::Connect(error));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State<M::Error, S>> {
        // Nothing panics while holding the lock (no user code runs under it); should that ever
        // change, the state is still consistent between statements, so keep going.
        self.state.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn closed_error(&self) -> CheckoutError<M::Error> {
        CheckoutError::Closed {
            pool: self.name.clone(),
        }
    }

    /// A connection for this checkout now, or its place in the queue. `front` puts it at the
    /// head of the queue (a checkout whose connection failed its check keeps its turn).
    pub(crate) fn checkout(self: &Arc<Self>, front: bool) -> Step<S::Lease, M::Error> {
        let now = self.clock.now();
        // Fast path: nobody queued, pool open: no pool lock.
        while !front && self.gate.0.is_clear() {
            match S::fast_acquire(&self.fast, now) {
                FastTake::Took { lease, drained } => {
                    if drained && self.config.min_idle > 0 {
                        self.top_up();
                    }
                    return Step::Ready(lease, FAST);
                }
                FastTake::Expired(conn) => self.close_expired(conn),
                FastTake::Empty => break,
            }
        }
        let mut guard = self.lock();
        let st = &mut *guard;
        if st.phase == Phase::Closed {
            drop(guard);
            return Step::Failed(self.closed_error());
        }
        let mut closed = Vec::new();
        if (front || st.waiters.waiting() == 0)
            && let Some(lease) = st.store.acquire(now, &mut st.tally, &mut closed)
        {
            let step = Step::Ready(lease, st.tally.checked_out(None));
            self.finish(guard, closed);
            return step;
        }
        if st.connect.gave_up {
            st.connect.gave_up = false; // a checkout starts a fresh run of attempts
        }
        // Queue first (the gate closes), then look again: what a fast return gave back before
        // the gate closed is found here, and a fast return after sees the gate and comes to
        // the pool lock.
        let id = if front {
            st.waiters.push_front()
        } else {
            st.waiters.push_back()
        };
        let mut wakers = WakeList::default();
        st.serve_waiters(now, &mut closed, &mut wakers);
        let step = match st.waiters.try_take(id) {
            Some(Ok(lease)) => Step::Ready(lease, st.tally.checked_out(None)),
            Some(Err(error)) => Step::Failed(error),
            // Not served at once: it stays in line (the gate stays closed), and waits.
            None => Step::Wait(id),
        };
        self.finish_with(guard, closed, wakers);
        step
    }

    /// Starts the connect attempts `min_idle` wants now (after the fast path took what may be
    /// the last idle connection).
    fn top_up(self: &Arc<Self>) {
        let start = self.lock().demand(&self.config);
        self.spawn_connects(start);
    }

    /// A connection the fast path found past its lifetime: close it under the pool lock.
    fn close_expired(self: &Arc<Self>, conn: S::Closed) {
        let mut st = self.lock();
        st.tally.closed(CloseReason::MaxLifetime);
        let closed = vec![conn];
        self.finish(st, closed);
    }

    /// A checkout: at once, or after queueing (until `deadline`).
    pub(crate) async fn lease(
        self: &Arc<Self>,
        front: bool,
        deadline: &mut Deadline,
    ) -> Result<Leased<S::Lease>, CheckoutError<M::Error>> {
        let (lease, bucket) = match self.checkout(front) {
            Step::Ready(lease, bucket) => (lease, bucket),
            Step::Failed(error) => return Err(error),
            Step::Wait(id) => wait::Wait::new(self, id, deadline).await?,
        };
        Ok(Leased { lease, bucket })
    }

    /// A user gives a lease back.
    pub(crate) fn release(self: &Arc<Self>, lease: S::Lease, verdict: Verdict) {
        self.give_back(lease, verdict, None);
    }

    /// A checkout closes the connection it was leased before handing it to its caller (it
    /// failed its recycle or check, or is broken): it is not counted as a checkout.
    pub(crate) fn reject(self: &Arc<Self>, leased: Leased<S::Lease>, reason: CloseReason) {
        self.give_back(leased.lease, Verdict::Close(reason), Some(leased.bucket));
    }

    fn give_back(self: &Arc<Self>, lease: S::Lease, verdict: Verdict, uncount: Option<usize>) {
        let now = self.clock.now();
        let lease = if verdict == Verdict::Keep && uncount.is_none() && self.gate.0.is_clear() {
            match S::fast_release(&self.fast, lease, now) {
                Ok(tidy) => {
                    // Returned. If a checkout queued (or the pool closed) meanwhile, it may not
                    // have seen it: settle under the pool lock.
                    if tidy || !self.gate.0.is_clear() {
                        self.settle();
                    }
                    return;
                }
                Err(lease) => lease,
            }
        } else {
            lease
        };
        let mut guard = self.lock();
        let st = &mut *guard;
        if let Some(bucket) = uncount {
            st.tally.unchecked(bucket);
        }
        let verdict = match (st.phase, verdict) {
            (Phase::Closed, Verdict::Keep | Verdict::Unused) => {
                Verdict::Close(CloseReason::PoolClosed)
            }
            (_, verdict) => verdict,
        };
        let mut closed = Vec::new();
        st.store
            .release(lease, verdict, now, &mut st.tally, &mut closed);
        self.finish(guard, closed);
    }

    /// Brings the store in line after lock-free returns: connections they left go to queued
    /// checkouts (or are closed if the pool is closed), and drained ones are closed.
    pub(crate) fn settle(self: &Arc<Self>) {
        let mut guard = self.lock();
        let st = &mut *guard;
        let mut closed = Vec::new();
        st.store.tidy(&mut st.tally, &mut closed);
        if st.phase == Phase::Closed {
            st.store.close_idle(&mut st.tally, &mut closed);
        }
        self.finish(guard, closed);
    }

    /// A user takes its connection out of the pool; a replacement is opened if one is wanted.
    pub(crate) fn detach(self: &Arc<Self>, lease: S::Lease) -> S::Detached {
        let mut guard = self.lock();
        let st = &mut *guard;
        let detached = st.store.detach(lease, &mut st.tally);
        self.finish(guard, Vec::new());
        detached
    }

    /// A guard drops its lease: the connection is closed if its user panicked or it is
    /// broken (marked, or by the manager's word), kept otherwise. A panic in
    /// [`Manager::is_broken`] closes it too, and goes on to the guard's owner once the pool's
    /// books are right.
    pub(crate) fn drop_lease(self: &Arc<Self>, lease: S::Lease, marked_broken: bool) {
        let verdict = if std::thread::panicking() {
            Verdict::Close(CloseReason::Panicked)
        } else if marked_broken {
            Verdict::Close(CloseReason::Broken)
        } else {
            match self.is_broken(&lease) {
                Ok(true) => Verdict::Close(CloseReason::Broken),
                Ok(false) => Verdict::Keep,
                Err(panic) => {
                    self.release(lease, Verdict::Close(CloseReason::Broken));
                    std::panic::resume_unwind(panic);
                }
            }
        };
        self.release(lease, verdict);
    }

    /// [`Manager::is_broken`] on a lease's connection, with a panic caught (the caller closes
    /// the connection, then resumes it).
    pub(crate) fn is_broken(&self, lease: &S::Lease) -> Result<bool, Box<dyn Any + Send>> {
        catch_unwind(AssertUnwindSafe(|| {
            self.manager.is_broken(S::connection(lease))
        }))
    }

    /// A checkout, start to end: leases until [`Prepare`] accepts one, keeping the checkout's
    /// place at the head of the queue after a rejected one.
    pub(crate) async fn get(self: &Arc<Self>) -> Result<S::Lease, CheckoutError<M::Error>>
    where
        S: Prepare<M>,
    {
        // Under tokio's cooperative budget, as a channel's `recv` is: a task whose checkouts
        // are always served at once still yields once its budget is spent. (`poll_proceed`
        // rather than `consume_budget`: half the instructions on this ready path.)
        std::future::poll_fn(|cx| tokio::task::coop::poll_proceed(cx).map(|r| r.made_progress()))
            .await;
        let mut deadline = Deadline::new(self.config.checkout_timeout);
        let mut front = false;
        loop {
            let leased = self.lease(front, &mut deadline).await?;
            match S::prepare(self, leased, &mut deadline).await {
                Prepared::Ready(lease) => return Ok(lease),
                Prepared::Discarded => front = true,
                Prepared::TimedOut => return Err(self.timed_out(&mut self.lock())),
            }
        }
    }

    /// A queued checkout left (dropped, or timed out): a connection it was served goes to the
    /// next one.
    pub(crate) fn cancel(self: &Arc<Self>, id: WaiterId) {
        let mut guard = self.lock();
        if let Removed::Served(Ok(lease)) = guard.waiters.remove(id) {
            drop(guard);
            self.release(lease, Verdict::Unused);
        }
    }

    /// Counts a checkout that timed out and builds its error.
    pub(crate) fn timed_out(&self, st: &mut State<M::Error, S>) -> CheckoutError<M::Error> {
        st.tally.timeouts += 1;
        CheckoutError::Timeout {
            pool: self.name.clone(),
            waited: self.config.checkout_timeout.unwrap_or_default(),
            last_connect_error: st.connect.last_error.clone(),
        }
    }

    /// The common tail after the store changed: serve the queue, start the connect attempts
    /// now wanted, then (unlocked) drop closed connections, wake the served, spawn.
    fn finish(self: &Arc<Self>, guard: MutexGuard<'_, State<M::Error, S>>, closed: Vec<S::Closed>) {
        self.finish_with(guard, closed, WakeList::default());
    }

    /// [`finish`](Self::finish), with waiters already served under this lock.
    fn finish_with(
        self: &Arc<Self>,
        mut guard: MutexGuard<'_, State<M::Error, S>>,
        mut closed: Vec<S::Closed>,
        mut wakers: WakeList,
    ) {
        guard.serve_waiters(self.clock.now(), &mut closed, &mut wakers);
        guard.count_closing(&closed);
        let start = guard.demand(&self.config);
        drop(guard);
        wakers.wake();
        self.spawn_connects(start);
        self.dispose(closed);
    }

    /// Drops connections closed under the lock (counted in `closing` until now), then starts
    /// the replacements their room allows.
    ///
    /// A connection's `Drop` is user code: each runs under `catch_unwind`, so one that panics
    /// neither stops the others from being dropped nor leaves them counted in `closing` (which
    /// would shrink the pool for good). The first panic is then resumed, in the task that
    /// closed the connection; the maintenance task catches it there and goes on.
    fn dispose(self: &Arc<Self>, closed: Vec<S::Closed>) {
        if closed.is_empty() {
            return;
        }
        let count = closed.len();
        let mut panic = None;
        for conn in closed {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| drop(conn))) {
                panic.get_or_insert(payload);
            }
        }
        let mut st = self.lock();
        st.closing -= count;
        let start = st.demand(&self.config);
        drop(st);
        self.spawn_connects(start);
        if let Some(payload) = panic {
            std::panic::resume_unwind(payload);
        }
    }

    /// A new connection's bookkeeping: its jittered expiry and idle clock start now.
    fn new_conn(&self, conn: M::Connection, now: Instant) -> Conn<M::Connection> {
        let now = to_millis(now.saturating_duration_since(self.clock.epoch()));
        let expires = self.config.max_lifetime.map_or(Millis::MAX, |lifetime| {
            let jitter = self.config.lifetime_jitter * random_unit();
            now.saturating_add(to_millis(lifetime.mul_f64(1.0 - jitter)))
        });
        Conn {
            conn,
            expires,
            idle_since: now,
            used: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_units_are_in_range_and_vary() {
        let draws: Vec<f64> = (0..1000).map(|_| random_unit()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        let mean = draws.iter().sum::<f64>() / 1000.0;
        assert!((0.4..0.6).contains(&mean), "{mean}");
    }

    #[test]
    fn default_names_differ() {
        assert_ne!(default_name(), default_name());
    }
}
