//! What [`DynamicSupervisor::start_child`](super::DynamicSupervisor::start_child) and
//! [`DynamicSupervisor::terminate_child`](super::DynamicSupervisor::terminate_child) fail with.

use std::fmt;

use super::{ChildId, ChildSpec};
use crate::exit::ExitReason;
use crate::process::ProcessId;

/// Why [`DynamicSupervisor::start_child`](super::DynamicSupervisor::start_child) (or
/// [`start_child_acknowledged`](super::DynamicSupervisor::start_child_acknowledged)) did not
/// start a child. A refused spec comes back (with whatever its one-shot start owns), so
/// nothing is lost; a start that ran and failed ([`Failed`](Self::Failed)) consumed it.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum StartChildError<M> {
    /// The supervisor already has `max` children.
    #[error("dynamic supervisor {supervisor} already runs its maximum of {max} children")]
    MaxChildren {
        /// The supervisor.
        supervisor: ProcessId,
        /// Its limit.
        max: usize,
        /// The spec that was not started (boxed: errors stay small, so the successful
        /// result does too).
        spec: Box<ChildSpec<M>>,
    },
    /// The supervisor is not running (never started, shutting down, or exited).
    #[error("dynamic supervisor is not running ({reason})")]
    NotRunning {
        /// Why: its exit reason, [`ExitReason::Shutdown`] while it drains, or
        /// [`ExitReason::NoProc`] if it never started.
        reason: ExitReason,
        /// The spec that was not started (boxed: errors stay small, so the successful
        /// result does too).
        spec: Box<ChildSpec<M>>,
    },
    /// The child ran but did not start:
    /// [`start_child_acknowledged`](super::DynamicSupervisor::start_child_acknowledged) saw
    /// it exit before acknowledging its start, or not acknowledge within its start timeout
    /// (it was killed). It is forgotten, never restarted.
    #[error("child {child} failed to start: {reason}")]
    Failed {
        /// The child's id.
        child: ChildId,
        /// Its exit reason, or [`StartTimeout`](crate::StartTimeout) inside an
        /// [`ExitReason::Error`].
        reason: ExitReason,
    },
}

impl<M> StartChildError<M> {
    /// The spec that was not started; `None` when its start ran and failed.
    pub fn into_spec(self) -> Option<ChildSpec<M>> {
        match self {
            Self::MaxChildren { spec, .. } | Self::NotRunning { spec, .. } => Some(*spec),
            Self::Failed { .. } => None,
        }
    }
}

impl<M> fmt::Debug for StartChildError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MaxChildren {
                supervisor, max, ..
            } => f
                .debug_struct("MaxChildren")
                .field("supervisor", supervisor)
                .field("max", max)
                .finish_non_exhaustive(),
            Self::NotRunning { reason, .. } => f
                .debug_struct("NotRunning")
                .field("reason", reason)
                .finish_non_exhaustive(),
            Self::Failed { child, reason } => f
                .debug_struct("Failed")
                .field("child", child)
                .field("reason", reason)
                .finish(),
        }
    }
}

/// Why [`DynamicSupervisor::terminate_child`](super::DynamicSupervisor::terminate_child) did
/// nothing.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TerminateChildError {
    /// The process is not (or no longer) a child of this supervisor.
    #[error("process {child} is not a child of this dynamic supervisor")]
    NotFound {
        /// The process named.
        child: ProcessId,
    },
}
