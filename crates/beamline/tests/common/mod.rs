//! Loopback servers the facade's tests talk to.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use beamline::mux::{ServerConfig, serve_wire};
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A wire-format server on a free loopback port running `handler` for every request on
/// every connection. Aborting the returned task stops accepting (live connections go on).
pub async fn wire_server<H, F>(handler: H) -> (SocketAddr, JoinHandle<()>)
where
    H: Fn(Bytes) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Bytes, Bytes>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (addr, tokio::spawn(serve_on(listener, handler)))
}

/// Serves the wire format on `listener` until aborted.
pub async fn serve_on<H, F>(listener: TcpListener, handler: H)
where
    H: Fn(Bytes) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Bytes, Bytes>> + Send + 'static,
{
    while let Ok((stream, _)) = listener.accept().await {
        stream.set_nodelay(true).unwrap();
        let handler = handler.clone();
        tokio::spawn(serve_wire(stream, &ServerConfig::new(), handler));
    }
}

/// An echo handler.
pub fn echo(request: Bytes) -> std::future::Ready<Result<Bytes, Bytes>> {
    std::future::ready(Ok(request))
}

/// An echo handler that never answers a request saying `hang`.
pub async fn echo_unless_hang(request: Bytes) -> Result<Bytes, Bytes> {
    if request == "hang" {
        std::future::pending::<()>().await;
    }
    Ok(request)
}

/// An echo handler that also records every request in arrival order.
pub fn recording_echo(
    log: &Arc<Mutex<Vec<Bytes>>>,
) -> impl Fn(Bytes) -> std::future::Ready<Result<Bytes, Bytes>> + Clone + Send + Sync + 'static {
    let log = Arc::clone(log);
    move |request: Bytes| {
        log.lock().unwrap().push(request.clone());
        std::future::ready(Ok(request))
    }
}
