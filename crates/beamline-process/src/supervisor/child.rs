//! The stable [`Child`] handle a supervisor gives out, and the [`Slot`] it reads the current
//! incarnation from.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{CallError, CastError, TryCastError};
use crate::exit::ExitReason;
use crate::process::{Addr, Pid, Process, Reply, Timeout};

/// Where a [`Child`] handle finds the current incarnation, and the supervisor that started
/// it.
pub(crate) struct Slot<M> {
    current: Mutex<Current<M>>,
}

struct Current<M> {
    addr: Addr<M>,
    /// `None` before the first start, and for a handle fixed on one process.
    supervisor: Option<Pid>,
}

impl<M: Send + 'static> Slot<M> {
    /// A slot whose child has not started: sends through it fail with `NoProc`.
    pub(super) fn unstarted() -> Arc<Self> {
        Arc::new(Self {
            current: Mutex::new(Current {
                addr: Addr {
                    proc: Process::dead(ExitReason::NoProc),
                },
                supervisor: None,
            }),
        })
    }
}

impl<M> Slot<M> {
    pub(super) fn set(&self, addr: Addr<M>, supervisor: &Pid) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        current.addr = addr;
        if current.supervisor.as_ref().map(Pid::id) != Some(supervisor.id()) {
            current.supervisor = Some(supervisor.clone());
        }
    }

    fn get(&self) -> Addr<M> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .addr
            .clone()
    }

    fn get_with_supervisor(&self) -> (Addr<M>, Option<Pid>) {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        (current.addr.clone(), current.supervisor.clone())
    }
}

/// A stable handle to a supervised child: every send goes to the incarnation running at that
/// moment, so the handle stays valid across restarts (unlike an [`Addr`], which names one
/// incarnation).
///
/// A message or call is delivered to one incarnation; if that incarnation dies before
/// handling it, the send fails as for an [`Addr`] (nothing is redelivered to the next
/// incarnation: a retry is the caller's decision). Between a crash and the restart, sends
/// fail with the crashed incarnation's reason; before the first start, with
/// [`ExitReason::NoProc`].
pub struct Child<M> {
    pub(super) slot: Arc<Slot<M>>,
}

impl<M> Clone for Child<M> {
    fn clone(&self) -> Self {
        Self {
            slot: self.slot.clone(),
        }
    }
}

impl<M: Send + 'static> Child<M> {
    /// The handle behind a slot found by id, if it is a slot for `M`.
    pub(crate) fn from_slot(slot: Arc<dyn Any + Send + Sync>) -> Option<Self> {
        Some(Self {
            slot: slot.downcast::<Slot<M>>().ok()?,
        })
    }

    pub(crate) fn fixed(addr: Addr<M>) -> Self {
        Self {
            slot: Arc::new(Slot {
                current: Mutex::new(Current {
                    addr,
                    supervisor: None,
                }),
            }),
        }
    }

    /// The current incarnation's address.
    pub fn current(&self) -> Addr<M> {
        self.slot.get()
    }

    /// The current incarnation's pid.
    pub fn pid(&self) -> Pid {
        self.current().pid()
    }

    /// [`Addr::cast`] to the current incarnation.
    ///
    /// # Errors
    /// As [`Addr::cast`].
    pub async fn cast(&self, message: M) -> Result<(), CastError<M>> {
        self.current().cast(message).await
    }

    /// [`Addr::try_cast`] to the current incarnation.
    ///
    /// # Errors
    /// As [`Addr::try_cast`].
    pub fn try_cast(&self, message: M) -> Result<(), TryCastError<M>> {
        self.current().try_cast(message)
    }

    /// [`Addr::call`] to the current incarnation.
    ///
    /// # Errors
    /// As [`Addr::call`], and an exit is told apart by what can follow it:
    /// - [`CallError::Exited`]: the incarnation called exited, and the supervisor that
    ///   started it still runs: a permanent child (or a transient one that failed) is being
    ///   restarted, and a later call may reach the next incarnation.
    /// - [`CallError::SupervisorStopped`]: the incarnation exited and its supervisor has
    ///   exited too (shut down, or gave up after too many restarts): no incarnation will
    ///   follow through this handle.
    ///
    /// Which of the two is a snapshot taken when the call fails: a supervisor that is
    /// deciding to give up at that moment still counts as running.
    pub async fn call<R, F>(&self, make: F, timeout: impl Into<Timeout>) -> Result<R, CallError>
    where
        F: FnOnce(Reply<R>) -> M,
    {
        let (addr, supervisor) = self.slot.get_with_supervisor();
        match (addr.call(make, timeout).await, supervisor) {
            (Err(CallError::Exited { pid, reason }), Some(supervisor))
                if !supervisor.is_alive() =>
            {
                Err(CallError::SupervisorStopped {
                    pid,
                    reason,
                    supervisor: supervisor.id(),
                })
            }
            (result, _) => result,
        }
    }
}

impl<M: Send + 'static> fmt::Debug for Child<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("current", &self.current())
            .finish()
    }
}
