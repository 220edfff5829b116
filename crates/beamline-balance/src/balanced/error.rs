//! What a balanced call and a balanced client's start can fail with.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::WasSent;
use crate::core::BalancerConfigError;
use crate::endpoint::{EndpointError, Failure};

/// Why a [`Balanced`](crate::Balanced) call failed.
///
/// `E` is the endpoint client's own error, kept whole. [`was_sent`](Self::was_sent) says
/// whether the request may have reached a server, over every attempt.
///
/// | variant | sent? | what happened |
/// |---|---|---|
/// | `Endpoint` | if any attempt may have been | the last attempt's error, not retried: not retryable (sent, or a typed error), or no budget, or no other endpoint |
/// | `NoEndpoint` | no | no endpoint could take the request within its deadline (none discovered, none connected) |
/// | `Timeout` | if any attempt may have been | the call's deadline passed (the attempt under way was dropped, which cancels it) |
/// | `Closed` | no | the balanced client was closed |
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BalanceError<E> {
    /// The last attempt failed and the request was not retried: the original error.
    #[error("{name}: {endpoint} failed after {attempts} attempt(s): {source}")]
    Endpoint {
        /// The balanced client's name.
        name: Arc<str>,
        /// The endpoint of the last attempt.
        endpoint: SocketAddr,
        /// Attempts made (1 + retries).
        attempts: u32,
        /// Whether any attempt may have been delivered.
        sent: bool,
        /// The last attempt's error.
        source: E,
    },
    /// No endpoint could take the request: none is known, or none has a client that can
    /// take a request, until the call's deadline (at once without one). Not sent.
    #[error("{name}: no endpoint could take the request ({known} known); it was not sent")]
    NoEndpoint {
        /// The balanced client's name.
        name: Arc<str>,
        /// Endpoints in the set (connecting, ejected or unavailable).
        known: usize,
    },
    /// The call's deadline passed.
    #[error("{name}: no answer within {timeout:?} after {attempts} attempt(s){}", if *.sent { "; it may have been delivered" } else { "" })]
    Timeout {
        /// The balanced client's name.
        name: Arc<str>,
        /// The deadline.
        timeout: Duration,
        /// Attempts made.
        attempts: u32,
        /// Whether any attempt may have been delivered (an attempt cut short by the
        /// deadline counts as maybe).
        sent: bool,
    },
    /// The balanced client is closed. Not sent.
    #[error("{name}: closed; the request was not sent")]
    Closed {
        /// The balanced client's name.
        name: Arc<str>,
    },
}

/// Whether the request may have been delivered by any attempt. `false`: certainly not.
impl<E> WasSent for BalanceError<E> {
    fn was_sent(&self) -> bool {
        match self {
            BalanceError::Endpoint { sent, .. } | BalanceError::Timeout { sent, .. } => *sent,
            BalanceError::NoEndpoint { .. } | BalanceError::Closed { .. } => false,
        }
    }
}

impl<E: EndpointError> BalanceError<E> {
    /// The kind of the last endpoint failure, for `Endpoint`.
    pub fn failure(&self) -> Option<Failure> {
        match self {
            BalanceError::Endpoint { source, .. } => Some(source.failure()),
            _ => None,
        }
    }

    /// The balanced client's name.
    pub fn name(&self) -> &str {
        match self {
            BalanceError::Endpoint { name, .. }
            | BalanceError::NoEndpoint { name, .. }
            | BalanceError::Timeout { name, .. }
            | BalanceError::Closed { name } => name,
        }
    }
}

/// Why [`BalancedBuilder::start`](crate::BalancedBuilder::start) returned no client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A setting cannot work.
    #[error("balanced client: {0}")]
    Config(#[from] BalancerConfigError),
    /// `max_age_jitter` is outside `[0, 1)`.
    #[error("balanced client: max_age_jitter must be within [0, 1), not {0}")]
    Jitter(f64),
    /// The connector's backoff cannot work.
    #[error("balanced client: {0}")]
    Backoff(#[from] beamline_reconnect::BackoffConfigError),
    /// Started outside a tokio runtime (the client runs a driver task on it).
    #[error("balanced client: not inside a tokio runtime")]
    NoRuntime,
}
