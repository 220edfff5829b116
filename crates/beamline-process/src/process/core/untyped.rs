//! The untyped face of a process ([`Core`], behind [`Pid`]) and how a typed [`Process`] provides
//! it: exit signals, kills, links, monitors and the exit-waiters.

use std::task::{Context as TaskContext, Poll};

use super::{Envelope, Process, Status, Watcher};
use crate::exit::ExitReason;
use crate::process::{Info, MonitorRef, Pid, ProcessId};

/// The untyped face of a process, behind [`Pid`]: everything except sending user messages.
pub(crate) trait Core: Send + Sync + 'static {
    fn id(&self) -> ProcessId;
    /// An exit signal from `from` (via a link when `via_link`): queued as a notice when trapping
    /// exits, ignored when `Normal`, otherwise kills the process with `reason`.
    fn exit_signal(&self, from: Pid, reason: ExitReason, via_link: bool);
    /// An untrappable kill. True if it ended a running process.
    fn kill(&self) -> bool;
    fn down(&self, id: MonitorRef, pid: Pid, reason: ExitReason);
    /// Adds a link unless the process already exited (then its reason).
    fn add_link(&self, other: Pid) -> Result<(), ExitReason>;
    fn remove_link(&self, id: ProcessId);
    /// Adds a monitor or hook unless the process already exited (then it is handed back).
    fn add_watcher(&self, key: u64, watcher: Watcher) -> Result<(), (Watcher, ExitReason)>;
    fn remove_watcher(&self, key: u64) -> bool;
    /// Ready once the exit is fully published; registers (or refreshes) waiter `key` otherwise.
    fn poll_exited(&self, key: u64, cx: &mut TaskContext<'_>) -> Poll<ExitReason>;
    fn is_alive(&self) -> bool;
    /// The reason, once the process is exiting or exited.
    fn exit_reason(&self) -> Option<ExitReason>;
}

impl<M: Send + 'static> Core for Process<M> {
    fn id(&self) -> ProcessId {
        self.id
    }

    fn exit_signal(&self, from: Pid, reason: ExitReason, via_link: bool) {
        let mut st = self.lock();
        if via_link {
            st.remove_link(from.id());
        }
        if !matches!(st.status, Status::Running) {
            return;
        }
        if st.trap_exit {
            st.queue
                .push_back(Envelope::Signal(Box::new(Info::Exit { from, reason })));
            let rx = st.rx_waker.take();
            drop(st);
            if let Some(w) = rx {
                w.wake();
            }
        } else if !matches!(reason, ExitReason::Normal) {
            drop(st);
            self.request_kill(reason);
        }
    }

    fn kill(&self) -> bool {
        self.request_kill(ExitReason::Killed)
    }

    fn down(&self, id: MonitorRef, pid: Pid, reason: ExitReason) {
        let mut st = self.lock();
        if !matches!(st.status, Status::Running) {
            return;
        }
        st.queue
            .push_back(Envelope::Signal(Box::new(Info::Down { id, pid, reason })));
        let rx = st.rx_waker.take();
        drop(st);
        if let Some(w) = rx {
            w.wake();
        }
    }

    fn add_link(&self, other: Pid) -> Result<(), ExitReason> {
        let mut st = self.lock();
        match &st.status {
            Status::Running | Status::Killing(_) => {
                st.watchers.insert(other.id().0, Watcher::Link(other));
                Ok(())
            }
            Status::Exiting(r) | Status::Exited(r) => Err(ExitReason::clone(r)),
        }
    }

    fn remove_link(&self, id: ProcessId) {
        self.lock().remove_link(id);
    }

    fn add_watcher(&self, key: u64, watcher: Watcher) -> Result<(), (Watcher, ExitReason)> {
        let mut st = self.lock();
        match &st.status {
            Status::Running | Status::Killing(_) => {
                st.watchers.insert(key, watcher);
                Ok(())
            }
            Status::Exiting(r) | Status::Exited(r) => Err((watcher, ExitReason::clone(r))),
        }
    }

    fn remove_watcher(&self, key: u64) -> bool {
        self.lock().watchers.remove(key).is_some()
    }

    fn poll_exited(&self, key: u64, cx: &mut TaskContext<'_>) -> Poll<ExitReason> {
        let mut st = self.lock();
        if let Status::Exited(r) = &st.status {
            return Poll::Ready(ExitReason::clone(r));
        }
        match st.watchers.get_mut(key) {
            Some(Watcher::Waiter(w)) => {
                if !w.will_wake(cx.waker()) {
                    *w = cx.waker().clone();
                }
            }
            _ => st.watchers.insert(key, Watcher::Waiter(cx.waker().clone())),
        }
        Poll::Pending
    }

    fn is_alive(&self) -> bool {
        matches!(self.lock().status, Status::Running)
    }

    fn exit_reason(&self) -> Option<ExitReason> {
        match &self.lock().status {
            Status::Exiting(r) | Status::Exited(r) => Some(ExitReason::clone(r)),
            Status::Running | Status::Killing(_) => None,
        }
    }
}
