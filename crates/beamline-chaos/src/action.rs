//! [`Action`]: one thing done to a proxy, as data (a leaf: both the proxy and the schedule
//! use it).

use std::net::SocketAddr;

use crate::fault::{Direction, Fault, FaultKind, PartitionMode};

/// One thing a [`Schedule`](crate::Schedule) step (or [`Proxy::perform`](crate::Proxy::perform)) does to a proxy; each variant is the
/// [`Proxy`](crate::Proxy) method of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// [`Proxy::apply`](crate::Proxy::apply).
    Apply {
        /// Where.
        direction: Direction,
        /// What.
        fault: Fault,
    },
    /// [`Proxy::clear`](crate::Proxy::clear).
    Clear {
        /// Where.
        direction: Direction,
        /// Which fault.
        kind: FaultKind,
    },
    /// [`Proxy::clear_all`](crate::Proxy::clear_all).
    ClearAll,
    /// [`Proxy::partition_with`](crate::Proxy::partition_with).
    Partition(PartitionMode),
    /// [`Proxy::heal`](crate::Proxy::heal).
    Heal,
    /// [`Proxy::refuse_new`](crate::Proxy::refuse_new).
    RefuseNew(bool),
    /// [`Proxy::reset_all`](crate::Proxy::reset_all).
    ResetAll,
    /// [`Proxy::set_upstream`](crate::Proxy::set_upstream).
    SetUpstream(SocketAddr),
}
