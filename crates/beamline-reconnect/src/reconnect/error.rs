//! What a reconnecting connection reports: per request, per connect attempt, at start, and
//! why it closed.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::{GiveUp, ReconnectConfigError, WasSent};

/// Why a request on a [`Reconnect`](crate::Reconnect) failed.
///
/// Each variant says whether the request may have reached the server;
/// [`was_sent`](WasSent::was_sent) answers that without a `match`. Only [`ConnectionLost`](Self::ConnectionLost) (and a
/// [`Request`](Self::Request) error with `sent: true`) may have been delivered: retrying
/// those is safe only for idempotent requests. Every other variant means the request was
/// never written, so a retry is safe.
///
/// For a request made with [`call_idempotent`](crate::Reconnect::call_idempotent) that was
/// replayed and still failed, the error describes the whole call: `ConnectionLost` if any
/// attempt may have been delivered, `NotSent` if none was, and the source is the last
/// attempt's error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReconnectError<E> {
    /// No live connection and the offline policy is `FailFast`. Not sent: safe to retry.
    #[error("{name}: not connected (offline policy: fail fast); the request was not sent")]
    Disconnected {
        /// The connection's name.
        name: Arc<str>,
    },
    /// No live connection and the offline queue already holds `max` requests. Not sent:
    /// safe to retry (later).
    #[error("{name}: the offline queue is full ({max} waiting); the request was not sent")]
    QueueFull {
        /// The connection's name.
        name: Arc<str>,
        /// The queue's capacity.
        max: usize,
    },
    /// The request waited in the offline queue for `deadline` and no connection came up.
    /// It was taken out of the queue: not sent, safe to retry.
    #[error(
        "{name}: no connection within the offline deadline of {deadline:?}; the request was not sent"
    )]
    Timeout {
        /// The connection's name.
        name: Arc<str>,
        /// The queue's deadline.
        deadline: Duration,
    },
    /// The connection died before the request was written. Not sent: safe to retry.
    #[error("{name}: the connection was lost before the request was written (not sent)")]
    NotSent {
        /// The connection's name.
        name: Arc<str>,
        /// The connection's error.
        source: E,
    },
    /// The connection died after the request was written and before its response arrived.
    /// It may have been delivered: retry only if it is idempotent.
    #[error(
        "{name}: the connection was lost after the request was written; it may have been delivered"
    )]
    ConnectionLost {
        /// The connection's name.
        name: Arc<str>,
        /// The connection's error.
        source: E,
    },
    /// The connection failed this request and stayed up (a codec error, the connection's
    /// own request timeout). `sent` says whether it may have been delivered. Not replayed.
    #[error("{name}: the request failed")]
    Request {
        /// The connection's name.
        name: Arc<str>,
        /// The connection's error.
        source: E,
        /// Whether the request may have been written.
        sent: bool,
    },
    /// The connection's `call` panicked when the driver started this request from the
    /// offline queue (its first poll). Whatever it did before panicking may have written
    /// the request: it may have been delivered. The reconnecting connection closed with
    /// [`CloseReason::Panicked`].
    #[error(
        "{name}: the connection panicked while starting the request; it may have been delivered: {message}"
    )]
    Panicked {
        /// The connection's name.
        name: Arc<str>,
        /// The panic's message.
        message: Arc<str>,
    },
    /// The reconnecting connection is closed (see [`CloseReason`]); nothing more will be
    /// sent on it. Not sent.
    #[error("{name}: closed ({reason}); the request was not sent")]
    Closed {
        /// The connection's name.
        name: Arc<str>,
        /// Why it closed.
        reason: CloseReason,
    },
}

/// Whether the request may have been written (and so may have been delivered). `false` means
/// it certainly was not, so retrying it is safe. The connection's own answer is kept: a
/// `NotSent` or `ConnectionLost` comes from its [`WasSent`] when the connection died.
impl<E> WasSent for ReconnectError<E> {
    fn was_sent(&self) -> bool {
        match self {
            ReconnectError::ConnectionLost { .. } | ReconnectError::Panicked { .. } => true,
            ReconnectError::Request { sent, .. } => *sent,
            ReconnectError::Disconnected { .. }
            | ReconnectError::QueueFull { .. }
            | ReconnectError::Timeout { .. }
            | ReconnectError::NotSent { .. }
            | ReconnectError::Closed { .. } => false,
        }
    }
}

impl<E> ReconnectError<E> {
    /// The name of the connection that failed.
    pub fn name(&self) -> &str {
        match self {
            ReconnectError::Disconnected { name }
            | ReconnectError::QueueFull { name, .. }
            | ReconnectError::Timeout { name, .. }
            | ReconnectError::NotSent { name, .. }
            | ReconnectError::ConnectionLost { name, .. }
            | ReconnectError::Request { name, .. }
            | ReconnectError::Panicked { name, .. }
            | ReconnectError::Closed { name, .. } => name,
        }
    }
}

/// One failed connect attempt, with the connector's own error `E`
/// ([`Connect::Error`](crate::Connect::Error)) when it returned one.
///
/// [`Reconnect::start`](crate::Reconnect::start) returns it typed (inside
/// [`StartError<E>`]), so a caller gets its connector's error back as it was made, never a
/// string of it. A [`CloseReason::GaveUp`] keeps the last one with the error shared as
/// `Arc<dyn Error>` (the default `E`): a [`Reconnect`](crate::Reconnect) is generic over its
/// connection, not over the connector that makes it, so its close reason cannot name the
/// connector's error type.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError<E = Arc<dyn StdError + Send + Sync>> {
    /// The attempt took longer than the connect timeout and was abandoned.
    #[error("{name}: connect attempt {attempt} timed out after {timeout:?}")]
    Timeout {
        /// The connection's name.
        name: Arc<str>,
        /// Which attempt (1-based, since the backoff last reset).
        attempt: u32,
        /// The timeout it ran under.
        timeout: Duration,
    },
    /// The connector returned an error.
    #[error("{name}: connect attempt {attempt} failed")]
    Failed {
        /// The connection's name.
        name: Arc<str>,
        /// Which attempt (1-based, since the backoff last reset).
        attempt: u32,
        /// The connector's error.
        source: E,
    },
    /// The connector panicked. Not retried: a connector with a bug would panic again, so
    /// the reconnecting connection closes with [`CloseReason::Panicked`].
    #[error("{name}: connect attempt {attempt} panicked: {message}")]
    Panicked {
        /// The connection's name.
        name: Arc<str>,
        /// Which attempt (1-based, since the backoff last reset).
        attempt: u32,
        /// The panic's message.
        message: Arc<str>,
    },
}

impl<E: StdError + Send + Sync + 'static> ConnectError<E> {
    /// The same failure with the connector's error shared as `Arc<dyn Error>`: the form a
    /// [`CloseReason`] keeps.
    pub(crate) fn erase(self) -> ConnectError {
        match self {
            ConnectError::Timeout {
                name,
                attempt,
                timeout,
            } => ConnectError::Timeout {
                name,
                attempt,
                timeout,
            },
            ConnectError::Failed {
                name,
                attempt,
                source,
            } => ConnectError::Failed {
                name,
                attempt,
                source: Arc::new(source),
            },
            ConnectError::Panicked {
                name,
                attempt,
                message,
            } => ConnectError::Panicked {
                name,
                attempt,
                message,
            },
        }
    }
}

/// [`Reconnect::start`](crate::Reconnect::start) did not start; `E` is the connector's error
/// ([`Connect::Error`](crate::Connect::Error)), returned as the connector made it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StartError<E> {
    /// A setting is invalid; nothing was attempted.
    #[error(transparent)]
    Config(#[from] ReconnectConfigError),
    /// `sync_connect` was set and the first attempt failed (the connector's error, a
    /// timeout or a panic); nothing keeps running.
    #[error(transparent)]
    Connect(#[from] ConnectError<E>),
}

/// Why a live connection was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LossCause {
    /// The connection reported itself closed (peer gone, I/O error, protocol error).
    Closed,
    /// The health check's ping failed or timed out.
    HealthCheck,
    /// Requests were in flight and no response arrived for the progress timeout.
    NoProgress,
}

impl fmt::Display for LossCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LossCause::Closed => "the connection closed",
            LossCause::HealthCheck => "the health check failed",
            LossCause::NoProgress => "no response within the progress timeout",
        })
    }
}

/// Why a [`Reconnect`](crate::Reconnect) closed for good.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CloseReason {
    /// [`Reconnect::close`](crate::Reconnect::close) was called.
    Requested,
    /// Every handle was dropped.
    Dropped,
    /// The backoff reached a limit. `last_error` is the last connect attempt's error
    /// (`None` if the limit was reached right after a connection was lost), the connector's
    /// own error inside it shared as `Arc<dyn Error>`.
    GaveUp {
        /// Which limit.
        limit: GiveUp,
        /// The last connect error, so the real cause is not hidden behind "gave up".
        last_error: Option<ConnectError>,
    },
    /// The connection was lost and `exit_on_disconnection` is set.
    Disconnected {
        /// How it was lost.
        cause: LossCause,
    },
    /// User code run by the background task panicked: the connector, the health check
    /// (its `ping` closure or the ping's call), or the first poll of a queued call. Holds
    /// the panic's message. Calls already started end as their connection reports them
    /// (it was closed); queued ones fail unsent.
    Panicked(Arc<str>),
    /// The background task stopped without closing (its runtime shut down).
    Stopped,
}

/// A `CloseReason` is the error a supervised connection exits with when it gave up (see
/// `CloseReason::exit_reason`, feature `process`); its source is the last connect error.
impl StdError for CloseReason {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            CloseReason::GaveUp {
                last_error: Some(e),
                ..
            } => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Requested => f.write_str("close was requested"),
            CloseReason::Dropped => f.write_str("every handle was dropped"),
            // Not an error type itself, a reason shows its last error's whole chain.
            CloseReason::GaveUp {
                limit,
                last_error: Some(e),
            } => {
                write!(f, "{limit}; last error: {e}")?;
                let mut cause = StdError::source(e);
                while let Some(c) = cause {
                    write!(f, ": {c}")?;
                    cause = c.source();
                }
                Ok(())
            }
            CloseReason::GaveUp {
                limit,
                last_error: None,
            } => write!(f, "{limit}"),
            CloseReason::Disconnected { cause } => {
                write!(f, "{cause} and exit_on_disconnection is set")
            }
            CloseReason::Panicked(message) => {
                write!(f, "code run by the background task panicked: {message}")
            }
            CloseReason::Stopped => f.write_str("the background task stopped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lost_and_sent_request_errors_count_as_sent() {
        let name: Arc<str> = Arc::from("db");
        let io = || std::io::Error::other("x");
        let cases: Vec<(ReconnectError<std::io::Error>, bool)> = vec![
            (ReconnectError::Disconnected { name: name.clone() }, false),
            (
                ReconnectError::QueueFull {
                    name: name.clone(),
                    max: 1,
                },
                false,
            ),
            (
                ReconnectError::Timeout {
                    name: name.clone(),
                    deadline: Duration::from_secs(1),
                },
                false,
            ),
            (
                ReconnectError::NotSent {
                    name: name.clone(),
                    source: io(),
                },
                false,
            ),
            (
                ReconnectError::ConnectionLost {
                    name: name.clone(),
                    source: io(),
                },
                true,
            ),
            (
                ReconnectError::Request {
                    name: name.clone(),
                    source: io(),
                    sent: true,
                },
                true,
            ),
            (
                ReconnectError::Request {
                    name: name.clone(),
                    source: io(),
                    sent: false,
                },
                false,
            ),
            (
                ReconnectError::Panicked {
                    name: name.clone(),
                    message: Arc::from("boom"),
                },
                true,
            ),
            (
                ReconnectError::Closed {
                    name: name.clone(),
                    reason: CloseReason::Panicked(Arc::from("boom")),
                },
                false,
            ),
        ];
        for (e, sent) in cases {
            assert_eq!(e.was_sent(), sent, "{e}");
            assert_eq!(e.name(), "db");
            assert!(e.to_string().starts_with("db: "), "{e}");
        }
    }

    #[test]
    fn gave_up_keeps_the_real_connect_error() {
        let reason = CloseReason::GaveUp {
            limit: GiveUp::Attempts { max: 3 },
            last_error: Some(ConnectError::Failed {
                name: Arc::from("db 127.0.0.1:1"),
                attempt: 3,
                source: Arc::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
            }),
        };
        let text = reason.to_string();
        assert!(text.contains("3 attempts"), "{text}");
        assert!(text.contains("db 127.0.0.1:1"), "{text}");
        assert!(text.contains("refused"), "{text}");
    }
}
