//! The shared pool with a real multiplexed protocol over loopback sockets: request-id-tagged
//! lines, answered out of order by the server, each connection taking up to `K` requests in
//! flight. (beamline-mux is not in this crate's dependencies; the facade adds the same test
//! over it. The protocol here is the smallest one that multiplexes for real.)
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beamline_pool::{CheckPolicy, CloseReason, Manager, PoolConfig, SharedPool};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

const K: usize = 4;

/// What the server saw.
#[derive(Debug, Default)]
struct ServerStats {
    connections: AtomicUsize,
    /// Replies written in a different order than their requests arrived.
    reordered: AtomicUsize,
}

/// Answers `<id> <payload>` with `<id> <payload>!`, each after a delay that depends on the id,
/// so replies overtake each other. Bumping `drop_all` closes every connection open then.
async fn server(stats: Arc<ServerStats>, drop_all: watch::Receiver<u64>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            stats.connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(socket, Arc::clone(&stats), drop_all.clone()));
        }
    });
    addr
}

async fn serve(socket: TcpStream, stats: Arc<ServerStats>, mut drop_all: watch::Receiver<u64>) {
    let generation = *drop_all.borrow_and_update();
    let (rx, mut tx) = socket.into_split();
    let (replies, mut outbox) = mpsc::unbounded_channel::<(u64, String)>();
    let writer = tokio::spawn(async move {
        let mut last = 0;
        while let Some((seq, line)) = outbox.recv().await {
            if seq < last {
                stats.reordered.fetch_add(1, Ordering::SeqCst);
            }
            last = last.max(seq);
            if tx.write_all(line.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let mut lines = BufReader::new(rx).lines();
    let mut seq = 0;
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Ok(Some(line)) = line else { break };
                seq += 1;
                let (id, payload) = line.split_once(' ').unwrap();
                let delay = Duration::from_micros(id.parse::<u64>().unwrap() * 7919 % 2000);
                let (replies, reply) = (replies.clone(), format!("{id} {payload}!\n"));
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = replies.send((seq, reply));
                });
            }
            _ = drop_all.wait_for(|g| *g != generation) => break,
        }
    }
    writer.abort();
}

/// A multiplexed client connection: many requests in flight, replies routed by id.
#[derive(Debug)]
struct MuxConn {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Arc<Mutex<HashMap<u64, oneshot::Sender<String>>>>,
    next_id: AtomicU64,
    closed: Arc<AtomicBool>,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
}

impl MuxConn {
    async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let (rx, tx) = TcpStream::connect(addr).await?.into_split();
        let pending: Arc<Mutex<HashMap<u64, oneshot::Sender<String>>>> = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        let (routes, down) = (Arc::clone(&pending), Arc::clone(&closed));
        tokio::spawn(async move {
            let mut lines = BufReader::new(rx).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let (id, reply) = line.split_once(' ').unwrap();
                if let Some(caller) = routes.lock().unwrap().remove(&id.parse().unwrap()) {
                    let _ = caller.send(reply.to_owned());
                }
            }
            down.store(true, Ordering::SeqCst);
            routes.lock().unwrap().clear(); // callers see their reply channel close
        });
        Ok(Self {
            writer: tokio::sync::Mutex::new(tx),
            pending,
            next_id: AtomicU64::new(1),
            closed,
            in_flight: AtomicUsize::new(0),
            peak_in_flight: AtomicUsize::new(0),
        })
    }

    async fn call(&self, payload: &str) -> io::Result<String> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        let sent = self
            .writer
            .lock()
            .await
            .write_all(format!("{id} {payload}\n").as_bytes())
            .await;
        let reply = match sent {
            Ok(()) => rx.await.map_err(|_| io::ErrorKind::ConnectionReset.into()),
            Err(e) => Err(e),
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        reply
    }
}

struct Mux(SocketAddr);

impl Manager for Mux {
    type Connection = MuxConn;
    type Error = io::Error;
    async fn create(&self) -> io::Result<MuxConn> {
        MuxConn::connect(self.0).await
    }
    fn target(&self) -> String {
        self.0.to_string()
    }
    fn is_broken(&self, conn: &MuxConn) -> bool {
        conn.closed.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_pool_multiplexes_a_real_protocol_and_overflows_to_new_connections() {
    let stats = Arc::new(ServerStats::default());
    let (drop_all, dropped) = watch::channel(0u64);
    let addr = server(Arc::clone(&stats), dropped).await;
    let config = PoolConfig::new(3).name("mux").check(CheckPolicy::Never);
    let pool = SharedPool::start(Mux(addr), config, K).await.unwrap();

    // 24 callers, 10 requests each: more than one connection's K in flight at once.
    let callers: Vec<_> = (0..24)
        .map(|c| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for r in 0..10 {
                    let conn = pool.get().await.unwrap();
                    let payload = format!("c{c}r{r}");
                    assert_eq!(conn.call(&payload).await.unwrap(), format!("{payload}!"));
                    let peak = conn.peak_in_flight.load(Ordering::SeqCst);
                    assert!(peak <= K, "{peak} requests in flight on one connection");
                }
            })
        })
        .collect();
    for c in callers {
        c.await.unwrap();
    }
    let m = pool.metrics();
    assert_eq!(
        m.created, 3,
        "all full at K: the pool opened more, up to max_size"
    );
    assert_eq!(stats.connections.load(Ordering::SeqCst), 3);
    assert!(
        stats.reordered.load(Ordering::SeqCst) > 0,
        "replies overtook each other"
    );
    assert_eq!(m.checkouts, 240);

    // The server drops every connection: the pool notices (is_broken) and opens new ones.
    drop_all.send_modify(|g| *g += 1);
    let mut tries = 0;
    let conn = loop {
        let conn = pool.get().await.unwrap();
        match conn.call("again").await {
            Ok(reply) => break (conn, reply),
            // Checked out just before its reader saw the close: the next checkout skips it.
            Err(_) if tries < 100 => tries += 1,
            Err(e) => panic!("no working connection after the server dropped them: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(conn.1, "again!");
    drop(conn);
    let m = pool.metrics();
    assert!(m.closed.get(CloseReason::Broken) >= 1, "{m:?}");
    assert!(stats.connections.load(Ordering::SeqCst) > 3);
    pool.close();
}
