//! Where a [`Reconnect`] is: [`State`], as published on [`Reconnect::state_changes`].

use tokio::time::Instant;

use super::CloseReason;

/// Where a [`Reconnect`](crate::Reconnect) is, as published on [`Reconnect::state_changes`](crate::Reconnect::state_changes).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum State {
    /// A connect attempt is running.
    Connecting {
        /// Which attempt, 1-based, counted since the backoff last reset.
        attempt: u32,
    },
    /// A connection is up; requests go straight to it.
    Connected,
    /// The last attempt failed (or the connection was lost); the next attempt starts at
    /// `until`.
    BackingOff {
        /// The number the next attempt will have.
        attempt: u32,
        /// When it starts.
        until: Instant,
    },
    /// Closed for good; every request fails with [`ReconnectError::Closed`](crate::ReconnectError::Closed).
    Closed(CloseReason),
}

impl State {
    /// `true` in [`State::Connected`].
    pub const fn is_connected(&self) -> bool {
        matches!(self, State::Connected)
    }

    /// `true` in [`State::Closed`].
    pub const fn is_closed(&self) -> bool {
        matches!(self, State::Closed(_))
    }
}
