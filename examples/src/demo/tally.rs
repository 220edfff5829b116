//! The demo's live counters: shared by every client's tasks, read by the progress line and
//! the summary.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use beamline::reconnect::State;
use tokio::sync::watch;
use tokio::time::Instant;

/// The width of one window of the reconnect histogram.
pub const WINDOW: Duration = Duration::from_millis(100);
/// How many wrong replies are kept word for word.
const KEPT: usize = 5;

/// Counters of one phase, from its epoch on.
#[derive(Debug)]
pub(crate) struct Tally {
    epoch: Instant,
    pub(crate) requests: AtomicU64,
    pub(crate) ok: AtomicU64,
    /// GETs answered "no such key" because the key was stored in the server that was
    /// killed (kv keeps its keys in memory): a right answer, counted apart.
    pub(crate) lost_with_server: AtomicU64,
    /// Clients whose connection is up now.
    pub(crate) connected: AtomicU64,
    pub(crate) attempts: AtomicU64,
    windows: Vec<AtomicU64>,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    pub(crate) wrong: AtomicU64,
    wrong_kept: Mutex<Vec<String>>,
}

impl Tally {
    /// Counters from `epoch`, with reconnect windows for `span`.
    pub(crate) fn new(epoch: Instant, span: Duration, connected: u64) -> Tally {
        let windows = (span.as_millis() / WINDOW.as_millis()) as usize + 1;
        Tally {
            epoch,
            requests: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            lost_with_server: AtomicU64::new(0),
            connected: AtomicU64::new(connected),
            attempts: AtomicU64::new(0),
            windows: (0..windows).map(|_| AtomicU64::new(0)).collect(),
            errors: Mutex::new(BTreeMap::new()),
            wrong: AtomicU64::new(0),
            wrong_kept: Mutex::new(Vec::new()),
        }
    }

    /// `n` connect attempts made now.
    pub(crate) fn attempts(&self, n: u64) {
        self.attempts.fetch_add(n, Relaxed);
        let index = (self.epoch.elapsed().as_millis() / WINDOW.as_millis()) as usize;
        // An attempt after the last window (during the tear-down) is counted, not drawn.
        if let Some(window) = self.windows.get(index) {
            window.fetch_add(n, Relaxed);
        }
    }

    /// A request that ended with an error of this kind.
    pub(crate) fn error(&self, kind: &'static str) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        *errors.entry(kind).or_default() += 1;
    }

    /// A reply that is not the request's own: the invariant the demo must never see broken.
    pub(crate) fn wrong_reply(&self, what: String) {
        self.wrong.fetch_add(1, Relaxed);
        let mut kept = self.wrong_kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < KEPT {
            kept.push(what);
        }
    }

    pub(crate) fn errors(&self) -> BTreeMap<String, u64> {
        let errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        errors.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
    }

    pub(crate) fn wrong_kept(&self) -> Vec<String> {
        self.wrong_kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Attempts per window from the epoch on.
    pub(crate) fn windows(&self) -> Vec<u64> {
        self.windows.iter().map(|w| w.load(Relaxed)).collect()
    }
}

/// Watches one client's connection and counts its connect attempts and whether it is up.
///
/// The reconnecting connection publishes its state on a watch channel, which may skip
/// states a reader is too slow to see; the attempt numbers it carries (counted since the
/// backoff last reset) make the count exact anyway: `Connecting { attempt: n }` means `n`
/// attempts were started, `BackingOff { attempt: n }` that `n - 1` were. (Only an
/// attempt started just before the client closes for good can go unseen.)
pub(crate) async fn watch_attempts(mut states: watch::Receiver<State>, tally: &Tally) {
    let mut counted = 0u32;
    let mut up = true;
    while states.changed().await.is_ok() {
        let state = states.borrow_and_update().clone();
        if state.is_connected() != up {
            up = state.is_connected();
            if up {
                tally.connected.fetch_add(1, Relaxed);
            } else {
                tally.connected.fetch_sub(1, Relaxed);
            }
        }
        let started = match state {
            State::Connecting { attempt } => attempt,
            State::BackingOff { attempt, .. } => attempt.saturating_sub(1),
            State::Closed(_) => break,
            _ => continue,
        };
        if started < counted {
            // The backoff was reset (the connection stayed up its stable period).
            counted = 0;
        }
        if started > counted {
            tally.attempts(u64::from(started - counted));
            counted = started;
        }
    }
    if up {
        tally.connected.fetch_sub(1, Relaxed);
    }
}

/// Peak window and mean per window over the busy span (the first window with an attempt
/// to the last), the herd simulation's definitions.
pub fn peak_and_mean(windows: &[u64]) -> (u64, f64) {
    let peak = windows.iter().copied().max().unwrap_or(0);
    let first = windows.iter().position(|&a| a > 0);
    let last = windows.iter().rposition(|&a| a > 0);
    let mean = match (first, last) {
        (Some(f), Some(l)) => windows[f..=l].iter().sum::<u64>() as f64 / (l - f + 1) as f64,
        _ => 0.0,
    };
    (peak, mean)
}

#[cfg(test)]
mod tests {
    use beamline::reconnect::CloseReason;

    use super::*;

    #[test]
    fn peak_and_mean_over_the_busy_span() {
        assert_eq!(peak_and_mean(&[0, 4, 0, 2, 0]), (4, 2.0));
        assert_eq!(peak_and_mean(&[0, 0]), (0, 0.0));
        assert_eq!(peak_and_mean(&[]), (0, 0.0));
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_are_counted_exactly_even_when_states_are_skipped() {
        let tally = Tally::new(Instant::now(), Duration::from_secs(1), 1);
        let (tx, rx) = watch::channel(State::Connected);
        let at = Instant::now();
        let steps = [
            State::BackingOff {
                attempt: 1,
                until: at,
            },
            State::Connecting { attempt: 1 },
            // Attempt 2 was started and failed unseen: the next number tells.
            State::BackingOff {
                attempt: 3,
                until: at,
            },
            State::Connecting { attempt: 3 },
            State::Connected,
            // Lost again after a stable period: the numbers start over.
            State::BackingOff {
                attempt: 1,
                until: at,
            },
            State::Connecting { attempt: 1 },
            State::Closed(CloseReason::Requested),
        ];
        let watcher = watch_attempts(rx, &tally);
        let feed = async {
            for state in steps {
                tx.send_replace(state);
                // Let the watcher see it (join! may poll the feed first).
                for _ in 0..4 {
                    tokio::task::yield_now().await;
                }
            }
        };
        tokio::join!(watcher, feed);
        assert_eq!(tally.attempts.load(Relaxed), 4);
        assert_eq!(tally.windows()[0], 4);
        assert_eq!(tally.connected.load(Relaxed), 0, "closed: not connected");
    }
}
