//! What a supervisor knows about a child: [`ChildSpec`] and its parts ([`ChildId`], [`Restart`],
//! [`Shutdown`], [`ChildKind`]) and the reports
//! ([`ChildInfo`], [`ChildCounts`]).

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use super::child::{Child, Slot};
use super::start::{OnAck, Starting};
use crate::exit::ExitReason;
use crate::process::{
    Addr, Context, Core, ExitHook, Pid, Process, SpawnConfig, StartAck, Timeout, Watcher, next_key,
    start, try_link_new,
};

/// A child's name inside its supervisor. It survives restarts (the process id does not).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChildId(Cow<'static, str>);

impl ChildId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&'static str> for ChildId {
    fn from(id: &'static str) -> Self {
        Self(Cow::Borrowed(id))
    }
}

impl From<String> for ChildId {
    fn from(id: String) -> Self {
        Self(Cow::Owned(id))
    }
}

impl fmt::Display for ChildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ChildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// When a child is restarted (OTP's restart types).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(clippy::exhaustive_enums)] // closed: OTP's three restart types
pub enum Restart {
    /// Always restarted, whatever the exit reason.
    Permanent,
    /// Restarted only after an abnormal exit (not [`ExitReason::Normal`] or
    /// [`ExitReason::Shutdown`]).
    Transient,
    /// Never restarted; forgotten once it exits.
    Temporary,
}

impl Restart {
    /// Whether a child of this type that exited with `reason` is restarted.
    pub fn restarts_after(self, reason: &ExitReason) -> bool {
        match self {
            Self::Permanent => true,
            Self::Transient => reason.is_abnormal(),
            Self::Temporary => false,
        }
    }
}

/// How a supervisor stops a child (OTP's shutdown values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(clippy::exhaustive_enums)] // closed: OTP's shutdown values
pub enum Shutdown {
    /// Killed at once ([`ExitReason::Killed`]), without a chance to clean up.
    Brutal,
    /// Sent an exit signal with [`ExitReason::Shutdown`] (a child that traps exits receives it
    /// as [`Info::Exit`](crate::Info::Exit) and may say goodbye), then killed if it has not
    /// exited within this time.
    Timeout(Duration),
    /// Sent the shutdown exit signal and waited for, however long it takes (the default for
    /// supervisors, which need the time to stop their own children).
    Infinity,
}

impl Shutdown {
    /// The default for workers: five seconds to exit, as in OTP.
    pub const WORKER_DEFAULT: Self = Self::Timeout(Duration::from_secs(5));
}

/// Whether a child is a worker or a supervisor (reported by `count_children`; supervisors
/// default to [`Shutdown::Infinity`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(clippy::exhaustive_enums)] // closed: OTP's worker or supervisor
pub enum ChildKind {
    /// Does work.
    Worker,
    /// Supervises other processes.
    Supervisor,
}

/// Spawns a new incarnation of a child into a prepared process record, with its parent and
/// its start handshake.
pub(crate) type RepeatStart<M> = Arc<dyn Fn(Arc<Process<M>>, Pid, Option<StartAck>) + Send + Sync>;
/// Spawns the one and only incarnation of a temporary child.
pub(crate) type OnceStart<M> = Box<dyn FnOnce(Arc<Process<M>>, Pid, Option<StartAck>) + Send>;

pub(crate) enum StartFn<M> {
    Repeat(RepeatStart<M>),
    Once(OnceStart<M>),
}

/// How to start (and restart) one child: its id, its body, and the OTP policies that apply
/// to it.
///
/// The restart type is chosen by the constructor, because it decides what the start function
/// must be able to do: [`permanent`](Self::permanent) and [`transient`](Self::transient)
/// children may run again after a restart, so their start is `Fn`; a
/// [`temporary`](Self::temporary) child runs once, so its start is `FnOnce` and may own a
/// value, such as an accepted socket.
///
/// # Examples
/// ```
/// use beamline_process::{ChildSpec, Event, Shutdown};
/// use std::time::Duration;
///
/// // Restartable: the start runs again after every restart.
/// let worker = ChildSpec::permanent("ticker", |mut ctx| async move {
///     loop { let _: Event<()> = ctx.recv().await; }
/// })
/// .shutdown(Shutdown::Timeout(Duration::from_secs(1)));
///
/// // One-shot: the start owns a value and runs once.
/// let greeting = String::from("hello");
/// let once = ChildSpec::<()>::temporary("greeter", move |_ctx| async move {
///     println!("{greeting}");
///     Ok(())
/// });
/// # let _ = (worker, once);
/// ```
pub struct ChildSpec<M> {
    pub(crate) id: ChildId,
    pub(crate) restart: Restart,
    pub(crate) shutdown: Shutdown,
    /// Whether `shutdown` was set explicitly (then `kind` leaves it alone).
    shutdown_set: bool,
    pub(crate) kind: ChildKind,
    pub(crate) config: SpawnConfig,
    /// `Some`: the child acknowledges its start, and its supervisor waits this long for it.
    pub(crate) start_timeout: Option<Timeout>,
    pub(crate) start: StartFn<M>,
    /// The stable handle's slot, made by the first [`handle`](Self::handle) (or when the
    /// spec is given to a supervisor): a spec nobody holds a handle to costs no allocation.
    pub(crate) slot: OnceLock<Arc<Slot<M>>>,
}

impl<M: Send + 'static> ChildSpec<M> {
    fn new(id: ChildId, restart: Restart, start: StartFn<M>) -> Self {
        Self {
            id,
            restart,
            shutdown: Shutdown::WORKER_DEFAULT,
            shutdown_set: false,
            kind: ChildKind::Worker,
            config: SpawnConfig::default(),
            start_timeout: None,
            start,
            slot: OnceLock::new(),
        }
    }

    fn repeat<S, Fut>(id: ChildId, restart: Restart, start_fn: S) -> Self
    where
        S: Fn(Context<M>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ExitReason>> + Send + 'static,
    {
        let run: RepeatStart<M> =
            Arc::new(move |proc, parent, ack| start(proc, Some(parent), ack, &start_fn));
        Self::new(id, restart, StartFn::Repeat(run))
    }

    /// A child that is always restarted. `start` builds the body of each incarnation.
    pub fn permanent<S, Fut>(id: impl Into<ChildId>, start: S) -> Self
    where
        S: Fn(Context<M>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ExitReason>> + Send + 'static,
    {
        Self::repeat(id.into(), Restart::Permanent, start)
    }

    /// A child restarted only after an abnormal exit. `start` builds the body of each
    /// incarnation.
    pub fn transient<S, Fut>(id: impl Into<ChildId>, start: S) -> Self
    where
        S: Fn(Context<M>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ExitReason>> + Send + 'static,
    {
        Self::repeat(id.into(), Restart::Transient, start)
    }

    /// A child that is never restarted. `start` runs once and may own values (a socket).
    pub fn temporary<S, Fut>(id: impl Into<ChildId>, start_fn: S) -> Self
    where
        S: FnOnce(Context<M>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), ExitReason>> + Send + 'static,
    {
        let run: OnceStart<M> =
            Box::new(move |proc, parent, ack| start(proc, Some(parent), ack, start_fn));
        Self::new(id.into(), Restart::Temporary, StartFn::Once(run))
    }

    /// A permanent child running a [`GenServer`](crate::GenServer): `make` builds the
    /// server's state for each incarnation, and [`serve`](crate::serve) runs it. Its start
    /// is [`acknowledged`](Self::acknowledged) as OTP's `gen_server:start_link` is: the
    /// supervisor starts the next child only once `init` has returned `Ok`, and an `init`
    /// that fails (or is still running after 5 s) fails the start. Chain
    /// [`acknowledged(t)`](Self::acknowledged) to wait another time.
    pub fn gen_server<S, F>(id: impl Into<ChildId>, make: F) -> Self
    where
        S: crate::GenServer<Message = M>,
        F: Fn() -> S + Send + Sync + 'static,
    {
        Self::permanent(id, move |ctx| crate::serve(ctx, make()))
            .acknowledged(Duration::from_secs(5))
    }

    /// How the supervisor stops this child. Default: [`Shutdown::WORKER_DEFAULT`] for workers,
    /// [`Shutdown::Infinity`] for supervisors.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self.shutdown_set = true;
        self
    }

    /// Marks the child as a worker or a supervisor. Unless [`shutdown`](Self::shutdown) was
    /// set, the default follows: supervisors get [`Shutdown::Infinity`].
    pub fn kind(mut self, kind: ChildKind) -> Self {
        self.kind = kind;
        if !self.shutdown_set {
            self.shutdown = match kind {
                ChildKind::Worker => Shutdown::WORKER_DEFAULT,
                ChildKind::Supervisor => Shutdown::Infinity,
            };
        }
        self
    }

    /// The child's mailbox capacity (default [`DEFAULT_CAPACITY`](crate::DEFAULT_CAPACITY)).
    pub fn capacity(mut self, capacity: NonZeroUsize) -> Self {
        self.config = self.config.capacity(capacity);
        self
    }

    /// Makes the child trap exits from its first instant (see [`SpawnConfig::trap_exit`]):
    /// the supervisor's shutdown signal then always arrives as
    /// [`Info::Exit`](crate::Info::Exit), even if it comes before the body first runs.
    pub fn trap_exit(mut self, trap: bool) -> Self {
        self.config = self.config.trap_exit(trap);
        self
    }

    /// Makes the start of this child a handshake (OTP's synchronous start): the supervisor
    /// waits, at most `timeout`, for the child to acknowledge with
    /// [`Context::started`](crate::Context::started) ([`serve`](crate::serve) does it when
    /// the [`GenServer`](crate::GenServer)'s `init` returns) before it starts the next child,
    /// and a [`Supervisor`](crate::Supervisor)'s own start returns only after every child has
    /// started. A child that exits before acknowledging, or is still silent at the timeout
    /// (it is then killed), fails its start: [`StartError::Child`](crate::StartError::Child)
    /// for a supervisor's first start (the children started before it are stopped, in
    /// reverse order), another exit of the child for a restart (counted against the restart
    /// intensity), [`StartChildError::Failed`](crate::StartChildError::Failed) for
    /// [`DynamicSupervisor::start_child_acknowledged`](crate::DynamicSupervisor::start_child_acknowledged).
    ///
    /// Without it (the default) a child counts as started once it is spawned, and nothing
    /// orders its setup before its later siblings'. While a supervisor waits it serves no
    /// request, so a child must not call its own supervisor before acknowledging.
    pub fn acknowledged(mut self, timeout: impl Into<Timeout>) -> Self {
        self.start_timeout = Some(timeout.into());
        self
    }

    /// The child's id.
    pub fn id(&self) -> &ChildId {
        &self.id
    }

    /// The child's restart type.
    pub fn restart(&self) -> Restart {
        self.restart
    }

    /// A stable handle to this child: it always reaches the current incarnation, across
    /// restarts. Before the child first starts, sends through it fail with
    /// [`ExitReason::NoProc`].
    pub fn handle(&self) -> Child<M> {
        Child {
            slot: self.slot.get_or_init(Slot::unstarted).clone(),
        }
    }

    /// For a restartable spec, what a supervisor keeps to start it again (sharing the start
    /// function and the stable handle); `None` for a one-shot spec.
    pub(crate) fn respawner(&self) -> Option<ErasedChild> {
        let StartFn::Repeat(run) = &self.start else {
            return None;
        };
        Some(ErasedChild {
            id: self.id.clone(),
            restart: self.restart,
            shutdown: self.shutdown,
            kind: self.kind,
            start_timeout: self.start_timeout,
            starter: Arc::new(TypedStarter {
                config: self.config,
                start: TypedStart::Repeat(run.clone()),
                slot: self.slot.get().cloned(),
            }),
        })
    }

    /// Erases the message type, for a supervisor's list of children. A one-shot start is
    /// kept behind a lock so the erased child can be shared (a nested supervisor's spec is
    /// cloned for each of its incarnations); it runs at most once. The child always gets a
    /// stable handle here, so the supervisor can hand one out by id.
    pub(crate) fn erase(self) -> ErasedChild {
        let starter: Arc<dyn Starter> = Arc::new(TypedStarter {
            config: self.config,
            start: match self.start {
                StartFn::Repeat(run) => TypedStart::Repeat(run),
                StartFn::Once(run) => TypedStart::Once(Mutex::new(Some(run))),
            },
            slot: Some(self.slot.into_inner().unwrap_or_else(Slot::unstarted)),
        });
        ErasedChild {
            id: self.id,
            restart: self.restart,
            shutdown: self.shutdown,
            kind: self.kind,
            start_timeout: self.start_timeout,
            starter,
        }
    }
}

impl<M> fmt::Debug for ChildSpec<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("kind", &self.kind)
            .field("start_timeout", &self.start_timeout)
            .finish_non_exhaustive()
    }
}

/// A child spec with its message type erased: what a supervisor keeps per child.
#[derive(Clone)]
pub(crate) struct ErasedChild {
    pub(crate) id: ChildId,
    pub(crate) restart: Restart,
    pub(crate) shutdown: Shutdown,
    pub(crate) kind: ChildKind,
    pub(crate) start_timeout: Option<Timeout>,
    pub(crate) starter: Arc<dyn Starter>,
}

impl ErasedChild {
    /// Starts a new incarnation linked to `parent` and returns it with its handshake (to
    /// wait on with [`Starting::acknowledged`]); `None` if this is a one-shot start already
    /// used.
    pub(crate) fn start(&self, parent: &Pid, link: LinkTo) -> Option<Starting> {
        Some(
            self.starter
                .prepare(parent, link)?
                .run(self.start_timeout, None),
        )
    }
}

/// A new incarnation, linked but not running yet: its pid is known (a supervisor records it
/// before any of the child's code runs), and [`run`](Self::run) starts it.
pub(crate) struct Prepared {
    pub(crate) pid: Pid,
    run: Box<dyn FnOnce(Option<StartAck>) + Send>,
}

impl Prepared {
    /// Runs the child's start. With a start timeout the child gets an ack (which runs
    /// `on_ack` first when the child acknowledges) and the returned [`Starting`] waits for it;
    /// without one it counts as started now.
    pub(crate) fn run(self, timeout: Option<Timeout>, on_ack: Option<OnAck>) -> Starting {
        match timeout {
            Some(timeout) => {
                let (ack, starting) = Starting::handshake(self.pid, timeout, on_ack);
                (self.run)(Some(ack));
                starting
            }
            None => {
                (self.run)(None);
                Starting::spawned(self.pid)
            }
        }
    }
}

/// How a new child is tied to its supervisor.
pub(crate) enum LinkTo {
    /// An ordinary link, recorded on both sides.
    Both,
    /// Recorded on the child only: the supervisor's own table of children stands in for its
    /// side of the link (it signals every child in it when it exits), which saves a map entry
    /// per child in a supervisor with thousands of them.
    ChildSide,
    /// No link on the child's side either: this hook tells the supervisor's table of the
    /// child's exit directly (a temporary child, which is never restarted, needs nothing
    /// more, and its exit then costs the supervisor's task nothing).
    Hook(ExitHook),
}

/// Starts incarnations of one child.
pub(crate) trait Starter: Send + Sync {
    /// A new incarnation linked to `parent`, not running yet; `None` if this is a one-shot
    /// start already used.
    fn prepare(&self, parent: &Pid, link: LinkTo) -> Option<Prepared>;

    /// The child's stable handle slot (an `Arc<Slot<M>>`), for a typed lookup by id.
    fn slot(&self) -> Option<Arc<dyn Any + Send + Sync>>;
}

enum TypedStart<M> {
    Repeat(RepeatStart<M>),
    Once(Mutex<Option<OnceStart<M>>>),
}

struct TypedStarter<M> {
    config: SpawnConfig,
    start: TypedStart<M>,
    slot: Option<Arc<Slot<M>>>,
}

impl<M: Send + 'static> Starter for TypedStarter<M> {
    fn prepare(&self, parent: &Pid, link: LinkTo) -> Option<Prepared> {
        let start_fn = match &self.start {
            TypedStart::Repeat(run) => StartFn::Repeat(run.clone()),
            TypedStart::Once(cell) => {
                StartFn::Once(cell.lock().unwrap_or_else(PoisonError::into_inner).take()?)
            }
        };
        // The parent is the supervisor calling us, running: linking cannot fail.
        let proc = prepare_linked(self.config, parent, link).ok()?;
        let pid = proc.pid();
        let parent = parent.clone();
        let slot = self.slot.clone();
        Some(Prepared {
            pid,
            run: Box::new(move |ack| {
                run_start(start_fn, proc, &parent, slot.as_ref(), ack);
            }),
        })
    }

    fn slot(&self) -> Option<Arc<dyn Any + Send + Sync>> {
        let slot: Arc<dyn Any + Send + Sync> = self.slot.clone()?;
        Some(slot)
    }
}

/// A new process record for a child, linked with `parent` before anything runs.
///
/// # Errors
/// `parent`'s exit reason if it already exited (nothing is linked then).
pub(crate) fn prepare_linked<M: Send + 'static>(
    config: SpawnConfig,
    parent: &Pid,
    link: LinkTo,
) -> Result<Arc<Process<M>>, ExitReason> {
    let proc = Process::new(config.mailbox_capacity(), config.traps_exits());
    match link {
        LinkTo::Both => try_link_new(&proc, parent)?,
        LinkTo::ChildSide => {
            if let Some(reason) = parent.exit_reason() {
                return Err(reason);
            }
            let _ = Core::add_link(&*proc, parent.clone());
        }
        LinkTo::Hook(hook) => {
            if let Some(reason) = parent.exit_reason() {
                return Err(reason);
            }
            let _ = proc.add_watcher(next_key(), Watcher::Hook(hook));
        }
    }
    Ok(proc)
}

/// Points the stable handle at `proc` and runs its start (the body is built and spawned),
/// handing it `ack` for its start handshake.
pub(crate) fn run_start<M: Send + 'static>(
    start_fn: StartFn<M>,
    proc: Arc<Process<M>>,
    parent: &Pid,
    slot: Option<&Arc<Slot<M>>>,
    ack: Option<StartAck>,
) -> Addr<M> {
    let addr = Addr { proc: proc.clone() };
    if let Some(slot) = slot {
        slot.set(addr.clone(), parent);
    }
    match start_fn {
        StartFn::Repeat(run) => run(proc, parent.clone(), ack),
        StartFn::Once(run) => run(proc, parent.clone(), ack),
    }
    addr
}

/// One child, as reported by `which_children`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ChildInfo {
    /// The child's id.
    pub id: ChildId,
    /// The running incarnation; `None` while not running (a transient child that exited
    /// normally, kept so a group restart can start it again).
    pub pid: Option<Pid>,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// Its restart type.
    pub restart: Restart,
    /// How many times the supervisor has restarted it.
    pub restarts: u32,
}

/// Child counts, as reported by `count_children` (OTP's fields).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChildCounts {
    /// Children the supervisor knows about, running or not.
    pub specs: usize,
    /// Children running now.
    pub active: usize,
    /// Children that are supervisors.
    pub supervisors: usize,
    /// Children that are workers.
    pub workers: usize,
}

impl ChildCounts {
    pub(crate) fn add(&mut self, kind: ChildKind, running: bool) {
        self.specs += 1;
        self.active += usize::from(running);
        match kind {
            ChildKind::Worker => self.workers += 1,
            ChildKind::Supervisor => self.supervisors += 1,
        }
    }
}

#[cfg(test)]
mod tests;
