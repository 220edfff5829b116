//! The shared pool's store: every connection takes up to `max_users` users at once, and a new
//! user goes to the least-loaded connection.
//!
//! Each connection's user count lives in an atomic *word* per slot, all in one compact array
//! beside (not inside) the pool lock, and the connection itself in its slot, behind a small
//! lock of its own. While nobody is queued, a checkout scans the words, picks the
//! least-loaded open connection, claims a user with a compare-and-swap and clones the
//! connection's handle; a return drops its handle and decrements the word. Neither takes the
//! pool lock. Changes to a connection's life do: opening, draining, closing (a return that
//! leaves a draining connection empty asks for it), detaching.
//!
//! A word is `generation << 32 | DRAINING | VACANT | users`. The generation changes whenever a
//! slot loses its connection, so a claim or a lease on a connection that was detached (or
//! replaced) never touches its successor. A user always drops its handle before it
//! decrements, so a count of zero means nobody holds the connection, and once `DRAINING` is
//! set no claim succeeds: a draining connection with no user can be closed.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, PoisonError};

use slab::Slab;

use crate::clock::Millis;
use crate::core::{CacheAligned, Conn, FastTake, Reap, Store, Verdict};
use crate::metrics::{CloseReason, Tally};

/// Where a shared connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryState {
    /// Takes new users.
    Open,
    /// Takes no new users; closed (for this reason) when its last user leaves.
    Draining(CloseReason),
}

/// The pool lock's record of an occupied slot.
#[derive(Debug)]
struct Entry {
    /// The slot's generation while this connection holds it.
    generation: u32,
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

/// One connection's place, reachable without the pool lock.
#[derive(Debug)]
struct Slot<C> {
    /// The connection and the generation it belongs to; written under the pool lock while
    /// no claim can succeed (before the word opens, after it closes).
    conn: Mutex<Option<(u32, Arc<C>)>>,
    /// When its max lifetime is over (fixed while the slot holds it).
    expires: AtomicU64,
    /// When it last lost its last user: written before the decrement that empties it (or under
    /// the pool lock), so a reaper that sees zero users sees the stamp.
    idle_since: AtomicU64,
    /// Checkouts served without the pool lock.
    checkouts: AtomicU64,
}

/// Everything the lock-free checkout and return need. All atomics are `SeqCst`: a return
/// decrements a word and then reads the gate, a queueing checkout closes the gate and then
/// reads the words, and one of them must see the other.
#[derive(Debug)]
pub(crate) struct Slots<C> {
    /// One word per slot, together: the least-loaded scan reads one cache line.
    words: Box<[AtomicU64]>,
    slots: Box<[CacheAligned<Slot<C>>]>,
    max_users: usize,
}

impl<C> Slots<C> {
    fn word(&self, key: usize) -> u64 {
        self.words.get(key).map_or(VACANT, |w| w.load(SeqCst))
    }

    fn slot(&self, key: usize) -> Option<&Slot<C>> {
        self.slots.get(key).map(|s| &s.0)
    }

    fn idle_since(&self, key: usize) -> Millis {
        self.slot(key).map_or(0, |s| s.idle_since.load(SeqCst))
    }

    fn stamp_idle(&self, key: usize, now: Millis) {
        if let Some(slot) = self.slot(key) {
            slot.idle_since.store(now, SeqCst);
        }
    }

    /// The open slot with the fewest users below `max_users` (its key and word), and whether
    /// it is the only one with no user.
    fn least_loaded(&self) -> Option<(usize, u64, bool)> {
        let mut best: Option<(usize, u64)> = None;
        let mut idle = 0;
        for (key, word) in self.words.iter().enumerate() {
            let word = word.load(SeqCst);
            let load = word & (USERS | VACANT | DRAINING);
            if load == 0 {
                idle += 1;
            }
            if load < self.max_users as u64 && best.is_none_or(|(_, w)| load < w & USERS) {
                best = Some((key, word));
            }
        }
        best.map(|(key, word)| (key, word, users(word) == 0 && idle == 1))
    }

    /// A handle on the connection of `generation` in slot `key`, if it is still there.
    fn handle(&self, key: usize, generation: u32) -> Option<Arc<C>> {
        let conn = self
            .slot(key)?
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match conn.as_ref() {
            Some((g, conn)) if *g == generation => Some(Arc::clone(conn)),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Shared<C> {
    slots: Arc<Slots<C>>,
    entries: Slab<Entry>,
}

impl<C> Shared<C> {
    pub(crate) fn new(max_size: usize, max_users: usize) -> Self {
        let slot = || {
            CacheAligned(Slot {
                conn: Mutex::new(None),
                expires: AtomicU64::new(0),
                idle_since: AtomicU64::new(0),
                checkouts: AtomicU64::new(0),
            })
        };
        Self {
            slots: Arc::new(Slots {
                words: (0..max_size).map(|_| AtomicU64::new(VACANT)).collect(),
                slots: (0..max_size).map(|_| slot()).collect(),
                max_users,
            }),
            entries: Slab::with_capacity(max_size),
        }
    }

    fn word(&self, key: usize) -> Option<&AtomicU64> {
        self.slots.words.get(key)
    }

    /// The users of the connection at `key`.
    fn users_of(&self, key: usize) -> usize {
        users(self.slots.word(key))
    }

    fn expired(&self, key: usize, now: Millis) -> bool {
        self.slots
            .slot(key)
            .is_some_and(|s| s.expires.load(SeqCst) <= now)
    }

    /// Open connections with no user.
    fn count_idle(&self) -> usize {
        self.entries
            .iter()
            .filter(|&(key, _)| self.slots.word(key) & (USERS | DRAINING) == 0)
            .count()
    }

    /// Stops an open connection from taking users (it closes for `reason` when its last user
    /// leaves).
    fn drain(&mut self, key: usize, reason: CloseReason) {
        if let Some(entry) = self.entries.get_mut(key)
            && entry.state == EntryState::Open
        {
            entry.state = EntryState::Draining(reason);
            if let Some(word) = self.slots.words.get(key) {
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

    /// Takes a connection out of its slot (it has no user, or is detached): the word moves to
    /// the next generation first, so no claim on this one succeeds after, then the handle
    /// comes out.
    fn remove(&mut self, key: usize) -> Option<Arc<C>> {
        let entry = self.entries.remove(key);
        if let Some(word) = self.word(key) {
            let next = u64::from(entry.generation.wrapping_add(1));
            word.store(next << 32 | VACANT, SeqCst);
        }
        let slot = self.slots.slot(key)?;
        let mut conn = slot.conn.lock().unwrap_or_else(PoisonError::into_inner);
        conn.take().map(|(_, conn)| conn)
    }

    /// Takes a drained connection out of its slot and closes it.
    fn close(&mut self, key: usize, reason: CloseReason, tally: &mut Tally, closed: &mut Vec<C>) {
        tally.closed(reason);
        if let Some(conn) = self.remove(key) {
            closed.extend(Arc::into_inner(conn));
        }
    }
}

/// Claims a user on the least-loaded open connection and takes a handle on it, without the
/// pool lock. `Err(key)` when the chosen one is past its lifetime (the pool lock drains it).
fn claim<C>(slots: &Slots<C>, now: Millis) -> Result<Option<(SharedLease<C>, bool)>, usize> {
    loop {
        let Some((key, word, last_idle)) = slots.least_loaded() else {
            return Ok(None);
        };
        if slots
            .slot(key)
            .is_some_and(|s| s.expires.load(SeqCst) <= now)
        {
            return Err(key);
        }
        let Some(cell) = slots.words.get(key) else {
            return Ok(None);
        };
        if cell
            .compare_exchange(word, word + 1, SeqCst, SeqCst)
            .is_err()
        {
            continue; // someone else claimed or returned meanwhile: look again
        }
        // `None`: detached between the claim and the handle, so the claim went with the old
        // generation's word. Look again.
        if let Some(conn) = slots.handle(key, generation(word)) {
            let lease = SharedLease {
                key,
                generation: generation(word),
                conn,
            };
            return Ok(Some((lease, last_idle)));
        }
    }
}

impl<C: Send + Sync + 'static> Store for Shared<C> {
    type Conn = C;
    type Lease = SharedLease<C>;
    type Closed = C;
    type Detached = Arc<C>;
    type Fast = Arc<Slots<C>>;

    fn fast(&self) -> Arc<Slots<C>> {
        Arc::clone(&self.slots)
    }

    fn fast_acquire(slots: &Arc<Slots<C>>, now: Millis) -> FastTake<SharedLease<C>, C> {
        match claim(slots, now) {
            Ok(Some((lease, last_idle))) => {
                if let Some(slot) = slots.slot(lease.key) {
                    slot.checkouts.fetch_add(1, SeqCst);
                }
                FastTake::Took {
                    lease,
                    drained: last_idle,
                }
            }
            // Nothing with room, or the least-loaded one expired: the pool lock's business.
            Ok(None) | Err(_) => FastTake::Empty,
        }
    }

    /// Drops the lease's handle and decrements the connection's count. Declined (for the
    /// pool lock) only for a lease whose connection is gone, before anything is done.
    fn fast_release(
        slots: &Arc<Slots<C>>,
        lease: SharedLease<C>,
        now: Millis,
    ) -> Result<bool, SharedLease<C>> {
        let Some(word) = slots.words.get(lease.key) else {
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
                slots.stamp_idle(key, now);
            }
            match word.compare_exchange_weak(current, current - 1, SeqCst, SeqCst) {
                // A draining connection that just lost its last user is closed under the lock.
                Ok(_) => return Ok(current & DRAINING != 0 && users(current) == 1),
                Err(now) => current = now,
            }
        }
    }

    fn fast_checkouts(slots: &Arc<Slots<C>>) -> u64 {
        slots.slots.iter().map(|s| s.0.checkouts.load(SeqCst)).sum()
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
            match claim(&self.slots, now) {
                Ok(claimed) => return claimed.map(|(lease, _)| lease),
                Err(expired) => {
                    // Past its lifetime: no new users; closed now if it has none.
                    self.drain(expired, CloseReason::MaxLifetime);
                    if self.users_of(expired) == 0 {
                        self.close(expired, CloseReason::MaxLifetime, tally, closed);
                    }
                }
            }
        }
    }

    fn insert(&mut self, conn: Conn<C>) {
        let key = self.entries.vacant_key();
        let (Some(word), Some(slot)) = (self.slots.words.get(key), self.slots.slot(key)) else {
            // More connections than slots cannot happen (open <= max_size = slots); were it
            // to, the connection is simply not kept.
            return;
        };
        let generation = generation(word.load(SeqCst));
        self.entries.insert(Entry {
            generation,
            state: EntryState::Open,
        });
        *slot.conn.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((generation, Arc::new(conn.conn)));
        slot.expires.store(conn.expires, SeqCst);
        slot.idle_since.store(conn.idle_since, SeqCst);
        // Last: the word opens the slot to claims.
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
        // Let go first (a count of zero means nobody holds it); after a detach this may be the
        // last handle, dropped after the lock.
        closed.extend(Arc::into_inner(conn));
        if self.entries.get(key).is_none_or(|e| e.generation != leased) {
            return; // detached: no longer the pool's
        }
        let close = match verdict {
            Verdict::Close(reason) => Some(reason),
            Verdict::Keep | Verdict::Unused if self.expired(key, now) => {
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
            Some(EntryState::Open) if verdict == Verdict::Keep => self.slots.stamp_idle(key, now),
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
            drop(self.remove(lease.key));
            tally.detached();
        }
        lease.conn
    }

    fn reap(&mut self, reap: Reap, tally: &mut Tally, closed: &mut Vec<C>) {
        let expired: Vec<usize> = self
            .entries
            .iter()
            .filter(|&(key, e)| e.state == EntryState::Open && self.expired(key, reap.now))
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
                .map(|(key, _)| (self.slots.idle_since(key), key))
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
        waiting.div_ceil(self.slots.max_users)
    }
}

#[cfg(test)]
mod tests;
