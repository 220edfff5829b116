//! Many requests over one connection, each answer to its own caller.
//!
//! Multiplexing means identifying requests: by **id** when the protocol carries one
//! (HTTP/2 streams, Cassandra stream ids, beamline's own wire format) or by **order** when
//! it does not (Redis, memcached, HTTP/1.1 pipelining). This crate does both, with the
//! traps its peers fell into designed out: no linear scan to find a reply's caller, no id
//! reused while a late answer to it can still arrive, no "ready" past the in-flight bound,
//! no decoder that allocates whatever length a header claims.
//!
//! # Components
//!
//! - [`Mux`] — the **sans-IO core**: the table of in-flight requests (O(1) by id, or a
//!   FIFO queue), id allocation with wraparound that skips ids in flight or quarantined,
//!   the in-flight and abandoned bounds, deadlines and quarantine ages as timers fed with
//!   `now`, and, when the connection dies, which requests had any byte written. No
//!   sockets, no clock, no runtime: it takes byte offsets and `Instant`s.
//! - [`FrameCodec`] and [`Frame`] — **the wire format** for users who own both ends:
//!   length-prefixed frames with an id, a [`FrameKind`] (request, response, error, cancel,
//!   ping, pong) and a payload; a tokio-util `Encoder`/`Decoder` with zero-copy decode and
//!   a maximum frame length checked before anything is allocated.
//! - [`Tagged`] — the seam for **your own protocol**: implement it on your request and
//!   response types and your codec is multiplexed by id like the wire format. When the id
//!   is a header beside the message, wrap your messages in an [`Envelope`] instead: no id
//!   field, no dummy id.
//! - [`Client`] and [`Driver`] (feature `driver`) — the **tokio client**: a cheap, cloneable
//!   handle and the task that runs the connection over any `AsyncRead + AsyncWrite` (TCP,
//!   TLS, Unix sockets). Writes are coalesced (one write and one flush per batch, vectored
//!   when large payloads are queued by reference). Three constructors: [`Client::wire`],
//!   [`Client::tagged`], [`Client::fifo`].
//! - [`serve_wire`] and [`serve_tagged`] (feature `driver`) — the **server side**: runs a
//!   handler per request, concurrently up to a bound, and writes answers out of order as
//!   they complete, honouring cancels.
//!
//! # Guarantees
//!
//! - **Every answer reaches the caller whose request it answers, or no one.** An answer to
//!   a request whose caller gave up is read, dropped and counted ([`MuxStats`]); in FIFO
//!   mode it still consumes its place, so later answers never shift onto the wrong caller.
//! - **A dropped or timed-out caller frees its slot at once**; its id stays quarantined
//!   until the late answer arrives or an age limit passes, and a cancel frame is sent
//!   where the protocol has one.
//! - **One ordered admission gate**: requests are written in the order their calls were
//!   first polled, at most `max_in_flight` at a time. A call that finds no room waits in
//!   line and goes in as soon as room appears, whatever made it (an answer, a cancel, a
//!   timeout, a quarantine ageing out); a waiting call that is dropped leaves the line
//!   unsent; `try_` calls never wait: they fail at once instead.
//! - **FIFO mode never wedges for ever behind a lost reply**: an abandoned request whose
//!   reply has not come within the abandon timeout (twice the request timeout, or 30 s)
//!   fails its connection, every request on it ending `NotSent` or `ConnectionLost`, so a
//!   reconnecting layer or a pool replaces it ([`ConnectionError::Wedged`],
//!   [`MuxStats::abandon_expired`]).
//! - **Failures say whether the request was written** ([`WasSent`] on [`MuxError`]): `NotSent`
//!   is safe to retry, `ConnectionLost` may have been delivered. Nothing is retried here.
//! - **A frame over the size limit is a protocol error, not an allocation.**
//!
//! # Feature flags
//!
//! - `driver` *(default)*: the tokio [`Client`], [`Driver`] and server functions. Without
//!   it (`default-features = false`) the crate is the pure core: [`Mux`], the codec and
//!   [`Tagged`], depending on `bytes` and `tokio-util`'s codec traits only.
//!
//! # Example
//!
//! A server and a client over an in-memory pipe; swap in a `TcpStream` or a TLS stream and
//! nothing else changes.
//!
//! ```
//! # #[cfg(feature = "driver")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use beamline_mux::{Client, ClientConfig, ServerConfig, serve_wire};
//! use bytes::Bytes;
//! use std::time::Duration;
//!
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! rt.block_on(async {
//!     let (client_io, server_io) = tokio::io::duplex(64 * 1024);
//!     tokio::spawn(serve_wire(server_io, &ServerConfig::new(), |req: Bytes| async move {
//!         let mut answer = b"hello, ".to_vec();
//!         answer.extend_from_slice(&req);
//!         Ok::<_, Bytes>(Bytes::from(answer))
//!     }));
//!
//!     let config = ClientConfig::new().peer("example").timeout(Duration::from_secs(5));
//!     let (client, driver) = Client::wire(client_io, &config)?;
//!     tokio::spawn(driver);
//!
//!     // Many callers, one connection: each gets its own answer.
//!     let calls = ["ada", "grace", "barbara"].map(|name| {
//!         let client = client.clone();
//!         tokio::spawn(async move { client.call(Bytes::from(name)).await })
//!     });
//!     for (call, name) in calls.into_iter().zip(["ada", "grace", "barbara"]) {
//!         let answer = call.await??;
//!         assert_eq!(answer, format!("hello, {name}"));
//!     }
//!     assert_eq!(client.in_flight(), 0);
//!     Ok(())
//! })
//! # }
//! # #[cfg(not(feature = "driver"))]
//! # fn main() {}
//! ```

#![forbid(unsafe_code)]
// Every public type decides whether it may grow: #[non_exhaustive], or an allow that says why
// it is closed.
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
// The guide links to the driver's items, which a core-only build does not have.
#![cfg_attr(not(feature = "driver"), allow(rustdoc::broken_intra_doc_links))]

pub mod frame;
mod mux;
mod tagged;

#[cfg(feature = "driver")]
mod client;
#[cfg(feature = "driver")]
mod io;
#[cfg(feature = "driver")]
mod server;

/// The trait [`MuxError`] answers "was it sent" with, from the dependency-free `beamline-failure`.
#[doc(inline)]
pub use beamline_failure::WasSent;
pub use frame::{DEFAULT_MAX_FRAME_LEN, Frame, FrameCodec, FrameError, FrameKind, HEADER_LEN};
pub use mux::{
    AdmitError, Cancelled, ConfigError, DEFAULT_ABANDON_TIMEOUT, DEFAULT_MAX_ABANDONED,
    DEFAULT_MAX_IN_FLIGHT, DEFAULT_QUARANTINE, Expired, Fired, Lost, Mode, Mux, MuxConfig,
    MuxStats, Recipient, Ticket, Transmit,
};
pub use tagged::{Envelope, Tagged};

#[cfg(feature = "driver")]
pub use client::{Client, ClientConfig, ConnectionError, Driver, MuxError, ProtocolViolation};
#[cfg(feature = "driver")]
pub use server::{
    DEFAULT_MAX_CONCURRENT, IntoReply, ServeError, ServerConfig, serve_tagged, serve_wire,
};
