//! The shared pool's store: every connection takes up to `max_users` users at once, and a new
//! user goes to the least-loaded connection.
//!
//! Each connection's user count lives in an atomic *word* per slot, all in one compact array
//! beside (not inside) the pool lock. A checkout picks the least-loaded connection under the
//! pool lock (it has to see them all) and increments its word; a return, while nobody is
//! queued, drops its handle and decrements the word — no pool lock. Only changes to a
//! connection's life take the lock: opening, draining, closing (a return that leaves a
//! draining connection empty asks for it), detaching.
//!
//! A word is `generation << 32 | DRAINING | VACANT | users`. The generation changes whenever a
//! slot loses its connection, so a lease on a connection that was detached (or replaced) can
//! never touch its successor's count. A user always drops its handle on the connection before
//! it decrements, so a count of zero means nobody holds the connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

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
    /// The slot's generation while this connection holds it.
    generation: u32,
    conn: Arc<C>,
    expires: Millis,
    state: EntryState,
}

/// One user's share of a connection.
#[derive(Debug)]
pub(crate) struct SharedLease<C> {
    key: usize,
    generation: u32,
    pub(crate) conn: Arc<C>,
}

const USERS: u64 = (1 << 30) - 1;
/// The slot has no connection.
const VACANT: u64 = 1 << 30;
/// The slot's connection takes no new users.
const DRAINING: u64 = 1 << 31;

const fn generation(word: u64) -> u32 {
    (word >> 32) as u32
}

const fn users(word: u64) -> usize {
    (word & USERS) as usize
}

/// The slots' words and idle stamps, shared by the store (under the pool lock) and the
/// lock-free return. All `SeqCst`: a return decrements a word and then reads the gate, a
/// queueing checkout closes the gate and then reads the words, and one of them must see the
/// other.
#[derive(Debug)]
pub(crate) struct Words {
    words: Box<[AtomicU64]>,
    /// When each slot's connection last lost its last user (written before the decrement
    /// that empties it, so a reaper that sees zero users sees the stamp).
    idle_since: Box<[AtomicU64]>,
}

impl Words {
    fn get(&self, key: usize) -> u64 {
        self.words.get(key).map_or(VACANT, |w| w.load(SeqCst))
    }

    fn idle_since(&self, key: usize) -> Millis {
        self.idle_since.get(key).map_or(0, |t| t.load(SeqCst))
    }

    fn stamp_idle(&self, key: usize, now: Millis) {
        if let Some(t) = self.idle_since.get(key) {
            t.store(now, SeqCst);
        }
    }
}

#[derive(Debug)]
pub(crate) struct Shared<C> {
    words: Arc<Words>,
    entries: Slab<Entry<C>>,
    max_users: usize,
}

impl<C> Shared<C> {
    pub(crate) fn new(max_size: usize, max_users: usize) -> Self {
        Self {
            words: Arc::new(Words {
                words: (0..max_size).map(|_| AtomicU64::new(VACANT)).collect(),
                idle_since: (0..max_size).map(|_| AtomicU64::new(0)).collect(),
            }),
            entries: Slab::with_capacity(max_size),
            max_users,
        }
    }

    fn word(&self, key: usize) -> Option<&AtomicU64> {
        self.words.words.get(key)
    }

    /// Open connections with no user.
    fn count_idle(&self) -> usize {
        self.entries
            .iter()
            .filter(|&(key, _)| {
                let word = self.words.get(key);
                word & DRAINING == 0 && users(word) == 0
            })
            .count()
    }

    /// The users of the connection at `key`.
    fn users_of(&self, key: usize) -> usize {
        users(self.words.get(key))
    }

    /// Stops an open connection from taking users (it closes for `reason` when its last user
    /// leaves).
    fn drain(&mut self, key: usize, reason: CloseReason) {
        if let Some(entry) = self.entries.get_mut(key)
            && entry.state == EntryState::Open
        {
            entry.state = EntryState::Draining(reason);
            if let Some(word) = self.words.words.get(key) {
                word.fetch_or(DRAINING, SeqCst);
            }
        }
    }

    /// Closes every draining connection that has no user left.
    fn remove_drained(&mut self, tally: &mut Tally, closed: &mut Vec<C>) {
        let done: Vec<(usize, CloseReason)> = self
            .entries
            .iter()
            .filter_map(|(key, e)| match e.state {
                EntryState::Draining(reason) if self.users_of(key) == 0 => Some((key, reason)),
                _ => None,
            })
            .collect();
        for (key, reason) in done {
            self.close(key, reason, tally, closed);
        }
    }

    /// Takes a connection out of its slot (it has no user, or is detached): the slot's
    /// generation moves on, so leases still out on it no longer count.
    fn remove(&mut self, key: usize) -> Entry<C> {
        let entry = self.entries.remove(key);
        if let Some(word) = self.word(key) {
            let next = u64::from(entry.generation.wrapping_add(1));
            word.store(next << 32 | VACANT, SeqCst);
        }
        entry
    }

    /// Takes a drained connection out of the slab and closes it.
    fn close(&mut self, key: usize, reason: CloseReason, tally: &mut Tally, closed: &mut Vec<C>) {
        let entry = self.remove(key);
        tally.closed(reason);
        closed.extend(Arc::into_inner(entry.conn));
    }

    /// The open connection with the fewest users, if one has room.
    fn least_loaded(&self) -> Option<usize> {
        let mut best: Option<(usize, u64)> = None;
        for (key, word) in self.words.words.iter().enumerate() {
            let word = word.load(SeqCst);
            let load = word & (USERS | VACANT | DRAINING);
            if load < self.max_users as u64 && best.is_none_or(|(_, fewest)| load < fewest) {
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
    /// Checkouts need the pool lock (the least-loaded choice sees every connection); returns
    /// that leave a connection with users do not.
    type Fast = Arc<Words>;

    fn fast(&self) -> Arc<Words> {
        Arc::clone(&self.words)
    }

    fn fast_acquire(_: &Arc<Words>, _: Millis) -> FastTake<SharedLease<C>, C> {
        FastTake::Empty
    }

    /// Drops the lease's handle and decrements the connection's count. Declined (for the
    /// pool lock) only for a lease whose connection is gone, before anything is done.
    fn fast_release(
        words: &Arc<Words>,
        lease: SharedLease<C>,
        now: Millis,
    ) -> Result<bool, SharedLease<C>> {
        let Some(word) = words.words.get(lease.key) else {
            return Err(lease);
        };
        let mut current = word.load(SeqCst);
        let ours = |w: u64| generation(w) == lease.generation && w & VACANT == 0;
        if !ours(current) || users(current) == 0 {
            return Err(lease);
        }
        let (key, leased) = (lease.key, lease.generation);
        // From here the return completes: let go of the connection first, so that a count of
        // zero means nobody holds it.
        drop(lease);
        loop {
            if generation(current) != leased || current & VACANT != 0 {
                return Ok(false); // detached meanwhile: no longer the pool's to count
            }
            if users(current) == 1 {
                words.stamp_idle(key, now);
            }
            match word.compare_exchange_weak(current, current - 1, SeqCst, SeqCst) {
                // A draining connection that just lost its last user is closed under the lock.
                Ok(_) => return Ok(current & DRAINING != 0 && users(current) == 1),
                Err(now) => current = now,
            }
        }
    }

    fn fast_checkouts(_: &Arc<Words>) -> u64 {
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
                if self.users_of(key) == 0 {
                    self.close(key, CloseReason::MaxLifetime, tally, closed);
                }
                continue;
            }
            // Returns may decrement concurrently; the generation changes only under the
            // pool lock, which this holds.
            self.word(key)?.fetch_add(1, SeqCst);
            return Some(SharedLease {
                key,
                generation: entry.generation,
                conn: Arc::clone(&entry.conn),
            });
        }
    }

    fn insert(&mut self, conn: Conn<C>) {
        let key = self.entries.vacant_key();
        let Some(word) = self.words.words.get(key) else {
            // More connections than slots cannot happen (open <= max_size = slots); were it
            // to, the connection is simply not kept.
            return;
        };
        let generation = generation(word.load(SeqCst));
        self.entries.insert(Entry {
            generation,
            conn: Arc::new(conn.conn),
            expires: conn.expires,
            state: EntryState::Open,
        });
        self.words.stamp_idle(key, conn.idle_since);
        word.store(u64::from(generation) << 32, SeqCst);
    }

    fn release(
        &mut self,
        lease: SharedLease<C>,
        verdict: Verdict,
        now: Millis,
        tally: &mut Tally,
        closed: &mut Vec<C>,
    ) {
        let SharedLease {
            key,
            generation: leased,
            conn,
        } = lease;
        // Never the last handle while the entry holds one; after a detach it may be.
        closed.extend(Arc::into_inner(conn));
        let Some(entry) = self.entries.get(key).filter(|e| e.generation == leased) else {
            return; // detached by another user: no longer the pool's
        };
        let close = match verdict {
            Verdict::Close(reason) => Some(reason),
            Verdict::Keep | Verdict::Unused if entry.expires <= now => {
                Some(CloseReason::MaxLifetime)
            }
            Verdict::Keep | Verdict::Unused => None,
        };
        if let Some(reason) = close {
            self.drain(key, reason);
        }
        let Some(word) = self.word(key) else {
            return;
        };
        if users(word.fetch_sub(1, SeqCst)) > 1 {
            return;
        }
        // The last user left. Stamping after the decrement is safe here: only the reaper reads
        // the stamp, and it needs the pool lock this holds.
        match self.entries.get(key).map(|e| e.state) {
            Some(EntryState::Draining(reason)) => self.close(key, reason, tally, closed),
            Some(EntryState::Open) if verdict == Verdict::Keep => self.words.stamp_idle(key, now),
            Some(EntryState::Open) | None => {}
        }
    }

    fn detach(&mut self, lease: SharedLease<C>, tally: &mut Tally) -> Arc<C> {
        if self
            .entries
            .get(lease.key)
            .is_some_and(|e| e.generation == lease.generation)
        {
            // Its other users keep their shares; they are no longer the pool's.
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
                .filter(|&(key, e)| e.state == EntryState::Open && self.users_of(key) == 0)
                .map(|(key, _)| (self.words.idle_since(key), key))
                .filter(|&(since, _)| since <= idle_before)
                .collect();
            stale.sort_unstable();
            let excess = self.count_idle().saturating_sub(reap.min_idle);
            for &(_, key) in stale.iter().take(excess) {
                self.drain(key, CloseReason::IdleTimeout);
            }
        }
        self.remove_drained(tally, closed);
    }

    fn tidy(&mut self, tally: &mut Tally, closed: &mut Vec<C>) {
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
        self.count_idle()
    }

    fn in_use(&self, _open: usize) -> usize {
        self.entries
            .iter()
            .filter(|&(key, _)| self.users_of(key) > 0)
            .count()
    }

    fn users(&self, _open: usize) -> usize {
        self.entries.iter().map(|(key, _)| self.users_of(key)).sum()
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

    /// Every slot's word agrees with its entry (or says vacant), and no connection has more
    /// than max_users users.
    fn assert_consistent(s: &Shared<u32>, t: &Tally) {
        for key in 0..s.words.words.len() {
            let word = s.words.get(key);
            match s.entries.get(key) {
                Some(e) => {
                    assert_eq!(generation(word), e.generation);
                    assert_eq!(word & VACANT, 0);
                    assert_eq!(word & DRAINING != 0, e.state != EntryState::Open);
                    assert!(users(word) <= s.max_users);
                }
                None => assert_ne!(word & VACANT, 0, "slot {key} is free"),
            }
        }
        assert_eq!(t.open, s.entries.len());
        let idle = s
            .entries
            .iter()
            .filter(|&(k, e)| e.state == EntryState::Open && s.users_of(k) == 0)
            .count();
        let in_use = s.entries.iter().filter(|&(k, _)| s.users_of(k) > 0).count();
        assert_eq!((s.idle(), s.in_use(0)), (idle, in_use));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(Millis),
        Acquire,
        Release(usize, Option<CloseReason>),
        FastRelease(usize),
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
            4 => (0usize..32).prop_map(Op::FastRelease),
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
                            s.insert(conn(u32::try_from(t.created).unwrap(), now + life));
                        }
                    }
                    Op::Acquire => {
                        // Loads of the connections that can take a user now.
                        let open_loads: Vec<usize> = s.entries.iter()
                            .filter(|&(k, e)| e.state == EntryState::Open
                                && s.users_of(k) < s.max_users && e.expires > now)
                            .map(|(k, _)| s.users_of(k))
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
                    Op::FastRelease(i) if !leases.is_empty() => {
                        let lease = leases.swap_remove(i % leases.len());
                        let before = s.users_of(lease.key);
                        let key = lease.key;
                        let gen_before = generation(s.words.get(key));
                        match Shared::fast_release(&s.fast(), lease, now) {
                            Ok(tidy) => {
                                if generation(s.words.get(key)) == gen_before {
                                    prop_assert_eq!(s.users_of(key), before - 1);
                                }
                                if tidy {
                                    s.tidy(&mut t, &mut closed);
                                }
                            }
                            // A detached connection's lease: the slow path's.
                            Err(lease) => s.release(lease, Verdict::Keep, now, &mut t, &mut closed),
                        }
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
                    Op::Release(..) | Op::FastRelease(_) | Op::Detach(_) => {}
                }
                assert_consistent(&s, &t);
            }
            for lease in leases {
                s.release(lease, Verdict::Keep, now, &mut t, &mut closed);
            }
            assert_consistent(&s, &t);
            prop_assert_eq!(s.users(t.open), 0);
        }
    }
}
