//! The checkout queue: strictly FIFO, with cancellation that loses nothing.
//!
//! Pure data, no runtime: the pool holds it under its lock, and wakes the returned wakers
//! after unlocking. Waiter slots live in a slab and are reused, so queueing allocates nothing
//! once the pool has seen its peak number of waiters.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Waker;

use slab::Slab;

/// The one word the lock-free fast paths read: how many checkouts are queued, and whether
/// the pool is closed. Zero means "nobody is owed a connection": a checkout may take one from
/// its shard and a return may leave one there, without the pool lock.
///
/// Written only under the pool lock (by [`Waiters`] as its queue changes, and by `close`),
/// always before the writer looks into the shards. A fast return reads it again *after*
/// leaving its connection in a shard (both through the shard's mutex), so of a queueing
/// checkout and a concurrent return at least one sees the other: the checkout finds the
/// connection, or the return sees the queue and hands the connection over under the pool
/// lock. No connection stays idle while a checkout waits.
#[derive(Debug, Default)]
pub(crate) struct Gate(AtomicUsize);

/// The gate's top bit: the pool is closed.
const CLOSED: usize = 1 << (usize::BITS - 1);

impl Gate {
    /// No checkout queued, pool open.
    #[inline]
    pub(crate) fn is_clear(&self) -> bool {
        self.0.load(Ordering::SeqCst) == 0
    }

    pub(crate) fn close(&self) {
        self.0.fetch_or(CLOSED, Ordering::SeqCst);
    }

    fn queued(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    fn dequeued(&self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A queued checkout: its slot, and a ticket that tells it apart from later users of the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WaiterId {
    key: usize,
    ticket: u64,
}

/// A waiter is either still waiting, or served (a connection or an error) and not yet told.
#[derive(Debug)]
enum WaitState<T, E> {
    Waiting(Option<Waker>),
    Served(Result<T, E>),
}

#[derive(Debug)]
struct Slot<T, E> {
    ticket: u64,
    state: WaitState<T, E>,
}

/// What [`Waiters::remove`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Removed<T, E> {
    /// It was still waiting: it leaves the queue and nothing else changes.
    Waiting,
    /// It had been served and had not taken its outcome yet. A connection in it must be used
    /// or given back, never dropped.
    Served(Result<T, E>),
    /// It was already removed.
    Gone,
}

#[derive(Debug)]
pub(crate) struct Waiters<T, E> {
    slots: Slab<Slot<T, E>>,
    /// Queue order. Entries whose slot was removed (or reused under a new ticket) are stale and
    /// skipped; they are compacted away when they outnumber the live ones.
    queue: VecDeque<WaiterId>,
    next_ticket: u64,
    /// Slots in the `Waiting` state.
    waiting: usize,
    /// Mirrors `waiting` for the fast paths.
    gate: Arc<Gate>,
}

impl<T, E> Waiters<T, E> {
    pub(crate) fn new(gate: Arc<Gate>) -> Self {
        Self {
            slots: Slab::new(),
            queue: VecDeque::new(),
            next_ticket: 0,
            waiting: 0,
            gate,
        }
    }

    /// Checkouts still waiting to be served.
    pub(crate) const fn waiting(&self) -> usize {
        self.waiting
    }

    /// Queues a new checkout behind every other.
    pub(crate) fn push_back(&mut self) -> WaiterId {
        let id = self.insert();
        self.queue.push_back(id);
        id
    }

    /// Queues a checkout ahead of every other: one that was served a connection which then
    /// failed its check keeps its place at the head.
    pub(crate) fn push_front(&mut self) -> WaiterId {
        let id = self.insert();
        self.queue.push_front(id);
        id
    }

    fn insert(&mut self) -> WaiterId {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let key = self.slots.insert(Slot {
            ticket,
            state: WaitState::Waiting(None),
        });
        self.waiting += 1;
        self.gate.queued();
        WaiterId { key, ticket }
    }

    fn slot_mut(&mut self, id: WaiterId) -> Option<&mut Slot<T, E>> {
        self.slots.get_mut(id.key).filter(|s| s.ticket == id.ticket)
    }

    /// Serves the longest-waiting checkout with `outcome` and returns its waker, to be woken
    /// after the lock is released. With nobody waiting, `outcome` comes back.
    pub(crate) fn serve(&mut self, outcome: Result<T, E>) -> Result<Option<Waker>, Result<T, E>> {
        while let Some(id) = self.queue.pop_front() {
            let Some(slot) = self.slots.get_mut(id.key).filter(|s| s.ticket == id.ticket) else {
                continue;
            };
            let WaitState::Waiting(waker) = &mut slot.state else {
                continue;
            };
            let waker = waker.take();
            slot.state = WaitState::Served(outcome);
            self.waiting -= 1;
            self.gate.dequeued();
            return Ok(waker);
        }
        Err(outcome)
    }

    /// The outcome of a served checkout (its slot is freed), or `None` after registering
    /// `waker` to be woken when it is served.
    pub(crate) fn poll(&mut self, id: WaiterId, waker: &Waker) -> Option<Result<T, E>> {
        let slot = self.slot_mut(id)?;
        match &mut slot.state {
            WaitState::Waiting(current) => {
                if !current.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    *current = Some(waker.clone());
                }
                None
            }
            WaitState::Served(_) => match self.slots.remove(id.key).state {
                WaitState::Served(outcome) => Some(outcome),
                WaitState::Waiting(_) => None,
            },
        }
    }

    /// The outcome of a checkout if it has been served (its slot is freed); a checkout still
    /// waiting is left exactly as it is.
    pub(crate) fn try_take(&mut self, id: WaiterId) -> Option<Result<T, E>> {
        match self.slot_mut(id)?.state {
            WaitState::Waiting(_) => None,
            WaitState::Served(_) => match self.slots.remove(id.key).state {
                WaitState::Served(outcome) => Some(outcome),
                WaitState::Waiting(_) => None,
            },
        }
    }

    /// Takes a checkout out of the queue (it timed out or was dropped).
    pub(crate) fn remove(&mut self, id: WaiterId) -> Removed<T, E> {
        if self.slot_mut(id).is_none() {
            return Removed::Gone;
        }
        match self.slots.remove(id.key).state {
            WaitState::Waiting(_) => {
                self.waiting -= 1;
                self.gate.dequeued();
                self.compact();
                Removed::Waiting
            }
            WaitState::Served(outcome) => Removed::Served(outcome),
        }
    }

    /// Serves every waiting checkout with an error (the pool closed, or connecting gave up),
    /// pushing their wakers onto `wakers`.
    pub(crate) fn fail_all(&mut self, mut error: impl FnMut() -> E, wakers: &mut Vec<Waker>) {
        while self.waiting > 0 {
            match self.serve(Err(error())) {
                Ok(waker) => wakers.extend(waker),
                Err(_) => break,
            }
        }
    }

    fn compact(&mut self) {
        if self.queue.len() > 2 * self.waiting + 16 {
            let slots = &self.slots;
            self.queue.retain(|id| {
                slots.get(id.key).is_some_and(|s| {
                    s.ticket == id.ticket && matches!(s.state, WaitState::Waiting(_))
                })
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Q = Waiters<u32, &'static str>;

    fn queue() -> Q {
        Waiters::new(Arc::default())
    }

    /// The value `serve` gave back because nobody waited.
    fn returned(served: Result<Option<Waker>, Result<u32, &'static str>>) -> Option<u32> {
        match served {
            Err(Ok(value)) => Some(value),
            _ => None,
        }
    }

    fn outcome(q: &mut Q, id: WaiterId) -> Option<Result<u32, &'static str>> {
        q.poll(id, Waker::noop())
    }

    #[test]
    fn served_in_arrival_order() {
        let mut q = queue();
        let a = q.push_back();
        let b = q.push_back();
        let c = q.push_back();
        assert_eq!(q.waiting(), 3);
        assert_eq!(outcome(&mut q, a), None);
        q.serve(Ok(1)).unwrap();
        q.serve(Ok(2)).unwrap();
        assert_eq!(q.waiting(), 1);
        assert_eq!(outcome(&mut q, b), Some(Ok(2)));
        assert_eq!(outcome(&mut q, a), Some(Ok(1)));
        assert_eq!(outcome(&mut q, c), None);
        q.serve(Err("down")).unwrap();
        assert_eq!(outcome(&mut q, c), Some(Err("down")));
        assert_eq!(
            returned(q.serve(Ok(9))),
            Some(9),
            "nobody left: the value comes back"
        );
    }

    #[test]
    fn try_take_leaves_a_waiting_checkout_in_place() {
        let mut q = queue();
        let a = q.push_back();
        let b = q.push_back();
        assert_eq!(q.try_take(a), None);
        assert_eq!(q.waiting(), 2);
        q.serve(Ok(5)).unwrap();
        assert_eq!(q.try_take(a), Some(Ok(5)), "a kept its place at the head");
        assert_eq!(q.try_take(a), None);
        assert_eq!(q.try_take(b), None);
    }

    #[test]
    fn the_front_of_the_queue_jumps_ahead() {
        let mut q = queue();
        let a = q.push_back();
        let b = q.push_front();
        q.serve(Ok(1)).unwrap();
        assert_eq!(outcome(&mut q, b), Some(Ok(1)));
        assert_eq!(outcome(&mut q, a), None);
    }

    #[test]
    fn a_removed_waiter_is_skipped_and_an_unclaimed_connection_comes_back() {
        let mut q = queue();
        let a = q.push_back();
        let b = q.push_back();
        assert_eq!(q.remove(a), Removed::Waiting);
        assert_eq!(q.waiting(), 1);
        q.serve(Ok(7)).unwrap();
        assert_eq!(q.remove(b), Removed::Served(Ok(7)));
        assert_eq!(q.remove(b), Removed::Gone);
        assert_eq!(q.waiting(), 0);
        assert_eq!(returned(q.serve(Ok(8))), Some(8));
    }

    #[test]
    fn a_reused_slot_is_not_confused_with_its_old_ticket() {
        let mut q = queue();
        let old = q.push_back();
        assert_eq!(q.remove(old), Removed::Waiting);
        let new = q.push_back();
        assert_eq!(q.remove(old), Removed::Gone);
        q.serve(Ok(3)).unwrap();
        assert_eq!(outcome(&mut q, old), None);
        assert_eq!(outcome(&mut q, new), Some(Ok(3)));
    }

    #[test]
    fn the_waker_registered_last_is_returned() {
        let mut q = queue();
        let a = q.push_back();
        assert!(
            q.serve(Err("x")).unwrap().is_none(),
            "never polled: no waker"
        );
        let b = q.push_back();
        assert_eq!(q.poll(b, Waker::noop()), None);
        assert!(q.serve(Ok(1)).unwrap().is_some());
        let _ = outcome(&mut q, a);
    }

    #[test]
    fn fail_all_serves_every_waiter() {
        let mut q = queue();
        let ids: Vec<_> = (0..5).map(|_| q.push_back()).collect();
        let mut wakers = Vec::new();
        for &id in &ids {
            assert_eq!(q.poll(id, Waker::noop()), None);
        }
        q.fail_all(|| "closed", &mut wakers);
        assert_eq!(wakers.len(), 5);
        assert_eq!(q.waiting(), 0);
        for id in ids {
            assert_eq!(outcome(&mut q, id), Some(Err("closed")));
        }
    }

    #[test]
    fn the_gate_mirrors_the_queue_and_the_closed_flag() {
        let gate = Arc::new(Gate::default());
        let mut q: Q = Waiters::new(Arc::clone(&gate));
        assert!(gate.is_clear());
        let a = q.push_back();
        let b = q.push_back();
        assert!(!gate.is_clear());
        q.serve(Ok(1)).unwrap();
        q.remove(b);
        assert!(gate.is_clear(), "served and removed: nobody queued");
        assert_eq!(outcome(&mut q, a), Some(Ok(1)));
        gate.close();
        assert!(!gate.is_clear());
    }

    #[test]
    fn stale_entries_are_compacted() {
        let mut q = queue();
        let keep = q.push_back();
        for _ in 0..1000 {
            let id = q.push_back();
            q.remove(id);
        }
        assert!(q.queue.len() <= 2 * q.waiting() + 17, "{}", q.queue.len());
        q.serve(Ok(1)).unwrap();
        assert_eq!(outcome(&mut q, keep), Some(Ok(1)));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push,
        PushFront,
        Serve,
        Remove(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Push),
            1 => Just(Op::PushFront),
            3 => Just(Op::Serve),
            2 => (0usize..64).prop_map(Op::Remove),
        ]
    }

    proptest! {
        /// Against a model (a plain deque of live waiters): every value served goes to the
        /// waiter at the model's head, a removed waiter never gets one, and a value served to a
        /// waiter that is then removed comes back.
        #[test]
        fn matches_a_model(ops in proptest::collection::vec(op(), 1..200)) {
            let mut q = queue();
            let mut model: VecDeque<WaiterId> = VecDeque::new();
            let mut all = Vec::new();
            let mut served: Vec<(WaiterId, u32)> = Vec::new();
            let mut next = 0u32;
            for op in ops {
                match op {
                    Op::Push => { let id = q.push_back(); model.push_back(id); all.push(id); }
                    Op::PushFront => { let id = q.push_front(); model.push_front(id); all.push(id); }
                    Op::Serve => {
                        next += 1;
                        match model.pop_front() {
                            Some(head) => { q.serve(Ok(next)).unwrap(); served.push((head, next)); }
                            None => prop_assert_eq!(returned(q.serve(Ok(next))), Some(next)),
                        }
                    }
                    Op::Remove(i) if !all.is_empty() => {
                        let id = all[i % all.len()];
                        let got = q.remove(id);
                        if let Some(pos) = model.iter().position(|&m| m == id) {
                            model.remove(pos);
                            prop_assert_eq!(got, Removed::Waiting);
                        } else if let Some(pos) = served.iter().position(|&(s, _)| s == id) {
                            let (_, value) = served.remove(pos);
                            prop_assert_eq!(got, Removed::Served(Ok(value)));
                        } else {
                            prop_assert_eq!(got, Removed::Gone);
                        }
                    }
                    Op::Remove(_) => {}
                }
                prop_assert_eq!(q.waiting(), model.len());
            }
            for (id, value) in served {
                prop_assert_eq!(outcome(&mut q, id), Some(Ok(value)));
            }
        }
    }
}
