//! [`ProxyError`]: why a connection's PROXY header was refused.

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use super::ProxyVersion;

/// Why a PROXY header was refused (and with it, the connection). Each such connection is
/// counted in [`ServerStats::proxy_failures`](crate::ServerStats::proxy_failures) and
/// `handshake_failures`, and its `connection closed` event has reason `proxy_header_failed`
/// (or `proxy_header_timeout`) with this error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The listener requires a header and the connection started with something else.
    #[error("the connection did not start with a PROXY header (required on this listener)")]
    Missing,
    /// The bytes start like a header but break the format.
    #[error("malformed PROXY {version} header: {reason}")]
    Malformed {
        /// Which format the signature announced.
        version: ProxyVersion,
        /// What is wrong.
        reason: &'static str,
    },
    /// The header is longer than [`MAX_HEADER_LEN`](super::MAX_HEADER_LEN) (v2), or than 107
    /// bytes without a line end (v1): refused before it is buffered.
    #[error("PROXY header of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Its length as declared (v2), or 108 (v1: at least one byte over, no line end
        /// within the limit).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A header from a source not in
    /// [`proxy_protocol_from`](crate::Server::proxy_protocol_from): it may not speak for
    /// anyone.
    #[error("a PROXY header from {peer}, which is not a trusted source")]
    Untrusted {
        /// The connection's real peer.
        peer: IpAddr,
    },
    /// No whole header within the handshake timeout.
    #[error("no whole PROXY header within {timeout:?}")]
    Timeout {
        /// The handshake timeout.
        timeout: Duration,
    },
    /// The peer closed the connection in the middle of the header (or before it).
    #[error("the peer closed the connection before its PROXY header ended")]
    Closed,
    /// Reading the socket failed.
    #[error("reading the PROXY header failed: {0}")]
    Io(#[source] io::Error),
}
