use std::error::Error as StdError;
use std::io;
use std::sync::Arc;

use beamline_failure::WasSent;
use bytes::Bytes;

/// Why a request failed. Every variant says, through [`WasSent::was_sent`], whether
/// the request's bytes may have reached the peer: that is what decides whether a retry is
/// safe. Each names the connection it happened on (the `peer` label of
/// [`ClientConfig::peer`](crate::ClientConfig::peer)).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum MuxError {
    /// The connection ended before any byte of the request was written: it certainly never
    /// reached the peer, and retrying it elsewhere is safe.
    #[error("request to {peer} was not sent: {cause}")]
    NotSent {
        /// The connection.
        peer: Arc<str>,
        /// Why the connection ended.
        cause: ConnectionError,
    },
    /// The request was written (at least partly) and the connection ended before its answer
    /// came: it may or may not have been delivered and acted on.
    #[error("connection to {peer} lost after the request was written: {cause}")]
    ConnectionLost {
        /// The connection.
        peer: Arc<str>,
        /// Why the connection ended.
        cause: ConnectionError,
    },
    /// The request's deadline passed. `sent` says whether it had been handed to the
    /// connection; if so it may still be delivered (its id is quarantined and, where the
    /// protocol has one, a cancel is sent).
    #[error("request to {peer} timed out ({})", sent_note(.sent))]
    Timeout {
        /// The connection.
        peer: Arc<str>,
        /// Whether the request had been handed to the connection.
        sent: bool,
    },
    /// The request is longer than the wire format's maximum frame length; nothing was sent.
    #[error("request of {len} bytes to {peer} exceeds the maximum frame length of {max}")]
    FrameTooLarge {
        /// The connection.
        peer: Arc<str>,
        /// The request's length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The user codec could not encode the request; nothing was sent.
    #[error("could not encode the request to {peer}")]
    Encode {
        /// The connection.
        peer: Arc<str>,
        /// The codec's error.
        source: Arc<dyn StdError + Send + Sync>,
    },
    /// `max_in_flight` requests were already in flight (only from the `try_` methods,
    /// which fail at once instead of waiting); nothing was sent.
    #[error("{max_in_flight} requests already in flight to {peer}")]
    Busy {
        /// The connection.
        peer: Arc<str>,
        /// The bound.
        max_in_flight: usize,
    },
    /// The connection was closed (explicitly, or because it died) before the request was
    /// admitted; nothing was sent.
    #[error("connection to {peer} is closed")]
    Closed {
        /// The connection.
        peer: Arc<str>,
    },
    /// The peer answered with an error frame (wire format); the request was delivered.
    #[error("{peer} answered with an error ({} bytes)", .payload.len())]
    Remote {
        /// The connection.
        peer: Arc<str>,
        /// The error frame's payload.
        payload: Bytes,
    },
    /// The peer cancelled the request without answering it (it may have been partly acted
    /// on).
    #[error("{peer} cancelled the request")]
    Cancelled {
        /// The connection.
        peer: Arc<str>,
    },
}

fn sent_note(sent: &bool) -> &'static str {
    if *sent {
        "it was written and may still be delivered"
    } else {
        "it was never written"
    }
}

/// Whether any byte of the request may have reached the peer. `false` means it certainly did
/// not, so retrying it is safe even if it is not idempotent: the driver records each
/// request's stream offset, so a connection that ends tells exactly which requests it wrote.
impl WasSent for MuxError {
    fn was_sent(&self) -> bool {
        match self {
            MuxError::NotSent { .. }
            | MuxError::FrameTooLarge { .. }
            | MuxError::Encode { .. }
            | MuxError::Busy { .. }
            | MuxError::Closed { .. } => false,
            MuxError::Timeout { sent, .. } => *sent,
            MuxError::ConnectionLost { .. }
            | MuxError::Remote { .. }
            | MuxError::Cancelled { .. } => true,
        }
    }
}

impl MuxError {
    /// Whether the connection this request used is gone (a new connection is needed).
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            MuxError::NotSent { .. } | MuxError::ConnectionLost { .. } | MuxError::Closed { .. }
        )
    }

    /// The label of the connection the request used.
    pub fn peer(&self) -> &str {
        match self {
            MuxError::NotSent { peer, .. }
            | MuxError::ConnectionLost { peer, .. }
            | MuxError::Timeout { peer, .. }
            | MuxError::FrameTooLarge { peer, .. }
            | MuxError::Encode { peer, .. }
            | MuxError::Busy { peer, .. }
            | MuxError::Closed { peer }
            | MuxError::Remote { peer, .. }
            | MuxError::Cancelled { peer } => peer,
        }
    }
}

/// Why a connection ended. Shared (cheaply cloned) by every request it failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The peer closed its end of the connection.
    #[error("the peer closed the connection")]
    PeerClosed,
    /// Reading or writing failed.
    #[error("i/o error: {0}")]
    Io(Arc<io::Error>),
    /// The peer broke the protocol: an undecodable frame (for the wire format, a
    /// [`FrameError`](crate::FrameError) such as a frame over the size limit), or, in FIFO
    /// mode, a reply with no request waiting for it. The stream was out of step, so the
    /// connection was closed.
    #[error("protocol error: {0}")]
    Protocol(Arc<dyn StdError + Send + Sync>),
    /// This side closed the connection ([`Client::close`](crate::Client::close)).
    #[error("closed by this side")]
    Closed,
    /// The driver future was dropped before the connection ended (its runtime shut down,
    /// or it was never spawned).
    #[error("the connection's driver was dropped")]
    DriverDropped,
    /// FIFO mode: a request abandoned after it was written (its caller timed out or gave
    /// up) got no answer within the abandon timeout
    /// ([`ClientConfig::abandon_timeout`](crate::ClientConfig::abandon_timeout)). Answers
    /// come in order, so every later one was queued behind it: the connection was wedged,
    /// and closed.
    #[error(
        "an abandoned request got no answer within {abandon_timeout:?}; every later answer waited behind it, so the connection was closed"
    )]
    Wedged {
        /// The abandon timeout that passed.
        abandon_timeout: std::time::Duration,
    },
    /// Code the driver ran panicked (your codec or [`Tagged`](crate::Tagged) impl, or a bug
    /// in the driver); the panic's message. The panic stayed in the driver's task: the
    /// connection was closed and each request on it failed as written or not, like any lost
    /// connection.
    #[error("the connection's driver panicked: {0}")]
    Panicked(Arc<str>),
}

impl ConnectionError {
    pub(crate) fn protocol(e: impl StdError + Send + Sync + 'static) -> Self {
        ConnectionError::Protocol(Arc::new(e))
    }
}

/// A reply broke the protocol's rules (see [`ConnectionError::Protocol`]).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolViolation {
    /// FIFO mode: a reply arrived while no written request was waiting for one.
    #[error("a reply arrived with no request waiting for it")]
    UnsolicitedReply,
    /// Wire format: the server sent a frame of a kind only clients send.
    #[error("unexpected {kind:?} frame for id {id}")]
    UnexpectedFrame {
        /// The frame's kind.
        kind: crate::FrameKind,
        /// The frame's id.
        id: u32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn was_sent_classifies_every_variant() {
        let peer: Arc<str> = Arc::from("db-1");
        let cause = ConnectionError::PeerClosed;
        let cases = [
            (
                MuxError::NotSent {
                    peer: peer.clone(),
                    cause: cause.clone(),
                },
                false,
            ),
            (
                MuxError::ConnectionLost {
                    peer: peer.clone(),
                    cause,
                },
                true,
            ),
            (
                MuxError::Timeout {
                    peer: peer.clone(),
                    sent: false,
                },
                false,
            ),
            (
                MuxError::Timeout {
                    peer: peer.clone(),
                    sent: true,
                },
                true,
            ),
            (
                MuxError::FrameTooLarge {
                    peer: peer.clone(),
                    len: 2,
                    max: 1,
                },
                false,
            ),
            (
                MuxError::Busy {
                    peer: peer.clone(),
                    max_in_flight: 1,
                },
                false,
            ),
            (MuxError::Closed { peer: peer.clone() }, false),
            (
                MuxError::Remote {
                    peer: peer.clone(),
                    payload: Bytes::new(),
                },
                true,
            ),
            (MuxError::Cancelled { peer: peer.clone() }, true),
        ];
        for (err, sent) in cases {
            assert_eq!(err.was_sent(), sent, "{err}");
            assert_eq!(err.peer(), "db-1");
            assert!(err.to_string().contains("db-1"), "{err}");
        }
    }

    #[test]
    fn timeout_messages_say_whether_the_request_went_out() {
        let peer: Arc<str> = Arc::from("p");
        let unsent = MuxError::Timeout {
            peer: peer.clone(),
            sent: false,
        }
        .to_string();
        let sent = MuxError::Timeout { peer, sent: true }.to_string();
        assert!(unsent.contains("never written"), "{unsent}");
        assert!(sent.contains("may still be delivered"), "{sent}");
    }
}
