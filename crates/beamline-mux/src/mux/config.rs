use std::time::Duration;

/// How replies find their requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::exhaustive_enums)] // closed: replies match by id or by order
pub enum Mode {
    /// Every request carries an id (a *tag*) in `0..=max_tag`; replies carry it back and may
    /// arrive in any order.
    Ids {
        /// The largest id the protocol can carry.
        max_tag: u32,
        /// Whether the protocol can tell the peer that a request was abandoned: if so,
        /// abandoning a request that was handed out yields a [`Transmit::Cancel`](crate::Transmit::Cancel).
        cancel: bool,
    },
    /// Replies come back in request order (Redis, memcached, HTTP/1.1 pipelining).
    Fifo,
}

/// Limits of a [`Mux`](crate::Mux).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuxConfig {
    pub(crate) mode: Mode,
    pub(crate) max_in_flight: usize,
    pub(crate) max_abandoned: usize,
    pub(crate) quarantine: Duration,
    pub(crate) abandon_timeout: Duration,
}

/// Default bound on live requests.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;
/// Default bound on abandoned requests still waiting for their late answers.
pub const DEFAULT_MAX_ABANDONED: usize = 4096;
/// Default age limit of a quarantined id.
pub const DEFAULT_QUARANTINE: Duration = Duration::from_secs(60);
/// Default abandon timeout of FIFO mode (the client driver uses twice its request timeout
/// instead, when it has one).
pub const DEFAULT_ABANDON_TIMEOUT: Duration = Duration::from_secs(30);

impl MuxConfig {
    /// Id mode with `u32` ids and cancel messages, and the default limits.
    pub fn ids() -> Self {
        Self::with_mode(Mode::Ids {
            max_tag: u32::MAX,
            cancel: true,
        })
    }

    /// FIFO mode with the default limits.
    pub fn fifo() -> Self {
        Self::with_mode(Mode::Fifo)
    }

    /// `mode` with the default limits: 256 live requests, 4096 abandoned ones, a 60 s
    /// quarantine (id mode), a 30 s abandon timeout (FIFO mode).
    pub fn with_mode(mode: Mode) -> Self {
        MuxConfig {
            mode,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_abandoned: DEFAULT_MAX_ABANDONED,
            quarantine: DEFAULT_QUARANTINE,
            abandon_timeout: DEFAULT_ABANDON_TIMEOUT,
        }
    }

    /// At most `n` live requests (queued or written, not yet answered): the bound that
    /// [`AdmitError::Full`](crate::AdmitError::Full) enforces.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }

    /// At most `n` abandoned requests (quarantined ids, or FIFO replies still to be
    /// discarded) before new requests are [`Blocked`](crate::AdmitError::Blocked) until
    /// late answers arrive or quarantines age out. Live requests can still be abandoned past
    /// it, so the table never holds more than `max_abandoned + max_in_flight` abandoned
    /// entries. Why: a peer that stops answering must not make the table grow without limit
    /// while callers time out.
    pub fn max_abandoned(mut self, n: usize) -> Self {
        self.max_abandoned = n;
        self
    }

    /// How long an abandoned id stays quarantined waiting for its late answer (id mode).
    /// After that the id may be reused; the allocator still skips it until it has gone
    /// round the whole id space, so a very late answer is misrouted only if it arrives
    /// after both.
    pub fn quarantine(mut self, age: Duration) -> Self {
        self.quarantine = age;
        self
    }

    /// FIFO mode: how long an abandoned request (its caller timed out or gave up after it
    /// was written) may wait for its reply. Replies come in order, so every later reply
    /// queues behind the missing one: past this age the connection is wedged, and
    /// [`handle_timeout`](crate::Mux::handle_timeout) reports [`Fired::Wedged`](crate::Fired::Wedged)
    /// so that the driver fails it (every request on it ends not sent or maybe delivered)
    /// instead of letting every later call time out behind it. Counted from the moment the
    /// request was abandoned. Ignored in id mode, where an unanswered id only ages out of
    /// quarantine ([`quarantine`](Self::quarantine)). Non-zero.
    pub fn abandon_timeout(mut self, age: Duration) -> Self {
        self.abandon_timeout = age;
        self
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Checks the limits against each other.
    ///
    /// # Errors
    /// [`ConfigError::ZeroInFlight`] when `max_in_flight` is 0,
    /// [`ConfigError::ZeroAbandonTimeout`] when the abandon timeout is 0, and
    /// [`ConfigError::IdSpaceTooSmall`] when the id space cannot hold `max_in_flight`
    /// requests at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_in_flight == 0 {
            return Err(ConfigError::ZeroInFlight);
        }
        if self.abandon_timeout.is_zero() {
            return Err(ConfigError::ZeroAbandonTimeout);
        }
        if let Mode::Ids { max_tag, .. } = self.mode
            && self.max_in_flight as u64 > u64::from(max_tag) + 1
        {
            return Err(ConfigError::IdSpaceTooSmall {
                max_in_flight: self.max_in_flight,
                ids: u64::from(max_tag) + 1,
            });
        }
        Ok(())
    }
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_in_flight` is 0: no request could ever be sent.
    #[error("max_in_flight must be at least 1")]
    ZeroInFlight,
    /// The abandon timeout is 0: every abandoned FIFO request would fail its connection at
    /// once.
    #[error("the abandon timeout must be longer than zero")]
    ZeroAbandonTimeout,
    /// The protocol's ids cannot number `max_in_flight` requests at once.
    #[error("max_in_flight {max_in_flight} exceeds the protocol's {ids} ids")]
    IdSpaceTooSmall {
        /// The bound asked for.
        max_in_flight: usize,
        /// How many ids the protocol has.
        ids: u64,
    },
    /// `max_in_flight` is above the largest bound the client driver accepts.
    #[error("max_in_flight {max_in_flight} exceeds the limit of {limit}")]
    InFlightTooLarge {
        /// The bound asked for.
        max_in_flight: usize,
        /// The largest bound allowed.
        limit: usize,
    },
}
