//! Settings of a reconnecting connection.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::{BackoffConfig, BackoffConfigError};

/// What happens to a request made while there is no live connection.
///
/// There is no default on purpose: choosing between failing at once and waiting is a
/// decision about your callers, so [`ReconnectConfig::new`] takes it as an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OfflinePolicy {
    /// Fail at once with [`ReconnectError::Disconnected`](crate::ReconnectError::Disconnected).
    FailFast,
    /// Wait in a bounded FIFO queue; the queue is sent, in order, once a connection is up.
    Queue {
        /// At most this many requests wait; the next one fails with
        /// [`ReconnectError::QueueFull`](crate::ReconnectError::QueueFull). At least 1.
        max: usize,
        /// A request waits at most this long, then fails with
        /// [`ReconnectError::Timeout`](crate::ReconnectError::Timeout) (never having been
        /// sent). Non-zero.
        deadline: Duration,
    },
}

/// A health check: every `interval` while connected, send the request `ping` makes; a
/// connection that does not answer it with `Ok` within `timeout` is treated as dead
/// (half-open) and replaced.
///
/// The ping is an ordinary request on the connection, so it also counts as progress for
/// [`ReconnectConfig::progress_timeout`].
pub struct HealthCheck<Req> {
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) ping: Arc<dyn Fn() -> Req + Send + Sync>,
}

impl<Req> HealthCheck<Req> {
    /// A check every `interval`, failing after `timeout`, sending what `ping` returns.
    /// Both durations must be non-zero (checked by [`Reconnect::start_with_health_check`](crate::Reconnect::start_with_health_check)).
    pub fn new(
        interval: Duration,
        timeout: Duration,
        ping: impl Fn() -> Req + Send + Sync + 'static,
    ) -> Self {
        Self {
            interval,
            timeout,
            ping: Arc::new(ping),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ReconnectConfigError> {
        if self.interval.is_zero() {
            return Err(ReconnectConfigError::ZeroHealthCheckInterval);
        }
        if self.timeout.is_zero() {
            return Err(ReconnectConfigError::ZeroHealthCheckTimeout);
        }
        Ok(())
    }
}

impl<Req> Clone for HealthCheck<Req> {
    fn clone(&self) -> Self {
        Self {
            interval: self.interval,
            timeout: self.timeout,
            ping: self.ping.clone(),
        }
    }
}

impl<Req> fmt::Debug for HealthCheck<Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthCheck")
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Settings of a [`Reconnect`](crate::Reconnect), validated when it starts.
///
/// ```
/// use std::time::Duration;
/// use beamline_reconnect::{BackoffConfig, OfflinePolicy, ReconnectConfig};
///
/// let config = ReconnectConfig::new(OfflinePolicy::Queue { max: 1_000, deadline: Duration::from_secs(5) })
///     .name("cache 10.0.0.7:6379")
///     .backoff(BackoffConfig::grpc())
///     .stable_period(Duration::from_secs(30))
///     .max_replays(2);
/// # let _ = config;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ReconnectConfig {
    pub(crate) name: Arc<str>,
    pub(crate) backoff: BackoffConfig,
    pub(crate) seed: Option<u64>,
    pub(crate) connect_timeout: Duration,
    pub(crate) stable_period: Duration,
    pub(crate) offline: OfflinePolicy,
    pub(crate) sync_connect: bool,
    pub(crate) exit_on_disconnection: bool,
    pub(crate) max_replays: u32,
    pub(crate) progress_timeout: Option<Duration>,
}

/// The default backoff: 100 ms initial, ×2, 30 s cap, full jitter.
pub const DEFAULT_BACKOFF: BackoffConfig =
    BackoffConfig::exponential(Duration::from_millis(100), 2.0, Duration::from_secs(30));

impl ReconnectConfig {
    /// Defaults for everything but the offline policy: name `"reconnect"`,
    /// [`DEFAULT_BACKOFF`], an entropy-seeded jitter, a 10 s connect timeout, a 5 s stable
    /// period, no `sync_connect`, no `exit_on_disconnection`, one replay for idempotent
    /// requests, no progress timeout.
    pub fn new(offline: OfflinePolicy) -> Self {
        Self {
            name: Arc::from("reconnect"),
            backoff: DEFAULT_BACKOFF,
            seed: None,
            connect_timeout: Duration::from_secs(10),
            stable_period: Duration::from_secs(5),
            offline,
            sync_connect: false,
            exit_on_disconnection: false,
            max_replays: 1,
            progress_timeout: None,
        }
    }

    /// What this connection is called in errors and tracing events: say which peer
    /// (`"redis 10.0.0.7:6379"`).
    #[must_use]
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// The backoff between connect attempts.
    #[must_use]
    pub fn backoff(mut self, backoff: BackoffConfig) -> Self {
        self.backoff = backoff;
        self
    }

    /// Seeds the backoff's jitter, for reproducible tests. Leave it unset in production:
    /// clients sharing a seed jitter in lockstep.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// How long one connect attempt may take before it counts as failed. When the backoff
    /// sets a `min_connect_timeout` (the gRPC preset), the backoff's
    /// [`connect_timeout`](crate::Backoff::connect_timeout) is used instead. Non-zero.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a connection must stay up before the backoff resets. A connection that
    /// drops sooner continues the backoff where it was, so a server that accepts and then
    /// crashes is not hammered at the initial delay. Zero resets on every connect.
    #[must_use]
    pub fn stable_period(mut self, period: Duration) -> Self {
        self.stable_period = period;
        self
    }

    /// What happens to requests made while disconnected.
    #[must_use]
    pub fn offline(mut self, offline: OfflinePolicy) -> Self {
        self.offline = offline;
        self
    }

    /// When `true`, [`Reconnect::start`](crate::Reconnect::start) makes the first connect
    /// attempt itself and returns its error if it fails (Redix's `sync_connect`). When
    /// `false` (the default) it returns at once and connects in the background, retrying
    /// with backoff from the first failure.
    #[must_use]
    pub fn sync_connect(mut self, sync: bool) -> Self {
        self.sync_connect = sync;
        self
    }

    /// When `true`, a lost connection is not replaced: the handle closes with
    /// [`CloseReason::Disconnected`](crate::CloseReason::Disconnected), for a supervisor
    /// to restart (Redix's `exit_on_disconnection`).
    #[must_use]
    pub fn exit_on_disconnection(mut self, exit: bool) -> Self {
        self.exit_on_disconnection = exit;
        self
    }

    /// How many times a request made with
    /// [`call_idempotent`](crate::Reconnect::call_idempotent) is sent again after its
    /// connection was lost (0: never). Other requests are never replayed.
    #[must_use]
    pub fn max_replays(mut self, replays: u32) -> Self {
        self.max_replays = replays;
        self
    }

    /// Progress-based half-open detection: when requests are in flight and no response has
    /// arrived for `timeout` (counted from the later of the last response and the moment
    /// the oldest in-flight request started), the connection is treated as dead and
    /// replaced. Set it above your slowest legitimate request. Non-zero.
    #[must_use]
    pub fn progress_timeout(mut self, timeout: Duration) -> Self {
        self.progress_timeout = Some(timeout);
        self
    }

    /// The offline policy set with [`new`](Self::new) or [`offline`](Self::offline) (a
    /// layer above that follows the same policy between connections reads it: a supervised
    /// client between incarnations).
    pub fn offline_policy(&self) -> OfflinePolicy {
        self.offline
    }

    /// Checks every setting.
    ///
    /// # Errors
    /// The first bad setting, as a [`ReconnectConfigError`].
    pub fn validate(&self) -> Result<(), ReconnectConfigError> {
        self.backoff.validate()?;
        if self.connect_timeout.is_zero() {
            return Err(ReconnectConfigError::ZeroConnectTimeout);
        }
        if let OfflinePolicy::Queue { max, deadline } = self.offline {
            if max == 0 {
                return Err(ReconnectConfigError::ZeroQueueMax);
            }
            if deadline.is_zero() {
                return Err(ReconnectConfigError::ZeroQueueDeadline);
            }
        }
        if self.progress_timeout.is_some_and(|t| t.is_zero()) {
            return Err(ReconnectConfigError::ZeroProgressTimeout);
        }
        Ok(())
    }
}

/// A reconnect setting that cannot work. Nothing was started.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ReconnectConfigError {
    /// The backoff settings are invalid.
    #[error(transparent)]
    Backoff(#[from] BackoffConfigError),
    /// A zero connect timeout would fail every attempt.
    #[error("reconnect: connect_timeout must be greater than zero")]
    ZeroConnectTimeout,
    /// `OfflinePolicy::Queue { max: 0, .. }`: use `FailFast` to refuse offline requests.
    #[error(
        "reconnect: the offline queue's max must be at least 1 (use OfflinePolicy::FailFast for none)"
    )]
    ZeroQueueMax,
    /// `OfflinePolicy::Queue { deadline: 0, .. }`: every queued request would time out.
    #[error("reconnect: the offline queue's deadline must be greater than zero")]
    ZeroQueueDeadline,
    /// `progress_timeout(0)`: every request would look stalled.
    #[error("reconnect: progress_timeout must be greater than zero")]
    ZeroProgressTimeout,
    /// A health check with a zero interval.
    #[error("reconnect: the health check interval must be greater than zero")]
    ZeroHealthCheckInterval,
    /// A health check with a zero timeout.
    #[error("reconnect: the health check timeout must be greater than zero")]
    ZeroHealthCheckTimeout,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        ReconnectConfig::new(OfflinePolicy::FailFast)
            .validate()
            .unwrap();
        DEFAULT_BACKOFF.validate().unwrap();
    }

    #[test]
    fn each_bad_setting_is_a_typed_error() {
        let base = ReconnectConfig::new(OfflinePolicy::FailFast);
        let queue = |max, deadline| base.clone().offline(OfflinePolicy::Queue { max, deadline });
        let cases = [
            (
                base.clone()
                    .backoff(BackoffConfig::constant(Duration::ZERO)),
                ReconnectConfigError::Backoff(BackoffConfigError::ZeroInitial),
            ),
            (
                base.clone().connect_timeout(Duration::ZERO),
                ReconnectConfigError::ZeroConnectTimeout,
            ),
            (
                queue(0, Duration::from_secs(1)),
                ReconnectConfigError::ZeroQueueMax,
            ),
            (
                queue(1, Duration::ZERO),
                ReconnectConfigError::ZeroQueueDeadline,
            ),
            (
                base.clone().progress_timeout(Duration::ZERO),
                ReconnectConfigError::ZeroProgressTimeout,
            ),
        ];
        for (config, want) in cases {
            assert_eq!(config.validate(), Err(want));
        }
        let zero_interval = HealthCheck::new(Duration::ZERO, Duration::from_secs(1), || ());
        assert_eq!(
            zero_interval.validate(),
            Err(ReconnectConfigError::ZeroHealthCheckInterval)
        );
        let zero_timeout = HealthCheck::new(Duration::from_secs(1), Duration::ZERO, || ());
        assert_eq!(
            zero_timeout.validate(),
            Err(ReconnectConfigError::ZeroHealthCheckTimeout)
        );
    }
}
