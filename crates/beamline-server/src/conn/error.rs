//! [`ConnError`]: why the server ended a connection on the peer's account.

use std::io;
use std::time::Duration;

/// Why the server is closing a connection on the peer's account, as handed to
/// [`Handler::on_error`](crate::Handler::on_error). The connection is closed after that call
/// and counted in [`ServerStats::errored`](crate::ServerStats::errored).
///
/// In the stream-owning form, a send timeout reaches the function as an `io::Error` of kind
/// [`TimedOut`](io::ErrorKind::TimedOut) from a write, whose inner error is a
/// [`ConnError::SendTimeout`] (`error.get_ref()` and `downcast_ref` find it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnError {
    /// Reading from the socket failed: a reset, or a TLS error after the handshake.
    #[error("reading from the peer failed")]
    Read(#[source] io::Error),
    /// The peer accepted no byte of a pending write for the send timeout
    /// ([`Server::send_timeout`](crate::Server::send_timeout)): it stopped reading.
    #[error("the peer accepted no byte for {timeout:?} (send timeout)")]
    SendTimeout {
        /// The send timeout that passed.
        timeout: Duration,
    },
    /// The handler left more unconsumed bytes in `on_data`'s buffer than
    /// [`Server::max_read_buffer`](crate::Server::max_read_buffer) allows: a frame that never
    /// ends.
    #[error("{buffered} unconsumed bytes exceed the read buffer limit of {max} bytes")]
    ReadBufferFull {
        /// Bytes left unconsumed after `on_data`.
        buffered: usize,
        /// The limit.
        max: usize,
    },
}

impl ConnError {
    /// The `io::Error` a write returns once the send timeout has passed: kind
    /// [`TimedOut`](io::ErrorKind::TimedOut), with this error inside.
    pub(crate) fn send_timeout(timeout: Duration) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, Self::SendTimeout { timeout })
    }
}
