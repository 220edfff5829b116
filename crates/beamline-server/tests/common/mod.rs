//! What the integration tests share: echo handlers in both forms, clients, bounded waits,
//! captured logs, and running a test in a child process (with other resource limits).

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beamline_server::{
    Connection, ExitReason, Flow, Handler, HandlerContext, ServerHandle, ServerStats,
};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The callback-form echo.
#[derive(Clone, Debug)]
pub struct Echo;

impl Handler for Echo {
    async fn on_data(
        &mut self,
        data: &mut BytesMut,
        conn: &mut HandlerContext<'_>,
    ) -> Result<Flow, ExitReason> {
        echo_back(data, conn).await
    }
}

/// The body of an echoing `on_data`: send everything back, consume it, continue.
pub async fn echo_back<M: Send + 'static>(
    data: &mut BytesMut,
    conn: &mut HandlerContext<'_, M>,
) -> Result<Flow, ExitReason> {
    conn.send(data).await?;
    data.clear();
    Ok(Flow::Continue)
}

/// The body of an `on_data` that never returns once a message starts with `block` (a
/// callback stuck on something that never comes), and echoes otherwise.
pub async fn echo_unless_blocked<M: Send + 'static>(
    data: &mut BytesMut,
    conn: &mut HandlerContext<'_, M>,
) -> Result<Flow, ExitReason> {
    if data.starts_with(b"block") {
        std::future::pending::<()>().await;
    }
    echo_back(data, conn).await
}

/// Echoes; blocks for ever in the callback on `block`; keeps serving during a drain.
#[derive(Clone, Debug)]
pub struct Blocking;

impl Handler for Blocking {
    async fn on_data(
        &mut self,
        data: &mut BytesMut,
        conn: &mut HandlerContext<'_>,
    ) -> Result<Flow, ExitReason> {
        echo_unless_blocked(data, conn).await
    }

    async fn on_shutdown(&mut self, _conn: &mut HandlerContext<'_>) -> Result<Flow, ExitReason> {
        Ok(Flow::Continue)
    }
}

/// The stream-owning echo (never takes the shutdown signal).
pub async fn echo_fn(mut conn: Connection) -> Result<(), ExitReason> {
    let mut buf = vec![0u8; 4096];
    loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        conn.write_all(&buf[..n]).await?;
    }
}

pub fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

pub fn addr(server: &ServerHandle) -> SocketAddr {
    server.local_addr().unwrap()
}

/// Writes `msg` and reads the same number of bytes back.
pub async fn round_trip(stream: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    stream.write_all(msg).await.unwrap();
    let mut back = vec![0u8; msg.len()];
    stream.read_exact(&mut back).await.unwrap();
    back
}

/// Reads until EOF (or a reset, which also ends the connection), returning what came.
pub async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
}

/// Waits (bounded: 10 s of real time) until `check` holds for the server's stats; yields to
/// the runtime between looks, so it works under a paused clock without moving it.
pub async fn stats_until(
    server: &ServerHandle,
    check: impl Fn(&ServerStats) -> bool,
) -> ServerStats {
    let started = std::time::Instant::now();
    loop {
        let stats = server.stats();
        if check(&stats) {
            return stats;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "stats never reached the expected state: {stats:?}"
        );
        tokio::task::yield_now().await;
    }
}

/// The accounting every idle server satisfies.
pub fn assert_balanced(s: &ServerStats) {
    assert_eq!(
        s.accepted,
        s.rejected + s.active + s.closed + s.errored + s.panicked + s.killed + s.handshake_failures,
        "{s:?}"
    );
}

/// A log capture: the `tracing` output of the current thread, as text.
///
/// One global subscriber (installed once per test binary) writes every event into the buffer
/// of the thread that emitted it, if that thread is capturing. A global subscriber, not a
/// thread-local one: tracing caches per-callsite interest, and thread-local subscribers in
/// tests running in parallel race on that cache and lose events.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<Logs>> = const { std::cell::RefCell::new(None) };
}

/// Stops capturing on drop.
pub struct Capturing(());

impl Drop for Capturing {
    fn drop(&mut self) {
        CAPTURE.with(|c| c.borrow_mut().take());
    }
}

/// Where the global subscriber writes: the capturing thread's buffer, or nowhere.
struct ThreadWriter;

impl Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(logs) = &*c.borrow() {
                logs.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Captures this thread's events at `debug` and above until the guard drops (run the test
    /// on a current-thread runtime so every task's events are this thread's).
    pub fn capture(&self) -> Capturing {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_ansi(false)
                .with_writer(|| ThreadWriter)
                .finish();
            tracing::subscriber::set_global_default(subscriber).unwrap();
        });
        CAPTURE.with(|c| *c.borrow_mut() = Some(self.clone()));
        Capturing(())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The soft limit on open files of this process.
pub fn fd_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// The environment variable that tells a re-executed test binary which test it runs as a
/// child.
pub const CHILD_ENV: &str = "BEAMLINE_SERVER_TEST_CHILD";

/// True in the child that `run_in_child` started for `test`.
pub fn is_child(test: &str) -> bool {
    std::env::var(CHILD_ENV).is_ok_and(|v| v == test)
}

/// A command that re-runs `test` of this test binary in a child process whose soft
/// `RLIMIT_NOFILE` is `nofile`, through `sh -c 'ulimit -S -n N && exec ...'` (no unsafe code
/// needed to change a limit).
pub fn child_command(test: &str, nofile: u64) -> Command {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -S -n {nofile} && exec \"$0\" \"$@\""))
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test);
    cmd
}

/// Runs `test`'s `body` alone in a child process (see [`child_command`]), on a current-thread
/// runtime: for tests that count this process's descriptors or tasks, which tests running
/// beside them would disturb.
pub fn alone_in_child<F: std::future::Future<Output = ()>>(test: &str, body: impl FnOnce() -> F) {
    if !is_child(test) {
        run_in_child(test, fd_limit());
        return;
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(body());
}

/// Runs `test` in a child process (see [`child_command`]) and fails with its output if it
/// fails.
pub fn run_in_child(test: &str, nofile: u64) {
    let output = child_command(test, nofile).output().unwrap();
    assert!(
        output.status.success(),
        "the child run of {test} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A listening socket on `addr` with `SO_REUSEADDR`, as servers bind: a client socket of a
/// test running beside this one may hold a just-freed port as its ephemeral port, which
/// only a listener without `SO_REUSEADDR` trips over.
pub fn listen_reusable(addr: SocketAddr) -> std::io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(8)?;
    Ok(socket)
}
