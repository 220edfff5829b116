//! Why a process ended: [`ExitReason`], and [`panic_message`], the one way a caught panic
//! payload becomes the text a reason (or a server's log line) carries.

use std::any::Any;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// Why a process ended.
///
/// Every process ends with exactly one reason, published once to everything that waits on it:
/// callers whose [`call`](crate::Addr::call) was in flight get
/// [`CallError::Exited`](crate::CallError::Exited) with it, linked processes receive an exit signal
/// carrying it, monitors receive a [`Down`](crate::Info::Down) notice with it, and supervisors decide
/// from it whether to restart.
///
/// Cloning is cheap (the payloads are reference counted), because one reason goes to many
/// observers.
///
/// OTP's rule for what counts as a failure applies: [`Normal`](Self::Normal) and
/// [`Shutdown`](Self::Shutdown) are *normal* exits ([`is_abnormal`](Self::is_abnormal) is false);
/// a transient child is restarted only after an abnormal one, and an exit signal with a normal
/// reason does not kill a linked process that does not trap exits.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ExitReason {
    /// The body returned `()` or `Ok(())`: the process finished its work.
    Normal,
    /// The process was asked to stop (a supervisor's shutdown, or a linked exit signal with this
    /// reason) and did.
    Shutdown,
    /// The process was killed: an untrappable kill ([`Pid::kill`](crate::Pid::kill)), a shutdown
    /// timeout that ran out, [`Shutdown::Brutal`](crate::Shutdown::Brutal), or its task was
    /// dropped by the runtime.
    Killed,
    /// There was no process: a [`Child`](crate::Child) handle used before its child ever started.
    NoProc,
    /// The body panicked; the panic message. The panic never reached another process.
    Panicked(Arc<str>),
    /// The body returned an error (or a supervisor escalated; see
    /// [`RestartIntensityExceeded`](crate::RestartIntensityExceeded)).
    Error(Arc<dyn StdError + Send + Sync + 'static>),
}

impl ExitReason {
    /// An [`Error`](Self::Error) reason wrapping `error`.
    pub fn error(error: impl StdError + Send + Sync + 'static) -> Self {
        Self::Error(Arc::new(error))
    }

    /// True unless the reason is [`Normal`](Self::Normal) or [`Shutdown`](Self::Shutdown)
    /// (OTP's definition of an abnormal exit).
    pub fn is_abnormal(&self) -> bool {
        !matches!(self, Self::Normal | Self::Shutdown)
    }

    /// The error inside an [`Error`](Self::Error) reason, if it is an `E`.
    pub fn downcast_error<E: StdError + 'static>(&self) -> Option<&E> {
        match self {
            Self::Error(e) => e.downcast_ref::<E>(),
            _ => None,
        }
    }

    /// Turns a caught panic payload into a reason, keeping the message when it is a string.
    pub(crate) fn from_panic(payload: &(dyn Any + Send)) -> Self {
        Self::Panicked(panic_message(payload))
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Normal => f.write_str("normal"),
            Self::Shutdown => f.write_str("shutdown"),
            Self::Killed => f.write_str("killed"),
            Self::NoProc => f.write_str("noproc"),
            Self::Panicked(message) => write!(f, "panicked: {message}"),
            // Not an error type itself, a reason shows its error's whole chain.
            Self::Error(e) => {
                write!(f, "error: {e}")?;
                let mut cause = e.source();
                while let Some(c) = cause {
                    write!(f, ": {c}")?;
                    cause = c.source();
                }
                Ok(())
            }
        }
    }
}

/// Lets `?` turn any error into an [`ExitReason::Error`] inside a process body, whose future
/// returns `Result<(), ExitReason>` (`Ok(())` is a [`Normal`](ExitReason::Normal) exit).
impl<E: StdError + Send + Sync + 'static> From<E> for ExitReason {
    fn from(error: E) -> Self {
        Self::error(error)
    }
}

/// The message of a caught panic payload: the text when the panic carried a string (a
/// `&'static str` or a `String`, as `panic!` makes), otherwise a fixed placeholder. Never fails.
///
/// [`ExitReason::Panicked`] carries this message; libraries that catch panics themselves (a
/// server's connection callbacks) use it so that every panic reads the same.
///
/// # Examples
/// ```
/// assert_eq!(&*beamline_process::panic_message(&"boom"), "boom");
/// assert_eq!(&*beamline_process::panic_message(&7_u8), "panic with a non-string payload");
/// ```
pub use beamline_failure::panic_message;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("boom")]
    struct Boom;

    #[test]
    fn normal_and_shutdown_are_not_abnormal() {
        assert!(!ExitReason::Normal.is_abnormal());
        assert!(!ExitReason::Shutdown.is_abnormal());
        assert!(ExitReason::Killed.is_abnormal());
        assert!(ExitReason::Panicked(Arc::from("x")).is_abnormal());
        assert!(ExitReason::error(Boom).is_abnormal());
    }

    #[test]
    fn question_mark_turns_errors_into_error_reasons() {
        fn body() -> Result<(), ExitReason> {
            Err(Boom)?;
            Ok(())
        }
        let reason = body().unwrap_err();
        assert!(reason.downcast_error::<Boom>().is_some());
        assert_eq!(reason.to_string(), "error: boom");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot save")]
    struct Save(#[source] std::io::Error);

    #[test]
    fn an_error_reason_shows_the_whole_chain_once() {
        let reason = ExitReason::error(Save(std::io::Error::other("disk full")));
        assert_eq!(reason.to_string(), "error: cannot save: disk full");
    }

    #[test]
    fn panic_payloads_keep_their_message() {
        let from_str = ExitReason::from_panic(&"static message");
        assert_eq!(from_str.to_string(), "panicked: static message");
        let from_string = ExitReason::from_panic(&String::from("formatted 7"));
        assert_eq!(from_string.to_string(), "panicked: formatted 7");
        let other = ExitReason::from_panic(&42_u32);
        assert!(matches!(other, ExitReason::Panicked(_)));
    }
}
