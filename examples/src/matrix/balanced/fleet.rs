//! N beamline servers, each behind its own beamline-chaos proxy, counting (and, if asked,
//! keeping) the requests that reach them: the balanced cells' servers, and the bench's.

use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beamline::chaos::Proxy;
use beamline::mux::{ServerConfig, serve_wire};
use beamline::server::{ExitReason, Server, ServerHandle, StartError};
use bytes::Bytes;

/// What reached one server.
#[derive(Debug, Default)]
pub struct Received {
    count: AtomicU64,
    /// Every payload, when the fleet keeps them.
    kept: Option<Mutex<HashSet<Bytes>>>,
}

impl Received {
    /// Requests that reached the server so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Whether `payload` reached it (always `false` unless payloads are kept).
    pub fn saw(&self, payload: &Bytes) -> bool {
        self.kept.as_ref().is_some_and(|kept| {
            kept.lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(payload)
        })
    }

    fn arrived(&self, payload: &Bytes) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if let Some(kept) = &self.kept {
            kept.lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(payload.clone());
        }
    }
}

/// One server (answering each request with its own bytes after the service time) and the
/// proxy in front of it; clients know only the proxy.
#[derive(Debug)]
pub struct Node {
    server: Option<ServerHandle>,
    server_addr: SocketAddr,
    service_time: Duration,
    /// The proxy every client goes through: faults are applied here.
    pub proxy: Proxy,
    /// What reached the server.
    pub received: Arc<Received>,
}

fn serve(
    addr: SocketAddr,
    service_time: Duration,
    received: &Arc<Received>,
) -> Result<ServerHandle, StartError> {
    let received = Arc::clone(received);
    Server::new().bind(addr).serve_fn(move |conn| {
        let received = Arc::clone(&received);
        let answer = move |request: Bytes| {
            received.arrived(&request);
            async move {
                if !service_time.is_zero() {
                    tokio::time::sleep(service_time).await;
                }
                Ok::<Bytes, Bytes>(request)
            }
        };
        async move {
            serve_wire(conn, &ServerConfig::new(), answer)
                .await
                .map_err(ExitReason::error)
        }
    })
}

impl Node {
    /// The address clients use: the proxy's.
    pub fn addr(&self) -> SocketAddr {
        self.proxy.local_addr()
    }

    /// Kills the server: its listener closes and every connection is killed at once (the
    /// proxy stays, and resets what it can no longer forward).
    pub fn kill(&mut self) {
        self.server = None;
    }

    /// A new server on the same address.
    ///
    /// # Errors
    /// The address cannot be bound again.
    pub fn restart(&mut self) -> Result<(), StartError> {
        self.server = Some(serve(self.server_addr, self.service_time, &self.received)?);
        Ok(())
    }

    /// Stops the server (every connection closed) and the proxy.
    pub async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.shutdown(Duration::from_secs(1)).await;
        }
        self.proxy.shutdown().await;
    }
}

/// `n` nodes on loopback.
#[derive(Debug)]
pub struct Fleet {
    /// The nodes, in start order.
    pub nodes: Vec<Node>,
}

impl Fleet {
    /// Starts `n` servers answering after `service_time`, each behind a proxy seeded from
    /// `seed`; `keep` keeps every payload that reaches a server (for checks by payload).
    ///
    /// # Errors
    /// A server or a proxy did not start.
    pub async fn start(
        n: usize,
        service_time: Duration,
        seed: u64,
        keep: bool,
    ) -> io::Result<Fleet> {
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let received = Arc::new(Received {
                count: AtomicU64::new(0),
                kept: keep.then(Mutex::default),
            });
            let server = serve(
                SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                service_time,
                &received,
            )
            .map_err(io::Error::other)?;
            let server_addr = server
                .local_addr()
                .ok_or_else(|| io::Error::other("the server has no TCP address"))?;
            let proxy = Proxy::builder(server_addr)
                .seed(seed.wrapping_add(i as u64))
                .start()
                .await?;
            nodes.push(Node {
                server: Some(server),
                server_addr,
                service_time,
                proxy,
                received,
            });
        }
        Ok(Fleet { nodes })
    }

    /// Every node's address (its proxy's), in order.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(Node::addr).collect()
    }

    /// Requests that reached each server so far.
    pub fn counts(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.received.count()).collect()
    }

    /// Stops every server and proxy.
    pub async fn shutdown(self) {
        for node in self.nodes {
            node.shutdown().await;
        }
    }
}
