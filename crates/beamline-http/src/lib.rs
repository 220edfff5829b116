//! hyper and axum served by [beamline-server](beamline_server): HTTP/1.1 and HTTP/2, every
//! connection a supervised process under the server's limits, drained with a deadline.
//!
//! `axum::serve` runs each connection as a bare tokio task: no connection limit, no per-IP
//! cap, no TLS handshake timeout, no header timeout, a fixed one-second sleep on accept
//! errors, and a graceful shutdown that waits for ever. Serving the same `Router` here is one
//! line, and every guarantee of beamline-server applies to it:
//!
//! ```text
//! listeners ─► acceptors ─► DynamicSupervisor ─► one process per connection:
//!     hyper's auto connection (HTTP/1.1 | HTTP/2) + its HTTP/2 streams + the HTTP timers
//!     ─► your tower::Service (an axum Router as it is)
//! ```
//!
//! # Components
//!
//! - [`serve`] (default settings) and [`Http::serve`]: start a
//!   [`Server`](beamline_server::Server) — its addresses (TCP, TLS, Unix), limits and
//!   timeouts as you built it — serving any `tower::Service<Request<Incoming>>`. Plain TCP
//!   takes HTTP/1.1 and HTTP/2 with prior knowledge (h2c), told apart by the connection
//!   preface; over TLS, offer ALPN `h2` and `http/1.1` in the `rustls::ServerConfig`.
//! - [`Http`]: the HTTP limits, with safe defaults — header read timeout (10 s), keep-alive
//!   timeout (30 s), head size (32 KiB), HTTP/2 concurrent streams (100) and the rapid-reset
//!   bound (20 streams reset before being accepted).
//! - [`HttpHandle`]: the running server — the [`ServerHandle`](beamline_server::ServerHandle)
//!   underneath (its stats, suspend / resume) and the HTTP counters [`HttpStats`]; its
//!   [`shutdown`](HttpHandle::shutdown) is the two-phase drain.
//! - [`HttpConn`]: in every request's extensions — the connection's id, peer, TLS details,
//!   and its [`ShutdownSignal`](beamline_server::ShutdownSignal).
//!
//! # Guarantees
//!
//! - **Every server limit carries over**, because every HTTP connection is one of the
//!   server's connections: `max_connections` with Pause / Reject, the per-IP cap, the TLS
//!   handshake, read, send and lifetime timeouts, the EMFILE back-off, suspend / resume.
//! - **Everything of a connection runs inside its process**: hyper's connection, its HTTP/2
//!   streams (run by the connection's own driver, not spawned as tokio tasks), the timers,
//!   and the life of an upgraded stream. Killing the process (a drain's deadline, the
//!   lifetime, dropping the handle) ends all of it.
//! - **The read timeout counts only the peer's silence, not the server's.** A request waits
//!   on the server from the moment it is received whole (or, with a body, from the moment
//!   the service answers) until its response's last byte: meanwhile the server's read timeout
//!   does not run, so a slow handler, a long download or a server-sent event stream is never
//!   cut by it (the lifetime and the send timeout still apply). While a connection waits on
//!   its peer — between requests, for a request head, for a request body that stops coming —
//!   the read timeout runs as usual.
//! - **A slow or silent peer holds nothing for long.** A request head must arrive within the
//!   header read timeout (counted from the connection's start for its first request, and
//!   from the first byte for a later HTTP/1 request): a slowloris is closed, counted in
//!   [`HttpStats::header_timeouts`], other clients untouched. A connection with no request
//!   in flight and nothing received for the keep-alive timeout is closed gracefully
//!   (HTTP/2: `GOAWAY`). A head over [`max_header_size`](Http::max_header_size) is a `431`.
//!   HTTP/2 streams per connection are bounded, and a peer resetting more than
//!   [`max_pending_accept_reset_streams`](Http::max_pending_accept_reset_streams) streams
//!   before they are accepted (the rapid-reset attack) gets `GOAWAY` (`ENHANCE_YOUR_CALM`).
//! - **A panic stays in its request.** A panic in the service (its `poll_ready`, `call` or
//!   future) answers that request `500 Internal Server Error` — with `connection: close` on
//!   HTTP/1, since what panicked may have left the connection's state half-done — and is
//!   counted in [`HttpStats::panics`] and logged with the connection id. A panic in a
//!   response body cuts that response (HTTP/1: the connection closes; HTTP/2: the stream is
//!   reset). No other request, connection or task is touched.
//! - **Upgrades keep working, under the limits.** After `101 Switching Protocols`
//!   (`hyper::upgrade::on`, axum's `WebSocketUpgrade`), the connection's process lives as
//!   long as the upgraded stream, wherever the stream is held (also in a task the handler
//!   spawned): it stays counted against `max_connections` and the per-IP cap, the read,
//!   send and lifetime timeouts apply to it, and when the process ends (a timeout, a
//!   drain's deadline, a dropped handle) the stream's next read or write fails and its
//!   socket closes.
//! - **The drain has a deadline.** [`HttpHandle::shutdown`] closes the listeners (new
//!   connections are refused), asks every connection to finish — HTTP/1 answers its request
//!   in flight with `connection: close` and closes, an idle one closes at once; HTTP/2 sends
//!   `GOAWAY` and finishes its open streams; an upgraded stream sees its
//!   [`HttpConn::shutdown_signal`] — and kills whatever is still open at the deadline. The
//!   [`DrainReport`](beamline_server::DrainReport) counts both.
//! - **What the peer did is not the server's failure.** A reset, a malformed request (hyper
//!   answers `400` / `431`), an HTTP/2 protocol error end the connection normally (counted
//!   in [`HttpStats::protocol_errors`] when malformed); the service's own error, a response
//!   body's error and a write past the send timeout fail it (counted in the server's
//!   `errored`).
//!
//! # Events
//!
//! Besides the server's events (`connection started`, `connection closed` with its
//! `reason`, ...), at `conn_id`: `request handler panicked; answered 500` (error, with
//! `method`, `uri`, `error`), `response body panicked; response cut` (error), `no complete
//! request head within the header read timeout; closing` (debug, with `peer`), `keep-alive
//! timeout; closing gracefully` (debug), `HTTP protocol error; connection closed` (debug,
//! with `peer`, `error`).
//!
//! # Example
//!
//! An axum `Router` served with the server's limits, a request, and the drain.
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use beamline_server::{Overload, Server};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let app = Router::new().route("/", get(|| async { "hello" }));
//! let server = Server::new()
//!     .bind("127.0.0.1:0".parse()?)
//!     .max_connections(10_000)
//!     .overload(Overload::Pause)
//!     .max_connections_per_ip(100);
//! let http = beamline_http::serve(server, app)?;
//!
//! let mut client = tokio::net::TcpStream::connect(http.local_addr().unwrap()).await?;
//! client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await?;
//! let mut answer = String::new();
//! client.read_to_string(&mut answer).await?;
//! assert!(answer.starts_with("HTTP/1.1 200 OK") && answer.ends_with("hello"));
//!
//! let report = http.shutdown(Duration::from_secs(5)).await?;
//! assert_eq!(report.aborted, 0);
//! assert_eq!(http.stats().requests, 1);
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
// Every public type decides whether it may grow: #[non_exhaustive], or an allow that says why
// it is closed.
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod config;
mod conn;
mod ctx;
mod driver;
mod error;
mod exec;
mod io;
mod serve;
mod service;
mod stats;

pub use config::{
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_KEEP_ALIVE_TIMEOUT, DEFAULT_MAX_CONCURRENT_STREAMS,
    DEFAULT_MAX_HEADER_SIZE, DEFAULT_MAX_LOCAL_ERROR_RESET_STREAMS,
    DEFAULT_MAX_PENDING_ACCEPT_RESET_STREAMS, Http, MIN_MAX_HEADER_SIZE,
};
pub use conn::HttpConn;
pub use error::ServeError;
pub use serve::{HttpHandle, HttpService, serve};
pub use stats::HttpStats;
