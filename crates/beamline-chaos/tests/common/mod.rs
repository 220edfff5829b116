//! Shared helpers: upstream servers on plain threads (so they never appear in the tokio task
//! count the leak checks read), client-side reads with deadlines, and the task-leak check.

#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use beamline_chaos::{Proxy, ProxyStats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, sleep, timeout};

/// Longest any helper waits before failing the test: generous, since it only bounds a hang.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// How one upstream connection ended, as the server saw it.
#[derive(Debug)]
pub struct Ended {
    /// Every byte the server read.
    pub received: Vec<u8>,
    /// `Ok` for a FIN (end-of-stream), else the error kind of the failed read or write.
    pub end: Result<(), io::ErrorKind>,
}

/// A blocking TCP server on 127.0.0.1:0: each connection gets `greeting` written first, then
/// (when `echo`) every byte read is written back.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    ends: Mutex<mpsc::Receiver<Ended>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    pub fn echo() -> Server {
        Server::start(Vec::new(), true)
    }

    /// Writes `greeting` on every connection, then echoes.
    pub fn greeting(greeting: impl Into<Vec<u8>>) -> Server {
        Server::start(greeting.into(), true)
    }

    /// Reads and records, never writes.
    pub fn sink() -> Server {
        Server::start(Vec::new(), false)
    }

    fn start(greeting: Vec<u8>, echo: bool) -> Server {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let thread = {
            let (accepted, stop) = (Arc::clone(&accepted), Arc::clone(&stop));
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let (tx, greeting) = (tx.clone(), greeting.clone());
                    thread::spawn(move || serve(stream, &greeting, echo, &tx));
                }
            })
        };
        Server {
            addr,
            accepted,
            ends: Mutex::new(rx),
            stop,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The next connection to end, waiting (without blocking the runtime) up to PATIENCE.
    pub async fn next_end(&self) -> Ended {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.ends.lock().unwrap().try_recv() {
                Ok(ended) => return ended,
                Err(mpsc::TryRecvError::Empty) if Instant::now() < deadline => {}
                Err(e) => panic!("no upstream connection ended within {PATIENCE:?}: {e}"),
            }
            sleep(Duration::from_millis(2)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(mut stream: TcpStream, greeting: &[u8], echo: bool, ends: &mpsc::Sender<Ended>) {
    let mut received = Vec::new();
    let mut buf = [0u8; 8192];
    let end = match stream.write_all(greeting) {
        Err(e) => Err(e.kind()),
        Ok(()) => loop {
            match stream.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    received.extend_from_slice(&buf[..n]);
                    if echo && let Err(e) = stream.write_all(&buf[..n]) {
                        break Err(e.kind());
                    }
                }
                Err(e) => break Err(e.kind()),
            }
        },
    };
    let _ = ends.send(Ended { received, end });
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn localhost() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

pub async fn proxy_to(server: &Server) -> Proxy {
    Proxy::builder(server.addr()).seed(7).start().await.unwrap()
}

/// An echo server, a proxy to it, and a client whose first round trip has gone through.
pub async fn echo_session() -> (Server, Proxy, tokio::net::TcpStream) {
    let server = Server::echo();
    let proxy = proxy_to(&server).await;
    let mut client = connect(&proxy).await;
    round_trip(&mut client, b"warm").await;
    (server, proxy, client)
}

/// Asserts that a connect to `addr` is refused (an RST to the SYN).
pub async fn assert_refused(addr: SocketAddr) {
    let err = tokio::net::TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
}

pub async fn connect(proxy: &Proxy) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(proxy.local_addr())
        .await
        .unwrap()
}

/// Reads until end-of-stream or an error: the bytes, and how it ended.
pub async fn read_to_end(
    stream: &mut tokio::net::TcpStream,
) -> (Vec<u8>, Result<(), io::ErrorKind>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let end = timeout(PATIENCE, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return Err(e.kind()),
            }
        }
    })
    .await
    .expect("the stream neither ended nor failed");
    (got, end)
}

/// Reads exactly `len` bytes (failing the test on an early end or a hang).
pub async fn read_exactly(stream: &mut tokio::net::TcpStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    timeout(PATIENCE, stream.read_exact(&mut buf))
        .await
        .expect("read timed out")
        .unwrap();
    buf
}

/// One read: whatever has arrived (failing the test on end-of-stream, an error or a hang).
pub async fn read_some(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut buf = vec![0u8; 64 * 1024];
    let n = timeout(PATIENCE, stream.read(&mut buf))
        .await
        .expect("read timed out")
        .unwrap();
    assert_ne!(n, 0, "unexpected end of stream");
    buf.truncate(n);
    buf
}

/// Writes `msg`, reads its echo, and returns how long the round trip took.
pub async fn round_trip(stream: &mut tokio::net::TcpStream, msg: &[u8]) -> Duration {
    let start = Instant::now();
    stream.write_all(msg).await.unwrap();
    assert_eq!(read_exactly(stream, msg.len()).await, msg);
    start.elapsed()
}

/// True when nothing at all (no byte, no end, no error) arrives within `wait`.
pub async fn silent_for(stream: &mut tokio::net::TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 1];
    timeout(wait, stream.read(&mut buf)).await.is_err()
}

/// Waits until the proxy's counters satisfy `ok`.
pub async fn wait_for_stats(proxy: &Proxy, ok: impl Fn(&ProxyStats) -> bool) -> ProxyStats {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let stats = proxy.stats();
        if ok(&stats) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "stats never got there: {stats:?}"
        );
        sleep(Duration::from_millis(2)).await;
    }
}

pub fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Asserts that every task on this runtime has ended. Tests spawn none of their own, so any
/// task left is the proxy's. A task that has just completed may stay counted for a moment
/// after its JoinHandle resolves, hence the short settle.
pub async fn assert_no_tasks_left() {
    let deadline = Instant::now() + Duration::from_secs(2);
    while alive_tasks() != 0 {
        assert!(
            Instant::now() < deadline,
            "{} task(s) still alive after the proxy stopped",
            alive_tasks()
        );
        sleep(Duration::from_millis(1)).await;
    }
}

/// Deterministic bytes that are not a repeating pattern, so any loss or reorder shows.
pub fn noise(len: usize) -> Vec<u8> {
    let mut rng = beamline_testkit::Rng::new(0x2545_F491_4F6C_DD1D);
    (0..len).map(|_| (rng.next_u64() >> 24) as u8).collect()
}
