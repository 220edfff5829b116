//! The balanced client: the sans-IO [`Balancer`] under one lock, a driver task for discovery
//! and the endpoints' clients, and the retry loop of each call.

mod builder;
mod call;
mod driver;
mod error;
#[cfg(test)]
mod tests;

pub use builder::BalancedBuilder;
pub use error::{BalanceError, StartError};

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;

use crate::core::{Balancer, BalancerStats, EndpointId, EndpointStats};
use crate::discover::Discovery;
use crate::endpoint::{Endpoint, Readiness};

/// How to make the client of one endpoint, given its address.
///
/// Any `Fn(SocketAddr) -> impl Future<Output = Result<E, Err>>` closure is one, which is
/// the usual way to write it (with the facade: `|addr| Client::builder(addr).connect()`).
/// A failed attempt is retried with a jittered backoff while the endpoint stays discovered;
/// until one succeeds the endpoint takes no request.
pub trait MakeEndpoint: Send + Sync + 'static {
    /// The endpoint client it makes.
    type Endpoint: Endpoint;
    /// Why an attempt failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Makes the client of the endpoint at `addr`.
    fn make(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = Result<Self::Endpoint, Self::Error>> + Send;
}

impl<F, Fut, E, Err> MakeEndpoint for F
where
    F: Fn(SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<E, Err>> + Send,
    E: Endpoint,
    Err: std::error::Error + Send + Sync + 'static,
{
    type Endpoint = E;
    type Error = Err;

    fn make(&self, addr: SocketAddr) -> impl Future<Output = Result<E, Err>> + Send {
        self(addr)
    }
}

/// One endpoint as the table holds it: its address and, once made, its client.
pub(crate) struct Member<E> {
    pub(crate) addr: SocketAddr,
    pub(crate) client: OnceLock<E>,
}

impl<E> fmt::Debug for Member<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)
    }
}

impl<E: Endpoint> Member<E> {
    pub(crate) fn readiness(&self) -> Readiness {
        self.client
            .get()
            .map_or(Readiness::Unavailable, E::readiness)
    }

    /// Closes its client, if it has one.
    pub(crate) fn close(&self) {
        if let Some(client) = self.client.get() {
            client.close();
        }
    }
}

/// The readiness of a table entry, as the core asks for it.
pub(crate) fn readiness<E: Endpoint>(member: &Arc<Member<E>>) -> Readiness {
    member.readiness()
}

/// The endpoint table: the core and the address of each discovered endpoint.
pub(crate) struct Table<E> {
    pub(crate) core: Balancer<Arc<Member<E>>>,
    pub(crate) by_addr: HashMap<SocketAddr, EndpointId>,
}

/// What the handles, the calls and the driver share.
pub(crate) struct Shared<E> {
    pub(crate) name: Arc<str>,
    pub(crate) table: Mutex<Table<E>>,
    /// Woken when an endpoint may have become able to take requests (added, made).
    pub(crate) changed: Notify,
    pub(crate) closed: AtomicBool,
    pub(crate) timeout: Option<Duration>,
}

impl<E: Endpoint> Shared<E> {
    /// The table; a panic elsewhere while it was held does not poison the balancer (its
    /// state is plain counters, consistent between any two statements that touch it).
    pub(crate) fn table(&self) -> MutexGuard<'_, Table<E>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// `now` as the sans-IO core takes it: tokio's clock (so paused time drives it in tests).
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Closes every endpoint and stops the driver when the last handle goes.
struct Guard<E: Endpoint> {
    shared: Arc<Shared<E>>,
    driver: tokio::task::AbortHandle,
}

impl<E: Endpoint> Drop for Guard<E> {
    fn drop(&mut self) {
        close(&self.shared, &self.driver);
    }
}

fn close<E: Endpoint>(shared: &Shared<E>, driver: &tokio::task::AbortHandle) {
    if shared.closed.swap(true, Ordering::AcqRel) {
        return;
    }
    driver.abort();
    let members: Vec<Arc<Member<E>>> = {
        let table = shared.table();
        table.core.active().map(|(_, m)| Arc::clone(m)).collect()
    };
    for member in members {
        member.close();
    }
    shared.changed.notify_waiters();
}

/// One client over many endpoints: each request goes to the less loaded of two endpoints
/// picked at random (PeakEWMA), a sick endpoint is ejected and probed back, a request that
/// was not sent (or was lost, if idempotent) is retried elsewhere within a budget, and the
/// endpoints follow discovery.
///
/// Built by [`Balanced::builder`]. Cheap to clone (every clone is the same client); when the
/// last clone is dropped every endpoint's client is closed.
///
/// # Guarantees
/// - **Every call ends by its deadline** ([`BalancedBuilder::timeout`], 30 s by default)
///   with its own answer or a typed [`BalanceError`] that says whether it may have been
///   delivered.
/// - **A sick endpoint is ejected and probed back**: consecutive failures that count
///   (connect errors, lost connections, timeouts, the call's deadline passing while the
///   attempt was on it; not a typed error the server answered)
///   eject it for `base × n`; it then takes one request at a time until its probe succeeds;
///   never more than the configured share is ejected at once.
/// - **Retries stay within the budget and never go back**: a request that was not sent, or
///   was lost and is idempotent ([`call_idempotent`](Self::call_idempotent)), is retried on
///   an endpoint it has not tried yet, if the retry budget allows; otherwise the caller gets
///   the original error.
/// - **A removed endpoint takes no new request** from the moment discovery removes it; its
///   requests in flight finish, then its client is closed.
/// - **An endpoint takes requests as soon as it can**: readiness is read at every pick, so
///   an endpoint whose client finishes connecting is a candidate at once.
pub struct Balanced<E: Endpoint> {
    shared: Arc<Shared<E>>,
    guard: Arc<Guard<E>>,
}

impl<E: Endpoint> Clone for Balanced<E> {
    fn clone(&self) -> Self {
        Balanced {
            shared: Arc::clone(&self.shared),
            guard: Arc::clone(&self.guard),
        }
    }
}

impl<E: Endpoint> fmt::Debug for Balanced<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Balanced")
            .field("name", &self.shared.name)
            .field("endpoints", &self.shared.table().core.len())
            .field("closed", &self.shared.is_closed())
            .finish()
    }
}

/// A balanced client's figures ([`Balanced::stats`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BalancedStats {
    /// Requests, attempts, retries spent and refused, ejections, the budget left.
    pub totals: BalancerStats,
    /// Every endpoint in the table (draining ones too), with its load, round-trip estimate
    /// and state.
    pub endpoints: Vec<(SocketAddr, EndpointStats)>,
}

impl BalancedStats {
    /// The figures of the endpoint at `addr` (the taking one, if it is also draining).
    pub fn endpoint(&self, addr: SocketAddr) -> Option<&EndpointStats> {
        let mut found = self.endpoints.iter().filter(|(a, _)| *a == addr);
        let first = found.next().map(|(_, s)| s);
        found
            .map(|(_, s)| s)
            .find(|s| s.state != crate::EndpointState::Draining)
            .or(first)
    }
}

impl<E: Endpoint> Balanced<E> {
    /// A builder for a client over the endpoints `discovery` finds, each one's client made
    /// by `make`.
    pub fn builder<M>(discovery: impl Into<Discovery>, make: M) -> BalancedBuilder<M>
    where
        M: MakeEndpoint<Endpoint = E>,
    {
        BalancedBuilder::new(discovery.into(), make)
    }

    /// The client's name (in errors and traces).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The counters and every endpoint's figures now.
    pub fn stats(&self) -> BalancedStats {
        let now = now();
        let mut table = self.shared.table();
        let endpoints = table
            .core
            .endpoints(now, readiness)
            .into_iter()
            .map(|(_, member, stats)| (member.addr, stats))
            .collect();
        BalancedStats {
            totals: table.core.stats(now),
            endpoints,
        }
    }

    /// Closes the client for good: later calls fail with [`BalanceError::Closed`], every
    /// endpoint's client is closed (calls in flight end as their endpoint reports them),
    /// discovery stops. Every clone is closed. Idempotent.
    pub fn close(&self) {
        close(&self.shared, &self.guard.driver);
    }

    /// Whether the client is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }
}
