//! One [`Health`] per key, with the share rule: the health model for a router that picks its
//! node itself (a cluster client routing by slot) rather than by load.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::time::Instant;

use super::{Health, HealthConfig, HealthState, Outcome, Ticket, Transition, ejection_allowed};

/// The health of a set of endpoints keyed by `K`, never ejecting more than
/// [`HealthConfig::max_ejected_share`] of them at once.
///
/// Sans-IO: every method takes `now`. Transitions are returned and logged (`tracing`, target
/// `beamline_balance::health`) so the caller can count them.
///
/// # Examples
/// ```
/// use std::time::{Duration, Instant};
/// use beamline_balance::{Failure, HealthConfig, HealthSet, HealthState, Outcome};
///
/// let config = HealthConfig::new().consecutive_failures(2).base_ejection(Duration::from_secs(1));
/// let mut nodes = HealthSet::new(config)?;
/// let now = Instant::now();
/// for node in ["a", "b", "c", "d"] {
///     nodes.insert(node, now);
/// }
/// for _ in 0..2 {
///     let ticket = nodes.start(&"a", now).expect("healthy");
///     nodes.finish(&"a", ticket, Outcome::Failed(Failure::ConnectionLost), now);
/// }
/// assert!(matches!(nodes.state(&"a"), Some(HealthState::Ejected { .. })));
/// assert!(nodes.start(&"a", now).is_none());
/// // A second later it is probed: one request at a time.
/// let later = now + Duration::from_secs(1);
/// let probe = nodes.start(&"a", later).expect("probe");
/// assert!(probe.is_probe() && nodes.start(&"a", later).is_none());
/// nodes.finish(&"a", probe, Outcome::Success, later);
/// assert_eq!(nodes.state(&"a"), Some(HealthState::Healthy));
/// # Ok::<(), beamline_balance::HealthConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct HealthSet<K> {
    config: HealthConfig,
    nodes: HashMap<K, Health>,
}

impl<K: Eq + Hash + fmt::Debug> HealthSet<K> {
    /// An empty set.
    ///
    /// # Errors
    /// The config cannot work ([`HealthConfig::validate`]).
    pub fn new(config: HealthConfig) -> Result<Self, super::HealthConfigError> {
        config.validate()?;
        Ok(HealthSet {
            config,
            nodes: HashMap::new(),
        })
    }

    /// Adds `key` as healthy (a key already in keeps its history).
    pub fn insert(&mut self, key: K, now: Instant) {
        self.nodes.entry(key).or_insert_with(|| Health::new(now));
    }

    /// Forgets `key`.
    pub fn remove(&mut self, key: &K) {
        self.nodes.remove(key);
    }

    /// The state of `key` now (`None` if unknown).
    pub fn state(&self, key: &K) -> Option<HealthState> {
        self.nodes.get(key).map(Health::state)
    }

    /// How many are ejected now.
    pub fn ejected(&self) -> usize {
        self.nodes.values().filter(|h| h.is_ejected()).count()
    }

    /// Starts a request to `key` if it admits one now (healthy, or probing with no probe in
    /// flight); `None` if it is ejected, its probe is busy, or the key is unknown.
    pub fn start(&mut self, key: &K, now: Instant) -> Option<Ticket> {
        let health = self.nodes.get_mut(key)?;
        if let Some(t) = health.poll(now) {
            log(key, t);
        }
        health.start()
    }

    /// Ends the request of `ticket` to `key`; returns the transition it caused, if any.
    pub fn finish(
        &mut self,
        key: &K,
        ticket: Ticket,
        outcome: Outcome,
        now: Instant,
    ) -> Option<Transition> {
        let may_eject = ejection_allowed(
            self.ejected(),
            self.nodes.len(),
            self.config.max_ejected_share,
        );
        let transition =
            self.nodes
                .get_mut(key)?
                .finish(ticket, outcome, may_eject, &self.config, now)?;
        log(key, transition);
        Some(transition)
    }
}

/// The `tracing` event of a transition.
pub(crate) fn log(endpoint: &dyn fmt::Debug, transition: Transition) {
    match transition {
        Transition::Ejected {
            duration,
            ejections,
        } => tracing::warn!(
            target: "beamline_balance::health",
            ?endpoint, ?duration, ejections, "endpoint ejected"
        ),
        Transition::EjectionSkipped => tracing::debug!(
            target: "beamline_balance::health",
            ?endpoint, "endpoint failing, but the ejected share is full: it keeps its load"
        ),
        Transition::Probing => tracing::info!(
            target: "beamline_balance::health",
            ?endpoint, "ejection over: probing the endpoint"
        ),
        Transition::Healthy => tracing::info!(
            target: "beamline_balance::health",
            ?endpoint, "probe succeeded: the endpoint takes full load again"
        ),
    }
}
