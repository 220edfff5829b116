//! Stopping children the OTP way: a `Shutdown` exit signal, a timeout, then a kill.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::Shutdown;
use crate::exit::ExitReason;
use crate::process::{Pid, Watcher, next_key};

/// How a concurrent stop went: how many children exited by themselves (in response to the
/// shutdown signal, or on their own) and how many had to be killed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Children that exited before their deadline (including those that do not trap exits
    /// and so ended at once with [`ExitReason::Shutdown`]).
    pub exited: usize,
    /// Children killed: their deadline passed, or their shutdown is [`Shutdown::Brutal`].
    pub aborted: usize,
}

/// Stops one child: `Shutdown` exit signal from `supervisor`, then a kill when `shutdown`'s
/// timeout passes (at once for `Brutal`). Returns once the child has exited, with whether it
/// had to be killed.
pub(crate) async fn stop_child(supervisor: &Pid, child: &Pid, shutdown: Shutdown) -> bool {
    let killed = match shutdown {
        Shutdown::Brutal => child.kill(),
        Shutdown::Timeout(timeout) => {
            child
                .0
                .exit_signal(supervisor.clone(), ExitReason::Shutdown, false);
            match tokio::time::timeout(timeout, child.exited()).await {
                Ok(_) => false,
                Err(_) => child.kill(),
            }
        }
        Shutdown::Infinity => {
            child
                .0
                .exit_signal(supervisor.clone(), ExitReason::Shutdown, false);
            false
        }
    };
    child.exited().await;
    killed
}

/// Counts children still running during a concurrent stop.
struct Remaining {
    left: AtomicUsize,
    all_gone: Notify,
}

impl Remaining {
    fn one_gone(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.all_gone.notify_one();
        }
    }

    async fn wait(&self) {
        while self.left.load(Ordering::Acquire) > 0 {
            self.all_gone.notified().await;
        }
    }
}

/// Stops all `children` at once: each gets the `Shutdown` exit signal now, and is killed when
/// its own deadline passes (or `deadline`, when given, for every child that is not `Brutal`).
/// Returns once every child has exited.
pub(crate) async fn stop_all_concurrently(
    supervisor: &Pid,
    children: Vec<(Pid, Shutdown)>,
    deadline: Option<Duration>,
) -> ShutdownReport {
    let total = children.len();
    let remaining = Arc::new(Remaining {
        left: AtomicUsize::new(children.len()),
        all_gone: Notify::new(),
    });
    // One hook per child tells us when it is gone, without a task or channel per child.
    for (child, _) in &children {
        let r = remaining.clone();
        let hook = Watcher::Hook(Box::new(move |_, _| r.one_gone()));
        if child.0.add_watcher(next_key(), hook).is_err() {
            remaining.one_gone();
        }
    }
    let start = Instant::now();
    let mut report = ShutdownReport::default();
    let mut timed: Vec<(Instant, Pid)> = Vec::new();
    for (child, shutdown) in children {
        let shutdown = match (shutdown, deadline) {
            (Shutdown::Brutal, _) => Shutdown::Brutal,
            (_, Some(d)) => Shutdown::Timeout(d),
            (s, None) => s,
        };
        match shutdown {
            Shutdown::Brutal => report.aborted += usize::from(child.kill()),
            Shutdown::Timeout(t) => {
                child
                    .0
                    .exit_signal(supervisor.clone(), ExitReason::Shutdown, false);
                timed.push((start + t, child));
            }
            Shutdown::Infinity => {
                child
                    .0
                    .exit_signal(supervisor.clone(), ExitReason::Shutdown, false);
            }
        }
    }
    timed.sort_by_key(|(at, _)| *at);
    let mut i = 0;
    while i < timed.len() {
        let at = timed[i].0;
        if tokio::time::timeout_at(at, remaining.wait()).await.is_ok() {
            break;
        }
        // Everyone due at `at` who is still running is killed; a child already exiting
        // (kill returns false) exited by itself.
        while i < timed.len() && timed[i].0 == at {
            report.aborted += usize::from(timed[i].1.kill());
            i += 1;
        }
    }
    remaining.wait().await;
    report.exited = total - report.aborted;
    report
}
