//! `http`: an axum app served by beamline-http — HTTP/1.1 and HTTP/2 (h2c, and ALPN h2 over
//! TLS), every connection a supervised process under the server's limits, a graceful drain.
//!
//! Routes:
//!
//! | route | what |
//! |---|---|
//! | `GET /` | `hello from beamline-http` |
//! | `GET /conn` | the connection as the server sees it: id, peer, transport, ALPN, HTTP version |
//! | `POST /echo` | the request body back (at most 1 MiB) |
//! | `GET /slow/{secs}` | answers after that many seconds (at most 60): try a drain with a request in flight, or see that a slow handler is not read-timed-out |
//! | `GET /stream/{lines}` | that many lines, one every 100 ms (at most 600): a long response |
//! | `GET /panic` | a handler that panics: answered `500`, counted, nothing else touched |
//!
//! The limits ([`limits`]) are the ones a public server would set: at most 10,000
//! connections (beyond them new clients wait in the backlog), 256 per client IP, TLS
//! handshakes within 5 s, a request head within 10 s, idle connections closed after 30 s,
//! HTTP/2 at most 100 streams per connection.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path};
use axum::http::{Request, Version};
use axum::routing::{get, post};
use beamline::http::{Http, HttpConn, HttpHandle, ServeError};
use beamline::server::{Overload, Server};

/// Where the example listens unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// The app: a plain axum `Router`, nothing beamline-specific in it but the `HttpConn`
/// extension `/conn` reads.
pub fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "hello from beamline-http\n" }))
        .route("/conn", get(conn))
        .route("/echo", post(|body: Bytes| async move { body }))
        .route("/slow/{secs}", get(slow))
        .route("/stream/{lines}", get(stream))
        .route("/panic", get(panics))
        .layer(DefaultBodyLimit::max(1 << 20))
}

async fn conn(req: Request<Body>) -> String {
    let version = req.version();
    let Some(conn) = req.extensions().get::<HttpConn>() else {
        return "not served by beamline-http\n".to_owned();
    };
    let info = conn.info();
    let alpn = info.alpn().map_or("none".to_owned(), |p| {
        String::from_utf8_lossy(p).into_owned()
    });
    let version = match version {
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_11 => "HTTP/1.1",
        _ => "HTTP/1.0",
    };
    format!(
        "connection {} from {} over {} (ALPN {alpn}), {version}\n",
        conn.id(),
        conn.peer(),
        info.transport()
    )
}

async fn slow(Path(secs): Path<u64>) -> String {
    let secs = secs.min(60);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    format!("answered after {secs} s\n")
}

async fn stream(Path(lines): Path<u32>) -> Body {
    let lines = lines.min(600);
    let ticks = futures::stream::unfold(0, move |i| async move {
        if i == lines {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        Some((
            Ok::<_, std::convert::Infallible>(format!("line {i}\n")),
            i + 1,
        ))
    });
    Body::from_stream(ticks)
}

async fn panics() -> &'static str {
    panic!("the /panic route panics on purpose")
}

/// The server's and HTTP's limits the example runs with.
pub fn limits(server: Server) -> (Server, Http) {
    let server = server
        .max_connections(10_000)
        .overload(Overload::Pause)
        .max_connections_per_ip(256)
        .handshake_timeout(Duration::from_secs(5))
        .read_timeout(Some(Duration::from_secs(60)))
        .send_timeout(Some(Duration::from_secs(30)));
    let http = Http::new()
        .header_read_timeout(Duration::from_secs(10))
        .keep_alive_timeout(Some(Duration::from_secs(30)))
        .max_concurrent_streams(100);
    (server, http)
}

/// Starts the app on `addr`, over TLS with `tls` (give it ALPN `h2` and `http/1.1`).
///
/// # Errors
/// The server did not start (the address is taken, ...).
pub fn start(
    addr: std::net::SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<HttpHandle, ServeError> {
    let server = match tls {
        Some(config) => Server::new().bind_tls(addr, config),
        None => Server::new().bind(addr),
    };
    let (server, http) = limits(server);
    http.serve(server, app())
}
