//! Reconnect — but *when*? With a backoff, with jitter, and with an explicit answer to
//! what happens to requests while there is no connection.
//!
//! Connections drop. A client that reconnects at once, in a loop, hammers a server that
//! is trying to come back; ten thousand clients that reconnect on the same schedule come
//! back in the same millisecond and knock it over again (the thundering herd). This crate
//! gives you the two pieces that avoid that, each usable alone:
//!
//! - **Backoff policies, sans-IO** ([`BackoffConfig`] → [`Backoff`]): constant or
//!   exponential delays with full, equal, decorrelated or proportional [`Jitter`], the
//!   gRPC preset, and optional limits (attempts, elapsed time). No clock, no runtime: you
//!   pass `now`, it returns the next delay or [`GiveUp`]. The jitter comes from an
//!   injected, seedable generator ([`SplitMix64`] by default, or any `rand::Rng`).
//! - **A reconnecting connection** ([`Reconnect`]): a background task runs an explicit
//!   state machine (`Connecting`, `Connected`, `BackingOff { attempt, until }`, `Closed`;
//!   see [`State`]) over anything that implements [`Connect`] (how to make one
//!   connection) and [`Connection`] (how to send a request on it). Callers share a cheap
//!   handle and see the gaps only through the [`OfflinePolicy`] they chose.
//!
//! Plus [`FramedConnection`], the [`Connection`] for a plain `tokio_util::codec::Framed`
//! (requests pipelined in FIFO order), and [`herd`], the thundering-herd simulation that
//! shows what each jitter kind does to 10,000 clients.
//!
//! # Guarantees
//!
//! - **The backoff is bounded and jittered.** No delay exceeds the cap, whatever the
//!   jitter; delays follow the documented formulas exactly; a seed reproduces them.
//! - **A connection that stays up resets the backoff** — only one that stayed up for the
//!   stable period, so a server that accepts and crashes is not hammered.
//! - **A lost connection waits one backoff delay before its first reconnect attempt**, so
//!   clients that lost the same server spread out instead of returning together.
//! - **Every request ends in a response or a typed error that says whether it may have
//!   been delivered** ([`WasSent`] on [`ReconnectError`]): never written is
//!   [`NotSent`](ReconnectError::NotSent) (safe to retry), written but unanswered is
//!   [`ConnectionLost`](ReconnectError::ConnectionLost) (maybe delivered).
//! - **Nothing is replayed silently**: only requests made with
//!   [`Reconnect::call_idempotent`], at most `max_replays` times.
//! - **Offline requests follow an explicit policy**: [`OfflinePolicy::FailFast`], or a
//!   bounded queue with a deadline whose requests are started in order when a connection
//!   comes up.
//! - **Half-open connections are found**: by a [`HealthCheck`] ping, or by the progress
//!   timeout (requests in flight, no response for one interval).
//! - **User code never runs under the driver's lock, and its panics are typed**: the
//!   connector, the health check and the first poll of each queued call run with no lock
//!   held; a panic in any of them closes the connection with [`CloseReason::Panicked`] and
//!   its message, visible to [`Reconnect::state_changes`] watchers and in every later
//!   error, while each request keeps its was-sent answer (started ones end as their
//!   connection reports them, queued ones unsent). A panic in a [`FramedConnection`]'s codec
//!   closes it with [`FramedCloseCause::Panicked`].
//! - **It can live in a supervision tree** (feature `process`): `Reconnect::child_spec` runs
//!   it as a supervised process that exits with [`CloseReason`]'s reason when it gives up
//!   (`exit_on_disconnection`, the backoff's limit, a panic), restarted within the
//!   supervisor's intensity, behind a handle that follows the restarts.
//!
//! # Feature flags
//!
//! - `process` *(off)*: `Reconnect::child_spec` and `SupervisedReconnect`, on
//!   `beamline-process`. Off by default, so the crate does not bring a process runtime to
//!   users who only want backoff or a reconnecting connection.
//!
//! # The seams
//!
//! [`Connection`] is the request path every client layer shares (see ARCHITECTURE.md):
//! `call(request)`, `is_closed()`, `closed()`, `close()`, and an error type that says
//! whether a failed request was written ([`WasSent`], from `beamline-failure`). It is
//! implemented here for [`FramedConnection`] and for [`Reconnect`] itself (so a pool can
//! hold reconnecting connections), and by the `beamline` facade for a multiplexed client.
//! [`Connect`] makes one; any `FnMut() -> impl Future<Output = Result<C, E>>` closure is one.
//!
//! # Example
//!
//! A line-protocol client that survives its server restarting, with requests made while
//! it is down waiting (up to 2 s) in a queue of 100:
//!
//! ```no_run
//! use std::time::Duration;
//! use beamline_reconnect::{
//!     BackoffConfig, FramedConnection, OfflinePolicy, Reconnect, ReconnectConfig, ReconnectError,
//!     WasSent,
//! };
//! use tokio::net::TcpStream;
//! use tokio_util::codec::{Framed, LinesCodec};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let addr = "127.0.0.1:7000";
//! let connect = move || async move {
//!     let stream = TcpStream::connect(addr).await?;
//!     // A line longer than 8 KiB is a decode error, not an unbounded buffer.
//!     let lines = LinesCodec::new_with_max_length(8 * 1024);
//!     Ok::<_, std::io::Error>(FramedConnection::new(Framed::new(stream, lines)))
//! };
//! let config = ReconnectConfig::new(OfflinePolicy::Queue { max: 100, deadline: Duration::from_secs(2) })
//!     .name(format!("echo {addr}"))
//!     .backoff(BackoffConfig::exponential(Duration::from_millis(100), 2.0, Duration::from_secs(10)));
//! let conn = Reconnect::start(connect, config).await?;
//!
//! match conn.call("SET k v".to_string()).await {
//!     Ok(reply) => println!("{reply}"),
//!     // Never written: safe to try again.
//!     Err(e) if !e.was_sent() => eprintln!("not sent: {e}"),
//!     // Maybe applied: the caller decides.
//!     Err(e) => eprintln!("unknown outcome: {e}"),
//! }
//! // Reads are idempotent: replayed on the next connection if this one is lost.
//! let value = conn.call_idempotent("GET k".to_string()).await?;
//! # let _ = value;
//! # let _: Option<ReconnectError<beamline_reconnect::FramedError>> = None;
//! # Ok(())
//! # }
//! ```
//!
//! And the backoff alone, in any retry loop:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use beamline_reconnect::BackoffConfig;
//!
//! let mut backoff = BackoffConfig::grpc().max_attempts(5).build()?;
//! while let Ok(delay) = backoff.next_delay(Instant::now()) {
//!     assert!(delay <= Duration::from_secs(120));
//!     // sleep(delay), then try again; on success: backoff.reset()
//! #   break;
//! }
//! # Ok::<(), beamline_reconnect::BackoffConfigError>(())
//! ```

#![forbid(unsafe_code)]
// Every public type decides whether it may grow: #[non_exhaustive], or an allow that says why
// it is closed.
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod connection;
mod framed;
mod reconnect;

/// The backoff policies, their generator and the herd simulation live in `beamline-backoff`
/// (no runtime dependency); they stay reachable here at their old paths.
pub use beamline_backoff::herd;
pub use beamline_backoff::{
    Backoff, BackoffConfig, BackoffConfigError, GiveUp, Jitter, SplitMix64,
};
/// The trait every call error implements: whether the failed request may have been written.
#[doc(inline)]
pub use beamline_failure::WasSent;
pub use connection::{Connect, Connection};
pub use framed::{DEFAULT_MAX_IN_FLIGHT, FramedCloseCause, FramedConnection, FramedError};
#[cfg(feature = "process")]
pub use reconnect::SupervisedReconnect;
pub use reconnect::{
    CloseReason, ConnectError, DEFAULT_BACKOFF, HealthCheck, LossCause, OfflinePolicy, Reconnect,
    ReconnectConfig, ReconnectConfigError, ReconnectError, StartError, State,
};
