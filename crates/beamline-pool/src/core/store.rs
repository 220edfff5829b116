//! How a pool keeps its open connections: the seam between the shared machinery (queue,
//! connect attempts, maintenance) and the two checkout disciplines.
//!
//! A store is plain data under the pool's lock. It never reads a clock (`now` comes from the
//! coarse clock) and never drops a connection itself: connections it closes go to a `closed`
//! list that the caller drops after unlocking, so no user `Drop` runs under the lock.

use crate::clock::Millis;
use crate::metrics::{CloseReason, Tally};

/// An open connection and what the pool knows about it.
#[derive(Debug)]
pub(crate) struct Conn<C> {
    pub(crate) conn: C,
    /// When its max lifetime (jitter applied) is over; `Millis::MAX` without one.
    pub(crate) expires: Millis,
    /// When it last became idle (or was opened).
    pub(crate) idle_since: Millis,
    /// Whether it had a user before (then it is recycled before its next one).
    pub(crate) used: bool,
}

impl<C> Conn<C> {
    pub(crate) const fn expired(&self, now: Millis) -> bool {
        self.expires <= now
    }
}

/// What happens to a lease given back to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Its user is done with it: it may serve the next one (unless it expired).
    Keep,
    /// It was never handed to a user (its waiter left): it goes back as it was.
    Unused,
    /// It must not be used again.
    Close(CloseReason),
}

/// Idle connections to close during maintenance.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reap {
    pub(crate) now: Millis,
    /// Close connections idle since before this (beyond `min_idle`).
    pub(crate) idle_before: Option<Millis>,
    pub(crate) min_idle: usize,
}

/// What a fast-path checkout found.
#[derive(Debug)]
pub(crate) enum FastTake<L, C> {
    /// A connection for the caller (counted in the store); `drained` when it may have been the
    /// last idle one, so the pool should see whether `min_idle` wants another.
    Took { lease: L, drained: bool },
    /// A connection past its lifetime, taken out of the store: close it under the pool lock
    /// and look again.
    Expired(C),
    /// Nothing here: take the slow path.
    Empty,
}

pub(crate) trait Store: Send + 'static {
    /// The pooled connection type.
    type Conn: Send + 'static;
    /// What one user holds: the connection itself (exclusive), or a share of it (shared).
    type Lease: Send + 'static;
    /// A closed connection, to be dropped after the lock is released.
    type Closed: Send;
    /// What a user who detaches a lease takes away.
    type Detached;
    /// The part of the store the fast paths reach without the pool lock: the exclusive
    /// store's per-thread shards of idle connections, the shared store's slots.
    type Fast: Send + Sync + 'static;

    /// A handle to the fast part, taken once when the pool starts.
    fn fast(&self) -> Self::Fast;

    /// A checkout without the pool lock. Called only while no checkout is queued and the
    /// pool is open (see [`Gate`](crate::waiters::Gate)).
    fn fast_acquire(fast: &Self::Fast, now: Millis) -> FastTake<Self::Lease, Self::Closed>;

    /// Returns a connection its user is done with, without the pool lock; `Err` gives it back
    /// for the slow path (it expired, or the store has no fast path), `Ok(true)` asks for
    /// [`tidy`](Self::tidy) under the pool lock. Called only while the gate is clear; the
    /// caller checks the gate again afterwards.
    fn fast_release(
        fast: &Self::Fast,
        lease: Self::Lease,
        now: Millis,
    ) -> Result<bool, Self::Lease>;

    /// Checkouts the fast path served (counted where they happened, without the pool lock).
    fn fast_checkouts(fast: &Self::Fast) -> u64;

    /// The connection a lease gives access to.
    fn connection(lease: &Self::Lease) -> &Self::Conn;

    /// A lease for one more user, if an open connection can take one now. Connections found
    /// expired on the way are closed (counted in `tally`, pushed onto `closed`).
    fn acquire(
        &mut self,
        now: Millis,
        tally: &mut Tally,
        closed: &mut Vec<Self::Closed>,
    ) -> Option<Self::Lease>;

    /// A newly opened connection joins the pool, idle.
    fn insert(&mut self, conn: Conn<Self::Conn>);

    /// A lease comes back.
    fn release(
        &mut self,
        lease: Self::Lease,
        verdict: Verdict,
        now: Millis,
        tally: &mut Tally,
        closed: &mut Vec<Self::Closed>,
    );

    /// A user takes its lease's connection out of the pool for good.
    fn detach(&mut self, lease: Self::Lease, tally: &mut Tally) -> Self::Detached;

    /// Closes idle connections past their idle timeout (keeping `min_idle`) or lifetime.
    fn reap(&mut self, reap: Reap, tally: &mut Tally, closed: &mut Vec<Self::Closed>);

    /// Closes what lock-free returns left to close (a draining connection whose last user
    /// left).
    fn tidy(&mut self, tally: &mut Tally, closed: &mut Vec<Self::Closed>);

    /// The pool is closing: closes every idle connection now; the others close when their
    /// last user gives them back.
    fn close_idle(&mut self, tally: &mut Tally, closed: &mut Vec<Self::Closed>);

    /// Open connections with no user.
    fn idle(&self) -> usize;
    /// Open connections with at least one user, of `open`.
    fn in_use(&self, open: usize) -> usize;
    /// Leases held, with `open` connections open.
    fn users(&self, open: usize) -> usize;
    /// New connections it takes to serve `waiting` queued checkouts (every open connection
    /// being full when anyone queues).
    fn connections_for(&self, waiting: usize) -> usize;
}
