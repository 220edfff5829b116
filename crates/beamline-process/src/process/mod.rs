//! Processes: [`spawn`], the [`Addr`] you message them through, the [`Context`] a body runs
//! with, [`Pid`]s for links and monitors, and the [`Event`]s a body receives.

mod core;
mod deadline;
mod idmap;
mod task;

use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tokio::sync::oneshot;

pub(crate) use self::core::{Core, ExitHook, Process, StartAck, Watcher, next_key};
use self::core::{Envelope, Rejected};
use self::deadline::Deadline;
pub(crate) use self::task::start;
use crate::error::{CallError, CastError, TryCastError};
use crate::exit::ExitReason;

/// The mailbox capacity of a process unless configured otherwise.
pub const DEFAULT_CAPACITY: usize = 1024;

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
/// send it messages (that is [`Addr`]). Processes of different message types meet through `Pid`s.
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

/// Identifies one monitor, returned by [`Context::monitor`] and carried by the
/// [`Event::Down`] it produces.
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

/// What a process receives from [`Context::recv`].
///
/// User messages and notices share one FIFO, so a process's last messages to you arrive before
/// the notice of its exit (OTP's ordering between two processes).
#[derive(Debug)]
pub enum Event<M> {
    /// A message sent with [`Addr::cast`], [`Addr::try_cast`] or [`Addr::call`].
    Msg(M),
    /// An exit signal, delivered as a message because this process traps exits
    /// ([`Context::trap_exit`]): a linked process ended, or someone (a supervisor shutting this
    /// child down, with [`ExitReason::Shutdown`]) sent one with [`Context::exit`].
    Exit {
        /// The process the signal came from.
        from: Pid,
        /// Its reason.
        reason: ExitReason,
    },
    /// A monitored process ended (or was already gone when monitored).
    Down {
        /// The monitor, as returned by [`Context::monitor`].
        id: MonitorRef,
        /// The process that ended.
        pid: Pid,
        /// Why it ended.
        reason: ExitReason,
    },
}

impl<M> Event<M> {
    fn from_envelope(env: Envelope<M>) -> Self {
        match env {
            Envelope::Msg(m) => Self::Msg(m),
            Envelope::Signal(signal) => match *signal {
                Info::Exit { from, reason } => Self::Exit { from, reason },
                Info::Down { id, pid, reason } => Self::Down { id, pid, reason },
            },
        }
    }
}

/// A notice rather than a message: an exit signal delivered to a process that traps exits, or
/// a monitor's `Down`. [`GenServer::handle_info`](crate::GenServer::handle_info) receives
/// these (except an exit signal from the parent, which stops the server); a plain body
/// receives them as the matching [`Event`] variants.
#[derive(Debug)]
#[non_exhaustive]
pub enum Info {
    /// An exit signal; see [`Event::Exit`].
    Exit {
        /// Where the signal came from.
        from: Pid,
        /// Its reason.
        reason: ExitReason,
    },
    /// A monitored process ended; see [`Event::Down`].
    Down {
        /// The monitor.
        id: MonitorRef,
        /// The process that ended.
        pid: Pid,
        /// Why.
        reason: ExitReason,
    },
}

/// The reply half of a [`call`](Addr::call): put inside the request message, answered with
/// [`send`](Self::send).
///
/// Dropping it unanswered is allowed: if the process then exits, the caller gets
/// [`CallError::Exited`]; if it keeps running, the caller gets [`CallError::Timeout`] (as in
/// OTP, where a server that never replies lets the call time out).
pub struct Reply<R> {
    tx: oneshot::Sender<R>,
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

/// How to spawn a process.
#[derive(Clone, Copy, Debug)]
pub struct SpawnConfig {
    capacity: NonZeroUsize,
    trap_exit: bool,
}

impl Default for SpawnConfig {
    fn default() -> Self {
        Self {
            capacity: NonZeroUsize::new(DEFAULT_CAPACITY).unwrap_or(NonZeroUsize::MIN),
            trap_exit: false,
        }
    }
}

impl SpawnConfig {
    /// The defaults: a mailbox of [`DEFAULT_CAPACITY`] messages.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many user messages the mailbox holds before [`Addr::cast`] waits and
    /// [`Addr::try_cast`] fails with `Full`. Notices (exit signals, `Down`) never count against
    /// it and are never refused. The mailbox allocates as messages arrive, not up front.
    pub fn capacity(mut self, capacity: NonZeroUsize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Whether the process traps exits from the start (see [`Context::trap_exit`]). Set it
    /// here, rather than first thing in the body, when a shutdown signal must never be missed:
    /// one can arrive before the body first runs (a supervisor stopping a child it has just
    /// started), and a process not yet trapping exits would be ended by it at once.
    pub fn trap_exit(mut self, trap: bool) -> Self {
        self.trap_exit = trap;
        self
    }

    pub(crate) fn mailbox_capacity(&self) -> usize {
        self.capacity.get()
    }

    pub(crate) fn traps_exits(&self) -> bool {
        self.trap_exit
    }
}

/// Spawns a process running `body` with a mailbox of [`DEFAULT_CAPACITY`] messages.
///
/// `body` receives the process's [`Context`] and returns its future, which ends the process
/// with `Ok(())` ([`ExitReason::Normal`]) or `Err(reason)`; `?` turns any error into
/// [`ExitReason::Error`]. The process is a tokio task: it costs
/// one task plus a small record, and its mailbox allocates only when messages arrive.
///
/// # Panics
/// If called outside a tokio runtime. A panic *inside* `body` (or while creating its future)
/// does not propagate: it becomes the process's [`ExitReason::Panicked`].
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use beamline_process::{spawn, Event, Reply};
///
/// enum Msg { Add(u64), Get(Reply<u64>) }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let counter = spawn(|mut ctx| async move {
///     let mut total = 0;
///     loop {
///         match ctx.recv().await {
///             Event::Msg(Msg::Add(n)) => total += n,
///             Event::Msg(Msg::Get(reply)) => { let _ = reply.send(total); }
///             Event::Exit { .. } | Event::Down { .. } => {}
///         }
///     }
/// });
/// counter.cast(Msg::Add(2)).await.unwrap();
/// let total = counter.call(Msg::Get, Duration::from_secs(1)).await.unwrap();
/// assert_eq!(total, 2);
/// # }
/// ```
pub fn spawn<M, S, Fut>(body: S) -> Addr<M>
where
    M: Send + 'static,
    S: FnOnce(Context<M>) -> Fut,
    Fut: Future<Output = Result<(), ExitReason>> + Send + 'static,
{
    spawn_with(SpawnConfig::default(), body)
}

/// [`spawn`] with a [`SpawnConfig`].
///
/// # Panics
/// As [`spawn`]: only outside a tokio runtime.
pub fn spawn_with<M, S, Fut>(config: SpawnConfig, body: S) -> Addr<M>
where
    M: Send + 'static,
    S: FnOnce(Context<M>) -> Fut,
    Fut: Future<Output = Result<(), ExitReason>> + Send + 'static,
{
    let proc = Process::new(config.mailbox_capacity(), config.traps_exits());
    start(proc.clone(), None, None, body);
    Addr { proc }
}

/// The address of a process that receives messages of type `M`: cheap to clone, safe to share.
///
/// An `Addr` names one incarnation. When the process exits, sends fail with its reason; a
/// supervised child that is restarted is a new process, reached through its stable
/// [`Child`](crate::Child) handle instead.
pub struct Addr<M> {
    pub(crate) proc: Arc<Process<M>>,
}

impl<M> Clone for Addr<M> {
    fn clone(&self) -> Self {
        Self {
            proc: self.proc.clone(),
        }
    }
}

impl<M: Send + 'static> Addr<M> {
    /// The process's id.
    pub fn id(&self) -> ProcessId {
        self.proc.id()
    }

    /// The untyped handle, for links and monitors.
    pub fn pid(&self) -> Pid {
        self.proc.pid()
    }

    /// True until the process starts exiting (or is killed).
    pub fn is_alive(&self) -> bool {
        Core::is_alive(&*self.proc)
    }

    /// Why the process ended, once it has.
    pub fn exit_reason(&self) -> Option<ExitReason> {
        Core::exit_reason(&*self.proc)
    }

    /// Waits for the process to end; see [`Pid::exited`].
    pub fn exited(&self) -> Exited {
        self.pid().exited()
    }

    /// Kills the process; see [`Pid::kill`].
    pub fn kill(&self) -> bool {
        Core::kill(&*self.proc)
    }

    /// User messages waiting in the mailbox.
    pub fn mailbox_len(&self) -> usize {
        self.proc.queued_messages()
    }

    /// Sends a message, waiting for mailbox space if it is full (backpressure). Waiting senders
    /// are served first come, first served. Cancel-safe: dropping the future before it
    /// completes sends nothing. Cooperative: it spends a unit of tokio's task budget, and
    /// yields first when the budget is spent, as a tokio channel's `send` does.
    ///
    /// # Errors
    /// [`CastError::Exited`] if the process exited (or is being killed) before the message was
    /// queued; the message comes back.
    pub fn cast(&self, message: M) -> Cast<'_, M> {
        Cast {
            proc: &self.proc,
            message: Some(message),
            waiter: None,
        }
    }

    /// Sends a message if there is room right now, without waiting. Cheap enough to drop slow
    /// consumers on a hot path: one short lock, no allocation.
    ///
    /// # Errors
    /// [`TryCastError::Full`] if the mailbox is at capacity, [`TryCastError::Exited`] if the
    /// process is gone; either way the message comes back.
    pub fn try_cast(&self, message: M) -> Result<(), TryCastError<M>> {
        self.proc
            .try_push(message, false)
            .map_err(|rejected| match rejected {
                Rejected::Full(message) => TryCastError::Full {
                    pid: self.id(),
                    message,
                },
                Rejected::Exited(reason, message) => TryCastError::Exited {
                    pid: self.id(),
                    reason,
                    message,
                },
            })
    }

    /// Sends a request and waits for its reply. `make` builds the message around the [`Reply`]
    /// the process answers through, e.g. `addr.call(Msg::Get, timeout)` for `Msg::Get(Reply<u64>)`.
    ///
    /// The call ends in the reply, a timeout, or the process's exit reason, and never hangs on
    /// a dead process: if the process panics or returns while holding the request, or exits
    /// with the request still queued, the call fails with [`CallError::Exited`] as soon as the
    /// exit is published. With [`Timeout::Infinity`] (OTP's `infinity`) only a process that
    /// stays alive without ever answering can keep the caller waiting.
    ///
    /// # Errors
    /// - [`CallError::Timeout`]: no reply within the timeout (time spent waiting for mailbox
    ///   space counts).
    /// - [`CallError::Exited`]: the process exited before replying.
    ///
    /// # Panics
    /// With a finite timeout, outside a tokio runtime with a time driver (as
    /// `tokio::time::timeout`).
    pub async fn call<R, F>(&self, make: F, timeout: impl Into<Timeout>) -> Result<R, CallError>
    where
        F: FnOnce(Reply<R>) -> M,
    {
        let pid = self.id();
        let exited = |reason| CallError::Exited { pid, reason };
        let timeout = match timeout.into() {
            Timeout::After(timeout) => timeout,
            Timeout::Infinity => return self.request(make).await.map_err(exited),
        };
        let mut deadline = std::pin::pin!(Deadline::after(timeout));
        let mut exchange = std::pin::pin!(self.request(make));
        std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = exchange.as_mut().poll(cx) {
                return Poll::Ready(result.map_err(exited));
            }
            deadline
                .as_mut()
                .poll(cx)
                .map(|()| Err(CallError::Timeout { pid, timeout }))
        })
        .await
    }

    /// A call without a deadline: ends in the reply or the process's exit reason. (Our own
    /// supervisors use it directly: they always answer or exit.)
    pub(crate) async fn request<R, F>(&self, make: F) -> Result<R, ExitReason>
    where
        F: FnOnce(Reply<R>) -> M,
    {
        let (tx, rx) = oneshot::channel();
        if let Err(CastError::Exited { reason, .. }) = self.cast(make(Reply { tx })).await {
            return Err(reason);
        }
        match rx.await {
            Ok(value) => Ok(value),
            // The reply was dropped unanswered: wait for the exit (within any deadline).
            Err(_) => Err(self.exited().await),
        }
    }
}

/// How long [`Addr::call`] waits for its reply. A [`Duration`] converts into
/// [`Timeout::After`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timeout {
    /// At most this long.
    After(Duration),
    /// Until the reply or the process's exit, however long (OTP's `infinity`). Skips the
    /// timer, which is most of what a call costs beyond its two messages. A process that
    /// calls itself this way waits for ever.
    Infinity,
}

impl From<Duration> for Timeout {
    fn from(timeout: Duration) -> Self {
        Self::After(timeout)
    }
}

impl<M> PartialEq for Addr<M> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.proc, &other.proc)
    }
}

impl<M> Eq for Addr<M> {}

impl<M: Send + 'static> Hash for Addr<M> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id().hash(state);
    }
}

impl<M: Send + 'static> fmt::Debug for Addr<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Addr({})", self.id())
    }
}

impl<M: Send + 'static> From<Addr<M>> for Pid {
    fn from(addr: Addr<M>) -> Self {
        Pid(addr.proc)
    }
}

/// The future of [`Addr::cast`]: resolves once the message is queued, or fails with the
/// process's exit reason (handing the message back). Dropping it before it resolves sends
/// nothing and gives up its place in line (a slot it had been promised passes to the next
/// waiting sender).
#[must_use = "futures do nothing unless awaited"]
pub struct Cast<'a, M: Send + 'static> {
    proc: &'a Arc<Process<M>>,
    message: Option<M>,
    /// Our place in line while the mailbox is full.
    waiter: Option<Arc<AtomicBool>>,
}

// The message is moved, never pinned, so `Cast` is `Unpin` whatever `M` is.
impl<M: Send + 'static> Unpin for Cast<'_, M> {}

impl<M: Send + 'static> Future for Cast<'_, M> {
    type Output = Result<(), CastError<M>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        cooperative(cx, |cx| self.poll_cast(cx))
    }
}

impl<M: Send + 'static> Cast<'_, M> {
    fn poll_cast(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), CastError<M>>> {
        let this = self;
        if this.waiter.is_none() {
            // Fast path: room, and nobody already waiting ahead of us.
            let Some(message) = this.message.take() else {
                return Poll::Ready(Ok(()));
            };
            match this.proc.try_push(message, true) {
                Ok(()) => return Poll::Ready(Ok(())),
                Err(Rejected::Full(message)) => this.message = Some(message),
                Err(Rejected::Exited(reason, message)) => {
                    return Poll::Ready(Err(CastError::Exited {
                        pid: this.proc.id(),
                        reason,
                        message,
                    }));
                }
            }
        }
        this.proc
            .poll_push(&mut this.message, &mut this.waiter, cx)
            .map_err(|(reason, message)| CastError::Exited {
                pid: this.proc.id(),
                reason,
                message,
            })
    }
}

impl<M: Send + 'static> Drop for Cast<'_, M> {
    fn drop(&mut self) {
        if let Some(waiter) = self.waiter.take() {
            self.proc.cancel_push(&waiter);
        }
    }
}

impl<M: Send + 'static> fmt::Debug for Cast<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cast")
            .field("pid", &self.proc.id())
            .field("waiting", &self.waiter.is_some())
            .finish()
    }
}

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
    /// [`Context::spawn_link`]); `None` for a plain [`spawn`]. An [`Event::Exit`] from the
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
    /// [`spawn`], a child that is not acknowledged).
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

    /// Whether exit signals become [`Event::Exit`] messages (true) or kill this process when
    /// their reason is not [`ExitReason::Normal`] (false, the default). A process that must say
    /// goodbye on shutdown traps exits, then handles `Event::Exit { reason: Shutdown, .. }`
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

    /// Monitors `target`: when it ends, this process receives [`Event::Down`] with the returned
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
    /// [`Event::Exit`] if `target` traps exits, ignored if `reason` is
    /// [`ExitReason::Normal`], and otherwise ends `target` with `reason`.
    pub fn exit(&self, target: &Pid, reason: ExitReason) {
        target.0.exit_signal(self.pid(), reason, false);
    }

    /// Spawns a process linked to this one, with this one as its [`parent`](Self::parent).
    /// The link exists before the child runs.
    ///
    /// # Panics
    /// Only outside a tokio runtime, as [`spawn`].
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
    /// Only outside a tokio runtime, as [`spawn`].
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

/// One poll of a mailbox operation under tokio's cooperative budget, as tokio's own channels
/// do: when the task has spent its budget, `Pending` (the task is woken at once, after the
/// others had their turn) before touching the mailbox, so a loop whose casts or receives are
/// always ready still gives its worker back. A ready outcome consumes one unit.
fn cooperative<T>(
    cx: &mut TaskContext<'_>,
    poll: impl FnOnce(&mut TaskContext<'_>) -> Poll<T>,
) -> Poll<T> {
    let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
    let polled = poll(cx);
    if polled.is_ready() {
        coop.made_progress();
    }
    polled
}

impl<M: Send + 'static> fmt::Debug for Recv<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recv")
            .field("pid", &self.proc.id())
            .finish()
    }
}
