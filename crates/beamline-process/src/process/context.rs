//! The [`Context`] a process body runs with and its [`Recv`] future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use super::addr::cooperative;
use super::core::{Core, Process, Watcher, next_key};
use super::task::start;
use super::{Addr, Event, MonitorRef, Pid, ProcessId, SpawnConfig};
use crate::exit::ExitReason;

/// The context a process body runs with: its mailbox, its identity, and the OTP operations
/// (links, monitors, trapping exits, exit signals) that act on behalf of this process.
///
/// There is exactly one `Context` per process, owned by its body.
pub struct Context<M> {
    pub(crate) proc: Arc<Process<M>>,
    pub(crate) parent: Option<Pid>,
}

impl<M: Send + 'static> Context<M> {
    /// This process's id.
    pub fn id(&self) -> ProcessId {
        self.proc.id()
    }

    /// This process's untyped handle.
    pub fn pid(&self) -> Pid {
        self.proc.pid()
    }

    /// This process's address, to hand to others.
    pub fn addr(&self) -> Addr<M> {
        Addr {
            proc: self.proc.clone(),
        }
    }

    /// The process that started this one linked to itself (a supervisor, or the caller of
    /// [`Context::spawn_link`]); `None` for a plain [`spawn`](crate::spawn). An [`Info::Exit`] from the
    /// parent means "stop now" (OTP's rule; [`GenServer`](crate::GenServer) follows it).
    pub fn parent(&self) -> Option<&Pid> {
        self.parent.as_ref()
    }

    /// Acknowledges this process's start (OTP's `init` returning) to the supervisor waiting
    /// for it. A supervisor starting an [`acknowledged`](crate::ChildSpec::acknowledged) child
    /// waits for this call, up to the child's start timeout, before it starts the next child
    /// or reports its own start: call it once what the later children rely on is ready (a
    /// registered name, a bound socket). A child that exits before calling it fails the start.
    /// [`serve`](crate::serve) calls it when [`GenServer::init`](crate::GenServer::init)
    /// returns `Ok`. Does nothing after the first call, or when nobody waits (a plain
    /// [`spawn`](crate::spawn), a child that is not acknowledged).
    pub fn started(&self) {
        if let Some(ack) = self.proc.take_start_ack() {
            ack();
        }
    }

    /// Waits for the next message or notice. Cancel-safe: if the future is dropped (say, in a
    /// `tokio::select!` whose other branch won), nothing is lost. Cooperative, as
    /// [`Addr::cast`] is.
    pub fn recv(&mut self) -> Recv<'_, M> {
        Recv { proc: &self.proc }
    }

    /// The next message or notice if one is waiting.
    pub fn try_recv(&mut self) -> Option<Event<M>> {
        self.proc.try_recv().map(Event::from_envelope)
    }

    /// Whether exit signals become [`Info::Exit`] messages (true) or kill this process when
    /// their reason is not [`ExitReason::Normal`] (false, the default). A process that must say
    /// goodbye on shutdown traps exits, then handles `Event::Info(Info::Exit { reason: Shutdown, .. })`
    /// from its supervisor. [`Pid::kill`] cannot be trapped. Returns the previous setting.
    pub fn trap_exit(&self, trap: bool) -> bool {
        self.proc.set_trap_exit(trap)
    }

    /// Links this process with `other`: when either ends with an abnormal reason, the other
    /// receives an exit signal (see [`trap_exit`](Self::trap_exit)). Linking to a process that
    /// already ended delivers its exit signal at once, with its real reason.
    pub fn link(&self, other: &Pid) {
        if other.id() == self.id() {
            return;
        }
        // Our side first, so an exit signal from `other` racing with this call finds the link
        // to remove rather than leaving a stale one.
        let _ = Core::add_link(&*self.proc, other.clone());
        if let Err(reason) = other.0.add_link(self.pid()) {
            Core::remove_link(&*self.proc, other.id());
            Core::exit_signal(&*self.proc, other.clone(), reason, false);
        }
    }

    /// Removes a link (both ways). No-op if there is none.
    pub fn unlink(&self, other: &Pid) {
        Core::remove_link(&*self.proc, other.id());
        other.0.remove_link(self.id());
    }

    /// Monitors `target`: when it ends, this process receives [`Info::Down`] with the returned
    /// ref. One-way (the target is unaffected); monitoring a process that already ended
    /// delivers the `Down` at once.
    pub fn monitor(&self, target: &Pid) -> MonitorRef {
        let id = MonitorRef {
            key: next_key(),
            target: target.clone(),
        };
        if let Err((_, reason)) = target.0.add_watcher(id.key, Watcher::Monitor(self.pid())) {
            Core::down(&*self.proc, id.clone(), target.clone(), reason);
        }
        id
    }

    /// Removes a monitor, and any `Down` for it not yet received. Returns true if the monitor
    /// was still active.
    pub fn demonitor(&self, id: &MonitorRef) -> bool {
        let active = id.target.0.remove_watcher(id.key);
        self.proc.flush_down(id.key);
        active
    }

    /// Sends an exit signal from this process to `target`, as a link would: it is queued as
    /// [`Info::Exit`] if `target` traps exits, ignored if `reason` is
    /// [`ExitReason::Normal`], and otherwise ends `target` with `reason`.
    pub fn exit(&self, target: &Pid, reason: ExitReason) {
        target.0.exit_signal(self.pid(), reason, false);
    }

    /// Spawns a process linked to this one, with this one as its [`parent`](Self::parent).
    /// The link exists before the child runs.
    ///
    /// # Panics
    /// Only outside a tokio runtime, as [`spawn`](crate::spawn).
    pub fn spawn_link<N, S, Fut>(&self, body: S) -> Addr<N>
    where
        N: Send + 'static,
        S: FnOnce(Context<N>) -> Fut,
        Fut: Future<Output = Result<(), ExitReason>> + Send + 'static,
    {
        self.spawn_link_with(SpawnConfig::default(), body)
    }

    /// [`spawn_link`](Self::spawn_link) with a [`SpawnConfig`].
    ///
    /// # Panics
    /// Only outside a tokio runtime, as [`spawn`](crate::spawn).
    pub fn spawn_link_with<N, S, Fut>(&self, config: SpawnConfig, body: S) -> Addr<N>
    where
        N: Send + 'static,
        S: FnOnce(Context<N>) -> Fut,
        Fut: Future<Output = Result<(), ExitReason>> + Send + 'static,
    {
        let child = Process::new(config.mailbox_capacity(), config.traps_exits());
        link_new(&child, &self.pid());
        start(child.clone(), Some(self.pid()), None, body);
        Addr { proc: child }
    }
}

/// Links a process that has not started yet with `parent`, both ways. If `parent` already
/// exited, the new process gets its exit signal before it runs.
pub(crate) fn link_new<N: Send + 'static>(child: &Arc<Process<N>>, parent: &Pid) {
    if let Err(reason) = try_link_new(child, parent) {
        Core::exit_signal(&**child, parent.clone(), reason, false);
    }
}

/// Links a process that has not started yet with `parent`, both ways, unless `parent` already
/// exited (then nothing is linked and its reason is returned).
pub(crate) fn try_link_new<N: Send + 'static>(
    child: &Arc<Process<N>>,
    parent: &Pid,
) -> Result<(), ExitReason> {
    parent.0.add_link(child.pid())?;
    let _ = Core::add_link(&**child, parent.clone());
    Ok(())
}

impl<M: Send + 'static> fmt::Debug for Context<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("pid", &self.id())
            .field("parent", &self.parent.as_ref().map(Pid::id))
            .finish()
    }
}

/// The future of [`Context::recv`]: resolves with the next message or notice. Cancel-safe:
/// dropping it takes nothing out of the mailbox.
#[must_use = "futures do nothing unless awaited"]
pub struct Recv<'a, M> {
    proc: &'a Process<M>,
}

impl<M: Send + 'static> Future for Recv<'_, M> {
    type Output = Event<M>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Event<M>> {
        cooperative(cx, |cx| self.proc.poll_recv(cx).map(Event::from_envelope))
    }
}

impl<M: Send + 'static> fmt::Debug for Recv<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recv")
            .field("pid", &self.proc.id())
            .finish()
    }
}
