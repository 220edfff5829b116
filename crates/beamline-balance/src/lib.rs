//! One client over many servers: power-of-two-choices over PeakEWMA, outlier ejection with
//! probing, Finagle-style retry budgets, and discovery.
//!
//! # Components
//! - [`Balanced`] (feature `client`, on by default): the tokio client. Each endpoint's own
//!   client comes from a [`MakeEndpoint`] (the facade's `Client`, a
//!   [`Reconnect`](beamline_reconnect::Reconnect), or yours through [`Endpoint`]); endpoints
//!   come from a [`Discovery`]: a fixed list, [`Dns`] re-resolved on a timer that respects a
//!   minimum TTL (the [`Resolver`] is pluggable), or a stream of [`Change`]s.
//! - [`Balancer`]: the sans-IO core under it (endpoint table, P2C, draining, the retry
//!   rule): `now` and readiness in, picks out. Deterministic for a seed.
//! - [`HealthSet`] / [`Health`]: the health model (consecutive failures eject for
//!   `base × n`, capped; at most a share ejected; one probe at a time before full load).
//! - [`PeakEwma`]: the round-trip estimate; [`RetryBudget`]: the budget.
//!
//! # Guarantees
//! - **Every call ends by its deadline** with its own answer or a typed [`BalanceError`]
//!   that says whether it may have been delivered.
//! - **Load-aware choice**: two endpoints at random, the one with the lower
//!   `PeakEWMA × (in flight + 1)` takes the request; an endpoint is a candidate from the
//!   moment its client reports ready (no tower#824).
//! - **A sick endpoint is ejected and probed back**: consecutive connect errors, lost
//!   connections and timeouts (its client's own, or the call's deadline passing while the
//!   attempt was on it) eject it; a typed error the server answered never counts. Never more
//!   than [`HealthConfig::max_ejected_share`] at once.
//! - **Retries never storm**: only a request that was not sent (or was lost and is
//!   idempotent) is retried, only on an endpoint it has not tried, only while the budget
//!   (20% of requests plus 10/s over 10 s by default, fractions kept: no tower#863) holds one;
//!   otherwise the caller gets the original error.
//! - **Discovery is exact**: a removed endpoint takes no request from the moment of its
//!   removal (no tower#856), drains its requests in flight, then is closed.
//! - **Observable**: [`Balanced::stats`] gives each endpoint's state (healthy, connecting,
//!   ejected, probing, draining), load, estimate, requests, failures and ejections, and the
//!   retries spent and refused; every transition is a `tracing` event.
//!
//! # Failure
//! A call that fails returns [`BalanceError`]: `Endpoint` (the last attempt's own error),
//! `NoEndpoint`, `Timeout` or `Closed`, each with [`WasSent::was_sent`]. Bad settings are refused when
//! the client starts ([`StartError`]), never at a call.

#![forbid(unsafe_code)]
// Every public type decides whether it may grow: #[non_exhaustive], or an allow that says why
// it is closed.
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

#[cfg(feature = "client")]
mod balanced;
mod budget;
mod core;
#[cfg(feature = "client")]
pub mod discover;
mod endpoint;
mod health;
mod load;

#[cfg(feature = "client")]
pub use balanced::{
    BalanceError, Balanced, BalancedBuilder, BalancedStats, MakeEndpoint, StartError,
};
/// The supertrait of [`EndpointError`], also implemented by [`BalanceError`]: whether a failed
/// request may have been written, from the dependency-free `beamline-failure`.
#[doc(inline)]
pub use beamline_failure::WasSent;
pub use budget::{BudgetConfig, BudgetConfigError, RetryBudget};
pub use core::{
    Balancer, BalancerConfig, BalancerConfigError, BalancerStats, EndpointId, EndpointState,
    EndpointStats, NoRetry, Pick, Removed,
};
#[cfg(feature = "client")]
pub use discover::{Change, Discovery, Dns, Resolution, Resolver, SystemResolver};
pub use endpoint::{Endpoint, EndpointError, Failure, Readiness};
pub use health::{
    Admission, Health, HealthConfig, HealthConfigError, HealthSet, HealthState, Outcome, Ticket,
    Transition, ejection_allowed,
};
pub use load::PeakEwma;
