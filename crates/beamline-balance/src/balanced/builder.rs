//! Building a balanced client: discovery, the endpoint maker, the deadline, the balancer's
//! settings, max age.

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beamline_reconnect::{BackoffConfig, Jitter, SplitMix64};
use tokio::sync::Notify;

use super::driver::Driver;
use super::{Balanced, Guard, MakeEndpoint, Shared, StartError, Table, now};
use crate::budget::BudgetConfig;
use crate::core::{Balancer, BalancerConfig};
use crate::discover::Discovery;
use crate::health::HealthConfig;

/// Builds a [`Balanced`] client.
///
/// | setting | default |
/// |---|---|
/// | [`name`](Self::name) | `"balanced"` |
/// | [`timeout`](Self::timeout) | 30 s per call, retries included ([`no_timeout`](Self::no_timeout) to turn it off) |
/// | [`health`](Self::health) | 5 consecutive failures eject for 30 s × n (at most 300 s); at most half ejected; one probe back |
/// | [`budget`](Self::budget) | retries add at most 20% of the requests plus 10/s, over 10 s |
/// | [`decay`](Self::decay) | 10 s: the PeakEWMA's `τ` |
/// | [`max_connection_age`](Self::max_connection_age) | off |
/// | [`make_backoff`](Self::make_backoff) | 100 ms doubling to 10 s, full jitter, between failed attempts to make an endpoint's client |
pub struct BalancedBuilder<M> {
    discovery: Discovery,
    make: M,
    name: Arc<str>,
    timeout: Option<Duration>,
    config: BalancerConfig,
    max_age: Option<Duration>,
    max_age_jitter: f64,
    make_backoff: BackoffConfig,
}

impl<M> fmt::Debug for BalancedBuilder<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalancedBuilder")
            .field("discovery", &self.discovery)
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .field("config", &self.config)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl<M: MakeEndpoint> BalancedBuilder<M> {
    pub(crate) fn new(discovery: Discovery, make: M) -> Self {
        BalancedBuilder {
            discovery,
            make,
            name: Arc::from("balanced"),
            timeout: Some(Duration::from_secs(30)),
            config: BalancerConfig::default(),
            max_age: None,
            max_age_jitter: 0.1,
            make_backoff: BackoffConfig::exponential(
                Duration::from_millis(100),
                2.0,
                Duration::from_secs(10),
            )
            .jitter(Jitter::Full),
        }
    }

    /// What the client is called in errors and traces: say which service
    /// (`"sessions kv"`).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Arc::from(name.into());
        self
    }

    /// Every call's deadline, over its wait for an endpoint, its attempts and their retries.
    /// When it passes the call fails with [`BalanceError::Timeout`](crate::BalanceError::Timeout)
    /// and the attempt under way is dropped (cancelled at its endpoint).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// No deadline of the balancer's own: each call is bounded only by its endpoint's
    /// timeouts, and a call that finds no endpoint fails at once instead of waiting for one.
    #[must_use]
    pub fn no_timeout(mut self) -> Self {
        self.timeout = None;
        self
    }

    /// Every balancer setting at once (decay, health, budget, seed).
    #[must_use]
    pub fn config(mut self, config: BalancerConfig) -> Self {
        self.config = config;
        self
    }

    /// The health model: when an endpoint is ejected, for how long, how it comes back.
    #[must_use]
    pub fn health(mut self, health: HealthConfig) -> Self {
        self.config = self.config.health(health);
        self
    }

    /// The retry budget.
    #[must_use]
    pub fn budget(mut self, budget: BudgetConfig) -> Self {
        self.config = self.config.budget(budget);
        self
    }

    /// The PeakEWMA's decay `τ`.
    #[must_use]
    pub fn decay(mut self, decay: Duration) -> Self {
        self.config = self.config.decay(decay);
        self
    }

    /// Seeds the choices and the max-age jitter, so a run replays.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.config = self.config.seed(seed);
        self
    }

    /// Replaces each endpoint's client once it is about `age` old (less up to
    /// [`max_age_jitter`](Self::max_age_jitter), so they do not all reconnect at once): a new
    /// client is made for the same address, and the old one drains once the new one is up.
    /// Long-lived connections so follow what DNS or a load balancer in front says now.
    #[must_use]
    pub fn max_connection_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// The share of the max age taken off at random for each client, in `[0, 1)` (default
    /// 0.1: a client lives between 90% and 100% of the max age).
    #[must_use]
    pub fn max_age_jitter(mut self, jitter: f64) -> Self {
        self.max_age_jitter = jitter;
        self
    }

    /// The backoff between failed attempts to make an endpoint's client.
    #[must_use]
    pub fn make_backoff(mut self, backoff: BackoffConfig) -> Self {
        self.make_backoff = backoff;
        self
    }

    /// Checks the settings and starts the client: its driver task applies discovery (a
    /// fixed list at once, DNS after its first answer) and makes each endpoint's client in
    /// the background. Calls made before an endpoint is up wait for one within their
    /// deadline.
    ///
    /// # Errors
    /// [`StartError`]: a setting that cannot work, or no tokio runtime.
    pub fn start(self) -> Result<Balanced<M::Endpoint>, StartError> {
        self.config.validate()?;
        if !(0.0..1.0).contains(&self.max_age_jitter) {
            return Err(StartError::Jitter(self.max_age_jitter));
        }
        self.make_backoff.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| StartError::NoRuntime)?;
        let seed = self
            .config
            .seed
            .unwrap_or_else(|| SplitMix64::from_entropy().next());
        let core = Balancer::new(self.config, now())?;
        let shared = Arc::new(Shared {
            name: self.name,
            table: Mutex::new(Table {
                core,
                by_addr: Default::default(),
            }),
            changed: Notify::new(),
            closed: AtomicBool::new(false),
            timeout: self.timeout,
        });
        let driver = Driver::new(
            Arc::clone(&shared),
            self.make,
            self.make_backoff,
            self.max_age,
            self.max_age_jitter,
            seed ^ 0x6d61_785f_6167_6521,
        );
        let task = runtime.spawn(driver.run(self.discovery.into_changes()));
        let guard = Arc::new(Guard {
            shared: Arc::clone(&shared),
            driver: task.abort_handle(),
        });
        Ok(Balanced { shared, guard })
    }
}
