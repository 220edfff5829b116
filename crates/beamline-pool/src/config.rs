//! The settings of a pool, validated when it starts.

use std::time::Duration;

use beamline_backoff::{BackoffConfig, BackoffConfigError, Jitter};

/// The backoff between failed connect attempts unless [`PoolConfig::backoff`] says otherwise:
/// 100 ms, doubling, capped at 10 s, with equal jitter (each delay keeps at least half of its
/// base, so a pool never retries in a tight loop, and pools that lost the same server spread
/// out).
pub const DEFAULT_BACKOFF: BackoffConfig =
    BackoffConfig::exponential(Duration::from_millis(100), 2.0, Duration::from_secs(10))
        .jitter(Jitter::Equal);

/// When the exclusive pool runs [`Manager::check`](crate::Manager::check) before handing a
/// connection out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckPolicy {
    /// Never: dead connections are found by [`Manager::is_broken`](crate::Manager::is_broken),
    /// the idle timeout and the max lifetime only. The fastest checkout.
    Never,
    /// Before every checkout of a connection that was used before. Costs one round trip per
    /// checkout when the check does I/O.
    Always,
    /// Only when the connection sat idle for at least this long: a connection returned a
    /// moment ago is trusted, one that sat long enough for a server or a NAT to drop it is
    /// checked first (HikariCP's approach). The idle time is read from the pool's coarse clock
    /// (see [`PoolConfig`]), so it is exact to one clock tick.
    IdleFor(Duration),
}

/// Whether [`Pool::start`](crate::Pool::start) waits for connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Start {
    /// Return at once; connections are opened on demand, and `min_idle` is filled in the
    /// background (a failure there is retried with backoff, never reported to `start`).
    #[default]
    Lazy,
    /// Open `max(min_idle, 1)` connections before returning, and fail with the first connect
    /// error: a service finds out at start-up that its database is unreachable.
    Eager,
}

/// The settings of a pool: its size, its timeouts and how it treats connections.
///
/// Build one with [`PoolConfig::new`] and the setters; [`Pool::start`](crate::Pool::start)
/// and [`SharedPool::start`](crate::SharedPool::start) validate it, and a bad setting is a
/// [`ConfigError`] naming it, never a panic or a silently corrected value.
///
/// Time-based settings (idle timeout, max lifetime, [`CheckPolicy::IdleFor`]) are measured on
/// the pool's *coarse clock*: a millisecond counter the pool's maintenance task advances once
/// per tick (an eighth of the shortest of those settings, between 5 ms and 1 s), and every
/// checkout that waited refreshes. Checkouts read it instead of the system clock, which is
/// what keeps a checkout at a few tens of nanoseconds; the price is that expiry is exact to one
/// tick.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use beamline_pool::{CheckPolicy, PoolConfig};
///
/// let config = PoolConfig::new(16)
///     .name("orders-db")
///     .min_idle(4)
///     .checkout_timeout(Some(Duration::from_secs(2)))
///     .idle_timeout(Some(Duration::from_secs(300)))
///     .max_lifetime(Some(Duration::from_secs(1800)))
///     .check(CheckPolicy::IdleFor(Duration::from_secs(1)));
/// config.validate()?;
/// # Ok::<(), beamline_pool::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// Named in every error and metric, to tell pools apart.
    pub(crate) name: Option<String>,
    /// The most connections open at once (idle, in use and being opened).
    pub(crate) max_size: usize,
    /// Idle connections kept open, refilled in the background after checkouts and failures.
    pub(crate) min_idle: usize,
    /// How long one connect attempt may take.
    pub(crate) connect_timeout: Option<Duration>,
    /// How long a checkout may wait in the queue.
    pub(crate) checkout_timeout: Option<Duration>,
    /// Idle connections beyond `min_idle` are closed after this long unused.
    pub(crate) idle_timeout: Option<Duration>,
    /// Connections are closed after this long open (minus jitter), idle or on return.
    pub(crate) max_lifetime: Option<Duration>,
    /// Up to this fraction of `max_lifetime` is taken off each connection's lifetime at random,
    /// so connections opened together do not all expire together.
    pub(crate) lifetime_jitter: f64,
    pub(crate) check: CheckPolicy,
    pub(crate) start: Start,
    /// The delays between failed connect attempts.
    pub(crate) backoff: BackoffConfig,
}

impl PoolConfig {
    /// A pool of at most `max_size` connections, with these defaults: no `min_idle`, 10 s
    /// connect timeout, 30 s checkout timeout, 10 min idle timeout, 30 min max lifetime with
    /// 10 % jitter, a check on connections idle for 1 s or more, lazy start, and
    /// [`DEFAULT_BACKOFF`].
    pub const fn new(max_size: usize) -> Self {
        Self {
            name: None,
            max_size,
            min_idle: 0,
            connect_timeout: Some(Duration::from_secs(10)),
            checkout_timeout: Some(Duration::from_secs(30)),
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
            lifetime_jitter: 0.1,
            check: CheckPolicy::IdleFor(Duration::from_secs(1)),
            start: Start::Lazy,
            backoff: DEFAULT_BACKOFF,
        }
    }

    /// Names the pool in errors, metrics and traces (default: `pool-<n>`, numbered in the order
    /// pools start).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The most connections open at once, counting those being opened. Must be at least 1.
    #[must_use]
    pub const fn max_size(mut self, max_size: usize) -> Self {
        self.max_size = max_size;
        self
    }

    /// Keeps at least this many idle connections open (at most `max_size` in all), opening
    /// them in the background: when a checkout leaves fewer (at once when it took a thread's
    /// last idle connection or had to queue, otherwise at the next maintenance tick), when one
    /// is discarded, and after failed attempts (with backoff). Idle timeout never closes these.
    /// Must not exceed `max_size`.
    #[must_use]
    pub const fn min_idle(mut self, min_idle: usize) -> Self {
        self.min_idle = min_idle;
        self
    }

    /// How long one connect attempt may take before it counts as failed
    /// ([`ConnectCause::TimedOut`](crate::ConnectCause::TimedOut)); `None` waits as long as
    /// the manager does. Must be non-zero.
    #[must_use]
    pub const fn connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a checkout may wait for a connection before it fails with
    /// [`CheckoutError::Timeout`](crate::CheckoutError::Timeout); `None` waits forever.
    /// Must be non-zero.
    #[must_use]
    pub const fn checkout_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.checkout_timeout = timeout;
        self
    }

    /// Closes connections left idle this long, beyond `min_idle`; `None` keeps them.
    /// Must be non-zero.
    #[must_use]
    pub const fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Closes connections this long after they were opened (minus jitter, see
    /// [`lifetime_jitter`](Self::lifetime_jitter)): idle ones at once, used ones when they come
    /// back. `None` keeps them. Must be non-zero.
    #[must_use]
    pub const fn max_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.max_lifetime = lifetime;
        self
    }

    /// Each connection's lifetime is `max_lifetime · (1 − jitter · u)` with `u` uniform in
    /// `[0, 1)`, so a pool whose connections were opened together does not lose them all in
    /// the same instant. Must be in `[0, 1)`; 0 turns jitter off.
    #[must_use]
    pub const fn lifetime_jitter(mut self, jitter: f64) -> Self {
        self.lifetime_jitter = jitter;
        self
    }

    /// When to run [`Manager::check`](crate::Manager::check) on checkout (exclusive pool only).
    #[must_use]
    pub const fn check(mut self, policy: CheckPolicy) -> Self {
        self.check = policy;
        self
    }

    /// Lazy or eager start.
    #[must_use]
    pub const fn start(mut self, start: Start) -> Self {
        self.start = start;
        self
    }

    /// The backoff between failed connect attempts. Give-up limits (`max_attempts`,
    /// `max_elapsed`) end a run of failures: the waiters of that moment fail with the last
    /// connect error, and the next demand starts a fresh run.
    #[must_use]
    pub fn backoff(mut self, backoff: BackoffConfig) -> Self {
        self.backoff = backoff;
        self
    }

    /// Checks every setting; the pools' `start` calls this.
    ///
    /// # Errors
    /// The first bad setting, as a [`ConfigError`] that names it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_size == 0 {
            return Err(ConfigError::ZeroMaxSize);
        }
        if self.min_idle > self.max_size {
            return Err(ConfigError::MinIdleAboveMaxSize {
                min_idle: self.min_idle,
                max_size: self.max_size,
            });
        }
        let durations = [
            ("connect_timeout", self.connect_timeout),
            ("checkout_timeout", self.checkout_timeout),
            ("idle_timeout", self.idle_timeout),
            ("max_lifetime", self.max_lifetime),
        ];
        if let Some((setting, _)) = durations
            .iter()
            .find(|(_, value)| value.is_some_and(|d| d.is_zero()))
        {
            return Err(ConfigError::ZeroDuration { setting });
        }
        if !(0.0..1.0).contains(&self.lifetime_jitter) {
            return Err(ConfigError::InvalidLifetimeJitter {
                jitter: self.lifetime_jitter,
            });
        }
        if self.check == CheckPolicy::IdleFor(Duration::ZERO) {
            return Err(ConfigError::ZeroDuration {
                setting: "check IdleFor",
            });
        }
        self.backoff.validate().map_err(ConfigError::Backoff)
    }

    /// The coarse clock's tick: an eighth of the shortest time-based setting, in [5 ms, 1 s].
    pub(crate) fn tick(&self) -> Duration {
        let check = match self.check {
            CheckPolicy::IdleFor(d) => Some(d),
            CheckPolicy::Never | CheckPolicy::Always => None,
        };
        [self.idle_timeout, self.max_lifetime, check]
            .into_iter()
            .flatten()
            .min()
            .map_or(MAX_TICK, |shortest| {
                (shortest / 8).clamp(Duration::from_millis(5), MAX_TICK)
            })
    }
}

const MAX_TICK: Duration = Duration::from_secs(1);

/// A pool setting that cannot work. Nothing is started; fix the named setting.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_size(0)`: no checkout could ever succeed.
    #[error("pool config: max_size must be at least 1")]
    ZeroMaxSize,
    /// More idle connections asked for than the pool may hold.
    #[error("pool config: min_idle ({min_idle}) is above max_size ({max_size})")]
    MinIdleAboveMaxSize {
        /// The rejected `min_idle`.
        min_idle: usize,
        /// The pool's `max_size`.
        max_size: usize,
    },
    /// A timeout or lifetime of zero: every wait or connection would end at once. Use `None`
    /// for "no limit".
    #[error("pool config: {setting} must be greater than zero (use None for no limit)")]
    ZeroDuration {
        /// Which setting.
        setting: &'static str,
    },
    /// A lifetime jitter outside `[0, 1)` (or NaN).
    #[error("pool config: lifetime_jitter must be in [0, 1), got {jitter}")]
    InvalidLifetimeJitter {
        /// The rejected jitter.
        jitter: f64,
    },
    /// `max_users(0)` for a shared pool: no connection could take a user.
    #[error("pool config: a shared pool's max_users per connection must be at least 1")]
    ZeroMaxUsers,
    /// The backoff settings are invalid.
    #[error("pool config: invalid backoff")]
    Backoff(#[source] BackoffConfigError),
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn defaults_are_valid() {
        PoolConfig::new(1).validate().unwrap();
        assert_eq!(PoolConfig::new(1).start, Start::Lazy);
    }

    #[test]
    fn each_bad_setting_is_a_typed_error() {
        let ok = PoolConfig::new(4);
        let cases = [
            (ok.clone().max_size(0), ConfigError::ZeroMaxSize),
            (
                ok.clone().min_idle(5),
                ConfigError::MinIdleAboveMaxSize {
                    min_idle: 5,
                    max_size: 4,
                },
            ),
            (
                ok.clone().connect_timeout(Some(Duration::ZERO)),
                ConfigError::ZeroDuration {
                    setting: "connect_timeout",
                },
            ),
            (
                ok.clone().checkout_timeout(Some(Duration::ZERO)),
                ConfigError::ZeroDuration {
                    setting: "checkout_timeout",
                },
            ),
            (
                ok.clone().idle_timeout(Some(Duration::ZERO)),
                ConfigError::ZeroDuration {
                    setting: "idle_timeout",
                },
            ),
            (
                ok.clone().max_lifetime(Some(Duration::ZERO)),
                ConfigError::ZeroDuration {
                    setting: "max_lifetime",
                },
            ),
            (
                ok.clone().check(CheckPolicy::IdleFor(Duration::ZERO)),
                ConfigError::ZeroDuration {
                    setting: "check IdleFor",
                },
            ),
            (
                ok.clone().lifetime_jitter(1.0),
                ConfigError::InvalidLifetimeJitter { jitter: 1.0 },
            ),
            (
                ok.clone().lifetime_jitter(-0.5),
                ConfigError::InvalidLifetimeJitter { jitter: -0.5 },
            ),
            (
                ok.clone().backoff(BackoffConfig::constant(Duration::ZERO)),
                ConfigError::Backoff(BackoffConfigError::ZeroInitial),
            ),
        ];
        for (config, want) in cases {
            assert_eq!(config.validate(), Err(want), "{config:?}");
        }
        assert!(matches!(
            ok.lifetime_jitter(f64::NAN).validate(),
            Err(ConfigError::InvalidLifetimeJitter { .. })
        ));
    }

    #[test]
    fn none_means_no_limit_and_is_valid() {
        PoolConfig::new(2)
            .connect_timeout(None)
            .checkout_timeout(None)
            .idle_timeout(None)
            .max_lifetime(None)
            .lifetime_jitter(0.0)
            .check(CheckPolicy::Never)
            .validate()
            .unwrap();
    }

    #[test]
    fn the_tick_follows_the_shortest_time_setting() {
        let none = PoolConfig::new(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .check(CheckPolicy::Always);
        assert_eq!(none.tick(), S);
        assert_eq!(
            none.clone().idle_timeout(Some(S * 4)).tick(),
            Duration::from_millis(500)
        );
        assert_eq!(
            none.clone()
                .max_lifetime(Some(Duration::from_millis(1)))
                .tick(),
            Duration::from_millis(5)
        );
        assert_eq!(PoolConfig::new(1).tick(), Duration::from_millis(125));
    }

    #[test]
    fn errors_name_the_setting() {
        let e = ConfigError::ZeroDuration {
            setting: "idle_timeout",
        };
        assert!(e.to_string().contains("idle_timeout"));
    }
}
