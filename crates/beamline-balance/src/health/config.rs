//! The health model's settings.

use std::time::Duration;

/// When an endpoint is ejected, for how long, and how it comes back.
///
/// | setting | default | why |
/// |---|---|---|
/// | [`consecutive_failures`](Self::consecutive_failures) | 5 | one failure is noise; five in a row is a sick endpoint (Envoy's `consecutive_5xx`) |
/// | [`base_ejection`](Self::base_ejection) | 30 s | each ejection lasts `base × n`, `n` its ejections not yet forgiven |
/// | [`max_ejection`](Self::max_ejection) | 300 s | so an endpoint that was sick often still comes back within minutes |
/// | [`max_ejected_share`](Self::max_ejected_share) | 0.5 | never eject more than half: the rest must not be buried under the load |
/// | [`probe_successes`](Self::probe_successes) | 1 | probes that must succeed in a row before full load |
#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    pub(crate) consecutive_failures: u32,
    pub(crate) base_ejection: Duration,
    pub(crate) max_ejection: Duration,
    pub(crate) max_ejected_share: f64,
    pub(crate) probe_successes: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            max_ejected_share: 0.5,
            probe_successes: 1,
        }
    }
}

impl HealthConfig {
    /// The defaults (see the table).
    pub fn new() -> HealthConfig {
        HealthConfig::default()
    }

    /// Consecutive failures (connect errors, lost connections, timeouts) that eject an
    /// endpoint. At least 1.
    #[must_use]
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.consecutive_failures = n;
        self
    }

    /// The first ejection's length; the `n`-th lasts `n` times this (capped by
    /// [`max_ejection`](Self::max_ejection)). One ejection is forgiven for every `base` the
    /// endpoint then stays healthy. Not zero.
    #[must_use]
    pub fn base_ejection(mut self, base: Duration) -> Self {
        self.base_ejection = base;
        self
    }

    /// The longest an ejection lasts.
    #[must_use]
    pub fn max_ejection(mut self, max: Duration) -> Self {
        self.max_ejection = max;
        self
    }

    /// The largest share of the endpoints ejected at once, in `[0, 1]`: with 5 endpoints and
    /// 0.5, at most 2. Past it, a failing endpoint keeps its load ([`Transition::EjectionSkipped`](crate::Transition::EjectionSkipped)).
    #[must_use]
    pub fn max_ejected_share(mut self, share: f64) -> Self {
        self.max_ejected_share = share;
        self
    }

    /// Probes (one at a time) that must succeed in a row before an endpoint back from an
    /// ejection takes full load. At least 1.
    #[must_use]
    pub fn probe_successes(mut self, n: u32) -> Self {
        self.probe_successes = n;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`HealthConfigError`] naming the setting that cannot work.
    pub fn validate(&self) -> Result<(), HealthConfigError> {
        if self.consecutive_failures == 0 {
            return Err(HealthConfigError::ZeroFailures);
        }
        if self.base_ejection.is_zero() {
            return Err(HealthConfigError::ZeroEjection);
        }
        if self.max_ejection < self.base_ejection {
            return Err(HealthConfigError::MaxBelowBase {
                base: self.base_ejection,
                max: self.max_ejection,
            });
        }
        if !(0.0..=1.0).contains(&self.max_ejected_share) {
            return Err(HealthConfigError::Share(self.max_ejected_share));
        }
        if self.probe_successes == 0 {
            return Err(HealthConfigError::ZeroProbes);
        }
        Ok(())
    }
}

/// A [`HealthConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HealthConfigError {
    /// `consecutive_failures` is 0: every endpoint would be ejected before its first request.
    #[error("health: consecutive_failures must be at least 1")]
    ZeroFailures,
    /// `base_ejection` is zero: an ejection would end at once.
    #[error("health: base_ejection must not be zero")]
    ZeroEjection,
    /// `max_ejection` is below `base_ejection`.
    #[error("health: max_ejection ({max:?}) is below base_ejection ({base:?})")]
    MaxBelowBase {
        /// The base.
        base: Duration,
        /// The cap.
        max: Duration,
    },
    /// `max_ejected_share` is outside `[0, 1]` (or not a number).
    #[error("health: max_ejected_share must be within [0, 1], not {0}")]
    Share(f64),
    /// `probe_successes` is 0.
    #[error("health: probe_successes must be at least 1")]
    ZeroProbes,
}
