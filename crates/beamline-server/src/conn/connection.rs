//! The stream-owning form: a [`Connection`] handed to your async function, and the
//! [`ShutdownSignal`] that tells it the server is draining.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use beamline_process::ProcessId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};

use super::{ConnInfo, ConnState, Endpoint, Stream};

/// A connection handed to a function given to [`Server::serve_fn`](crate::Server::serve_fn): the
/// socket is yours, to read and write directly (it is `AsyncRead + AsyncWrite`, so
/// `tokio_util::codec::Framed::new(conn, codec)` works as is).
///
/// The function runs as the connection's own supervised process. What the server still does
/// around it:
/// - **Timeouts.** If nothing is received for the read timeout, or the lifetime passes, the
///   function's future is dropped, which closes the socket. While the function marks itself
///   [`busy`](Activity::busy) — the peer waits on it (a request being answered) — the read
///   timeout does not run, as during a callback of the callback form; it counts again from
///   the moment the last mark drops. A write that makes no progress for
///   the send timeout (the peer stopped reading) fails with
///   [`TimedOut`](std::io::ErrorKind::TimedOut) from `poll_write` (inner error
///   [`ConnError::SendTimeout`](crate::ConnError::SendTimeout)), and so does every later write:
///   return the error (counted in `errored`) or end otherwise. Your own buffering is yours:
///   the read buffer limit applies to the callback form only.
/// - **Drain.** When the server shuts down gracefully, a function that took the
///   [`shutdown_signal`](Self::shutdown_signal) is told through it and has until the drain's
///   deadline to finish (then it is killed); a function that never took it is dropped at once
///   (the connection closes), so idle connections never hold a drain up.
/// - **Failure.** `Err(reason)` closes the connection and ends its process with `reason`
///   (counted in `errored`, logged at `warn`); a panic closes only this connection (counted in
///   `panicked`, logged at `error` with the connection id).
///
/// # Examples
/// ```no_run
/// use beamline_server::{Connection, ExitReason, Server};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// async fn echo(mut conn: Connection) -> Result<(), ExitReason> {
///     let shutdown = conn.shutdown_signal();
///     let mut buf = vec![0u8; 4096];
///     loop {
///         tokio::select! {
///             n = conn.read(&mut buf) => {
///                 let n = n?;
///                 if n == 0 { return Ok(()); }
///                 conn.write_all(&buf[..n]).await?;
///             }
///             () = shutdown.requested() => {
///                 conn.write_all(b"bye\n").await?;
///                 return Ok(());
///             }
///         }
///     }
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Server::new().bind("127.0.0.1:7000".parse()?).serve_fn(echo)?;
/// # Ok(()) }
/// ```
pub struct Connection {
    stream: Stream,
    info: ConnInfo,
    state: Arc<ConnState>,
}

impl Connection {
    pub(crate) fn new(stream: Stream, info: ConnInfo, state: Arc<ConnState>) -> Self {
        Self {
            stream,
            info,
            state,
        }
    }

    /// What is known about the connection (id, addresses, SNI, ALPN).
    pub fn info(&self) -> &ConnInfo {
        &self.info
    }

    /// The connection's id (its process id).
    pub fn id(&self) -> ProcessId {
        self.info.id
    }

    /// The peer's address.
    pub fn peer(&self) -> &Endpoint {
        &self.info.peer
    }

    /// The socket.
    pub fn stream(&mut self) -> &mut Stream {
        &mut self.stream
    }

    /// The signal of a graceful shutdown. Taking it tells the server this function ends by
    /// itself when asked, so a drain waits for it (up to its deadline) instead of closing the
    /// connection at once.
    pub fn shutdown_signal(&self) -> ShutdownSignal {
        self.state.watch_shutdown();
        ShutdownSignal {
            state: self.state.clone(),
        }
    }

    /// The handle that marks this connection busy (see [`Activity`]); cheap to clone, usable
    /// after the connection was split or moved.
    pub fn activity(&self) -> Activity {
        Activity {
            state: self.state.clone(),
        }
    }

    /// A reader and a writer that can be used from two tasks (tokio's `split`, which takes a
    /// short lock per call; reading and writing `self` directly costs nothing extra).
    pub fn into_split(self) -> (ReadHalf<Stream>, WriteHalf<Stream>) {
        tokio::io::split(self.stream)
    }

    /// The socket and the connection's information, apart.
    pub fn into_parts(self) -> (Stream, ConnInfo) {
        (self.stream, self.info)
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("info", &self.info)
            .field("stream", &self.stream)
            .finish()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Tells a [`Connection`]'s function that the server is draining. Cheap to clone; every
/// clone sees the same request.
#[derive(Clone)]
pub struct ShutdownSignal {
    state: Arc<ConnState>,
}

impl ShutdownSignal {
    /// Resolves once a graceful shutdown has been requested (at once if it already was).
    /// Cancel-safe: use it in `tokio::select!` beside reads.
    pub async fn requested(&self) {
        self.state.shutdown_wait().await;
    }

    /// Whether a graceful shutdown has been requested.
    pub fn is_requested(&self) -> bool {
        self.state.shutdown_requested()
    }
}

impl std::fmt::Debug for ShutdownSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownSignal")
            .field("requested", &self.is_requested())
            .finish()
    }
}

/// Marks a [`Connection`] busy: working on something its peer waits for (a request being
/// answered), so that the peer's silence is not idleness.
///
/// While at least one [`Busy`] guard of the connection lives, the read timeout
/// ([`Server::read_timeout`](crate::Server::read_timeout)) does not run — the rule the
/// callback form applies while a callback runs. When the last guard drops, the read timeout
/// counts again from that moment (as if a byte had arrived). The lifetime and the send
/// timeout are not affected: a busy connection still ends at its lifetime, and a peer that
/// stops reading the answer still fails its writes.
///
/// The connection's process notices a drop when it next runs: drop guards in the task that
/// runs the connection's function (where its I/O happens), or the read timeout may restart
/// late — never early.
///
/// # Examples
/// ```no_run
/// use beamline_server::{Connection, ExitReason};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// async fn serve(mut conn: Connection) -> Result<(), ExitReason> {
///     let activity = conn.activity();
///     let mut request = [0u8; 64];
///     while conn.read(&mut request).await? != 0 {
///         let _busy = activity.busy(); // however long the answer takes
///         let answer = slow_answer(&request).await;
///         conn.write_all(&answer).await?;
///     }
///     Ok(())
/// }
/// # async fn slow_answer(_: &[u8]) -> Vec<u8> { Vec::new() }
/// ```
#[derive(Clone)]
pub struct Activity {
    state: Arc<ConnState>,
}

impl Activity {
    /// Marks the connection busy until the returned guard drops.
    pub fn busy(&self) -> Busy {
        self.state.busy_enter();
        Busy {
            state: self.state.clone(),
        }
    }

    /// Whether a [`Busy`] guard of this connection lives.
    pub fn is_busy(&self) -> bool {
        self.state.is_busy()
    }
}

impl std::fmt::Debug for Activity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Activity")
            .field("busy", &self.is_busy())
            .finish()
    }
}

/// A busy mark of a connection (see [`Activity`]): the read timeout does not run while one
/// lives. Dropping it ends the mark.
#[must_use = "the connection is busy only while the guard lives"]
pub struct Busy {
    state: Arc<ConnState>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.state.busy_exit();
    }
}

impl std::fmt::Debug for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Busy").finish_non_exhaustive()
    }
}
