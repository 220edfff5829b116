//! The dynamic supervisor process's body: its command loop, restarts on a child's exit, and
//! the drain at shutdown.

use crate::Info;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Cmd, DynamicSupervisorMsg, Entry, Settled, Shared, Status, mark_started};
use crate::exit::ExitReason;
use crate::process::{Context, Event, Pid, ProcessId};
use crate::supervisor::intensity::RestartWindow;
use crate::supervisor::spec::LinkTo;
use crate::supervisor::start::{StartTimeout, Waited};
use crate::supervisor::stop::{ShutdownReport, stop_all_concurrently};
use crate::supervisor::{ChildCounts, ChildId, ChildInfo, RestartIntensityExceeded, Shutdown};

/// The dynamic supervisor process's body.
pub(super) async fn run(
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
                            .filter(|e| e.sup == me.id())
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
                    for e in table.children.values().filter(|e| e.sup == me.id()) {
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
            Event::Info(Info::Exit { from, reason }) if ctx.parent() == Some(&from) => {
                drain(&me, &shared, None).await;
                return Err(reason);
            }
            Event::Info(Info::Exit { from, reason }) => {
                // Children that were terminated (or failed their start) are no longer in the
                // table; a child only ever signals the incarnation that started it.
                let Some(entry) = shared.lock().children.remove(&from.id()) else {
                    continue;
                };
                let mut exit = Some((entry, reason));
                while let Some((entry, reason)) = exit.take() {
                    exit = child_exited(&me, &shared, &mut window, entry, reason).await?;
                }
            }
            Event::Info(Info::Down { .. }) => {}
        }
    }
}

/// OTP's rules for one child's exit (its entry already out of the table). `Ok(Some(..))`:
/// the restart failed its start, another exit of the same child; `Err`: the supervisor's own
/// exit reason (escalation).
async fn child_exited(
    me: &Pid,
    shared: &Arc<Shared>,
    window: &mut RestartWindow,
    entry: Entry,
    reason: ExitReason,
) -> Result<Option<(Entry, ExitReason)>, ExitReason> {
    log_exit(me.id(), &entry.id, &reason);
    // A child that exits before acknowledging its start is a failed start, reported by
    // `start_child_acknowledged`.
    if entry.starting || !entry.restart.restarts_after(&reason) {
        return Ok(None);
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
        return Ok(None);
    };
    let Some(prepared) = respawn.starter.prepare(me, LinkTo::ChildSide) else {
        return Ok(None);
    };
    let pid = prepared.pid.clone();
    let restarts = entry.restarts + 1;
    let timeout = respawn.start_timeout;
    tracing::info!(supervisor = me.id().as_u64(), child = %respawn.id, pid = pid.id().as_u64(), restarts, "child restarted");
    // Recorded before it runs, like a new child. Only this task changes the status to
    // Stopping, so no drain can miss it.
    shared.lock().children.insert(
        pid.id(),
        Entry {
            pid: pid.clone(),
            sup: me.id(),
            id: entry.id,
            restart: entry.restart,
            shutdown: entry.shutdown,
            kind: entry.kind,
            restarts,
            starting: timeout.is_some(),
            respawn: Some(respawn),
        },
    );
    let on_ack = timeout.map(|_| mark_started(Arc::downgrade(shared), pid.id()));
    let mut starting = prepared.run(timeout, on_ack);
    let (reason, timed_out) = match starting.wait().await {
        Waited::Acknowledged => return Ok(None),
        Waited::Exited(reason) => (reason, false),
        Waited::TimedOut(timeout) => (ExitReason::error(StartTimeout { timeout }), true),
    };
    let settled = shared.lock().settle_failed_start(pid.id());
    match settled {
        Settled::Acknowledged | Settled::Gone => Ok(None),
        Settled::Forgotten(mut entry) => {
            if timed_out {
                pid.kill();
                pid.exited().await;
            }
            // Its exit, when it comes, finds no entry: this is its one exit.
            entry.starting = false;
            Ok(Some((entry, reason)))
        }
    }
}

pub(super) fn log_exit(supervisor: ProcessId, child: &ChildId, reason: &ExitReason) {
    if reason.is_abnormal() {
        tracing::warn!(supervisor = supervisor.as_u64(), %child, %reason, "child exited");
    } else {
        tracing::trace!(supervisor = supervisor.as_u64(), %child, %reason, "child exited");
    }
}

/// Refuses new children, then stops every child of this incarnation concurrently. The
/// children stay in the table while they stop (a temporary one leaves it when it exits), so
/// that [`DynamicSupervisor::kill`] during a drain still reaches every one.
async fn drain(me: &Pid, shared: &Shared, deadline: Option<Duration>) -> ShutdownReport {
    let children: Vec<(Pid, Shutdown)> = {
        let mut table = shared.lock();
        if let Status::Running(addr) = &table.status
            && addr.id() == me.id()
        {
            table.status = Status::Stopping(addr.clone());
        }
        table
            .children
            .values()
            .filter(|e| e.sup == me.id())
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
