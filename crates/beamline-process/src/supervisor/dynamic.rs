//! [`DynamicSupervisor`]: children started at run time (OTP's `DynamicSupervisor`), such as one
//! process per accepted connection.

mod config;
mod run;

use self::run::{log_exit, run};
mod error;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

pub use self::config::DynamicSupervisorConfig;
pub use self::error::{StartChildError, TerminateChildError};
use super::spec::{ErasedChild, LinkTo, prepare_linked, run_start};
use super::start::{OnAck, StartTimeout, Starting, Waited};
use super::stop::{ShutdownReport, stop_child};
use super::{
    ChildCounts, ChildId, ChildInfo, ChildKind, ChildSpec, Intensity, Restart, Shutdown,
    SupervisorExited,
};
use crate::exit::ExitReason;
use crate::process::{
    Addr, ExitHook, Pid, ProcessId, Reply, SpawnConfig, Watcher, next_key, spawn_with,
};

/// A request to a dynamic supervisor process (opaque: use the [`DynamicSupervisor`] methods).
pub struct DynamicSupervisorMsg(Cmd);

enum Cmd {
    WhichChildren(Reply<Vec<ChildInfo>>),
    CountChildren(Reply<ChildCounts>),
    Shutdown(Duration, Reply<ShutdownReport>),
}

impl fmt::Debug for DynamicSupervisorMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Cmd::WhichChildren(_) => "WhichChildren",
            Cmd::CountChildren(_) => "CountChildren",
            Cmd::Shutdown(..) => "Shutdown",
        })
    }
}

/// One running child. Temporary children keep no start (it was consumed).
struct Entry {
    pid: Pid,
    /// The incarnation of the supervisor that started it, and the only one that stops,
    /// signals, counts or restarts it: a child belongs to its incarnation's child set.
    sup: ProcessId,
    id: ChildId,
    restart: Restart,
    shutdown: Shutdown,
    kind: ChildKind,
    restarts: u32,
    /// Started with a handshake not acknowledged yet: its exit is a failed start (reported
    /// to whoever waits for it), never a restart. Only the child's acknowledgement clears it.
    starting: bool,
    /// How to start it again (boxed: most children are temporary and have none).
    respawn: Option<Box<ErasedChild>>,
}

/// The lifecycle of one incarnation, as seen by `start_child`.
enum Status {
    /// Accepting children; the supervisor's address.
    Running(Addr<DynamicSupervisorMsg>),
    /// Stopping its children (they stay in the table until they exit, so a
    /// [`kill`](DynamicSupervisor::kill) still finds them); refuses new ones. The incarnation
    /// that is stopping.
    Stopping(Addr<DynamicSupervisorMsg>),
    /// Not running: never started, or exited with this reason.
    Stopped(ExitReason),
}

/// The children of every incarnation that has not finished exiting, each tagged with its
/// own (`Entry::sup`), and the status of the current one. A parent may restart the
/// supervisor between the old incarnation's exit and the moment its exit hook runs; the new
/// incarnation then starts beside the old children instead of wiping them, and the old hook
/// still signals every one of its own.
struct Table {
    status: Status,
    children: HashMap<ProcessId, Entry>,
}

impl Table {
    /// Takes the children of incarnation `sup` out of the table.
    fn take_children_of(&mut self, sup: ProcessId) -> Vec<Entry> {
        self.children
            .extract_if(|_, e| e.sup == sup)
            .map(|(_, e)| e)
            .collect()
    }

    /// Settles the start of `child`, whose wait for an acknowledgement ended without one:
    /// whoever ends the `starting` state decides, the child (it acknowledged meanwhile) or
    /// this failure (it is forgotten, never restarted).
    fn settle_failed_start(&mut self, child: ProcessId) -> Settled {
        match self.children.get(&child) {
            Some(e) if !e.starting => Settled::Acknowledged,
            Some(_) => self
                .children
                .remove(&child)
                .map_or(Settled::Gone, Settled::Forgotten),
            None => Settled::Gone,
        }
    }
}

/// How a start that ended without an acknowledgement settled.
enum Settled {
    /// The child acknowledged after all: it started.
    Acknowledged,
    /// It was still starting: now forgotten.
    Forgotten(Entry),
    /// Its entry was already gone (it exited while starting, or was stopped).
    Gone,
}

struct Shared {
    config: DynamicSupervisorConfig,
    table: Mutex<Table>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // The lock is only held for map operations, never across user code or an await.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A supervisor whose children are started at run time (OTP's `DynamicSupervisor`), built for
/// one process per connection: starting and ending a child is O(1), with a short lock and no
/// round trip through the supervisor's mailbox.
///
/// Guarantees:
/// - [`start_child`](Self::start_child) links the child to the supervisor before the child
///   runs; beyond [`max_children`](DynamicSupervisorConfig::max_children) it fails with
///   [`StartChildError::MaxChildren`] and hands the spec back.
///   [`start_child_acknowledged`](Self::start_child_acknowledged) also waits for an
///   [`acknowledged`](ChildSpec::acknowledged) child's start handshake, and a restart waits
///   for it too.
/// - Temporary children are forgotten when they exit; permanent and transient ones are
///   restarted per their [`Restart`] type, each restart counted against the [`Intensity`].
///   One too many stops every child and ends the supervisor with
///   [`RestartIntensityExceeded`](crate::RestartIntensityExceeded) (escalation to its own parent).
/// - [`shutdown`](Self::shutdown) stops all children concurrently under one deadline and
///   reports how many exited by themselves and how many were killed. A child that traps
///   exits receives `Event::Info(Info::Exit { reason: Shutdown, .. })` from the supervisor and may say
///   goodbye before the deadline; one that does not trap exits ends at once.
/// - [`kill`](Self::kill) ends every child and the supervisor at once, whatever they are
///   doing (an untrappable kill each, also during a shutdown in progress): nothing it started
///   outlives it.
/// - The handle stays valid if the supervisor itself is restarted under a [`Supervisor`]
///   (see [`child_spec`](Self::child_spec)). Each incarnation owns the children it started:
///   when it exits, however and whenever its parent restarts it, every one of them gets the
///   exit signal its link would have delivered, and none is counted, stopped or restarted by
///   a later incarnation. No child outlives the incarnation that started it unsignalled.
///
/// [`Supervisor`]: super::Supervisor
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use beamline_process::{ChildSpec, DynamicSupervisor, DynamicSupervisorConfig, Event, Info};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let sup = DynamicSupervisor::start(DynamicSupervisorConfig::new().max_children(10_000));
/// let greeting = String::from("hello"); // owned by the one-shot start, like a socket
/// let child = sup
///     .start_child(ChildSpec::<()>::temporary("conn", move |mut ctx| async move {
///         ctx.trap_exit(true);
///         match ctx.recv().await {
///             Event::Info(Info::Exit { reason, .. }) => { println!("{greeting}, bye: {reason}"); Ok(()) }
///             _ => Ok(()),
///         }
///     }))
///     .unwrap();
/// assert_eq!(sup.count_children().await.unwrap().active, 1);
/// let report = sup.shutdown(Duration::from_secs(5)).await.unwrap();
/// assert_eq!((report.exited, report.aborted), (1, 0));
/// assert!(!child.is_alive());
/// # }
/// ```
#[derive(Clone)]
pub struct DynamicSupervisor {
    shared: Arc<Shared>,
}

impl DynamicSupervisor {
    /// A handle to a supervisor that is not running yet: run it as a child of another
    /// supervisor with [`child_spec`](Self::child_spec). Until then `start_child` fails with
    /// [`StartChildError::NotRunning`].
    pub fn new(config: DynamicSupervisorConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                table: Mutex::new(Table {
                    status: Status::Stopped(ExitReason::NoProc),
                    children: HashMap::new(),
                }),
            }),
        }
    }

    /// Starts a top-level dynamic supervisor (no parent), with no children.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(config: DynamicSupervisorConfig) -> Self {
        let sup = Self::new(config);
        let shared = sup.shared.clone();
        // Trapping from the first instant: a child started right away may die (and signal
        // through its link) before this body has ever run.
        let addr = spawn_with(SpawnConfig::new().trap_exit(true), move |ctx| {
            run(ctx, shared)
        });
        sup.attach(&addr);
        sup
    }

    /// This supervisor as a (permanent, [`ChildKind::Supervisor`]) child of a
    /// [`Supervisor`](super::Supervisor). Each incarnation starts with no children; this
    /// handle follows the current one.
    pub fn child_spec(&self, id: impl Into<ChildId>) -> ChildSpec<DynamicSupervisorMsg> {
        let shared = self.shared.clone();
        ChildSpec::permanent(id, move |ctx| {
            let sup = Self {
                shared: shared.clone(),
            };
            sup.attach(&ctx.addr());
            run(ctx, shared.clone())
        })
        .kind(ChildKind::Supervisor)
        .trap_exit(true)
    }

    /// Makes `addr` the running incarnation (once; the body repeats it harmlessly), and
    /// arranges for the table to read "stopped" the moment that incarnation exits, however it
    /// exits. The children of an earlier incarnation stay where they are: they are its own,
    /// and its exit hook signals them, even if that runs after this.
    fn attach(&self, addr: &Addr<DynamicSupervisorMsg>) {
        {
            let mut table = self.shared.lock();
            if matches!(&table.status, Status::Running(a) if a == addr) {
                return;
            }
            table.status = Status::Running(addr.clone());
        }
        let shared = Arc::downgrade(&self.shared);
        let me = addr.id();
        // The table is the supervisor's side of each child's link: when the supervisor exits
        // (a panic, a kill, or after stopping its children), every child of this incarnation
        // still in it gets the exit signal a link would have delivered.
        let hook = Watcher::Hook(Box::new(move |sup: &Pid, reason: &ExitReason| {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let orphans = {
                let mut table = shared.lock();
                if matches!(&table.status, Status::Running(a) | Status::Stopping(a) if a.id() == me)
                {
                    table.status = Status::Stopped(reason.clone());
                }
                table.take_children_of(me)
            };
            for entry in orphans {
                entry.pid.0.exit_signal(sup.clone(), reason.clone(), true);
            }
        }));
        if let Err((_, reason)) = addr.pid().0.add_watcher(next_key(), hook) {
            let mut table = self.shared.lock();
            table.status = Status::Stopped(reason);
        }
    }

    /// The running incarnation's pid, if any.
    pub fn pid(&self) -> Option<Pid> {
        match &self.shared.lock().status {
            Status::Running(addr) => Some(addr.pid()),
            Status::Stopping(_) | Status::Stopped(_) => None,
        }
    }

    /// Starts a child, linked to the supervisor before it runs, and returns its address.
    /// O(1): one short lock and the spawn; the supervisor's mailbox is not involved. It does
    /// not wait for an [`acknowledged`](ChildSpec::acknowledged) child's handshake (the
    /// child's [`started`](crate::Context::started) does nothing then; its restarts do wait):
    /// [`start_child_acknowledged`](Self::start_child_acknowledged) does.
    ///
    /// # Errors
    /// - [`StartChildError::MaxChildren`] at the child limit;
    /// - [`StartChildError::NotRunning`] if the supervisor is not running or is shutting down.
    ///
    /// Either way the spec comes back unstarted.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start_child<M: Send + 'static>(
        &self,
        spec: ChildSpec<M>,
    ) -> Result<Addr<M>, StartChildError<M>> {
        self.admit(spec, false).map(|(addr, _)| addr)
    }

    /// [`start_child`](Self::start_child), then, for an
    /// [`acknowledged`](ChildSpec::acknowledged) child, waits for its start handshake
    /// (OTP's synchronous `start_child`): returns once the child has called
    /// [`started`](crate::Context::started). Other children count as started once spawned.
    ///
    /// # Errors
    /// As [`start_child`](Self::start_child), and [`StartChildError::Failed`] if the child
    /// exited before acknowledging or did not acknowledge within its start timeout (it is
    /// killed then). A failed child is forgotten, never restarted; its spec is consumed.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn start_child_acknowledged<M: Send + 'static>(
        &self,
        spec: ChildSpec<M>,
    ) -> Result<Addr<M>, StartChildError<M>> {
        let id = spec.id.clone();
        let (addr, mut starting) = self.admit(spec, true)?;
        let (reason, timed_out) = match starting.wait().await {
            Waited::Acknowledged => return Ok(addr),
            Waited::Exited(reason) => (reason, false),
            Waited::TimedOut(timeout) => (ExitReason::error(StartTimeout { timeout }), true),
        };
        let settled = self.shared.lock().settle_failed_start(addr.id());
        if let Settled::Acknowledged = settled {
            return Ok(addr);
        }
        if timed_out {
            addr.kill();
            addr.exited().await;
        }
        tracing::warn!(child = %id, %reason, "child failed to start");
        Err(StartChildError::Failed { child: id, reason })
    }

    /// Admits and runs a child: checks the status and the limit, links it, records it (its
    /// entry exists before it runs, so its exit always finds it) and runs its start outside
    /// the lock. With `handshake`, an acknowledged child gets an ack that marks its entry
    /// started, and the returned [`Starting`] waits for it.
    fn admit<M: Send + 'static>(
        &self,
        spec: ChildSpec<M>,
        handshake: bool,
    ) -> Result<(Addr<M>, Starting), StartChildError<M>> {
        // Restartable children keep a way to start again; a temporary one's start is consumed.
        let respawn = spec.respawner();
        let timeout = spec.start_timeout.filter(|_| handshake);
        let (sup, proc) = {
            let mut table = self.shared.lock();
            let sup = match &table.status {
                Status::Running(addr) => addr.pid(),
                Status::Stopping(_) => {
                    return Err(StartChildError::NotRunning {
                        reason: ExitReason::Shutdown,
                        spec: Box::new(spec),
                    });
                }
                Status::Stopped(reason) => {
                    return Err(StartChildError::NotRunning {
                        reason: reason.clone(),
                        spec: Box::new(spec),
                    });
                }
            };
            if let Some(max) = self.shared.config.max_children
                && table.children.len() >= max
            {
                return Err(StartChildError::MaxChildren {
                    supervisor: sup.id(),
                    max,
                    spec: Box::new(spec),
                });
            }
            let link = match respawn {
                Some(_) => LinkTo::ChildSide,
                None => LinkTo::Hook(self.forget_on_exit(sup.id())),
            };
            let proc = match prepare_linked(spec.config, &sup, link) {
                Ok(proc) => proc,
                Err(reason) => {
                    return Err(StartChildError::NotRunning {
                        reason,
                        spec: Box::new(spec),
                    });
                }
            };
            table.children.insert(
                proc.id(),
                Entry {
                    pid: proc.pid(),
                    sup: sup.id(),
                    id: spec.id.clone(),
                    restart: spec.restart,
                    shutdown: spec.shutdown,
                    kind: spec.kind,
                    restarts: 0,
                    starting: timeout.is_some(),
                    respawn: respawn.map(Box::new),
                },
            );
            (sup, proc)
        };
        tracing::debug!(supervisor = sup.id().as_u64(), child = %spec.id, pid = proc.id().as_u64(), "child started");
        let (ack, starting) = match timeout {
            Some(timeout) => {
                let on_ack = mark_started(Arc::downgrade(&self.shared), proc.id());
                let (ack, starting) = Starting::handshake(proc.pid(), timeout, Some(on_ack));
                (Some(ack), starting)
            }
            None => (None, Starting::spawned(proc.pid())),
        };
        // User code (building the body) runs outside the lock.
        let addr = run_start(spec.start, proc, &sup, spec.slot.get(), ack);
        Ok((addr, starting))
    }

    /// The exit hook of a temporary child: removes its entry from the table the moment it
    /// exits, without involving the supervisor's task.
    fn forget_on_exit(&self, supervisor: ProcessId) -> ExitHook {
        let shared = Arc::downgrade(&self.shared);
        Box::new(move |pid: &Pid, reason: &ExitReason| {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let Some(entry) = shared.lock().children.remove(&pid.id()) else {
                return;
            };
            log_exit(supervisor, &entry.id, reason);
        })
    }

    /// Stops one child (exit signal `Shutdown`, then a kill after its shutdown timeout) and
    /// forgets it, whatever its restart type. Returns once it has exited.
    ///
    /// # Errors
    /// [`TerminateChildError::NotFound`] if `child` is not a child of this supervisor.
    pub async fn terminate_child(&self, child: &Pid) -> Result<(), TerminateChildError> {
        let (sup, entry) = {
            let mut table = self.shared.lock();
            let sup = match &table.status {
                Status::Running(addr) => addr.pid(),
                Status::Stopping(_) | Status::Stopped(_) => {
                    return Err(TerminateChildError::NotFound { child: child.id() });
                }
            };
            let entry = table
                .children
                .remove(&child.id())
                .ok_or(TerminateChildError::NotFound { child: child.id() })?;
            (sup, entry)
        };
        stop_child(&sup, &entry.pid, entry.shutdown).await;
        Ok(())
    }

    /// Every child (in no particular order). Reflects every child exit published before the
    /// request.
    ///
    /// # Errors
    /// [`SupervisorExited`] if the supervisor is not running.
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, SupervisorExited> {
        self.ask(|r| DynamicSupervisorMsg(Cmd::WhichChildren(r)))
            .await
    }

    /// Child counts. Reflects every child exit published before the request.
    ///
    /// # Errors
    /// [`SupervisorExited`] if the supervisor is not running.
    pub async fn count_children(&self) -> Result<ChildCounts, SupervisorExited> {
        self.ask(|r| DynamicSupervisorMsg(Cmd::CountChildren(r)))
            .await
    }

    /// Stops every child concurrently, all under one deadline `timeout` from now (children
    /// with [`Shutdown::Brutal`] are killed at once), then the supervisor itself with
    /// [`ExitReason::Shutdown`]. New children are refused from the start. Returns, once
    /// everything has exited, how many children exited by themselves and how many were killed.
    ///
    /// # Errors
    /// [`SupervisorExited`] if the supervisor was not running.
    pub async fn shutdown(&self, timeout: Duration) -> Result<ShutdownReport, SupervisorExited> {
        let addr = self.current()?;
        let report = self
            .ask(|r| DynamicSupervisorMsg(Cmd::Shutdown(timeout, r)))
            .await?;
        addr.exited().await;
        Ok(report)
    }

    /// Kills every child and then the supervisor, at once and without waiting: each child gets
    /// an untrappable kill ([`Pid::kill`]), so one that traps exits, or that is busy and never
    /// looks at its mailbox, ends too (its task is aborted at its next `.await`). Works while
    /// the supervisor runs or drains (a [`shutdown`](Self::shutdown) in progress: the children
    /// it is waiting for are killed, and it returns). From then on `start_child` fails with
    /// [`StartChildError::NotRunning`] ([`ExitReason::Killed`]), unless a parent
    /// [`Supervisor`](super::Supervisor) restarts this one. For an owner that goes away and
    /// must leave nothing running: a server handle being dropped. Returns how many children it
    /// killed.
    pub fn kill(&self) -> usize {
        let (sup, children) = {
            let mut table = self.shared.lock();
            let sup = match &table.status {
                Status::Running(addr) | Status::Stopping(addr) => Some(addr.pid()),
                Status::Stopped(_) => None,
            };
            if sup.is_some() {
                // The supervisor's exit hook sees this and leaves the children to us.
                table.status = Status::Stopped(ExitReason::Killed);
            }
            (sup, std::mem::take(&mut table.children))
        };
        let killed = children.values().filter(|e| e.pid.kill()).count();
        if let Some(sup) = sup {
            tracing::debug!(
                supervisor = sup.id().as_u64(),
                killed,
                "supervisor and children killed"
            );
            sup.kill();
        }
        killed
    }

    fn current(&self) -> Result<Addr<DynamicSupervisorMsg>, SupervisorExited> {
        match &self.shared.lock().status {
            Status::Running(addr) => Ok(addr.clone()),
            Status::Stopping(_) => Err(SupervisorExited {
                supervisor: None,
                reason: ExitReason::Shutdown,
            }),
            Status::Stopped(reason) => Err(SupervisorExited {
                supervisor: None,
                reason: reason.clone(),
            }),
        }
    }

    async fn ask<R>(
        &self,
        make: impl FnOnce(Reply<R>) -> DynamicSupervisorMsg,
    ) -> Result<R, SupervisorExited> {
        let addr = self.current()?;
        // A supervisor always answers or exits, so no timeout is needed to never hang.
        addr.request(make).await.map_err(|reason| SupervisorExited {
            supervisor: Some(addr.id()),
            reason,
        })
    }
}

impl fmt::Debug for DynamicSupervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamicSupervisor")
            .field("pid", &self.pid().map(|p| p.id()))
            .finish()
    }
}

/// The ack hook of a child started with a handshake: marks its entry started, in the child's
/// own task before its acknowledgement is sent, so an exit that follows is a restart, not a
/// failed start.
fn mark_started(shared: Weak<Shared>, child: ProcessId) -> OnAck {
    Box::new(move || {
        if let Some(shared) = shared.upgrade()
            && let Some(entry) = shared.lock().children.get_mut(&child)
        {
            entry.starting = false;
        }
    })
}
