//! What a body receives ([`Event`], [`Info`]) and how it answers a call ([`Reply`]).

use std::fmt;

use tokio::sync::oneshot;

use super::core::Envelope;
use super::{MonitorRef, Pid};
use crate::exit::ExitReason;

/// What a process receives from [`Context::recv`](crate::Context::recv): a message, or a
/// notice ([`Info`]).
///
/// User messages and notices share one FIFO, so a process's last messages to you arrive before
/// the notice of its exit (OTP's ordering between two processes).
#[derive(Debug)]
#[allow(clippy::exhaustive_enums)] // closed: a body matches every kind of mail it can receive; a new kind must not go unhandled
pub enum Event<M> {
    /// A message sent with [`Addr::cast`](crate::Addr::cast), [`Addr::try_cast`](crate::Addr::try_cast) or [`Addr::call`](crate::Addr::call).
    Msg(M),
    /// A notice: an exit signal (this process traps exits) or a monitor's `Down`.
    Info(Info),
}

impl<M> Event<M> {
    pub(super) fn from_envelope(env: Envelope<M>) -> Self {
        match env {
            Envelope::Msg(m) => Self::Msg(m),
            Envelope::Signal(signal) => Self::Info(*signal),
        }
    }
}

/// A notice rather than a message: an exit signal delivered to a process that traps exits, or
/// a monitor's `Down`. A plain body receives it as [`Event::Info`];
/// [`GenServer::handle_info`](crate::GenServer::handle_info) receives it as it is (except an
/// exit signal from the parent, which stops the server).
#[derive(Debug)]
#[allow(clippy::exhaustive_enums)] // closed, as Event is: a body matches every kind of notice; a new kind must not go unhandled
pub enum Info {
    /// An exit signal, delivered as a message because this process traps exits
    /// ([`Context::trap_exit`](crate::Context::trap_exit)): a linked process ended, or someone (a supervisor shutting this
    /// child down, with [`ExitReason::Shutdown`]) sent one with [`Context::exit`](crate::Context::exit).
    Exit {
        /// The process the signal came from.
        from: Pid,
        /// Its reason.
        reason: ExitReason,
    },
    /// A monitored process ended (or was already gone when monitored).
    Down {
        /// The monitor, as returned by [`Context::monitor`](crate::Context::monitor).
        id: MonitorRef,
        /// The process that ended.
        pid: Pid,
        /// Why it ended.
        reason: ExitReason,
    },
}

/// The reply half of a [`call`](crate::Addr::call): put inside the request message, answered with
/// [`send`](Self::send).
///
/// Dropping it unanswered is allowed: if the process then exits, the caller gets
/// [`CallError::Exited`](crate::CallError::Exited); if it keeps running, the caller gets [`CallError::Timeout`](crate::CallError::Timeout) (as in
/// OTP, where a server that never replies lets the call time out).
pub struct Reply<R> {
    pub(super) tx: oneshot::Sender<R>,
}

impl<R> Reply<R> {
    /// Answers the call.
    ///
    /// # Errors
    /// The value comes back if the caller stopped waiting (timed out or was dropped).
    pub fn send(self, value: R) -> Result<(), R> {
        self.tx.send(value)
    }

    /// True if the caller stopped waiting; the work to answer may be skipped.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl<R> fmt::Debug for Reply<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("closed", &self.is_closed())
            .finish()
    }
}
