//! What a checkout or a start can fail with. Every error names its pool.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use beamline_failure::WasSent;

use crate::ConfigError;

/// Why a checkout ([`Pool::get`](crate::Pool::get), [`SharedPool::get`](crate::SharedPool::get))
/// did not return a connection.
///
/// Branch on the variant: `Connect` means the target is failing (the manager's own error is
/// inside), `CreatePanicked` means the manager has a bug, `Timeout` means the pool was busy
/// (or still trying to connect: see `last_connect_error`), `Closed` means the pool is
/// shutting down. The message says which; [`source`](std::error::Error::source) leads to
/// the connect failure, when there is one (the message does not repeat it, so an error
/// reporter that walks the chain prints each cause once).
#[derive(Debug)]
#[non_exhaustive]
pub enum CheckoutError<E> {
    /// A connect attempt failed while this checkout was the longest waiter. The error is the
    /// attempt's own, never replaced by a timeout.
    Connect(ConnectError<E>),
    /// [`Manager::create`](crate::Manager::create) (or [`Manager::target`](crate::Manager::target)
    /// naming its failure) panicked while this checkout was the longest waiter. The pool
    /// caught the panic: the attempt's place counts no more, and the next attempt waits out
    /// the backoff like after a failure.
    CreatePanicked {
        /// Which pool.
        pool: Arc<str>,
        /// The panic's message (`"<non-string panic payload>"` when it was not a string).
        message: Arc<str>,
    },
    /// The checkout waited `waited` (the configured checkout timeout) without getting a
    /// connection. Nothing is lost: the place in the queue is given up, and a connection
    /// that arrives later goes to the next waiter.
    Timeout {
        /// Which pool.
        pool: Arc<str>,
        /// How long the checkout waited.
        waited: Duration,
        /// When the pool's connect attempts are failing, the latest failure: the wait was long
        /// because the target is down, not because the pool is busy.
        last_connect_error: Option<ConnectError<E>>,
    },
    /// The pool was closed ([`Pool::close`](crate::Pool::close)) before or while this checkout
    /// waited.
    Closed {
        /// Which pool.
        pool: Arc<str>,
    },
}

impl<E> fmt::Display for CheckoutError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(e) => e.fmt(f),
            Self::CreatePanicked { pool, message } => {
                write!(f, "pool {pool}: Manager::create panicked: {message}")
            }
            Self::Timeout {
                pool,
                waited,
                last_connect_error,
            } => {
                write!(f, "pool {pool}: no connection within {waited:?}")?;
                match last_connect_error {
                    Some(_) => f.write_str(" (connecting is failing)"),
                    None => Ok(()),
                }
            }
            Self::Closed { pool } => write!(f, "pool {pool} is closed"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CheckoutError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect(e) => e.source(),
            Self::Timeout {
                last_connect_error: Some(e),
                ..
            } => Some(e),
            Self::Timeout { .. } | Self::CreatePanicked { .. } | Self::Closed { .. } => None,
        }
    }
}

impl<E> Clone for CheckoutError<E> {
    /// Cheap: the manager's error is shared behind an `Arc`, never cloned itself.
    fn clone(&self) -> Self {
        match self {
            Self::Connect(e) => Self::Connect(e.clone()),
            Self::CreatePanicked { pool, message } => Self::CreatePanicked {
                pool: Arc::clone(pool),
                message: Arc::clone(message),
            },
            Self::Timeout {
                pool,
                waited,
                last_connect_error,
            } => Self::Timeout {
                pool: Arc::clone(pool),
                waited: *waited,
                last_connect_error: last_connect_error.clone(),
            },
            Self::Closed { pool } => Self::Closed {
                pool: Arc::clone(pool),
            },
        }
    }
}

/// Always `false`: a checkout that failed handed out no connection, so the request it was for
/// was never written.
impl<E> WasSent for CheckoutError<E> {
    fn was_sent(&self) -> bool {
        false
    }
}

impl<E> CheckoutError<E> {
    /// The pool this error comes from.
    pub fn pool(&self) -> &str {
        match self {
            Self::Connect(e) => e.pool(),
            Self::Timeout { pool, .. }
            | Self::CreatePanicked { pool, .. }
            | Self::Closed { pool } => pool,
        }
    }

    /// The connect failure behind this error: the attempt's own for `Connect`, the latest one
    /// (if attempts are failing) for `Timeout`.
    pub fn connect_error(&self) -> Option<&ConnectError<E>> {
        match self {
            Self::Connect(e) => Some(e),
            Self::Timeout {
                last_connect_error, ..
            } => last_connect_error.as_ref(),
            Self::CreatePanicked { .. } | Self::Closed { .. } => None,
        }
    }
}

/// One failed connect attempt: which pool, which target, how many attempts in a row have
/// failed, and why.
///
/// Cheap to clone (the manager's error is shared behind an `Arc`), because one failure is
/// both delivered to a waiter and remembered for the waiters that time out after it.
#[derive(Debug)]
pub struct ConnectError<E> {
    pool: Arc<str>,
    target: Arc<str>,
    failures: u32,
    cause: ConnectCause<E>,
}

/// Why a connect attempt failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectCause<E> {
    /// [`Manager::create`](crate::Manager::create) returned this error.
    Failed(Arc<E>),
    /// The attempt took longer than the connect timeout and was abandoned.
    TimedOut(Duration),
}

impl<E> Clone for ConnectCause<E> {
    fn clone(&self) -> Self {
        match self {
            Self::Failed(e) => Self::Failed(Arc::clone(e)),
            Self::TimedOut(d) => Self::TimedOut(*d),
        }
    }
}

impl<E> Clone for ConnectError<E> {
    fn clone(&self) -> Self {
        Self {
            pool: Arc::clone(&self.pool),
            target: Arc::clone(&self.target),
            failures: self.failures,
            cause: self.cause.clone(),
        }
    }
}

impl<E> ConnectError<E> {
    pub(crate) fn new(
        pool: Arc<str>,
        target: impl Into<Arc<str>>,
        failures: u32,
        cause: ConnectCause<E>,
    ) -> Self {
        Self {
            pool,
            target: target.into(),
            failures,
            cause,
        }
    }

    /// The pool that made the attempt.
    pub fn pool(&self) -> &str {
        &self.pool
    }

    /// What the attempt connected to ([`Manager::target`](crate::Manager::target)).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Attempts failed in a row up to and including this one (1 for the first failure).
    pub const fn failures(&self) -> u32 {
        self.failures
    }

    /// Why it failed.
    pub const fn cause(&self) -> &ConnectCause<E> {
        &self.cause
    }

    /// The manager's error, when the attempt failed rather than timed out.
    pub fn error(&self) -> Option<&E> {
        match &self.cause {
            ConnectCause::Failed(e) => Some(e),
            ConnectCause::TimedOut(_) => None,
        }
    }
}

/// Names the pool, the target and the count; the manager's error is the
/// [`source`](std::error::Error::source), not repeated here.
impl<E> fmt::Display for ConnectError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pool {}: connecting to {} failed ({} in a row)",
            self.pool, self.target, self.failures
        )?;
        match &self.cause {
            ConnectCause::Failed(_) => Ok(()),
            ConnectCause::TimedOut(after) => write!(f, ": timed out after {after:?}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for ConnectError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.cause {
            ConnectCause::Failed(e) => Some(&**e),
            ConnectCause::TimedOut(_) => None,
        }
    }
}

/// Why [`Pool::start`](crate::Pool::start) or [`SharedPool::start`](crate::SharedPool::start)
/// did not return a pool. Nothing is left running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError<E> {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `start` was called outside a tokio runtime: the pool runs its connect attempts and its
    /// maintenance on the runtime it starts on.
    #[error("pool {pool}: start must run inside a tokio runtime")]
    NoRuntime {
        /// Which pool.
        pool: Arc<str>,
    },
    /// An eager start could not open its connections; the first failure.
    #[error(transparent)]
    Connect(ConnectError<E>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;
    use std::io;

    fn refused() -> ConnectError<io::Error> {
        ConnectError::new(
            Arc::from("db"),
            "127.0.0.1:1",
            2,
            ConnectCause::Failed(Arc::new(io::Error::from(io::ErrorKind::ConnectionRefused))),
        )
    }

    #[test]
    fn a_connect_error_names_pool_target_and_cause_and_keeps_the_source() {
        let e = refused();
        let text = e.to_string();
        assert!(text.contains("pool db"), "{text}");
        assert!(text.contains("127.0.0.1:1"), "{text}");
        assert!(text.contains("2 in a row"), "{text}");
        let source = e.source().unwrap().downcast_ref::<io::Error>().unwrap();
        assert_eq!(source.kind(), io::ErrorKind::ConnectionRefused);
        assert_eq!(e.error().unwrap().kind(), io::ErrorKind::ConnectionRefused);
        assert_eq!(e.clone().failures(), 2);
    }

    #[test]
    fn a_timeout_says_when_connecting_is_what_failed() {
        let busy: CheckoutError<io::Error> = CheckoutError::Timeout {
            pool: Arc::from("db"),
            waited: Duration::from_secs(1),
            last_connect_error: None,
        };
        assert_eq!(busy.to_string(), "pool db: no connection within 1s");
        assert!(busy.connect_error().is_none());
        let down: CheckoutError<io::Error> = CheckoutError::Timeout {
            pool: Arc::from("db"),
            waited: Duration::from_secs(1),
            last_connect_error: Some(refused()),
        };
        assert!(down.to_string().contains("connecting is failing"), "{down}");
        assert_eq!(down.connect_error().unwrap().target(), "127.0.0.1:1");
        assert_eq!(down.pool(), "db");
    }

    #[test]
    fn a_chain_prints_each_cause_once() {
        let connect = CheckoutError::Connect(refused());
        let chain = beamline_testkit::assert_printed_once(&connect);
        assert_eq!(chain.len(), 2, "{chain:?}");
        assert_eq!(
            chain[1],
            io::Error::from(io::ErrorKind::ConnectionRefused).to_string()
        );
        let down: CheckoutError<io::Error> = CheckoutError::Timeout {
            pool: Arc::from("db"),
            waited: Duration::from_secs(1),
            last_connect_error: Some(refused()),
        };
        let chain = beamline_testkit::assert_printed_once(&down);
        assert_eq!(chain.len(), 3, "{chain:?}");
        assert!(chain[1].contains("2 in a row"), "{chain:?}");
    }

    #[test]
    fn a_connect_timeout_has_no_source() {
        let e: ConnectError<io::Error> = ConnectError::new(
            Arc::from("db"),
            "x",
            1,
            ConnectCause::TimedOut(Duration::from_secs(3)),
        );
        assert!(e.source().is_none());
        assert!(e.error().is_none());
        assert!(e.to_string().ends_with("timed out after 3s"), "{e}");
    }
}
