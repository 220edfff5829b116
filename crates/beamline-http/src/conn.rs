//! [`HttpConn`]: what a request knows about its connection.

use std::sync::Arc;

use beamline_server::{ConnInfo, Endpoint, ProcessId, ShutdownSignal};

/// What a request knows about its connection, in every request's extensions: axum handlers
/// take it as `Extension<HttpConn>`, hyper services with
/// `req.extensions().get::<HttpConn>()`. Cheap to clone (one `Arc`).
///
/// The [`shutdown_signal`](Self::shutdown_signal) is how a long-lived response or an
/// upgraded stream (a WebSocket) learns that the server is draining, to finish before the
/// drain's deadline — when it is killed.
#[derive(Clone, Debug)]
pub struct HttpConn(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    info: ConnInfo,
    shutdown: ShutdownSignal,
}

impl HttpConn {
    pub(crate) fn new(info: ConnInfo, shutdown: ShutdownSignal) -> Self {
        Self(Arc::new(Inner { info, shutdown }))
    }

    /// The connection's id, peer and local addresses, transport, SNI and ALPN.
    pub fn info(&self) -> &ConnInfo {
        &self.0.info
    }

    /// The connection's id: its process id, the `conn_id` of the server's events.
    pub fn id(&self) -> ProcessId {
        self.0.info.id()
    }

    /// The peer's address.
    pub fn peer(&self) -> &Endpoint {
        self.0.info.peer()
    }

    /// Resolves once the server drains (see [`ShutdownSignal`]).
    pub fn shutdown_signal(&self) -> &ShutdownSignal {
        &self.0.shutdown
    }
}
