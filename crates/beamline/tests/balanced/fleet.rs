//! Five (or n) beamline servers, each behind its own beamline-chaos proxy, and the balanced
//! facade `Client` over the proxies.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beamline::balance::{Balanced, BalancedStats, EndpointState};
use beamline::chaos::Proxy;
use beamline::mux::{ServerConfig, serve_wire};
use beamline::reconnect::{BackoffConfig, Jitter};
use beamline::server::{ExitReason, Server, ServerHandle};
use beamline::{BuildError, Client};
use bytes::{BufMut, Bytes, BytesMut};

/// What one server received, counted where it arrives.
#[derive(Debug, Default)]
pub struct Seen {
    pub count: AtomicU64,
    pub payloads: Mutex<Vec<Bytes>>,
}

impl Seen {
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    pub fn contains(&self, payload: &Bytes) -> bool {
        self.payloads.lock().unwrap().contains(payload)
    }
}

/// A beamline-server answering beamline's wire format with each request's own bytes after
/// `delay` (or, `rejecting`, a typed error carrying them), on a fixed address it can be
/// killed on and restarted on.
pub struct Backend {
    handle: Option<ServerHandle>,
    addr: SocketAddr,
    delay: Duration,
    rejecting: bool,
    pub seen: Arc<Seen>,
}

impl Backend {
    fn serve(addr: SocketAddr, seen: &Arc<Seen>, delay: Duration, rejecting: bool) -> ServerHandle {
        let seen = Arc::clone(seen);
        Server::new()
            .bind(addr)
            .serve_fn(move |conn| {
                let seen = Arc::clone(&seen);
                async move {
                    let answer = move |request: Bytes| {
                        seen.count.fetch_add(1, Ordering::SeqCst);
                        seen.payloads.lock().unwrap().push(request.clone());
                        async move {
                            tokio::time::sleep(delay).await;
                            if rejecting { Err(request) } else { Ok(request) }
                        }
                    };
                    serve_wire(conn, &ServerConfig::new(), answer)
                        .await
                        .map_err(ExitReason::error)
                }
            })
            .unwrap()
    }

    pub fn start(delay: Duration) -> Backend {
        Backend::start_answering(delay, false)
    }

    /// A server whose every answer is a typed error (`ClientError::Remote` at the client).
    pub fn start_answering(delay: Duration, rejecting: bool) -> Backend {
        let seen = Arc::new(Seen::default());
        let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let handle = Backend::serve(any, &seen, delay, rejecting);
        let addr = handle.local_addr().unwrap();
        Backend {
            handle: Some(handle),
            addr,
            delay,
            rejecting,
            seen,
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Kills it: the listener closes and every connection is killed at once.
    pub fn kill(&mut self) {
        self.handle = None;
    }

    /// A new server on the same address, counting into the same `seen`.
    pub fn restart(&mut self) {
        self.handle = Some(Backend::serve(
            self.addr,
            &self.seen,
            self.delay,
            self.rejecting,
        ));
    }
}

/// A server behind its own proxy: the balancer knows the proxy's address.
pub struct Node {
    pub backend: Backend,
    pub proxy: Proxy,
}

impl Node {
    pub fn addr(&self) -> SocketAddr {
        self.proxy.local_addr()
    }
}

/// `n` nodes whose servers answer after `delay`.
pub async fn fleet(n: usize, delay: Duration, seed: u64) -> Vec<Node> {
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let backend = Backend::start(delay);
        let proxy = Proxy::builder(backend.addr)
            .seed(seed + i as u64)
            .start()
            .await
            .unwrap();
        nodes.push(Node { backend, proxy });
    }
    nodes
}

/// One server's client under the balancer: beamline's wire format, a 500 ms request
/// timeout, a fast jittered reconnect.
pub async fn endpoint(addr: SocketAddr) -> Result<Client<Bytes, Bytes>, BuildError> {
    Client::builder(addr)
        .name(format!("node {addr}"))
        .timeout(Duration::from_millis(500))
        .backoff(
            BackoffConfig::exponential(Duration::from_millis(20), 2.0, Duration::from_millis(200))
                .jitter(Jitter::Full),
        )
        .connect()
        .await
}

/// A unique request: `caller | seq`, so a reply names its request.
pub fn payload(caller: u16, seq: u32) -> Bytes {
    let mut buf = BytesMut::with_capacity(6);
    buf.put_u16(caller);
    buf.put_u32(seq);
    buf.freeze()
}

/// The state of the endpoint at `addr` in `stats` (`None`: not in the table).
pub fn state(stats: &BalancedStats, addr: SocketAddr) -> Option<EndpointState> {
    stats.endpoint(addr).map(|s| s.state)
}

/// Waits (at most 2 s) until `check` holds for the client's stats.
pub async fn wait_for<E: beamline::balance::Endpoint>(
    client: &Balanced<E>,
    what: &str,
    check: impl Fn(&BalancedStats) -> bool,
) {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(2);
    while !check(&client.stats()) {
        assert!(
            tokio::time::Instant::now() < give_up,
            "{what}: {:?}",
            client.stats()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
