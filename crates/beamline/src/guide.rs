//! The cookbook: one short program per layer and per composition, each compiled (and, where
//! it needs no server, run) as a doc test, so none of it can rot. The crate root says what
//! each layer promises; this is how each is used.
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
//!             Event::Info(_) => {}
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
//! use beamline::server::{ExitReason, Flow, Handler, HandlerContext, Server};
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
//! }
//!
//! let server = Server::new().bind("127.0.0.1:0".parse()?).serve_handler(Echo)?;
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
//! a client of beamline's own wire format takes `Bytes`, and a [`resp::Command`](crate::resp::Command) is not
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
//! [`Server::serve_fn`](crate::server::Server::serve_fn) + [`serve_tagged`](crate::mux::serve_tagged) and a
//! client of [`ClientBuilder::tagged`](crate::ClientBuilder::tagged), over lines `<id> <text>`. The messages are
//! [`Envelope`](crate::mux::Envelope)s, so nobody writes an id: the client's driver tags each
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
//! let server = Server::new().bind("127.0.0.1:0".parse()?).serve_fn(|conn| async move {
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
//! use beamline::{ClientError, WasSent};
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
