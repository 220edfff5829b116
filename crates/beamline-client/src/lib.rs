//! The composed client: `Pool ─► Reconnect ─► Mux driver ─► Framed<TCP | TLS | Unix>`,
//! built by one builder.
//!
//! ```text
//! Client ─► Pool (optional) ─► Reconnect (backoff, offline policy) ─► MuxConnection ─► Mux driver (ids | FIFO) ─► TCP | TLS | Unix
//! ```
//!
//! [`Client::builder`] chooses the transport ([`Target`], [`ClientBuilder::tls`]), how
//! requests are identified (beamline's wire format with ids, your own
//! [`Tagged`](beamline_mux::Tagged) protocol, or FIFO order for protocols without ids such
//! as Redis), the reconnect [`BackoffConfig`](beamline_reconnect::BackoffConfig), the
//! [`OfflinePolicy`](beamline_reconnect::OfflinePolicy) and the [`Pooling`]. Every layer is
//! public, one seam per idea, so the same stack can be assembled by hand:
//!
//! - **making a connection** is the [`Dialer`], the builder's one
//!   [`Connect`](beamline_reconnect::Connect), whose error is a [`TransportError`] that every
//!   layer above hands back typed (never downcast, never turned into text);
//! - **using one** is [`MuxConnection`], the multiplexed connection as reconnect's
//!   [`Connection`](beamline_reconnect::Connection);
//! - **managing pooled ones** is [`ClientManager`], the pool's
//!   [`Manager`](beamline_pool::Manager) over any `Connect`;
//! - **"was it sent?"** is [`WasSent`] on every layer's error, [`ClientError`] included.
//!
//! The `beamline` facade re-exports this crate's items at its root (`beamline::Client`),
//! beside the layers (`beamline::reconnect`, `beamline::pool`, ...). Used alone, this crate
//! names them by their own crates (`beamline_reconnect::OfflinePolicy`,
//! `beamline_pool::PoolConfig`).
//!
//! # Guarantees
//! See [`Client`]: every call ends in its own answer or a typed [`ClientError`] that says
//! whether the request may have been delivered; nothing is replayed unless the caller said
//! it is idempotent; reconnects are bounded and jittered; limits everywhere.
//!
//! # Feature flags
//! - `tls` *(default)* — TLS through tokio-rustls on the ring provider; re-exports
//!   [`rustls`] and [`tokio_rustls`] so your configs match.
//! - `resp` *(default)* — [`ClientBuilder::resp`], with [`beamline-resp`](resp)
//!   re-exported as [`resp`].
//! - `tower` *(off)* — [`Client`] implements `tower::Service`.

#![forbid(unsafe_code)]
// Every public type decides whether it may grow: #[non_exhaustive], or an allow that says why
// it is closed.
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
// The guide links to the items of every feature; docs.rs builds with all of them.
#![cfg_attr(
    not(all(feature = "tls", feature = "resp", feature = "tower")),
    allow(rustdoc::broken_intra_doc_links)
)]

#[cfg(feature = "resp")]
#[doc(no_inline)]
pub use beamline_resp as resp;
#[cfg(feature = "tls")]
#[doc(no_inline)]
pub use {rustls, tokio_rustls};

#[cfg(feature = "balance")]
mod balanced;
mod builder;
mod connection;
mod dial;
mod error;
mod pool;
#[cfg(feature = "tower")]
mod service;
#[cfg(feature = "process")]
mod supervised;
mod transport;

/// The trait [`ClientError`] (and every layer's error below it) answers "was it sent" with,
/// from the dependency-free `beamline-failure`.
#[doc(inline)]
pub use beamline_failure::WasSent;
pub use builder::{ClientBuilder, DEFAULT_REQUEST_TIMEOUT};
pub use connection::MuxConnection;
pub use dial::Dialer;
pub use error::{BuildError, ClientError, TransportError};
pub use pool::{ClientManager, Pooling};
#[cfg(feature = "tower")]
pub use service::ResponseFuture;
#[cfg(feature = "process")]
pub use supervised::Supervised;
pub use transport::Target;

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use beamline_pool::{Pool, PoolGuard, SharedGuard, SharedPool};
use beamline_reconnect::{CloseReason, Reconnect, State};
use bytes::Bytes;

/// A client that reconnects, multiplexes and (optionally) pools: one handle for many
/// concurrent callers.
///
/// Built by [`Client::builder`]. Cheap to clone (every clone is the same client); when the
/// last clone is dropped the client closes and its connections shut down.
///
/// # Guarantees
/// - **Every call ends in its own answer or a typed [`ClientError`]** that says whether
///   the request may have been delivered ([`WasSent::was_sent`]). A caller never
///   receives another caller's answer, in FIFO mode too: an abandoned request's answer is
///   read and discarded.
/// - **Nothing is replayed behind your back**: only [`call_idempotent`](Self::call_idempotent)
///   requests are sent again after a lost connection, at most `max_replays` times.
/// - **Reconnects are jittered and bounded** by the [`BackoffConfig`](beamline_reconnect::BackoffConfig);
///   while no connection is up, requests follow the [`OfflinePolicy`](beamline_reconnect::OfflinePolicy):
///   fail at once, or wait in a bounded queue until a deadline and then go out in order.
/// - **Bounded in flight**: at most `max_in_flight` requests per connection; callers
///   beyond wait in the connection's one line (the mux client's), in the order their calls
///   were first polled, within their timeout.
/// - **FIFO never wedges**: a request abandoned after it was written whose answer has not
///   come within the [`abandon_timeout`](ClientBuilder::abandon_timeout) (twice the
///   request timeout, or 30 s) fails its connection, which is then replaced; the calls on
///   it end `NotSent` or `ConnectionLost`.
/// - **Pooled, honestly** ([`Pooling`]): a call waits for a pooled connection at most the
///   pool's checkout timeout, in arrival order; when connecting is what fails, the error
///   carries the connect attempt's own error ([`ClientError::transport_error`]).
/// - **A timed-out or dropped call frees its slot at once**; the connection stays up.
/// - **Closing is final**: after [`close`](Self::close) every call fails with
///   [`ClientError::Closed`], in-flight requests end as their connection reports them. A
///   panic in code the client's background task runs closes it the same way, with
///   [`CloseReason::Panicked`] as the reason.
/// - **It can be a supervised process** (feature `process`, [`Client::child_spec`]): it
///   then exits with a typed reason when it gives up, is restarted by its supervisor within
///   the restart intensity, and this handle follows it across restarts.
///
/// # Examples
/// ```no_run
/// use beamline_client::Client;
/// use beamline_client::resp::{Command, Value};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let redis = Client::builder("127.0.0.1:6379").resp().connect().await?;
/// redis.call(Command::new("SET").arg("greeting").arg("hello")).await?;
/// let value = redis.call(Command::new("GET").arg("greeting")).await?;
/// assert_eq!(value, Value::bulk("hello"));
/// # Ok(())
/// # }
/// ```
pub struct Client<Req: Send + 'static, Resp: Send + 'static> {
    name: Arc<str>,
    stack: Stack<Req, Resp>,
}

/// The layers under a [`Client`], for inspection ([`Client::stack`]): the state of its
/// reconnecting connection, the pool's metrics, the mux's counters.
///
/// Each layer keeps its own failure guarantees (see [`Reconnect`] and [`MuxConnection`]);
/// calling a layer directly bypasses nothing but the facade's error type.
#[non_exhaustive]
pub enum Stack<Req: Send + 'static, Resp: Send + 'static> {
    /// One reconnecting, multiplexed connection shared by every caller.
    Single(Reconnect<MuxConnection<Req, Resp>>),
    /// An exclusive pool of reconnecting, multiplexed connections ([`Pooling::Exclusive`]).
    Exclusive(Pool<ClientManager<Dialer<Req, Resp>>>),
    /// A shared pool of reconnecting, multiplexed connections ([`Pooling::Shared`]).
    Shared(SharedPool<ClientManager<Dialer<Req, Resp>>>),
    /// A client run by a supervisor ([`Client::child_spec`]): the layers of whichever
    /// incarnation is running ([`Supervised::current`]).
    #[cfg(feature = "process")]
    Supervised(Supervised<Req, Resp>),
}

impl<Req: Send + 'static, Resp: Send + 'static> Clone for Stack<Req, Resp> {
    fn clone(&self) -> Self {
        match self {
            Stack::Single(reconnect) => Stack::Single(reconnect.clone()),
            Stack::Exclusive(pool) => Stack::Exclusive(pool.clone()),
            Stack::Shared(pool) => Stack::Shared(pool.clone()),
            #[cfg(feature = "process")]
            Stack::Supervised(supervised) => Stack::Supervised(supervised.clone()),
        }
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> fmt::Debug for Stack<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stack::Single(reconnect) => f.debug_tuple("Single").field(reconnect).finish(),
            Stack::Exclusive(pool) => f.debug_tuple("Exclusive").field(pool).finish(),
            Stack::Shared(pool) => f.debug_tuple("Shared").field(pool).finish(),
            #[cfg(feature = "process")]
            Stack::Supervised(supervised) => f.debug_tuple("Supervised").field(supervised).finish(),
        }
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> Clone for Client<Req, Resp> {
    fn clone(&self) -> Self {
        Client {
            name: self.name.clone(),
            stack: self.stack.clone(),
        }
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> fmt::Debug for Client<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("name", &self.name)
            .field("stack", &self.stack)
            .finish()
    }
}

impl Client<Bytes, Bytes> {
    /// A builder for a client of `target` (`"host:port"`, a [`SocketAddr`](std::net::SocketAddr),
    /// or a [`Target`]), speaking beamline's wire format until told otherwise
    /// ([`ClientBuilder::fifo`], [`ClientBuilder::tagged`], [`ClientBuilder::resp`]).
    pub fn builder(target: impl Into<Target>) -> ClientBuilder<Bytes, Bytes> {
        ClientBuilder::new(target.into())
    }
}

impl<Req, Resp> Client<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    /// Sends `request` and waits for its answer. Never replayed.
    ///
    /// Dropping the returned future cancels the call: its slot is freed at once and, if it
    /// was written, its answer is discarded when it comes.
    ///
    /// # Errors
    /// A [`ClientError`]: no pooled connection (`Checkout`), offline (`Disconnected`,
    /// `QueueFull`, `OfflineTimeout`), the connection died (`NotSent`, `ConnectionLost`), the
    /// request's own failure (`Timeout`, `Remote`, `Cancelled`, `Request`), or `Closed`.
    /// [`WasSent::was_sent`] says whether a retry is safe.
    pub async fn call(&self, request: Req) -> Result<Resp, ClientError> {
        let stack = self.layers().await?;
        let conn = checkout(&self.name, &stack).await?;
        conn.call(request).await.map_err(ClientError::from)
    }

    /// Sends an idempotent `request`: if its connection is lost before the answer arrives,
    /// it is sent again on the next connection (following the offline policy), at most
    /// `max_replays` times (1 unless set with [`ClientBuilder::reconnect`]). Use it only for
    /// requests that are safe to apply twice (reads, `SET` of a fixed value).
    ///
    /// # Errors
    /// As [`call`](Self::call); after replays, `ConnectionLost` if any attempt may have been
    /// delivered.
    pub async fn call_idempotent(&self, request: Req) -> Result<Resp, ClientError>
    where
        Req: Clone,
    {
        let stack = self.layers().await?;
        let conn = checkout(&self.name, &stack).await?;
        conn.call_idempotent(request)
            .await
            .map_err(ClientError::from)
    }

    /// The layers a call goes through: this client's own, or a supervised client's running
    /// incarnation's (between incarnations, its offline policy decides).
    async fn layers(&self) -> Result<CallLayers<'_, Req, Resp>, ClientError> {
        match &self.stack {
            #[cfg(feature = "process")]
            Stack::Supervised(supervised) => Ok(CallLayers::Incarnation(
                supervised.incarnation(&self.name).await?,
            )),
            stack => Ok(CallLayers::Own(stack)),
        }
    }
}

/// The layers one call goes through, held for the call.
enum CallLayers<'a, Req: Send + 'static, Resp: Send + 'static> {
    Own(&'a Stack<Req, Resp>),
    #[cfg(feature = "process")]
    Incarnation(supervised::Incarnation<Req, Resp>),
}

impl<Req: Send + 'static, Resp: Send + 'static> Deref for CallLayers<'_, Req, Resp> {
    type Target = Stack<Req, Resp>;

    fn deref(&self) -> &Self::Target {
        match self {
            CallLayers::Own(stack) => stack,
            #[cfg(feature = "process")]
            CallLayers::Incarnation(incarnation) => incarnation.stack(),
        }
    }
}

/// The reconnecting connection a call goes to: the only one, or one checked out of the pool
/// (given back when the returned guard drops).
async fn checkout<'a, Req: Send + 'static, Resp: Send + 'static>(
    name: &Arc<str>,
    stack: &'a Stack<Req, Resp>,
) -> Result<Checkout<'a, Req, Resp>, ClientError> {
    let checkout = |e| ClientError::checkout(name, e);
    Ok(match stack {
        Stack::Single(reconnect) => Checkout::Single(reconnect),
        Stack::Exclusive(pool) => Checkout::Exclusive(pool.get().await.map_err(checkout)?),
        Stack::Shared(pool) => Checkout::Shared(pool.get().await.map_err(checkout)?),
        // An incarnation's layers are never themselves supervised.
        #[cfg(feature = "process")]
        Stack::Supervised(_) => return Err(ClientError::Disconnected { name: name.clone() }),
    })
}

/// A reconnecting connection held for one call.
enum Checkout<'a, Req: Send + 'static, Resp: Send + 'static> {
    Single(&'a Reconnect<MuxConnection<Req, Resp>>),
    Exclusive(PoolGuard<'a, ClientManager<Dialer<Req, Resp>>>),
    Shared(SharedGuard<'a, ClientManager<Dialer<Req, Resp>>>),
}

impl<Req: Send + 'static, Resp: Send + 'static> Deref for Checkout<'_, Req, Resp> {
    type Target = Reconnect<MuxConnection<Req, Resp>>;

    fn deref(&self) -> &Self::Target {
        match self {
            Checkout::Single(reconnect) => reconnect,
            Checkout::Exclusive(guard) => guard,
            Checkout::Shared(guard) => guard,
        }
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> Client<Req, Resp> {
    /// The client's name (its target unless [`ClientBuilder::name`] set one).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Closes the client for good: waiting and later calls fail with
    /// [`ClientError::Closed`], in-flight requests end as their connection reports them
    /// (`NotSent` or `ConnectionLost`), connections shut down. Every clone is closed.
    /// Idempotent.
    ///
    /// A supervised client ([`child_spec`](Self::child_spec)) belongs to its supervisor:
    /// this closes its running incarnation, whose process exits normally and is restarted.
    pub fn close(&self) {
        match &self.stack {
            Stack::Single(reconnect) => reconnect.close(),
            Stack::Exclusive(pool) => pool.close(),
            Stack::Shared(pool) => pool.close(),
            #[cfg(feature = "process")]
            Stack::Supervised(supervised) => supervised.close(),
        }
    }

    /// Whether the client is closed for good (by [`close`](Self::close), or because the
    /// reconnect backoff gave up). A client that is only reconnecting is not closed; a
    /// supervised one is closed while no incarnation runs.
    pub fn is_closed(&self) -> bool {
        match &self.stack {
            Stack::Single(reconnect) => reconnect.is_closed(),
            Stack::Exclusive(pool) => pool.is_closed(),
            Stack::Shared(pool) => pool.is_closed(),
            #[cfg(feature = "process")]
            Stack::Supervised(supervised) => !supervised.is_running(),
        }
    }

    /// Why the client closed, once it has (for a supervised client, why its last
    /// incarnation ended, while none runs).
    pub fn close_reason(&self) -> Option<CloseReason> {
        match &self.stack {
            Stack::Single(reconnect) => match reconnect.state() {
                State::Closed(reason) => Some(reason),
                _ => None,
            },
            Stack::Exclusive(pool) => pool.is_closed().then_some(CloseReason::Requested),
            Stack::Shared(pool) => pool.is_closed().then_some(CloseReason::Requested),
            #[cfg(feature = "process")]
            Stack::Supervised(supervised) => supervised.close_reason(),
        }
    }

    /// The layers under the client, to watch its state or read its counters.
    pub fn stack(&self) -> &Stack<Req, Resp> {
        &self.stack
    }
}
