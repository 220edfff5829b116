//! OTP supervisors: [`Supervisor`] for a fixed list of children, [`DynamicSupervisor`] for
//! children started at run time.
//!
//! A supervisor is a process that traps exits and is linked to its children. When a child
//! exits, the supervisor applies OTP's rules: the child's [`Restart`] type decides whether it
//! is restarted, the [`Strategy`] decides which siblings restart with it, and the
//! [`Intensity`] stops a crash loop by making the supervisor itself exit, which its own
//! supervisor then handles (escalation).

mod dynamic;
mod intensity;
mod spec;
mod stop;

use std::any::Any;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::time::Instant;

pub use self::dynamic::{
    DynamicSupervisor, DynamicSupervisorConfig, DynamicSupervisorMsg, StartChildError,
    TerminateChildError,
};
use self::intensity::RestartWindow;
pub use self::intensity::{Intensity, RestartIntensityExceeded};
pub use self::spec::{
    Child, ChildCounts, ChildId, ChildInfo, ChildKind, ChildSpec, Restart, Shutdown,
};
use self::spec::{ErasedChild, LinkTo};
pub use self::stop::ShutdownReport;
use self::stop::stop_child;
use crate::exit::ExitReason;
use crate::process::{Context, Event, Pid, ProcessId, Reply, spawn};

/// Which children restart when one fails (OTP's strategies).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Only the failed child.
    OneForOne,
    /// All children: the others are stopped (in reverse start order), then all are started
    /// again in order.
    OneForAll,
    /// The failed child and every child started after it: those are stopped (in reverse
    /// order), then restarted in order.
    RestForOne,
}

/// A supervisor is no longer running, so it could not answer.
#[derive(Clone, Debug, thiserror::Error)]
#[error("supervisor is not running ({reason})")]
#[non_exhaustive]
pub struct SupervisorExited {
    /// The supervisor asked (`None`: a dynamic supervisor with no running incarnation).
    pub supervisor: Option<ProcessId>,
    /// Why it exited.
    pub reason: ExitReason,
}

/// Why [`Supervisor::child`] returned no handle.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChildLookupError {
    /// The supervisor has no child with this id.
    #[error("the supervisor has no child {id}")]
    NoSuchChild {
        /// The id asked for.
        id: ChildId,
    },
    /// The child takes messages of another type than the one asked for.
    #[error("child {id} takes messages of another type")]
    WrongType {
        /// The id asked for.
        id: ChildId,
    },
    /// The supervisor is not running.
    #[error(transparent)]
    SupervisorExited(SupervisorExited),
}

/// Why [`Supervisor::start`] refused a spec.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Two children share an id, so handles and reports could not tell them apart.
    #[error("two children share the id {id}")]
    DuplicateChildId {
        /// The repeated id.
        id: ChildId,
    },
}

/// The children, strategy and intensity of a [`Supervisor`]. Clone-able, so a nested
/// supervisor can be started again from it after a restart.
#[derive(Clone)]
pub struct SupervisorSpec {
    strategy: Strategy,
    intensity: Intensity,
    children: Vec<ErasedChild>,
}

impl SupervisorSpec {
    /// A supervisor with `strategy`, the default [`Intensity`], and no children yet.
    pub fn new(strategy: Strategy) -> Self {
        Self {
            strategy,
            intensity: Intensity::default(),
            children: Vec::new(),
        }
    }

    /// Sets the restart intensity.
    pub fn intensity(mut self, intensity: Intensity) -> Self {
        self.intensity = intensity;
        self
    }

    /// Adds a child; children start in the order they are added and stop in reverse.
    ///
    /// A [`temporary`](ChildSpec::temporary) child's one-shot start runs once in the life of
    /// this spec: if a nested supervisor built from it restarts, that child is not started
    /// again.
    pub fn child<M: Send + 'static>(mut self, spec: ChildSpec<M>) -> Self {
        self.children.push(spec.erase());
        self
    }

    fn validate(&self) -> Result<(), StartError> {
        let mut seen = HashSet::new();
        for child in &self.children {
            if !seen.insert(&child.id) {
                return Err(StartError::DuplicateChildId {
                    id: child.id.clone(),
                });
            }
        }
        Ok(())
    }

    /// This supervisor as a (permanent, [`ChildKind::Supervisor`]) child of another
    /// supervisor. Each incarnation starts from this spec. Wrap the child's
    /// [`handle`](ChildSpec::handle) in a [`Supervisor`] (`Supervisor::from(handle)`) to
    /// query it.
    ///
    /// # Errors
    /// [`StartError::DuplicateChildId`] if two children share an id.
    pub fn into_child(
        self,
        id: impl Into<ChildId>,
    ) -> Result<ChildSpec<SupervisorMsg>, StartError> {
        self.validate()?;
        Ok(
            ChildSpec::permanent(id, move |ctx| run(ctx, self.clone(), None))
                .kind(ChildKind::Supervisor),
        )
    }
}

impl fmt::Debug for SupervisorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorSpec")
            .field("strategy", &self.strategy)
            .field("intensity", &self.intensity)
            .field(
                "children",
                &self.children.iter().map(|c| &c.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A request to a [`Supervisor`] process (opaque: use the [`Supervisor`] methods).
pub struct SupervisorMsg(Cmd);

enum Cmd {
    WhichChildren(Reply<Vec<ChildInfo>>),
    CountChildren(Reply<ChildCounts>),
    /// The stable handle slot of a child, by id (`None`: no such child).
    Child(ChildId, Reply<Option<Arc<dyn Any + Send + Sync>>>),
    Shutdown(Reply<()>),
}

impl fmt::Debug for SupervisorMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Cmd::WhichChildren(_) => "WhichChildren",
            Cmd::CountChildren(_) => "CountChildren",
            Cmd::Child(..) => "Child",
            Cmd::Shutdown(_) => "Shutdown",
        })
    }
}

/// A handle to a supervisor with a fixed list of children (OTP's `supervisor`).
///
/// Guarantees:
/// - Children start in order and stop in reverse order; each stop is a `Shutdown` exit signal
///   followed, after the child's [`Shutdown`] timeout, by a kill.
/// - A child's exit is handled per its [`Restart`] type and the [`Strategy`]; each restart is
///   counted against the [`Intensity`]. One restart too many stops every child and ends the
///   supervisor with [`ExitReason::Error`] holding [`RestartIntensityExceeded`], which its own
///   supervisor sees (escalation).
/// - An exit signal from its parent stops every child, then the supervisor, with the parent's
///   reason.
/// - [`Child`] handles from the specs stay valid across restarts; `which_children` and
///   `count_children` reflect every child exit published before the request.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use beamline_process::{ChildSpec, Event, Reply, Strategy, Supervisor, SupervisorSpec};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut echo = ChildSpec::permanent("echo", |mut ctx| async move {
///     loop {
///         if let Event::Msg((n, reply)) = ctx.recv().await {
///             let reply: Reply<u32> = reply;
///             let _ = reply.send(n);
///         }
///     }
/// });
/// let handle = echo.handle();
/// let sup = Supervisor::start(SupervisorSpec::new(Strategy::OneForOne).child(echo))
///     .await
///     .unwrap();
/// assert_eq!(handle.call(|r| (7, r), Duration::from_secs(1)).await.unwrap(), 7);
/// handle.current().kill(); // crash it: the supervisor restarts it, the handle follows
/// # handle.current().exited().await;
/// # sup.count_children().await.unwrap();
/// assert_eq!(handle.call(|r| (8, r), Duration::from_secs(1)).await.unwrap(), 8);
/// sup.shutdown().await.unwrap();
/// # }
/// ```
#[derive(Clone)]
pub struct Supervisor {
    handle: Child<SupervisorMsg>,
}

impl Supervisor {
    /// Starts a top-level supervisor (no parent) and its children, in order. Returns once
    /// every child has been started.
    ///
    /// # Errors
    /// [`StartError::DuplicateChildId`] if two children share an id.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn start(spec: SupervisorSpec) -> Result<Self, StartError> {
        spec.validate()?;
        let (ready, started) = oneshot::channel();
        let addr = spawn(move |ctx| run(ctx, spec, Some(ready)));
        // If the supervisor died while starting (it cannot fail on its own), its exit is
        // reported by the first request instead.
        let _ = started.await;
        Ok(Self {
            handle: Child::fixed(addr),
        })
    }

    /// The supervisor's current pid (to link to or monitor it).
    pub fn pid(&self) -> Pid {
        self.handle.pid()
    }

    /// Every child, in start order.
    ///
    /// # Errors
    /// [`SupervisorExited`] if the supervisor is not running.
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, SupervisorExited> {
        self.ask(|r| SupervisorMsg(Cmd::WhichChildren(r))).await
    }

    /// Child counts.
    ///
    /// # Errors
    /// [`SupervisorExited`] if the supervisor is not running.
    pub async fn count_children(&self) -> Result<ChildCounts, SupervisorExited> {
        self.ask(|r| SupervisorMsg(Cmd::CountChildren(r))).await
    }

    /// A stable handle to the child `id`, which takes messages of type `M`: it keeps reaching
    /// the child's current incarnation across restarts (the same handle as the spec's
    /// [`ChildSpec::handle`]).
    ///
    /// # Errors
    /// - [`ChildLookupError::NoSuchChild`] if the supervisor has no child `id` (a temporary
    ///   child is forgotten once it exits);
    /// - [`ChildLookupError::WrongType`] if that child takes another message type;
    /// - [`ChildLookupError::SupervisorExited`] if the supervisor is not running.
    pub async fn child<M: Send + 'static>(
        &self,
        id: impl Into<ChildId>,
    ) -> Result<Child<M>, ChildLookupError> {
        let id = id.into();
        let wanted = id.clone();
        let slot = self
            .ask(move |r| SupervisorMsg(Cmd::Child(wanted, r)))
            .await
            .map_err(ChildLookupError::SupervisorExited)?
            .ok_or_else(|| ChildLookupError::NoSuchChild { id: id.clone() })?;
        Child::from_slot(slot).ok_or(ChildLookupError::WrongType { id })
    }

    /// Stops every child in reverse start order (each within its shutdown timeout), then the
    /// supervisor with [`ExitReason::Shutdown`]. Returns once the supervisor has exited.
    ///
    /// A nested supervisor stopped this way is then handled by its parent like any child that
    /// exited with `Shutdown` (a permanent one is restarted).
    ///
    /// # Errors
    /// [`SupervisorExited`] if the supervisor was not running.
    pub async fn shutdown(&self) -> Result<(), SupervisorExited> {
        self.ask(|r| SupervisorMsg(Cmd::Shutdown(r))).await?;
        self.handle.current().exited().await;
        Ok(())
    }

    async fn ask<R>(
        &self,
        make: impl FnOnce(Reply<R>) -> SupervisorMsg,
    ) -> Result<R, SupervisorExited> {
        let addr = self.handle.current();
        // A supervisor always answers or exits, so no timeout is needed to never hang.
        addr.request(make).await.map_err(|reason| SupervisorExited {
            supervisor: Some(addr.id()),
            reason,
        })
    }
}

impl From<Child<SupervisorMsg>> for Supervisor {
    fn from(handle: Child<SupervisorMsg>) -> Self {
        Self { handle }
    }
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("pid", &self.pid().id())
            .finish()
    }
}

/// One child as the running supervisor tracks it.
struct Running {
    spec: ErasedChild,
    pid: Option<Pid>,
    started: bool,
    restarts: u32,
}

/// The state of a running supervisor, and OTP's rules as transitions on it.
struct State {
    me: Pid,
    strategy: Strategy,
    window: RestartWindow,
    children: Vec<Running>,
}

impl State {
    /// Starts every child that is not running, from index `from` on, in order. A one-shot
    /// child whose start was already used is dropped.
    fn start_from(&mut self, from: usize) {
        let mut i = from;
        while i < self.children.len() {
            let child = &mut self.children[i];
            if child.pid.is_none() {
                match child.spec.starter.start(&self.me, LinkTo::Both) {
                    Some(pid) => {
                        if child.started {
                            child.restarts += 1;
                            tracing::info!(
                                supervisor = self.me.id().as_u64(),
                                child = %child.spec.id,
                                pid = pid.id().as_u64(),
                                restarts = child.restarts,
                                "child restarted"
                            );
                        } else {
                            tracing::debug!(
                                supervisor = self.me.id().as_u64(),
                                child = %child.spec.id,
                                pid = pid.id().as_u64(),
                                "child started"
                            );
                        }
                        child.started = true;
                        child.pid = Some(pid);
                    }
                    None => {
                        self.children.remove(i);
                        continue;
                    }
                }
            }
            i += 1;
        }
    }

    /// Stops the running children at `from..` in reverse order, then forgets the temporary
    /// ones among them (OTP never restarts a temporary child).
    async fn stop_from(&mut self, from: usize, except: Option<usize>) {
        for i in (from..self.children.len()).rev() {
            if Some(i) == except {
                continue;
            }
            if let Some(pid) = self.children[i].pid.take() {
                stop_child(&self.me, &pid, self.children[i].spec.shutdown).await;
            }
        }
        // (The failed child, `except`, is never temporary: temporary children are not
        // restarted, so they never cause a group restart.)
        let mut i = from;
        while i < self.children.len() {
            if self.children[i].spec.restart == Restart::Temporary {
                self.children.remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// Applies OTP's rules to the exit of child `i`. `Err` carries the supervisor's own exit
    /// reason when the restart intensity is exceeded (every child has been stopped then).
    async fn child_exited(&mut self, i: usize, reason: ExitReason) -> Result<(), ExitReason> {
        let child = &mut self.children[i];
        child.pid = None;
        let id = child.spec.id.clone();
        if reason.is_abnormal() {
            tracing::warn!(supervisor = self.me.id().as_u64(), child = %id, %reason, "child exited");
        } else {
            tracing::debug!(supervisor = self.me.id().as_u64(), child = %id, %reason, "child exited");
        }
        if !child.spec.restart.restarts_after(&reason) {
            if child.spec.restart == Restart::Temporary {
                self.children.remove(i);
            }
            return Ok(());
        }
        if !self.window.allow(Instant::now()) {
            let exceeded = RestartIntensityExceeded {
                supervisor: self.me.id(),
                child: id,
                intensity: self.window.intensity(),
            };
            tracing::error!(supervisor = self.me.id().as_u64(), error = %exceeded, "escalating");
            self.stop_from(0, None).await;
            return Err(ExitReason::error(exceeded));
        }
        match self.strategy {
            Strategy::OneForOne => self.start_from_one(i),
            Strategy::OneForAll => {
                self.stop_from(0, Some(i)).await;
                self.start_from(0);
            }
            Strategy::RestForOne => {
                self.stop_from(i + 1, None).await;
                self.start_from(i);
            }
        }
        Ok(())
    }

    /// Restarts only child `i`.
    fn start_from_one(&mut self, i: usize) {
        let rest = self.children.split_off(i + 1);
        self.start_from(i);
        self.children.extend(rest);
    }

    async fn stop_all(&mut self) {
        self.stop_from(0, None).await;
    }

    fn position(&self, id: ProcessId) -> Option<usize> {
        self.children
            .iter()
            .position(|c| c.pid.as_ref().is_some_and(|p| p.id() == id))
    }

    fn which(&self) -> Vec<ChildInfo> {
        self.children
            .iter()
            .map(|c| ChildInfo {
                id: c.spec.id.clone(),
                pid: c.pid.clone(),
                kind: c.spec.kind,
                restart: c.spec.restart,
                restarts: c.restarts,
            })
            .collect()
    }

    fn count(&self) -> ChildCounts {
        let mut counts = ChildCounts::default();
        for c in &self.children {
            counts.add(c.spec.kind, c.pid.is_some());
        }
        counts
    }
}

/// The supervisor process's body.
async fn run(
    mut ctx: Context<SupervisorMsg>,
    spec: SupervisorSpec,
    ready: Option<oneshot::Sender<()>>,
) -> Result<(), ExitReason> {
    ctx.trap_exit(true);
    let mut state = State {
        me: ctx.pid(),
        strategy: spec.strategy,
        window: RestartWindow::new(spec.intensity),
        children: spec
            .children
            .into_iter()
            .map(|spec| Running {
                spec,
                pid: None,
                started: false,
                restarts: 0,
            })
            .collect(),
    };
    state.start_from(0);
    if let Some(ready) = ready {
        let _ = ready.send(());
    }
    loop {
        match ctx.recv().await {
            Event::Msg(SupervisorMsg(cmd)) => match cmd {
                Cmd::WhichChildren(reply) => {
                    let _ = reply.send(state.which());
                }
                Cmd::CountChildren(reply) => {
                    let _ = reply.send(state.count());
                }
                Cmd::Child(id, reply) => {
                    let slot = state
                        .children
                        .iter()
                        .find(|c| c.spec.id == id)
                        .and_then(|c| c.spec.starter.slot());
                    let _ = reply.send(slot);
                }
                Cmd::Shutdown(reply) => {
                    state.stop_all().await;
                    let _ = reply.send(());
                    return Err(ExitReason::Shutdown);
                }
            },
            Event::Exit { from, reason } if ctx.parent() == Some(&from) => {
                state.stop_all().await;
                return Err(reason);
            }
            Event::Exit { from, reason } => {
                // Exits of children we already stopped (or of earlier incarnations) are stale.
                if let Some(i) = state.position(from.id()) {
                    state.child_exited(i, reason).await?;
                }
            }
            Event::Down { .. } => {}
        }
    }
}
