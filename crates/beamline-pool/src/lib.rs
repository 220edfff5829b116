//! A connection pool that is fair, honest about errors, and pools multiplexed connections.
//!
//! Opening a connection costs round trips (TCP, TLS, a login); a pool keeps some open and
//! lends them out. What a pool promises matters most on a bad day: when the server is down,
//! when a task panics mid-request, when a thousand callers want ten connections.
//!
//! # Components
//! - [`Manager`]: the trait you implement — `create` a connection, `check` it (async, a PING),
//!   cheaply tell whether it `is_broken` (sync, on every return), `recycle` it between users,
//!   and name its `target` for errors.
//! - [`Pool`]: the **exclusive** pool. A checkout ([`Pool::get`]) gets a [`PoolGuard`]
//!   (`Deref`/`DerefMut` to the connection) and has the connection to itself until the guard
//!   drops.
//! - [`SharedPool`]: the **shared** pool, for multiplexed connections. Each connection takes up
//!   to `max_users` checkouts at once; a checkout ([`SharedPool::get`]) gets a [`SharedGuard`]
//!   (`Deref` to `&Connection`) on the least-loaded connection, and the pool opens another
//!   (up to `max_size`) when all are full.
//! - [`PoolConfig`]: `max_size`, `min_idle`, connect and checkout timeouts, idle timeout, max
//!   lifetime with jitter, [`CheckPolicy`], lazy or eager [`Start`], and the connect
//!   [backoff](beamline_backoff::BackoffConfig).
//! - Errors: [`CheckoutError`] (`Connect`, `CreatePanicked`, `Timeout`, `Closed`),
//!   [`ConnectError`] (pool, target, the manager's own error), [`StartError`], [`ConfigError`].
//! - [`PoolMetrics`]: size, idle, in use, waiters, checkouts, a [`WaitHistogram`], timeouts,
//!   connections created and closed by [`CloseReason`].
//!
//! # Guarantees
//! - **FIFO.** A checkout that waits is served in arrival order, whether the connection that
//!   serves it was given back or newly opened. Nobody barges past the queue.
//! - **Honest errors.** When the connect attempt made for the longest waiter fails, that waiter
//!   gets the attempt's own error ([`CheckoutError::Connect`], naming the pool and the target),
//!   not a timeout. A checkout that does time out says whether connecting was failing.
//! - **Backoff.** Failed connect attempts are retried after the jittered delays of a
//!   [`beamline_backoff::Backoff`], never in a tight loop.
//! - **Nothing lost.** A checkout that times out or is dropped leaves the queue; a connection
//!   handed to it at that instant goes to the next waiter.
//! - **No suspect connection is reused.** A connection whose user panicked, that was marked
//!   broken, that the manager calls broken, that failed its check or recycle, or that outlived
//!   its max lifetime is closed (the shared pool drains it: no new users, closed after the
//!   last), and a replacement is opened when someone needs one.
//! - **Bounded.** At most `max_size` connections exist at once, counting attempts under way
//!   and closed ones not yet dropped; `min_idle` idle ones kept open; idle ones beyond that
//!   closed after the idle timeout.
//! - **`close()`** fails waiters with `Closed`, closes idle connections at once and the others
//!   when they come back.
//! - **User panics do not break the pool's tasks.** A panic in [`Manager::create`] is caught:
//!   the longest waiter gets [`CheckoutError::CreatePanicked`] (naming the pool), the attempt's
//!   place counts no more, and the next attempt waits out the backoff. A connect attempt task
//!   that ends any other way gives its place back too. A panic in a connection's `Drop` during
//!   maintenance is logged and maintenance goes on (reaping, lifetime expiry, `min_idle`); the
//!   connections it was closing count no more either way. A panic in `check`, `recycle` or
//!   `is_broken` closes the connection it was about (its state is unknown) before the panic
//!   goes on to the caller, and so does a checkout dropped while its connection is being
//!   recycled or checked: no place in the pool is ever lost to a panic or a cancellation.
//!
//! # Cost
//! While no checkout is queued, neither a checkout nor a return takes the pool lock, reads a
//! clock or allocates. An exclusive checkout takes an idle connection from its thread's
//! shard under one uncontended lock, and a return puts it back there, so threads do not take
//! turns on one lock. A shared checkout scans one cache line of user counts and claims a user
//! on the least-loaded connection with a compare-and-swap; a shared return is one atomic
//! decrement. Queued checkouts go through the pool lock, whose critical sections are a
//! handful of comparisons and never run user code. One atomic word (the queue length and a
//! closed bit) tells the lock-free paths when to defer to the pool lock, so none of this
//! costs FIFO. Time-based expiry reads a coarse clock (see [`PoolConfig`]). A checkout spends
//! one unit of tokio's cooperative budget, as a channel's `recv` does, so a task whose
//! checkouts are always served at once still yields to its worker's other tasks.
//! `benches/pool.rs` measures all of it beside deadpool and bb8.
//!
//! # Example
//! A pool of line-protocol connections to a local server.
//!
//! ```
//! use std::io;
//! use std::time::Duration;
//! use beamline_pool::{CheckoutError, Manager, Pool, PoolConfig};
//! use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
//! use tokio::net::{TcpListener, TcpStream};
//!
//! struct Lines(std::net::SocketAddr);
//!
//! impl Manager for Lines {
//!     type Connection = BufReader<TcpStream>;
//!     type Error = io::Error;
//!
//!     async fn create(&self) -> io::Result<Self::Connection> {
//!         Ok(BufReader::new(TcpStream::connect(self.0).await?))
//!     }
//!
//!     fn target(&self) -> String {
//!         self.0.to_string()
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // An echo server on a free loopback port.
//! let listener = TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(async move {
//!     while let Ok((mut socket, _)) = listener.accept().await {
//!         tokio::spawn(async move {
//!             let (rx, mut tx) = socket.split();
//!             let _ = tokio::io::copy(&mut BufReader::new(rx), &mut tx).await;
//!         });
//!     }
//! });
//!
//! let config = PoolConfig::new(4)
//!     .name("echo")
//!     .checkout_timeout(Some(Duration::from_secs(1)));
//! let pool = Pool::start(Lines(addr), config).await?;
//!
//! let mut conn = pool.get().await?;
//! conn.get_mut().write_all(b"ping\n").await?;
//! let mut line = String::new();
//! // A line read has a limit, as every read of what a peer sends should.
//! (&mut *conn).take(1024).read_line(&mut line).await?;
//! assert_eq!(line, "ping\n");
//! drop(conn); // back in the pool, for the next checkout
//! assert_eq!(pool.metrics().idle, 1);
//!
//! pool.close();
//! assert!(matches!(pool.get().await, Err(CheckoutError::Closed { .. })));
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
// Every public type decides whether it may grow: #[non_exhaustive], or an allow that says why
// it is closed.
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod clock;
mod config;
mod core;
mod error;
mod exclusive;
mod manager;
mod metrics;
mod shared;
mod waiters;

/// The trait [`CheckoutError`] answers "was it sent" with (always no), from the
/// dependency-free `beamline-failure`.
#[doc(inline)]
pub use beamline_failure::WasSent;
pub use config::{CheckPolicy, ConfigError, DEFAULT_BACKOFF, PoolConfig, Start};
pub use error::{CheckoutError, ConnectCause, ConnectError, StartError};
pub use exclusive::{Pool, PoolGuard};
pub use manager::Manager;
pub use metrics::{CloseReason, ClosedCounts, PoolMetrics, WaitHistogram};
pub use shared::{SharedGuard, SharedPool};
