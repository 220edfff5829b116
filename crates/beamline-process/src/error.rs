//! Errors of the messaging operations. Each names the process it concerns; the send errors hand
//! the message back, so nothing a caller passed in is lost.

use std::fmt;
use std::time::Duration;

use crate::exit::ExitReason;
use crate::process::ProcessId;

/// Why [`Addr::cast`](crate::Addr::cast) did not deliver a message.
///
/// `cast` waits for mailbox space, so the only failure is the process being gone. The message
/// comes back in the error.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum CastError<M> {
    /// The process exited (or is being killed) before the message was queued.
    #[error("process {pid} exited ({reason}): message not delivered")]
    Exited {
        /// The process the message was for.
        pid: ProcessId,
        /// Why it exited.
        reason: ExitReason,
        /// The undelivered message.
        message: M,
    },
}

impl<M> CastError<M> {
    /// The undelivered message.
    pub fn into_message(self) -> M {
        match self {
            Self::Exited { message, .. } => message,
        }
    }
}

impl<M> fmt::Debug for CastError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exited { pid, reason, .. } => f
                .debug_struct("Exited")
                .field("pid", pid)
                .field("reason", reason)
                .finish_non_exhaustive(),
        }
    }
}

/// Why [`Addr::try_cast`](crate::Addr::try_cast) did not deliver a message. It fails at once,
/// never waits, and hands the message back.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum TryCastError<M> {
    /// The mailbox holds its capacity of messages: the receiver is slower than its senders.
    #[error("mailbox of process {pid} is full: message not delivered")]
    Full {
        /// The process the message was for.
        pid: ProcessId,
        /// The undelivered message.
        message: M,
    },
    /// The process exited (or is being killed).
    #[error("process {pid} exited ({reason}): message not delivered")]
    Exited {
        /// The process the message was for.
        pid: ProcessId,
        /// Why it exited.
        reason: ExitReason,
        /// The undelivered message.
        message: M,
    },
}

impl<M> TryCastError<M> {
    /// The undelivered message.
    pub fn into_message(self) -> M {
        match self {
            Self::Full { message, .. } | Self::Exited { message, .. } => message,
        }
    }
}

impl<M> fmt::Debug for TryCastError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full { pid, .. } => f
                .debug_struct("Full")
                .field("pid", pid)
                .finish_non_exhaustive(),
            Self::Exited { pid, reason, .. } => f
                .debug_struct("Exited")
                .field("pid", pid)
                .field("reason", reason)
                .finish_non_exhaustive(),
        }
    }
}

/// Why [`Addr::call`](crate::Addr::call) returned no reply. A call ends in a reply or in one of
/// these; it never hangs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No reply within the timeout (waiting for mailbox space counts). The process may or may
    /// not have received the request, and may still reply later (the reply is then dropped).
    #[error("call to process {pid} timed out after {timeout:?}")]
    Timeout {
        /// The process called.
        pid: ProcessId,
        /// The timeout that ran out.
        timeout: Duration,
    },
    /// The process exited before replying: it was already gone, it panicked or returned while
    /// holding the request, or the request was still queued when it exited.
    #[error("process {pid} exited before replying ({reason})")]
    Exited {
        /// The process called.
        pid: ProcessId,
        /// Why it exited.
        reason: ExitReason,
    },
    /// Through a [`Child`](crate::Child) handle only: the incarnation called exited, and the
    /// supervisor that started it has exited as well (it was shut down, or gave up after
    /// too many restarts), so no later incarnation will answer through this handle.
    /// [`Exited`](Self::Exited) from a `Child` means its supervisor still runs.
    #[error(
        "process {pid} exited before replying ({reason}) and its supervisor {supervisor} has stopped"
    )]
    SupervisorStopped {
        /// The process called.
        pid: ProcessId,
        /// Why it exited.
        reason: ExitReason,
        /// The supervisor that will not restart it.
        supervisor: ProcessId,
    },
}
