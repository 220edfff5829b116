//! [`ServerHandle`]: a running server's addresses, counters and lifecycle (suspend, resume,
//! two-phase graceful shutdown).

use std::fmt;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::Poll;
use std::time::Duration;

use beamline_process::DynamicSupervisor;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::acceptor::Acceptors;
use crate::error::{ResumeError, ShutdownError, SuspendError};
use crate::listen::{Bound, ListenAddr, ListenSpec, Listener};
use crate::stats::{ServerStats, Stats, StatsReader, Stopping};

/// Where a server is in its life. Changes only through [`ServerHandle`]'s operations:
///
/// ```text
/// Running ──suspend──► Suspended ──resume──► Running
///    │                     │
///    └──────shutdown───────┴──► Draining ──(all ended or deadline)──► Stopped
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(clippy::exhaustive_enums)] // closed: the lifecycle drawn above; a new state would change every transition
pub enum ServerState {
    /// Listening and serving.
    Running,
    /// Listeners closed (new connections are refused by the OS); live connections untouched.
    Suspended,
    /// Not accepting; live connections are being asked to finish.
    Draining,
    /// Every connection has ended.
    Stopped,
}

impl fmt::Display for ServerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Running => "running",
            Self::Suspended => "suspended",
            Self::Draining => "draining",
            Self::Stopped => "stopped",
        })
    }
}

/// How a graceful shutdown went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainReport {
    /// Connections that ended by themselves before the deadline (said goodbye and closed,
    /// were idle, or had ended meanwhile).
    pub drained: usize,
    /// Connections killed during the drain (their process aborted, the socket closed): still
    /// open at the deadline, or a callback still running when its lifetime passed.
    pub aborted: usize,
}

/// The lifecycle with the acceptor tasks it owns while running.
#[derive(Debug)]
enum Lifecycle {
    Running(Vec<JoinHandle<()>>),
    Suspended,
    Draining(Drain),
    Stopped,
}

/// A drain in progress, kept across a cancelled `shutdown` for the next one to take up.
#[derive(Clone, Copy, Debug)]
struct Drain {
    started: Instant,
    /// The counters when the connections were first asked to finish: the report's baseline.
    before: Option<ServerStats>,
}

/// A lifecycle operation.
#[derive(Debug)]
enum Op {
    Suspend,
    Resume(Vec<JoinHandle<()>>),
    Drain,
    Drained,
}

impl Lifecycle {
    fn state(&self) -> ServerState {
        match self {
            Self::Running(_) => ServerState::Running,
            Self::Suspended => ServerState::Suspended,
            Self::Draining(_) => ServerState::Draining,
            Self::Stopped => ServerState::Stopped,
        }
    }

    /// Applies `op`: every transition is here. Returns the acceptor tasks the operation
    /// stops; when `op` is not allowed, the state that forbids it and the tasks `op` brought
    /// (for the caller to stop). `Drain` while draining takes up a drain whose `shutdown`
    /// was cancelled (operations are serialized, so none is running).
    fn apply(&mut self, op: Op) -> Result<Vec<JoinHandle<()>>, Refused> {
        let drain = || {
            Self::Draining(Drain {
                started: Instant::now(),
                before: None,
            })
        };
        let (next, stopped) = match (std::mem::replace(self, Self::Stopped), op) {
            (Self::Running(tasks), Op::Suspend) => (Self::Suspended, tasks),
            (Self::Running(tasks), Op::Drain) => (drain(), tasks),
            (Self::Suspended, Op::Resume(tasks)) => (Self::Running(tasks), Vec::new()),
            (Self::Suspended, Op::Drain) => (drain(), Vec::new()),
            (Self::Draining(d), Op::Drain) => (Self::Draining(d), Vec::new()),
            (Self::Draining(_), Op::Drained) => (Self::Stopped, Vec::new()),
            (current, op) => {
                let state = current.state();
                *self = current;
                let brought = match op {
                    Op::Resume(tasks) => tasks,
                    Op::Suspend | Op::Drain | Op::Drained => Vec::new(),
                };
                return Err(Refused { state, brought });
            }
        };
        *self = next;
        Ok(stopped)
    }
}

/// Why [`ServerHandle::hand_over_with`] did not hand over.
#[derive(Debug)]
pub(crate) enum HandOff<E> {
    NotRunning(ServerState),
    Send(E),
}

/// An operation the lifecycle did not allow.
#[derive(Debug)]
struct Refused {
    state: ServerState,
    brought: Vec<JoinHandle<()>>,
}

/// Weak references to the listeners of `bound`: the acceptors own them.
fn open_listeners(bound: &[Bound]) -> Vec<(ListenAddr, Weak<Listener>)> {
    bound
        .iter()
        .flat_map(|b| {
            b.listeners
                .iter()
                .map(|l| (b.spec.addr.clone(), Arc::downgrade(l)))
        })
        .collect()
}

/// Aborts and drops acceptor tasks (for a handle going away: no waiting).
fn abort_all(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        task.abort();
    }
}

/// A running server: its addresses and counters, and the operations that change its life.
///
/// Operations are serialized (a `resume` waits for a `suspend` in progress), and each is
/// cancel-safe: dropping its future at any `.await` leaves a server that the next operation
/// (or a drop) takes from where it was.
///
/// # Dropping
/// Dropping the handle stops the server at once, leaking nothing: the acceptors stop (the
/// listeners close, a Unix socket file is removed) and every live connection is killed (its
/// socket closed, counted in `killed`). To stop gracefully, `await`
/// [`shutdown`](Self::shutdown) first.
pub struct ServerHandle {
    lifecycle: Mutex<Lifecycle>,
    /// Serializes suspend / resume / shutdown.
    ops: tokio::sync::Mutex<()>,
    addrs: Vec<ListenAddr>,
    specs: Vec<ListenSpec>,
    acceptors: Box<dyn Acceptors>,
    /// Acceptor tasks aborted and not yet seen to end (an operation was cancelled while it
    /// waited for them).
    stopping: Mutex<Vec<JoinHandle<()>>>,
    /// The listening sockets of the running acceptors (which own them), for an upgrade to
    /// hand over.
    open: Mutex<Vec<(ListenAddr, Weak<Listener>)>>,
    stats: std::sync::Arc<Stats>,
    sup: DynamicSupervisor,
}

impl ServerHandle {
    pub(crate) fn new(
        tasks: Vec<JoinHandle<()>>,
        bound: Vec<Bound>,
        acceptors: Box<dyn Acceptors>,
        stats: std::sync::Arc<Stats>,
        sup: DynamicSupervisor,
    ) -> Self {
        let specs: Vec<ListenSpec> = bound.iter().map(|b| b.spec.clone()).collect();
        Self {
            lifecycle: Mutex::new(Lifecycle::Running(tasks)),
            ops: tokio::sync::Mutex::new(()),
            addrs: specs.iter().map(|s| s.addr.clone()).collect(),
            specs,
            acceptors,
            stopping: Mutex::new(Vec::new()),
            open: Mutex::new(open_listeners(&bound)),
            stats,
            sup,
        }
    }

    fn lifecycle(&self) -> MutexGuard<'_, Lifecycle> {
        // Held only to read or swap the state, never across an await or user code.
        self.lifecycle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn stopping(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        // Held only inside one poll, never across an await.
        self.stopping.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops `tasks` and every acceptor a cancelled operation left stopping, and waits until
    /// all have ended: their listeners closed, what waited in the backlogs accepted, closed
    /// and counted (one log line for the episode). Cancel-safe: the tasks not yet seen to end
    /// stay for the next operation.
    async fn stop_acceptors(&self, tasks: Vec<JoinHandle<()>>, during: &'static str) {
        for task in &tasks {
            task.abort();
        }
        self.stopping().extend(tasks);
        poll_fn(|cx| {
            let mut stopping = self.stopping();
            stopping.retain_mut(|task| Pin::new(task).poll(cx).is_pending());
            if stopping.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        let rejected = self.stats.take_backlog();
        if rejected > 0 {
            tracing::info!(
                addrs = ?self.addrs,
                %during,
                rejected,
                "closed the connections waiting in the backlog"
            );
        }
    }

    /// The drain's start and baseline, taken the first time (by the first `shutdown`, or
    /// the one that takes up a cancelled one).
    fn drain_baseline(&self) -> Option<(Instant, ServerStats, bool)> {
        match &mut *self.lifecycle() {
            Lifecycle::Draining(drain) => {
                let first = drain.before.is_none();
                let before = *drain.before.get_or_insert_with(|| self.stats.snapshot());
                Some((drain.started, before, first))
            }
            Lifecycle::Running(_) | Lifecycle::Suspended | Lifecycle::Stopped => None,
        }
    }

    /// The addresses the server listens on, as bound (port 0 resolved), in `bind` order.
    pub fn local_addrs(&self) -> &[ListenAddr] {
        &self.addrs
    }

    /// The first TCP or TLS address: the common case of a server with one listener.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addrs.iter().find_map(ListenAddr::socket_addr)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ServerStats {
        self.stats.snapshot()
    }

    /// A reader of the same counters that does not own the server (a metrics publisher
    /// keeps one; see [`StatsReader`]).
    pub fn stats_reader(&self) -> StatsReader {
        StatsReader(self.stats.clone())
    }

    /// Where the server is in its life.
    pub fn state(&self) -> ServerState {
        self.lifecycle().state()
    }

    /// Closes the listeners; live connections are not touched. New connections are refused
    /// by the OS until [`resume`](Self::resume). Returns once every listener is closed.
    ///
    /// # Errors
    /// [`SuspendError::NotRunning`] unless the server is running.
    pub async fn suspend(&self) -> Result<(), SuspendError> {
        let _op = self.ops.lock().await;
        let tasks =
            self.lifecycle()
                .apply(Op::Suspend)
                .map_err(|refused| SuspendError::NotRunning {
                    state: refused.state,
                })?;
        self.stop_acceptors(tasks, "suspend").await;
        tracing::info!(addrs = ?self.addrs, "server suspended: listeners closed");
        Ok(())
    }

    /// Reopens the listeners on the same addresses (the same ports) and accepts again.
    ///
    /// # Errors
    /// - [`ResumeError::NotSuspended`] unless the server is suspended;
    /// - [`ResumeError::Bind`] if an address cannot be bound again; the server stays
    ///   suspended, with no listener open.
    pub async fn resume(&self) -> Result<(), ResumeError> {
        let _op = self.ops.lock().await;
        let state = self.state();
        if state != ServerState::Suspended {
            return Err(ResumeError::NotSuspended { state });
        }
        // The listeners of a cancelled suspend close first (the ports are taken till then).
        self.stop_acceptors(Vec::new(), "suspend").await;
        let mut bound = Vec::with_capacity(self.specs.len());
        for spec in &self.specs {
            match self.acceptors.bind(spec) {
                Ok(b) => bound.push(b),
                Err(source) => {
                    return Err(ResumeError::Bind {
                        addr: spec.addr.clone(),
                        source,
                    });
                }
            }
        }
        let tasks = self.acceptors.spawn(&bound);
        *self.open.lock().unwrap_or_else(PoisonError::into_inner) = open_listeners(&bound);
        drop(bound);
        let applied = self.lifecycle().apply(Op::Resume(tasks));
        if let Err(refused) = applied {
            // Unreachable while `ops` is held; stop what we started rather than leak it.
            self.stop_acceptors(refused.brought, "resume").await;
            return Err(ResumeError::NotSuspended {
                state: refused.state,
            });
        }
        tracing::info!(addrs = ?self.addrs, "server resumed: listening again");
        Ok(())
    }

    /// The step of an upgrade that only the handle can take: under the operations lock,
    /// while running, gives the open listeners to `send` (which passes them to the successor
    /// and waits until it accepts on them); once `send` succeeds, stops accepting without
    /// touching the backlogs or the Unix socket files, which are the successor's now. The
    /// server is then [`Suspended`](ServerState::Suspended). On any error nothing changed.
    /// Cancelled during `send`, nothing changed either.
    pub(crate) async fn hand_over_with<F, Fut, E>(&self, send: F) -> Result<usize, HandOff<E>>
    where
        F: FnOnce(Vec<(ListenAddr, Arc<Listener>)>) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let _op = self.ops.lock().await;
        let state = self.state();
        if state != ServerState::Running {
            return Err(HandOff::NotRunning(state));
        }
        let listeners: Vec<(ListenAddr, Arc<Listener>)> = self
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(|(addr, l)| Some((addr.clone(), l.upgrade()?)))
            .collect();
        let count = listeners.len();
        let held: Vec<Arc<Listener>> = listeners.iter().map(|(_, l)| l.clone()).collect();
        send(listeners).await.map_err(HandOff::Send)?;
        for listener in &held {
            listener.release();
        }
        drop(held);
        let tasks = self
            .lifecycle()
            .apply(Op::Suspend)
            .map_err(|refused| HandOff::NotRunning(refused.state))?;
        self.stop_acceptors(tasks, "upgrade").await;
        tracing::info!(addrs = ?self.addrs, sockets = count, "listeners handed over to a successor: not accepting");
        Ok(count)
    }

    /// Two-phase graceful shutdown. First the listeners close (nothing new is accepted; the
    /// connections waiting in the backlog are accepted, closed and counted in `rejected`).
    /// Then every connection is asked to finish: a [`Handler`](crate::Handler) gets
    /// [`on_shutdown`](crate::Handler::on_shutdown), a
    /// [`Connection`](crate::Connection) function its
    /// [`ShutdownSignal`](crate::ShutdownSignal) (or is closed at once if it never took
    /// it). Returns as soon as every connection has ended, or at `drain_timeout`, when those
    /// still open are killed; the report says how many of each. When it returns, every
    /// connection's process has ended and [`stats`](Self::stats) are final.
    ///
    /// Cancel-safe: a shutdown dropped at any `.await` (say, inside a
    /// `tokio::time::timeout`) leaves the server [`Draining`](ServerState::Draining), with
    /// the connections asked to finish still under their deadline; calling `shutdown` again
    /// takes the drain up under its own `drain_timeout` (a deadline the cancelled call had
    /// set still applies), and dropping the handle kills what is left.
    ///
    /// # Errors
    /// [`ShutdownError::AlreadyShutDown`] if a shutdown already finished.
    pub async fn shutdown(&self, drain_timeout: Duration) -> Result<DrainReport, ShutdownError> {
        let _op = self.ops.lock().await;
        let tasks = self.lifecycle().apply(Op::Drain).map_err(|refused| {
            ShutdownError::AlreadyShutDown {
                state: refused.state,
            }
        })?;
        let deadline = Instant::now() + drain_timeout;
        self.stats.set_stopping(Stopping::Draining);
        self.stop_acceptors(tasks, "shutdown").await;
        let Some((started, before, first)) = self.drain_baseline() else {
            // Unreachable: only this operation (serialized) leaves Draining.
            return Err(ShutdownError::AlreadyShutDown {
                state: self.state(),
            });
        };
        if first {
            tracing::info!(?drain_timeout, active = before.active, "drain started");
        }
        if self.sup.shutdown(drain_timeout).await.is_err() {
            // A cancelled shutdown had asked already: its supervisor drains under its own
            // deadline. Wait for it under this call's deadline too, then kill what is left.
            if tokio::time::timeout_at(deadline, self.stats.wait_idle())
                .await
                .is_err()
            {
                self.sup.kill();
            }
        }
        self.stats.wait_idle().await;
        let after = self.stats.snapshot();
        let aborted = after.killed.saturating_sub(before.killed);
        let report = DrainReport {
            drained: usize::try_from(before.active.saturating_sub(aborted)).unwrap_or(usize::MAX),
            aborted: usize::try_from(aborted).unwrap_or(usize::MAX),
        };
        let _ = self.lifecycle().apply(Op::Drained);
        tracing::info!(
            drained = report.drained,
            aborted = report.aborted,
            elapsed = ?started.elapsed(),
            "server stopped"
        );
        Ok(report)
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stats.set_stopping(Stopping::Dropped);
        let lifecycle = std::mem::replace(&mut *self.lifecycle(), Lifecycle::Stopped);
        if let Lifecycle::Running(tasks) = lifecycle {
            abort_all(tasks);
        }
        abort_all(std::mem::take(&mut *self.stopping()));
        // Every connection, blocked in a callback or a write or not: an untrappable kill each.
        let killed = self.sup.kill();
        if killed > 0 {
            tracing::info!(addrs = ?self.addrs, killed, "server dropped: connections killed");
        }
    }
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("addrs", &self.addrs)
            .field("state", &self.state())
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running() -> Lifecycle {
        Lifecycle::Running(Vec::new())
    }

    #[test]
    fn suspend_resume_and_drain_follow_the_diagram() {
        let mut l = running();
        l.apply(Op::Suspend).unwrap();
        assert_eq!(l.state(), ServerState::Suspended);
        assert_eq!(
            l.apply(Op::Suspend).unwrap_err().state,
            ServerState::Suspended
        );
        l.apply(Op::Resume(Vec::new())).unwrap();
        assert_eq!(l.state(), ServerState::Running);
        assert_eq!(
            l.apply(Op::Resume(Vec::new())).unwrap_err().state,
            ServerState::Running
        );
        l.apply(Op::Drain).unwrap();
        assert_eq!(l.state(), ServerState::Draining);
        for op in [Op::Suspend, Op::Resume(Vec::new())] {
            assert_eq!(l.apply(op).unwrap_err().state, ServerState::Draining);
        }
        // A cancelled shutdown's drain is taken up by the next one.
        assert!(l.apply(Op::Drain).unwrap().is_empty());
        assert_eq!(l.state(), ServerState::Draining);
        l.apply(Op::Drained).unwrap();
        assert_eq!(l.state(), ServerState::Stopped);
        assert_eq!(l.apply(Op::Drain).unwrap_err().state, ServerState::Stopped);
    }

    #[test]
    fn a_suspended_server_can_drain_and_running_cannot_be_marked_drained() {
        let mut l = running();
        assert_eq!(
            l.apply(Op::Drained).unwrap_err().state,
            ServerState::Running
        );
        l.apply(Op::Suspend).unwrap();
        l.apply(Op::Drain).unwrap();
        assert_eq!(l.state(), ServerState::Draining);
    }

    #[tokio::test]
    async fn refused_operations_hand_back_the_tasks_they_brought() {
        let mut l = Lifecycle::Stopped;
        let task = tokio::spawn(std::future::pending::<()>());
        let refused = l.apply(Op::Resume(vec![task])).unwrap_err();
        assert_eq!(refused.brought.len(), 1);
        abort_all(refused.brought);
    }
}
