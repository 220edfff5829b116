//! Resources as supervised processes: a value a process owns for its whole life, that can end
//! by itself (a client connection, a pool), run as a supervisor's child whose exit says why
//! it ended, behind a handle ([`Current`]) that follows it across restarts.
//!
//! This is how a Redix or Xandra connection lives in an Elixir application: the connection
//! is a process in the supervision tree; a connection that gives up exits with a reason its
//! links and monitors see; its supervisor restarts it, within its restart intensity; callers
//! keep using one name for it.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::exit::ExitReason;
use crate::process::{Context, Pid, ProcessId, Timeout, Watcher, next_key};
use crate::supervisor::{ChildId, ChildSpec};

/// Something a process owns for its whole life and that can end by itself, such as a client
/// connection: what [`ChildSpec::resource`] runs as a supervised child.
///
/// Implemented by `beamline_reconnect::Reconnect` (feature `process`) and by the `beamline`
/// facade's supervised `Client`.
pub trait Resource: Clone + Send + Sync + 'static {
    /// Resolves once the resource has ended by itself, with the reason its process exits
    /// with: [`ExitReason::Normal`] for an end its owner asked for, an
    /// [`ExitReason::Error`] or [`ExitReason::Panicked`] when it gave up or its own task
    /// panicked. Its process's links, monitors and supervisor see that reason.
    fn ended(&self) -> impl Future<Output = ExitReason> + Send;

    /// Ends it now, because its process is exiting (stopped by its supervisor, killed, or
    /// linked to a process that failed). Idempotent; must not block.
    fn end(&self);
}

/// What a resource's incarnations publish: the value of the running one, or why none runs.
enum Incarnation<T> {
    Up { pid: Pid, value: T },
    Down(ExitReason),
}

impl<T: Clone> Incarnation<T> {
    /// The value, if an incarnation has published one.
    fn running(&self) -> Result<(&Pid, &T), ExitReason> {
        match self {
            Incarnation::Up { pid, value } => Ok((pid, value)),
            Incarnation::Down(reason) => Err(reason.clone()),
        }
    }
}

/// A handle to the resource of a supervised child ([`ChildSpec::resource`]) that stays valid
/// across restarts: each incarnation publishes its value here once started, and withdraws it
/// as it exits. Cheap to clone; every clone sees the same child.
///
/// Between two incarnations (after a crash, while the supervisor restarts the child, or for
/// good once the supervisor gave up) there is no value: [`get`](Self::get) fails at once with
/// the last incarnation's exit reason, [`wait`](Self::wait) waits for the next one. A value
/// is withdrawn in its process's exit path, before the exit is fully published (before
/// [`Pid::exited`] resolves), whatever ends the process: it is never handed out after that,
/// except to a caller that took it just before, who then gets the resource's own "ended"
/// errors, never another incarnation's answers. Reading it takes a read lock and a clone of
/// the value: keep `T` one `Arc`.
pub struct Current<T> {
    published: Arc<watch::Sender<Incarnation<T>>>,
}

impl<T> Clone for Current<T> {
    fn clone(&self) -> Self {
        Self {
            published: self.published.clone(),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Default for Current<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone + Send + Sync + 'static> Current<T> {
    /// A handle with nothing published yet: [`get`](Self::get) fails with
    /// [`ExitReason::NoProc`] until the child first starts.
    pub fn new() -> Self {
        Self {
            published: Arc::new(watch::Sender::new(Incarnation::Down(ExitReason::NoProc))),
        }
    }

    /// The running incarnation's value.
    ///
    /// # Errors
    /// Why there is none: the last incarnation's exit reason (or the reason its start
    /// failed), [`ExitReason::NoProc`] before the first start.
    pub fn get(&self) -> Result<T, ExitReason> {
        self.published
            .borrow()
            .running()
            .map(|(_, value)| value.clone())
    }

    /// The running incarnation's pid, to link to or monitor it; `None` between incarnations.
    pub fn pid(&self) -> Option<Pid> {
        self.published
            .borrow()
            .running()
            .ok()
            .map(|(pid, _)| pid.clone())
    }

    /// The running incarnation's value, waiting at most `timeout` for one to start.
    ///
    /// # Errors
    /// As [`get`](Self::get), once `timeout` has passed with no incarnation running.
    pub async fn wait(&self, timeout: Duration) -> Result<T, ExitReason> {
        let mut published = self.published.subscribe();
        let up = published.wait_for(|inc| inc.running().is_ok());
        match tokio::time::timeout(timeout, up).await {
            Ok(Ok(inc)) => inc.running().map(|(_, value)| value.clone()),
            // (The sender lives as long as this handle: `wait_for` cannot fail.)
            Ok(Err(_)) | Err(_) => self.get(),
        }
    }

    fn publish(&self, pid: Pid, value: T) {
        self.published.send_replace(Incarnation::Up { pid, value });
    }

    /// Withdraws incarnation `pid`'s value, if it is still the one published.
    fn retire(&self, pid: ProcessId, reason: &ExitReason) {
        self.published.send_if_modified(|inc| match inc {
            Incarnation::Up { pid: up, .. } if up.id() == pid => {
                *inc = Incarnation::Down(reason.clone());
                true
            }
            _ => false,
        });
    }

    /// An incarnation failed its start: nothing is published, and this is why.
    fn failed(&self, reason: &ExitReason) {
        self.published
            .send_replace(Incarnation::Down(reason.clone()));
    }
}

impl<T: Clone> fmt::Debug for Current<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.published.borrow().running() {
            Ok((pid, _)) => f.debug_struct("Current").field("up", pid).finish(),
            Err(reason) => f.debug_struct("Current").field("down", &reason).finish(),
        }
    }
}

/// The value an incarnation published, held for its life: however the process ends (its body
/// returns, panics, or its task is killed and dropped), the value is ended.
struct Held<T: Resource> {
    value: T,
}

impl<T: Resource> Drop for Held<T> {
    fn drop(&mut self) {
        self.value.end();
    }
}

/// The body of a resource's process: start it, publish it, acknowledge the start, and live
/// exactly as long as it does.
async fn own<T: Resource>(
    ctx: Context<Infallible>,
    current: Current<T>,
    start: impl Future<Output = Result<T, ExitReason>>,
) -> Result<(), ExitReason> {
    let value = match start.await {
        Ok(value) => value,
        Err(reason) => {
            current.failed(&reason);
            return Err(reason);
        }
    };
    let held = Held { value };
    let pid = ctx.pid();
    current.publish(pid.clone(), held.value.clone());
    // Withdrawn in the exit path, however the process ends (a kill included), before anyone
    // waiting for the exit is woken.
    let withdraw = current.clone();
    let hook = Watcher::Hook(Box::new(move |pid: &Pid, reason: &ExitReason| {
        withdraw.retire(pid.id(), reason);
    }));
    // (Our own process is running: the hook is always added.)
    let _ = pid.0.add_watcher(next_key(), hook);
    ctx.started();
    let reason = held.value.ended().await;
    // Ended by itself: withdrawn at once, before the exit is even begun.
    current.retire(pid.id(), &reason);
    match reason {
        ExitReason::Normal => Ok(()),
        reason => Err(reason),
    }
}

impl ChildSpec<Infallible> {
    /// A permanent child that owns a [`Resource`]: each incarnation runs `start` (connect,
    /// say), publishes the value to `current` and acknowledges its start, then lives as long
    /// as the value does. When the value ends by itself the process exits with the reason
    /// [`Resource::ended`] gives (its links, monitors and supervisor see it, and the
    /// supervisor restarts it within its restart intensity); when the process is stopped or
    /// killed, the value is [`end`](Resource::end)ed. It takes no messages.
    ///
    /// The start is [`acknowledged`](ChildSpec::acknowledged) without a timeout of its own
    /// (bound `start` itself, or call `acknowledged` again): a supervisor starts the children
    /// after it only once the value is published, and a `start` that fails fails the
    /// supervisor's start (or counts as a crash when restarting).
    ///
    /// # Examples
    /// ```
    /// use std::future::Future;
    /// use std::sync::Arc;
    /// use beamline_process::{
    ///     ChildSpec, Current, ExitReason, Resource, Strategy, Supervisor, SupervisorSpec,
    /// };
    /// use tokio::sync::Notify;
    ///
    /// /// Stands in for a client connection: it ends when told to.
    /// #[derive(Clone, Default)]
    /// struct Conn(Arc<Notify>);
    ///
    /// impl Resource for Conn {
    ///     fn ended(&self) -> impl Future<Output = ExitReason> + Send {
    ///         let gone = self.0.clone();
    ///         async move {
    ///             gone.notified().await;
    ///             ExitReason::Normal
    ///         }
    ///     }
    ///     fn end(&self) {
    ///         self.0.notify_one();
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let conn = Current::new();
    /// let spec = ChildSpec::resource("conn", &conn, || async { Ok(Conn::default()) });
    /// let sup = Supervisor::start(SupervisorSpec::new(Strategy::OneForOne).child(spec))
    ///     .await
    ///     .unwrap();
    /// let first = conn.pid().unwrap();
    /// conn.get().unwrap().end(); // it ends: its process exits, the supervisor restarts it
    /// first.exited().await;
    /// # sup.count_children().await.unwrap();
    /// assert_ne!(conn.pid().unwrap(), first);
    /// sup.shutdown().await.unwrap();
    /// # }
    /// ```
    pub fn resource<T, S, Fut>(id: impl Into<ChildId>, current: &Current<T>, start: S) -> Self
    where
        T: Resource,
        S: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, ExitReason>> + Send + 'static,
    {
        let current = current.clone();
        ChildSpec::permanent(id, move |ctx| own(ctx, current.clone(), start()))
            .acknowledged(Timeout::Infinity)
    }
}
