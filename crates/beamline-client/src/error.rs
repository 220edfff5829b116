//! What a client call, a connect attempt and a client start can fail with.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use beamline_failure::WasSent;
use beamline_mux::MuxError;
use beamline_pool::{
    CheckoutError, ConnectCause, ConnectError as PoolConnectError, StartError as PoolStartError,
};
use beamline_reconnect::{CloseReason, ConnectError, ReconnectError, StartError};
use bytes::Bytes;

/// Why a [`Client`](crate::Client) call failed.
///
/// The first question after a failure is whether the request may have reached the server:
/// [`was_sent`](WasSent::was_sent) answers it for every variant. `false` means it certainly
/// did not (retrying is safe, even for a non-idempotent request); `true` means it may have
/// been delivered and acted on. Every variant names the client (its
/// [`name`](crate::ClientBuilder::name)), so a log line says which peer failed.
///
/// | variant | sent? | what happened |
/// |---|---|---|
/// | `Disconnected`, `QueueFull`, `OfflineTimeout` | no | no live connection, and the offline policy refused or timed the request out |
/// | `NotSent` | no | the connection died before any byte of the request was written |
/// | `ConnectionLost` | maybe | the connection died after the request was written, before its answer |
/// | `Timeout` | `sent` | the request's own deadline ([`ClientBuilder::timeout`](crate::ClientBuilder::timeout)) passed |
/// | `Remote`, `Cancelled` | yes | the server answered with an error frame, or cancelled the request |
/// | `Request` | see source | the connection refused this one request (it could not be encoded, it is too large) |
/// | `Checkout` | no | a pooled client got no connection: connecting failed (the real error inside) or none came free in time |
/// | `Closed` | no | the client is closed for good (`reason` says why: closed, gave up, a panic in code its background task ran) |
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No live connection and the offline policy is fail-fast. Not sent.
    #[error("{name}: not connected (offline policy: fail fast); the request was not sent")]
    Disconnected {
        /// The client's name.
        name: Arc<str>,
    },
    /// No live connection and the offline queue already holds `max` requests. Not sent.
    #[error("{name}: the offline queue is full ({max} waiting); the request was not sent")]
    QueueFull {
        /// The client's name.
        name: Arc<str>,
        /// The queue's capacity.
        max: usize,
    },
    /// The request waited in the offline queue for `deadline` and no connection came up. Not
    /// sent.
    #[error(
        "{name}: no connection within the offline deadline of {deadline:?}; the request was not sent"
    )]
    OfflineTimeout {
        /// The client's name.
        name: Arc<str>,
        /// The offline queue's deadline.
        deadline: Duration,
    },
    /// The connection died before any byte of the request was written. Not sent: safe to
    /// retry.
    #[error("{name}: the connection was lost before the request was written (not sent)")]
    NotSent {
        /// The client's name.
        name: Arc<str>,
        /// What the connection reported (why it ended is in its `cause`).
        source: MuxError,
    },
    /// The connection died after the request was written and before its answer arrived. It
    /// may have been delivered: retry only if it is idempotent
    /// ([`Client::call_idempotent`](crate::Client::call_idempotent) does that for you).
    #[error(
        "{name}: the connection was lost after the request was written; it may have been delivered"
    )]
    ConnectionLost {
        /// The client's name.
        name: Arc<str>,
        /// What the connection reported (why it ended is in its `cause`).
        source: MuxError,
    },
    /// The request's deadline passed. If `sent`, it may still be delivered (its answer will
    /// be discarded when it comes); the connection stays up.
    #[error("{name}: the request timed out ({})", if *.sent { "it was written and may still be delivered" } else { "it was never written" })]
    Timeout {
        /// The client's name.
        name: Arc<str>,
        /// Whether the request had been written.
        sent: bool,
    },
    /// The server answered with an error frame (beamline's wire format). Delivered.
    #[error("{name}: the server answered with an error ({} bytes)", .payload.len())]
    Remote {
        /// The client's name.
        name: Arc<str>,
        /// The error frame's payload.
        payload: Bytes,
    },
    /// The server cancelled the request without answering it (it may have been partly
    /// acted on).
    #[error("{name}: the server cancelled the request")]
    Cancelled {
        /// The client's name.
        name: Arc<str>,
    },
    /// The connection refused this request and stayed up: it could not be encoded, or it is
    /// over the frame limit. [`WasSent`] on the source says whether it was sent.
    #[error("{name}: the request failed")]
    Request {
        /// The client's name.
        name: Arc<str>,
        /// What the connection reported.
        source: MuxError,
    },
    /// A pooled client got no connection for the request: the pool's connect attempts are
    /// failing ([`CheckoutError::Connect`] with the attempt's own [`TransportError`]), or
    /// none came free within the checkout timeout ([`CheckoutError::Timeout`], with the
    /// latest connect error if connecting is failing). Not sent.
    /// [`transport_error`](Self::transport_error) digs the connect error out.
    #[error("{name}: no pooled connection")]
    Checkout {
        /// The client's name.
        name: Arc<str>,
        /// The pool's error.
        source: CheckoutError<TransportError>,
    },
    /// The client is closed for good ([`Client::close`](crate::Client::close), every handle
    /// dropped, or the reconnect backoff gave up: `reason` says which, with the last connect
    /// error). Not sent.
    #[error("{name}: closed ({reason}); the request was not sent")]
    Closed {
        /// The client's name.
        name: Arc<str>,
        /// Why it closed.
        reason: CloseReason,
    },
}

/// Whether the request may have been written (and so may have been delivered). `false` means
/// it certainly was not: retrying it is safe. A refused request keeps the mux's answer.
impl WasSent for ClientError {
    fn was_sent(&self) -> bool {
        match self {
            ClientError::Disconnected { .. }
            | ClientError::QueueFull { .. }
            | ClientError::OfflineTimeout { .. }
            | ClientError::NotSent { .. }
            | ClientError::Checkout { .. }
            | ClientError::Closed { .. } => false,
            ClientError::ConnectionLost { .. }
            | ClientError::Remote { .. }
            | ClientError::Cancelled { .. } => true,
            ClientError::Timeout { sent, .. } => *sent,
            ClientError::Request { source, .. } => source.was_sent(),
        }
    }
}

impl ClientError {
    /// Whether a deadline ended the call: the request's own ([`ClientError::Timeout`]), the
    /// offline queue's ([`ClientError::OfflineTimeout`]) or the pool's checkout timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            ClientError::Timeout { .. }
                | ClientError::OfflineTimeout { .. }
                | ClientError::Checkout {
                    source: CheckoutError::Timeout { .. },
                    ..
                }
        )
    }

    /// The connect error behind a failed checkout: the attempt's own for
    /// [`CheckoutError::Connect`], the latest failing attempt's for a checkout that timed
    /// out while connecting was failing.
    pub fn transport_error(&self) -> Option<&TransportError> {
        match self {
            ClientError::Checkout { source, .. } => {
                source.connect_error().and_then(PoolConnectError::error)
            }
            _ => None,
        }
    }

    /// A checkout error in the facade's terms: a closed pool is a closed client.
    pub(crate) fn checkout(name: &Arc<str>, source: CheckoutError<TransportError>) -> Self {
        match source {
            CheckoutError::Closed { .. } => ClientError::Closed {
                name: name.clone(),
                reason: CloseReason::Requested,
            },
            source => ClientError::Checkout {
                name: name.clone(),
                source,
            },
        }
    }

    /// The name of the client that failed.
    pub fn name(&self) -> &str {
        match self {
            ClientError::Disconnected { name }
            | ClientError::QueueFull { name, .. }
            | ClientError::OfflineTimeout { name, .. }
            | ClientError::NotSent { name, .. }
            | ClientError::ConnectionLost { name, .. }
            | ClientError::Timeout { name, .. }
            | ClientError::Remote { name, .. }
            | ClientError::Cancelled { name }
            | ClientError::Request { name, .. }
            | ClientError::Checkout { name, .. }
            | ClientError::Closed { name, .. } => name,
        }
    }
}

impl From<ReconnectError<MuxError>> for ClientError {
    fn from(e: ReconnectError<MuxError>) -> Self {
        let name: Arc<str> = Arc::from(e.name());
        match e {
            ReconnectError::Disconnected { .. } => ClientError::Disconnected { name },
            ReconnectError::QueueFull { max, .. } => ClientError::QueueFull { name, max },
            ReconnectError::Timeout { deadline, .. } => {
                ClientError::OfflineTimeout { name, deadline }
            }
            ReconnectError::NotSent { source, .. } => ClientError::NotSent { name, source },
            ReconnectError::ConnectionLost { source, .. } => {
                ClientError::ConnectionLost { name, source }
            }
            ReconnectError::Request { source, .. } => match source {
                MuxError::Timeout { sent, .. } => ClientError::Timeout { name, sent },
                MuxError::Remote { payload, .. } => ClientError::Remote { name, payload },
                MuxError::Cancelled { .. } => ClientError::Cancelled { name },
                source => ClientError::Request { name, source },
            },
            ReconnectError::Closed { reason, .. } => ClientError::Closed { name, reason },
            // The connection's code panicked while starting it: it may have been written.
            // The reconnecting connection closed with `CloseReason::Panicked`, which every
            // later call reports.
            panicked @ ReconnectError::Panicked { .. } => ClientError::ConnectionLost {
                name,
                source: lost_unknown(&panicked),
            },
            // A variant added later: whether it was sent is all a caller can act on.
            other if other.was_sent() => ClientError::ConnectionLost {
                name,
                source: lost_unknown(&other),
            },
            other => ClientError::NotSent {
                name,
                source: lost_unknown(&other),
            },
        }
    }
}

/// A stand-in source for a reconnect error this version does not know.
fn lost_unknown(e: &ReconnectError<MuxError>) -> MuxError {
    let cause = beamline_mux::ConnectionError::Io(Arc::new(io::Error::other(e.to_string())));
    if e.was_sent() {
        MuxError::ConnectionLost {
            peer: Arc::from(e.name()),
            cause,
        }
    } else {
        MuxError::NotSent {
            peer: Arc::from(e.name()),
            cause,
        }
    }
}

/// Why one attempt to open a connection failed: which target, and the real error.
///
/// Cheap to clone (the I/O error is shared), because one failed attempt may be reported to
/// several waiters.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Connecting the socket failed (refused, unreachable, name not resolved).
    #[error("{target}: connect failed")]
    Connect {
        /// Where it tried to connect.
        target: Arc<str>,
        /// The socket's error.
        source: Arc<io::Error>,
    },
    /// The TLS handshake failed (the certificate was not trusted, the name did not match,
    /// the peer does not speak TLS). The rustls error is the I/O error's inner error.
    #[error("{target}: TLS handshake failed")]
    Tls {
        /// Where it tried to connect.
        target: Arc<str>,
        /// The handshake's error.
        source: Arc<io::Error>,
    },
    /// The attempt (socket and handshake) took longer than the connect timeout.
    #[error("{target}: no connection within {timeout:?}")]
    Timeout {
        /// Where it tried to connect.
        target: Arc<str>,
        /// The connect timeout.
        timeout: Duration,
    },
    /// The multiplexer refused its settings. A client built by
    /// [`ClientBuilder`](crate::ClientBuilder) validates them first, so it never sees this.
    #[error("{target}: the multiplexer refused its settings")]
    Mux {
        /// Where it connected.
        target: Arc<str>,
        /// The multiplexer's complaint.
        source: beamline_mux::ConfigError,
    },
}

impl TransportError {
    /// The target of the failed attempt.
    pub fn target(&self) -> &str {
        match self {
            TransportError::Connect { target, .. }
            | TransportError::Tls { target, .. }
            | TransportError::Timeout { target, .. }
            | TransportError::Mux { target, .. } => target,
        }
    }

    /// The I/O error behind a connect or handshake failure (its `kind()` says refused, reset,
    /// invalid data...).
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            TransportError::Connect { source, .. } | TransportError::Tls { source, .. } => {
                Some(source)
            }
            TransportError::Timeout { .. } | TransportError::Mux { .. } => None,
        }
    }

    /// The transport error inside a pool's connect error: the dialer's own, or the pool's
    /// connect timeout; `None` for a cause a later pool version adds (the caller keeps the
    /// pool's error whole).
    pub(crate) fn from_pool(e: &PoolConnectError<TransportError>) -> Option<Self> {
        match e.cause() {
            ConnectCause::Failed(transport) => Some(TransportError::clone(transport)),
            ConnectCause::TimedOut(timeout) => Some(TransportError::Timeout {
                target: Arc::from(e.target()),
                timeout: *timeout,
            }),
            _ => None,
        }
    }
}

/// Why [`ClientBuilder::connect`](crate::ClientBuilder::connect) returned no client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The multiplexing settings cannot work (`max_in_flight` of 0, or more than the
    /// protocol's ids). Nothing was attempted.
    #[error("invalid client setting")]
    Mux(#[from] beamline_mux::ConfigError),
    /// The reconnect or offline settings cannot work. Nothing was attempted.
    #[error("invalid client setting")]
    Reconnect(#[from] beamline_reconnect::ReconnectConfigError),
    /// The pool did not start: its settings cannot work, or it was started outside a tokio
    /// runtime. (A pool's failed first connection is [`BuildError::Connect`].)
    #[error("the client's pool did not start")]
    Pool(#[source] beamline_pool::StartError<TransportError>),
    /// TLS was asked for but the target has no host that is a valid server name (a Unix
    /// socket, or a malformed host): give one with
    /// [`ClientBuilder::tls_server_name`](crate::ClientBuilder::tls_server_name).
    #[error("no valid TLS server name for {target}")]
    ServerName {
        /// The target.
        target: String,
    },
    /// The first connection attempt failed (with `sync_connect`, the default): the error
    /// says where and why. Nothing keeps running.
    #[error("{name}: first connect failed")]
    Connect {
        /// The client's name.
        name: Arc<str>,
        /// The attempt's error.
        source: TransportError,
    },
    /// The first connection attempt ended without a transport error: code it ran panicked
    /// (a codec's `Clone`, for instance), and the reconnecting connection closed rather than
    /// retry a bug. The reconnecting layer's error, as it reported it. Nothing keeps running.
    #[error("{name}: the first connect attempt did not complete")]
    Start {
        /// The client's name.
        name: Arc<str>,
        /// The reconnecting connection's start error.
        source: beamline_reconnect::StartError<TransportError>,
    },
}

impl BuildError {
    /// A pool that did not start, in the facade's terms: a first connection that failed (the
    /// dialer's error or the pool's connect timeout) is [`BuildError::Connect`] whichever layer
    /// made it; anything else is the pool's own error.
    pub(crate) fn from_pool(e: PoolStartError<TransportError>, name: &Arc<str>) -> Self {
        match e {
            PoolStartError::Connect(connect) => match TransportError::from_pool(&connect) {
                Some(source) => BuildError::Connect {
                    name: name.clone(),
                    source,
                },
                None => BuildError::Pool(PoolStartError::Connect(connect)),
            },
            other => BuildError::Pool(other),
        }
    }

    /// A reconnecting connection that did not start, in the facade's terms: a first attempt
    /// that failed (the dialer's error) or timed out is [`BuildError::Connect`]; anything else
    /// (the attempt panicked) is the reconnecting layer's own error.
    pub(crate) fn from_start(
        e: StartError<TransportError>,
        name: &Arc<str>,
        target: &Arc<str>,
    ) -> Self {
        match e {
            StartError::Config(config) => BuildError::Reconnect(config),
            StartError::Connect(ConnectError::Failed { source, .. }) => BuildError::Connect {
                name: name.clone(),
                source,
            },
            StartError::Connect(ConnectError::Timeout { timeout, .. }) => BuildError::Connect {
                name: name.clone(),
                source: TransportError::Timeout {
                    target: target.clone(),
                    timeout,
                },
            },
            other => BuildError::Start {
                name: name.clone(),
                source: other,
            },
        }
    }
}

#[cfg(test)]
mod tests;
