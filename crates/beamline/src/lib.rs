//! The BEAM's networking guarantees on tokio, in one crate.
//!
//! Erlang/OTP systems stay up because every piece of them states what happens when
//! something fails: a process that crashes is restarted by its supervisor, a client that
//! loses its server reconnects with backoff, a caller that waits gets an answer, a timeout
//! or "the process exited" — never silence. beamline brings those guarantees to Rust
//! networking, as small crates that each own one of them, and this facade, where they
//! compose.
//!
//! # Components
//!
//! | module | feature | what it gives you |
//! |---|---|---|
//! | [`process`] | `process` | processes with bounded mailboxes, `call`/`cast`, links and monitors, OTP supervisors |
//! | [`server`] | `server` | an acceptor pool over TCP, TLS and Unix sockets, one supervised process per connection |
//! | [`reconnect`] | `reconnect` | sans-IO jittered backoff, and a reconnecting connection with an explicit offline policy |
//! | [`mux`] | `mux` | many requests over one connection, each answer to its own caller (ids or FIFO order) |
//! | [`pool`] | `pool` | a FIFO-fair connection pool with honest errors, exclusive or shared (multiplexed) checkout |
//! | [`chaos`] | `chaos` | a fault-injecting TCP proxy for your own tests |
//! | [`http`] | `http` | hyper and axum served by [`server`]: HTTP/1.1 and HTTP/2, every connection supervised, bounded and drained |
//! | [`resp`] | `resp` | a bounded, resumable RESP2 codec (typed values, commands, inline commands, server-side requests) |
//! | [`redis`] | `redis` | a Redis Cluster client: slot routing, `MOVED`/`ASK`, topology refresh, pipelines, failover that says which requests may have been applied |
//! | [`Client`] | `client` | the composed client: `Pool ─► Reconnect ─► Mux ─► TCP / TLS / Unix`, from one builder |
//!
//! Each module is the crate of the same name (`beamline-process`, ...), re-exported whole:
//! pick the facade for everything, or one crate for one job.
//!
//! # The composed client
//!
//! ```text
//! Client ─► Pool (optional) ─► Reconnect (backoff, offline policy) ─► MuxConnection ─► Mux driver (ids | FIFO) ─► TCP | TLS | Unix
//! ```
//!
//! [`Client::builder`] chooses the transport ([`Target`], [`ClientBuilder::tls`]), how
//! requests are identified (beamline's wire format with ids, your own [`mux::Tagged`]
//! protocol, or FIFO order for protocols without ids such as Redis), the reconnect
//! [`BackoffConfig`](reconnect::BackoffConfig), the [`OfflinePolicy`](reconnect::OfflinePolicy)
//! and the [`Pooling`]: one multiplexed connection, an exclusive pool, or a shared pool
//! of multiplexed connections.
//! Every layer is public, so the same stack can be assembled by hand (see the last
//! example), with [`MuxConnection`] as the seam between the multiplexed connection and the
//! reconnecting one.
//!
//! # Guarantees
//!
//! - **Every call ends in its own answer or a typed [`ClientError`]**, which says whether
//!   the request may have been delivered ([`WasSent::was_sent`], which every layer's error implements): `NotSent` is safe to
//!   retry, `ConnectionLost` may have been applied. No caller ever gets another caller's
//!   answer, in FIFO mode too.
//! - **Nothing is replayed silently**: only [`Client::call_idempotent`] requests are sent
//!   again after a lost connection.
//! - **Reconnects are bounded and jittered**; while offline, requests fail fast or wait in a
//!   bounded queue until a deadline, and go out in queue order when a connection is back.
//! - **Limits everywhere**: in-flight requests per connection, the offline queue, the pool's
//!   size and checkout timeout, RESP frame, bulk and depth limits checked before allocating.
//! - **Under the defaults every call ends**: the request timeout is 30 s
//!   ([`DEFAULT_REQUEST_TIMEOUT`]) unless you turn it off explicitly
//!   ([`ClientBuilder::no_timeout`]), so a server that never answers costs a caller 30 s and
//!   a [`ClientError::Timeout`], never a hang; the offline queue has its deadline and a
//!   pool's checkout its timeout (30 s). In FIFO mode a reply that never comes fails its
//!   connection after the abandon timeout ([`ClientBuilder::abandon_timeout`]: twice the
//!   request timeout, or 30 s without one) instead of wedging every later reply; the
//!   connection is replaced like any lost one.
//! - **The client's tasks never die silently**: a panic in code they run (your codec's
//!   `clone`, a connector) closes the client with
//!   [`CloseReason::Panicked`](reconnect::CloseReason::Panicked), which every later
//!   [`ClientError::Closed`] carries.
//! - **A pool that cannot connect says why**: a checkout fails with the connect attempt's
//!   own error ([`ClientError::transport_error`]), not a bare timeout.
//! - **A client can be a supervised process** (features `client` and `process`):
//!   [`Client::child_spec`] puts it in a supervision tree, as an Elixir application starts
//!   Redix. It exits with a typed reason its links and monitors see when it gives up
//!   (`ExitReason::Error` holding the `CloseReason`, or `Panicked`), its supervisor restarts it
//!   within its restart intensity, and the handle follows: calls between incarnations follow
//!   the offline policy, never hang, never reach another incarnation's connection.
//!
//! # Feature flags
//!
//! All features are additive. Default: everything but `chaos`, `tower`, `http`, `balance`,
//! `redis` and `metrics`.
//!
//! - `process` — re-exports [`beamline-process`](process) as [`process`]; with `client`,
//!   [`Client::child_spec`] (a client as a supervised process).
//! - `server` — re-exports [`beamline-server`](server) as [`server`] (turns on `process`).
//! - `reconnect` — re-exports [`beamline-reconnect`](reconnect) as [`reconnect`].
//! - `mux` — re-exports [`beamline-mux`](mux) as [`mux`].
//! - `pool` — re-exports [`beamline-pool`](pool) as [`pool`].
//! - `client` — the composed [`Client`], the `beamline-client` crate's items re-exported
//!   at the root (turns on `reconnect`, `mux` and `pool`).
//! - `tls` — TLS for the [`Client`] through tokio-rustls on the ring provider; re-exports
//!   [`rustls`] and [`tokio_rustls`] so your configs match.
//! - `resp` — re-exports [`beamline-resp`](resp) as [`resp`].
//! - `chaos` *(off)* — re-exports [`beamline-chaos`](chaos) as [`chaos`]: a test tool.
//! - `tower` *(off)* — [`Client`] implements `tower::Service`. Off by default because it
//!   makes tower's version part of your dependency graph and API for a trait most users of
//!   the client never name; turn it on to stack tower middleware (timeouts, rate limits,
//!   load shedding) on the client.
//! - `http` *(off)* — re-exports [`beamline-http`](http) as [`http`] (turns on `server`):
//!   serve an axum `Router` or any `tower::Service` over HTTP/1.1 and HTTP/2 with the
//!   server's limits and drain. Off by default because hyper's and http's versions become
//!   part of your API.
//! - `redis` *(off)* — re-exports [`beamline-redis`](redis) as [`redis`] (turns on
//!   `client` and `resp`): the Redis Cluster client, one reconnecting FIFO [`Client`] per
//!   node.
//! - `metrics` *(off)* — [`metrics`]: a [`Publisher`](metrics::Publisher) that writes the
//!   server's, pools', muxes' and connections' numbers through the `metrics` facade to the
//!   exporter your application installs.
//!
//! # Guide
//!
//! The cookbook — processes, a server, backoff, multiplexing, a Redis client, a pool, your own
//! protocol with request ids, failures you can branch on, TLS, tower, RESP on its own, the
//! stack by hand, chaos — is the [`guide`] module: each example is a doc test.

#![forbid(unsafe_code)]
// Every public type decides whether it may grow: #[non_exhaustive], or an allow that says why
// it is closed.
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
// The guide links to the items of every feature; a build without some of them (the default
// leaves out `chaos`, `tower`, `http`, `balance`, `redis` and `metrics`) lets those links dangle. docs.rs builds with all of them.
#![cfg_attr(
    not(all(
        feature = "process",
        feature = "server",
        feature = "chaos",
        feature = "client",
        feature = "tls",
        feature = "resp",
        feature = "tower",
        feature = "http",
        feature = "balance",
        feature = "redis",
        feature = "metrics"
    )),
    allow(rustdoc::broken_intra_doc_links)
)]

#[cfg(feature = "tower")]
#[doc(inline)]
pub use beamline_client::ResponseFuture;
#[cfg(all(feature = "client", feature = "process"))]
#[doc(inline)]
pub use beamline_client::Supervised;
#[cfg(feature = "client")]
#[doc(inline)]
pub use beamline_client::{
    BuildError, Client, ClientBuilder, ClientError, ClientManager, DEFAULT_REQUEST_TIMEOUT, Dialer,
    MuxConnection, Pooling, Stack, Target, TransportError,
};
/// Whether a failed request may have been written: the one trait every client layer's error
/// implements (`MuxError`, `ReconnectError`, `CheckoutError`, `BalanceError`, [`ClientError`]).
#[doc(inline)]
pub use beamline_failure::WasSent;

#[cfg(feature = "balance")]
#[doc(inline)]
pub use beamline_balance as balance;
#[cfg(feature = "chaos")]
#[doc(inline)]
pub use beamline_chaos as chaos;
#[cfg(feature = "tls")]
#[doc(no_inline)]
pub use beamline_client::{rustls, tokio_rustls};
#[cfg(feature = "http")]
#[doc(inline)]
pub use beamline_http as http;
pub mod guide;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "mux")]
#[doc(inline)]
pub use beamline_mux as mux;
#[cfg(feature = "pool")]
#[doc(inline)]
pub use beamline_pool as pool;
#[cfg(feature = "process")]
#[doc(inline)]
pub use beamline_process as process;
#[cfg(feature = "reconnect")]
#[doc(inline)]
pub use beamline_reconnect as reconnect;
#[cfg(feature = "redis")]
#[doc(inline)]
pub use beamline_redis as redis;
#[cfg(feature = "resp")]
#[doc(inline)]
pub use beamline_resp as resp;
#[cfg(feature = "server")]
#[doc(inline)]
pub use beamline_server as server;

/// The README's code, compiled with the doc tests so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
