//! The exclusive pool's store: idle connections in per-thread shards, each a stack used
//! last-in first-out.
//!
//! A thread gives connections back to its own shard and takes them from it first, so while
//! nobody queues a checkout and return touch one uncontended, cache-hot mutex and no line
//! another core is writing: two worker threads checking out in a loop do not take turns on
//! one lock. The pool lock is only needed when the shard is empty (take from another shard,
//! open a connection, or queue) or a checkout is queued (hand the connection over in FIFO
//! order); see [`Gate`](crate::waiters::Gate) for why no connection is stranded in a shard
//! while someone waits.
//!
//! LIFO keeps the connections in use few and warm, and leaves the rest at the bottom of each
//! stack, idle longest, where the idle timeout finds them.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::clock::Millis;
use crate::core::{CacheAligned, Conn, FastTake, Reap, Store, Verdict};
use crate::metrics::{CloseReason, Tally};

/// One thread's idle connections.
#[derive(Debug)]
struct Shard<C> {
    /// Idle connections; the top (end) is the most recently returned.
    idle: Vec<Conn<C>>,
    /// Checkouts served from this shard without the pool lock.
    checkouts: u64,
}

/// The shards, shared by the pool's slow paths (under the pool lock) and the fast paths.
#[derive(Debug)]
pub(crate) struct Shards<C> {
    shards: Box<[CacheAligned<Mutex<Shard<C>>>]>,
}

thread_local! {
    /// This thread's shard number (modulo the pool's shard count), handed out in turn.
    static HOME: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The calling thread's home shard number, before the modulo.
#[inline]
fn home() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    HOME.try_with(|home| {
        if home.get() == usize::MAX {
            home.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        home.get()
    })
    .unwrap_or(0) // a guard dropped while its thread shuts down: any shard will do
}

impl<C> Shards<C> {
    /// One shard per CPU, but no more shards than connections (an empty shard only sends its
    /// threads to the slow path).
    fn new(max_size: usize) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let count = cpus.min(max_size).clamp(1, 64);
        let shards = (0..count)
            .map(|_| {
                CacheAligned(Mutex::new(Shard {
                    idle: Vec::with_capacity(max_size),
                    checkouts: 0,
                }))
            })
            .collect();
        Self { shards }
    }

    /// Shard `i`, locked. Nothing panics while a shard is locked, so a poisoned one is
    /// still consistent.
    fn lock(&self, i: usize) -> MutexGuard<'_, Shard<C>> {
        self.shards[i % self.shards.len()]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The calling thread's shard number.
    fn mine(&self) -> usize {
        home() % self.shards.len()
    }

    fn all(&self) -> impl Iterator<Item = MutexGuard<'_, Shard<C>>> {
        (0..self.shards.len()).map(|i| self.lock(i))
    }
}

#[derive(Debug)]
pub(crate) struct Exclusive<C> {
    shards: Arc<Shards<C>>,
}

impl<C> Exclusive<C> {
    pub(crate) fn new(max_size: usize) -> Self {
        Self {
            shards: Arc::new(Shards::new(max_size)),
        }
    }
}

/// Pops the top connection of `shard` that has not expired, closing expired ones on the way.
fn pop_live<C>(
    shard: &mut Shard<C>,
    now: Millis,
    tally: &mut Tally,
    closed: &mut Vec<C>,
) -> Option<Conn<C>> {
    while let Some(conn) = shard.idle.pop() {
        if !conn.expired(now) {
            return Some(conn);
        }
        tally.closed(CloseReason::MaxLifetime);
        closed.push(conn.conn);
    }
    None
}

impl<C: Send + 'static> Store for Exclusive<C> {
    type Conn = C;
    type Lease = Conn<C>;
    type Closed = C;
    type Detached = C;
    type Fast = Arc<Shards<C>>;

    fn fast(&self) -> Arc<Shards<C>> {
        Arc::clone(&self.shards)
    }

    fn fast_acquire(shards: &Arc<Shards<C>>, now: Millis) -> FastTake<Conn<C>, C> {
        let mut shard = shards.lock(shards.mine());
        match shard.idle.pop() {
            Some(conn) if conn.expired(now) => FastTake::Expired(conn.conn),
            Some(conn) => {
                shard.checkouts += 1;
                FastTake::Took {
                    lease: conn,
                    drained: shard.idle.is_empty(),
                }
            }
            None => FastTake::Empty,
        }
    }

    fn fast_release(
        shards: &Arc<Shards<C>>,
        mut conn: Conn<C>,
        now: Millis,
    ) -> Result<bool, Conn<C>> {
        if conn.expired(now) {
            return Err(conn);
        }
        conn.used = true;
        conn.idle_since = now;
        shards.lock(shards.mine()).idle.push(conn);
        Ok(false)
    }

    fn fast_checkouts(shards: &Arc<Shards<C>>) -> u64 {
        shards.all().map(|s| s.checkouts).sum()
    }

    fn connection(lease: &Conn<C>) -> &C {
        &lease.conn
    }

    /// Slow path: this thread's shard first, then the others.
    fn acquire(&mut self, now: Millis, tally: &mut Tally, closed: &mut Vec<C>) -> Option<Conn<C>> {
        let mine = self.shards.mine();
        (mine..mine + self.shards.shards.len())
            .find_map(|i| pop_live(&mut self.shards.lock(i), now, tally, closed))
    }

    fn insert(&mut self, conn: Conn<C>) {
        self.shards.lock(self.shards.mine()).idle.push(conn);
    }

    fn release(
        &mut self,
        mut conn: Conn<C>,
        verdict: Verdict,
        now: Millis,
        tally: &mut Tally,
        closed: &mut Vec<C>,
    ) {
        let close = match verdict {
            Verdict::Close(reason) => Some(reason),
            Verdict::Keep | Verdict::Unused if conn.expired(now) => Some(CloseReason::MaxLifetime),
            Verdict::Keep => {
                conn.used = true;
                conn.idle_since = now;
                None
            }
            Verdict::Unused => None,
        };
        match close {
            Some(reason) => {
                tally.closed(reason);
                closed.push(conn.conn);
            }
            None => self.insert(conn),
        }
    }

    fn detach(&mut self, lease: Conn<C>, tally: &mut Tally) -> C {
        tally.detached();
        lease.conn
    }

    fn reap(&mut self, reap: Reap, tally: &mut Tally, closed: &mut Vec<C>) {
        let mut shards: Vec<_> = self.shards.all().collect();
        let stale = |conn: &Conn<C>| reap.idle_before.is_some_and(|t| conn.idle_since <= t);
        let idle: usize = shards.iter().map(|s| s.idle.len()).sum();
        let expired = shards
            .iter()
            .flat_map(|s| &s.idle)
            .filter(|c| c.expired(reap.now))
            .count();
        // Idle-timeout closes stop at min_idle, counted after the expired ones go.
        let mut idle_closable = (idle - expired).saturating_sub(reap.min_idle);
        for shard in &mut shards {
            if !shard.idle.iter().any(|c| c.expired(reap.now) || stale(c)) {
                continue;
            }
            // Oldest idle first: from the bottom of the stack.
            let mut kept = Vec::with_capacity(shard.idle.capacity());
            for conn in shard.idle.drain(..) {
                let reason = if conn.expired(reap.now) {
                    Some(CloseReason::MaxLifetime)
                } else if idle_closable > 0 && stale(&conn) {
                    idle_closable -= 1;
                    Some(CloseReason::IdleTimeout)
                } else {
                    None
                };
                match reason {
                    Some(reason) => {
                        tally.closed(reason);
                        closed.push(conn.conn);
                    }
                    None => kept.push(conn),
                }
            }
            shard.idle = kept;
        }
    }

    fn tidy(&mut self, _: &mut Tally, _: &mut Vec<C>) {}

    fn close_idle(&mut self, tally: &mut Tally, closed: &mut Vec<C>) {
        for mut shard in self.shards.all() {
            for conn in shard.idle.drain(..) {
                tally.closed(CloseReason::PoolClosed);
                closed.push(conn.conn);
            }
        }
    }

    fn idle(&self) -> usize {
        self.shards.all().map(|s| s.idle.len()).sum()
    }

    fn in_use(&self, open: usize) -> usize {
        open.saturating_sub(self.idle())
    }

    fn users(&self, open: usize) -> usize {
        self.in_use(open)
    }

    fn connections_for(&self, waiting: usize) -> usize {
        waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(id: u32, expires: Millis, idle_since: Millis) -> Conn<u32> {
        Conn {
            conn: id,
            expires,
            idle_since,
            used: false,
        }
    }

    fn store(conns: Vec<Conn<u32>>) -> (Exclusive<u32>, Tally) {
        let mut s = Exclusive::new(4);
        let mut t = Tally::default();
        for c in conns {
            t.opened();
            s.insert(c);
        }
        (s, t)
    }

    #[test]
    fn last_returned_is_first_out_and_expired_ones_are_closed_on_the_way() {
        let (mut s, mut t) = store(vec![conn(1, 100, 0), conn(2, 10, 0)]);
        let mut closed = Vec::new();
        let got = s.acquire(50, &mut t, &mut closed).unwrap();
        assert_eq!(got.conn, 1);
        assert_eq!(closed, vec![2]);
        assert_eq!(t.closed.get(CloseReason::MaxLifetime), 1);
        assert_eq!((s.idle(), s.in_use(t.open), t.open), (0, 1, 1));
        s.release(got, Verdict::Keep, 60, &mut t, &mut closed);
        assert_eq!((s.idle(), s.in_use(t.open)), (1, 0));
        let again = s.acquire(61, &mut t, &mut closed).unwrap();
        assert!(again.used);
        assert_eq!(again.idle_since, 60);
    }

    #[test]
    fn a_release_closes_what_must_not_be_reused() {
        let (mut s, mut t) = store(vec![conn(1, 50, 0), conn(2, 100, 0), conn(3, 100, 0)]);
        let mut closed = Vec::new();
        // Last in, first out: 3, 2, 1.
        let a = s.acquire(0, &mut t, &mut closed).unwrap();
        let b = s.acquire(0, &mut t, &mut closed).unwrap();
        let c = s.acquire(0, &mut t, &mut closed).unwrap();
        s.release(
            a,
            Verdict::Close(CloseReason::Broken),
            1,
            &mut t,
            &mut closed,
        );
        s.release(b, Verdict::Keep, 60, &mut t, &mut closed);
        s.release(c, Verdict::Unused, 60, &mut t, &mut closed);
        assert_eq!(t.closed.get(CloseReason::Broken), 1);
        assert_eq!(t.closed.get(CloseReason::MaxLifetime), 1, "1 expired at 50");
        assert_eq!(closed, vec![3, 1]);
        assert_eq!((s.idle(), s.in_use(t.open), t.open), (1, 0, 1));
    }

    #[test]
    fn the_fast_paths_use_the_callers_shard_and_leave_expired_ones_to_the_slow_path() {
        let (s, _t) = store(vec![conn(1, 100, 0), conn(2, 10, 0)]);
        let fast = s.fast();
        match Exclusive::fast_acquire(&fast, 50) {
            FastTake::Expired(2) => {}
            other => panic!("{other:?}"),
        }
        let FastTake::Took {
            lease: one,
            drained: true,
        } = Exclusive::fast_acquire(&fast, 50)
        else {
            panic!("1 is alive, and the last")
        };
        assert!(matches!(
            Exclusive::fast_acquire(&fast, 50),
            FastTake::Empty
        ));
        assert_eq!(Exclusive::fast_checkouts(&fast), 1);
        let expired = Exclusive::fast_release(&fast, one, 100).unwrap_err();
        assert_eq!(expired.conn, 1, "expired: back to the slow path");
        let mut fresh = expired;
        fresh.expires = 1000;
        Exclusive::fast_release(&fast, fresh, 200).unwrap();
        assert_eq!(s.idle(), 1);
        let FastTake::Took { lease: back, .. } = Exclusive::fast_acquire(&fast, 201) else {
            panic!()
        };
        assert!(back.used);
        assert_eq!(back.idle_since, 200);
    }

    #[test]
    fn the_slow_path_takes_from_any_shard() {
        let (mut s, mut t) = store(vec![]);
        // Park a connection in another thread's shard.
        let fast = s.fast();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for _ in 0..s.shards.shards.len() {
                    Exclusive::fast_release(&fast, conn(9, 100, 0), 0).unwrap();
                }
            });
        });
        let found = s.acquire(0, &mut t, &mut Vec::new());
        assert_eq!(found.map(|c| c.conn), Some(9));
    }

    #[test]
    fn reaping_keeps_min_idle_and_takes_the_longest_idle_first() {
        let (mut s, mut t) = store(vec![conn(1, 1000, 10), conn(2, 1000, 20), conn(3, 40, 30)]);
        let mut closed = Vec::new();
        let reap = Reap {
            now: 50,
            idle_before: Some(25),
            min_idle: 1,
        };
        s.reap(reap, &mut t, &mut closed);
        // 3 is past its lifetime; of 1 and 2 (both idle since before 25) the longest idle goes,
        // the other stays for min_idle.
        closed.sort_unstable();
        assert_eq!(closed, vec![1, 3]);
        assert_eq!(t.closed.get(CloseReason::IdleTimeout), 1);
        assert_eq!(s.idle(), 1);
        s.close_idle(&mut t, &mut closed);
        assert_eq!(t.open, 0);
        assert_eq!(t.closed.get(CloseReason::PoolClosed), 1);
    }
}
