//! The cell's server: beamline-server answering each request with its own payload, either in
//! beamline's wire format with `serve_wire` (request ids) or in length-delimited frames
//! without ids (FIFO order), where it can be told to swallow one reply.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use beamline::mux::{ServerConfig, serve_wire};
use beamline::rustls;
use beamline::server::{
    Connection, DrainReport, ExitReason, Server, ServerHandle, ServerStats, ShutdownError,
    StartError,
};
use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio_util::codec::{Decoder, Encoder, Framed, LengthDelimitedCodec};

use super::load::Payload;

/// The largest FIFO frame either side accepts (payloads are at most ~1 KiB).
const MAX_FRAME: usize = 64 * 1024;

/// Length-delimited frames without ids: the FIFO cells' protocol, for both ends. A frame
/// over [`MAX_FRAME`] is a decode error, never an allocation.
#[derive(Debug, Clone)]
pub(crate) struct Frames(LengthDelimitedCodec);

impl Frames {
    pub(crate) fn new() -> Frames {
        Frames(
            LengthDelimitedCodec::builder()
                .max_frame_length(MAX_FRAME)
                .new_codec(),
        )
    }
}

impl Encoder<Bytes> for Frames {
    type Error = io::Error;

    fn encode(&mut self, frame: Bytes, dst: &mut BytesMut) -> io::Result<()> {
        self.0.encode(frame, dst)
    }
}

impl Decoder for Frames {
    type Item = Bytes;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Bytes>> {
        Ok(self.0.decode(src)?.map(BytesMut::freeze))
    }
}

/// How the server speaks.
#[derive(Debug, Clone)]
pub(crate) enum Protocol {
    /// beamline's wire format: ids, answers in any order.
    Wire,
    /// Length-delimited frames, answers in request order.
    Fifo(Arc<Swallow>),
}

/// The FIFO server's one fault: swallow a reply, the way a connection blocked in
/// `BLPOP k 0` does, and count what followed.
#[derive(Debug, Default)]
pub(crate) struct Swallow {
    /// The next request (on any connection) is swallowed.
    armed: AtomicBool,
    /// Requests whose reply was swallowed.
    pub(crate) swallowed: AtomicU64,
    /// Connections that swallowed a reply and were then closed by the client.
    pub(crate) closed_by_client: AtomicU64,
}

impl Swallow {
    /// The next request's reply will never be sent, nor any after it on its connection.
    pub(crate) fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }
}

/// An echo server on a fixed address, which can go away and come back there.
#[derive(Debug)]
pub(crate) struct EchoServer {
    handle: ServerHandle,
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    protocol: Protocol,
}

impl EchoServer {
    /// Starts on `addr` (`127.0.0.1:0` for a free port), over TLS when `tls` is given.
    pub(crate) fn start(
        addr: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
        protocol: Protocol,
    ) -> Result<EchoServer, StartError> {
        let server = match &tls {
            Some(config) => Server::new().bind_tls(addr, Arc::clone(config)),
            None => Server::new().bind(addr),
        };
        let speaking = protocol.clone();
        let handle = server.serve_fn(move |conn| {
            let protocol = speaking.clone();
            async move {
                match protocol {
                    Protocol::Wire => serve_wire(conn, &ServerConfig::new(), answer)
                        .await
                        .map_err(ExitReason::error),
                    Protocol::Fifo(swallow) => {
                        serve_fifo(conn, &swallow).await.map_err(ExitReason::error)
                    }
                }
            }
        })?;
        let addr = handle.local_addr().unwrap_or(addr);
        Ok(EchoServer {
            handle,
            addr,
            tls,
            protocol,
        })
    }

    /// Where it listens (the same address after a restart).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's counters.
    pub(crate) fn stats(&self) -> ServerStats {
        self.handle.stats()
    }

    /// The FIFO server's swallow switch and counters (`None` for the wire format).
    pub(crate) fn swallow(&self) -> Option<&Swallow> {
        match &self.protocol {
            Protocol::Fifo(swallow) => Some(swallow),
            Protocol::Wire => None,
        }
    }

    /// Stops accepting and closes every connection (none of them waits for a drain).
    pub(crate) async fn stop(&self) -> Result<DrainReport, ShutdownError> {
        self.handle.shutdown(Duration::from_secs(1)).await
    }

    /// A new server on the same address and transport (this one must be stopped).
    pub(crate) fn restart(&self) -> Result<EchoServer, StartError> {
        EchoServer::start(self.addr, self.tls.clone(), self.protocol.clone())
    }
}

/// The answer to one request: its own bytes. Every seventh request takes 2 ms, so on a
/// multiplexed connection answers overtake each other and a reply that reached the wrong
/// caller would show.
async fn answer(request: Bytes) -> Result<Bytes, Bytes> {
    if Payload::seq_of(&request).is_some_and(|seq| seq % 7 == 3) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(request)
}

/// Answers each frame with its own bytes, in order, until the client goes. Once armed,
/// the next request is swallowed: from then on this connection reads on and answers
/// nothing, until the client closes it.
async fn serve_fifo(conn: Connection, swallow: &Swallow) -> io::Result<()> {
    let mut frames = Framed::new(conn, Frames::new());
    let mut wedged = false;
    while let Some(Ok(request)) = frames.next().await {
        if wedged {
            continue;
        }
        if swallow.armed.swap(false, Ordering::SeqCst) {
            swallow.swallowed.fetch_add(1, Ordering::SeqCst);
            wedged = true;
            continue;
        }
        let (Ok(reply) | Err(reply)) = answer(request).await;
        frames.send(reply).await?;
    }
    if wedged {
        swallow.closed_by_client.fetch_add(1, Ordering::SeqCst);
    }
    Ok(())
}
