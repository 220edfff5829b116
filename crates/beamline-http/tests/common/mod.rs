//! What the HTTP tests share: the app (an axum Router), in-process HTTP/1 and HTTP/2
//! clients on the paused clock, raw sockets, and real peers (curl, h2load, wrk) that fail
//! loudly when missing.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use beamline_http::HttpConn;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// What the app's handlers share with the test.
#[derive(Default)]
pub struct AppState {
    /// Requests that reached a handler.
    pub handled: AtomicU64,
    /// Requests waiting in `/wait` (started, not released).
    pub waiting: AtomicU64,
    /// Releases every `/wait` request.
    pub release: Notify,
}

/// The test app: `/` says hello, `/slow/{secs}` answers after that long, `/wait` waits for
/// `release`, `/panic` panics, `/echo` echoes a POSTed body, `/conn` names its connection,
/// `/upgrade` switches to an echo protocol after `101`.
pub fn app() -> (Router, Arc<AppState>) {
    let state = Arc::new(AppState::default());
    let router = Router::new()
        .route("/", get(hello))
        .route("/slow/{secs}", get(slow))
        .route("/wait", get(wait))
        .route("/panic", get(panics))
        .route("/echo", post(echo))
        .route("/conn", get(conn_id))
        .route("/upgrade", get(upgrade))
        .with_state(state.clone());
    (router, state)
}

async fn hello(State(s): State<Arc<AppState>>) -> &'static str {
    s.handled.fetch_add(1, Ordering::Relaxed);
    "hello"
}

async fn slow(State(s): State<Arc<AppState>>, Path(secs): Path<u64>) -> String {
    s.handled.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    format!("slept {secs}s")
}

async fn wait(State(s): State<Arc<AppState>>) -> &'static str {
    s.handled.fetch_add(1, Ordering::Relaxed);
    let released = s.release.notified();
    s.waiting.fetch_add(1, Ordering::SeqCst);
    released.await;
    "released"
}

async fn panics() -> &'static str {
    panic!("the handler panicked on purpose")
}

async fn echo(body: Bytes) -> Bytes {
    body
}

async fn conn_id(axum::Extension(conn): axum::Extension<HttpConn>) -> String {
    format!("{} {}", conn.id(), conn.peer())
}

/// `101 Switching Protocols`, then echoes bytes on the upgraded stream until it closes.
async fn upgrade(mut req: Request<Body>) -> Response<Body> {
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut io = TokioIo::new(upgraded);
        let mut buf = [0u8; 1024];
        while let Ok(n) = io.read(&mut buf).await {
            if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "echo")
        .body(Body::empty())
        .unwrap()
}

/// The test app, with no keep-alive timeout and the server's read timeout at
/// `read_timeout`: what ends an idle connection is the read timeout.
pub fn read_timeout_server(read_timeout: Duration) -> beamline_http::HttpHandle {
    let (app, _) = app();
    beamline_http::Http::new()
        .keep_alive_timeout(None)
        .serve(
            beamline_server::Server::new()
                .bind(localhost())
                .read_timeout(Some(read_timeout)),
            app,
        )
        .unwrap()
}

pub fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// The task driving a client connection: it ends when the connection closes.
pub type Driven = tokio::task::JoinHandle<()>;

/// An HTTP/1.1 client connection (hyper's), driven by a task.
pub async fn h1(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    h1_driven(addr).await.0
}

/// An HTTP/1.1 client connection and the task that drives it.
pub async fn h1_driven(
    addr: SocketAddr,
) -> (hyper::client::conn::http1::SendRequest<Full<Bytes>>, Driven) {
    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    let driven = tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    (send, driven)
}

/// An HTTP/2 (prior knowledge) client connection (hyper's), driven by a task.
pub async fn h2(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    h2_driven(addr).await.0
}

/// An HTTP/2 client connection and the task that drives it.
pub async fn h2_driven(
    addr: SocketAddr,
) -> (hyper::client::conn::http2::SendRequest<Full<Bytes>>, Driven) {
    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    let driven = tokio::spawn(async move {
        let _ = conn.await;
    });
    (send, driven)
}

/// A GET request for `path`.
pub fn get_req(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", "localhost")
        .body(Full::default())
        .unwrap()
}

/// The status and body of a response.
pub async fn read(response: Response<Incoming>) -> (StatusCode, String) {
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// GET `path` on a new HTTP/1.1 connection.
pub async fn get1(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let mut send = h1(addr).await;
    read(send.send_request(get_req(path)).await.unwrap()).await
}

/// Reads until the peer closes (or resets); what arrived.
pub async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Waits (on the test's clock) until `check` holds, for at most 10 s of it.
pub async fn until(mut check: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 10 s");
}

/// A command for the real program `program` (Debian package `package`). A missing program
/// is a failure whose message says how to install it, never a skip.
pub fn program(program: &str, package: &str) -> Command {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    assert!(
        found,
        "{program} not found: run `apt-get install -y {package}` \
         (`cargo xtask test` installs it when it can)"
    );
    Command::new(program)
}

/// Runs a blocking command off the runtime's threads and returns its output.
pub async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// curl with a 10 s cap on the whole transfer, silent but for errors.
pub fn curl() -> Command {
    let mut cmd = program("curl", "curl");
    cmd.args(["--silent", "--show-error", "--max-time", "10"]);
    cmd
}
