//! Starting a process: [`SpawnConfig`], [`spawn`] and [`spawn_with`].

use std::future::Future;
use std::num::NonZeroUsize;

use super::core::Process;
use super::task::start;
use super::{Addr, Context, DEFAULT_CAPACITY};
use crate::exit::ExitReason;

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
///             Event::Info(_) => {}
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
