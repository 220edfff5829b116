//! FIFO mode storage: requests in wire order, each named by its position (`seq`).

use std::collections::VecDeque;
use std::time::Instant;

use super::entry::Entry;

pub(super) struct FifoQueue<R, T> {
    /// `entries[i]` is request `front_seq + i`; replies match the front.
    entries: VecDeque<Entry<R, T>>,
    front_seq: u64,
    /// The first request that has not been transmitted yet (or is past the queue's end).
    next_send: u64,
}

impl<R, T> FifoQueue<R, T> {
    pub(super) fn new() -> Self {
        FifoQueue {
            entries: VecDeque::new(),
            front_seq: 0,
            next_send: 0,
        }
    }

    fn end_seq(&self) -> u64 {
        self.front_seq + self.entries.len() as u64
    }

    /// Appends a request and returns its position.
    pub(super) fn push(&mut self, entry: Entry<R, T>) -> u64 {
        let seq = self.end_seq();
        self.entries.push_back(entry);
        seq
    }

    pub(super) fn get_mut(&mut self, seq: u64) -> Option<&mut Entry<R, T>> {
        let index = usize::try_from(seq.checked_sub(self.front_seq)?).ok()?;
        self.entries.get_mut(index)
    }

    pub(super) fn front_seq(&self) -> Option<u64> {
        (!self.entries.is_empty()).then_some(self.front_seq)
    }

    pub(super) fn pop_front(&mut self) {
        if self.entries.pop_front().is_some() {
            self.front_seq += 1;
            self.next_send = self.next_send.max(self.front_seq);
        }
    }

    /// Pops the `Void` entries at the front (they expect no reply) and returns how many.
    pub(super) fn trim(&mut self) -> usize {
        let mut popped = 0;
        while matches!(self.entries.front(), Some(Entry::Void)) {
            self.pop_front();
            popped += 1;
        }
        popped
    }

    /// The position of the next request to transmit, in order, skipping `Void` entries.
    pub(super) fn next_queued(&mut self) -> Option<u64> {
        while self.next_send < self.end_seq() {
            let seq = self.next_send;
            self.next_send += 1;
            if self.get_mut(seq).is_some_and(|e| e.is_queued()) {
                return Some(seq);
            }
        }
        None
    }

    pub(super) fn has_unsent(&self) -> bool {
        self.next_send < self.end_seq()
    }

    pub(super) fn timer_is_live(&self, seq: u64, at: Instant) -> bool {
        seq.checked_sub(self.front_seq)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.entries.get(i))
            .is_some_and(|e| e.timer() == Some(at))
    }

    pub(super) fn drain(&mut self) -> impl Iterator<Item = (u64, Entry<R, T>)> + '_ {
        let front = self.front_seq;
        self.front_seq = self.end_seq();
        self.next_send = self.front_seq;
        self.entries
            .drain(..)
            .enumerate()
            .map(move |(i, e)| (front + i as u64, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued() -> Entry<(), ()> {
        Entry::Queued {
            request: (),
            waiter: (),
            deadline: None,
        }
    }

    #[test]
    fn positions_survive_pops_and_voids_are_skipped() {
        let mut q = FifoQueue::new();
        assert_eq!(q.push(queued()), 0);
        assert_eq!(q.push(Entry::Void), 1);
        assert_eq!(q.push(queued()), 2);
        assert_eq!(q.next_queued(), Some(0));
        assert_eq!(q.next_queued(), Some(2), "the void is never transmitted");
        assert_eq!(q.next_queued(), None);
        q.pop_front();
        assert_eq!(q.trim(), 1);
        assert_eq!(q.front_seq(), Some(2));
        assert!(q.get_mut(1).is_none());
        assert!(q.get_mut(2).is_some());
        assert_eq!(q.push(queued()), 3);
        assert_eq!(q.next_queued(), Some(3));
    }
}
