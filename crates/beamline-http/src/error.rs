//! Why an HTTP server did not start.

use beamline_server::StartError;

/// Why [`Http::serve`](crate::Http::serve) (or [`serve`](crate::serve)) did not start a
/// server. Nothing was left running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// An HTTP setting has a value the server cannot work with.
    #[error("invalid HTTP setting `{setting}`: {reason}")]
    Invalid {
        /// The [`Http`](crate::Http) method.
        setting: &'static str,
        /// What is wrong with the value.
        reason: &'static str,
    },
    /// The server underneath did not start (no address, an invalid server setting, no tokio
    /// runtime, an address that cannot be bound).
    #[error(transparent)]
    Server(#[from] StartError),
}
