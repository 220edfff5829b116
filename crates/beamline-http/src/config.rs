//! [`Http`]: the HTTP settings — what a request may take and hold — and how they become
//! hyper's connection builder.

use std::time::Duration;

use hyper_util::server::conn::auto;

use crate::error::ServeError;
use crate::exec::LocalExec;

/// The default [`header_read_timeout`](Http::header_read_timeout).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The default [`keep_alive_timeout`](Http::keep_alive_timeout): shorter than the server's
/// default read timeout (60 s), so an idle connection is closed gracefully (an HTTP/2
/// `GOAWAY`) before the read timeout would cut it.
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(30);
/// The default [`max_header_size`](Http::max_header_size): 32 KiB.
pub const DEFAULT_MAX_HEADER_SIZE: usize = 32 * 1024;
/// The smallest [`max_header_size`](Http::max_header_size): 8 KiB, hyper's smallest HTTP/1
/// read buffer.
pub const MIN_MAX_HEADER_SIZE: usize = 8 * 1024;
/// The default [`max_concurrent_streams`](Http::max_concurrent_streams).
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 100;
/// The default [`max_pending_accept_reset_streams`](Http::max_pending_accept_reset_streams).
pub const DEFAULT_MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;
/// The default [`max_local_error_reset_streams`](Http::max_local_error_reset_streams).
pub const DEFAULT_MAX_LOCAL_ERROR_RESET_STREAMS: usize = 1024;

/// The HTTP settings of a server; [`serve`](Self::serve) starts it on a
/// [`beamline_server::Server`], whose own limits (connections, per-IP cap, timeouts, drain)
/// apply to every HTTP connection.
///
/// | setting | default | against |
/// |---|---|---|
/// | [`header_read_timeout`](Self::header_read_timeout) | 10 s | a slowloris on headers; a connection that never sends a request |
/// | [`keep_alive_timeout`](Self::keep_alive_timeout) | 30 s | idle kept-alive connections |
/// | [`max_header_size`](Self::max_header_size) | 32 KiB | huge heads (HTTP/1 `431`, HTTP/2 header list) |
/// | [`max_concurrent_streams`](Self::max_concurrent_streams) | 100 | one HTTP/2 connection opening thousands of streams |
/// | [`max_pending_accept_reset_streams`](Self::max_pending_accept_reset_streams) | 20 | the HTTP/2 rapid-reset attack (CVE-2023-44487) |
/// | [`max_local_error_reset_streams`](Self::max_local_error_reset_streams) | 1024 | peers that make the server reset streams in a loop |
///
/// # Examples
/// ```no_run
/// use std::time::Duration;
/// use beamline_http::Http;
/// use beamline_server::Server;
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
/// let server = Http::new()
///     .header_read_timeout(Duration::from_secs(5))
///     .serve(Server::new().bind("127.0.0.1:8080".parse()?), app)?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Http {
    header_read_timeout: Duration,
    keep_alive_timeout: Option<Duration>,
    max_header_size: usize,
    max_concurrent_streams: u32,
    max_pending_accept_reset_streams: usize,
    max_local_error_reset_streams: usize,
}

impl Default for Http {
    fn default() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            keep_alive_timeout: Some(DEFAULT_KEEP_ALIVE_TIMEOUT),
            max_header_size: DEFAULT_MAX_HEADER_SIZE,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            max_pending_accept_reset_streams: DEFAULT_MAX_PENDING_ACCEPT_RESET_STREAMS,
            max_local_error_reset_streams: DEFAULT_MAX_LOCAL_ERROR_RESET_STREAMS,
        }
    }
}

impl Http {
    /// The default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a request head may take to arrive: from the connection's start for its first
    /// request (so a connection that sends nothing holds nothing for long), and from the first
    /// byte of each later one. A head still incomplete then closes the connection (counted in
    /// [`HttpStats::header_timeouts`](crate::HttpStats::header_timeouts)); requests of other
    /// connections are not touched. Applies to HTTP/2 as well (its first stream). Default 10 s.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// How long a connection may stay with no request in flight and nothing received before
    /// it is closed gracefully (HTTP/1: closed; HTTP/2: `GOAWAY`), counted in
    /// [`HttpStats::idle_closes`](crate::HttpStats::idle_closes). `None`: kept until the
    /// server's read timeout. Default 30 s.
    pub fn keep_alive_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.keep_alive_timeout = timeout;
        self
    }

    /// The largest request head (request line and headers; HTTP/2: the decoded header list)
    /// in bytes, at least [`MIN_MAX_HEADER_SIZE`] (8 KiB). An HTTP/1 head over it is answered
    /// `431 Request Header Fields Too Large` and the connection closed (it is also the most
    /// an HTTP/1 connection buffers at once); an HTTP/2 client is told the limit in
    /// `SETTINGS_MAX_HEADER_LIST_SIZE`, and a header list over it is refused. Default 32 KiB.
    pub fn max_header_size(mut self, bytes: usize) -> Self {
        self.max_header_size = bytes;
        self
    }

    /// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`: how many requests one HTTP/2 connection may
    /// have open at once. Default 100.
    pub fn max_concurrent_streams(mut self, max: u32) -> Self {
        self.max_concurrent_streams = max;
        self
    }

    /// The rapid-reset bound: how many HTTP/2 streams the peer may reset before the server
    /// accepted them; one more and the connection ends with `GOAWAY` (`ENHANCE_YOUR_CALM`),
    /// counted in [`HttpStats::protocol_errors`](crate::HttpStats::protocol_errors). Default 20.
    pub fn max_pending_accept_reset_streams(mut self, max: usize) -> Self {
        self.max_pending_accept_reset_streams = max;
        self
    }

    /// How many HTTP/2 streams the server may reset because of the peer's errors before it
    /// ends the connection with `GOAWAY` (`ENHANCE_YOUR_CALM`). Default 1024.
    pub fn max_local_error_reset_streams(mut self, max: usize) -> Self {
        self.max_local_error_reset_streams = max;
        self
    }

    pub(crate) fn header_timeout(&self) -> Duration {
        self.header_read_timeout
    }

    pub(crate) fn keep_alive(&self) -> Option<Duration> {
        self.keep_alive_timeout
    }

    pub(crate) fn validate(&self) -> Result<(), ServeError> {
        let invalid = |setting, reason| Err(ServeError::Invalid { setting, reason });
        if self.header_read_timeout.is_zero() {
            return invalid("header_read_timeout", "must be more than zero");
        }
        if self.keep_alive_timeout.is_some_and(|t| t.is_zero()) {
            return invalid(
                "keep_alive_timeout",
                "must be more than zero (None disables it)",
            );
        }
        if self.max_header_size < MIN_MAX_HEADER_SIZE {
            return invalid(
                "max_header_size",
                "must be at least 8 KiB (hyper's smallest HTTP/1 read buffer)",
            );
        }
        if u32::try_from(self.max_header_size).is_err() {
            return invalid("max_header_size", "must fit in 32 bits (HTTP/2 settings)");
        }
        if self.max_concurrent_streams == 0 {
            return invalid("max_concurrent_streams", "must be at least 1");
        }
        Ok(())
    }

    /// hyper-util's auto (HTTP/1.1 + HTTP/2) builder with these settings, running HTTP/2
    /// streams on `exec` (inside the connection's process). hyper's own HTTP/1 header timer
    /// is off: the connection's driver keeps the header and keep-alive timers for both
    /// protocols.
    pub(crate) fn hyper_builder(&self, exec: LocalExec) -> auto::Builder<LocalExec> {
        let mut builder = auto::Builder::new(exec);
        builder
            .http1()
            .keep_alive(true)
            .header_read_timeout(None)
            // hyper-util's builder bounds an HTTP/1 head by the read buffer (431 beyond it)
            .max_buf_size(self.max_header_size);
        builder
            .http2()
            .max_concurrent_streams(self.max_concurrent_streams)
            .max_pending_accept_reset_streams(self.max_pending_accept_reset_streams)
            .max_local_error_reset_streams(self.max_local_error_reset_streams)
            // validate() checked that it fits
            .max_header_list_size(u32::try_from(self.max_header_size).unwrap_or(u32::MAX))
            // HTTP/2 WebSockets (RFC 8441), as axum::serve enables
            .enable_connect_protocol();
        builder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let h = Http::new();
        assert_eq!(h.header_read_timeout, Duration::from_secs(10));
        assert_eq!(h.keep_alive_timeout, Some(Duration::from_secs(30)));
        assert_eq!(h.max_header_size, 32 * 1024);
        assert_eq!(h.max_concurrent_streams, 100);
        assert_eq!(h.max_pending_accept_reset_streams, 20);
        assert_eq!(h.max_local_error_reset_streams, 1024);
        assert!(h.validate().is_ok());
    }

    #[test]
    fn invalid_settings_name_themselves() {
        let named = |h: Http| match h.validate() {
            Err(ServeError::Invalid { setting, .. }) => setting,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            named(Http::new().header_read_timeout(Duration::ZERO)),
            "header_read_timeout"
        );
        assert_eq!(
            named(Http::new().keep_alive_timeout(Some(Duration::ZERO))),
            "keep_alive_timeout"
        );
        assert_eq!(named(Http::new().max_header_size(0)), "max_header_size");
        assert_eq!(named(Http::new().max_header_size(8191)), "max_header_size");
        assert!(Http::new().max_header_size(8192).validate().is_ok());
        assert_eq!(
            named(Http::new().max_concurrent_streams(0)),
            "max_concurrent_streams"
        );
        assert!(Http::new().keep_alive_timeout(None).validate().is_ok());
    }
}
