//! One client over many servers (guide written below).

#![forbid(unsafe_code)]
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
