//! Id mode storage: an O(1) table from tag to entry, and the queue of things to transmit.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use super::entry::Entry;

/// A request's slot: `seq` tells this request apart from an earlier or later one that used
/// the same tag.
pub(super) struct Slot<R, T> {
    pub(super) seq: u64,
    pub(super) entry: Entry<R, T>,
}

/// Something waiting to be transmitted, named by tag *and* seq so that an item that went
/// stale (its request was cancelled, its tag reused) is recognised and skipped.
#[derive(Debug, Clone, Copy)]
pub(super) enum Pending {
    Request { tag: u32, seq: u64 },
    Cancel { tag: u32, seq: u64 },
}

pub(super) struct IdTable<R, T> {
    slots: HashMap<u32, Slot<R, T>, BuildHasherDefault<IdHasher>>,
    pending: VecDeque<Pending>,
    /// The next tag to try: tags are handed out in order and wrap at `max_tag`.
    next_tag: u32,
    max_tag: u32,
}

impl<R, T> IdTable<R, T> {
    pub(super) fn new(max_tag: u32) -> Self {
        IdTable {
            slots: HashMap::default(),
            pending: VecDeque::new(),
            next_tag: 0,
            max_tag,
        }
    }

    /// The next free tag after the last one handed out, wrapping at `max_tag` and skipping
    /// every tag still in the table (in flight or quarantined). `None` when all are taken.
    pub(super) fn allocate(&mut self) -> Option<u32> {
        if self.slots.len() as u64 > u64::from(self.max_tag) {
            return None;
        }
        // Terminates: fewer than max_tag + 1 tags are taken, so a free one comes up within
        // (taken + 1) steps.
        loop {
            let tag = self.next_tag;
            self.next_tag = if tag >= self.max_tag { 0 } else { tag + 1 };
            if !self.slots.contains_key(&tag) {
                return Some(tag);
            }
        }
    }

    pub(super) fn insert(&mut self, tag: u32, seq: u64, entry: Entry<R, T>) {
        self.slots.insert(tag, Slot { seq, entry });
        self.pending.push_back(Pending::Request { tag, seq });
    }

    /// The entry of request `(tag, seq)`, if it is still in the table.
    pub(super) fn get_mut(&mut self, tag: u32, seq: u64) -> Option<&mut Entry<R, T>> {
        self.slots
            .get_mut(&tag)
            .filter(|slot| slot.seq == seq)
            .map(|slot| &mut slot.entry)
    }

    /// The seq of whatever request holds `tag` now.
    pub(super) fn seq_of(&self, tag: u32) -> Option<u64> {
        self.slots.get(&tag).map(|slot| slot.seq)
    }

    pub(super) fn remove(&mut self, tag: u32) {
        self.slots.remove(&tag);
    }

    /// Queues a cancel ahead of the requests waiting to be written: the peer should stop
    /// wasted work as soon as possible.
    pub(super) fn push_cancel(&mut self, tag: u32, seq: u64) {
        self.pending.push_front(Pending::Cancel { tag, seq });
    }

    pub(super) fn pop_pending(&mut self) -> Option<Pending> {
        self.pending.pop_front()
    }

    pub(super) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Whether the timer `(seq, tag, at)` is still the timer of a request in the table.
    pub(super) fn timer_is_live(&self, seq: u64, tag: u32, at: Instant) -> bool {
        self.slots
            .get(&tag)
            .is_some_and(|slot| slot.seq == seq && slot.entry.timer() == Some(at))
    }

    pub(super) fn is_abandoned(&self, tag: u32, seq: u64) -> bool {
        self.slots
            .get(&tag)
            .is_some_and(|slot| slot.seq == seq && slot.entry.is_abandoned())
    }

    pub(super) fn drain(&mut self) -> impl Iterator<Item = (u32, Slot<R, T>)> + '_ {
        self.pending.clear();
        self.slots.drain()
    }
}

/// A hasher for `u32` tags: a Fibonacci multiply, so consecutive tags spread over the
/// table's buckets and control bytes alike. Tags are not attacker-chosen keys here (the
/// allocator picks them; a peer's reply only looks one up), so no keyed hashing is needed.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(max_tag: u32) -> IdTable<(), ()> {
        IdTable::new(max_tag)
    }

    fn occupy(t: &mut IdTable<(), ()>, tag: u32) {
        t.insert(tag, u64::from(tag), Entry::Abandoned { until: None });
    }

    #[test]
    fn tags_come_in_order_and_wrap_at_max_tag() {
        let mut t = table(3);
        let tags: Vec<u32> = (0..6).map(|_| t.allocate().unwrap()).collect();
        assert_eq!(tags, [0, 1, 2, 3, 0, 1]);
    }

    #[test]
    fn wraparound_skips_tags_still_in_the_table() {
        let mut t = table(4);
        for tag in [0, 2, 3] {
            occupy(&mut t, tag);
        }
        t.next_tag = 2;
        assert_eq!(t.allocate(), Some(4));
        occupy(&mut t, 4);
        assert_eq!(t.allocate(), Some(1));
        occupy(&mut t, 1);
        assert_eq!(t.allocate(), None, "every tag is taken");
        t.remove(3);
        assert_eq!(t.allocate(), Some(3));
    }

    #[test]
    fn a_slot_is_found_only_with_its_own_seq() {
        let mut t = table(u32::MAX);
        t.insert(5, 77, Entry::Abandoned { until: None });
        assert!(t.get_mut(5, 77).is_some());
        assert!(t.get_mut(5, 78).is_none());
        assert!(t.is_abandoned(5, 77));
        assert!(!t.is_abandoned(5, 1));
    }

    #[test]
    fn the_hasher_spreads_consecutive_tags() {
        let hash = |n: u32| {
            let mut h = IdHasher::default();
            h.write_u32(n);
            h.finish()
        };
        // The top 7 bits (hashbrown's control byte) differ across a run of tags.
        let tops: std::collections::HashSet<u64> = (0..64).map(|n| hash(n) >> 57).collect();
        assert!(
            tops.len() > 32,
            "only {} distinct control bytes",
            tops.len()
        );
    }
}
