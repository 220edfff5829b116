//! The cell's server: beamline-server speaking beamline's wire format with `serve_wire`,
//! answering each request with its own payload.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use beamline::mux::{ServerConfig, serve_wire};
use beamline::rustls;
use beamline::server::{
    DrainReport, ExitReason, Server, ServerHandle, ServerStats, ShutdownError, StartError,
};
use bytes::Bytes;

use super::load::Payload;

/// An echo server on a fixed address, which can go away and come back there.
#[derive(Debug)]
pub(crate) struct EchoServer {
    handle: ServerHandle,
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl EchoServer {
    /// Starts on `addr` (`127.0.0.1:0` for a free port), over TLS when `tls` is given.
    pub(crate) fn start(
        addr: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<EchoServer, StartError> {
        let server = match &tls {
            Some(config) => Server::new().bind_tls(addr, Arc::clone(config)),
            None => Server::new().bind(addr),
        };
        let handle = server.serve(|conn| async move {
            serve_wire(conn, &ServerConfig::new(), answer)
                .await
                .map_err(ExitReason::error)
        })?;
        let addr = handle.local_addr().unwrap_or(addr);
        Ok(EchoServer { handle, addr, tls })
    }

    /// Where it listens (the same address after a restart).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's counters.
    pub(crate) fn stats(&self) -> ServerStats {
        self.handle.stats()
    }

    /// Stops accepting and closes every connection (none of them waits for a drain).
    pub(crate) async fn stop(&self) -> Result<DrainReport, ShutdownError> {
        self.handle.shutdown(Duration::from_secs(1)).await
    }

    /// A new server on the same address and transport (this one must be stopped).
    pub(crate) fn restart(&self) -> Result<EchoServer, StartError> {
        EchoServer::start(self.addr, self.tls.clone())
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
