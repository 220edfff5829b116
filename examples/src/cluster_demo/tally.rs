//! The cluster demo's live counters: requests answered per node per 100 ms window, errors
//! by kind, and the client's first write on the dead primary's slots.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::cluster_load::{End, Outcome};

/// The width of one window of the CSV.
pub const WINDOW: Duration = Duration::from_millis(100);

/// Counters shared by every caller (through the observer) and the progress line.
#[derive(Debug)]
pub(crate) struct Tally {
    /// Every node's address, in the cluster's start order: the columns.
    pub(crate) nodes: Vec<String>,
    /// Per window: answers per node, then errors (one more column).
    windows: Vec<Vec<AtomicU64>>,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    /// Replies not their own, error replies, hangs: must stay 0.
    pub(crate) broken: AtomicU64,
    /// Set just before the kill: when (from the epoch), and the slots the victim served.
    kill: OnceLock<(Duration, Vec<bool>)>,
    /// 1 + ms from the epoch at which the first write started after the kill on the
    /// victim's slots succeeded (0: not yet).
    first_write_ms: AtomicU64,
}

impl Tally {
    /// Counters for `nodes` over `span` (and the deadline beyond it).
    pub(crate) fn new(nodes: Vec<String>, span: Duration) -> Tally {
        let count = (span.as_millis() / WINDOW.as_millis()) as usize + 1;
        let columns = nodes.len() + 1;
        Tally {
            windows: (0..count)
                .map(|_| (0..columns).map(|_| AtomicU64::new(0)).collect())
                .collect(),
            nodes,
            errors: Mutex::new(BTreeMap::new()),
            broken: AtomicU64::new(0),
            kill: OnceLock::new(),
            first_write_ms: AtomicU64::new(0),
        }
    }

    /// The index of the node at `addr`.
    pub(crate) fn node_index(&self, addr: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n == addr)
    }

    /// The kill is about to happen `at` (from the epoch); `victim_slots` are the slots its
    /// primary served.
    pub(crate) fn killing(&self, at: Duration, victim_slots: Vec<bool>) {
        let _ = self.kill.set((at, victim_slots));
    }

    /// One request ended; `node`: the node the client's slot map names for its slot now
    /// (the one that answered, unless the map moved meanwhile).
    pub(crate) fn record(&self, o: &Outcome, node: Option<usize>) {
        let window = (o.ended().as_millis() / WINDOW.as_millis()) as usize;
        let column = match o.end {
            End::Ok => node,
            End::Failed { kind, .. } => {
                let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
                *errors.entry(kind).or_default() += 1;
                Some(self.nodes.len())
            }
            End::Broken => {
                self.broken.fetch_add(1, Relaxed);
                Some(self.nodes.len())
            }
        };
        if let (Some(column), Some(row)) = (column, self.windows.get(window)) {
            row[column].fetch_add(1, Relaxed);
        }
        if o.end == End::Ok
            && o.kind.writes()
            && let Some((at, slots)) = self.kill.get()
            && o.started >= *at
            && slots[usize::from(o.slot)]
        {
            let ms = o.ended().as_millis() as u64 + 1;
            let _ = self
                .first_write_ms
                .fetch_update(Relaxed, Relaxed, |v| (v == 0 || ms < v).then_some(ms));
        }
    }

    /// When the first write after the kill on the victim's slots succeeded, from the kill.
    pub(crate) fn first_write_after_kill(&self) -> Option<Duration> {
        let ms = self.first_write_ms.load(Relaxed).checked_sub(1)?;
        let (at, _) = self.kill.get()?;
        Some(Duration::from_millis(ms).saturating_sub(*at))
    }

    /// Errors by kind so far.
    pub(crate) fn errors(&self) -> BTreeMap<String, u64> {
        let errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        errors.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
    }

    /// Answers per node over windows `from..to` (per second when the range is 10 windows).
    pub(crate) fn per_node(&self, from: usize, to: usize) -> Vec<u64> {
        let mut sums = vec![0; self.nodes.len()];
        for row in self.windows.iter().take(to).skip(from) {
            for (sum, count) in sums.iter_mut().zip(row) {
                *sum += count.load(Relaxed);
            }
        }
        sums
    }

    /// Every window: answers per node, then errors.
    pub(crate) fn rows(&self) -> Vec<Vec<u64>> {
        self.windows
            .iter()
            .map(|row| row.iter().map(|c| c.load(Relaxed)).collect())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster_load::OpKind;

    fn outcome(kind: OpKind, slot: u16, started_ms: u64, end: End) -> Outcome {
        Outcome {
            kind,
            slot,
            started: Duration::from_millis(started_ms),
            took: Duration::from_millis(5),
            end,
        }
    }

    #[test]
    fn answers_land_in_their_node_and_window_and_errors_in_the_last_column() {
        let tally = Tally::new(vec!["a".into(), "b".into()], Duration::from_secs(1));
        assert_eq!(tally.node_index("b"), Some(1));
        tally.record(&outcome(OpKind::Get, 1, 10, End::Ok), Some(0));
        tally.record(&outcome(OpKind::Set, 1, 150, End::Ok), Some(1));
        let failed = End::Failed {
            kind: "timeout",
            maybe_applied: true,
        };
        tally.record(&outcome(OpKind::Incr, 1, 160, failed), Some(1));
        let rows = tally.rows();
        assert_eq!(rows[0], [1, 0, 0]);
        assert_eq!(rows[1], [0, 1, 1]);
        assert_eq!(tally.per_node(0, 10), [1, 1]);
        assert_eq!(tally.errors()["timeout"], 1);
    }

    #[test]
    fn the_first_write_after_the_kill_on_the_victims_slots() {
        let tally = Tally::new(vec!["a".into()], Duration::from_secs(2));
        let mut slots = vec![false; 16_384];
        slots[7] = true;
        tally.record(&outcome(OpKind::Set, 7, 100, End::Ok), Some(0));
        assert_eq!(tally.first_write_after_kill(), None, "no kill yet");
        tally.killing(Duration::from_millis(200), slots);
        // A read, another slot, and a write started before the kill do not count.
        tally.record(&outcome(OpKind::Get, 7, 300, End::Ok), Some(0));
        tally.record(&outcome(OpKind::Set, 8, 300, End::Ok), Some(0));
        tally.record(&outcome(OpKind::Set, 7, 150, End::Ok), Some(0));
        assert_eq!(tally.first_write_after_kill(), None);
        tally.record(&outcome(OpKind::Incr, 7, 900, End::Ok), Some(0));
        tally.record(&outcome(OpKind::Set, 7, 700, End::Ok), Some(0));
        assert_eq!(
            tally.first_write_after_kill(),
            Some(Duration::from_millis(505))
        );
    }
}
