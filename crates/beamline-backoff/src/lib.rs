//! Backoff policies, sans-IO, for every beamline layer that retries: given "an attempt failed
//! at `now`", how long to wait before the next one, or give up.
//!
//! A [`Backoff`] never reads a clock, never sleeps and never spawns: time comes in as the
//! `now` argument and randomness from the generator it owns. That makes it usable by any
//! retry loop (beamline-reconnect's connection, a pool's connect attempts, a simulation
//! of ten thousand clients) and testable without a runtime.
//!
//! This crate has no runtime dependency (no tokio): [`Backoff`], its [`BackoffConfig`] and
//! [`Jitter`] kinds, the default generator [`SplitMix64`] and the [`herd`] simulation are plain
//! computations. `beamline-reconnect` re-exports all of them at their old paths
//! (`beamline_reconnect::Backoff`, `beamline_reconnect::herd`, ...); `beamline-pool` uses them
//! directly, without depending on `beamline-reconnect`.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
// Every public type decides whether it may grow: #[non_exhaustive], or an allow that says why
// it is closed.
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]

mod config;
pub mod herd;
mod rng;

pub use config::{BackoffConfig, BackoffConfigError, Jitter};
pub use rng::SplitMix64;

use std::time::{Duration, Instant};

/// A running backoff policy: the delays of one retry loop.
///
/// Call [`next_delay`](Self::next_delay) after each failure; it returns how long to wait
/// before the next attempt, or [`GiveUp`] once a limit is reached. Call
/// [`reset`](Self::reset) after a success that should count (for a connection, one that
/// stayed up long enough) to start again from the initial delay.
///
/// # Guarantees
/// - Every delay is at most the cap ([`BackoffConfig`]'s `max`), whatever the jitter.
/// - Delays follow the formulas documented on [`Jitter`] exactly, as functions of the
///   generator's output: the same seed gives the same delays.
/// - Once a limit is reached, every further call gives up until [`reset`](Self::reset).
///
/// # Examples
/// ```
/// use std::time::{Duration, Instant};
/// use beamline_backoff::{BackoffConfig, GiveUp, Jitter};
///
/// let mut backoff = BackoffConfig::exponential(Duration::from_millis(100), 2.0, Duration::from_secs(1))
///     .jitter(Jitter::None)
///     .max_attempts(3)
///     .build_seeded(0)?;
/// let now = Instant::now();
/// assert_eq!(backoff.next_delay(now), Ok(Duration::from_millis(100)));
/// assert_eq!(backoff.next_delay(now), Ok(Duration::from_millis(200)));
/// assert_eq!(backoff.next_delay(now), Ok(Duration::from_millis(400)));
/// assert_eq!(backoff.next_delay(now), Err(GiveUp::Attempts { max: 3 }));
/// backoff.reset();
/// assert_eq!(backoff.next_delay(now), Ok(Duration::from_millis(100)));
/// # Ok::<(), beamline_backoff::BackoffConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Backoff<R = SplitMix64> {
    config: BackoffConfig,
    rng: R,
    /// Delays handed out since the last reset.
    attempts: u32,
    /// `initial` and the cap in nanoseconds: the arithmetic runs on `f64` nanoseconds.
    initial_ns: f64,
    cap_ns: f64,
    /// The next delay's base, `min(cap, initial · multiplier^attempts)`, kept up to date
    /// by one multiplication per delay until it reaches the cap; `base` is the same as a
    /// `Duration` (what `Jitter::None` hands out).
    base_ns: f64,
    base: Duration,
    /// The previous delay (decorrelated jitter grows from it); `initial` after a reset.
    previous_ns: f64,
    /// The last delay handed out (zero after a reset), for `connect_timeout`.
    last: Duration,
    /// When the first failure since the last reset was reported (for `max_elapsed`).
    started: Option<Instant>,
}

/// Why a [`Backoff`] stopped handing out delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GiveUp {
    /// The policy already scheduled `max` attempts since the last reset.
    #[error("gave up after {max} attempts")]
    Attempts {
        /// The configured `max_attempts`.
        max: u32,
    },
    /// The next attempt would start more than `max` after the first failure.
    #[error(
        "gave up: the next attempt would start {next_at:?} after the first failure, past the limit of {max:?}"
    )]
    Elapsed {
        /// When the next attempt would have started, counted from the first failure.
        next_at: Duration,
        /// The configured `max_elapsed`.
        max: Duration,
    },
}

impl Backoff {
    /// A policy from `config` with an entropy-seeded generator; shorthand for
    /// [`BackoffConfig::build`].
    ///
    /// # Errors
    /// A [`BackoffConfigError`] when a setting is invalid.
    pub fn new(config: &BackoffConfig) -> Result<Self, BackoffConfigError> {
        config.build()
    }
}

impl<R: rand::Rng> Backoff<R> {
    pub(crate) fn from_parts(config: BackoffConfig, rng: R) -> Self {
        let initial_ns = nanos(config.initial);
        let cap_ns = nanos(config.max);
        let base = config.initial.min(config.max);
        Self {
            config,
            rng,
            attempts: 0,
            initial_ns,
            cap_ns,
            base_ns: initial_ns.min(cap_ns),
            base,
            previous_ns: initial_ns,
            last: Duration::ZERO,
            started: None,
        }
    }

    /// An attempt failed (or a connection was lost) at `now`: how long to wait before the
    /// next attempt.
    ///
    /// The first call after a reset starts the `max_elapsed` clock at `now`.
    ///
    /// # Errors
    /// [`GiveUp`] when `max_attempts` delays were already handed out, or when the next
    /// attempt would start past `max_elapsed`. A policy that gave up keeps giving up until
    /// [`reset`](Self::reset).
    pub fn next_delay(&mut self, now: Instant) -> Result<Duration, GiveUp> {
        match self.config.max_attempts {
            Some(max) if self.attempts >= max => return Err(GiveUp::Attempts { max }),
            _ => {}
        }
        let delay = self.jittered();
        if let Some(max) = self.config.max_elapsed {
            let started = *self.started.get_or_insert(now);
            let next_at = now.saturating_duration_since(started).saturating_add(delay);
            if next_at > max {
                return Err(GiveUp::Elapsed { next_at, max });
            }
        }
        self.attempts += 1;
        if self.base_ns < self.cap_ns {
            self.base_ns = (self.base_ns * self.config.multiplier).min(self.cap_ns);
            self.base = clamp_nanos(self.base_ns, self.config.max);
        }
        if self.config.jitter == Jitter::Decorrelated {
            self.previous_ns = nanos(delay);
        }
        self.last = delay;
        Ok(delay)
    }

    /// Starts over: the next delay is the first one again, and the limits count afresh.
    /// The generator is not reseeded (its sequence simply continues).
    pub fn reset(&mut self) {
        self.attempts = 0;
        self.base_ns = self.initial_ns.min(self.cap_ns);
        self.base = self.config.initial.min(self.config.max);
        self.previous_ns = self.initial_ns;
        self.last = Duration::ZERO;
        self.started = None;
    }

    /// Delays handed out since the last reset (the number of attempts this policy has
    /// scheduled).
    pub const fn attempts(&self) -> u32 {
        self.attempts
    }

    /// How long the next connect attempt may take, when the config sets
    /// `min_connect_timeout` (gRPC's rule): `max(min_connect_timeout, current backoff)`,
    /// where the current backoff is the last delay handed out (zero after a reset).
    /// `None` when the config leaves connect timeouts to the caller.
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.config
            .min_connect_timeout
            .map(|min| min.max(self.last))
    }

    /// The settings this policy runs with.
    pub const fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// The next delay with the configured jitter applied (draws from the generator
    /// unless the jitter is `None`).
    fn jittered(&mut self) -> Duration {
        let t = self.base_ns;
        let ns = match self.config.jitter {
            Jitter::None => return self.base,
            Jitter::Full => t * rng::unit_f64(&mut self.rng),
            Jitter::Equal => {
                let half = t / 2.0;
                half + half * rng::unit_f64(&mut self.rng)
            }
            Jitter::Decorrelated => {
                let (low, high) = (self.initial_ns, self.previous_ns * 3.0);
                low + (high - low) * rng::unit_f64(&mut self.rng)
            }
            Jitter::Proportional(factor) => {
                t * (1.0 + factor * (2.0 * rng::unit_f64(&mut self.rng) - 1.0))
            }
        };
        clamp_nanos(ns, self.config.max)
    }
}

/// `d` in nanoseconds.
fn nanos(d: Duration) -> f64 {
    d.as_secs() as f64 * 1e9 + f64::from(d.subsec_nanos())
}

/// `ns` nanoseconds (truncated) as a `Duration`, never above `cap` and never negative.
/// The comparison with the cap happens on `Duration`s, so float rounding cannot push a
/// delay past it.
fn clamp_nanos(ns: f64, cap: Duration) -> Duration {
    if ns.is_nan() || ns <= 0.0 {
        return Duration::ZERO;
    }
    // `as` saturates: anything beyond u64::MAX nanoseconds (584 years) becomes that.
    Duration::from_nanos(ns as u64).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    const MS: Duration = Duration::from_millis(1);

    fn delays(config: &BackoffConfig, seed: u64, n: usize) -> Vec<Duration> {
        let mut b = config.build_seeded(seed).unwrap();
        let now = Instant::now();
        (0..n).map(|_| b.next_delay(now).unwrap()).collect()
    }

    #[test]
    fn no_jitter_is_the_exact_exponential_sequence() {
        let c = BackoffConfig::exponential(MS * 100, 2.0, MS * 1000).jitter(Jitter::None);
        assert_eq!(
            delays(&c, 0, 6),
            [100, 200, 400, 800, 1000, 1000].map(|m| MS * m)
        );
    }

    #[test]
    fn constant_is_constant_and_jitter_only_shortens_it() {
        let c = BackoffConfig::constant(MS * 250);
        assert!(delays(&c, 0, 10).iter().all(|d| *d == MS * 250));
        let full = c.clone().jitter(Jitter::Full);
        assert!(delays(&full, 1, 100).iter().all(|d| *d <= MS * 250));
        let decorrelated = c.jitter(Jitter::Decorrelated);
        assert!(delays(&decorrelated, 1, 10).iter().all(|d| *d == MS * 250));
    }

    #[test]
    fn grpc_preset_stays_within_twenty_percent_and_the_cap() {
        let c = BackoffConfig::grpc();
        let d = delays(&c, 9, 30);
        assert!(d[0] >= MS * 800 && d[0] <= MS * 1200, "{:?}", d[0]);
        assert!(d[1] >= MS * 1280 && d[1] <= MS * 1920, "{:?}", d[1]);
        assert!(d.iter().all(|x| *x <= Duration::from_secs(120)));
        // Far out the base is the cap, and -20% is the floor.
        assert!(d[29] >= Duration::from_secs(96));
    }

    #[test]
    fn grpc_connect_timeout_is_the_larger_of_the_minimum_and_the_backoff() {
        let mut b = BackoffConfig::grpc()
            .jitter(Jitter::None)
            .build_seeded(0)
            .unwrap();
        assert_eq!(b.connect_timeout(), Some(Duration::from_secs(20)));
        let now = Instant::now();
        let mut last = Duration::ZERO;
        for _ in 0..10 {
            last = b.next_delay(now).unwrap();
        }
        assert!(last > Duration::from_secs(20));
        assert_eq!(b.connect_timeout(), Some(last));
        b.reset();
        assert_eq!(b.connect_timeout(), Some(Duration::from_secs(20)));
        let plain = BackoffConfig::constant(MS).build_seeded(0).unwrap();
        assert_eq!(plain.connect_timeout(), None);
    }

    #[test]
    fn max_attempts_gives_up_until_reset() {
        let c = BackoffConfig::constant(MS).max_attempts(2);
        let mut b = c.build_seeded(0).unwrap();
        let now = Instant::now();
        assert!(b.next_delay(now).is_ok());
        assert!(b.next_delay(now).is_ok());
        assert_eq!(b.attempts(), 2);
        assert_eq!(b.next_delay(now), Err(GiveUp::Attempts { max: 2 }));
        assert_eq!(b.next_delay(now), Err(GiveUp::Attempts { max: 2 }));
        b.reset();
        assert_eq!(b.attempts(), 0);
        assert!(b.next_delay(now).is_ok());
    }

    #[test]
    fn max_elapsed_counts_wall_time_including_attempts() {
        // 1 s delays, 10 s budget, and each attempt itself takes 2 s: the clock runs
        // 3 s per round, so the third delay would start the next attempt at 10 s + 1 s.
        let c =
            BackoffConfig::constant(Duration::from_secs(1)).max_elapsed(Duration::from_secs(10));
        let mut b = c.build_seeded(0).unwrap();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(b.next_delay(t0), Ok(s(1))); // next attempt at 1 s
        assert_eq!(b.next_delay(t0 + s(3)), Ok(s(1))); // attempt 1..3 s, next at 4 s
        assert_eq!(b.next_delay(t0 + s(6)), Ok(s(1))); // next at 7 s
        assert_eq!(
            b.next_delay(t0 + s(10)),
            Err(GiveUp::Elapsed {
                next_at: s(11),
                max: s(10)
            })
        );
        b.reset();
        assert_eq!(b.next_delay(t0 + s(100)), Ok(s(1)));
    }

    #[test]
    fn an_injected_rand_generator_drives_the_jitter() {
        use rand_chacha::ChaCha8Rng;
        use rand_chacha::rand_core::SeedableRng;
        let c = BackoffConfig::exponential(MS * 10, 2.0, MS * 1000);
        let mut a = c.build_with_rng(ChaCha8Rng::seed_from_u64(5)).unwrap();
        let mut b = c.build_with_rng(ChaCha8Rng::seed_from_u64(5)).unwrap();
        let now = Instant::now();
        for _ in 0..20 {
            let (x, y) = (a.next_delay(now).unwrap(), b.next_delay(now).unwrap());
            assert_eq!(x, y);
            assert!(x <= MS * 1000);
        }
    }

    #[test]
    fn different_seeds_jitter_differently() {
        let c = BackoffConfig::exponential(MS * 100, 2.0, MS * 10_000);
        for jitter in [
            Jitter::Full,
            Jitter::Equal,
            Jitter::Decorrelated,
            Jitter::Proportional(0.2),
        ] {
            let c = c.clone().jitter(jitter);
            assert_ne!(delays(&c, 1, 10), delays(&c, 2, 10), "{jitter:?}");
        }
    }

    #[test]
    fn clamp_never_exceeds_the_cap_or_goes_negative() {
        assert_eq!(clamp_nanos(f64::INFINITY, MS), MS);
        assert_eq!(clamp_nanos(f64::NAN, MS), Duration::ZERO);
        assert_eq!(clamp_nanos(-1.0, MS), Duration::ZERO);
        assert_eq!(clamp_nanos(1e300, MS), MS);
        assert_eq!(clamp_nanos(1_000_000.7, MS), MS);
        assert_eq!(clamp_nanos(999_999.9, MS), Duration::from_nanos(999_999));
        let huge = Duration::MAX;
        assert_eq!(clamp_nanos(1e300, huge), Duration::from_nanos(u64::MAX));
        assert_eq!(nanos(Duration::new(2, 5)), 2_000_000_005.0);
    }

    fn jitter_strategy() -> impl Strategy<Value = Jitter> {
        prop_oneof![
            Just(Jitter::None),
            Just(Jitter::Full),
            Just(Jitter::Equal),
            Just(Jitter::Decorrelated),
            (0.0f64..=1.0).prop_map(Jitter::Proportional),
        ]
    }

    prop_compose! {
        fn config_strategy()(
            initial_us in 1u64..2_000_000,
            multiplier in 1.0f64..4.0,
            extra_us in 0u64..60_000_000,
            jitter in jitter_strategy(),
        ) -> BackoffConfig {
            let initial = Duration::from_micros(initial_us);
            BackoffConfig::exponential(initial, multiplier, initial + Duration::from_micros(extra_us))
                .jitter(jitter)
        }
    }

    /// The documented formula for the n-th delay, written out independently of the
    /// implementation, given the uniform draw `u` and the previous delay.
    fn reference(c: &BackoffConfig, n: u32, u: f64, previous: Duration) -> Duration {
        let cap = c.max.as_secs_f64();
        let t = (c.initial.as_secs_f64() * c.multiplier.powi(n as i32)).min(cap);
        let secs = match c.jitter {
            Jitter::None => t,
            Jitter::Full => t * u,
            Jitter::Equal => t / 2.0 + (t / 2.0) * u,
            Jitter::Decorrelated => {
                let (lo, hi) = (c.initial.as_secs_f64(), previous.as_secs_f64() * 3.0);
                (lo + (hi - lo) * u).min(cap)
            }
            Jitter::Proportional(f) => (t * (1.0 + f * (2.0 * u - 1.0))).min(cap),
        };
        Duration::from_secs_f64(secs).min(c.max)
    }

    proptest! {
        #[test]
        fn every_delay_is_within_bounds(c in config_strategy(), seed: u64, n in 1usize..40) {
            let d = delays(&c, seed, n);
            // Float rounding through f64 seconds may cost a nanosecond on the lower bounds.
            let slack = Duration::from_nanos(2);
            let mut previous = c.initial;
            for (i, delay) in d.iter().enumerate() {
                let exact = c.initial.as_secs_f64() * c.multiplier.powi(i as i32);
                let base = Duration::from_secs_f64(exact.min(c.max.as_secs_f64())).min(c.max);
                prop_assert!(*delay <= c.max, "delay {delay:?} over cap {:?}", c.max);
                match c.jitter {
                    Jitter::None => prop_assert!(delay.abs_diff(base) <= slack),
                    Jitter::Full => prop_assert!(*delay <= base + slack),
                    Jitter::Equal => {
                        prop_assert!(*delay + slack >= base / 2);
                        prop_assert!(*delay <= base + slack);
                    }
                    Jitter::Decorrelated => {
                        prop_assert!(*delay + slack >= c.initial);
                        prop_assert!(*delay <= (previous * 3).min(c.max) + slack);
                    }
                    Jitter::Proportional(f) => {
                        prop_assert!(*delay + slack >= base.mul_f64(1.0 - f));
                        prop_assert!(*delay <= base.mul_f64(1.0 + f).min(c.max) + slack);
                    }
                }
                previous = *delay;
            }
        }

        #[test]
        fn delays_are_the_exact_formulas(c in config_strategy(), seed: u64, n in 1usize..40) {
            let d = delays(&c, seed, n);
            let mut rng = SplitMix64::new(seed);
            let mut previous = c.initial;
            for (i, delay) in d.iter().enumerate() {
                let u = if c.jitter == Jitter::None { 0.0 } else { rng::unit_f64(&mut rng) };
                let want = reference(&c, i as u32, u, previous);
                // Both sides round through f64 seconds; allow a nanosecond of rounding.
                prop_assert!(delay.abs_diff(want) <= Duration::from_nanos(1), "n={i}: got {delay:?}, want {want:?}");
                previous = *delay;
            }
        }

        #[test]
        fn the_same_seed_gives_the_same_delays(c in config_strategy(), seed: u64) {
            prop_assert_eq!(delays(&c, seed, 30), delays(&c, seed, 30));
        }

        #[test]
        fn reset_restarts_the_sequence(c in config_strategy(), seed: u64, k in 1usize..20) {
            let c = c.jitter(Jitter::None);
            let mut b = c.build_seeded(seed).unwrap();
            let now = Instant::now();
            let first: Vec<_> = (0..k).map(|_| b.next_delay(now).unwrap()).collect();
            b.reset();
            let again: Vec<_> = (0..k).map(|_| b.next_delay(now).unwrap()).collect();
            prop_assert_eq!(first, again);
        }

        #[test]
        fn the_cap_holds_far_out(c in config_strategy(), seed: u64) {
            let mut b = c.build_seeded(seed).unwrap();
            let now = Instant::now();
            for _ in 0..2_000 {
                prop_assert!(b.next_delay(now).unwrap() <= c.max);
            }
        }
    }
}
