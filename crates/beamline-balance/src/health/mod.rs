//! The health model of one endpoint, sans-IO: consecutive failures eject it for a while,
//! then it is probed before it takes full load again.
//!
//! [`Health`] is one endpoint's state machine; [`HealthSet`] keeps one per key and the rule
//! that never ejects more than a share of them at once. Both take `now` and outcomes, never
//! a clock or a socket: the [`Balancer`](crate::Balancer) feeds them, and so can any other
//! router (a cluster client routing by slot uses the same model per node).
//!
//! ```text
//!            n consecutive failures               the ejection ends
//! Healthy ──────────────────────────► Ejected ───────────────────────► Probing
//!    ▲        (base × ejections, capped)  ▲                               │
//!    │                                    └─────── the probe fails ───────┤
//!    └─────────────────────── enough probes succeed ─────────────────────┘
//! ```

mod config;
mod set;
#[cfg(test)]
mod tests;

pub use config::{HealthConfig, HealthConfigError};
pub use set::HealthSet;
pub(crate) use set::log;

use std::time::{Duration, Instant};

use crate::endpoint::Failure;

/// How one request to an endpoint ended, as the health model and the load estimate see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::exhaustive_enums)] // closed on purpose: an input of the sans-IO health model
pub enum Outcome {
    /// An answer.
    Success,
    /// A typed failure (see [`Failure`] for which ones count against the endpoint).
    Failed(Failure),
    /// The caller gave up (dropped the call, or its own deadline passed before the
    /// endpoint's): nothing is learned about the endpoint.
    Cancelled,
}

/// Where an endpoint stands in the health model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::exhaustive_enums)] // closed on purpose: the health model's states
pub enum HealthState {
    /// Takes its share of requests.
    Healthy,
    /// Takes no request until `until`.
    Ejected {
        /// When the ejection ends and probing starts.
        until: Instant,
    },
    /// Back from an ejection: takes one request at a time (the probe) until enough of them
    /// succeed in a row.
    Probing,
}

/// Whether an endpoint may take a request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::exhaustive_enums)] // closed on purpose: an output of the sans-IO health model
pub enum Admission {
    /// Yes, as one of its share.
    Full,
    /// Yes, as its one probe.
    Probe,
    /// No: ejected, or its probe is already in flight.
    Refused,
}

/// A change of an endpoint's health state, for the caller to log and count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::exhaustive_enums)] // closed on purpose: an output of the sans-IO health model
pub enum Transition {
    /// Ejected for `duration` (this is its `ejections`-th ejection not yet forgiven).
    Ejected {
        /// How long it takes no request.
        duration: Duration,
        /// The multiplier of the base ejection time.
        ejections: u32,
    },
    /// It failed enough to be ejected, but as many endpoints as the share allows are
    /// already ejected: it keeps its load.
    EjectionSkipped,
    /// The ejection ended: probing starts.
    Probing,
    /// The probes succeeded: full load again.
    Healthy,
}

/// A request admitted by [`Health::start`]; hand it back to [`Health::finish`] exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// The health epoch the request started in: an outcome from an older epoch (a request
    /// that started before an ejection) no longer moves the state.
    epoch: u32,
    probe: bool,
}

impl Ticket {
    /// Whether this request is its endpoint's probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

/// The explicit phase: one `match` decides every transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Healthy,
    Ejected { until: Instant },
    Probing { in_flight: bool, successes: u32 },
}

/// One endpoint's health: consecutive failures, ejections, probes.
///
/// # Guarantees
/// - **Only failures that say something about the endpoint count**: connect errors, lost
///   connections and timeouts ([`Failure::counts_against_endpoint`]); a typed error the
///   server answered with counts as an answer.
/// - **An ejection lasts `base × n`, capped**, where `n` counts this endpoint's ejections,
///   one forgiven for every `base` it then stays healthy.
/// - **Probing is a trickle**: after an ejection, at most one request at a time until
///   `probe_successes` succeed in a row; one failed probe ejects it again, for longer.
/// - **Stale outcomes change nothing**: a request that started before a transition does
///   not move the state when it ends.
#[derive(Debug, Clone)]
pub struct Health {
    phase: Phase,
    consecutive: u32,
    ejections: u32,
    /// When it last became healthy: ejections are forgiven from there.
    healthy_since: Instant,
    epoch: u32,
}

impl Health {
    /// A healthy endpoint with no history.
    pub fn new(now: Instant) -> Health {
        Health {
            phase: Phase::Healthy,
            consecutive: 0,
            ejections: 0,
            healthy_since: now,
            epoch: 0,
        }
    }

    /// The state now (after [`poll`](Self::poll)).
    pub fn state(&self) -> HealthState {
        match self.phase {
            Phase::Healthy => HealthState::Healthy,
            Phase::Ejected { until } => HealthState::Ejected { until },
            Phase::Probing { .. } => HealthState::Probing,
        }
    }

    /// Whether it is ejected now (probing does not count).
    pub fn is_ejected(&self) -> bool {
        matches!(self.phase, Phase::Ejected { .. })
    }

    /// Consecutive failures counted since the last answer.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive
    }

    /// Ejections not yet forgiven (the multiplier of the next ejection's base, minus one).
    pub fn ejections(&self) -> u32 {
        self.ejections
    }

    /// Ends an ejection whose time is up: `Some(Transition::Probing)` when it did.
    pub fn poll(&mut self, now: Instant) -> Option<Transition> {
        match self.phase {
            Phase::Ejected { until } if until <= now => {
                self.enter(Phase::Probing {
                    in_flight: false,
                    successes: 0,
                });
                Some(Transition::Probing)
            }
            _ => None,
        }
    }

    /// Whether a request may go to this endpoint now (call [`poll`](Self::poll) first so an
    /// ejection that ended is seen).
    pub fn admission(&self) -> Admission {
        match self.phase {
            Phase::Healthy => Admission::Full,
            Phase::Probing {
                in_flight: false, ..
            } => Admission::Probe,
            Phase::Ejected { .. } | Phase::Probing { .. } => Admission::Refused,
        }
    }

    /// Starts a request the endpoint admitted; `None` if it admits none now.
    pub fn start(&mut self) -> Option<Ticket> {
        match self.admission() {
            Admission::Full => Some(Ticket {
                epoch: self.epoch,
                probe: false,
            }),
            Admission::Probe => {
                if let Phase::Probing { in_flight, .. } = &mut self.phase {
                    *in_flight = true;
                }
                Some(Ticket {
                    epoch: self.epoch,
                    probe: true,
                })
            }
            Admission::Refused => None,
        }
    }

    /// Ends the request of `ticket` with `outcome`. `may_eject` says whether one more
    /// ejection fits under the share ([`ejection_allowed`]); when it does not, a failure
    /// that would eject is reported as [`Transition::EjectionSkipped`] and the endpoint
    /// keeps its state.
    pub fn finish(
        &mut self,
        ticket: Ticket,
        outcome: Outcome,
        may_eject: bool,
        config: &HealthConfig,
        now: Instant,
    ) -> Option<Transition> {
        if ticket.epoch != self.epoch {
            return None;
        }
        let failed = match outcome {
            Outcome::Cancelled => {
                self.free_probe(ticket);
                return None;
            }
            Outcome::Success => false,
            Outcome::Failed(failure) => failure.counts_against_endpoint(),
        };
        match self.phase {
            Phase::Healthy if !failed => {
                self.consecutive = 0;
                None
            }
            Phase::Healthy => {
                self.consecutive = self.consecutive.saturating_add(1);
                (self.consecutive >= config.consecutive_failures)
                    .then(|| self.eject_if(may_eject, config, now))
            }
            Phase::Probing { successes, .. } if !failed => {
                let successes = successes.saturating_add(1);
                if successes >= config.probe_successes {
                    self.healthy_since = now;
                    self.consecutive = 0;
                    self.enter(Phase::Healthy);
                    Some(Transition::Healthy)
                } else {
                    self.phase = Phase::Probing {
                        in_flight: false,
                        successes,
                    };
                    None
                }
            }
            Phase::Probing { .. } => {
                self.phase = Phase::Probing {
                    in_flight: false,
                    successes: 0,
                };
                Some(self.eject_if(may_eject, config, now))
            }
            // Nothing is admitted while ejected, so no current ticket ends here.
            Phase::Ejected { .. } => None,
        }
    }

    /// Frees the probe slot of a cancelled probe.
    fn free_probe(&mut self, ticket: Ticket) {
        if let Phase::Probing { in_flight, .. } = &mut self.phase
            && ticket.probe
        {
            *in_flight = false;
        }
    }

    fn eject_if(&mut self, may_eject: bool, config: &HealthConfig, now: Instant) -> Transition {
        if !may_eject {
            return Transition::EjectionSkipped;
        }
        if matches!(self.phase, Phase::Healthy) {
            let healthy_for = now.saturating_duration_since(self.healthy_since);
            let forgiven = healthy_for.as_nanos() / config.base_ejection.as_nanos().max(1);
            self.ejections = self
                .ejections
                .saturating_sub(u32::try_from(forgiven).unwrap_or(u32::MAX));
        }
        self.ejections = self.ejections.saturating_add(1);
        let duration = config
            .base_ejection
            .saturating_mul(self.ejections)
            .min(config.max_ejection);
        self.consecutive = 0;
        self.enter(Phase::Ejected {
            until: now + duration,
        });
        Transition::Ejected {
            duration,
            ejections: self.ejections,
        }
    }

    fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.epoch = self.epoch.wrapping_add(1);
    }
}

/// Whether one more endpoint may be ejected when `ejected` of `total` already are, under
/// `max_share` (0.5: never more than half of them at once).
pub fn ejection_allowed(ejected: usize, total: usize, max_share: f64) -> bool {
    (ejected + 1) as f64 <= max_share * total as f64
}
