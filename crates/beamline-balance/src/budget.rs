//! The retry budget (Finagle's `RetryBudget`), sans-IO: retries may add at most a share of
//! the requests, plus a small steady allowance, over a sliding window.

use std::time::{Duration, Instant};

/// Fixed-point scale of the token arithmetic: a retry costs `SCALE`, a request earns
/// `round(ratio × SCALE)`. The ratio's error is at most half a millionth of a retry per
/// request, whatever the ratio (no truncated reciprocal: tower#857/#863).
const SCALE: i64 = 1_000_000;
/// Slots of the sliding window: deposits expire one slot (a tenth of the window) at a time.
const SLOTS: usize = 10;

/// How many retries a [`RetryBudget`] allows.
///
/// | setting | default |
/// |---|---|
/// | [`ratio`](Self::ratio) | 0.2: retries add at most 20% to the requests |
/// | [`min_per_sec`](Self::min_per_sec) | 10 retries a second, whatever the traffic |
/// | [`window`](Self::window) | 10 s: a request's deposit (and a retry's withdrawal) counts for this long |
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetConfig {
    ratio: f64,
    min_per_sec: u32,
    window: Duration,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            ratio: 0.2,
            min_per_sec: 10,
            window: Duration::from_secs(10),
        }
    }
}

impl BudgetConfig {
    /// The defaults (see the table).
    pub fn new() -> BudgetConfig {
        BudgetConfig::default()
    }

    /// The share of requests that may be retried (`0.2`: one retry per five requests).
    /// At least 0; above 1 allows more retries than requests.
    #[must_use]
    pub fn ratio(mut self, ratio: f64) -> Self {
        self.ratio = ratio;
        self
    }

    /// Retries allowed per second on top of the ratio, so a client that sends little can
    /// still retry (0: none).
    #[must_use]
    pub fn min_per_sec(mut self, n: u32) -> Self {
        self.min_per_sec = n;
        self
    }

    /// How long a request's deposit, and a retry's withdrawal, counts (at least 10 ms).
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// The most retries allowed over one window for `requests` requests made in it.
    pub fn allowance(&self, requests: u64) -> f64 {
        self.ratio * requests as f64 + f64::from(self.min_per_sec) * self.window.as_secs_f64()
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`BudgetConfigError`] naming the setting that cannot work.
    pub fn validate(&self) -> Result<(), BudgetConfigError> {
        if !(self.ratio >= 0.0 && self.ratio <= 1000.0) {
            return Err(BudgetConfigError::Ratio(self.ratio));
        }
        if self.window < Duration::from_millis(10) {
            return Err(BudgetConfigError::Window(self.window));
        }
        Ok(())
    }
}

/// A [`BudgetConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetConfigError {
    /// The ratio is negative, above 1000, or not a number.
    #[error("retry budget: ratio must be within [0, 1000], not {0}")]
    Ratio(f64),
    /// The window is shorter than 10 ms.
    #[error("retry budget: the window must be at least 10 ms, not {0:?}")]
    Window(Duration),
}

/// A Finagle-style retry budget: every request deposits `ratio` of a retry, every retry
/// withdraws one, and a reserve of `min_per_sec × window` retries is always there; deposits
/// and withdrawals expire after the window.
///
/// # Guarantees
/// Over any window, the retries it allows number at most `ratio × requests +
/// min_per_sec × window` of that window (give or take the deposits of one slot, a tenth of
/// the window, expiring together); `ratio` is applied without truncation.
///
/// # Examples
/// ```
/// use std::time::{Duration, Instant};
/// use beamline_balance::{BudgetConfig, RetryBudget};
///
/// let now = Instant::now();
/// let mut budget = RetryBudget::new(&BudgetConfig::new().ratio(0.6).min_per_sec(0), now);
/// for _ in 0..10 {
///     budget.deposit(now);
/// }
/// let allowed = (0..10).filter(|_| budget.withdraw(now)).count();
/// assert_eq!(allowed, 6);
/// ```
#[derive(Debug, Clone)]
pub struct RetryBudget {
    slots: [i64; SLOTS],
    /// Index of the current slot, and when it started.
    current: usize,
    current_start: Instant,
    slot_len: Duration,
    deposit: i64,
    reserve: i64,
}

impl RetryBudget {
    /// A budget with nothing deposited yet (only the reserve).
    pub fn new(config: &BudgetConfig, now: Instant) -> RetryBudget {
        let window = config.window.max(Duration::from_millis(10));
        let reserve = f64::from(config.min_per_sec) * window.as_secs_f64() * SCALE as f64;
        RetryBudget {
            slots: [0; SLOTS],
            current: 0,
            current_start: now,
            slot_len: window / SLOTS as u32,
            deposit: (config.ratio.max(0.0) * SCALE as f64).round() as i64,
            reserve: reserve.round() as i64,
        }
    }

    /// Expires the slots older than the window.
    fn advance(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.current_start);
        let steps = elapsed.as_nanos() / self.slot_len.as_nanos().max(1);
        if steps == 0 {
            return;
        }
        if steps >= SLOTS as u128 {
            self.slots = [0; SLOTS];
            self.current = 0;
            self.current_start = now;
            return;
        }
        for _ in 0..steps {
            self.current = (self.current + 1) % SLOTS;
            self.slots[self.current] = 0;
        }
        self.current_start += self.slot_len * steps as u32;
    }

    /// What is available now, in retries (fractional).
    pub fn balance(&mut self, now: Instant) -> f64 {
        self.advance(now);
        self.tokens() as f64 / SCALE as f64
    }

    fn tokens(&self) -> i64 {
        self.reserve + self.slots.iter().sum::<i64>()
    }

    /// One request made: it earns `ratio` of a retry.
    pub fn deposit(&mut self, now: Instant) {
        self.advance(now);
        self.slots[self.current] = self.slots[self.current].saturating_add(self.deposit);
    }

    /// Takes one retry if the budget has it: `true` when the retry may go.
    pub fn withdraw(&mut self, now: Instant) -> bool {
        self.advance(now);
        if self.tokens() < SCALE {
            return false;
        }
        self.slots[self.current] -= SCALE;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_reserve_allows_min_per_sec_over_the_window_with_no_request() {
        let now = Instant::now();
        let mut b = RetryBudget::new(&BudgetConfig::new(), now);
        let allowed = (0..1000).filter(|_| b.withdraw(now)).count();
        assert_eq!(allowed, 100, "10/s over 10 s");
        // Withdrawals expire with the window: the reserve is back a window later.
        let later = now + Duration::from_secs(10);
        assert_eq!((0..1000).filter(|_| b.withdraw(later)).count(), 100);
    }

    #[test]
    fn deposits_expire_after_the_window() {
        let now = Instant::now();
        let config = BudgetConfig::new().min_per_sec(0);
        let mut b = RetryBudget::new(&config, now);
        for _ in 0..100 {
            b.deposit(now);
        }
        assert!((b.balance(now) - 20.0).abs() < 1e-9);
        assert!((b.balance(now + Duration::from_millis(9_999)) - 20.0).abs() < 1e-9);
        assert_eq!(b.balance(now + Duration::from_secs(10)), 0.0);
        assert!(!b.withdraw(now + Duration::from_secs(11)));
    }

    #[test]
    fn a_fractional_ratio_below_one_is_not_truncated() {
        // tower#857: 0.6 became one retry per deposit.
        let now = Instant::now();
        let mut b = RetryBudget::new(&BudgetConfig::new().ratio(0.6).min_per_sec(0), now);
        for _ in 0..10 {
            b.deposit(now);
        }
        assert_eq!((0..10).filter(|_| b.withdraw(now)).count(), 6);
    }

    proptest! {
        /// Within one window, retries allowed = floor(ratio × requests) + reserve, for any
        /// ratio and any interleaving of requests and retries.
        #[test]
        fn retries_stay_within_ratio_times_requests_plus_reserve(
            per_mille in 0u32..2000,
            min_per_sec in 0u32..5,
            ops in proptest::collection::vec(any::<bool>(), 1..2000),
        ) {
            let now = Instant::now();
            let ratio = f64::from(per_mille) / 1000.0;
            let config = BudgetConfig::new().ratio(ratio).min_per_sec(min_per_sec);
            let mut b = RetryBudget::new(&config, now);
            let (mut requests, mut retries) = (0u64, 0u64);
            for (i, deposit) in ops.iter().enumerate() {
                let t = now + Duration::from_micros(i as u64);
                if *deposit {
                    b.deposit(t);
                    requests += 1;
                } else if b.withdraw(t) {
                    retries += 1;
                }
            }
            let bound = config.allowance(requests);
            prop_assert!(retries as f64 <= bound + 1e-6, "{retries} > {bound}");
            // And nothing is lost: what is left plus what was taken is the allowance.
            let left = b.balance(now + Duration::from_micros(ops.len() as u64));
            prop_assert!((left + retries as f64 - bound).abs() < 1e-6 * (1.0 + bound));
        }
    }
}
