//! A fault-injecting TCP proxy for tests, started in-process.
//!
//! The guarantees of a client or a server are only as good as the faults they were tested
//! against, and sleeping and hoping is not a test. `beamline-chaos` sits between a client and
//! a server on loopback and makes the link misbehave on command — late, slow, chopped up,
//! silent, closed, reset, refused or partitioned — in one direction or both, changed while
//! connections are live. It is what Toxiproxy does, as a library a Rust test starts in one
//! line, with nothing but tokio underneath.
//!
//! # Components
//! - [`Proxy`]: listens on a loopback port, forwards each connection to an upstream, and is
//!   steered through `&self`: [`Proxy::apply`] / [`Proxy::clear`] a [`Fault`] per
//!   [`Direction`], [`Proxy::partition`] / [`Proxy::heal`], [`Proxy::refuse_new`],
//!   [`Proxy::reset_all`], [`Proxy::set_upstream`]; [`Proxy::stats`] counts live
//!   connections and bytes per direction. [`ProxyBuilder`] sets the listen address, the
//!   jitter seed, and faults in force from the start.
//! - [`Fault`]: latency (+ seeded jitter), bandwidth, slicing, blackhole, reset after N
//!   bytes (or at once), close after N bytes. Each variant documents exactly what the client
//!   and the server observe.
//! - [`Schedule`]: "at t, apply F; at t + d, clear it" as data, run against a proxy and
//!   awaited beside the test's own traffic.
//! - The `beamline-chaos` binary: the same proxy from a shell, with faults as flags and
//!   commands on stdin (`beamline-chaos --help`). It needs the `cli` feature (clap):
//!   `cargo install beamline-chaos --features cli`; the library itself depends on tokio only.
//!
//! # Guarantees
//! - **Faults look like the real thing.** A reset is an RST (`SO_LINGER` 0), seen as
//!   [`std::io::ErrorKind::ConnectionReset`], never a FIN. A blackhole keeps the connection
//!   open and forwards nothing, so reads time out. Close-after-N delivers exactly N bytes,
//!   then a FIN. Refusing closes the listening socket, so connects fail with
//!   `ConnectionRefused`. A peer's own reset is passed on as a reset.
//! - **No byte is altered or reordered.** Latency, bandwidth and slicing only delay and split;
//!   a blackhole or partition holds bytes and delivers them when it heals, as TCP
//!   retransmission would. Only a reset or close drops what the proxy still held.
//! - **Changes apply to live connections.** A fault applied (or a partition, or a reset) takes
//!   effect for every byte moved after the call returns, on every connection.
//! - **Latency is a floor.** A byte is never delivered sooner than the latency in force when
//!   it was read; jitter only adds, from a generator seeded per connection and direction,
//!   so a run replays under the same seed ([`ProxyBuilder::seed`], [`Proxy::seed`]).
//! - **Nothing leaks.** Dropping the proxy, or awaiting [`Proxy::shutdown`], closes the
//!   listener and every connection and leaves no task behind.
//!
//! # Example
//! A client talks to an echo server through the proxy; 50 ms of downstream latency is added
//! while it runs, then the server's replies are reset.
//! ```
//! use std::time::{Duration, Instant};
//! use beamline_chaos::{Direction, Fault, Proxy};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use tokio::net::{TcpListener, TcpStream};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! // An echo server on a free loopback port.
//! let server = TcpListener::bind("127.0.0.1:0").await?;
//! let server_addr = server.local_addr()?;
//! let echo = tokio::spawn(async move {
//!     let (mut socket, _) = server.accept().await?;
//!     let mut buf = [0u8; 64];
//!     loop {
//!         let n = socket.read(&mut buf).await?;
//!         if n == 0 { return Ok::<_, std::io::Error>(()); }
//!         socket.write_all(&buf[..n]).await?;
//!     }
//! });
//!
//! let proxy = Proxy::start("127.0.0.1:0".parse().unwrap(), server_addr).await?;
//! let mut client = TcpStream::connect(proxy.local_addr()).await?;
//!
//! proxy.apply(Direction::Downstream, Fault::latency(Duration::from_millis(50)));
//! let sent = Instant::now();
//! client.write_all(b"ping").await?;
//! let mut reply = [0u8; 4];
//! client.read_exact(&mut reply).await?;
//! assert_eq!(&reply, b"ping");
//! assert!(sent.elapsed() >= Duration::from_millis(50));
//!
//! proxy.apply(Direction::Downstream, Fault::reset());
//! let err = client.read(&mut reply).await.unwrap_err();
//! assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
//!
//! proxy.shutdown().await;
//! let _ = echo.await;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
// Every public type decides whether it may grow: #[non_exhaustive], or an allow that says why
// it is closed.
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod action;
mod fault;
mod jitter;
mod proxy;
mod schedule;
mod shaper;

pub use action::Action;
pub use fault::{Direction, Fault, FaultKind, PartitionMode};
pub use proxy::{Proxy, ProxyBuilder, ProxyStats, ReopenError};
pub use schedule::{Schedule, ScheduleError, Step};
