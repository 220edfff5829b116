//! The behaviour table of `benches/http.rs`: what beamline-http and `axum::serve` do under a
//! slowloris on headers, an HTTP/2 rapid-reset burst, descriptor exhaustion and a drain with
//! requests in flight. Each row is measured on both, in real time; nothing is asserted.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use beamline_testkit::h2::{ENHANCE_YOUR_CALM, goaway_code, rapid_reset_burst};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{AXUM, BEAMLINE, Hits, program, router, start_axum, start_beamline};

const CHILD_ENV: &str = "BEAMLINE_HTTP_FD_CHILD";

/// A started server of either kind, and how to stop it.
enum Running {
    Beamline(Box<beamline_http::HttpHandle>),
    Axum(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ),
}

async fn start(which: &str, hits: Arc<Hits>) -> (SocketAddr, Running) {
    if which == BEAMLINE {
        let server = start_beamline(router(hits));
        (
            server.local_addr().unwrap(),
            Running::Beamline(Box::new(server)),
        )
    } else {
        let (addr, stop, task) = start_axum(router(hits)).await;
        (addr, Running::Axum(stop, task))
    }
}

/// Stops a server, waiting at most `limit`; a description of how it went.
async fn stop(running: Running, limit: Duration) -> String {
    let started = Instant::now();
    match running {
        Running::Beamline(server) => match server.shutdown(limit).await {
            Ok(r) => format!(
                "`shutdown` returned after {:.1} s: {} drained, {} aborted",
                started.elapsed().as_secs_f64(),
                r.drained,
                r.aborted
            ),
            Err(e) => format!("shutdown failed: {e}"),
        },
        Running::Axum(stop, task) => {
            let _ = stop.send(());
            match tokio::time::timeout(2 * limit, task).await {
                Ok(_) => format!(
                    "`with_graceful_shutdown` returned after {:.1} s",
                    started.elapsed().as_secs_f64()
                ),
                Err(_) => format!(
                    "`with_graceful_shutdown` still waiting after {:.0} s (no deadline)",
                    (2 * limit).as_secs_f64()
                ),
            }
        }
    }
}

/// One HTTP/1.1 GET on a new connection: the status, or `None` (refused, closed, or no
/// answer within `limit`).
async fn get(addr: SocketAddr, path: &str, limit: Duration) -> Option<u16> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        let status = String::from_utf8_lossy(answer.get(9..12)?).into_owned();
        status.parse().ok()
    };
    tokio::time::timeout(limit, attempt).await.ok().flatten()
}

/// This process's CPU time (user + system), in milliseconds.
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks * 10.0 // USER_HZ is 100 on Linux
}

/// A CPU time at the 10 ms resolution it is counted in.
fn cpu_text(ms: f64) -> String {
    if ms < 10.0 {
        "under 10 ms".to_owned()
    } else {
        format!("{ms:.0} ms")
    }
}

/// 50 connections each send half a request head and go silent; after 12 s, how many the
/// server closed and when, and how long a normal request took meanwhile.
async fn slowloris(which: &str) -> String {
    const SLOW: usize = 50;
    let (addr, running) = start(which, Arc::default()).await;
    let started = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..SLOW {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nX-Slow: a")
            .await
            .unwrap();
        slow.push(tokio::spawn(async move {
            let mut rest = Vec::new();
            let read = stream.read_to_end(&mut rest);
            tokio::time::timeout(Duration::from_secs(12), read)
                .await
                .ok()
                .map(|_| started.elapsed())
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let asked = Instant::now();
    let normal = get(addr, "/", Duration::from_secs(5)).await;
    let normal_ms = asked.elapsed().as_secs_f64() * 1000.0;
    let mut closed = Vec::new();
    for task in slow {
        if let Some(at) = task.await.unwrap() {
            closed.push(at.as_secs_f64());
        }
    }
    stop(running, Duration::from_secs(1)).await;
    let latest = closed.iter().copied().fold(0.0, f64::max);
    let served = match normal {
        Some(status) => format!("a normal GET meanwhile: {status} in {normal_ms:.1} ms"),
        None => "a normal GET meanwhile: no answer".to_owned(),
    };
    if closed.is_empty() {
        format!("0 of {SLOW} closed within 12 s (each holds a connection and a task); {served}")
    } else {
        format!(
            "{} of {SLOW} closed, the last after {latest:.1} s; {served}",
            closed.len()
        )
    }
}

/// 10,000 HTTP/2 streams opened and cancelled at once on one connection: what the server
/// answers, how many handlers ran, this process's CPU time meanwhile (burst writing
/// included), and whether the server serves a new client after.
async fn rapid_reset(which: &str) -> String {
    const STREAMS: u32 = 10_000;
    let hits = Arc::new(Hits::default());
    let (addr, running) = start(which, hits.clone()).await;
    let cpu = cpu_ms(std::process::id());
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.split();
    let mut answer = Vec::new();
    let write = async {
        let _ = writer.write_all(&rapid_reset_burst(STREAMS)).await;
    };
    let read = async {
        let _ =
            tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut answer)).await;
    };
    tokio::join!(write, read);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_ms(std::process::id()) - cpu;
    let handled = hits.0.load(Ordering::Relaxed);
    let after = get(addr, "/", Duration::from_secs(5)).await;
    stop(running, Duration::from_secs(1)).await;
    let ended = match goaway_code(&answer) {
        Some(ENHANCE_YOUR_CALM) => "GOAWAY ENHANCE_YOUR_CALM".to_owned(),
        Some(code) => format!("GOAWAY code {code}"),
        None if elapsed >= 10.0 => "connection still open after 10 s".to_owned(),
        None => "closed without GOAWAY".to_owned(),
    };
    format!(
        "{ended} after {:.0} ms; handlers run: {handled} of {STREAMS}; CPU {}; a new client after: {}",
        elapsed * 1000.0,
        cpu_text(cpu),
        after.map_or("no answer".to_owned(), |s| s.to_string())
    )
}

/// 8 requests of 1 s in flight and one that never ends, then a graceful shutdown with a 5 s
/// deadline (axum's has none): which answers arrive, whether a new connection is refused,
/// and when the shutdown returns.
async fn drain(which: &str) -> String {
    let (addr, running) = start(which, Arc::default()).await;
    let in_flight: Vec<_> = (0..8)
        .map(|_| tokio::spawn(get(addr, "/wait/1000", Duration::from_secs(20))))
        .collect();
    let hang = tokio::spawn(get(addr, "/hang", Duration::from_secs(20)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = tokio::spawn(stop(running, Duration::from_secs(5)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = TcpStream::connect(addr).await.is_err();
    let mut answered = 0;
    for request in in_flight {
        if request.await.unwrap() == Some(200) {
            answered += 1;
        }
    }
    let stopped = stopping.await.unwrap();
    let hang = if hang.is_finished() {
        "the endless request was cut"
    } else {
        "the endless request still open"
    };
    format!(
        "{answered} of 8 in-flight requests answered; new connections {}; {stopped}; {hang}",
        if refused { "refused" } else { "accepted" }
    )
}

/// Whether this process is the descriptor-exhaustion child.
pub(crate) fn is_fd_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// The child: one server (which one: the environment), its port on stdout; stops when stdin
/// closes.
pub(crate) fn fd_child() {
    let which = std::env::var(CHILD_ENV).unwrap_or_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let (addr, running) = rt.block_on(start(&which, Arc::default()));
    println!("PORT {}", addr.port());
    std::io::stdout().flush().unwrap();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::stdin().lock().lines().count();
        let _ = done_tx.send(());
    });
    rt.block_on(async {
        let _ = done_rx.await;
        drop(running);
    });
}

/// The server alone in a child process with 64 descriptors, flooded with 120 connections:
/// its CPU time over 3 s of exhaustion, and how long until a new client is served once the
/// flood is gone.
fn fd_exhaustion(which: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    let mut child = program("prlimit", "util-linux")
        .args(["--nofile=64:64", "--"])
        .arg(exe)
        .env(CHILD_ENV, which)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().trim_start_matches("PORT ").parse().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // 120: more than the 64 descriptors, fewer than either listener's backlog (axum's: 128).
    let flood: Vec<_> = (0..120)
        .filter_map(|_| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let cpu = cpu_ms(child.id());
    std::thread::sleep(Duration::from_secs(3));
    let cpu = cpu_ms(child.id()) - cpu;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let during = rt.block_on(get(addr, "/", Duration::from_secs(1)));
    drop(flood);
    let freed = Instant::now();
    let mut recovered = None;
    while freed.elapsed() < Duration::from_secs(10) {
        if rt.block_on(get(addr, "/", Duration::from_millis(500))) == Some(200) {
            recovered = Some(freed.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let alive = child.try_wait().ok().flatten().is_none();
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
    format!(
        "CPU over 3 s of exhaustion: {}; a new client during it: {}; after the flood closed, served in {}; process {}",
        cpu_text(cpu),
        during.map_or("no answer".to_owned(), |s| s.to_string()),
        recovered.map_or("more than 10 s".to_owned(), |d| format!(
            "{:.0} ms",
            d.as_secs_f64() * 1000.0
        )),
        if alive { "alive" } else { "dead" }
    )
}

/// The table, as a markdown section.
pub(crate) fn table(rt: &tokio::runtime::Runtime) -> String {
    let mut rows = Vec::new();
    for which in [BEAMLINE, AXUM] {
        println!("http behaviour: {which}");
        let slow = rt.block_on(slowloris(which));
        let reset = rt.block_on(rapid_reset(which));
        let fds = fd_exhaustion(which);
        let drained = rt.block_on(drain(which));
        rows.push((which, slow, reset, fds, drained));
    }
    let mut md = String::from(
        "### http: behaviour under attack and at shutdown\n\n\
         Measured by `benches/http.rs` on both servers with their defaults (beamline-http: \
         header read timeout 10 s, rapid-reset bound 20, accept back-off 100 ms, drain \
         deadline as given; axum::serve: hyper's defaults, 1 s sleep on accept errors, \
         graceful shutdown without a deadline). Nothing here is asserted.\n\n\
         | situation | server | what happened |\n|---|---|---|\n",
    );
    let situations = [
        "slowloris: 50 connections send half a head and go silent",
        "HTTP/2 rapid reset: 10,000 streams opened and cancelled at once",
        "descriptor exhaustion: RLIMIT_NOFILE 64, 120 connections",
        "drain: 8 requests of 1 s in flight, 1 endless, deadline 5 s",
    ];
    for (i, situation) in situations.iter().enumerate() {
        for (which, slow, reset, fds, drained) in &rows {
            let what = [slow, reset, fds, drained][i];
            md.push_str(&format!("| {situation} | {which} | {what} |\n"));
        }
    }
    md
}
