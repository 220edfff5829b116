//! Links, exit signals, trapping exits, and monitors.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

mod common;

use beamline_process::Info;
use std::time::Duration;

use beamline_process::{Addr, Context, Event, ExitReason, MonitorRef, Pid, Reply, spawn};
use common::{DELIBERATE, quiet_deliberate_panics};
use tokio::sync::mpsc;

const SECOND: Duration = Duration::from_secs(1);

/// What a test can ask a process to do on its own behalf.
enum Cmd {
    Link(Pid, Reply<()>),
    Unlink(Pid, Reply<()>),
    Monitor(Pid, Reply<MonitorRef>),
    Demonitor(MonitorRef, Reply<bool>),
    Trap(bool, Reply<()>),
    ExitSignal(Pid, ExitReason, Reply<()>),
    Say(u32),
    /// Busy until the sender fires (messages queue up meanwhile).
    Wait(tokio::sync::oneshot::Receiver<()>),
    Panic,
    Return(ExitReason),
}

/// A process that obeys [`Cmd`]s and reports every event it receives (except the commands).
fn agent(report: mpsc::UnboundedSender<Event<u32>>) -> Addr<Cmd> {
    spawn(move |mut ctx: Context<Cmd>| async move {
        loop {
            match ctx.recv().await {
                Event::Msg(cmd) => match cmd {
                    Cmd::Link(pid, r) => {
                        ctx.link(&pid);
                        let _ = r.send(());
                    }
                    Cmd::Unlink(pid, r) => {
                        ctx.unlink(&pid);
                        let _ = r.send(());
                    }
                    Cmd::Monitor(pid, r) => {
                        let _ = r.send(ctx.monitor(&pid));
                    }
                    Cmd::Demonitor(id, r) => {
                        let _ = r.send(ctx.demonitor(&id));
                    }
                    Cmd::Trap(on, r) => {
                        ctx.trap_exit(on);
                        let _ = r.send(());
                    }
                    Cmd::ExitSignal(pid, reason, r) => {
                        ctx.exit(&pid, reason);
                        let _ = r.send(());
                    }
                    Cmd::Say(n) => {
                        let _ = report.send(Event::Msg(n));
                    }
                    Cmd::Wait(gate) => {
                        let _ = gate.await;
                    }
                    Cmd::Panic => panic!("{DELIBERATE}: agent told to panic"),
                    Cmd::Return(reason) => return Err(reason),
                },
                Event::Info(info) => {
                    let _ = report.send(Event::Info(info));
                }
            }
        }
    })
}

fn new_agent() -> (Addr<Cmd>, mpsc::UnboundedReceiver<Event<u32>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (agent(tx), rx)
}

async fn ask<R>(a: &Addr<Cmd>, make: impl FnOnce(Reply<R>) -> Cmd) -> R {
    a.call(make, SECOND).await.unwrap()
}

async fn link(a: &Addr<Cmd>, b: &Addr<Cmd>) {
    ask(a, |r| Cmd::Link(b.pid(), r)).await;
}

async fn trap(a: &Addr<Cmd>) {
    ask(a, |r| Cmd::Trap(true, r)).await;
}

#[tokio::test]
async fn an_abnormal_exit_kills_a_linked_process_with_the_same_reason() {
    quiet_deliberate_panics();
    let (a, _) = new_agent();
    let (b, _) = new_agent();
    link(&a, &b).await;
    a.cast(Cmd::Panic).await.unwrap();
    assert!(matches!(a.exited().await, ExitReason::Panicked(_)));
    match b.exited().await {
        ExitReason::Panicked(m) => assert!(m.contains("agent told to panic")),
        other => panic!("expected the linked panic reason, got {other:?}"),
    }
}

#[tokio::test]
async fn links_work_both_ways() {
    let (a, _) = new_agent();
    let (b, _) = new_agent();
    link(&a, &b).await;
    b.kill();
    assert!(matches!(b.exited().await, ExitReason::Killed));
    assert!(matches!(a.exited().await, ExitReason::Killed));
}

#[tokio::test]
async fn a_normal_exit_does_not_kill_a_linked_process() {
    let (a, _) = new_agent();
    let (b, mut b_events) = new_agent();
    link(&a, &b).await;
    a.cast(Cmd::Return(ExitReason::Normal)).await.unwrap();
    assert!(matches!(a.exited().await, ExitReason::Normal));
    b.cast(Cmd::Say(1)).await.unwrap();
    assert!(matches!(b_events.recv().await, Some(Event::Msg(1))));
    assert!(b.is_alive());
}

#[tokio::test]
async fn shutdown_is_not_normal_for_a_linked_process_that_does_not_trap() {
    let (a, _) = new_agent();
    let (b, _) = new_agent();
    link(&a, &b).await;
    a.cast(Cmd::Return(ExitReason::Shutdown)).await.unwrap();
    assert!(matches!(b.exited().await, ExitReason::Shutdown));
}

#[tokio::test]
async fn a_trapping_process_receives_the_exit_as_a_message_and_lives() {
    quiet_deliberate_panics();
    let (a, _) = new_agent();
    let (b, mut b_events) = new_agent();
    trap(&b).await;
    link(&a, &b).await;
    a.cast(Cmd::Panic).await.unwrap();
    match b_events.recv().await {
        Some(Event::Info(Info::Exit { from, reason })) => {
            assert_eq!(from, a.pid());
            assert!(matches!(reason, ExitReason::Panicked(_)));
        }
        other => panic!("expected Exit, got {other:?}"),
    }
    assert!(b.is_alive());
    // The link is gone once used: b's own exit no longer reaches a (already dead) or anyone.
    b.cast(Cmd::Say(2)).await.unwrap();
    assert!(matches!(b_events.recv().await, Some(Event::Msg(2))));
}

#[tokio::test]
async fn kill_cannot_be_trapped_but_its_propagated_reason_can() {
    let (a, _) = new_agent();
    let (b, mut b_events) = new_agent();
    trap(&a).await;
    trap(&b).await;
    link(&a, &b).await;
    assert!(a.kill());
    assert!(matches!(a.exited().await, ExitReason::Killed));
    match b_events.recv().await {
        Some(Event::Info(Info::Exit {
            reason: ExitReason::Killed,
            ..
        })) => {}
        other => panic!("expected a trapped Exit(Killed), got {other:?}"),
    }
    assert!(b.is_alive());
}

#[tokio::test]
async fn exit_signals_follow_otp_rules() {
    let (sender, _) = new_agent();
    let (plain, mut plain_events) = new_agent();
    let (trapper, mut trapper_events) = new_agent();
    trap(&trapper).await;

    // Normal: ignored by a process that does not trap, delivered to one that does.
    ask(&sender, |r| {
        Cmd::ExitSignal(plain.pid(), ExitReason::Normal, r)
    })
    .await;
    ask(&sender, |r| {
        Cmd::ExitSignal(trapper.pid(), ExitReason::Normal, r)
    })
    .await;
    plain.cast(Cmd::Say(1)).await.unwrap();
    assert!(matches!(plain_events.recv().await, Some(Event::Msg(1))));
    match trapper_events.recv().await {
        Some(Event::Info(Info::Exit {
            from,
            reason: ExitReason::Normal,
        })) => assert_eq!(from, sender.pid()),
        other => panic!("expected Exit(Normal), got {other:?}"),
    }

    // Shutdown: ends a process that does not trap, is a message for one that does.
    ask(&sender, |r| {
        Cmd::ExitSignal(trapper.pid(), ExitReason::Shutdown, r)
    })
    .await;
    assert!(matches!(
        trapper_events.recv().await,
        Some(Event::Info(Info::Exit {
            reason: ExitReason::Shutdown,
            ..
        }))
    ));
    ask(&sender, |r| {
        Cmd::ExitSignal(plain.pid(), ExitReason::Shutdown, r)
    })
    .await;
    assert!(matches!(plain.exited().await, ExitReason::Shutdown));
    assert!(sender.is_alive(), "exit signals are one-way");
}

#[tokio::test]
async fn linking_to_a_dead_process_delivers_its_exit_at_once() {
    let (dead, _) = new_agent();
    dead.cast(Cmd::Return(ExitReason::error(std::io::Error::other(
        "gone",
    ))))
    .await
    .unwrap();
    dead.exited().await;

    let (trapper, mut events) = new_agent();
    trap(&trapper).await;
    link(&trapper, &dead).await;
    match events.recv().await {
        Some(Event::Info(Info::Exit { from, reason })) => {
            assert_eq!(from, dead.pid());
            assert_eq!(reason.to_string(), "error: gone");
        }
        other => panic!("expected Exit, got {other:?}"),
    }

    let (plain, _) = new_agent();
    // The link call itself kills a process that does not trap exits.
    let _ = plain.call(|r| Cmd::Link(dead.pid(), r), SECOND).await;
    assert!(matches!(plain.exited().await, ExitReason::Error(_)));
}

#[tokio::test]
async fn unlink_stops_propagation() {
    let (a, _) = new_agent();
    let (b, _) = new_agent();
    link(&a, &b).await;
    ask(&b, |r| Cmd::Unlink(a.pid(), r)).await;
    a.kill();
    a.exited().await;
    assert!(b.is_alive());
    ask(&b, |r| Cmd::Trap(false, r)).await; // still answering calls
}

#[tokio::test]
async fn a_monitor_receives_down_and_is_one_way() {
    quiet_deliberate_panics();
    let (watcher, mut events) = new_agent();
    let (target, _) = new_agent();
    let id = ask(&watcher, |r| Cmd::Monitor(target.pid(), r)).await;
    assert_eq!(id.target(), &target.pid());
    target.cast(Cmd::Panic).await.unwrap();
    match events.recv().await {
        Some(Event::Info(Info::Down {
            id: got,
            pid,
            reason: ExitReason::Panicked(_),
        })) => {
            assert_eq!(got, id);
            assert_eq!(pid, target.pid());
        }
        other => panic!("expected Down, got {other:?}"),
    }
    assert!(watcher.is_alive(), "a monitor never kills the watcher");

    // And the watcher's death does not touch the target.
    let (target2, mut t2_events) = new_agent();
    ask(&watcher, |r| Cmd::Monitor(target2.pid(), r)).await;
    watcher.kill();
    watcher.exited().await;
    target2.cast(Cmd::Say(5)).await.unwrap();
    assert!(matches!(t2_events.recv().await, Some(Event::Msg(5))));
}

#[tokio::test]
async fn monitoring_a_dead_process_delivers_down_at_once() {
    let (dead, _) = new_agent();
    dead.kill();
    dead.exited().await;
    let (watcher, mut events) = new_agent();
    let id = ask(&watcher, |r| Cmd::Monitor(dead.pid(), r)).await;
    assert!(matches!(
        events.recv().await,
        Some(Event::Info(Info::Down { id: got, reason: ExitReason::Killed, .. })) if got == id
    ));
}

#[tokio::test]
async fn demonitor_removes_the_monitor_and_any_queued_down() {
    let (watcher, mut events) = new_agent();
    let (target, _) = new_agent();
    let id = ask(&watcher, |r| Cmd::Monitor(target.pid(), r)).await;
    assert!(ask(&watcher, |r| Cmd::Demonitor(id.clone(), r)).await);
    target.kill();
    target.exited().await;
    watcher.cast(Cmd::Say(1)).await.unwrap();
    assert!(matches!(events.recv().await, Some(Event::Msg(1))));

    // A Down already queued behind the demonitor request is flushed by it.
    let (target, _) = new_agent();
    let id = ask(&watcher, |r| Cmd::Monitor(target.pid(), r)).await;
    let (open, gate) = tokio::sync::oneshot::channel();
    watcher.cast(Cmd::Wait(gate)).await.unwrap();
    let demonitor = {
        let w = watcher.clone();
        tokio::spawn(async move { w.call(|r| Cmd::Demonitor(id, r), SECOND).await })
    };
    tokio::task::yield_now().await;
    target.kill();
    target.exited().await; // the Down is now queued in the watcher's mailbox
    open.send(()).unwrap();
    assert!(
        !demonitor.await.unwrap().unwrap(),
        "the target was already gone"
    );
    watcher.cast(Cmd::Say(2)).await.unwrap();
    assert!(matches!(events.recv().await, Some(Event::Msg(2))));
}

#[tokio::test]
async fn a_process_last_messages_arrive_before_its_exit_notice() {
    let (parent, mut events) = new_agent();
    trap(&parent).await;
    let parent_addr = parent.clone();
    let child: Addr<()> = spawn(move |ctx| async move {
        ctx.link(&parent_addr.pid());
        for i in 0..50 {
            parent_addr
                .cast(Cmd::Say(i))
                .await
                .map_err(|_| ExitReason::Killed)?;
        }
        Err(ExitReason::Shutdown)
    });
    for i in 0..50 {
        assert!(matches!(events.recv().await, Some(Event::Msg(n)) if n == i));
    }
    assert!(matches!(
        events.recv().await,
        Some(Event::Info(Info::Exit { from, reason: ExitReason::Shutdown })) if from == child.pid()
    ));
}

#[tokio::test]
async fn spawn_link_links_before_the_child_runs_and_sets_its_parent() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let parent: Addr<()> = spawn(move |ctx| async move {
        ctx.trap_exit(true);
        let me = ctx.pid();
        let child: Addr<()> = ctx.spawn_link(move |child_ctx| async move {
            let _ = tx.send(child_ctx.parent() == Some(&me));
            Err(ExitReason::Killed)
        });
        let mut ctx = ctx;
        match ctx.recv().await {
            Event::Info(Info::Exit {
                from,
                reason: ExitReason::Killed,
            }) if from == child.pid() => Ok(()),
            _ => Err(ExitReason::Shutdown),
        }
    });
    assert_eq!(rx.recv().await, Some(true));
    assert!(matches!(parent.exited().await, ExitReason::Normal));
}
