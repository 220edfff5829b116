//! Deadlines and quarantine ages: a min-heap with lazy deletion.
//!
//! Completing a request does not search the heap: its timer just becomes *stale*, and stale
//! timers are dropped when they reach the top or when they outnumber the live ones (then the
//! heap is rebuilt), so the heap never holds more than about twice the live timers.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Below this many stale timers the heap is never rebuilt.
const COMPACT_MIN: usize = 64;

#[derive(Debug, Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64, u32)>>,
    stale: usize,
}

impl Timers {
    /// Schedules a timer at `at` for the entry `(seq, tag)`.
    pub(super) fn schedule(&mut self, at: Instant, seq: u64, tag: u32) {
        self.heap.push(Reverse((at, seq, tag)));
    }

    /// One scheduled timer no longer matters (its entry moved on or is gone).
    pub(super) fn forget(&mut self, is_live: impl Fn(u64, u32, Instant) -> bool) {
        self.stale += 1;
        if self.stale > COMPACT_MIN && self.stale * 2 > self.heap.len() {
            self.heap
                .retain(|Reverse((at, seq, tag))| is_live(*seq, *tag, *at));
            self.stale = 0;
        }
    }

    /// The earliest live timer.
    pub(super) fn next(&mut self, is_live: impl Fn(u64, u32, Instant) -> bool) -> Option<Instant> {
        while let Some(Reverse((at, seq, tag))) = self.heap.peek().copied() {
            if is_live(seq, tag, at) {
                return Some(at);
            }
            self.heap.pop();
            self.stale = self.stale.saturating_sub(1);
        }
        None
    }

    /// Removes and returns the earliest live timer due at `now`.
    pub(super) fn pop_due(
        &mut self,
        now: Instant,
        is_live: impl Fn(u64, u32, Instant) -> bool,
    ) -> Option<(u64, u32)> {
        let at = self.next(is_live)?;
        if at > now {
            return None;
        }
        self.heap.pop().map(|Reverse((_, seq, tag))| (seq, tag))
    }

    pub(super) fn clear(&mut self) {
        self.heap.clear();
        self.stale = 0;
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::time::Duration;

    #[test]
    fn pops_in_deadline_order_and_skips_stale_timers() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.schedule(t0 + Duration::from_secs(3), 3, 0);
        timers.schedule(t0 + Duration::from_secs(1), 1, 0);
        timers.schedule(t0 + Duration::from_secs(2), 2, 0);
        let live: HashSet<u64> = [1, 3].into();
        let is_live = |seq, _, _| live.contains(&seq);
        assert_eq!(timers.next(is_live), Some(t0 + Duration::from_secs(1)));
        assert_eq!(timers.pop_due(t0, is_live), None);
        assert_eq!(
            timers.pop_due(t0 + Duration::from_secs(5), is_live),
            Some((1, 0))
        );
        // seq 2 is stale: skipped.
        assert_eq!(
            timers.pop_due(t0 + Duration::from_secs(5), is_live),
            Some((3, 0))
        );
        assert_eq!(timers.pop_due(t0 + Duration::from_secs(5), is_live), None);
    }

    #[test]
    fn stale_timers_are_compacted_away() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        for seq in 0..1_000 {
            timers.schedule(t0 + Duration::from_secs(60), seq, 0);
        }
        // Everything but the last ten completes.
        let is_live = |seq: u64, _, _| seq >= 990;
        for _ in 0..990 {
            timers.forget(is_live);
        }
        assert!(timers.len() < 200, "heap kept {} timers", timers.len());
        assert_eq!(timers.next(is_live), Some(t0 + Duration::from_secs(60)));
    }
}
