//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used)]

pub(crate) mod tagged;

use std::net::SocketAddr;
use std::time::Duration;

use beamline_mux::{Client, ClientConfig, FrameCodec, MuxError, ServerConfig, serve_wire};
use bytes::Bytes;
use tokio::io::DuplexStream;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;

/// The test's side of an in-memory wire-format connection: it reads the client's frames and
/// answers (or does not) by hand.
pub(crate) type Peer = Framed<DuplexStream, FrameCodec>;

/// A wire-format client over an in-memory pipe (its driver spawned), and the raw peer at the
/// other end. In memory, so the paused clock moves only when every task waits on a timer.
pub(crate) fn wire_pipe(config: &ClientConfig) -> (Client<Bytes, Bytes>, Peer) {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let (client, driver) = Client::wire(client_io, config).unwrap();
    tokio::spawn(driver);
    (client, Framed::new(server_io, FrameCodec::new()))
}

/// Calls `payload` on a task of its own, with its own timeout if given.
pub(crate) fn spawn_call(
    client: &Client<Bytes, Bytes>,
    payload: &'static str,
    timeout: Option<Duration>,
) -> JoinHandle<Result<Bytes, MuxError>> {
    let client = client.clone();
    tokio::spawn(async move {
        let payload = Bytes::from_static(payload.as_bytes());
        match timeout {
            Some(t) => client.call_timeout(payload, t).await,
            None => client.call(payload).await,
        }
    })
}

/// A connected pair of loopback TCP streams.
pub(crate) async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let client = client.unwrap();
    client.set_nodelay(true).unwrap();
    let (server, _) = accepted.unwrap();
    server.set_nodelay(true).unwrap();
    (client, server)
}

/// A loopback server that answers every wire-format request with `handler`'s answer, one
/// `serve_wire` per accepted connection.
pub(crate) async fn spawn_server<H, F>(config: ServerConfig, handler: H) -> SocketAddr
where
    H: Fn(Bytes) -> F + Clone + Send + 'static,
    F: Future<Output = Result<Bytes, Bytes>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            stream.set_nodelay(true).unwrap();
            let handler = handler.clone();
            let config = config.clone();
            tokio::spawn(async move {
                let _ = serve_wire(stream, &config, handler).await;
            });
        }
    });
    addr
}

/// Connects to `addr` over TCP.
pub(crate) async fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// The workspace's seeded generator, so failures replay.
#[allow(unused_imports)] // not every test binary that shares this module draws numbers
pub(crate) use beamline_testkit::Rng;
