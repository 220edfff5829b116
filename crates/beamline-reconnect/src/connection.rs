//! The two seams the reconnecting connection is generic over: how to make one connection
//! ([`Connect`]) and how to send a request on it ([`Connection`]).

use std::future::Future;

use beamline_failure::WasSent;

/// How to make one connection: TCP, TLS, a Unix socket, a multiplexed client, anything.
///
/// The reconnecting connection calls [`connect`](Self::connect) once per attempt, under its
/// connect timeout (the future is dropped when the timeout fires, so it must be
/// cancel-safe: dropping it must not leak a half-open socket). A returned error is one
/// failed attempt: it is logged, counted and followed by a backoff delay, never a reason to
/// give up by itself (the backoff's limits decide that). The first attempt's error under
/// `sync_connect` comes back to the caller as it was made, typed
/// ([`StartError<Self::Error>`](crate::StartError)).
///
/// Any `FnMut() -> impl Future<Output = Result<C, E>>` closure is a `Connect`, which is the
/// usual way to write one:
///
/// ```no_run
/// # use beamline_reconnect::{Connect, FramedConnection};
/// use tokio::net::TcpStream;
/// use tokio_util::codec::{Framed, LinesCodec};
///
/// let addr = "127.0.0.1:6379";
/// let connect = move || async move {
///     let stream = TcpStream::connect(addr).await?;
///     let lines = Framed::new(stream, LinesCodec::new_with_max_length(8 * 1024));
///     Ok::<_, std::io::Error>(FramedConnection::<String, String>::new(lines))
/// };
/// # fn is_connect<K: Connect>(_: &K) {}
/// # is_connect(&connect);
/// ```
pub trait Connect: Send + 'static {
    /// The connection this makes.
    type Connection: Connection;
    /// Why an attempt failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Makes one connection attempt.
    fn connect(&mut self) -> impl Future<Output = Result<Self::Connection, Self::Error>> + Send;
}

impl<F, Fut, C, E> Connect for F
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<C, E>> + Send,
    C: Connection,
    E: std::error::Error + Send + Sync + 'static,
{
    type Connection = C;
    type Error = E;

    fn connect(&mut self) -> impl Future<Output = Result<C, E>> + Send {
        self()
    }
}

/// One live connection's request path: send a request, get its response; learn that the
/// connection died.
///
/// This is the seam the client layers share (see the crate docs). It is implemented here
/// for [`FramedConnection`](crate::FramedConnection) (a `tokio_util::codec::Framed`,
/// requests pipelined in FIFO order), and by the `beamline` facade for a multiplexed
/// client handle. Calls take `&self` and may run concurrently: a connection that can only
/// serve one request at a time queues them itself.
///
/// # Contract
/// The reconnecting connection relies on these promises; an implementation that breaks one
/// breaks the guarantee built on it.
/// - **Delivery is reported honestly.** The error type implements [`WasSent`]:
///   [`was_sent`](WasSent::was_sent) is `false` only when no byte of the request reached
///   the transport (safe to retry); when in doubt, `true`.
/// - **Death is visible before its errors.** When a call fails because the connection
///   died, [`is_closed`](Self::is_closed) already returns `true` when the error is
///   returned, and [`closed`](Self::closed) resolves. A call error on a connection that
///   is not closed is a per-request failure (a codec error, the request's own timeout)
///   and does not trigger a reconnect.
/// - **Order is the order of first polls.** Requests are written in the order their
///   `call` futures are first polled (for a FIFO connection that is what makes responses
///   match; for a multiplexed one it is what keeps the offline queue in order).
/// - **`close` fails what is in flight.** After [`close`](Self::close), pending calls end
///   with an error instead of waiting forever; this is how a half-open connection found by
///   a health check is torn down.
pub trait Connection: Send + Sync + 'static {
    /// What a call sends.
    type Request: Send + 'static;
    /// What a call returns.
    type Response: Send + 'static;
    /// Why a call failed, and whether the request may have been written ([`WasSent`]).
    type Error: std::error::Error + WasSent + Send + Sync + 'static;

    /// Sends `request` and waits for its response.
    fn call(
        &self,
        request: Self::Request,
    ) -> impl Future<Output = Result<Self::Response, Self::Error>> + Send;

    /// Whether the connection is dead (closed by either side, or failed).
    fn is_closed(&self) -> bool;

    /// Resolves once the connection is dead; at once if it already is.
    fn closed(&self) -> impl Future<Output = ()> + Send;

    /// Closes the connection: pending and later calls fail, [`closed`](Self::closed)
    /// resolves. Idempotent.
    fn close(&self);
}
