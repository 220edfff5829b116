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
//!   the request may have been delivered ([`ClientError::was_sent`]): `NotSent` is safe to
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
//! All features are additive. Default: everything but `chaos`, `tower` and `http`.
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
//! - `metrics` *(off)* — [`metrics`]: a [`Publisher`](metrics::Publisher) that writes the
//!   server's, pools', muxes' and connections' numbers through the `metrics` facade to the
//!   exporter your application installs.
//!
//! # Examples
//!
//! **Processes**: a counter that owns its state and answers calls.
//!
//! ```
//! # #[cfg(feature = "process")]
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::time::Duration;
//! use beamline::process::{Event, Reply, spawn};
//!
//! enum Msg { Add(u64), Get(Reply<u64>) }
//!
//! let counter = spawn(|mut ctx| async move {
//!     let mut total = 0;
//!     loop {
//!         match ctx.recv().await {
//!             Event::Msg(Msg::Add(n)) => total += n,
//!             Event::Msg(Msg::Get(reply)) => { let _ = reply.send(total); }
//!             Event::Exit { .. } | Event::Down { .. } => {}
//!         }
//!     }
//! });
//! counter.cast(Msg::Add(2)).await.unwrap();
//! assert_eq!(counter.call(Msg::Get, Duration::from_secs(1)).await.unwrap(), 2);
//! # }
//! # #[cfg(not(feature = "process"))] fn main() {}
//! ```
//!
//! **A server**: every connection is its own supervised process; a graceful shutdown
//! drains them.
//!
//! ```
//! # #[cfg(feature = "server")]
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use beamline::server::{Conn, ExitReason, Flow, Handler, Server};
//! use bytes::BytesMut;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! #[derive(Clone)]
//! struct Echo;
//!
//! impl Handler for Echo {
//!     async fn on_data(&mut self, data: &mut BytesMut, conn: &mut Conn<'_>) -> Result<Flow, ExitReason> {
//!         conn.send(data).await?;
//!         data.clear();
//!         Ok(Flow::Continue)
//!     }
//! }
//!
//! let server = Server::new().bind("127.0.0.1:0".parse()?).start(Echo)?;
//! let mut client = tokio::net::TcpStream::connect(server.local_addr().expect("TCP")).await?;
//! client.write_all(b"ping").await?;
//! let mut reply = [0u8; 4];
//! client.read_exact(&mut reply).await?;
//! assert_eq!(&reply, b"ping");
//! server.shutdown(Duration::from_secs(5)).await?;
//! # Ok(()) }
//! # #[cfg(not(feature = "server"))] fn main() {}
//! ```
//!
//! **Backoff**, sans-IO, in any retry loop: capped and jittered.
//!
//! ```
//! # #[cfg(feature = "reconnect")] {
//! use std::time::{Duration, Instant};
//! use beamline::reconnect::BackoffConfig;
//!
//! let mut backoff = BackoffConfig::grpc().max_attempts(5).build().unwrap();
//! while let Ok(delay) = backoff.next_delay(Instant::now()) {
//!     assert!(delay <= Duration::from_secs(120));
//!     // sleep(delay), try again; after a success: backoff.reset()
//! }
//! # }
//! ```
//!
//! **Multiplexing**: many callers over one connection, each answer to its caller.
//!
//! ```
//! # #[cfg(feature = "mux")]
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use beamline::mux::{Client, ClientConfig, ServerConfig, serve_wire};
//! use bytes::Bytes;
//!
//! let (client_io, server_io) = tokio::io::duplex(64 * 1024);
//! tokio::spawn(serve_wire(server_io, &ServerConfig::new(), |req: Bytes| async move {
//!     Ok::<_, Bytes>(req)
//! }));
//! let (client, driver) = Client::wire(client_io, &ClientConfig::new()).unwrap();
//! tokio::spawn(driver);
//! let (a, b) = tokio::join!(client.call(Bytes::from("a")), client.call(Bytes::from("b")));
//! assert_eq!((a.unwrap(), b.unwrap()), (Bytes::from("a"), Bytes::from("b")));
//! # }
//! # #[cfg(not(feature = "mux"))] fn main() {}
//! ```
//!
//! **A Redis client**: FIFO order over one reconnecting connection, requests made while
//! Redis restarts waiting up to 2 s.
//!
//! ```no_run
//! # #[cfg(all(feature = "client", feature = "resp"))]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use beamline::Client;
//! use beamline::reconnect::OfflinePolicy;
//! use beamline::resp::{Command, Value};
//!
//! let redis = Client::builder("127.0.0.1:6379")
//!     .resp()
//!     .timeout(Duration::from_secs(1))
//!     .offline(OfflinePolicy::Queue { max: 1_000, deadline: Duration::from_secs(2) })
//!     .connect()
//!     .await?;
//! redis.call(Command::new("SET").arg("k").arg("v")).await?;
//! // Reads are idempotent: replayed once on the next connection if this one is lost.
//! let v = redis.call_idempotent(Command::new("GET").arg("k")).await?;
//! assert_eq!(v, Value::bulk("v"));
//! // A reply converts into what it should be; an `-ERR` reply is an `Err`, never data.
//! let n: i64 = redis.call(Command::new("INCRBY").arg("n").arg(5)).await?.try_into()?;
//! let missing: Option<String> = redis.call(Command::new("GET").arg("nope")).await?.try_into()?;
//! # let _ = (n, missing);
//! # Ok(())
//! # }
//! ```
//!
//! Forgetting `.resp()` is a compile error, not a request that hangs against a real Redis:
//! a client of beamline's own wire format takes `Bytes`, and a [`resp::Command`] is not
//! one, not even through the `.into()` a compiler hint would suggest.
//!
//! ```compile_fail,E0277
//! use beamline::Client;
//! use beamline::resp::Command;
//! use bytes::Bytes;
//!
//! async fn forgot_resp(client: Client<Bytes, Bytes>) {
//!     let _ = client.call(Command::new("GET").arg("k").into()).await;
//! }
//! ```
//!
//! **A pool** of multiplexed connections: up to 4, each taking 64 calls at once, the
//! least-loaded first; a call waits at most 1 s for one.
//!
//! ```no_run
//! # #[cfg(all(feature = "client", feature = "resp"))]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use beamline::{Client, Pooling};
//! use beamline::pool::PoolConfig;
//! use beamline::resp::Command;
//!
//! let redis = Client::builder("127.0.0.1:6379")
//!     .resp()
//!     .max_in_flight(64)
//!     .pool(Pooling::Shared(PoolConfig::new(4).checkout_timeout(Some(Duration::from_secs(1)))))
//!     .connect()
//!     .await?;
//! match redis.call(Command::new("PING")).await {
//!     Ok(pong) => println!("{pong:?}"),
//!     // Connecting is failing: here is why (refused, TLS...), not just "timed out".
//!     Err(e) => eprintln!("{e} ({:?})", e.transport_error()),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! **Your own protocol with request ids** (the `Tagged` path): a server of
//! [`Server::serve`](server::Server::serve) + [`serve_tagged`](mux::serve_tagged) and a
//! client of [`ClientBuilder::tagged`], over lines `<id> <text>`. The messages are
//! [`Envelope`](mux::Envelope)s, so nobody writes an id: the client's driver tags each
//! request, `serve_tagged` copies the tag onto the answer, and a handler's `Err` becomes the
//! protocol's own error answer. `examples/tagged.rs` is the whole program.
//!
//! ```
//! # #[cfg(all(feature = "client", feature = "server"))]
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use beamline::Client;
//! use beamline::mux::{Envelope, ServerConfig, serve_tagged};
//! use beamline::server::{ExitReason, Server};
//! # use bytes::{BufMut, BytesMut};
//! # use tokio_util::codec::{Decoder, Encoder, LinesCodec};
//! # /// `<id> <text>\n` both ways.
//! # #[derive(Clone, Default)]
//! # struct Lines(LinesCodec);
//! # impl Decoder for Lines {
//! #     type Item = Envelope<String>;
//! #     type Error = std::io::Error;
//! #     fn decode(&mut self, src: &mut BytesMut) -> std::io::Result<Option<Envelope<String>>> {
//! #         let Some(line) = self.0.decode(src).map_err(std::io::Error::other)? else { return Ok(None) };
//! #         let (id, text) = line.split_once(' ').unwrap_or((&line, ""));
//! #         let id = id.parse().map_err(std::io::Error::other)?;
//! #         Ok(Some(Envelope::with_tag(id, text.to_owned())))
//! #     }
//! # }
//! # impl Encoder<Envelope<String>> for Lines {
//! #     type Error = std::io::Error;
//! #     fn encode(&mut self, m: Envelope<String>, dst: &mut BytesMut) -> std::io::Result<()> {
//! #         dst.put_slice(format!("{} {}\n", m.tag(), m.body()).as_bytes());
//! #         Ok(())
//! #     }
//! # }
//!
//! /// What the server refuses, answered as an `ERR` line.
//! struct Refused;
//! impl From<Refused> for Envelope<String> {
//!     fn from(_: Refused) -> Self { Envelope::new("ERR".to_owned()) }
//! }
//!
//! async fn upper(request: Envelope<String>) -> Result<Envelope<String>, Refused> {
//!     let text = request.into_body();
//!     text.strip_prefix("UPPER ").map(|t| Envelope::new(t.to_uppercase())).ok_or(Refused)
//! }
//!
//! // Lines is your codec (Encoder<Envelope<String>> + Decoder<Item = Envelope<String>>).
//! let server = Server::new().bind("127.0.0.1:0".parse()?).serve(|conn| async move {
//!     serve_tagged(conn, Lines::default(), &ServerConfig::new(), upper).await?;
//!     Ok::<(), ExitReason>(())
//! })?;
//! let client = Client::builder(server.local_addr().expect("TCP"))
//!     .tagged(Lines::default())
//!     .connect()
//!     .await?;
//! let (a, b) = tokio::join!(
//!     client.call(Envelope::new("UPPER ada".to_owned())),
//!     client.call(Envelope::new("LOWER ada".to_owned())),
//! );
//! assert_eq!((a?.into_body(), b?.into_body()), ("ADA".to_owned(), "ERR".to_owned()));
//! # Ok(()) }
//! # #[cfg(not(all(feature = "client", feature = "server")))] fn main() {}
//! ```
//!
//! **Failures you can branch on**: was the request sent?
//!
//! ```no_run
//! # #[cfg(feature = "client")]
//! # async fn run(client: beamline::Client<bytes::Bytes, bytes::Bytes>) {
//! use beamline::ClientError;
//! use bytes::Bytes;
//!
//! match client.call(Bytes::from("debit 10")).await {
//!     Ok(answer) => println!("done: {answer:?}"),
//!     Err(e) if !e.was_sent() => println!("never reached the server, safe to retry: {e}"),
//!     Err(ClientError::ConnectionLost { .. }) => println!("may have been applied: check first"),
//!     Err(e) => println!("failed: {e}"),
//! }
//! # }
//! ```
//!
//! **TLS**: the same client over rustls (ring provider), the server name taken from the
//! target's host.
//!
//! ```no_run
//! # #[cfg(feature = "tls")]
//! # async fn run(roots: beamline::rustls::RootCertStore) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use beamline::Client;
//! use beamline::rustls::{ClientConfig, crypto::ring};
//!
//! let tls = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
//!     .with_safe_default_protocol_versions()?
//!     .with_root_certificates(roots)
//!     .with_no_client_auth();
//! let client = Client::builder("kv.internal:7000").tls(Arc::new(tls)).connect().await?;
//! # let _ = client;
//! # Ok(())
//! # }
//! ```
//!
//! **tower** (feature `tower`): middleware stacks on the client.
//!
//! ```no_run
//! # #[cfg(feature = "tower")]
//! # async fn run(client: beamline::Client<bytes::Bytes, bytes::Bytes>) -> Result<(), tower::BoxError> {
//! use std::time::Duration;
//! use bytes::Bytes;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! let mut service = ServiceBuilder::new()
//!     .timeout(Duration::from_millis(250)) // a dropped call frees its slot at once
//!     .service(client);
//! let answer = service.ready().await?.call(Bytes::from("ping")).await?;
//! # let _ = answer;
//! # Ok(())
//! # }
//! ```
//!
//! **RESP** on its own, for a server: decode what `redis-cli` sends, encode the answer.
//!
//! ```
//! # #[cfg(feature = "resp")] {
//! use beamline::resp::{RespCodec, Value};
//! use bytes::BytesMut;
//! use tokio_util::codec::{Decoder, Encoder};
//!
//! let mut codec = RespCodec::new().inline_commands(true);
//! let mut input = BytesMut::from(&b"PING\r\n"[..]);
//! let request = codec.decode(&mut input).unwrap().unwrap();
//! assert_eq!(request.into_args(), Some(vec!["PING".into()]));
//! let mut output = BytesMut::new();
//! codec.encode(Value::simple("PONG"), &mut output).unwrap();
//! assert_eq!(&output[..], b"+PONG\r\n");
//! # }
//! ```
//!
//! **By hand**: the same stack from its parts, for a transport or a setting the builder
//! does not offer.
//!
//! ```no_run
//! # #[cfg(feature = "client")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use beamline::MuxConnection;
//! use beamline::mux::{Client as MuxClient, ClientConfig};
//! use beamline::reconnect::{OfflinePolicy, Reconnect, ReconnectConfig};
//! use bytes::Bytes;
//! use tokio::net::TcpStream;
//!
//! let connect = || async {
//!     let stream = TcpStream::connect("127.0.0.1:7000").await?;
//!     stream.set_nodelay(true)?;
//!     let (mux, driver) = MuxClient::wire(stream, &ClientConfig::new().peer("kv"))
//!         .map_err(std::io::Error::other)?;
//!     tokio::spawn(driver);
//!     Ok::<_, std::io::Error>(MuxConnection::new(mux))
//! };
//! let conn = Reconnect::start(connect, ReconnectConfig::new(OfflinePolicy::FailFast)).await?;
//! let answer = conn.call(Bytes::from("ping")).await?;
//! # let _ = answer;
//! # Ok(())
//! # }
//! ```
//!
//! **Chaos** (feature `chaos`): put a fault-injecting proxy between your client and its
//! server in a test, and reset every connection on command.
//!
//! ```no_run
//! # #[cfg(all(feature = "chaos", feature = "client"))]
//! # async fn run(server: std::net::SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
//! use beamline::Client;
//! use beamline::chaos::Proxy;
//!
//! let proxy = Proxy::start("127.0.0.1:0".parse()?, server).await?;
//! let client = Client::builder(proxy.local_addr()).connect().await?;
//! proxy.reset_all(); // every live connection gets an RST; the client reconnects
//! # let _ = client;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
// The guide links to the items of every feature; a build without some of them (the default
// leaves out `chaos` and `tower`) lets those links dangle. docs.rs builds with all of them.
#![cfg_attr(
    not(all(
        feature = "process",
        feature = "server",
        feature = "chaos",
        feature = "client",
        feature = "tls",
        feature = "resp",
        feature = "tower"
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
    BuildError, Client, ClientBuilder, ClientError, ClientManager, DEFAULT_REQUEST_TIMEOUT,
    MuxConnection, Pooling, Stack, Target, TransportError,
};

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
