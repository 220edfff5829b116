//! What the balancer counts: per endpoint and in all.

use std::time::{Duration, Instant};

use crate::endpoint::Readiness;
use crate::health::HealthState;

/// Where an endpoint stands, for a dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::exhaustive_enums)] // closed on purpose: the health model's states, matched by dashboards
pub enum EndpointState {
    /// Its client is being made or is reconnecting: picked only when no endpoint is ready.
    Connecting,
    /// Takes its share of requests.
    Healthy,
    /// Takes no request until `until`.
    Ejected {
        /// When probing starts.
        until: Instant,
    },
    /// Back from an ejection: one request at a time until the probe succeeds.
    Probing,
    /// Removed: takes no new request, finishes the ones in flight, then is closed.
    Draining,
}

impl EndpointState {
    pub(crate) fn of(draining: bool, health: HealthState, readiness: Readiness) -> Self {
        match (draining, health, readiness) {
            (true, _, _) => EndpointState::Draining,
            (false, HealthState::Ejected { until }, _) => EndpointState::Ejected { until },
            (false, HealthState::Probing, _) => EndpointState::Probing,
            (false, HealthState::Healthy, Readiness::Ready) => EndpointState::Healthy,
            (false, HealthState::Healthy, _) => EndpointState::Connecting,
        }
    }
}

/// One endpoint's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct EndpointStats {
    /// Its state.
    pub state: EndpointState,
    /// Requests in flight on it.
    pub in_flight: u32,
    /// The load P2C compares: `rtt × (in_flight + 1)`, in nanoseconds.
    pub load: f64,
    /// Its PeakEWMA round-trip estimate now.
    pub rtt: Duration,
    /// Requests (attempts) sent to it.
    pub requests: u64,
    /// Those that failed in a way that counts against it.
    pub failures: u64,
    /// Times it was ejected.
    pub ejections: u64,
}

/// The balancer's counters.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct BalancerStats {
    /// Requests made (first attempts, and requests that found no endpoint).
    pub requests: u64,
    /// Attempts sent to an endpoint (first attempts and retries).
    pub attempts: u64,
    /// Retries sent: budget spent.
    pub retries: u64,
    /// Retries the budget refused (the caller got the original error).
    pub retries_refused: u64,
    /// Ejections, all endpoints together.
    pub ejections: u64,
    /// Retries the budget holds now.
    pub budget: f64,
}
