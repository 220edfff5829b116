//! OTP supervisors: [`Supervisor`] for a fixed list of children, [`DynamicSupervisor`] for
//! children started at run time.
//!
//! A supervisor is a process that traps exits and is linked to its children. When a child
//! exits, the supervisor applies OTP's rules: the child's [`Restart`] type decides whether it
//! is restarted, the [`Strategy`] decides which siblings restart with it, and the
//! [`Intensity`] stops a crash loop by making the supervisor itself exit, which its own
//! supervisor then handles (escalation).

mod child;
mod dynamic;
mod intensity;
mod spec;
mod start;
mod state;
mod stop;

use std::any::Any;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

pub use self::child::Child;
pub use self::dynamic::{
    DynamicSupervisor, DynamicSupervisorConfig, DynamicSupervisorMsg, StartChildError,
    TerminateChildError,
};
pub use self::intensity::{Intensity, RestartIntensityExceeded};
use self::spec::ErasedChild;
pub use self::spec::{ChildCounts, ChildId, ChildInfo, ChildKind, ChildSpec, Restart, Shutdown};
pub use self::start::StartTimeout;
use self::start::Starting;
use self::state::run;
pub use self::stop::ShutdownReport;
use crate::exit::ExitReason;
use crate::process::{DEFAULT_CAPACITY, Pid, Process, ProcessId, Reply, Timeout, start};

/// Which children restart when one fails (OTP's strategies).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(clippy::exhaustive_enums)] // closed: OTP's strategies (simple_one_for_one is the DynamicSupervisor)
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

/// Why [`Supervisor::start`] did not start a supervisor (and, inside an
/// [`ExitReason::Error`], why a nested supervisor exited during its start).
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Two children share an id, so handles and reports could not tell them apart. Nothing
    /// was started.
    #[error("two children share the id {id}")]
    DuplicateChildId {
        /// The repeated id.
        id: ChildId,
    },
    /// An [`acknowledged`](ChildSpec::acknowledged) child exited before acknowledging its
    /// start, or did not acknowledge within its start timeout (it was killed; the reason
    /// holds [`StartTimeout`]). The children started before it were stopped in reverse
    /// order, then the supervisor exited with this error (OTP's `failed_to_start_child`).
    #[error("child {child} failed to start: {reason}")]
    Child {
        /// The child that failed.
        child: ChildId,
        /// Its exit reason, or [`StartTimeout`] inside an [`ExitReason::Error`].
        reason: ExitReason,
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
    /// The child is [`acknowledged`](ChildSpec::acknowledged) (without a timeout of its
    /// own: its children's bound it): the parent's start waits until this supervisor's
    /// children have all started, and fails if one of them fails.
    ///
    /// # Errors
    /// [`StartError::DuplicateChildId`] if two children share an id.
    pub fn into_child(
        self,
        id: impl Into<ChildId>,
    ) -> Result<ChildSpec<SupervisorMsg>, StartError> {
        self.validate()?;
        Ok(ChildSpec::permanent(id, move |ctx| run(ctx, self.clone()))
            .kind(ChildKind::Supervisor)
            .trap_exit(true)
            .acknowledged(Timeout::Infinity))
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
/// - An [`acknowledged`](ChildSpec::acknowledged) child is started only after the one before
///   it acknowledged its start, at the first start and at every restart; a child that fails
///   its start fails [`start`](Self::start) with [`StartError::Child`] once the children
///   already started are stopped in reverse order. Other children count as started once
///   spawned.
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
    /// Starts a top-level supervisor (no parent) and its children, in order: each
    /// [`acknowledged`](ChildSpec::acknowledged) child after the one before it has
    /// acknowledged its start. Returns once every child has started.
    ///
    /// # Errors
    /// - [`StartError::DuplicateChildId`] if two children share an id (nothing started);
    /// - [`StartError::Child`] if an acknowledged child exited before acknowledging or did
    ///   not acknowledge within its start timeout; the children started before it have been
    ///   stopped in reverse order and the supervisor has exited.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn start(spec: SupervisorSpec) -> Result<Self, StartError> {
        spec.validate()?;
        // Trapping exits from the first instant, as its body then asks anyway.
        let proc = Process::new(DEFAULT_CAPACITY, true);
        let (ack, starting) = Starting::handshake(proc.pid(), Timeout::Infinity, None);
        start(proc.clone(), None, Some(ack), move |ctx| run(ctx, spec));
        if let Err(reason) = starting.acknowledged().await
            && let Some(failed) = reason.downcast_error::<StartError>()
        {
            return Err(failed.clone());
        }
        // Killed while starting (it cannot fail otherwise): its exit is reported by the first
        // request instead.
        Ok(Self {
            handle: Child::fixed(crate::process::Addr { proc }),
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
