//! The callback form: [`Handler`], what its callbacks return ([`Flow`]), and what they act on
//! ([`HandlerContext`]).

use std::future::Future;
use std::io;

use beamline_process::{Addr, Context, ExitReason, Info, ProcessId};
use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use super::{ConnError, ConnInfo, Endpoint, Stream, TimeoutKind};

/// What a connection does after a callback: keep going, or close. (A callback fails by
/// returning `Err(reason)`: the connection closes and its process exits with that reason.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(clippy::exhaustive_enums)] // closed: continue or close, nothing else
pub enum Flow {
    /// Keep the connection open and wait for the next event.
    Continue,
    /// Close the connection now (TLS sends its close_notify if the socket takes it at once;
    /// TCP and Unix send FIN), and end its process normally.
    Close,
}

/// The callback form of a connection handler, in the spirit of Thousand Island's: the server
/// owns the socket and the loop, and calls you on each event.
///
/// The server clones your handler once per connection (put shared state behind an `Arc`), so
/// `&mut self` is per-connection state. `M` is the type of the messages other processes can
/// send the connection (through [`HandlerContext::addr`]); it defaults to `()`.
///
/// Every event callback returns `Ok(`[`Flow`]`)` to continue or close, or `Err(reason)` to
/// fail. `?` works on any error inside a callback: it becomes [`ExitReason::Error`].
///
/// # Lifecycle
/// `on_connect`, then (`on_data` | `on_message` | `on_info` | `on_timeout` | `on_close` |
/// `on_shutdown`) repeated — `on_close` (the peer's EOF, no `on_data` after it) and
/// `on_shutdown` (a drain) at most once each — until one returns `Close` or `Err` or is
/// `on_timeout(Lifetime)`; when the peer is at fault, `on_error` comes instead of the next
/// callback and is the last.
///
/// # Guarantees
/// - **One event at a time.** Callbacks of one connection never overlap, and none is ever
///   interrupted for an event: data, messages, the drain's notice and a read timeout wait
///   until the running callback returns (the drain's notice and the timers come first then,
///   before more data).
/// - **A failure stays in its connection.** A panic in a callback (or in the handler's
///   `Clone`) closes only this connection: it is counted in
///   [`ServerStats::panicked`](crate::ServerStats::panicked), logged at `error` with the
///   connection id, and the connection's process exits with [`ExitReason::Panicked`]. An
///   `Err(reason)` closes it the same way (counted in `errored`, logged at `warn`, exit reason
///   `reason`). Other connections never notice.
/// - **Timers race a running callback**, by this rule:
///   - a write the peer does not take (`HandlerContext::send` waiting for its receive window) is
///     decided by the send timeout ([`Server::send_timeout`](crate::Server::send_timeout)):
///     once no byte has been accepted for that long the write fails with
///     [`TimedOut`](io::ErrorKind::TimedOut), and when the callback returns, whatever it
///     returns, the connection gets [`on_error`](Self::on_error) with
///     [`ConnError::SendTimeout`] and closes (counted in `errored`);
///   - the lifetime ([`Server::lifetime`](crate::Server::lifetime)): if it passes while a
///     callback runs, blocked on a write or on anything else, the callback is dropped where
///     it stands and the connection's process is killed (counted in `killed`, event reason
///     `lifetime`); between callbacks it is delivered as `on_timeout(Lifetime)`, the last
///     callback, which is not raced (its writes are bounded by the send timeout);
///   - the drain's deadline: a callback still running when it passes is killed (counted in
///     `killed`, reason `drain_deadline`); the drain's notice itself waits for the callback;
///   - the read timeout measures the peer's silence while the connection listens, so it
///     never ends a callback: one that passed while a callback ran is delivered as
///     `on_timeout(ReadIdle)` when it returns.
/// - **Bounded memory per connection.** Bytes left unconsumed in `on_data`'s buffer are
///   capped by [`Server::max_read_buffer`](crate::Server::max_read_buffer): beyond it the
///   connection gets `on_error` with [`ConnError::ReadBufferFull`] and closes.
///
/// # Examples
/// An echo server that greets and says goodbye during a drain:
/// ```
/// use beamline_server::{HandlerContext, ExitReason, Flow, Handler};
/// use bytes::BytesMut;
///
/// #[derive(Clone)]
/// struct Echo;
///
/// impl Handler for Echo {
///     async fn on_connect(&mut self, conn: &mut HandlerContext<'_>) -> Result<Flow, ExitReason> {
///         conn.send(b"hello\n").await?;
///         Ok(Flow::Continue)
///     }
///
///     async fn on_data(&mut self, data: &mut BytesMut, conn: &mut HandlerContext<'_>) -> Result<Flow, ExitReason> {
///         conn.send(data).await?;
///         data.clear(); // consumed; bytes left here are handed back with the next read
///         Ok(Flow::Continue)
///     }
///
///     async fn on_shutdown(&mut self, conn: &mut HandlerContext<'_>) -> Result<Flow, ExitReason> {
///         let _ = conn.send(b"server going away\n").await;
///         Ok(Flow::Close)
///     }
/// }
/// ```
pub trait Handler<M = ()>: Send + 'static
where
    M: Send + 'static,
{
    /// The connection is up (after the TLS handshake, for TLS). Default: continue.
    fn on_connect(
        &mut self,
        conn: &mut HandlerContext<'_, M>,
    ) -> impl Future<Output = Result<Flow, ExitReason>> + Send {
        let _ = conn;
        async { Ok(Flow::Continue) }
    }

    /// Bytes arrived. `data` holds everything received and not yet consumed: take what forms
    /// a whole message (`data.split_to(n)`, `data.clear()`), and leave a partial one; more
    /// bytes are appended to it before the next call.
    fn on_data(
        &mut self,
        data: &mut BytesMut,
        conn: &mut HandlerContext<'_, M>,
    ) -> impl Future<Output = Result<Flow, ExitReason>> + Send;

    /// Another process sent this connection a message (through [`HandlerContext::addr`]).
    /// Default: ignore it and continue.
    fn on_message(
        &mut self,
        message: M,
        conn: &mut HandlerContext<'_, M>,
    ) -> impl Future<Output = Result<Flow, ExitReason>> + Send {
        let _ = (message, conn);
        async { Ok(Flow::Continue) }
    }

    /// A notice: a linked process exited, or a monitored one went down (links and monitors
    /// are made through [`HandlerContext::context`]). Default: OTP's rule for links, so an abnormal exit
    /// of a linked process ends this connection with the same reason; anything else continues.
    fn on_info(
        &mut self,
        info: Info,
        conn: &mut HandlerContext<'_, M>,
    ) -> impl Future<Output = Result<Flow, ExitReason>> + Send {
        let _ = conn;
        let result = match info {
            Info::Exit { reason, .. } if reason.is_abnormal() => Err(reason),
            _ => Ok(Flow::Continue),
        };
        async move { result }
    }

    /// A timer ran out. For [`TimeoutKind::ReadIdle`], `Continue` waits another read
    /// timeout; for [`TimeoutKind::Lifetime`] the connection closes whatever this returns.
    /// Default: close.
    fn on_timeout(
        &mut self,
        timeout: TimeoutKind,
        conn: &mut HandlerContext<'_, M>,
    ) -> impl Future<Output = Result<Flow, ExitReason>> + Send {
        let _ = (timeout, conn);
        async { Ok(Flow::Close) }
    }

    /// The server is draining ([`ServerHandle::shutdown`](crate::ServerHandle::shutdown)):
    /// say goodbye. `Close` ends the connection now; `Continue` keeps serving it until the
    /// peer or the handler closes it, or the drain's deadline kills it. Default: close.
    fn on_shutdown(
        &mut self,
        conn: &mut HandlerContext<'_, M>,
    ) -> impl Future<Output = Result<Flow, ExitReason>> + Send {
        let _ = conn;
        async { Ok(Flow::Close) }
    }

    /// The peer finished sending (EOF). `Close` ends the connection; `Continue` keeps the
    /// sending side open (half-close): no more `on_data`, but messages, timeouts and the
    /// drain still arrive. Default: close.
    fn on_close(
        &mut self,
        conn: &mut HandlerContext<'_, M>,
    ) -> impl Future<Output = Result<Flow, ExitReason>> + Send {
        let _ = conn;
        async { Ok(Flow::Close) }
    }

    /// The connection is being closed on the peer's account: reading failed
    /// ([`ConnError::Read`]: a reset, or a TLS error after the handshake), the peer stopped
    /// reading ([`ConnError::SendTimeout`]), or it sent a frame that never ends
    /// ([`ConnError::ReadBufferFull`]). The connection is closed after this call. `Ok(())`
    /// ends its process normally (the peer's misbehaviour is the peer's business),
    /// `Err(reason)` with `reason`. Either way it counts in
    /// [`ServerStats::errored`](crate::ServerStats::errored). Default: `Ok(())`.
    fn on_error(&mut self, error: &ConnError, info: &ConnInfo) -> Result<(), ExitReason> {
        let _ = (error, info);
        Ok(())
    }
}

/// The old name of [`HandlerContext`].
#[deprecated(
    note = "renamed `HandlerContext`: the server's `Connection` is the other handler form's"
)]
pub type Conn<'a, M = ()> = HandlerContext<'a, M>;

/// What a [`Handler`] callback acts on: the connection's socket (for writing), what is known
/// about it, and its process.
pub struct HandlerContext<'a, M = ()> {
    stream: &'a mut Stream,
    info: &'a ConnInfo,
    ctx: &'a Context<M>,
}

impl<'a, M: Send + 'static> HandlerContext<'a, M> {
    pub(crate) fn new(stream: &'a mut Stream, info: &'a ConnInfo, ctx: &'a Context<M>) -> Self {
        Self { stream, info, ctx }
    }

    /// What is known about the connection (id, addresses, SNI, ALPN).
    pub fn info(&self) -> &ConnInfo {
        self.info
    }

    /// The connection's id (its process id).
    pub fn id(&self) -> ProcessId {
        self.info.id
    }

    /// The peer's address.
    pub fn peer(&self) -> &Endpoint {
        &self.info.peer
    }

    /// Writes all of `data` and flushes it (for TLS, onto the socket). It waits while the
    /// peer's receive window is full, at most the send timeout without progress.
    ///
    /// # Errors
    /// The socket's error (`BrokenPipe`, `ConnectionReset`, ...), or
    /// [`TimedOut`](io::ErrorKind::TimedOut) once the peer has accepted no byte for the send
    /// timeout (the connection then ends after this callback; see the [`Handler`] rules).
    pub async fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.stream.write_all(data).await?;
        self.stream.flush().await
    }

    /// The socket itself, for vectored or buffered writes (`write_buf`, `write_all_buf`).
    /// Reading from it is allowed but takes bytes away from `on_data`.
    pub fn stream(&mut self) -> &mut Stream {
        self.stream
    }

    /// The connection's process: links, monitors, `spawn_link`, exit signals.
    pub fn context(&self) -> &Context<M> {
        self.ctx
    }

    /// The connection's address: hand it to other processes (or a
    /// [`Registry`](beamline_process::Registry)) so they can send it messages, which arrive
    /// as [`Handler::on_message`].
    pub fn addr(&self) -> Addr<M> {
        self.ctx.addr()
    }
}

impl<M: Send + 'static> std::fmt::Debug for HandlerContext<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerContext")
            .field("info", self.info)
            .field("stream", &self.stream)
            .finish()
    }
}
