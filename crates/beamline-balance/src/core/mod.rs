//! The balancer's core, sans-IO: the endpoint table, power-of-two-choices over PeakEWMA,
//! the health model per endpoint, the retry budget, draining.

mod config;
mod stats;
#[cfg(test)]
mod tests;

pub use config::{BalancerConfig, BalancerConfigError};
pub use stats::{BalancerStats, EndpointState, EndpointStats};

use std::fmt;
use std::time::{Duration, Instant};

use beamline_reconnect::SplitMix64;

use crate::budget::RetryBudget;
use crate::endpoint::{Failure, Readiness};
use crate::health::{self, Health, Outcome, Ticket, Transition, ejection_allowed};
use crate::load::PeakEwma;

/// Which endpoint, stable while it is in the table: a removed endpoint's id is never given
/// to another (the slot's generation changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EndpointId {
    index: u32,
    generation: u32,
}

/// One request sent to one endpoint: hand it back to [`Balancer::complete`] exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a pick counts as in flight until it is completed"]
pub struct Pick {
    id: EndpointId,
    ticket: Ticket,
    started: Instant,
}

impl Pick {
    /// The endpoint it went to.
    pub fn id(&self) -> EndpointId {
        self.id
    }

    /// Whether it is its endpoint's probe (the endpoint is back from an ejection).
    pub fn is_probe(&self) -> bool {
        self.ticket.is_probe()
    }
}

/// Why a retry does not go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::exhaustive_enums)] // closed on purpose: an output of the sans-IO core a driver must handle
pub enum NoRetry {
    /// No endpoint that was not already tried can take it.
    NoEndpoint,
    /// The retry budget is spent.
    Budget,
}

/// What [`Balancer::remove`] did.
#[derive(Debug, PartialEq, Eq)]
#[allow(clippy::exhaustive_enums)] // closed on purpose: an output of the sans-IO core a driver must handle
pub enum Removed<T> {
    /// Nothing was in flight: here is the endpoint, out of the table.
    Now(T),
    /// It drains: it takes no new request and is handed back by the [`Balancer::complete`]
    /// that ends its last one.
    Draining,
}

/// An endpoint in the table.
#[derive(Debug)]
struct Entry<T> {
    value: T,
    draining: bool,
    rtt: PeakEwma,
    health: Health,
    in_flight: u32,
    requests: u64,
    failures: u64,
    ejections: u64,
}

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    entry: Option<Entry<T>>,
}

/// The balancer's decisions, sans-IO: which endpoint takes a request, whether a failed one
/// may be retried, and what each outcome does to the endpoint's load and health.
///
/// `T` is whatever the caller keeps per endpoint (an address, a client handle). Every
/// method takes `now`; randomness comes from a generator seeded by
/// [`BalancerConfig::seed`]. The I/O around it ([`Balanced`](crate::Balanced)) holds it
/// under one lock, so a pick and a removal are ordered.
///
/// # Guarantees
/// - **Power of two choices over PeakEWMA**: a pick samples two distinct candidates
///   uniformly and takes the one with the lower `rtt estimate × (in flight + 1)`.
/// - **Candidates**: not draining, not excluded, admitted by their health (healthy, or a
///   probing endpoint with no probe in flight), and [`Readiness::Ready`] as the caller
///   reports it at that moment; only when none is ready, the
///   [`Readiness::Connecting`] ones. Readiness is never cached, so an endpoint that becomes
///   ready is a candidate on the next pick.
/// - **A removed endpoint takes no new request** from the moment [`remove`](Self::remove)
///   returns; it stays in the table, draining, until its last request completes.
/// - **Retries are budgeted**: [`retry`](Self::retry) goes out only within the
///   [`RetryBudget`], and never to an excluded endpoint (the caller excludes the ones
///   already tried).
#[derive(Debug)]
pub struct Balancer<T> {
    config: BalancerConfig,
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    rng: SplitMix64,
    budget: RetryBudget,
    /// Candidates of the pick under way (kept to reuse their allocation).
    ready: Vec<u32>,
    connecting: Vec<u32>,
    stats: BalancerStats,
}

impl<T: fmt::Debug> Balancer<T> {
    /// An empty balancer.
    ///
    /// # Errors
    /// The config cannot work ([`BalancerConfig::validate`]).
    pub fn new(config: BalancerConfig, now: Instant) -> Result<Self, BalancerConfigError> {
        config.validate()?;
        let rng = match config.seed {
            Some(seed) => SplitMix64::new(seed),
            None => SplitMix64::from_entropy(),
        };
        let budget = RetryBudget::new(&config.budget, now);
        Ok(Balancer {
            config,
            slots: Vec::new(),
            free: Vec::new(),
            rng,
            budget,
            ready: Vec::new(),
            connecting: Vec::new(),
            stats: BalancerStats::default(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &BalancerConfig {
        &self.config
    }

    /// Adds an endpoint, healthy, its round-trip estimate the lowest of the healthy ones'
    /// (or the default when there is none): it neither starves, waiting for an estimate that
    /// only comes down over the decay, nor floods (the in-flight factor bounds it, and its
    /// first slow answer raises its estimate at once).
    pub fn insert(&mut self, value: T, now: Instant) -> EndpointId {
        let initial = self.fresh_estimate(now);
        let entry = Entry {
            value,
            draining: false,
            rtt: PeakEwma::new(initial, self.config.decay, now),
            health: Health::new(now),
            in_flight: 0,
            requests: 0,
            failures: 0,
            ejections: 0,
        };
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    entry: None,
                });
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.entry = Some(entry);
        EndpointId {
            index,
            generation: slot.generation,
        }
    }

    /// The estimate a fresh endpoint starts from: the lowest of the healthy endpoints'
    /// estimates now, or the default.
    fn fresh_estimate(&self, now: Instant) -> Duration {
        self.entries()
            .filter(|(_, e)| !e.draining && e.health.state() == health::HealthState::Healthy)
            .map(|(_, e)| e.rtt.estimate(now))
            .min()
            .unwrap_or(self.config.default_rtt)
    }

    /// Removes an endpoint: from now on it takes no new request. `None` if `id` is not in
    /// the table (already removed).
    pub fn remove(&mut self, id: EndpointId) -> Option<Removed<T>> {
        let entry = self.entry_mut(id)?;
        if entry.draining {
            return Some(Removed::Draining);
        }
        entry.draining = true;
        if entry.in_flight == 0 {
            return self.take(id).map(Removed::Now);
        }
        Some(Removed::Draining)
    }

    /// The endpoint of `id`, while it is in the table (draining included).
    pub fn get(&self, id: EndpointId) -> Option<&T> {
        self.entry(id).map(|e| &e.value)
    }

    /// Every endpoint in the table that takes requests (not draining), with its id.
    pub fn active(&self) -> impl Iterator<Item = (EndpointId, &T)> {
        self.entries()
            .filter(|(_, e)| !e.draining)
            .map(|(id, e)| (id, &e.value))
    }

    /// How many endpoints take requests (draining ones not counted).
    pub fn len(&self) -> usize {
        self.entries().filter(|(_, e)| !e.draining).count()
    }

    /// Whether no endpoint takes requests.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Picks the endpoint for a new request (its first attempt), which also earns the retry
    /// budget its deposit. `None` when no endpoint can take it now. `readiness` is asked
    /// about the candidates at this moment.
    pub fn pick(&mut self, now: Instant, readiness: impl Fn(&T) -> Readiness) -> Option<Pick> {
        let index = self.choose(now, &[], readiness)?;
        let pick = self.start(index, now)?;
        self.budget.deposit(now);
        self.stats.requests += 1;
        Some(pick)
    }

    /// Records a new request that found no endpoint (it still earns the budget its
    /// deposit: it is a request).
    pub fn unpicked(&mut self, now: Instant) {
        self.budget.deposit(now);
        self.stats.requests += 1;
    }

    /// Picks the endpoint for a retry of a request that failed on each of `tried`, if the
    /// budget allows one and an endpoint not in `tried` can take it.
    ///
    /// # Errors
    /// [`NoRetry`]: no other endpoint, or no budget.
    pub fn retry(
        &mut self,
        now: Instant,
        tried: &[EndpointId],
        readiness: impl Fn(&T) -> Readiness,
    ) -> Result<Pick, NoRetry> {
        let Some(index) = self.choose(now, tried, readiness) else {
            return Err(NoRetry::NoEndpoint);
        };
        if !self.budget.withdraw(now) {
            self.stats.retries_refused += 1;
            return Err(NoRetry::Budget);
        }
        let pick = self.start(index, now).ok_or(NoRetry::NoEndpoint)?;
        self.stats.retries += 1;
        Ok(pick)
    }

    /// Ends the request of `pick` with `outcome`: updates its endpoint's round-trip estimate
    /// and health. Returns the endpoint when it was draining and this was its last request.
    pub fn complete(&mut self, pick: Pick, outcome: Outcome, now: Instant) -> Option<T> {
        let may_eject = ejection_allowed(
            self.entries()
                .filter(|(_, e)| !e.draining && e.health.is_ejected())
                .count(),
            self.len(),
            self.config.health.max_ejected_share,
        );
        let (config, default_rtt) = (&self.config.health, self.config.default_rtt);
        let entry = self
            .slots
            .get_mut(pick.id.index as usize)
            .filter(|s| s.generation == pick.id.generation)
            .and_then(|s| s.entry.as_mut())?;
        entry.in_flight = entry.in_flight.saturating_sub(1);
        let elapsed = now.saturating_duration_since(pick.started);
        match outcome {
            Outcome::Success | Outcome::Failed(Failure::Rejected) => {
                entry.rtt.observe(elapsed, now)
            }
            Outcome::Failed(_) => {
                entry.failures += 1;
                entry.rtt.penalize(elapsed, default_rtt, now);
            }
            Outcome::Cancelled => {}
        }
        if !entry.draining {
            let transition = entry
                .health
                .finish(pick.ticket, outcome, may_eject, config, now);
            if let Some(transition) = transition {
                health::log(&entry.value, transition);
                match transition {
                    Transition::Ejected { .. } => {
                        entry.ejections += 1;
                        self.stats.ejections += 1;
                    }
                    Transition::Healthy => {
                        // Back from an ejection: its failures' penalties are history; it
                        // starts over like a new endpoint.
                        let (fresh, decay) = (self.fresh_estimate(now), self.config.decay);
                        if let Some(entry) = self.entry_mut(pick.id) {
                            entry.rtt = PeakEwma::new(fresh, decay, now);
                        }
                    }
                    _ => {}
                }
            }
        }
        let entry = self.entry_mut(pick.id)?;
        if entry.draining && entry.in_flight == 0 {
            return self.take(pick.id);
        }
        None
    }

    /// The counters, and the retries the budget holds now.
    pub fn stats(&mut self, now: Instant) -> BalancerStats {
        BalancerStats {
            budget: self.budget.balance(now),
            ..self.stats
        }
    }

    /// Each endpoint in the table (draining ones too) with its figures now; `readiness`
    /// says which are still connecting.
    pub fn endpoints(
        &self,
        now: Instant,
        readiness: impl Fn(&T) -> Readiness,
    ) -> Vec<(EndpointId, &T, EndpointStats)> {
        self.entries()
            .map(|(id, e)| {
                let state = EndpointState::of(e.draining, e.health.state(), readiness(&e.value));
                let stats = EndpointStats {
                    state,
                    in_flight: e.in_flight,
                    load: e.rtt.cost(e.in_flight, now),
                    rtt: e.rtt.estimate(now),
                    requests: e.requests,
                    failures: e.failures,
                    ejections: e.ejections,
                };
                (id, &e.value, stats)
            })
            .collect()
    }

    /// The candidate for a request: power of two choices among the ready ones (the
    /// connecting ones when none is ready), skipping `exclude`.
    fn choose(
        &mut self,
        now: Instant,
        exclude: &[EndpointId],
        readiness: impl Fn(&T) -> Readiness,
    ) -> Option<u32> {
        self.ready.clear();
        self.connecting.clear();
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Some(entry) = slot.entry.as_mut().filter(|e| !e.draining) else {
                continue;
            };
            let id = EndpointId {
                index: index as u32,
                generation: slot.generation,
            };
            if exclude.contains(&id) {
                continue;
            }
            if let Some(transition) = entry.health.poll(now) {
                health::log(&entry.value, transition);
            }
            let admission = entry.health.admission();
            if admission == health::Admission::Refused {
                continue;
            }
            match readiness(&entry.value) {
                // A ready endpoint back from an ejection gets its one probe at once,
                // whatever its estimate: the probe, not the decay, decides its return.
                Readiness::Ready if admission == health::Admission::Probe => {
                    return Some(id.index);
                }
                Readiness::Ready => self.ready.push(id.index),
                Readiness::Connecting => self.connecting.push(id.index),
                Readiness::Unavailable => {}
            }
        }
        let pool = if self.ready.is_empty() {
            &self.connecting
        } else {
            &self.ready
        };
        let n = pool.len() as u64;
        match n {
            0 => None,
            1 => Some(pool[0]),
            _ => {
                let a = below(&mut self.rng, n);
                let mut b = below(&mut self.rng, n - 1);
                if b >= a {
                    b += 1;
                }
                let (a, b) = (pool[a as usize], pool[b as usize]);
                Some(if self.cost(a, now) <= self.cost(b, now) {
                    a
                } else {
                    b
                })
            }
        }
    }

    fn cost(&self, index: u32, now: Instant) -> f64 {
        self.slots[index as usize]
            .entry
            .as_ref()
            .map_or(f64::INFINITY, |e| e.rtt.cost(e.in_flight, now))
    }

    /// Starts a request on the candidate `index`, which `choose` just admitted (so its
    /// health gives a ticket).
    fn start(&mut self, index: u32, now: Instant) -> Option<Pick> {
        let slot = &mut self.slots[index as usize];
        let id = EndpointId {
            index,
            generation: slot.generation,
        };
        let entry = slot.entry.as_mut()?;
        let ticket = entry.health.start()?;
        entry.in_flight += 1;
        entry.requests += 1;
        self.stats.attempts += 1;
        Some(Pick {
            id,
            ticket,
            started: now,
        })
    }

    fn entries(&self) -> impl Iterator<Item = (EndpointId, &Entry<T>)> {
        self.slots.iter().enumerate().filter_map(|(index, slot)| {
            slot.entry.as_ref().map(|e| {
                (
                    EndpointId {
                        index: index as u32,
                        generation: slot.generation,
                    },
                    e,
                )
            })
        })
    }

    fn entry(&self, id: EndpointId) -> Option<&Entry<T>> {
        self.slots
            .get(id.index as usize)
            .filter(|s| s.generation == id.generation)?
            .entry
            .as_ref()
    }

    fn entry_mut(&mut self, id: EndpointId) -> Option<&mut Entry<T>> {
        self.slots
            .get_mut(id.index as usize)
            .filter(|s| s.generation == id.generation)?
            .entry
            .as_mut()
    }

    /// Takes an entry out of the table; its slot gets a new generation.
    fn take(&mut self, id: EndpointId) -> Option<T> {
        let slot = self
            .slots
            .get_mut(id.index as usize)
            .filter(|s| s.generation == id.generation)?;
        let entry = slot.entry.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.index);
        Some(entry.value)
    }
}

/// A uniform draw in `0..n` (`n > 0`), by Lemire's multiply-shift (bias below 2^-32 for the
/// small `n` of an endpoint table).
fn below(rng: &mut SplitMix64, n: u64) -> u64 {
    ((u128::from(rng.next()) * u128::from(n)) >> 64) as u64
}
