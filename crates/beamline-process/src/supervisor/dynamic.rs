//! [`DynamicSupervisor`]: children started at run time (OTP's `DynamicSupervisor`), such as one
//! process per accepted connection.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::intensity::RestartWindow;
use super::spec::{ErasedChild, LinkTo, prepare_linked, run_start};
use super::stop::{ShutdownReport, stop_all_concurrently, stop_child};
use super::{
    ChildCounts, ChildId, ChildInfo, ChildKind, ChildSpec, Intensity, Restart,
    RestartIntensityExceeded, Shutdown, SupervisorExited,
};
use crate::exit::ExitReason;
use crate::process::{
    Addr, Context, Event, ExitHook, Pid, ProcessId, Reply, Watcher, next_key, spawn,
};

/// Limits of a [`DynamicSupervisor`].
#[derive(Clone, Copy, Debug, Default)]
pub struct DynamicSupervisorConfig {
    max_children: Option<usize>,
    intensity: Intensity,
}

impl DynamicSupervisorConfig {
    /// No child limit, the default [`Intensity`].
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `max` children at once; beyond it `start_child` fails with
    /// [`StartChildError::MaxChildren`] (a refusal, not a restart-intensity failure).
    pub fn max_children(mut self, max: usize) -> Self {
        self.max_children = Some(max);
        self
    }

    /// Restart intensity for permanent and transient children.
    pub fn intensity(mut self, intensity: Intensity) -> Self {
        self.intensity = intensity;
        self
    }
}

/// Why [`DynamicSupervisor::start_child`] did not start a child. The spec comes back (with
/// whatever its one-shot start owns), so nothing is lost.
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
        /// The spec that was not started.
        spec: ChildSpec<M>,
    },
    /// The supervisor is not running (never started, shutting down, or exited).
    #[error("dynamic supervisor is not running ({reason})")]
    NotRunning {
        /// Why: its exit reason, [`ExitReason::Shutdown`] while it drains, or
        /// [`ExitReason::NoProc`] if it never started.
        reason: ExitReason,
        /// The spec that was not started.
        spec: ChildSpec<M>,
    },
}

impl<M> StartChildError<M> {
    /// The spec that was not started.
    pub fn into_spec(self) -> ChildSpec<M> {
        match self {
            Self::MaxChildren { spec, .. } | Self::NotRunning { spec, .. } => spec,
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
        }
    }
}

/// Why [`DynamicSupervisor::terminate_child`] did nothing.
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
    id: ChildId,
    restart: Restart,
    shutdown: Shutdown,
    kind: ChildKind,
    restarts: u32,
    /// How to start it again (boxed: most children are temporary and have none).
    respawn: Option<Box<ErasedChild>>,
}

/// The lifecycle of one incarnation, as seen by `start_child`.
enum Status {
    /// Accepting children; the supervisor's address.
    Running(Addr<DynamicSupervisorMsg>),
    /// Stopping its children (they stay in the table until they exit, so a
    /// [`kill`](DynamicSupervisor::kill) still finds them); refuses new ones. The address of
    /// the incarnation that is stopping.
    Stopping(Addr<DynamicSupervisorMsg>),
    /// Not running: never started, or exited with this reason.
    Stopped(ExitReason),
}

struct Table {
    status: Status,
    children: HashMap<ProcessId, Entry>,
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
/// - Temporary children are forgotten when they exit; permanent and transient ones are
///   restarted per their [`Restart`] type, each restart counted against the [`Intensity`].
///   One too many stops every child and ends the supervisor with
///   [`RestartIntensityExceeded`] (escalation to its own parent).
/// - [`shutdown`](Self::shutdown) stops all children concurrently under one deadline and
///   reports how many exited by themselves and how many were killed. A child that traps
///   exits receives `Event::Exit { reason: Shutdown, .. }` from the supervisor and may say
///   goodbye before the deadline; one that does not trap exits ends at once.
/// - [`kill`](Self::kill) ends every child and the supervisor at once, whatever they are
///   doing (an untrappable kill each, also during a shutdown in progress): nothing it started
///   outlives it.
/// - The handle stays valid if the supervisor itself is restarted under a [`Supervisor`]
///   (see [`child_spec`](Self::child_spec)).
///
/// [`Supervisor`]: super::Supervisor
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use beamline_process::{ChildSpec, DynamicSupervisor, DynamicSupervisorConfig, Event};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let sup = DynamicSupervisor::start(DynamicSupervisorConfig::new().max_children(10_000));
/// let greeting = String::from("hello"); // owned by the one-shot start, like a socket
/// let child = sup
///     .start_child(ChildSpec::<()>::temporary("conn", move |mut ctx| async move {
///         ctx.trap_exit(true);
///         match ctx.recv().await {
///             Event::Exit { reason, .. } => { println!("{greeting}, bye: {reason}"); Ok(()) }
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
        let addr = spawn(move |ctx| run(ctx, shared));
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
    }

    /// Makes `addr` the running incarnation (once; the body repeats it harmlessly), and
    /// arranges for the table to read "stopped" the moment that incarnation exits, however it
    /// exits.
    fn attach(&self, addr: &Addr<DynamicSupervisorMsg>) {
        {
            let mut table = self.shared.lock();
            if matches!(&table.status, Status::Running(a) if a == addr) {
                return;
            }
            table.status = Status::Running(addr.clone());
            table.children.clear();
        }
        let shared = Arc::downgrade(&self.shared);
        let me = addr.id();
        // The table is the supervisor's side of each child's link: when the supervisor exits
        // (a panic, a kill, or after stopping its children), every child still in it gets the
        // exit signal a link would have delivered.
        let hook = Watcher::Hook(Box::new(move |sup: &Pid, reason: &ExitReason| {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let orphans = {
                let mut table = shared.lock();
                if !matches!(&table.status, Status::Running(a) | Status::Stopping(a) if a.id() == me)
                {
                    return;
                }
                table.status = Status::Stopped(reason.clone());
                std::mem::take(&mut table.children)
            };
            for (_, entry) in orphans {
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
    /// O(1): one short lock and the spawn; the supervisor's mailbox is not involved.
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
        // Restartable children keep a way to start again; a temporary one's start is consumed.
        let respawn = spec.respawner();
        let (sup, proc) = {
            let mut table = self.shared.lock();
            let sup = match &table.status {
                Status::Running(addr) => addr.pid(),
                Status::Stopping(_) => {
                    return Err(StartChildError::NotRunning {
                        reason: ExitReason::Shutdown,
                        spec,
                    });
                }
                Status::Stopped(reason) => {
                    return Err(StartChildError::NotRunning {
                        reason: reason.clone(),
                        spec,
                    });
                }
            };
            if let Some(max) = self.shared.config.max_children
                && table.children.len() >= max
            {
                return Err(StartChildError::MaxChildren {
                    supervisor: sup.id(),
                    max,
                    spec,
                });
            }
            let link = match respawn {
                Some(_) => LinkTo::ChildSide,
                None => LinkTo::Hook(self.forget_on_exit(sup.id())),
            };
            let proc = match prepare_linked(spec.config, &sup, link) {
                Ok(proc) => proc,
                Err(reason) => return Err(StartChildError::NotRunning { reason, spec }),
            };
            // The entry exists before the child runs, so its exit always finds it.
            table.children.insert(
                proc.id(),
                Entry {
                    pid: proc.pid(),
                    id: spec.id.clone(),
                    restart: spec.restart,
                    shutdown: spec.shutdown,
                    kind: spec.kind,
                    restarts: 0,
                    respawn: respawn.map(Box::new),
                },
            );
            (sup, proc)
        };
        tracing::debug!(supervisor = sup.id().as_u64(), child = %spec.id, pid = proc.id().as_u64(), "child started");
        // User code (building the body) runs outside the lock.
        Ok(run_start(spec.start, proc, &sup, spec.slot.as_ref()))
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

/// The dynamic supervisor process's body.
async fn run(
    mut ctx: Context<DynamicSupervisorMsg>,
    shared: Arc<Shared>,
) -> Result<(), ExitReason> {
    ctx.trap_exit(true);
    let me = ctx.pid();
    let mut window = RestartWindow::new(shared.config.intensity);
    loop {
        match ctx.recv().await {
            Event::Msg(DynamicSupervisorMsg(cmd)) => match cmd {
                Cmd::WhichChildren(reply) => {
                    let table = shared.lock();
                    let _ = reply.send(
                        table
                            .children
                            .values()
                            .map(|e| ChildInfo {
                                id: e.id.clone(),
                                pid: Some(e.pid.clone()),
                                kind: e.kind,
                                restart: e.restart,
                                restarts: e.restarts,
                            })
                            .collect(),
                    );
                }
                Cmd::CountChildren(reply) => {
                    let table = shared.lock();
                    let mut counts = ChildCounts::default();
                    for e in table.children.values() {
                        counts.add(e.kind, true);
                    }
                    let _ = reply.send(counts);
                }
                Cmd::Shutdown(timeout, reply) => {
                    let report = drain(&me, &shared, Some(timeout)).await;
                    let _ = reply.send(report);
                    return Err(ExitReason::Shutdown);
                }
            },
            Event::Exit { from, reason } if ctx.parent() == Some(&from) => {
                drain(&me, &shared, None).await;
                return Err(reason);
            }
            Event::Exit { from, reason } => {
                child_exited(&me, &shared, &mut window, &from, reason).await?;
            }
            Event::Down { .. } => {}
        }
    }
}

/// OTP's rules for one child's exit. `Err`: the supervisor's own exit reason (escalation).
async fn child_exited(
    me: &Pid,
    shared: &Shared,
    window: &mut RestartWindow,
    from: &Pid,
    reason: ExitReason,
) -> Result<(), ExitReason> {
    // Children that were terminated (or of an earlier incarnation) are no longer in the table.
    let Some(entry) = shared.lock().children.remove(&from.id()) else {
        return Ok(());
    };
    log_exit(me.id(), &entry.id, &reason);
    if !entry.restart.restarts_after(&reason) {
        return Ok(());
    }
    if !window.allow(Instant::now()) {
        let exceeded = RestartIntensityExceeded {
            supervisor: me.id(),
            child: entry.id,
            intensity: window.intensity(),
        };
        tracing::error!(supervisor = me.id().as_u64(), error = %exceeded, "escalating");
        drain(me, shared, None).await;
        return Err(ExitReason::error(exceeded));
    }
    let Some(respawn) = entry.respawn else {
        return Ok(());
    };
    // Only this task changes the status to Stopping, so no drain can miss the new child.
    if let Some(pid) = respawn.starter.start(me, LinkTo::ChildSide) {
        let restarts = entry.restarts + 1;
        tracing::info!(supervisor = me.id().as_u64(), child = %respawn.id, pid = pid.id().as_u64(), restarts, "child restarted");
        shared.lock().children.insert(
            pid.id(),
            Entry {
                pid,
                id: entry.id,
                restart: entry.restart,
                shutdown: entry.shutdown,
                kind: entry.kind,
                restarts,
                respawn: Some(respawn),
            },
        );
    }
    Ok(())
}

fn log_exit(supervisor: ProcessId, child: &ChildId, reason: &ExitReason) {
    if reason.is_abnormal() {
        tracing::warn!(supervisor = supervisor.as_u64(), %child, %reason, "child exited");
    } else {
        tracing::trace!(supervisor = supervisor.as_u64(), %child, %reason, "child exited");
    }
}

/// Refuses new children, then stops every child concurrently. The children stay in the
/// table while they stop (a temporary one leaves it when it exits), so that
/// [`DynamicSupervisor::kill`] during a drain still reaches every one.
async fn drain(me: &Pid, shared: &Shared, deadline: Option<Duration>) -> ShutdownReport {
    let children: Vec<(Pid, Shutdown)> = {
        let mut table = shared.lock();
        if let Status::Running(addr) = &table.status {
            table.status = Status::Stopping(addr.clone());
        }
        table
            .children
            .values()
            .map(|e| (e.pid.clone(), e.shutdown))
            .collect()
    };
    let report = stop_all_concurrently(me, children, deadline).await;
    tracing::debug!(
        supervisor = me.id().as_u64(),
        exited = report.exited,
        aborted = report.aborted,
        "children stopped"
    );
    report
}
