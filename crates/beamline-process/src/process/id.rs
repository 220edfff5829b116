//! Process identities: [`ProcessId`], the untyped [`Pid`] handle, [`Exited`] and [`MonitorRef`].

use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use super::core::{Core, next_key};
use crate::exit::ExitReason;

/// The identity of one process (one *incarnation*: a restarted child gets a new id).
///
/// Ids are unique for the life of the OS process and displayed OTP-style, `<0.42>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcessId(pub(crate) u64);

impl ProcessId {
    /// The id as a number (for logs and metrics).
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<0.{}>", self.0)
    }
}

impl fmt::Debug for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An untyped handle to a process: enough to link, monitor, kill and wait for it, but not to
/// send it messages (that is [`Addr`](crate::Addr)). Processes of different message types meet through `Pid`s.
///
/// Holding a `Pid` never keeps a process running; it keeps its (small) record readable, so the
/// exit reason stays available after the process is gone.
#[derive(Clone)]
pub struct Pid(pub(crate) Arc<dyn Core>);

impl Pid {
    /// The process's id.
    pub fn id(&self) -> ProcessId {
        self.0.id()
    }

    /// True until the process starts exiting (or is killed).
    pub fn is_alive(&self) -> bool {
        self.0.is_alive()
    }

    /// Why the process ended, once it has.
    pub fn exit_reason(&self) -> Option<ExitReason> {
        self.0.exit_reason()
    }

    /// Waits for the process to end and returns why. When it resolves, the process's links and
    /// monitors have already been notified.
    pub fn exited(&self) -> Exited {
        Exited {
            pid: self.clone(),
            key: next_key(),
            registered: false,
        }
    }

    /// Kills the process: untrappable, it ends at its next `.await` with
    /// [`ExitReason::Killed`]. Returns true if this ended a running process, false if it was
    /// already exiting.
    pub fn kill(&self) -> bool {
        self.0.kill()
    }
}

impl PartialEq for Pid {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl Eq for Pid {}

impl Hash for Pid {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id().hash(state);
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pid({})", self.id())
    }
}

/// Resolves to a process's [`ExitReason`] once its exit is fully published (links and monitors
/// told). Cancel-safe; dropping it unregisters it.
#[must_use = "futures do nothing unless awaited"]
pub struct Exited {
    pid: Pid,
    key: u64,
    registered: bool,
}

impl Future for Exited {
    type Output = ExitReason;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<ExitReason> {
        let polled = self.pid.0.poll_exited(self.key, cx);
        self.registered = polled.is_pending();
        polled
    }
}

impl Drop for Exited {
    fn drop(&mut self) {
        if self.registered {
            self.pid.0.remove_watcher(self.key);
        }
    }
}

impl fmt::Debug for Exited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exited").field("pid", &self.pid).finish()
    }
}

/// Identifies one monitor, returned by [`Context::monitor`](crate::Context::monitor) and carried by the
/// [`Info::Down`](crate::Info::Down) it produces.
#[derive(Clone)]
pub struct MonitorRef {
    pub(crate) key: u64,
    pub(crate) target: Pid,
}

impl MonitorRef {
    /// The monitored process.
    pub fn target(&self) -> &Pid {
        &self.target
    }
}

impl PartialEq for MonitorRef {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for MonitorRef {}

impl Hash for MonitorRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl fmt::Debug for MonitorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MonitorRef({} on {})", self.key, self.target.id())
    }
}
