//! The shared record of one process: its lifecycle state machine, bounded mailbox, links,
//! monitors and exit waiters, all behind one short-held mutex.
//!
//! Lock discipline: a process's lock is never held while another process's lock is taken,
//! while a waker runs, or across an `.await`. Work that touches other processes (exit signals,
//! `Down` notices, waking senders) is collected under the lock and done after releasing it.

mod untyped;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context as TaskContext, Poll, Waker};

use tokio::task::AbortHandle;

pub(crate) use self::untyped::Core;
use super::idmap::IdMap;
use super::{Info, MonitorRef, Pid, ProcessId};
use crate::exit::ExitReason;

/// Process ids and watcher keys come from one counter, so a link (keyed by the linked
/// process's id) and a monitor or hook (keyed by a fresh key) never collide in one map.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh process id; ids are never reused within one OS process.
pub(crate) fn next_process_id() -> ProcessId {
    ProcessId(next_key())
}

/// A fresh key for a monitor, exit hook or exit waiter.
pub(crate) fn next_key() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// The lifecycle of a process. Transitions happen under the lock, in `request_kill` and `finish`:
///
/// ```text
/// Running ──kill / untrapped exit signal──► Killing(r) ──task dropped──► Exiting(r)
///    └────────────body returned / panicked──────────────────────────────► Exiting(r) ──links, monitors notified──► Exited(r)
/// ```
#[derive(Debug)]
pub(crate) enum Status {
    /// The body may run; messages are accepted.
    Running,
    /// A kill was requested (reason kept); the task is being aborted. Messages are refused.
    Killing(Box<ExitReason>),
    /// The exit is being published to links and monitors.
    Exiting(Box<ExitReason>),
    /// Done: every link and monitor has been told.
    Exited(Box<ExitReason>),
}

impl Status {
    /// The reason a send is refused, if it is refused.
    fn refusal(&self) -> Option<&ExitReason> {
        match self {
            Self::Running => None,
            Self::Killing(r) | Self::Exiting(r) | Self::Exited(r) => Some(&**r),
        }
    }
}

/// What sits in the mailbox: a user message, or a system notice (kept in the same FIFO so that
/// a process's last messages arrive before its exit notice, as in OTP).
pub(crate) enum Envelope<M> {
    Msg(M),
    Signal(Box<Info>),
}

/// A callback told of a process's exit: its pid and reason. It runs in the exit path with no
/// process lock held, so it may take other locks, but it must be quick.
pub(crate) type ExitHook = Box<dyn FnOnce(&Pid, &ExitReason) + Send>;

/// Tells whoever waits for a process's start that it has started (see
/// [`Context::started`](super::Context::started)). It waits among the process's watchers
/// (under [`START_ACK`]) rather than in the `Context`, so a process nobody waits for pays
/// nothing for it: a larger `Context` would make every body's future, and so every idle
/// process's task, bigger.
pub(crate) type StartAck = Box<dyn FnOnce() + Send>;

/// The watcher key of the start acknowledgement: never a process id or a watcher key, which
/// start at 1.
const START_ACK: u64 = 0;

/// Something told when the process exits.
pub(crate) enum Watcher {
    /// A linked process (keyed by its id): receives an exit signal.
    Link(Pid),
    /// A monitoring process: receives `Down`.
    Monitor(Pid),
    /// A callback run in the exiting process's exit path (registry cleanup, drain counters).
    Hook(ExitHook),
    /// An [`Exited`](super::Exited) future: woken once the exit is fully published.
    Waiter(Waker),
    /// The start handshake, until the body acknowledges (dropped unused if it exits first,
    /// which the waiting supervisor sees).
    StartAck(StartAck),
}

/// A sender waiting for mailbox space. `notified` is only touched under the process lock.
struct SendWaiter {
    notified: Arc<AtomicBool>,
    waker: Waker,
}

struct State<M> {
    status: Status,
    queue: VecDeque<Envelope<M>>,
    /// User messages in `queue` (notices do not count against the capacity).
    messages: u32,
    trap_exit: bool,
    rx_waker: Option<Waker>,
    /// Links, monitors, hooks and exit waiters: everything told when the process exits.
    watchers: IdMap<Watcher>,
    /// Senders blocked on a full mailbox; allocated the first time one blocks, so a process
    /// that never sees backpressure does not pay for it.
    blocked: Option<Box<Blocked>>,
    abort: Option<AbortHandle>,
}

#[derive(Default)]
struct Blocked {
    senders: VecDeque<SendWaiter>,
    /// Free slots promised to notified senders that have not yet taken them; `cast` does not
    /// take these, so a sender that waited is not overtaken by one that did not.
    reserved: u32,
}

impl<M> State<M> {
    fn reserved(&self) -> u32 {
        self.blocked.as_ref().map_or(0, |b| b.reserved)
    }

    fn nobody_waiting(&self) -> bool {
        self.blocked.as_ref().is_none_or(|b| b.senders.is_empty())
    }

    fn blocked(&mut self) -> &mut Blocked {
        self.blocked.get_or_insert_with(Box::default)
    }

    fn remove_link(&mut self, id: ProcessId) {
        if let Some(Watcher::Link(_)) = self.watchers.get_mut(id.0) {
            self.watchers.remove(id.0);
        }
    }
}

/// A message a full or dead mailbox refused, handed back.
pub(crate) enum Rejected<M> {
    Full(M),
    Exited(ExitReason, M),
}

pub(crate) struct Process<M> {
    id: ProcessId,
    capacity: u32,
    /// Mirrors `Status::Killing` so the task wrapper can check it around each poll without locking.
    kill_flag: AtomicBool,
    state: Mutex<State<M>>,
}

impl<M: Send + 'static> Process<M> {
    pub(crate) fn new(capacity: usize, trap_exit: bool) -> Arc<Self> {
        Arc::new(Self {
            id: next_process_id(),
            capacity: u32::try_from(capacity).unwrap_or(u32::MAX),
            kill_flag: AtomicBool::new(false),
            state: Mutex::new(State {
                status: Status::Running,
                queue: VecDeque::new(),
                messages: 0,
                rx_waker: None,
                trap_exit,
                watchers: IdMap::default(),
                blocked: None,
                abort: None,
            }),
        })
    }

    /// A process record that never ran: it reads as exited with `reason` (the placeholder behind a
    /// [`Child`](crate::Child) handle before its first start).
    pub(crate) fn dead(reason: ExitReason) -> Arc<Self> {
        let proc = Self::new(1, false);
        proc.lock().status = Status::Exited(Box::new(reason));
        proc
    }

    pub(crate) fn id(&self) -> ProcessId {
        self.id
    }

    pub(crate) fn pid(self: &Arc<Self>) -> Pid {
        Pid(self.clone())
    }

    fn lock(&self) -> MutexGuard<'_, State<M>> {
        // Nothing panics while holding this lock (user code never runs under it), so a poisoned
        // lock still guards consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // ---- mailbox -------------------------------------------------------------------------

    /// Appends a message if there is room. With `behind_waiters`, a sender that is not already
    /// queued does not overtake senders blocked on a full mailbox.
    pub(crate) fn try_push(&self, msg: M, behind_waiters: bool) -> Result<(), Rejected<M>> {
        let mut st = self.lock();
        if let Some(reason) = st.status.refusal() {
            return Err(Rejected::Exited(reason.clone(), msg));
        }
        let full = if behind_waiters {
            st.messages + st.reserved() >= self.capacity || !st.nobody_waiting()
        } else {
            st.messages >= self.capacity
        };
        if full {
            return Err(Rejected::Full(msg));
        }
        let rx = Self::push_locked(&mut st, msg);
        drop(st);
        if let Some(w) = rx {
            w.wake();
        }
        Ok(())
    }

    fn push_locked(st: &mut State<M>, msg: M) -> Option<Waker> {
        st.queue.push_back(Envelope::Msg(msg));
        st.messages += 1;
        st.rx_waker.take()
    }

    /// The slow path of `cast`: the mailbox was full. `waiter` is this sender's place in line.
    pub(crate) fn poll_push(
        &self,
        msg: &mut Option<M>,
        waiter: &mut Option<Arc<AtomicBool>>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Result<(), (ExitReason, M)>> {
        let mut st = self.lock();
        let Some(m) = msg.take() else {
            return Poll::Ready(Ok(()));
        };
        if let Some(reason) = st.status.refusal() {
            *waiter = None;
            return Poll::Ready(Err((reason.clone(), m)));
        }
        let notified = waiter.as_ref().map(|n| n.load(Ordering::Relaxed));
        if notified == Some(true) {
            // Our turn came: the slot promised to us is ours to take (or lose) now.
            st.blocked().reserved -= 1;
        }
        let room = st.messages + st.reserved() < self.capacity;
        match notified {
            Some(true) | None if room && (notified.is_some() || st.nobody_waiting()) => {
                *waiter = None;
                let rx = Self::push_locked(&mut st, m);
                drop(st);
                if let Some(w) = rx {
                    w.wake();
                }
                return Poll::Ready(Ok(()));
            }
            // Notified, but a `try_cast` took the slot: back to the front of the line.
            Some(true) => {
                let notified = Arc::new(AtomicBool::new(false));
                st.blocked().senders.push_front(SendWaiter {
                    notified: notified.clone(),
                    waker: cx.waker().clone(),
                });
                *waiter = Some(notified);
            }
            // Still in line: keep the waker current.
            Some(false) => {
                if let Some(me) = waiter.as_ref()
                    && let Some(entry) = st
                        .blocked()
                        .senders
                        .iter_mut()
                        .find(|s| Arc::ptr_eq(&s.notified, me))
                    && !entry.waker.will_wake(cx.waker())
                {
                    entry.waker = cx.waker().clone();
                }
            }
            None => {
                let notified = Arc::new(AtomicBool::new(false));
                st.blocked().senders.push_back(SendWaiter {
                    notified: notified.clone(),
                    waker: cx.waker().clone(),
                });
                *waiter = Some(notified);
            }
        }
        *msg = Some(m);
        Poll::Pending
    }

    /// A waiting sender gave up (its future was dropped): leave the line, and if it had been
    /// handed a free slot, pass that slot on so no space is wasted.
    pub(crate) fn cancel_push(&self, waiter: &Arc<AtomicBool>) {
        let mut st = self.lock();
        if st.status.refusal().is_some() {
            // The exit already emptied the line and dropped every promise.
            return;
        }
        let next = if waiter.load(Ordering::Relaxed) {
            st.blocked().reserved -= 1;
            if st.messages + st.reserved() < self.capacity {
                Self::notify_sender(&mut st)
            } else {
                None
            }
        } else {
            st.blocked()
                .senders
                .retain(|s| !Arc::ptr_eq(&s.notified, waiter));
            None
        };
        drop(st);
        if let Some(w) = next {
            w.wake();
        }
    }

    fn notify_sender(st: &mut State<M>) -> Option<Waker> {
        let blocked = st.blocked.as_mut()?;
        let next = blocked.senders.pop_front()?;
        next.notified.store(true, Ordering::Relaxed);
        blocked.reserved += 1;
        Some(next.waker)
    }

    pub(crate) fn poll_recv(&self, cx: &mut TaskContext<'_>) -> Poll<Envelope<M>> {
        match self.pop(Some(cx)) {
            Some(env) => Poll::Ready(env),
            None => Poll::Pending,
        }
    }

    pub(crate) fn try_recv(&self) -> Option<Envelope<M>> {
        self.pop(None)
    }

    /// Takes the next envelope, handing the freed slot to the first blocked sender; when the
    /// mailbox is empty, registers `cx`'s waker (if given) for the next arrival.
    fn pop(&self, cx: Option<&mut TaskContext<'_>>) -> Option<Envelope<M>> {
        let mut st = self.lock();
        let Some(env) = st.queue.pop_front() else {
            if let Some(cx) = cx {
                match &st.rx_waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => st.rx_waker = Some(cx.waker().clone()),
                }
            }
            return None;
        };
        let sender = if matches!(env, Envelope::Msg(_)) {
            st.messages -= 1;
            Self::notify_sender(&mut st)
        } else {
            None
        };
        drop(st);
        if let Some(w) = sender {
            w.wake();
        }
        Some(env)
    }

    /// Removes a not-yet-received `Down` notice for monitor `key` from this mailbox.
    pub(crate) fn flush_down(&self, key: u64) {
        self.lock().queue.retain(|env| {
            !matches!(env, Envelope::Signal(s) if matches!(&**s, Info::Down { id, .. } if id.key == key))
        });
    }

    pub(crate) fn set_trap_exit(&self, trap: bool) -> bool {
        std::mem::replace(&mut self.lock().trap_exit, trap)
    }

    pub(crate) fn queued_messages(&self) -> usize {
        self.lock().messages as usize
    }

    /// Records the start handshake, before the body first runs.
    pub(crate) fn set_start_ack(&self, ack: StartAck) {
        self.lock()
            .watchers
            .insert(START_ACK, Watcher::StartAck(ack));
    }

    /// The start handshake, if one is waiting (once).
    pub(crate) fn take_start_ack(&self) -> Option<StartAck> {
        let mut st = self.lock();
        if !matches!(st.watchers.get_mut(START_ACK), Some(Watcher::StartAck(_))) {
            return None;
        }
        match st.watchers.remove(START_ACK) {
            Some(Watcher::StartAck(ack)) => Some(ack),
            _ => None,
        }
    }

    // ---- lifecycle -----------------------------------------------------------------------

    /// Records the task's abort handle (spawning happens after the record exists, so a kill may
    /// already have been requested: then the task is aborted at once).
    pub(crate) fn set_abort(&self, handle: AbortHandle) {
        let mut st = self.lock();
        match st.status {
            Status::Running => st.abort = Some(handle),
            Status::Killing(_) => {
                drop(st);
                handle.abort();
            }
            Status::Exiting(_) | Status::Exited(_) => {}
        }
    }

    pub(crate) fn kill_requested(&self) -> bool {
        self.kill_flag.load(Ordering::Acquire)
    }

    /// The reason a killed process ends with (its `Killing` reason, else `Killed`: the task was
    /// dropped without a kill request, e.g. by the runtime shutting down).
    pub(crate) fn kill_reason(&self) -> ExitReason {
        match &self.lock().status {
            Status::Killing(r) => ExitReason::clone(r),
            _ => ExitReason::Killed,
        }
    }

    /// Running → Killing(reason), aborting the task. False if the process was not running.
    fn request_kill(&self, reason: ExitReason) -> bool {
        let mut st = self.lock();
        if !matches!(st.status, Status::Running) {
            return false;
        }
        st.status = Status::Killing(Box::new(reason));
        self.kill_flag.store(true, Ordering::Release);
        let abort = st.abort.take();
        drop(st);
        if let Some(a) = abort {
            a.abort();
        }
        true
    }

    /// Publishes the exit: Running/Killing → Exiting → Exited. Links get exit signals, monitors
    /// get `Down`, hooks run, blocked senders fail, and only then do exit waiters wake and the
    /// queued messages (with any `Reply` inside) drop, so a caller that sees the exit also sees
    /// its consequences.
    pub(crate) fn finish(self: &Arc<Self>, reason: ExitReason) {
        let (queue, watchers, blocked, abort) = {
            let mut st = self.lock();
            if matches!(st.status, Status::Exiting(_) | Status::Exited(_)) {
                return;
            }
            st.status = Status::Exiting(Box::new(reason.clone()));
            st.messages = 0;
            st.rx_waker = None;
            (
                std::mem::take(&mut st.queue),
                st.watchers.take_all(),
                st.blocked.take(),
                st.abort.take(),
            )
        };
        drop(abort);
        if reason.is_abnormal() {
            tracing::debug!(pid = self.id.0, %reason, "process exited");
        } else {
            tracing::trace!(pid = self.id.0, %reason, "process exited");
        }
        for s in blocked.into_iter().flat_map(|b| b.senders) {
            s.waker.wake();
        }
        let me = self.pid();
        let mut waiters = Vec::new();
        for (key, watcher) in watchers {
            match watcher {
                Watcher::Link(link) => link.0.exit_signal(me.clone(), reason.clone(), true),
                Watcher::Monitor(watcher) => {
                    let id = MonitorRef {
                        key,
                        target: me.clone(),
                    };
                    watcher.0.down(id, me.clone(), reason.clone());
                }
                Watcher::Hook(hook) => hook(&me, &reason),
                Watcher::Waiter(w) => waiters.push(w),
                // Never acknowledged: dropping it tells the waiting supervisor so.
                Watcher::StartAck(ack) => drop(ack),
            }
        }
        let late = {
            let mut st = self.lock();
            st.status = Status::Exited(Box::new(reason));
            st.watchers.take_all()
        };
        // Only waiters can register while Exiting (monitors and links see the exit at once).
        for (_, watcher) in late {
            if let Watcher::Waiter(w) = watcher {
                waiters.push(w);
            }
        }
        for w in waiters {
            w.wake();
        }
        drop(queue);
    }
}

#[cfg(test)]
mod tests;
