//! The thundering herd, simulated: many clients lose their server at the same instant;
//! when do they come back?
//!
//! Each simulated client runs a real [`Backoff`](crate::Backoff) from this crate, exactly
//! as the reconnecting connection does after a lost connection: it waits one delay, tries,
//! and repeats until an attempt finds the server back. An attempt that finds the server
//! down fails at once (a refused connect on loopback takes microseconds). Time is simulated,
//! so 10,000 clients take milliseconds, and a seed makes the result deterministic.
//!
//! The result is a histogram of connection attempts per window (100 ms by default), one
//! per jitter kind: the test suite checks its shape, `examples/herd.rs` prints it as CSV,
//! and `cargo xtask bench` draws it.
//!
//! With the defaults (1 s initial, ×2, 2 s cap; decorrelated with a 700 ms floor, see
//! [`HERD_DECORRELATED_BACKOFF`]), seed 1: no jitter puts all 10,000 clients in one window
//! at 1 s, 3 s and 5 s (peak/mean 13.7); full jitter peaks at 1,552 (1.76× the mean over
//! the busy span), decorrelated at 930 (1.66×), equal at 2,048 (3.1×), ±20 % at 2,546
//! (4.2×). Full jitter's peak is its first round, spread over only `[0, initial]`: in
//! this scenario every configuration tried with an initial delay under half the cap put
//! it above 2× the mean, while decorrelated needs its floor near a third of the cap.
//!
//! ```
//! use beamline_backoff::Jitter;
//! use beamline_backoff::herd::{HerdConfig, simulate};
//!
//! let herd = simulate(&HerdConfig::default(), Jitter::None)?;
//! // Without jitter, every client retries in the same window, every time.
//! assert_eq!(herd.peak(), 10_000);
//! let full = simulate(&HerdConfig::default(), Jitter::Full)?;
//! assert!(full.peak() < 2_000);
//! assert!(full.peak_to_mean() <= 2.0);
//! # Ok::<(), beamline_backoff::herd::HerdError>(())
//! ```

use std::fmt::Write as _;
use std::ops::Range;
use std::time::{Duration, Instant};

use crate::{BackoffConfig, BackoffConfigError, Jitter, SplitMix64};

/// The jitter kinds compared by [`simulate_all`], in column order.
pub const JITTER_KINDS: [Jitter; 5] = [
    Jitter::None,
    Jitter::Full,
    Jitter::Equal,
    Jitter::Decorrelated,
    Jitter::Proportional(0.2),
];

/// The backoff the herd runs with by default, for every kind but decorrelated: 1 s
/// initial, ×2, 2 s cap (its jitter is replaced by the kind being simulated). The cap is
/// below the 5 s outage on purpose: the busy span is then the outage plus at most one
/// capped delay, the regime where jitter decides whether the returning server is flooded.
pub const HERD_BACKOFF: BackoffConfig =
    BackoffConfig::exponential(Duration::from_secs(1), 2.0, Duration::from_secs(2));

/// The default backoff for [`Jitter::Decorrelated`]: the same 2 s cap, with a 700 ms floor.
///
/// Decorrelated jitter draws from `[floor, 3 · previous]` and clamps to the cap, so with
/// [`HERD_BACKOFF`]'s 1 s floor (3 s and more above a 2 s cap) four draws in five land
/// exactly on the cap and the clients move in lockstep again (peak/mean ≈ 9.5 in this
/// scenario). Its floor has to sit near a third of the cap for it to spread clients.
pub const HERD_DECORRELATED_BACKOFF: BackoffConfig =
    BackoffConfig::exponential(Duration::from_millis(700), 2.0, Duration::from_secs(2));

/// The scenario: how many clients, how long the server is gone, how the histogram is cut.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::exhaustive_structs)] // closed: a scenario written as a struct literal, every field meant to be set
pub struct HerdConfig {
    /// How many clients lose the server at t = 0.
    pub clients: usize,
    /// The server is back at this time; an attempt at or after it succeeds.
    pub outage: Duration,
    /// The histogram's bin width. Non-zero.
    pub window: Duration,
    /// Seeds every client's generator (each client gets its own stream).
    pub seed: u64,
    /// The policy each client runs for every kind but decorrelated; its jitter is
    /// replaced by the simulated kind.
    pub backoff: BackoffConfig,
    /// The policy for [`Jitter::Decorrelated`] (see [`HERD_DECORRELATED_BACKOFF`] for why
    /// it differs).
    pub decorrelated: BackoffConfig,
}

impl HerdConfig {
    /// The policy simulated for `jitter`: [`decorrelated`](Self::decorrelated) or
    /// [`backoff`](Self::backoff), with `jitter` set.
    pub fn backoff_for(&self, jitter: Jitter) -> BackoffConfig {
        let base = match jitter {
            Jitter::Decorrelated => &self.decorrelated,
            _ => &self.backoff,
        };
        base.clone().jitter(jitter)
    }
}

impl Default for HerdConfig {
    /// 10,000 clients, a 5 s outage, 100 ms windows, seed 1, [`HERD_BACKOFF`] and
    /// [`HERD_DECORRELATED_BACKOFF`].
    fn default() -> Self {
        Self {
            clients: 10_000,
            outage: Duration::from_secs(5),
            window: Duration::from_millis(100),
            seed: 1,
            backoff: HERD_BACKOFF,
            decorrelated: HERD_DECORRELATED_BACKOFF,
        }
    }
}

/// A scenario that cannot be simulated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HerdError {
    /// The backoff settings are invalid.
    #[error(transparent)]
    Backoff(#[from] BackoffConfigError),
    /// A zero-width window.
    #[error("herd: the window must be greater than zero")]
    ZeroWindow,
    /// The histogram would have more than [`MAX_WINDOWS`] windows (outage plus the cap,
    /// over the window width): widen the window.
    #[error(
        "herd: {windows} windows needed, more than the limit of {MAX_WINDOWS}; widen the window"
    )]
    TooManyWindows {
        /// How many windows the scenario needs.
        windows: u128,
    },
}

/// The most windows one histogram may have.
pub const MAX_WINDOWS: u128 = 1_000_000;

/// Connection attempts per window for one jitter kind.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HerdHistogram {
    /// The jitter simulated.
    pub jitter: Jitter,
    /// The bin width.
    pub window: Duration,
    /// `attempts[i]`: attempts made in `[i·window, (i+1)·window)`.
    pub attempts: Vec<u32>,
    /// How many clients had reconnected by the end (all of them, unless the backoff has
    /// limits that made some give up).
    pub reconnected: usize,
}

impl HerdHistogram {
    /// All attempts.
    pub fn total(&self) -> u64 {
        self.attempts.iter().map(|&n| u64::from(n)).sum()
    }

    /// The busiest window's count.
    pub fn peak(&self) -> u32 {
        self.attempts.iter().copied().max().unwrap_or(0)
    }

    /// The windows from the first to the last one holding an attempt (empty if none).
    pub fn busy_span(&self) -> Range<usize> {
        let first = self.attempts.iter().position(|&n| n > 0);
        let last = self.attempts.iter().rposition(|&n| n > 0);
        match (first, last) {
            (Some(first), Some(last)) => first..last + 1,
            _ => 0..0,
        }
    }

    /// Mean attempts per window over the busy span (0 if there were none).
    pub fn mean_busy(&self) -> f64 {
        let span = self.busy_span().len();
        if span == 0 {
            return 0.0;
        }
        self.total() as f64 / span as f64
    }

    /// [`peak`](Self::peak) over [`mean_busy`](Self::mean_busy): 1.0 is perfectly spread;
    /// the span length is the worst (everyone in one window each time).
    pub fn peak_to_mean(&self) -> f64 {
        let mean = self.mean_busy();
        if mean == 0.0 {
            return 0.0;
        }
        f64::from(self.peak()) / mean
    }
}

/// Simulates `config` with every client using `jitter`.
///
/// # Errors
/// [`HerdError`] for an invalid backoff, a zero window, or a histogram too large.
pub fn simulate(config: &HerdConfig, jitter: Jitter) -> Result<HerdHistogram, HerdError> {
    if config.window.is_zero() {
        return Err(HerdError::ZeroWindow);
    }
    let backoff = config.backoff_for(jitter);
    backoff.validate()?;
    let horizon = config.outage.saturating_add(backoff.max);
    let windows = horizon.as_nanos() / config.window.as_nanos() + 1;
    if windows > MAX_WINDOWS {
        return Err(HerdError::TooManyWindows { windows });
    }
    // `windows` is at most MAX_WINDOWS, so every time that lands in a window fits u64 ns.
    let window_ns = u64::try_from(config.window.as_nanos()).unwrap_or(u64::MAX);
    // usize is at least 32 bits and `windows` is at most MAX_WINDOWS.
    let mut attempts = vec![0u32; usize::try_from(windows).unwrap_or(usize::MAX)];
    let mut seeds = SplitMix64::new(config.seed);
    let epoch = Instant::now();
    let mut reconnected = 0;
    for _ in 0..config.clients {
        let mut policy = backoff.build_seeded(seeds.next())?;
        let mut t = Duration::ZERO;
        // Lost at t = 0: wait, try, repeat until the server is back or the policy gives up.
        while let Ok(delay) = policy.next_delay(epoch + t) {
            t += delay;
            let ns = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
            let bin = usize::try_from(ns / window_ns).unwrap_or(usize::MAX);
            if let Some(slot) = attempts.get_mut(bin) {
                *slot = slot.saturating_add(1);
            }
            if t >= config.outage {
                reconnected += 1;
                break;
            }
        }
    }
    let used = attempts
        .iter()
        .rposition(|&n| n > 0)
        .map_or(0, |last| last + 1);
    attempts.truncate(used);
    Ok(HerdHistogram {
        jitter,
        window: config.window,
        attempts,
        reconnected,
    })
}

/// [`simulate`] for each of [`JITTER_KINDS`], in that order.
///
/// # Errors
/// As [`simulate`].
pub fn simulate_all(config: &HerdConfig) -> Result<Vec<HerdHistogram>, HerdError> {
    JITTER_KINDS.iter().map(|&j| simulate(config, j)).collect()
}

/// The histograms as CSV: a `window_start_ms` column, then one column per histogram named
/// after its jitter kind, one row per window up to the longest histogram.
pub fn to_csv(histograms: &[HerdHistogram]) -> String {
    let mut out = String::from("window_start_ms");
    for h in histograms {
        out.push(',');
        out.push_str(h.jitter.name());
    }
    out.push('\n');
    let rows = histograms
        .iter()
        .map(|h| h.attempts.len())
        .max()
        .unwrap_or(0);
    let window = histograms.first().map_or(Duration::ZERO, |h| h.window);
    for row in 0..rows {
        let start = window.as_millis() * row as u128;
        let _ = write!(out, "{start}");
        for h in histograms {
            let _ = write!(out, ",{}", h.attempts.get(row).copied().unwrap_or(0));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(clients: usize) -> HerdConfig {
        HerdConfig {
            clients,
            ..HerdConfig::default()
        }
    }

    #[test]
    fn bad_scenarios_are_typed_errors() {
        let zero = HerdConfig {
            window: Duration::ZERO,
            ..small(1)
        };
        assert_eq!(simulate(&zero, Jitter::Full), Err(HerdError::ZeroWindow));
        let bad_backoff = HerdConfig {
            backoff: BackoffConfig::constant(Duration::ZERO),
            ..small(1)
        };
        assert_eq!(
            simulate(&bad_backoff, Jitter::Full),
            Err(HerdError::Backoff(BackoffConfigError::ZeroInitial))
        );
        let huge = HerdConfig {
            window: Duration::from_nanos(1),
            ..small(1)
        };
        assert!(matches!(
            simulate(&huge, Jitter::Full),
            Err(HerdError::TooManyWindows { .. })
        ));
    }

    #[test]
    fn no_clients_no_attempts() {
        let h = simulate(&small(0), Jitter::Full).unwrap();
        assert_eq!(h.total(), 0);
        assert_eq!(h.peak(), 0);
        assert_eq!(h.busy_span(), 0..0);
        assert_eq!(h.mean_busy(), 0.0);
        assert_eq!(h.peak_to_mean(), 0.0);
    }

    #[test]
    fn a_client_without_jitter_follows_its_schedule() {
        // 1 s, 2 s, 2 s: attempts at 1, 3 and 5 s; the server is back at 5 s.
        let h = simulate(&small(1), Jitter::None).unwrap();
        let mut want = vec![0; 51];
        for bin in [10, 30, 50] {
            want[bin] = 1;
        }
        assert_eq!(h.attempts, want);
        assert_eq!(h.reconnected, 1);
        assert_eq!(h.busy_span(), 10..51);
    }

    #[test]
    fn decorrelated_uses_its_own_policy() {
        let config = HerdConfig::default();
        assert_eq!(
            config.backoff_for(Jitter::Decorrelated),
            HERD_DECORRELATED_BACKOFF.jitter(Jitter::Decorrelated)
        );
        assert_eq!(config.backoff_for(Jitter::Full), HERD_BACKOFF);
    }

    #[test]
    fn limits_can_leave_clients_offline() {
        let config = HerdConfig {
            backoff: HERD_BACKOFF.max_attempts(2),
            ..small(10)
        };
        let h = simulate(&config, Jitter::None).unwrap();
        assert_eq!(h.reconnected, 0);
        assert_eq!(h.total(), 20);
    }

    #[test]
    fn csv_has_one_column_per_kind_and_one_row_per_window() {
        let all = simulate_all(&small(50)).unwrap();
        let csv = to_csv(&all);
        let mut lines = csv.lines();
        assert_eq!(
            lines.next(),
            Some("window_start_ms,none,full,equal,decorrelated,proportional")
        );
        let rows: Vec<_> = lines.collect();
        let longest = all.iter().map(|h| h.attempts.len()).max().unwrap();
        assert_eq!(rows.len(), longest);
        assert!(rows[1].starts_with("100,"));
        let total: u64 = rows
            .iter()
            .map(|r| r.split(',').nth(2).unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(total, all[1].total());
    }
}
