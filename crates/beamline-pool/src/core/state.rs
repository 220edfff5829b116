//! The books under the pool lock: [`State`] (phase, queue, store, counters), the steps a
//! checkout goes through, and the wakers gathered to wake after the lock.

use std::future::Future;
use std::sync::Arc;
use std::task::Waker;

use beamline_backoff::Backoff;
use tokio::time::Instant;

use super::{Core, Deadline, Store, Verdict};
use crate::clock::Millis;
use crate::metrics::Tally;
use crate::waiters::{WaiterId, Waiters};
use crate::{CheckoutError, ConnectError, Manager, PoolConfig};

/// Starts its content on a cache line of its own, so that what one core writes there does
/// not evict what others read next to it (see [`State`]).
#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct CacheAligned<T>(pub(crate) T);

/// Whether the pool takes checkouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Open,
    /// `close()` was called: checkouts fail, connections close as they come back.
    Closed,
}

/// Everything the lock guards.
///
/// The field order is fixed (`repr(C)`) for the cache: the mutex's lock word comes first,
/// then the fields a checkout and a return *write* (the store's counters and idle stack, the
/// checkout counter and the no-wait bucket at the head of [`Tally`]), so the fast path moves
/// one cache line between cores, plus the connection's own slot. Fields after them are read on
/// the fast path but written only on slow paths (queueing, connecting, closing).
#[repr(C)]
pub(crate) struct State<E, S: Store> {
    pub(crate) store: S,
    pub(crate) tally: Tally,
    pub(crate) waiters: Waiters<S::Lease, CheckoutError<E>>,
    /// Connect attempts under way or waiting out their backoff; each will add one
    /// connection.
    pub(crate) connecting: usize,
    /// Connections closed but not yet dropped (that happens after the lock is released).
    /// They still count, so `tally.open + connecting + closing <= max_size` always holds
    /// for connections that really exist, not just for the books.
    pub(crate) closing: usize,
    pub(crate) phase: Phase,
    pub(crate) connect: ConnectState<E>,
}

/// The run of connect failures the pool is in, if any.
pub(crate) struct ConnectState<E> {
    pub(super) backoff: Backoff,
    /// No attempt starts before this (the backoff delay after the last failure).
    pub(super) retry_at: Option<Instant>,
    /// Failures in a row.
    pub(super) failures: u32,
    /// The latest failure, for checkouts that time out while attempts fail.
    pub(super) last_error: Option<ConnectError<E>>,
    /// The backoff gave up: `min_idle` stops asking for connections until a checkout does.
    pub(super) gave_up: bool,
}

/// What a checkout found under the lock.
pub(crate) enum Step<L, E> {
    /// A lease, and the wait-time bucket it was counted in.
    Ready(L, usize),
    Wait(WaiterId),
    Failed(CheckoutError<E>),
}

/// How a pool makes a fresh lease ready for its caller: the exclusive pool recycles and
/// checks the connection, the shared pool asks whether it is broken. A rejected lease is
/// closed with [`Core::reject`] before `prepare` returns.
pub(crate) trait Prepare<M: Manager>: Store<Conn = M::Connection> + Sized {
    fn prepare<'a>(
        core: &'a Arc<Core<M, Self>>,
        leased: Leased<Self::Lease>,
        deadline: &'a mut Deadline,
    ) -> impl Future<Output = Prepared<Self::Lease>> + Send + 'a;
}

/// What became of a lease being prepared.
pub(crate) enum Prepared<L> {
    Ready(L),
    /// It failed (and was closed): try another.
    Discarded,
    /// The checkout's deadline passed while preparing it (it was closed).
    TimedOut,
}

/// A lease fresh from the queue, not yet handed to its caller.
pub(crate) struct Leased<L> {
    pub(crate) lease: L,
    /// The wait-time bucket it was counted in (taken back if it is rejected).
    pub(super) bucket: usize,
}

/// Wakers collected under the lock, woken after it. One inline: the common case (a release
/// serving one waiter) allocates nothing.
#[derive(Default)]
pub(crate) struct WakeList {
    pub(super) one: Option<Waker>,
    pub(super) more: Vec<Waker>,
}

impl WakeList {
    pub(super) fn push(&mut self, waker: Option<Waker>) {
        match (&self.one, waker) {
            (_, None) => {}
            (None, waker) => self.one = waker,
            (Some(_), Some(waker)) => self.more.push(waker),
        }
    }

    pub(super) fn wake(self) {
        if let Some(one) = self.one {
            one.wake();
            self.more.into_iter().for_each(Waker::wake);
        }
    }
}

impl<E, S: Store> State<E, S> {
    /// Hands connections to queued checkouts, longest waiting first, while a connection can
    /// take a user.
    pub(super) fn serve_waiters(
        &mut self,
        now: Millis,
        closed: &mut Vec<S::Closed>,
        wakers: &mut WakeList,
    ) {
        while self.waiters.waiting() > 0 {
            let Some(lease) = self.store.acquire(now, &mut self.tally, closed) else {
                return;
            };
            match self.waiters.serve(Ok(lease)) {
                Ok(waker) => wakers.push(waker),
                Err(Ok(lease)) => {
                    self.store
                        .release(lease, Verdict::Unused, now, &mut self.tally, closed);
                    return;
                }
                Err(Err(_)) => return,
            }
        }
    }

    /// Counts connections about to be dropped outside the lock (see `closing`). Written only
    /// when there are some: the field shares a cache line every checkout reads.
    pub(super) fn count_closing(&mut self, closed: &[S::Closed]) {
        if !closed.is_empty() {
            self.closing += closed.len();
        }
    }

    /// Connections wanted now: for the queued checkouts, and to keep `min_idle` idle.
    pub(super) fn wanted(&self, config: &PoolConfig) -> usize {
        if self.phase == Phase::Closed {
            return 0;
        }
        let for_waiters = match self.waiters.waiting() {
            0 => 0,
            waiting => self.store.connections_for(waiting),
        };
        // Counting idle connections visits every shard or slot: only when min_idle asks.
        let for_idle = if self.connect.gave_up || config.min_idle == 0 {
            0
        } else {
            config.min_idle.saturating_sub(self.store.idle())
        };
        for_waiters.max(for_idle)
    }

    /// How many connect attempts to start now (already counted in `connecting`).
    pub(super) fn demand(&mut self, config: &PoolConfig) -> usize {
        let counted = self.tally.open + self.connecting + self.closing;
        debug_assert!(counted <= config.max_size, "{counted} connections counted");
        let room = config.max_size.saturating_sub(counted);
        let start = self
            .wanted(config)
            .saturating_sub(self.connecting)
            .min(room);
        // Written only when it changes: this line is read by every checkout on every core.
        if start > 0 {
            self.connecting += start;
        }
        start
    }
}
