//! The settings of a backoff policy, validated when a [`Backoff`] is built.

use std::time::Duration;

use super::{Backoff, SplitMix64};

/// How a delay is randomised around the exponential base `t = min(max, initial · multiplier^n)`.
///
/// `u` below is a uniform draw in `[0, 1)` from the policy's generator, and `rand(a, b)` is
/// `a + (b - a) · u`. Every formula is clamped so that **a jittered delay never exceeds the
/// cap** (`max`).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Jitter {
    /// `t`: no randomness. Every client that lost the same server retries in the same
    /// instant, which is the thundering herd; use it only for a single client or in tests.
    None,
    /// `rand(0, t)` ("full jitter"): spreads clients the most; the delay may be close to zero.
    Full,
    /// `t/2 + rand(0, t/2)` ("equal jitter"): keeps at least half of the base delay.
    Equal,
    /// `min(max, rand(initial, 3 · previous))` with `previous` starting at `initial`
    /// ("decorrelated jitter"): each delay grows from the last *jittered* one, so the
    /// multiplier is not used.
    Decorrelated,
    /// `min(max, t · (1 + rand(-f, f)))`: ±`f` around the base, as gRPC does with `f = 0.2`.
    /// `f` must be in `[0, 1]`. Unlike gRPC's reference algorithm, the result is clamped
    /// to the cap.
    Proportional(f64),
}

impl Jitter {
    /// A short lowercase name (`none`, `full`, `equal`, `decorrelated`, `proportional`),
    /// used in CSV headers, bench ids and tracing fields.
    pub const fn name(&self) -> &'static str {
        match self {
            Jitter::None => "none",
            Jitter::Full => "full",
            Jitter::Equal => "equal",
            Jitter::Decorrelated => "decorrelated",
            Jitter::Proportional(_) => "proportional",
        }
    }
}

/// The settings of a backoff policy: base delays, jitter and optional limits.
///
/// Build one with [`constant`](Self::constant), [`exponential`](Self::exponential) or the
/// [`grpc`](Self::grpc) preset, adjust it with the setters, then turn it into a running
/// policy with [`build`](Self::build) (random seed), [`build_seeded`](Self::build_seeded)
/// (reproducible) or [`build_with_rng`](Self::build_with_rng) (your own generator). Every
/// build validates the settings: a bad setting is a [`BackoffConfigError`] naming it, never
/// a panic and never a silently corrected value.
///
/// A config is plain data (`Clone`): keep one and build a fresh [`Backoff`] per
/// connection loop.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use beamline_backoff::{BackoffConfig, Jitter};
///
/// let config = BackoffConfig::exponential(Duration::from_millis(100), 2.0, Duration::from_secs(10))
///     .jitter(Jitter::Equal)
///     .max_attempts(8);
/// let backoff = config.build_seeded(1)?;
/// # let _ = backoff;
/// # Ok::<(), beamline_backoff::BackoffConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BackoffConfig {
    /// The first base delay, and the lower bound of decorrelated jitter.
    pub(crate) initial: Duration,
    /// How much the base grows per attempt (1.0 for a constant policy).
    pub(crate) multiplier: f64,
    /// The cap: no delay, jittered or not, is longer.
    pub(crate) max: Duration,
    pub(crate) jitter: Jitter,
    /// Give up after handing out this many delays (since the last reset).
    pub(crate) max_attempts: Option<u32>,
    /// Give up when the next attempt would start later than this after the first failure.
    pub(crate) max_elapsed: Option<Duration>,
    /// gRPC's rule: a connect attempt gets at least this long, or the current backoff if longer.
    pub(crate) min_connect_timeout: Option<Duration>,
}

impl BackoffConfig {
    /// The same `delay` before every attempt, without jitter (add one with
    /// [`jitter`](Self::jitter); the cap is `delay`, so jitter can only shorten it).
    pub const fn constant(delay: Duration) -> Self {
        Self {
            initial: delay,
            multiplier: 1.0,
            max: delay,
            jitter: Jitter::None,
            max_attempts: None,
            max_elapsed: None,
            min_connect_timeout: None,
        }
    }

    /// Exponential growth: the n-th delay's base is `min(max, initial · multiplier^n)`
    /// (n counts from 0). Jitter defaults to [`Jitter::Full`]: without jitter, clients that
    /// lost the same server come back in the same instant, so turning it off is a choice
    /// you make explicitly with `.jitter(Jitter::None)`.
    pub const fn exponential(initial: Duration, multiplier: f64, max: Duration) -> Self {
        Self {
            initial,
            multiplier,
            max,
            jitter: Jitter::Full,
            max_attempts: None,
            max_elapsed: None,
            min_connect_timeout: None,
        }
    }

    /// gRPC's connection backoff
    /// ([connection-backoff.md](https://github.com/grpc/grpc/blob/master/doc/connection-backoff.md)):
    /// 1 s initial, ×1.6, ±20 % jitter, 120 s max, and a 20 s minimum connect timeout
    /// (see [`Backoff::connect_timeout`]). The jittered delay is clamped to 120 s, where the
    /// reference algorithm lets it reach 144 s.
    pub const fn grpc() -> Self {
        Self {
            initial: Duration::from_secs(1),
            multiplier: 1.6,
            max: Duration::from_secs(120),
            jitter: Jitter::Proportional(0.2),
            max_attempts: None,
            max_elapsed: None,
            min_connect_timeout: Some(Duration::from_secs(20)),
        }
    }

    /// Sets how delays are randomised.
    #[must_use]
    pub const fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Give up after `attempts` delays since the last reset: the policy schedules at most
    /// this many attempts, and the next [`Backoff::next_delay`] returns
    /// [`GiveUp::Attempts`](super::GiveUp::Attempts). Must be at least 1.
    #[must_use]
    pub const fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// Give up when the next attempt would start more than `elapsed` after the first
    /// failure since the last reset. This is wall time as passed in `now`, so the time
    /// spent inside attempts counts, not just the delays. Must be non-zero.
    #[must_use]
    pub const fn max_elapsed(mut self, elapsed: Duration) -> Self {
        self.max_elapsed = Some(elapsed);
        self
    }

    /// A connect attempt gets at least `timeout`, or the current backoff when that is
    /// longer (gRPC's `MIN_CONNECT_TIMEOUT`). Must be non-zero.
    #[must_use]
    pub const fn min_connect_timeout(mut self, timeout: Duration) -> Self {
        self.min_connect_timeout = Some(timeout);
        self
    }

    /// The jitter this config applies.
    pub const fn jitter_kind(&self) -> Jitter {
        self.jitter
    }

    /// Checks every setting; [`build`](Self::build) and its siblings call this.
    ///
    /// # Errors
    /// The first bad setting, as a [`BackoffConfigError`] that names it.
    pub fn validate(&self) -> Result<(), BackoffConfigError> {
        if self.initial.is_zero() {
            return Err(BackoffConfigError::ZeroInitial);
        }
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err(BackoffConfigError::InvalidMultiplier {
                multiplier: self.multiplier,
            });
        }
        if self.max < self.initial {
            return Err(BackoffConfigError::MaxBelowInitial {
                initial: self.initial,
                max: self.max,
            });
        }
        match self.jitter {
            Jitter::Proportional(factor) if !(0.0..=1.0).contains(&factor) => {
                return Err(BackoffConfigError::InvalidJitterFactor { factor });
            }
            _ => {}
        }
        if self.max_attempts == Some(0) {
            return Err(BackoffConfigError::ZeroMaxAttempts);
        }
        if self.max_elapsed.is_some_and(|d| d.is_zero()) {
            return Err(BackoffConfigError::ZeroMaxElapsed);
        }
        if self.min_connect_timeout.is_some_and(|d| d.is_zero()) {
            return Err(BackoffConfigError::ZeroMinConnectTimeout);
        }
        Ok(())
    }

    /// A policy whose jitter is seeded from process entropy (see
    /// [`SplitMix64::from_entropy`]), so two clients built this way do not jitter alike.
    ///
    /// # Errors
    /// A [`BackoffConfigError`] when a setting is invalid.
    pub fn build(&self) -> Result<Backoff, BackoffConfigError> {
        self.build_with_rng(SplitMix64::from_entropy())
    }

    /// A policy whose jitter is fixed by `seed`: the same seed gives the same delays.
    /// Use it in tests and simulations; in production, clients sharing a seed would jitter
    /// in lockstep, which defeats the jitter.
    ///
    /// # Errors
    /// A [`BackoffConfigError`] when a setting is invalid.
    pub fn build_seeded(&self, seed: u64) -> Result<Backoff, BackoffConfigError> {
        self.build_with_rng(SplitMix64::new(seed))
    }

    /// A policy drawing its jitter from `rng` (any [`rand::Rng`], for example
    /// `rand_chacha::ChaCha8Rng`).
    ///
    /// # Errors
    /// A [`BackoffConfigError`] when a setting is invalid.
    pub fn build_with_rng<R: rand::Rng>(&self, rng: R) -> Result<Backoff<R>, BackoffConfigError> {
        self.validate()?;
        Ok(Backoff::from_parts(self.clone(), rng))
    }
}

/// A backoff setting that cannot work. Nothing is built; fix the named setting.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BackoffConfigError {
    /// The initial (or constant) delay is zero: retries would spin.
    #[error("backoff: the initial delay must be greater than zero")]
    ZeroInitial,
    /// The multiplier is below 1 (delays would shrink) or not a finite number.
    #[error("backoff: the multiplier must be a finite number >= 1.0, got {multiplier}")]
    InvalidMultiplier {
        /// The rejected multiplier.
        multiplier: f64,
    },
    /// The cap is below the initial delay.
    #[error("backoff: the max delay ({max:?}) is below the initial delay ({initial:?})")]
    MaxBelowInitial {
        /// The initial delay.
        initial: Duration,
        /// The rejected cap.
        max: Duration,
    },
    /// A proportional jitter factor outside `[0, 1]` (or NaN).
    #[error("backoff: the proportional jitter factor must be in [0, 1], got {factor}")]
    InvalidJitterFactor {
        /// The rejected factor.
        factor: f64,
    },
    /// `max_attempts(0)`: the policy could never schedule an attempt.
    #[error("backoff: max_attempts must be at least 1")]
    ZeroMaxAttempts,
    /// `max_elapsed(0)`: the policy would give up before trying.
    #[error("backoff: max_elapsed must be greater than zero")]
    ZeroMaxElapsed,
    /// `min_connect_timeout(0)`: every attempt would time out at once.
    #[error("backoff: min_connect_timeout must be greater than zero")]
    ZeroMinConnectTimeout,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn presets_are_valid() {
        BackoffConfig::grpc().validate().unwrap();
        BackoffConfig::constant(MS).validate().unwrap();
        BackoffConfig::exponential(MS, 2.0, MS * 10)
            .validate()
            .unwrap();
        assert_eq!(
            BackoffConfig::exponential(MS, 2.0, MS).jitter_kind(),
            Jitter::Full
        );
        assert_eq!(BackoffConfig::constant(MS).jitter_kind(), Jitter::None);
    }

    #[test]
    fn grpc_preset_has_the_documented_numbers() {
        let g = BackoffConfig::grpc();
        assert_eq!(g.initial, Duration::from_secs(1));
        assert_eq!(g.multiplier, 1.6);
        assert_eq!(g.max, Duration::from_secs(120));
        assert_eq!(g.jitter, Jitter::Proportional(0.2));
        assert_eq!(g.min_connect_timeout, Some(Duration::from_secs(20)));
    }

    #[test]
    fn each_bad_setting_is_a_typed_error() {
        let ok = BackoffConfig::exponential(MS, 2.0, MS * 10);
        let cases = [
            (
                BackoffConfig::constant(Duration::ZERO),
                BackoffConfigError::ZeroInitial,
            ),
            (
                BackoffConfig::exponential(Duration::ZERO, 2.0, MS),
                BackoffConfigError::ZeroInitial,
            ),
            (
                BackoffConfig::exponential(MS, 0.5, MS * 10),
                BackoffConfigError::InvalidMultiplier { multiplier: 0.5 },
            ),
            (
                BackoffConfig::exponential(MS, f64::INFINITY, MS * 10),
                BackoffConfigError::InvalidMultiplier {
                    multiplier: f64::INFINITY,
                },
            ),
            (
                BackoffConfig::exponential(MS * 10, 2.0, MS),
                BackoffConfigError::MaxBelowInitial {
                    initial: MS * 10,
                    max: MS,
                },
            ),
            (
                ok.clone().jitter(Jitter::Proportional(1.5)),
                BackoffConfigError::InvalidJitterFactor { factor: 1.5 },
            ),
            (
                ok.clone().jitter(Jitter::Proportional(-0.1)),
                BackoffConfigError::InvalidJitterFactor { factor: -0.1 },
            ),
            (
                ok.clone().max_attempts(0),
                BackoffConfigError::ZeroMaxAttempts,
            ),
            (
                ok.clone().max_elapsed(Duration::ZERO),
                BackoffConfigError::ZeroMaxElapsed,
            ),
            (
                ok.clone().min_connect_timeout(Duration::ZERO),
                BackoffConfigError::ZeroMinConnectTimeout,
            ),
        ];
        for (config, want) in cases {
            assert_eq!(config.validate(), Err(want.clone()), "{config:?}");
            assert_eq!(config.build_seeded(0).err(), Some(want.clone()));
            assert_eq!(config.build().err(), Some(want));
        }
    }

    #[test]
    fn nan_settings_are_rejected() {
        let nan_mult = BackoffConfig::exponential(MS, f64::NAN, MS);
        assert!(matches!(
            nan_mult.validate(),
            Err(BackoffConfigError::InvalidMultiplier { .. })
        ));
        let nan_jitter = BackoffConfig::constant(MS).jitter(Jitter::Proportional(f64::NAN));
        assert!(matches!(
            nan_jitter.validate(),
            Err(BackoffConfigError::InvalidJitterFactor { .. })
        ));
    }

    #[test]
    fn errors_name_the_setting() {
        let e = BackoffConfigError::InvalidMultiplier { multiplier: 0.5 };
        assert!(e.to_string().contains("multiplier"));
        assert!(e.to_string().contains("0.5"));
    }
}
