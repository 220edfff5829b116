//! The shared pool's store: every connection takes up to `max_users` users at once, and a new
//! user goes to the least-loaded connection.

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
    users: usize,
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

#[derive(Debug)]
pub(crate) struct Shared<C> {
    entries: Slab<Entry<C>>,
    max_users: usize,
    next_id: u64,
    /// Leases held, over all connections.
    users: usize,
    /// Open connections with no user.
    idle: usize,
    /// Connections with at least one user (open or draining).
    in_use: usize,
}

impl<C> Shared<C> {
    pub(crate) fn new(max_size: usize, max_users: usize) -> Self {
        Self {
            entries: Slab::with_capacity(max_size),
            max_users,
            next_id: 0,
            users: 0,
            idle: 0,
            in_use: 0,
        }
    }

    /// Stops an open connection from taking users (it closes for `reason` when its last user
    /// leaves).
    fn drain(&mut self, key: usize, reason: CloseReason) {
        if let Some(entry) = self.entries.get_mut(key)
            && entry.state == EntryState::Open
        {
            entry.state = EntryState::Draining(reason);
            if entry.users == 0 {
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
                EntryState::Draining(reason) if e.users == 0 => Some((key, reason)),
                _ => None,
            })
            .collect();
        for (key, reason) in done {
            self.close(key, reason, tally, closed);
        }
    }

    /// Takes a drained connection out of the slab and closes it.
    fn close(&mut self, key: usize, reason: CloseReason, tally: &mut Tally, closed: &mut Vec<C>) {
        let entry = self.entries.remove(key);
        tally.closed(reason);
        closed.extend(Arc::into_inner(entry.conn));
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
        let mut best: Option<(usize, usize)> = None;
        let mut expired = false;
        for (key, entry) in &mut self.entries {
            if entry.state != EntryState::Open {
                continue;
            }
            if entry.expires <= now {
                entry.state = EntryState::Draining(CloseReason::MaxLifetime);
                if entry.users == 0 {
                    self.idle -= 1;
                    expired = true;
                }
                continue;
            }
            if entry.users < self.max_users && best.is_none_or(|(_, users)| entry.users < users) {
                best = Some((key, entry.users));
            }
        }
        if expired {
            self.remove_drained(tally, closed);
        }
        let (key, _) = best?;
        let entry = self.entries.get_mut(key)?;
        if entry.users == 0 {
            self.idle -= 1;
            self.in_use += 1;
        }
        entry.users += 1;
        self.users += 1;
        Some(SharedLease {
            key,
            id: entry.id,
            conn: Arc::clone(&entry.conn),
        })
    }

    fn insert(&mut self, conn: Conn<C>) {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.insert(Entry {
            id,
            conn: Arc::new(conn.conn),
            users: 0,
            expires: conn.expires,
            idle_since: conn.idle_since,
            state: EntryState::Open,
        });
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
        let Some(entry) = self.entries.get_mut(key).filter(|e| e.id == id) else {
            return; // detached by another user: no longer the pool's
        };
        entry.users -= 1;
        self.users -= 1;
        let close = match verdict {
            Verdict::Close(reason) => Some(reason),
            Verdict::Keep | Verdict::Unused if entry.expires <= now => {
                Some(CloseReason::MaxLifetime)
            }
            Verdict::Keep | Verdict::Unused => None,
        };
        if let (Some(reason), EntryState::Open) = (close, entry.state) {
            entry.state = EntryState::Draining(reason);
        }
        if entry.users > 0 {
            return;
        }
        self.in_use -= 1;
        match entry.state {
            EntryState::Open => {
                if verdict == Verdict::Keep {
                    entry.idle_since = now;
                }
                self.idle += 1;
            }
            EntryState::Draining(reason) => self.close(key, reason, tally, closed),
        }
    }

    fn detach(&mut self, lease: SharedLease<C>, tally: &mut Tally) -> Arc<C> {
        if self
            .entries
            .get(lease.key)
            .is_some_and(|e| e.id == lease.id)
        {
            let entry = self.entries.remove(lease.key);
            // Its other users keep their shares; they are no longer the pool's.
            self.users -= entry.users;
            self.in_use -= 1;
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
                .filter(|(_, e)| {
                    e.state == EntryState::Open && e.users == 0 && e.idle_since <= idle_before
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
}
