//! The balancer core's settings.

use std::time::Duration;

use crate::budget::{BudgetConfig, BudgetConfigError};
use crate::health::{HealthConfig, HealthConfigError};

/// How the [`Balancer`](crate::Balancer) estimates load, judges health and budgets retries.
///
/// | setting | default |
/// |---|---|
/// | [`decay`](Self::decay) | 10 s: the PeakEWMA's `τ` |
/// | [`default_rtt`](Self::default_rtt) | 1 ms: the first endpoint's estimate (low on purpose: a slower answer raises an estimate at once, a faster one lowers it only over the decay), and the least a failure counts as |
/// | [`health`](Self::health) | [`HealthConfig`]'s defaults: 5 failures, 30 s × n, at most half ejected |
/// | [`budget`](Self::budget) | [`BudgetConfig`]'s defaults: 20% plus 10/s over 10 s |
/// | [`seed`](Self::seed) | drawn from the OS: set one to replay the choices |
#[derive(Debug, Clone, PartialEq)]
pub struct BalancerConfig {
    pub(crate) decay: Duration,
    pub(crate) default_rtt: Duration,
    pub(crate) health: HealthConfig,
    pub(crate) budget: BudgetConfig,
    pub(crate) seed: Option<u64>,
}

impl Default for BalancerConfig {
    fn default() -> Self {
        BalancerConfig {
            decay: Duration::from_secs(10),
            default_rtt: Duration::from_millis(1),
            health: HealthConfig::default(),
            budget: BudgetConfig::default(),
            seed: None,
        }
    }
}

impl BalancerConfig {
    /// The defaults (see the table).
    pub fn new() -> BalancerConfig {
        BalancerConfig::default()
    }

    /// The PeakEWMA's decay `τ`: how long the estimate takes to believe that an endpoint
    /// got faster, and to forget one it heard nothing from. Not zero.
    #[must_use]
    pub fn decay(mut self, decay: Duration) -> Self {
        self.decay = decay;
        self
    }

    /// The round-trip estimate of an endpoint added when no healthy one has an estimate
    /// (later ones start at the lowest healthy estimate), and the least a failure counts as.
    /// Keep it low: an answer slower than the estimate raises it at once, while a faster
    /// one lowers it only over the [`decay`](Self::decay).
    #[must_use]
    pub fn default_rtt(mut self, rtt: Duration) -> Self {
        self.default_rtt = rtt;
        self
    }

    /// The health model's settings.
    #[must_use]
    pub fn health(mut self, health: HealthConfig) -> Self {
        self.health = health;
        self
    }

    /// The retry budget's settings.
    #[must_use]
    pub fn budget(mut self, budget: BudgetConfig) -> Self {
        self.budget = budget;
        self
    }

    /// Seeds the choices (and the max-age jitter of a `Balanced` client): the same seed and
    /// the same inputs give the same picks.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`BalancerConfigError`] naming the setting that cannot work.
    pub fn validate(&self) -> Result<(), BalancerConfigError> {
        if self.decay.is_zero() {
            return Err(BalancerConfigError::ZeroDecay);
        }
        self.health.validate()?;
        self.budget.validate()?;
        Ok(())
    }
}

/// A [`BalancerConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BalancerConfigError {
    /// The decay is zero: the estimate would forget every round trip at once.
    #[error("balancer: the PeakEWMA decay must not be zero")]
    ZeroDecay,
    /// A health setting.
    #[error(transparent)]
    Health(#[from] HealthConfigError),
    /// A budget setting.
    #[error(transparent)]
    Budget(#[from] BudgetConfigError),
}
