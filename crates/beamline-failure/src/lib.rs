//! What every beamline layer says about a failure, in one place below all of them: whether a
//! failed request may have reached the peer ([`WasSent`]), and the message of a caught panic
//! ([`panic_message`]).
//!
//! When a request fails, the first question is whether it is safe to send it again. A request
//! whose bytes never reached the transport cannot have been applied, so resending it (on the
//! same connection once it is back, on another connection, on another node) applies it at most
//! once. A request that was written may have been applied even though no answer came back, so
//! only an idempotent one may be resent. [`WasSent`] is that answer, on the error itself.
//!
//! Every client layer implements it on its errors and keeps the answer of the layer below:
//! `beamline-mux`'s `MuxError` (it knows which bytes it wrote), `beamline-reconnect`'s
//! `FramedError` and `ReconnectError`, `beamline-pool`'s `CheckoutError` (a checkout that
//! failed sent nothing), `beamline-balance`'s `BalanceError` and the composed client's
//! `ClientError`. A connection type you write for `beamline-reconnect` (its `Connection`
//! seam) states it the same way: its error type implements [`WasSent`].
//!
//! A layer that catches a panic (a process's body, a mux driver, a reconnect's connector, an
//! HTTP service, a metrics publisher) reports it with [`panic_message`], so every panic reads
//! the same whichever layer caught it.
//!
//! This crate has no dependencies, so any layer can depend on it without depending on a
//! sibling; `beamline-mux`, `beamline-reconnect`, `beamline-pool`, `beamline-balance`,
//! `beamline-client` and the `beamline` facade re-export the trait.
//!
//! # Examples
//! ```
//! use beamline_failure::WasSent;
//!
//! #[derive(Debug)]
//! enum MyError {
//!     /// The connection was down: nothing was written.
//!     Offline,
//!     /// The connection died after the request was written.
//!     Lost,
//! }
//!
//! impl WasSent for MyError {
//!     fn was_sent(&self) -> bool {
//!         match self {
//!             MyError::Offline => false,
//!             // When in doubt: sent.
//!             MyError::Lost => true,
//!         }
//!     }
//! }
//!
//! fn may_resend<E: WasSent>(error: &E, idempotent: bool) -> bool {
//!     idempotent || !error.was_sent()
//! }
//! assert!(may_resend(&MyError::Offline, false));
//! assert!(!may_resend(&MyError::Lost, false));
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

use std::any::Any;
use std::sync::Arc;

/// The message a panic was raised with: `panic!("...")` carries a `&str` or a `String`;
/// any other payload reads as `panic with a non-string payload`.
///
/// # Examples
/// ```
/// use beamline_failure::panic_message;
///
/// let payload = std::panic::catch_unwind(|| panic!("boom {}", 7)).unwrap_err();
/// assert_eq!(&*panic_message(payload.as_ref()), "boom 7");
/// assert_eq!(&*panic_message(&"static"), "static");
/// assert_eq!(&*panic_message(&7_u8), "panic with a non-string payload");
/// ```
pub fn panic_message(payload: &(dyn Any + Send)) -> Arc<str> {
    if let Some(text) = payload.downcast_ref::<&'static str>() {
        Arc::from(*text)
    } else if let Some(text) = payload.downcast_ref::<String>() {
        Arc::from(text.as_str())
    } else {
        Arc::from("panic with a non-string payload")
    }
}

/// Whether the failed request behind this error may have reached the peer.
///
/// # Contract
/// [`was_sent`](Self::was_sent) returns `false` only when no byte of the request reached the
/// transport (it was refused before a connection took it, or the connection died before
/// writing any of it), so resending it cannot apply it twice. When in doubt it returns `true`:
/// the request may have been delivered and acted on, and only an idempotent one may be
/// resent. Every layer that wraps another's error keeps the inner answer (a layer may turn a
/// `false` into a `true`, never the reverse), because retries above it, on another connection
/// or another node, rely on it: a wrong `false` can deliver a request twice.
pub trait WasSent {
    /// Whether the request may have been written (and so may have been delivered). `false`
    /// means it certainly was not: resending it is safe, even when it is not idempotent.
    fn was_sent(&self) -> bool;
}

impl<E: WasSent + ?Sized> WasSent for &E {
    fn was_sent(&self) -> bool {
        (**self).was_sent()
    }
}

impl<E: WasSent + ?Sized> WasSent for Box<E> {
    fn was_sent(&self) -> bool {
        (**self).was_sent()
    }
}

/// A shared error (one failure reported to several waiters) answers as the error it shares.
impl<E: WasSent + ?Sized> WasSent for Arc<E> {
    fn was_sent(&self) -> bool {
        (**self).was_sent()
    }
}
