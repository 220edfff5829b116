//! HTTP counters: [`HttpStats`] (a snapshot) and the atomics behind it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of an HTTP server's own counters, from
/// [`HttpHandle::stats`](crate::HttpHandle::stats). The connections themselves are counted by
/// the server underneath ([`ServerStats`](beamline_server::ServerStats), from
/// [`HttpHandle::server`](crate::HttpHandle::server)): every HTTP connection is one of its
/// connections.
///
/// Read without a lock: a snapshot taken while requests come and go may be off by those that
/// moved meanwhile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpStats {
    /// Requests handed to the service, HTTP/1 and HTTP/2. Counted in steps of
    /// [`REQUESTS_STEP`](Self::REQUESTS_STEP) while a connection lives and exactly when it
    /// ends, so that busy connections on different cores do not share a counter per request.
    pub requests: u64,
    /// Panics in the service: in its `poll_ready`, `call` or future (the request was answered
    /// `500 Internal Server Error`), or in a response body (the response was cut: an HTTP/1
    /// connection closed, an HTTP/2 stream reset). Nothing else was touched.
    pub panics: u64,
    /// Connections closed because a request head did not arrive within the header read
    /// timeout: a slowloris, or a new connection that sent no request in time.
    pub header_timeouts: u64,
    /// Connections closed gracefully after the keep-alive timeout with no request in flight.
    pub idle_closes: u64,
    /// Connections ended by what the peer sent: a malformed HTTP/1 request (hyper answered
    /// `400` or `431`), or an HTTP/2 protocol error — including a `GOAWAY` for too many
    /// streams reset before they were accepted (the rapid-reset bound).
    pub protocol_errors: u64,
    /// Connections switched to another protocol (`101 Switching Protocols`).
    pub upgrades: u64,
}

impl HttpStats {
    /// How many requests a connection counts before adding them to
    /// [`requests`](Self::requests).
    pub const REQUESTS_STEP: u64 = 64;
}

/// The live counters, shared by every connection of one server.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    requests: AtomicU64,
    panics: AtomicU64,
    header_timeouts: AtomicU64,
    idle_closes: AtomicU64,
    protocol_errors: AtomicU64,
    upgrades: AtomicU64,
}

impl Stats {
    pub(crate) fn requests(&self, n: u64) {
        self.requests.fetch_add(n, Relaxed);
    }

    pub(crate) fn panic(&self) {
        self.panics.fetch_add(1, Relaxed);
    }

    pub(crate) fn header_timeout(&self) {
        self.header_timeouts.fetch_add(1, Relaxed);
    }

    pub(crate) fn idle_close(&self) {
        self.idle_closes.fetch_add(1, Relaxed);
    }

    pub(crate) fn protocol_error(&self) {
        self.protocol_errors.fetch_add(1, Relaxed);
    }

    pub(crate) fn upgrade(&self) {
        self.upgrades.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> HttpStats {
        HttpStats {
            requests: self.requests.load(Relaxed),
            panics: self.panics.load(Relaxed),
            header_timeouts: self.header_timeouts.load(Relaxed),
            idle_closes: self.idle_closes.load(Relaxed),
            protocol_errors: self.protocol_errors.load(Relaxed),
            upgrades: self.upgrades.load(Relaxed),
        }
    }
}
