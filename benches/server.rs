//! beamline-server beside a raw tokio accept-and-spawn server, the same load client against
//! each, in the same run:
//!
//! - `server/echo-1conn`, `server/echo-64conn`: 64-byte echo round trips over 1 and over 64
//!   connections.
//! - `server/accept-close`: whole connection lives — connect, half-close, the server sees EOF
//!   and closes — from 8 concurrent clients.
//! - `server/accept-close-proxy-v2`: the same lives on a listener that requires a PROXY v2
//!   header from a trusted source (the client writes one, 28 bytes, before its half-close),
//!   beside beamline without PROXY and without the header (`beamline-no-header`): what
//!   reading the header, checking the source and replacing the peer cost per connection.
//! - `server/tls-handshake`: TLS 1.3 handshakes (connect, handshake, a 1-byte echo, close)
//!   from 4 concurrent clients, vs raw tokio-rustls accept-and-spawn with the same config.
//!
//! Then, outside criterion (memory is not a time): the resident memory per idle connection
//! with 10,000 idle connections, for the raw server and for beamline, each server alone in
//! a child process whose RSS is read from /proc, the clients in another child process.
//! Printed as `server/memory-per-idle-connection`. Run it alone with
//! `cargo bench -p beamline-benches --bench server -- memory`.
//!
//! Equal work, side by side:
//!
//! | | beamline | raw tokio |
//! |---|---|---|
//! | runtime | the shared two-worker multi-thread runtime (`runtime()`), clients on it too | the same runtime |
//! | accepting | one acceptor per core (the default) on one listener, `TCP_NODELAY`, backlog 1024 | one accept loop, `set_nodelay(true)` per socket, backlog 1024 (tokio's) |
//! | per connection | a supervised process (`Server::serve_fn`): the mailbox, the timers, panics caught, byte counters | one `tokio::spawn`ed task |
//! | connection loop | `echo_loop`: a 4 KiB buffer, `read`, `write_all` | the same `echo_loop` |
//! | timeouts | read 60 s, send 30 s (both on: the defaults), TLS handshake 5 s | none (a raw accept loop has none; giving it `tokio::time::timeout` per read would register a timer per read, which beamline avoids) |
//! | limits | 16,384 connections (`Overload::Pause`) | none |
//! | checked | every echo byte-for-byte by the client (`read_exact` of the 64 bytes sent); TLS handshakes counted (`handshake_failures == 0`) | the same |
//! | PROXY v2 (`accept-close-proxy-v2` only; its peer is beamline itself) | `proxy_protocol(Required)`, `proxy_protocol_from([127.0.0.1])`, the client writes a v2 header (IPv4, no TLVs); checked: `proxy_failures == 0` | `beamline-no-header`: the same server without PROXY, the same client without the header |
//! | memory figure | the stream form (`serve`) and the callback form (`start`, 4 KiB read buffer) | the raw task |
//!
//! Everything else runs on one two-worker runtime (server and clients share it, as they
//! share the machine).

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use beamline_benches::{External, runtime, write_external};
use beamline_server::{
    Connection, ExitReason, ProxyHeader, ProxyProtocol, ProxyVersion, Server, ServerHandle,
};
use beamline_testkit::TestPki;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const MESSAGE: usize = 64;
const CONNECTIONS: usize = 64;
const ACCEPT_CLIENTS: u64 = 8;
const TLS_CLIENTS: u64 = 4;
const IDLE_CONNECTIONS: usize = 10_000;

// ---- the two servers ---------------------------------------------------------------------

/// The per-connection loop both servers run.
async fn echo_loop<S: AsyncRead + AsyncWrite + Unpin>(mut socket: S) -> std::io::Result<()> {
    let mut buf = vec![0u8; 4096];
    loop {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        socket.write_all(&buf[..n]).await?;
    }
}

async fn beamline_echo(conn: Connection) -> Result<(), ExitReason> {
    echo_loop(conn).await?;
    Ok(())
}

/// The peer: accept, set TCP_NODELAY, spawn a task per connection.
async fn raw_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let _ = socket.set_nodelay(true);
            tokio::spawn(echo_loop(socket));
        }
    });
    addr
}

/// With its timers on, as the header says: a 60 s read timeout and a 30 s send timeout.
fn beamline_server() -> ServerHandle {
    Server::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .read_timeout(Some(Duration::from_secs(60)))
        .send_timeout(Some(Duration::from_secs(30)))
        .serve_fn(beamline_echo)
        .unwrap()
}

/// The peer for TLS: raw tokio-rustls, the handshake in the spawned task.
async fn raw_tls_server(config: Arc<rustls::ServerConfig>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let _ = socket.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(socket).await {
                    let _ = echo_loop(tls).await;
                }
            });
        }
    });
    addr
}

// ---- load ---------------------------------------------------------------------------------

async fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

async fn round_trips(mut stream: TcpStream, n: u64) -> TcpStream {
    let msg = [7u8; MESSAGE];
    let mut back = [0u8; MESSAGE];
    for _ in 0..n {
        stream.write_all(&msg).await.unwrap();
        stream.read_exact(&mut back).await.unwrap();
    }
    stream
}

/// `total` units of work split over `workers` concurrent tasks; returns the wall time.
async fn spread<F, Fut>(total: u64, workers: u64, work: F) -> Duration
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|w| tokio::spawn(work(total / workers + u64::from(w < total % workers))))
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

/// Connection lives: connect, half-close, wait for the server's close.
async fn connection_lives(addr: SocketAddr, n: u64) {
    for _ in 0..n {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.shutdown().await.unwrap();
        let mut byte = [0u8; 1];
        assert_eq!(stream.read(&mut byte).await.unwrap(), 0);
    }
}

/// Connection lives that start with a PROXY header: connect, the header, half-close, wait
/// for the server's close.
async fn proxied_lives(addr: SocketAddr, header: Arc<[u8]>, n: u64) {
    for _ in 0..n {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(&header).await.unwrap();
        stream.shutdown().await.unwrap();
        let mut byte = [0u8; 1];
        assert_eq!(stream.read(&mut byte).await.unwrap(), 0);
    }
}

/// TLS lives: connect, handshake, one byte there and back, close.
async fn tls_lives(addr: SocketAddr, client: Arc<rustls::ClientConfig>, n: u64) {
    let connector = TlsConnector::from(client);
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    for _ in 0..n {
        let tcp = connect(addr).await;
        let mut tls = connector.connect(name.clone(), tcp).await.unwrap();
        tls.write_all(b"x").await.unwrap();
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await.unwrap();
    }
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>, samples: usize, secs: u64) {
    group
        .throughput(Throughput::Elements(1))
        .sample_size(samples)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(secs));
}

fn echo(c: &mut Criterion) {
    let rt = runtime();
    let beamline = rt.block_on(async { beamline_server() });
    let raw = rt.block_on(raw_server());
    let targets = [("beamline", addr_of(&beamline)), ("raw-tokio", raw)];

    let mut group = c.benchmark_group("server/echo-1conn");
    configure(&mut group, 30, 4);
    for (id, addr) in targets {
        let mut stream = Some(rt.block_on(connect(addr)));
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    stream = Some(round_trips(stream.take().unwrap(), iters).await);
                    start.elapsed()
                })
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("server/echo-64conn");
    configure(&mut group, 30, 5);
    for (id, addr) in targets {
        let mut streams: Vec<TcpStream> =
            rt.block_on(async { futures_all((0..CONNECTIONS).map(|_| connect(addr))).await });
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let n = CONNECTIONS as u64;
                    let start = Instant::now();
                    let tasks: Vec<_> = streams
                        .drain(..)
                        .enumerate()
                        .map(|(i, s)| {
                            tokio::spawn(round_trips(
                                s,
                                iters / n + u64::from((i as u64) < iters % n),
                            ))
                        })
                        .collect();
                    for t in tasks {
                        streams.push(t.await.unwrap());
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
    rt.block_on(async { beamline.shutdown(Duration::from_secs(5)).await.unwrap() });
}

fn accept_close(c: &mut Criterion) {
    let rt = runtime();
    let beamline = rt.block_on(async { beamline_server() });
    let raw = rt.block_on(raw_server());
    let mut group = c.benchmark_group("server/accept-close");
    configure(&mut group, 20, 5);
    for (id, addr) in [("beamline", addr_of(&beamline)), ("raw-tokio", raw)] {
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                rt.block_on(spread(iters, ACCEPT_CLIENTS, move |n| {
                    connection_lives(addr, n)
                }))
            })
        });
    }
    group.finish();
    rt.block_on(async { beamline.shutdown(Duration::from_secs(5)).await.unwrap() });
}

fn accept_close_proxy(c: &mut Criterion) {
    let rt = runtime();
    let proxied = rt.block_on(async {
        Server::new()
            .bind("127.0.0.1:0".parse().unwrap())
            .proxy_protocol(ProxyProtocol::Required)
            .proxy_protocol_from(["127.0.0.1".parse().unwrap()])
            .read_timeout(Some(Duration::from_secs(60)))
            .send_timeout(Some(Duration::from_secs(30)))
            .serve_fn(beamline_echo)
            .unwrap()
    });
    let plain = rt.block_on(async { beamline_server() });
    let mut bytes = Vec::new();
    ProxyHeader::new(
        ProxyVersion::V2,
        "192.0.2.7:40000".parse().unwrap(),
        "10.0.0.1:6380".parse().unwrap(),
    )
    .encode(&mut bytes);
    let header: Arc<[u8]> = bytes.into();
    let mut group = c.benchmark_group("server/accept-close-proxy-v2");
    configure(&mut group, 20, 5);
    let proxied_addr = addr_of(&proxied);
    group.bench_function("beamline", |b| {
        b.iter_custom(|iters| {
            let header = header.clone();
            rt.block_on(spread(iters, ACCEPT_CLIENTS, move |n| {
                proxied_lives(proxied_addr, header.clone(), n)
            }))
        })
    });
    let plain_addr = addr_of(&plain);
    group.bench_function("beamline-no-header", |b| {
        b.iter_custom(|iters| {
            rt.block_on(spread(iters, ACCEPT_CLIENTS, move |n| {
                connection_lives(plain_addr, n)
            }))
        })
    });
    group.finish();
    assert_eq!(proxied.stats().proxy_failures, 0);
    rt.block_on(async {
        proxied.shutdown(Duration::from_secs(5)).await.unwrap();
        plain.shutdown(Duration::from_secs(5)).await.unwrap();
    });
}

fn tls_handshake(c: &mut Criterion) {
    let rt = runtime();
    let pki = TestPki::new();
    let beamline = rt.block_on(async {
        Server::new()
            .bind_tls("127.0.0.1:0".parse().unwrap(), pki.server_config())
            .read_timeout(Some(Duration::from_secs(60)))
            .send_timeout(Some(Duration::from_secs(30)))
            .serve_fn(beamline_echo)
            .unwrap()
    });
    let raw = rt.block_on(raw_tls_server(pki.server_config()));
    let client = pki.client_config();
    let mut group = c.benchmark_group("server/tls-handshake");
    configure(&mut group, 20, 5);
    for (id, addr) in [("beamline", addr_of(&beamline)), ("raw-tokio-rustls", raw)] {
        let client = client.clone();
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let client = client.clone();
                rt.block_on(spread(iters, TLS_CLIENTS, move |n| {
                    tls_lives(addr, client.clone(), n)
                }))
            })
        });
    }
    group.finish();
    assert_eq!(beamline.stats().handshake_failures, 0);
    rt.block_on(async { beamline.shutdown(Duration::from_secs(5)).await.unwrap() });
}

fn addr_of(server: &ServerHandle) -> SocketAddr {
    server.local_addr().unwrap()
}

async fn futures_all<F: Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    for f in futures {
        out.push(f.await);
    }
    out
}

criterion_group!(
    benches,
    echo,
    accept_close,
    accept_close_proxy,
    tls_handshake
);

// ---- memory per idle connection (child processes) ----------------------------------------

/// The groups of the memory figures in `cargo xtask bench`'s tables.
const MEMORY_GROUP: &str = "server/memory-per-idle-connection";
const MEMORY_HANDLER_GROUP: &str = "server/memory-per-idle-connection-handler";

/// Selects a child role when this binary re-runs itself.
const CHILD_ENV: &str = "BEAMLINE_SERVER_BENCH_CHILD";

/// Re-runs this binary as `role`, with its soft descriptor limit raised to the hard limit
/// (through the shell's `ulimit`, so no unsafe code is needed).
fn spawn_child(
    role: &str,
    args: &[String],
) -> (Child, BufReader<std::process::ChildStdout>, ChildStdin) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -S -n \"$(ulimit -H -n)\" && exec \"$0\" \"$@\"")
        .arg(exe)
        .args(args)
        .env(CHILD_ENV, role)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let stdin = child.stdin.take().unwrap();
    (child, stdout, stdin)
}

fn read_line(stdout: &mut BufReader<std::process::ChildStdout>) -> String {
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    line.trim().to_owned()
}

/// Resident set size of `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

fn hard_fd_limit() -> u64 {
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -H -n")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().unwrap_or(u64::MAX)
}

/// Bytes of RSS one idle connection adds to `server` (a child role).
fn bytes_per_idle_connection(server: &str) -> f64 {
    let (mut srv, mut srv_out, srv_in) = spawn_child(server, &[]);
    let port = read_line(&mut srv_out);
    // Let the server settle, then measure its baseline.
    std::thread::sleep(Duration::from_millis(300));
    let before = rss(srv.id());
    let (mut clients, mut cli_out, cli_in) =
        spawn_child("clients", &[port, IDLE_CONNECTIONS.to_string()]);
    assert_eq!(read_line(&mut cli_out), "READY", "the client child failed");
    std::thread::sleep(Duration::from_millis(500));
    let after = rss(srv.id());
    drop(cli_in);
    clients.wait().unwrap();
    drop(srv_in);
    srv.wait().unwrap();
    (after.saturating_sub(before)) as f64 / IDLE_CONNECTIONS as f64
}

fn memory_report() {
    if hard_fd_limit() < IDLE_CONNECTIONS as u64 + 100 {
        println!(
            "server/memory-per-idle-connection: skipped, the hard RLIMIT_NOFILE is below {}",
            IDLE_CONNECTIONS + 100
        );
        return;
    }
    let raw = bytes_per_idle_connection("raw");
    let beamline = bytes_per_idle_connection("beamline");
    let handler = bytes_per_idle_connection("beamline-handler");
    println!(
        "server/memory-per-idle-connection ({IDLE_CONNECTIONS} idle connections, RSS of the server process)"
    );
    println!("  raw-tokio         {raw:>8.0} bytes");
    println!(
        "  beamline          {beamline:>8.0} bytes  ({:.2}x raw; goal <= 1.25x)",
        beamline / raw
    );
    println!(
        "  beamline-handler  {handler:>8.0} bytes  ({:.2}x raw; the callback form, 4 KiB read buffer)",
        handler / raw
    );
    // For `cargo xtask bench`: one group per beamline form, each beside the raw server.
    let bytes = |group: &str, function: &str, amount: f64| External {
        group: group.to_owned(),
        function: function.to_owned(),
        metric: "bytes/connection",
        amount,
        higher_is_better: false,
    };
    let results = [
        bytes(MEMORY_GROUP, "beamline", beamline),
        bytes(MEMORY_GROUP, "raw-tokio", raw),
        bytes(MEMORY_HANDLER_GROUP, "beamline-handler", handler),
        bytes(MEMORY_HANDLER_GROUP, "raw-tokio", raw),
    ];
    let path = write_external("server-memory", &results).unwrap();
    println!("written to {}", path.display());
}

/// A server child: starts `role`'s server, prints its port, exits when stdin closes.
fn server_child(role: &str) {
    let rt = runtime();
    let (port, handle) = rt.block_on(async {
        match role {
            "raw" => (raw_server().await.port(), None),
            "beamline" => {
                let s = beamline_server();
                (addr_of(&s).port(), Some(s))
            }
            _ => {
                let s = Server::new()
                    .bind("127.0.0.1:0".parse().unwrap())
                    .read_buffer(4096)
                    .read_timeout(Some(Duration::from_secs(60)))
                    .send_timeout(Some(Duration::from_secs(30)))
                    .serve_handler(HandlerEcho)
                    .unwrap();
                (addr_of(&s).port(), Some(s))
            }
        }
    });
    println!("{port}");
    std::io::stdout().flush().unwrap();
    let mut rest = String::new();
    let _ = std::io::stdin().read_line(&mut rest);
    drop(handle);
}

/// The callback-form echo, for its memory figure.
#[derive(Clone)]
struct HandlerEcho;

impl beamline_server::Handler for HandlerEcho {
    async fn on_data(
        &mut self,
        data: &mut bytes::BytesMut,
        conn: &mut beamline_server::HandlerContext<'_>,
    ) -> Result<beamline_server::Flow, ExitReason> {
        conn.send(data).await?;
        data.clear();
        Ok(beamline_server::Flow::Continue)
    }
}

/// The clients child: opens `count` connections to `port`, one round trip on each, prints
/// READY, holds them until stdin closes.
fn clients_child(port: u16, count: usize) {
    let rt = runtime();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let conns = rt.block_on(async {
        let mut conns = Vec::with_capacity(count);
        for chunk in 0..count.div_ceil(100) {
            let n = (count - chunk * 100).min(100);
            let batch: Vec<_> = (0..n)
                .map(|_| {
                    tokio::spawn(async move {
                        let mut s = connect(addr).await;
                        s.write_all(b"x").await.unwrap();
                        let mut b = [0u8; 1];
                        s.read_exact(&mut b).await.unwrap();
                        s
                    })
                })
                .collect();
            for t in batch {
                conns.push(t.await.unwrap());
            }
        }
        conns
    });
    println!("READY");
    std::io::stdout().flush().unwrap();
    let mut rest = String::new();
    let _ = std::io::stdin().read_line(&mut rest);
    drop(conns);
}

fn main() {
    if let Ok(role) = std::env::var(CHILD_ENV) {
        let args: Vec<String> = std::env::args().skip(1).collect();
        match role.as_str() {
            "clients" => clients_child(args[0].parse().unwrap(), args[1].parse().unwrap()),
            server => server_child(server),
        }
        return;
    }
    // Criterion's filter (a positional argument) also selects the memory report.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let list_only = std::env::args().any(|a| a == "--list" || a == "--test");
    let wanted =
        |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    benches();
    if !list_only && (wanted(MEMORY_GROUP) || wanted(MEMORY_HANDLER_GROUP)) {
        memory_report();
    }
    Criterion::default().configure_from_args().final_summary();
}
