//! [`Http::serve`], [`serve`] and what they return: [`HttpHandle`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use beamline_server::{DrainReport, Server, ServerHandle, ShutdownError};
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use tower_service::Service;

/// What [`Http::serve`] serves: a `tower::Service` of `Request<Incoming>` that can be cloned
/// and sent to each connection's process, whose errors and response bodies hyper can take.
/// Implemented for every such service — an axum `Router` is one; never implement it by hand.
pub trait HttpService:
    Service<
        Request<Incoming>,
        Response = Response<Self::ResBody>,
        Error: Into<BoxError>,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
    /// The response body.
    type ResBody: Body<Data: Send, Error: Into<BoxError>> + Send + 'static;
}

impl<S, B> HttpService for S
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type ResBody = B;
}

use crate::config::Http;
use crate::driver::{Shared, serve_connection};
use crate::error::ServeError;
use crate::service::BoxError;
use crate::stats::{HttpStats, Stats};

impl Http {
    /// Starts `server` serving HTTP/1.1 and HTTP/2 with `service`: every connection is the
    /// server's supervised process, under its limits, and runs hyper (and its HTTP/2
    /// streams, and an upgraded stream's lifetime) inside it. `service` is cloned for each
    /// connection and each request; an axum `Router` works as it is.
    ///
    /// # Errors
    /// [`ServeError::Invalid`] for an HTTP setting, [`ServeError::Server`] when the server
    /// does not start. Nothing is left running.
    pub fn serve<S: HttpService>(
        self,
        server: Server,
        service: S,
    ) -> Result<HttpHandle, ServeError> {
        self.validate()?;
        let stats = Arc::new(Stats::default());
        let shared = Arc::new(Shared {
            service,
            http: self,
            stats: stats.clone(),
        });
        let server = server.serve_fn(move |conn| serve_connection(conn, shared.clone()))?;
        Ok(HttpHandle { server, stats })
    }
}

/// Starts `server` serving `service` with the default [`Http`] settings: see
/// [`Http::serve`].
///
/// # Errors
/// As [`Http::serve`].
pub fn serve<S: HttpService>(server: Server, service: S) -> Result<HttpHandle, ServeError> {
    Http::new().serve(server, service)
}

/// A running HTTP server: the [`ServerHandle`] of the server underneath (addresses, its
/// stats, suspend / resume, the drain) and the HTTP counters.
///
/// Dropping it drops the server handle: every connection is killed, upgraded streams
/// included, and nothing outlives it.
#[derive(Debug)]
pub struct HttpHandle {
    server: ServerHandle,
    stats: Arc<Stats>,
}

impl HttpHandle {
    /// The server underneath: [`stats`](ServerHandle::stats) of its connections,
    /// [`suspend`](ServerHandle::suspend) / [`resume`](ServerHandle::resume),
    /// [`local_addrs`](ServerHandle::local_addrs).
    pub fn server(&self) -> &ServerHandle {
        &self.server
    }

    /// The first TCP or TLS address the server listens on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.server.local_addr()
    }

    /// The HTTP counters.
    pub fn stats(&self) -> HttpStats {
        self.stats.snapshot()
    }

    /// The two-phase drain: stop accepting; ask every connection to finish (an HTTP/1
    /// connection answers the request in flight and closes, an HTTP/2 one sends `GOAWAY` and
    /// finishes its open streams, an upgraded stream sees its
    /// [`HttpConn::shutdown_signal`](crate::HttpConn::shutdown_signal)); at `drain_timeout`,
    /// kill what is still open. The report counts both.
    ///
    /// # Errors
    /// As [`ServerHandle::shutdown`].
    pub async fn shutdown(&self, drain_timeout: Duration) -> Result<DrainReport, ShutdownError> {
        self.server.shutdown(drain_timeout).await
    }
}
