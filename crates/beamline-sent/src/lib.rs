//! Whether a failed request may have reached the peer: the one property every beamline client
//! layer's error shares, as one small trait.
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
//! This crate has no dependencies, so any layer can depend on it without depending on a
//! sibling; `beamline-mux`, `beamline-reconnect`, `beamline-pool`, `beamline-balance`,
//! `beamline-client` and the `beamline` facade re-export the trait.
//!
//! # Examples
//! ```
//! use beamline_sent::WasSent;
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

use std::sync::Arc;

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
