//! A supervised acceptor pool over TCP, TLS and Unix sockets: every connection is its own
//! process under a [`DynamicSupervisor`](beamline_process::DynamicSupervisor), as in Thousand
//! Island and Ranch on the BEAM.
//!
//! ```text
//! listeners (TCP | TLS | Unix) ─► acceptors ─► DynamicSupervisor ─► one process per connection ─► Handler
//! ```
//!
//! Acceptors only accept and hand off. Everything that can be slow — the TLS handshake, your
//! handler — runs in the connection's own process, under its own timeouts, so one slow or
//! crashing peer touches nothing but its own connection. After the hand-off the data path is
//! your handler's direct use of its socket: supervision costs something when a connection
//! starts and ends, nothing per byte.
//!
//! # Components
//!
//! - [`Server`]: the builder. Addresses ([`bind`](Server::bind),
//!   [`bind_tls`](Server::bind_tls) with a `rustls::ServerConfig`,
//!   [`bind_unix`](Server::bind_unix)), the acceptor count, socket options (backlog,
//!   `TCP_NODELAY`, keepalive, `SO_REUSEPORT` with one listener per acceptor), the limits
//!   ([`max_connections`](Server::max_connections) with an [`Overload`] policy, a per-IP cap
//!   keyed per IPv4 address and IPv6 /64), the timeouts (TLS handshake, read idle, send,
//!   lifetime) and the read buffer limit of the callback form; per listener, the
//!   [PROXY protocol](Server::proxy_protocol) from [trusted sources](Server::proxy_protocol_from).
//! - Two ways to handle a connection, equally short to write:
//!   - [`Handler`]: callbacks in the spirit of Thousand Island — `on_connect`, `on_data`,
//!     `on_message`, `on_timeout`, `on_shutdown` (say goodbye during a drain), `on_close`,
//!     `on_error` (a [`ConnError`]: a reset, a send timeout, a frame over the read buffer
//!     limit) — each returning [`Flow::Continue`], [`Flow::Close`] or `Err(reason)`, and
//!     acting on a [`HandlerContext`]. [`Server::serve_handler`] clones your handler per connection.
//!   - An async function that owns a [`Connection`] (`AsyncRead + AsyncWrite`: read and write
//!     it directly, wrap it in a `tokio_util::codec::Framed`, or
//!     [`into_split`](Connection::into_split) it), with a [`ShutdownSignal`] for the drain
//!     and [`Activity`] marks that say "the peer waits on me" (the read timeout pauses).
//!     [`Server::serve_fn`] runs it per connection.
//! - [`ConnInfo`]: the connection's id (its process id), peer and local [`Endpoint`],
//!   [`Transport`], for TLS the SNI name and the ALPN protocol, and behind a balancer the
//!   balancer's address ([`via`](ConnInfo::via)) and its [`ProxyHeader`] (v2 TLVs).
//! - [`ServerHandle`], what `start` returns: [`local_addrs`](ServerHandle::local_addrs),
//!   [`stats`](ServerHandle::stats) ([`ServerStats`]),
//!   [`suspend`](ServerHandle::suspend) / [`resume`](ServerHandle::resume), and the two-phase
//!   [`shutdown`](ServerHandle::shutdown) returning a [`DrainReport`] `{ drained, aborted }`
//!   (after which the stats are final).
//! - In a fleet: [`ListenFds`] (sockets passed by systemd, or by a predecessor) served with
//!   [`Server::listen_fds`]; [`Notifier`] (`sd_notify`); [`upgrade`] (hand the listening
//!   sockets to a successor process: [`UpgradeListener`], [`ServerHandle::hand_over`],
//!   [`Predecessor`]). See [Deploying](#deploying).
//!
//! # Events
//!
//! Every step of a server's and a connection's life is one `tracing` event, with stable
//! messages and field names. Only a `tracing` subscriber (`tracing_subscriber::fmt().init()`,
//! ...) prints them: without one, a handler's error or panic closes its connection and is
//! printed nowhere. What stays visible without a subscriber: the counters of
//! [`ServerHandle::stats`] (`errored`, `panicked`, `killed`, `handshake_failures`...) and
//! [`Server::on_connection_error`], a hook called with the connection and the reason of each
//! failed connection.
//!
//! | message | level | fields |
//! |---|---|---|
//! | `server started` | info | `addrs`, `acceptors`, `max_connections`, `overload` |
//! | `server suspended: listeners closed` / `server resumed: listening again` | info | `addrs` |
//! | `closed the connections waiting in the backlog` (once per suspend or shutdown) | info | `addrs`, `during`, `rejected` |
//! | `drain started` | info | `drain_timeout`, `active` |
//! | `server stopped` (the drain report) | info | `drained`, `aborted`, `elapsed` |
//! | `server dropped: connections killed` | info | `addrs`, `killed` |
//! | `listeners handed over to a successor: not accepting` (an upgrade) | info | `addrs`, `sockets` |
//! | `connection started` | debug | `conn_id`, `peer`, `transport` |
//! | `proxy header received` (PROXY listeners) | debug | `conn_id`, `peer` (the client), `via` (the balancer), `version` |
//! | `connection rejected` | debug | `peer`, `reason` |
//! | `connection closed` (exactly once per started connection) | see below | `conn_id`, `peer`, `via` (when a PROXY header named the peer), `reason`, `error` |
//! | `accept failed; backing off until it succeeds` / `accepting again after accept errors` | warn / info | `acceptor`, `error` / `errors` |
//!
//! A connection's `reason`: `normal` (the peer or the handler closed), `drain`, `read_timeout`,
//! `lifetime`, `send_timeout`, `read_buffer_full`, `peer_error` (a reset), `handshake_failed`,
//! `handshake_timeout`, `proxy_header_failed` (with `error`, the [`ProxyError`]),
//! `proxy_header_timeout`, `per_ip` (over the cap by the address a PROXY header carried) —
//! at `debug`; `error` (the handler's `Err`, with `error`), `killed`,
//! `drain_deadline` (killed at a drain's deadline) — at `warn`; `panic` (with `error`, the
//! panic message) — at `error`; `server_dropped` — at `debug`. A rejection's `reason`:
//! `max_connections`, `per_ip`, `stopping`. `conn_id` is the connection's process id, as in
//! beamline-process's events (`pid`).
//!
//! # Guarantees
//!
//! - **At most `max_connections` live connections**, one number for the whole server (every
//!   address, every acceptor). Beyond it, [`Overload::Pause`] stops accepting until a
//!   connection ends (the excess waits in the kernel backlog: backpressure, not failure);
//!   [`Overload::Reject`] accepts and closes at once, counted in `rejected`. The per-IP cap
//!   counts an IPv4-mapped address as its IPv4 address and an IPv6 client per /64
//!   ([`ip_prefix_v6`](Server::ip_prefix_v6)).
//! - **A failure stays in its connection.** A handler's panic (in a callback or in its
//!   `Clone`) or error closes only its own connection; it is counted (`panicked`,
//!   `errored`) and logged with the connection id, and the connection's process exits with
//!   the reason. No other connection and no acceptor notices.
//! - **Running out of file descriptors never kills or spins an acceptor.** `EMFILE`,
//!   `ENFILE`, `ENOBUFS` and `ENOMEM` make that acceptor wait 100 ms before trying again
//!   (logged once per episode, per acceptor); errors of one incoming connection
//!   (`ECONNABORTED`, `EPROTO`, ...) are retried at once; any other error also backs off.
//!   Once descriptors are free, it serves new clients again.
//! - **A slow, silent or hostile peer holds nothing for long.** What ends a connection:
//!   - the TLS handshake timeout (default 5 s): a handshake that does not finish;
//!   - the read timeout (default 60 s): nothing received for that long (only bytes from the
//!     peer reset it; it does not run during a callback, nor while a [`Busy`] mark lives);
//!   - the send timeout (default 30 s): a write the peer takes no byte of for that long (it
//!     stopped reading; a slow reader that keeps taking bytes is never cut off);
//!   - the read buffer limit (default 1 MiB, callback form): a frame that never ends;
//!   - the lifetime (optional): any connection, however busy — in the callback form also a
//!     callback still running when it passes (killed);
//!   - the peer closing or resetting, the handler closing or failing, a drain (and its
//!     deadline), dropping the handle.
//!
//!   [`Handler`] states exactly how these race a running callback.
//! - **A graceful shutdown has a deadline.** [`shutdown`](ServerHandle::shutdown) closes the
//!   listeners, asks every connection to finish (`on_shutdown`, or the [`ShutdownSignal`]; a
//!   function that never took the signal is closed at once, so idle connections never hold
//!   a drain up), returns as soon as all have ended or at the deadline — then kills the rest
//!   — and reports `{ drained, aborted }`. It is cancel-safe: a cancelled shutdown leaves the
//!   server draining, and the next `shutdown` (or a drop) finishes the job.
//!   [`suspend`](ServerHandle::suspend) / [`resume`](ServerHandle::resume) close and reopen
//!   the listeners (same ports) without touching live connections.
//! - **The backlog is counted, never silently reset.** When a listener closes (suspend,
//!   shutdown, drop), the connections the kernel completed and nobody accepted are accepted,
//!   closed and counted in `rejected`, with one log line per episode.
//! - **Nothing leaks.** Dropping the [`ServerHandle`] stops the acceptors, closes the
//!   listeners and kills every connection — also one blocked in a callback or in a write —
//!   so no task and no descriptor outlives it.
//! - **Behind a balancer, the client is the peer.** On a PROXY listener the header is read
//!   in the connection's own process under the handshake timeout, by peeking: nothing after
//!   it is consumed, at most [`MAX_HEADER_LEN`](proxy::MAX_HEADER_LEN) bytes are looked at,
//!   and a missing, malformed, late or untrusted header closes only its connection (counted
//!   in `proxy_failures` and `handshake_failures`). The carried address is what `peer()`,
//!   the per-IP cap and the events see.
//! - **An upgrade refuses no connection.** The listening sockets go to the successor, which
//!   accepts on them before this server stops; the sockets never close, their backlogs are
//!   left to the successor (not counted here), and a failed upgrade leaves this server
//!   serving.
//! - **Every connection is counted once.** `accepted = rejected + active + closed + errored +
//!   panicked + killed + handshake_failures` whenever the server is idle.
//!
//! The crate targets Unix (Linux first): Unix domain sockets and the accept errors above are
//! Unix notions. TLS uses rustls through tokio-rustls; build configs with
//! `rustls::ServerConfig::builder_with_provider`.
//!
//! # Deploying
//!
//! **Behind a balancer.** HAProxy (`server kv 10.0.0.5:6380 send-proxy-v2`), an AWS NLB with
//! proxy protocol v2, or nginx's stream `proxy_protocol on` connect to the server
//! themselves; with [`ProxyProtocol::Required`] on the listener they face, the client's
//! address comes from their header. Name the balancers: a header from anyone else is
//! refused.
//!
//! ```no_run
//! use beamline_server::{Connection, ExitReason, ProxyProtocol, Server};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::new()
//!     .bind("0.0.0.0:6380".parse()?)
//!     .proxy_protocol(ProxyProtocol::Required)
//!     .proxy_protocol_from(["10.0.0.0/8".parse()?])
//!     .max_connections_per_ip(100) // per client, not per balancer
//!     .serve_fn(|conn: Connection| async move {
//!         let info = conn.info();
//!         tracing::info!(client = %info.peer(), balancer = ?info.via(), "hello");
//!         Ok::<(), ExitReason>(())
//!     })?;
//! # Ok(()) }
//! ```
//!
//! **Under systemd.** With a `.socket` unit, systemd binds the port (a privileged one too)
//! and starts the service on the first connection, passing the listening socket;
//! [`ListenFds::from_env`] takes it. With `Type=notify`, [`Notifier`] says when the service
//! is ready and when it stops.
//!
//! ```no_run
//! use std::time::Duration;
//! use beamline_server::{ActivationError, ListenFds, Notifier, Server};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = match ListenFds::from_env() {
//!     Ok(fds) => Server::new().listen_fds(fds),
//!     // Started by hand: bind as usual.
//!     Err(ActivationError::NotActivated) => Server::new().bind("127.0.0.1:7000".parse()?),
//!     Err(e) => return Err(e.into()),
//! };
//! let server = server.serve_fn(|conn| async move { drop(conn); Ok(()) })?;
//! let notifier = Notifier::from_env()?;
//! if let Some(n) = &notifier { n.ready()?; }
//! // ... until SIGTERM ...
//! if let Some(n) = &notifier { n.stopping()?; }
//! server.shutdown(Duration::from_secs(10)).await?;
//! # Ok(()) }
//! ```
//!
//! **Upgrading.** The running process waits for its successor on an [`UpgradeListener`];
//! the new binary, started with the same `bind` calls, takes the listening sockets from it
//! ([`Predecessor::connect`]), starts accepting, and says so
//! ([`Predecessor::ready`]); only then does the old one stop accepting and drain. The kernel
//! backlog never closes, so no client is refused (under systemd, the successor sends
//! `MAINPID` with [`Notifier::ready_as_main`]). The `kv` example does both sides:
//! `--upgrade-socket PATH` and `--upgrade-from PATH`.
//!
//! ```no_run
//! use std::path::Path;
//! use std::time::Duration;
//! use beamline_server::{Predecessor, Server, ServerHandle, UpgradeListener};
//!
//! fn builder() -> Server {
//!     Server::new().bind("0.0.0.0:6380".parse().expect("an address"))
//! }
//!
//! # async fn serve(server: Server) -> Result<ServerHandle, Box<dyn std::error::Error>> {
//! #     Ok(server.serve_fn(|conn| async move { drop(conn); Ok(()) })?)
//! # }
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let path = Path::new("/run/myserver.upgrade");
//! let timeout = Duration::from_secs(10);
//! // The new process: take the sockets if a predecessor runs, else bind.
//! let (server, predecessor) = match Predecessor::connect(path, timeout).await {
//!     Ok((fds, predecessor)) => (serve(builder().listen_fds(fds)).await?, Some(predecessor)),
//!     Err(_) => (serve(builder()).await?, None),
//! };
//! if let Some(predecessor) = predecessor {
//!     predecessor.ready(timeout).await?; // it has stopped accepting now
//! }
//! // Later, this process's own successor comes:
//! let successor = UpgradeListener::bind(path)?.accept().await?;
//! server.hand_over(successor, timeout).await?;
//! server.shutdown(Duration::from_secs(30)).await?; // drain, then exit
//! # Ok(()) }
//! ```
//!
//! # Example
//!
//! An echo server with the callback form, a client, and a graceful shutdown.
//!
//! ```
//! use std::time::Duration;
//! use beamline_server::{HandlerContext, ExitReason, Flow, Handler, Server};
//! use bytes::BytesMut;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! #[derive(Clone)]
//! struct Echo;
//!
//! impl Handler for Echo {
//!     async fn on_data(&mut self, data: &mut BytesMut, conn: &mut HandlerContext<'_>) -> Result<Flow, ExitReason> {
//!         conn.send(data).await?;
//!         data.clear();
//!         Ok(Flow::Continue)
//!     }
//!
//!     async fn on_shutdown(&mut self, conn: &mut HandlerContext<'_>) -> Result<Flow, ExitReason> {
//!         let _ = conn.send(b"bye\n").await;
//!         Ok(Flow::Close)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::new().bind("127.0.0.1:0".parse()?).serve_handler(Echo)?;
//! let addr = server.local_addr().expect("a TCP address");
//!
//! let mut client = tokio::net::TcpStream::connect(addr).await?;
//! client.write_all(b"ping").await?;
//! let mut reply = [0u8; 4];
//! client.read_exact(&mut reply).await?;
//! assert_eq!(&reply, b"ping");
//!
//! // Stop accepting, ask the connection to finish (it says "bye"), wait at most 5 s.
//! let report = server.shutdown(Duration::from_secs(5)).await?;
//! assert_eq!((report.drained, report.aborted), (1, 0));
//! let mut rest = Vec::new();
//! client.read_to_end(&mut rest).await?;
//! assert_eq!(rest, b"bye\n");
//! assert_eq!(server.stats().closed, 1);
//! # Ok(()) }
//! ```

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
// Every public type decides whether it may grow: #[non_exhaustive], or an allow that says why
// it is closed.
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]

mod acceptor;
mod activation;
mod conn;
mod error;
mod handle;
mod limits;
mod listen;
mod notify;
pub mod proxy;
mod server;
mod stats;
pub mod upgrade;

pub use activation::{ActivationError, ListenFds};
pub use beamline_process::{ExitReason, Info, ProcessId};
#[allow(deprecated)]
pub use conn::Conn;
pub use conn::{
    Activity, Busy, ConnError, ConnInfo, Connection, Endpoint, Flow, Handler, HandlerContext,
    ShutdownSignal, Stream, TimeoutKind, Transport,
};
pub use error::{ResumeError, ShutdownError, StartError, SuspendError};
pub use handle::{DrainReport, ServerHandle, ServerState};
pub use limits::Overload;
pub use listen::ListenAddr;
pub use notify::{Notifier, NotifyError};
pub use proxy::{Cidr, CidrError, ProxyError, ProxyHeader, ProxyProtocol, ProxyVersion};
pub use server::{
    DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_READ_BUFFER,
    DEFAULT_READ_TIMEOUT, DEFAULT_SEND_TIMEOUT, Server,
};
pub use stats::{ServerStats, StatsReader};
pub use upgrade::{Predecessor, Successor, UpgradeError, UpgradeListener};
