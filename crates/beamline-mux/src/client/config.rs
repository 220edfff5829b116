use std::sync::Arc;
use std::time::Duration;

use crate::frame::DEFAULT_MAX_FRAME_LEN;
use crate::mux::{DEFAULT_ABANDON_TIMEOUT, Mode, MuxConfig};

/// Settings of a [`Client`](crate::Client) connection.
///
/// # Examples
///
/// ```
/// use beamline_mux::ClientConfig;
/// use std::time::Duration;
///
/// let config = ClientConfig::new()
///     .peer("kv-1 127.0.0.1:7000")
///     .max_in_flight(128)
///     .timeout(Duration::from_secs(2));
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub(crate) peer: Arc<str>,
    /// The mux's limits; its mode is the protocol's, set when the client is built.
    pub(crate) limits: MuxConfig,
    pub(crate) timeout: Option<Duration>,
    /// Set explicitly; otherwise derived from `timeout` (see [`Self::abandon_timeout`]).
    pub(crate) abandon_timeout: Option<Duration>,
    pub(crate) max_frame_len: usize,
}

impl ClientConfig {
    /// The defaults: 256 requests in flight, 4096 abandoned ones, a 60 s quarantine (ids),
    /// an abandon timeout of twice the request timeout or 30 s (FIFO), no default timeout,
    /// 16 MiB frames, peer label `"mux"`.
    pub fn new() -> Self {
        ClientConfig {
            peer: Arc::from("mux"),
            limits: MuxConfig::ids(),
            timeout: None,
            abandon_timeout: None,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
        }
    }

    /// A label for the connection (an address, a node name) that every error carries, so a
    /// failure says which peer it was about.
    pub fn peer(mut self, label: impl Into<Arc<str>>) -> Self {
        self.peer = label.into();
        self
    }

    /// At most `n` requests in flight on this connection; callers beyond wait their turn
    /// (FIFO), and `try_` calls fail with [`MuxError::Busy`](crate::MuxError::Busy).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.limits = self.limits.max_in_flight(n);
        self
    }

    /// The bound on abandoned requests still awaiting late answers (see
    /// [`MuxConfig::max_abandoned`]).
    pub fn max_abandoned(mut self, n: usize) -> Self {
        self.limits = self.limits.max_abandoned(n);
        self
    }

    /// How long the id of an abandoned request stays quarantined (see
    /// [`MuxConfig::quarantine`]).
    pub fn quarantine(mut self, age: Duration) -> Self {
        self.limits = self.limits.quarantine(age);
        self
    }

    /// FIFO mode ([`Client::fifo`](crate::Client::fifo)): how long a request abandoned
    /// after it was written (its caller timed out or gave up) may go unanswered before the
    /// connection counts as wedged and is failed (see [`MuxConfig::abandon_timeout`]).
    /// Default: twice [`timeout`](Self::timeout) when one is set, else 30 s. Ignored by the
    /// id-carrying protocols. Non-zero.
    pub fn abandon_timeout(mut self, age: Duration) -> Self {
        self.abandon_timeout = Some(age);
        self
    }

    /// The deadline of every [`call`](crate::Client::call) without its own. It covers the
    /// whole call: waiting for an in-flight slot, being written, and the answer.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The wire format's maximum payload length, both ways (default 16 MiB). Ignored by user
    /// codecs, which enforce their own.
    pub fn max_frame_len(mut self, len: usize) -> Self {
        self.max_frame_len = len;
        self
    }

    pub(crate) fn mux_config(&self, mode: Mode) -> MuxConfig {
        MuxConfig {
            mode,
            abandon_timeout: self.effective_abandon_timeout(),
            ..self.limits.clone()
        }
    }

    /// The abandon timeout in force: the one set, else twice the request timeout, else
    /// [`DEFAULT_ABANDON_TIMEOUT`].
    pub(crate) fn effective_abandon_timeout(&self) -> Duration {
        self.abandon_timeout
            .or_else(|| self.timeout.and_then(|t| t.checked_mul(2)))
            .unwrap_or(DEFAULT_ABANDON_TIMEOUT)
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self::new()
    }
}
