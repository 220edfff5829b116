//! The exclusive pool's store: idle connections in a stack, used last-in first-out.
//!
//! LIFO keeps the connections in use few and warm, and leaves the rest at the bottom of the
//! stack, idle longest, where the idle timeout finds them in order.

use std::collections::VecDeque;

use crate::clock::Millis;
use crate::core::{Conn, Reap, Store, Verdict};
use crate::metrics::{CloseReason, Tally};

#[derive(Debug)]
pub(crate) struct Exclusive<C> {
    /// Idle connections; the back is the most recently returned.
    idle: VecDeque<Conn<C>>,
    in_use: usize,
}

impl<C> Exclusive<C> {
    pub(crate) fn new(max_size: usize) -> Self {
        Self {
            idle: VecDeque::with_capacity(max_size),
            in_use: 0,
        }
    }
}

impl<C: Send + 'static> Store for Exclusive<C> {
    type Conn = C;
    type Lease = Conn<C>;
    type Closed = C;
    type Detached = C;

    fn acquire(&mut self, now: Millis, tally: &mut Tally, closed: &mut Vec<C>) -> Option<Conn<C>> {
        while let Some(conn) = self.idle.pop_back() {
            if conn.expired(now) {
                tally.closed(CloseReason::MaxLifetime);
                closed.push(conn.conn);
                continue;
            }
            self.in_use += 1;
            return Some(conn);
        }
        None
    }

    fn insert(&mut self, conn: Conn<C>) {
        self.idle.push_back(conn);
    }

    fn release(
        &mut self,
        mut conn: Conn<C>,
        verdict: Verdict,
        now: Millis,
        tally: &mut Tally,
        closed: &mut Vec<C>,
    ) {
        self.in_use -= 1;
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
            None => self.idle.push_back(conn),
        }
    }

    fn detach(&mut self, lease: Conn<C>, tally: &mut Tally) -> C {
        self.in_use -= 1;
        tally.detached();
        lease.conn
    }

    fn reap(&mut self, reap: Reap, tally: &mut Tally, closed: &mut Vec<C>) {
        if self.idle.iter().any(|c| c.expired(reap.now)) {
            let mut kept = VecDeque::with_capacity(self.idle.capacity());
            for conn in self.idle.drain(..) {
                if conn.expired(reap.now) {
                    tally.closed(CloseReason::MaxLifetime);
                    closed.push(conn.conn);
                } else {
                    kept.push_back(conn);
                }
            }
            self.idle = kept;
        }
        let Some(idle_before) = reap.idle_before else {
            return;
        };
        while self.idle.len() > reap.min_idle
            && self
                .idle
                .front()
                .is_some_and(|c| c.idle_since <= idle_before)
        {
            if let Some(conn) = self.idle.pop_front() {
                tally.closed(CloseReason::IdleTimeout);
                closed.push(conn.conn);
            }
        }
    }

    fn close_idle(&mut self, tally: &mut Tally, closed: &mut Vec<C>) {
        for conn in self.idle.drain(..) {
            tally.closed(CloseReason::PoolClosed);
            closed.push(conn.conn);
        }
    }

    fn idle(&self) -> usize {
        self.idle.len()
    }

    fn in_use(&self) -> usize {
        self.in_use
    }

    fn users(&self) -> usize {
        self.in_use
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
        assert_eq!((s.idle(), s.in_use(), t.open), (0, 1, 1));
        s.release(got, Verdict::Keep, 60, &mut t, &mut closed);
        assert_eq!((s.idle(), s.in_use()), (1, 0));
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
        assert_eq!((s.idle(), s.in_use(), t.open), (1, 0, 1));
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
        // 3 is past its lifetime; of 1 and 2 (both idle since before 25) one stays for min_idle.
        assert_eq!(closed, vec![3, 1]);
        assert_eq!(t.closed.get(CloseReason::IdleTimeout), 1);
        assert_eq!(s.idle(), 1);
        s.close_idle(&mut t, &mut closed);
        assert_eq!(t.open, 0);
        assert_eq!(t.closed.get(CloseReason::PoolClosed), 1);
    }
}
