//! A running [`Supervisor`](super::Supervisor): its children, OTP's rules as transitions on
//! them, and the process body that applies them.

use crate::Info;
use tokio::time::Instant;

use super::intensity::RestartWindow;
use super::spec::{ErasedChild, LinkTo};
use super::stop::stop_child;
use super::{
    ChildCounts, ChildInfo, Cmd, Restart, RestartIntensityExceeded, StartError, Strategy,
    SupervisorMsg, SupervisorSpec,
};
use crate::exit::ExitReason;
use crate::process::{Context, Event, Pid, ProcessId};

/// One child as the running supervisor tracks it.
struct Running {
    spec: ErasedChild,
    pid: Option<Pid>,
    started: bool,
    restarts: u32,
}

/// A child that did not start: its index and why.
type StartFailed = (usize, ExitReason);

/// The state of a running supervisor, and OTP's rules as transitions on it.
struct State {
    me: Pid,
    strategy: Strategy,
    window: RestartWindow,
    children: Vec<Running>,
}

impl State {
    /// Starts every child that is not running, from index `from` on (only that one with
    /// `only`), in order, each after the one before it has acknowledged its start. A
    /// one-shot child whose start was already used is dropped. Stops at the first child that
    /// fails its start (its `pid` is `None` then).
    async fn start_from(&mut self, from: usize, only: bool) -> Result<(), StartFailed> {
        let mut i = from;
        while i < self.children.len() && (!only || i == from) {
            let child = &mut self.children[i];
            if child.pid.is_none() {
                let Some(starting) = child.spec.start(&self.me, LinkTo::Both) else {
                    self.children.remove(i);
                    if only {
                        break;
                    }
                    continue;
                };
                let pid = starting.pid.clone();
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
                // Recorded before waiting, so its exit (stale if the start fails) is matched.
                child.pid = Some(pid);
                if let Err(reason) = starting.acknowledged().await {
                    let child = &mut self.children[i];
                    child.pid = None;
                    tracing::warn!(supervisor = self.me.id().as_u64(), child = %child.spec.id, %reason, "child failed to start");
                    return Err((i, reason));
                }
            }
            i += 1;
        }
        Ok(())
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

    /// Applies OTP's rules to the exit of child `i`, and to the failed start of any child
    /// restarted because of it (another exit of that child, counted the same way). `Err`
    /// carries the supervisor's own exit reason when the restart intensity is exceeded
    /// (every child has been stopped then).
    async fn child_exited(&mut self, i: usize, reason: ExitReason) -> Result<(), ExitReason> {
        let mut exit = Some((i, reason));
        while let Some((i, reason)) = exit.take() {
            exit = self.one_exit(i, reason).await?;
        }
        Ok(())
    }

    /// One exit: `Ok(Some(..))` is a child that failed to start again.
    async fn one_exit(
        &mut self,
        i: usize,
        reason: ExitReason,
    ) -> Result<Option<StartFailed>, ExitReason> {
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
            return Ok(None);
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
        let restarted = match self.strategy {
            Strategy::OneForOne => self.start_from(i, true).await,
            Strategy::OneForAll => {
                self.stop_from(0, Some(i)).await;
                self.start_from(0, false).await
            }
            Strategy::RestForOne => {
                self.stop_from(i + 1, None).await;
                self.start_from(i, false).await
            }
        };
        Ok(restarted.err())
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

/// The supervisor process's body. It acknowledges its own start once every child has
/// started; if one fails, it stops those already started (in reverse order) and exits with
/// [`StartError::Child`].
pub(super) async fn run(
    mut ctx: Context<SupervisorMsg>,
    spec: SupervisorSpec,
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
    if let Err((i, reason)) = state.start_from(0, false).await {
        let failed = StartError::Child {
            child: state.children[i].spec.id.clone(),
            reason,
        };
        tracing::error!(supervisor = state.me.id().as_u64(), error = %failed, "supervisor failed to start");
        state.stop_all().await;
        return Err(ExitReason::error(failed));
    }
    ctx.started();
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
            Event::Info(Info::Exit { from, reason }) if ctx.parent() == Some(&from) => {
                state.stop_all().await;
                return Err(reason);
            }
            Event::Info(Info::Exit { from, reason }) => {
                // Exits of children we already stopped (or of earlier incarnations) are stale.
                if let Some(i) = state.position(from.id()) {
                    state.child_exited(i, reason).await?;
                }
            }
            Event::Info(Info::Down { .. }) => {}
        }
    }
}
