//! The shared pool's store: every connection takes up to `max_users` users at once, and a new
//! user goes to the least-loaded connection.
//!
//! Each connection's user count lives in one compact array (`loads`), apart from the rest of
//! its bookkeeping, so the least-loaded scan reads a single cache line and a checkout writes
//! one count; the entries themselves are written only when a connection goes idle or drains.

use std::sync::Arc;

use slab::Slab;

use crate::clock::Millis;
use crate::core::{Conn, FastTake, Reap, Store, Verdict};
use crate::metrics::{CloseReason, Tally};

/// Where a shared connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryState {
    /// Takes new users.
    Open,
    /// Takes no new users; closed (for this reason) when its last user leaves.
    Draining(CloseReason),
}

#[derive(Debug)]
struct Entry<C> {
    /// Tells this connection apart from a later one in the same slab slot.
    id: u64,
    conn: Arc<C>,
    expires: Millis,
    idle_since: Millis,
    state: EntryState,
}

/// One user's share of a connection.
#[derive(Debug)]
pub(crate) struct SharedLease<C> {
    key: usize,
    id: u64,
    pub(crate) conn: Arc<C>,
}

/// In `loads`: set on a draining connection's count, so no scan picks it.
const DRAINING: usize = 1 << (usize::BITS - 1);
/// In `loads`: a slab key with no connection.
const VACANT: usize = usize::MAX;

#[derive(Debug)]
#[repr(C)]
pub(crate) struct Shared<C> {
    /// Per slab key: the connection's users, with [`DRAINING`] set once it drains;
    /// [`VACANT`] for a free key. Only an open connection's load can be below `max_users`.
    loads: Vec<usize>,
    /// Leases held, over all connections.
    users: usize,
    /// Open connections with no user.
    idle: usize,
    /// Connections with at least one user (open or draining).
    in_use: usize,
    max_users: usize,
    entries: Slab<Entry<C>>,
    next_id: u64,
}

impl<C> Shared<C> {
    pub(crate) fn new(max_size: usize, max_users: usize) -> Self {
        Self {
            loads: Vec::with_capacity(max_size),
            users: 0,
            idle: 0,
            in_use: 0,
            max_users,
            entries: Slab::with_capacity(max_size),
            next_id: 0,
        }
    }

    /// The users of the connection at `key`.
    fn users_of(&self, key: usize) -> usize {
        self.loads.get(key).map_or(0, |&load| match load {
            VACANT => 0,
            load => load & !DRAINING,
        })
    }

    /// Stops an open connection from taking users (it closes for `reason` when its last user
    /// leaves).
    fn drain(&mut self, key: usize, reason: CloseReason) {
        if let Some(entry) = self.entries.get_mut(key)
            && entry.state == EntryState::Open
        {
            entry.state = EntryState::Draining(reason);
            self.loads[key] |= DRAINING;
            if self.loads[key] == DRAINING {
                self.idle -= 1;
            }
        }
    }

    /// Closes every draining connection that has no user left.
    fn remove_drained(&mut self, tally: &mut Tally, closed: &mut Vec<C>) {
        let done: Vec<(usize, CloseReason)> = self
            .entries
            .iter()
            .filter_map(|(key, e)| match e.state {
                EntryState::Draining(reason) if self.loads[key] == DRAINING => Some((key, reason)),
                _ => None,
            })
            .collect();
        for (key, reason) in done {
            self.close(key, reason, tally, closed);
        }
    }

    /// Takes a connection out of the slab (it has no user, or is detached).
    fn remove(&mut self, key: usize) -> Entry<C> {
        self.loads[key] = VACANT;
        self.entries.remove(key)
    }

    /// Takes a drained connection out of the slab and closes it.
    fn close(&mut self, key: usize, reason: CloseReason, tally: &mut Tally, closed: &mut Vec<C>) {
        let entry = self.remove(key);
        tally.closed(reason);
        closed.extend(Arc::into_inner(entry.conn));
    }

    /// The open connection with the fewest users, if one has room.
    fn least_loaded(&self) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None;
        for (key, &load) in self.loads.iter().enumerate() {
            if load < self.max_users && best.is_none_or(|(_, fewest)| load < fewest) {
                best = Some((key, load));
            }
        }
        best.map(|(key, _)| key)
    }
}

impl<C: Send + Sync + 'static> Store for Shared<C> {
    type Conn = C;
    type Lease = SharedLease<C>;
    type Closed = C;
    type Detached = Arc<C>;
    /// No fast path: choosing the least-loaded connection needs to see them all.
    type Fast = ();

    fn fast(&self) {}

    fn fast_acquire((): &(), _: Millis) -> FastTake<SharedLease<C>, C> {
        FastTake::Empty
    }

    fn fast_release((): &(), lease: SharedLease<C>, _: Millis) -> Result<(), SharedLease<C>> {
        Err(lease)
    }

    fn fast_checkouts((): &()) -> u64 {
        0
    }

    fn connection(lease: &SharedLease<C>) -> &C {
        &lease.conn
    }

    fn acquire(
        &mut self,
        now: Millis,
        tally: &mut Tally,
        closed: &mut Vec<C>,
    ) -> Option<SharedLease<C>> {
        loop {
            let key = self.least_loaded()?;
            let entry = self.entries.get(key)?;
            if entry.expires <= now {
                // Past its lifetime: no new users; closed now if it has none.
                self.drain(key, CloseReason::MaxLifetime);
                if self.loads[key] == DRAINING {
                    self.close(key, CloseReason::MaxLifetime, tally, closed);
                }
                continue;
            }
            let lease = SharedLease {
                key,
                id: entry.id,
                conn: Arc::clone(&entry.conn),
            };
            if self.loads[key] == 0 {
                self.idle -= 1;
                self.in_use += 1;
            }
            self.loads[key] += 1;
            self.users += 1;
            return Some(lease);
        }
    }

    fn insert(&mut self, conn: Conn<C>) {
        let id = self.next_id;
        self.next_id += 1;
        let key = self.entries.insert(Entry {
            id,
            conn: Arc::new(conn.conn),
            expires: conn.expires,
            idle_since: conn.idle_since,
            state: EntryState::Open,
        });
        if key >= self.loads.len() {
            self.loads.resize(key + 1, VACANT);
        }
        self.loads[key] = 0;
        self.idle += 1;
    }

    fn release(
        &mut self,
        lease: SharedLease<C>,
        verdict: Verdict,
        now: Millis,
        tally: &mut Tally,
        closed: &mut Vec<C>,
    ) {
        let SharedLease { key, id, conn } = lease;
        // Never the last handle while the entry holds one; after a detach it may be.
        closed.extend(Arc::into_inner(conn));
        let Some(entry) = self.entries.get(key).filter(|e| e.id == id) else {
            return; // detached by another user: no longer the pool's
        };
        let close = match verdict {
            Verdict::Close(reason) => Some(reason),
            Verdict::Keep | Verdict::Unused if entry.expires <= now => {
                Some(CloseReason::MaxLifetime)
            }
            Verdict::Keep | Verdict::Unused => None,
        };
        // Drain while this user still counts, so the connection is never seen idle.
        if let Some(reason) = close {
            self.drain(key, reason);
        }
        self.loads[key] -= 1;
        self.users -= 1;
        match self.loads[key] {
            0 => {
                self.in_use -= 1;
                self.idle += 1;
                if let (Verdict::Keep, Some(entry)) = (verdict, self.entries.get_mut(key)) {
                    entry.idle_since = now;
                }
            }
            DRAINING => {
                self.in_use -= 1;
                if let Some(EntryState::Draining(reason)) = self.entries.get(key).map(|e| e.state) {
                    self.close(key, reason, tally, closed);
                }
            }
            _ => {}
        }
    }

    fn detach(&mut self, lease: SharedLease<C>, tally: &mut Tally) -> Arc<C> {
        if self
            .entries
            .get(lease.key)
            .is_some_and(|e| e.id == lease.id)
        {
            // Its other users keep their shares; they are no longer the pool's.
            self.users -= self.users_of(lease.key);
            self.in_use -= 1;
            self.remove(lease.key);
            tally.detached();
        }
        lease.conn
    }

    fn reap(&mut self, reap: Reap, tally: &mut Tally, closed: &mut Vec<C>) {
        let expired: Vec<usize> = self
            .entries
            .iter()
            .filter(|(_, e)| e.state == EntryState::Open && e.expires <= reap.now)
            .map(|(key, _)| key)
            .collect();
        for key in expired {
            self.drain(key, CloseReason::MaxLifetime);
        }
        if let Some(idle_before) = reap.idle_before {
            let mut stale: Vec<(Millis, usize)> = self
                .entries
                .iter()
                .filter(|&(key, e)| {
                    e.state == EntryState::Open
                        && self.loads[key] == 0
                        && e.idle_since <= idle_before
                })
                .map(|(key, e)| (e.idle_since, key))
                .collect();
            stale.sort_unstable();
            let excess = self.idle.saturating_sub(reap.min_idle);
            for &(_, key) in stale.iter().take(excess) {
                self.drain(key, CloseReason::IdleTimeout);
            }
        }
        self.remove_drained(tally, closed);
    }

    fn close_idle(&mut self, tally: &mut Tally, closed: &mut Vec<C>) {
        let keys: Vec<usize> = self.entries.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.drain(key, CloseReason::PoolClosed);
        }
        self.remove_drained(tally, closed);
    }

    fn idle(&self) -> usize {
        self.idle
    }

    fn in_use(&self, _open: usize) -> usize {
        self.in_use
    }

    fn users(&self, _open: usize) -> usize {
        self.users
    }

    fn connections_for(&self, waiting: usize) -> usize {
        waiting.div_ceil(self.max_users)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn conn(id: u32, expires: Millis) -> Conn<u32> {
        Conn {
            conn: id,
            expires,
            idle_since: 0,
            used: false,
        }
    }

    fn store(max_users: usize, conns: Vec<Conn<u32>>) -> (Shared<u32>, Tally) {
        let mut s = Shared::new(4, max_users);
        let mut t = Tally::default();
        for c in conns {
            t.opened();
            s.insert(c);
        }
        (s, t)
    }

    fn take(s: &mut Shared<u32>, t: &mut Tally, now: Millis) -> Option<SharedLease<u32>> {
        s.acquire(now, t, &mut Vec::new())
    }

    #[test]
    fn users_go_to_the_least_loaded_connection_up_to_the_limit() {
        let (mut s, mut t) = store(2, vec![conn(1, 100), conn(2, 100)]);
        let a = take(&mut s, &mut t, 0).unwrap();
        let b = take(&mut s, &mut t, 0).unwrap();
        assert_ne!(
            *a.conn, *b.conn,
            "the second user goes to the idle connection"
        );
        let c = take(&mut s, &mut t, 0).unwrap();
        let d = take(&mut s, &mut t, 0).unwrap();
        assert!(take(&mut s, &mut t, 0).is_none(), "both at their limit");
        assert_eq!((s.users(0), s.in_use(0), s.idle()), (4, 2, 0));
        assert_eq!(s.connections_for(3), 2);
        let mut closed = Vec::new();
        for lease in [a, b, c, d] {
            s.release(lease, Verdict::Keep, 1, &mut t, &mut closed);
        }
        assert_eq!((s.users(0), s.in_use(0), s.idle()), (0, 0, 2));
        assert!(closed.is_empty());
    }

    #[test]
    fn a_broken_connection_takes_no_new_user_and_closes_when_its_last_leaves() {
        let (mut s, mut t) = store(3, vec![conn(7, 100)]);
        let a = take(&mut s, &mut t, 0).unwrap();
        let b = take(&mut s, &mut t, 0).unwrap();
        let mut closed = Vec::new();
        s.release(
            a,
            Verdict::Close(CloseReason::Broken),
            1,
            &mut t,
            &mut closed,
        );
        assert!(take(&mut s, &mut t, 0).is_none());
        assert!(closed.is_empty(), "b still uses it");
        s.release(b, Verdict::Keep, 1, &mut t, &mut closed);
        assert_eq!(closed, vec![7]);
        assert_eq!(t.closed.get(CloseReason::Broken), 1);
        assert_eq!((t.open, s.users(0), s.in_use(0), s.idle()), (0, 0, 0, 0));
    }

    #[test]
    fn an_expired_connection_drains() {
        let (mut s, mut t) = store(2, vec![conn(1, 10), conn(2, 100)]);
        let a = take(&mut s, &mut t, 5).unwrap();
        assert_eq!(*a.conn, 1);
        let b = take(&mut s, &mut t, 20).unwrap();
        assert_eq!(*b.conn, 2, "1 expired at 10: no new users");
        let mut closed = Vec::new();
        s.release(a, Verdict::Keep, 21, &mut t, &mut closed);
        assert_eq!(closed, vec![1]);
        assert_eq!(t.closed.get(CloseReason::MaxLifetime), 1);
        s.release(b, Verdict::Keep, 21, &mut t, &mut closed);
        assert_eq!(s.idle(), 1);
    }

    #[test]
    fn detaching_leaves_other_users_their_share() {
        let (mut s, mut t) = store(2, vec![conn(1, 100)]);
        let a = take(&mut s, &mut t, 0).unwrap();
        let b = take(&mut s, &mut t, 0).unwrap();
        let mine = s.detach(a, &mut t);
        assert_eq!((t.open, t.detached, s.users(0), s.in_use(0)), (0, 1, 0, 0));
        let mut closed = Vec::new();
        s.release(b, Verdict::Keep, 1, &mut t, &mut closed);
        assert!(closed.is_empty(), "the detached owner still holds it");
        assert_eq!(Arc::into_inner(mine), Some(1));
    }

    #[test]
    fn reaping_and_closing() {
        let (mut s, mut t) = store(2, vec![conn(1, 1000), conn(2, 1000), conn(3, 50)]);
        let busy = take(&mut s, &mut t, 0).unwrap();
        let mut closed = Vec::new();
        let reap = Reap {
            now: 60,
            idle_before: Some(30),
            min_idle: 0,
        };
        s.reap(reap, &mut t, &mut closed);
        closed.sort_unstable();
        assert_eq!(
            closed.len(),
            2,
            "3 expired, and the idle one of 1/2 timed out"
        );
        assert_eq!(t.closed.get(CloseReason::MaxLifetime), 1);
        assert_eq!(t.closed.get(CloseReason::IdleTimeout), 1);
        s.close_idle(&mut t, &mut closed);
        assert_eq!(t.open, 1, "the one in use closes when its user leaves");
        s.release(busy, Verdict::Keep, 61, &mut t, &mut closed);
        assert_eq!(t.open, 0);
        assert_eq!(t.closed.get(CloseReason::PoolClosed), 1);
    }

    /// The counters agree with the entries they summarise.
    fn assert_consistent(s: &Shared<u32>, t: &Tally) {
        let keys: Vec<usize> = s.entries.iter().map(|(k, _)| k).collect();
        let users: usize = keys.iter().map(|&k| s.users_of(k)).sum();
        let idle = s
            .entries
            .iter()
            .filter(|&(k, e)| e.state == EntryState::Open && s.loads[k] == 0)
            .count();
        let in_use = keys.iter().filter(|&&k| s.users_of(k) > 0).count();
        assert_eq!(s.users, users);
        assert_eq!(s.idle, idle);
        assert_eq!(s.in_use, in_use);
        assert_eq!(t.open, s.entries.len());
        assert!(keys.iter().all(|&k| s.users_of(k) <= s.max_users));
        for (k, e) in &s.entries {
            assert_eq!(s.loads[k] & DRAINING != 0, e.state != EntryState::Open);
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(Millis),
        Acquire,
        Release(usize, Option<CloseReason>),
        Detach(usize),
        Reap(Millis),
        Tick,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => (50u64..500).prop_map(Op::Insert),
            5 => Just(Op::Acquire),
            4 => (0usize..32, prop_oneof![Just(None), Just(Some(CloseReason::Broken))])
                .prop_map(|(i, r)| Op::Release(i, r)),
            1 => (0usize..32).prop_map(Op::Detach),
            1 => (0u64..200).prop_map(Op::Reap),
            2 => Just(Op::Tick),
        ]
    }

    proptest! {
        /// Any sequence of checkouts, returns (kept or broken), detaches, expiries and reaps
        /// keeps the counts consistent, never puts more than max_users on a connection, and
        /// always gives a new user the least-loaded open connection.
        #[test]
        fn bookkeeping_holds_under_any_sequence(ops in proptest::collection::vec(op(), 1..120)) {
            let mut s = Shared::new(8, 3);
            let mut t = Tally::default();
            let mut leases = Vec::new();
            let mut now = 0;
            let mut closed = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(life) => {
                        if t.open < 8 {
                            t.opened();
                            s.insert(conn(u32::try_from(s.next_id).unwrap(), now + life));
                        }
                    }
                    Op::Acquire => {
                        // Loads of the connections that can take a user now.
                        let open_loads: Vec<usize> = s.entries.iter()
                            .filter(|&(k, e)| s.loads[k] < s.max_users && e.expires > now)
                            .map(|(k, _)| s.loads[k])
                            .collect();
                        match s.acquire(now, &mut t, &mut closed) {
                            Some(lease) => {
                                let load = s.users_of(lease.key) - 1;
                                prop_assert!(open_loads.iter().all(|&l| load <= l),
                                    "took a connection with {load} users over {open_loads:?}");
                                leases.push(lease);
                            }
                            None => prop_assert!(open_loads.is_empty(), "{open_loads:?} had room"),
                        }
                    }
                    Op::Release(i, reason) if !leases.is_empty() => {
                        let lease = leases.swap_remove(i % leases.len());
                        let verdict = reason.map_or(Verdict::Keep, Verdict::Close);
                        s.release(lease, verdict, now, &mut t, &mut closed);
                    }
                    Op::Detach(i) if !leases.is_empty() => {
                        let lease = leases.swap_remove(i % leases.len());
                        drop(s.detach(lease, &mut t));
                    }
                    Op::Reap(idle) => {
                        let reap = Reap { now, idle_before: now.checked_sub(idle), min_idle: 1 };
                        s.reap(reap, &mut t, &mut closed);
                    }
                    Op::Tick => now += 25,
                    Op::Release(..) | Op::Detach(_) => {}
                }
                assert_consistent(&s, &t);
            }
            for lease in leases {
                s.release(lease, Verdict::Keep, now, &mut t, &mut closed);
            }
            assert_consistent(&s, &t);
            prop_assert_eq!(s.users, 0);
        }
    }
}
