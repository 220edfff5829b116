//! `Supervisor`: start/stop order, strategies, restart types, intensity and escalation,
//! shutdown timeouts, stable child handles.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

mod common;

use beamline_process::Info;
use std::time::Duration;

use beamline_process::{
    CallError, Child, ChildKind, ChildLookupError, ChildSpec, Event, ExitReason, Intensity,
    Restart, RestartIntensityExceeded, Shutdown, StartError, Strategy, Supervisor, SupervisorSpec,
};
use common::{DELIBERATE, quiet_deliberate_panics};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::time::Instant;

const SECOND: Duration = Duration::from_secs(1);

/// What a test child can be told to do.
#[derive(Debug)]
enum Do {
    Panic,
    Fail,
    Finish,
    Ping(beamline_process::Reply<&'static str>),
}

/// A child that logs "start <id>" and, on a shutdown signal, "stop <id>" (it traps exits from
/// its first instant, so the stop is always observable), and obeys [`Do`].
fn child(
    id: &'static str,
    restart: Restart,
    log: &UnboundedSender<String>,
) -> (ChildSpec<Do>, Child<Do>) {
    let log = log.clone();
    let body = move |mut ctx: beamline_process::Context<Do>| {
        let log = log.clone();
        async move {
            let _ = log.send(format!("start {id}"));
            loop {
                match ctx.recv().await {
                    Event::Msg(Do::Panic) => panic!("{DELIBERATE}: {id} told to panic"),
                    Event::Msg(Do::Fail) => {
                        return Err(ExitReason::error(std::io::Error::other(id)));
                    }
                    Event::Msg(Do::Finish) => return Ok(()),
                    Event::Msg(Do::Ping(r)) => {
                        let _ = r.send(id);
                    }
                    Event::Info(Info::Exit { reason, .. }) => {
                        let _ = log.send(format!("stop {id}"));
                        return Err(reason);
                    }
                    Event::Info(Info::Down { .. }) => {}
                }
            }
        }
    };
    let spec = match restart {
        Restart::Permanent => ChildSpec::permanent(id, body),
        Restart::Transient => ChildSpec::transient(id, body),
        Restart::Temporary => ChildSpec::temporary(id, body),
    }
    .trap_exit(true);
    let handle = spec.handle();
    (spec, handle)
}

fn drain(log: &mut UnboundedReceiver<String>) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(line) = log.try_recv() {
        out.push(line);
    }
    out
}

/// Tells `handle`'s current incarnation to do `what` and waits until it has exited and the
/// supervisor has handled the exit.
async fn crash(sup: &Supervisor, handle: &Child<Do>, what: Do) {
    let addr = handle.current();
    addr.cast(what).await.unwrap();
    addr.exited().await;
    sup.count_children().await.unwrap(); // ordered after the exit notice
}

async fn pids(sup: &Supervisor) -> Vec<(String, Option<u64>)> {
    sup.which_children()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.id.to_string(), c.pid.map(|p| p.id().as_u64())))
        .collect()
}

struct Three {
    sup: Supervisor,
    a: Child<Do>,
    b: Child<Do>,
    c: Child<Do>,
    log: UnboundedReceiver<String>,
}

async fn three(strategy: Strategy) -> Three {
    let (tx, log) = unbounded_channel();
    let (sa, a) = child("a", Restart::Permanent, &tx);
    let (sb, b) = child("b", Restart::Permanent, &tx);
    let (sc, c) = child("c", Restart::Permanent, &tx);
    let spec = SupervisorSpec::new(strategy).child(sa).child(sb).child(sc);
    let sup = Supervisor::start(spec).await.unwrap();
    Three { sup, a, b, c, log }
}

#[tokio::test]
async fn children_start_in_order_and_stop_in_reverse_order() {
    let mut t = three(Strategy::OneForOne).await;
    assert_eq!(drain(&mut t.log), ["start a", "start b", "start c"]);
    t.sup.shutdown().await.unwrap();
    assert_eq!(drain(&mut t.log), ["stop c", "stop b", "stop a"]);
    assert!(!t.a.current().is_alive());
    assert!(
        t.sup.which_children().await.is_err(),
        "the supervisor is gone"
    );
}

#[tokio::test]
async fn one_for_one_restarts_only_the_failed_child() {
    quiet_deliberate_panics();
    let mut t = three(Strategy::OneForOne).await;
    let before = pids(&t.sup).await;
    drain(&mut t.log);
    crash(&t.sup, &t.b, Do::Panic).await;
    let after = pids(&t.sup).await;
    assert_eq!(after[0], before[0]);
    assert_ne!(after[1], before[1]);
    assert!(after[1].1.is_some());
    assert_eq!(after[2], before[2]);
    assert_eq!(drain(&mut t.log), ["start b"]);
    let infos = t.sup.which_children().await.unwrap();
    assert_eq!(
        infos.iter().map(|c| c.restarts).collect::<Vec<_>>(),
        [0, 1, 0]
    );
    // The stable handle reaches the new incarnation.
    assert_eq!(t.b.call(Do::Ping, SECOND).await.unwrap(), "b");
}

#[tokio::test]
async fn one_for_all_stops_the_others_in_reverse_order_then_restarts_all_in_order() {
    let mut t = three(Strategy::OneForAll).await;
    drain(&mut t.log);
    crash(&t.sup, &t.b, Do::Fail).await;
    assert_eq!(
        drain(&mut t.log),
        ["stop c", "stop a", "start a", "start b", "start c"]
    );
    let infos = t.sup.which_children().await.unwrap();
    assert!(infos.iter().all(|c| c.restarts == 1 && c.pid.is_some()));
    for (h, name) in [(&t.a, "a"), (&t.b, "b"), (&t.c, "c")] {
        assert_eq!(h.call(Do::Ping, SECOND).await.unwrap(), name);
    }
}

#[tokio::test]
async fn rest_for_one_restarts_the_failed_child_and_those_started_after_it() {
    let mut t = three(Strategy::RestForOne).await;
    let before = pids(&t.sup).await;
    drain(&mut t.log);
    crash(&t.sup, &t.b, Do::Fail).await;
    assert_eq!(drain(&mut t.log), ["stop c", "start b", "start c"]);
    let after = pids(&t.sup).await;
    assert_eq!(after[0], before[0]);
    assert_ne!(after[1], before[1]);
    assert_ne!(after[2], before[2]);
    // Crashing the last child restarts only it.
    crash(&t.sup, &t.c, Do::Fail).await;
    assert_eq!(drain(&mut t.log), ["start c"]);
}

#[tokio::test]
async fn transient_children_restart_only_after_abnormal_exits() {
    let (tx, mut log) = unbounded_channel();
    let (spec, h) = child("t", Restart::Transient, &tx);
    let sup = Supervisor::start(SupervisorSpec::new(Strategy::OneForOne).child(spec))
        .await
        .unwrap();
    crash(&sup, &h, Do::Fail).await;
    assert_eq!(drain(&mut log), ["start t", "start t"]);
    crash(&sup, &h, Do::Finish).await;
    let infos = sup.which_children().await.unwrap();
    assert_eq!(infos.len(), 1, "the spec is kept");
    assert!(infos[0].pid.is_none(), "but not restarted");
    assert_eq!(sup.count_children().await.unwrap().active, 0);
    assert!(drain(&mut log).is_empty());
}

#[tokio::test]
async fn temporary_children_are_never_restarted_and_are_forgotten() {
    quiet_deliberate_panics();
    let (tx, mut log) = unbounded_channel();
    let (spec, h) = child("tmp", Restart::Temporary, &tx);
    let (keep, _) = child("keep", Restart::Permanent, &tx);
    let sup = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForAll)
            .child(spec)
            .child(keep),
    )
    .await
    .unwrap();
    crash(&sup, &h, Do::Panic).await;
    assert_eq!(pids(&sup).await.len(), 1);
    assert_eq!(pids(&sup).await[0].0, "keep");
    assert_eq!(drain(&mut log), ["start tmp", "start keep"]);
    let counts = sup.count_children().await.unwrap();
    assert_eq!((counts.specs, counts.active, counts.workers), (1, 1, 1));
}

#[tokio::test]
async fn a_one_for_all_restart_drops_temporary_siblings() {
    let (tx, mut log) = unbounded_channel();
    let (perm, p) = child("perm", Restart::Permanent, &tx);
    let (tmp, _) = child("tmp", Restart::Temporary, &tx);
    let sup = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForAll)
            .child(perm)
            .child(tmp),
    )
    .await
    .unwrap();
    drain(&mut log);
    crash(&sup, &p, Do::Fail).await;
    assert_eq!(drain(&mut log), ["stop tmp", "start perm"]);
    assert_eq!(pids(&sup).await.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn exceeding_the_restart_intensity_stops_all_children_and_exits_with_an_error() {
    let (tx, mut log) = unbounded_channel();
    let (sa, a) = child("a", Restart::Permanent, &tx);
    let (sb, _) = child("b", Restart::Permanent, &tx);
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(Intensity::new(3, Duration::from_secs(5)))
        .child(sa)
        .child(sb);
    let sup = Supervisor::start(spec).await.unwrap();
    let sup_pid = sup.pid();
    for _ in 0..3 {
        crash(&sup, &a, Do::Fail).await;
        tokio::time::advance(SECOND).await;
    }
    drain(&mut log);
    // The fourth restart within 5 s is one too many.
    let addr = a.current();
    addr.cast(Do::Fail).await.unwrap();
    let reason = sup_pid.exited().await;
    let exceeded = reason
        .downcast_error::<RestartIntensityExceeded>()
        .expect("the supervisor's reason says why");
    assert_eq!(exceeded.child.as_str(), "a");
    assert_eq!(exceeded.supervisor, sup_pid.id());
    assert_eq!(exceeded.intensity.max_restarts, 3);
    assert_eq!(drain(&mut log), ["stop b"]);
}

#[tokio::test(start_paused = true)]
async fn restarts_spread_beyond_the_period_do_not_escalate() {
    let (tx, _log) = unbounded_channel();
    let (sa, a) = child("a", Restart::Permanent, &tx);
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(Intensity::new(3, Duration::from_secs(5)))
        .child(sa);
    let sup = Supervisor::start(spec).await.unwrap();
    for _ in 0..10 {
        crash(&sup, &a, Do::Fail).await;
        tokio::time::advance(Duration::from_secs(2)).await;
    }
    assert_eq!(sup.which_children().await.unwrap()[0].restarts, 10);
}

#[tokio::test]
async fn a_nested_supervisor_escalates_to_its_parent_which_restarts_it() {
    let (tx, mut log) = unbounded_channel();
    let (inner_child, inner_handle) = child("inner", Restart::Permanent, &tx);
    let inner = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(Intensity::new(0, SECOND))
        .child(inner_child)
        .into_child("nested")
        .unwrap();
    let nested = Supervisor::from(inner.handle());
    let (sibling, _) = child("sibling", Restart::Permanent, &tx);
    let top = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne)
            .child(inner)
            .child(sibling),
    )
    .await
    .unwrap();
    let first_nested = nested.pid();
    let counts = top.count_children().await.unwrap();
    assert_eq!((counts.supervisors, counts.workers), (1, 1));
    drain(&mut log);

    let addr = inner_handle.current();
    addr.cast(Do::Fail).await.unwrap();
    let reason = first_nested.exited().await;
    assert!(
        reason
            .downcast_error::<RestartIntensityExceeded>()
            .is_some()
    );
    top.count_children().await.unwrap();
    let infos = top.which_children().await.unwrap();
    assert_eq!(
        infos[0].restarts, 1,
        "the parent restarted the nested supervisor"
    );
    assert_eq!(infos[0].kind, ChildKind::Supervisor);
    assert_ne!(
        nested.pid(),
        first_nested,
        "the handle follows the new incarnation"
    );
    assert_eq!(inner_handle.call(Do::Ping, SECOND).await.unwrap(), "inner");
    assert_eq!(drain(&mut log), ["start inner"]);

    // Shutting the top down stops the nested supervisor, which stops its child first.
    top.shutdown().await.unwrap();
    assert_eq!(drain(&mut log), ["stop sibling", "stop inner"]);
    assert!(nested.which_children().await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_child_that_ignores_shutdown_is_killed_after_its_timeout() {
    let stubborn = ChildSpec::<()>::permanent("stubborn", |mut ctx| async move {
        ctx.trap_exit(true);
        loop {
            ctx.recv().await; // ignores the shutdown signal
        }
    })
    .shutdown(Shutdown::Timeout(Duration::from_millis(300)));
    let brutal = ChildSpec::<()>::permanent("brutal", |mut ctx| async move {
        ctx.trap_exit(true);
        loop {
            ctx.recv().await;
        }
    })
    .shutdown(Shutdown::Brutal);
    let brutal_handle = brutal.handle();
    let sup = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne)
            .child(stubborn)
            .child(brutal),
    )
    .await
    .unwrap();
    let brutal_addr = brutal_handle.current();
    let start = Instant::now();
    sup.shutdown().await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    assert!(matches!(
        brutal_addr.exit_reason(),
        Some(ExitReason::Killed)
    ));
}

#[tokio::test]
async fn duplicate_child_ids_are_refused() {
    let (tx, _log) = unbounded_channel();
    let (a1, _) = child("a", Restart::Permanent, &tx);
    let (a2, _) = child("a", Restart::Transient, &tx);
    let spec = SupervisorSpec::new(Strategy::OneForOne).child(a1).child(a2);
    match Supervisor::start(spec.clone()).await {
        Err(StartError::DuplicateChildId { id }) => assert_eq!(id.as_str(), "a"),
        other => panic!("expected DuplicateChildId, got {other:?}"),
    }
    assert!(matches!(
        spec.into_child("nested"),
        Err(StartError::DuplicateChildId { .. })
    ));
}

#[tokio::test]
async fn a_handle_before_the_first_start_fails_with_noproc() {
    let (tx, _log) = unbounded_channel();
    let (_spec, handle) = child("never", Restart::Permanent, &tx);
    match handle.call(Do::Ping, SECOND).await {
        Err(beamline_process::CallError::Exited {
            reason: ExitReason::NoProc,
            ..
        }) => {}
        other => panic!("expected NoProc, got {other:?}"),
    }
}

#[tokio::test]
async fn a_handle_obtained_through_the_supervisor_follows_restarts() {
    let (tx, _log) = unbounded_channel();
    let (spec, _) = child("worker", Restart::Permanent, &tx);
    let sup = Supervisor::start(SupervisorSpec::new(Strategy::OneForOne).child(spec))
        .await
        .unwrap();
    let handle: Child<Do> = sup.child("worker").await.unwrap();
    let first = handle.pid();
    crash(&sup, &handle, Do::Fail).await;
    assert_ne!(
        handle.pid(),
        first,
        "the handle moved to the new incarnation"
    );
    assert_eq!(handle.call(Do::Ping, SECOND).await.unwrap(), "worker");

    match sup.child::<Do>("nobody").await {
        Err(ChildLookupError::NoSuchChild { id }) => assert_eq!(id.as_str(), "nobody"),
        other => panic!("expected NoSuchChild, got {other:?}"),
    }
    match sup.child::<u32>("worker").await {
        Err(ChildLookupError::WrongType { id }) => assert_eq!(id.as_str(), "worker"),
        other => panic!("expected WrongType, got {other:?}"),
    }
    sup.shutdown().await.unwrap();
    assert!(matches!(
        sup.child::<Do>("worker").await,
        Err(ChildLookupError::SupervisorExited(_))
    ));
}

/// Through a `Child` handle, a failed call says whether another incarnation may follow:
/// `Exited` while the supervisor runs (the child is being restarted, and a later call
/// reaches it), `SupervisorStopped` once the supervisor gave up or was shut down.
#[tokio::test(start_paused = true)]
async fn a_child_handle_tells_a_restarting_child_from_a_supervisor_that_stopped() {
    quiet_deliberate_panics();
    let (tx, _log) = unbounded_channel();
    let (sa, a) = child("a", Restart::Permanent, &tx);
    let sup = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne)
            .intensity(Intensity::new(1, Duration::from_secs(5)))
            .child(sa),
    )
    .await
    .unwrap();
    // Restartable: the crash is `Exited`, and the next call reaches the next incarnation.
    let restarting = a
        .call(|_: beamline_process::Reply<&str>| Do::Panic, SECOND)
        .await
        .unwrap_err();
    assert!(
        matches!(restarting, CallError::Exited { .. }),
        "{restarting:?}"
    );
    sup.count_children().await.unwrap(); // ordered after the restart
    assert_eq!(a.call(Do::Ping, SECOND).await.unwrap(), "a");
    // The second crash within 5 s is one too many: the supervisor gives up, for good.
    let sup_pid = sup.pid();
    let _ = a
        .call(|_: beamline_process::Reply<&str>| Do::Panic, SECOND)
        .await;
    sup_pid.exited().await;
    let stopped = a
        .call(Do::Ping, beamline_process::Timeout::Infinity)
        .await
        .unwrap_err();
    assert!(
        matches!(&stopped, CallError::SupervisorStopped { supervisor, .. } if *supervisor == sup_pid.id()),
        "{stopped:?}"
    );
    assert!(stopped.to_string().contains("its supervisor"), "{stopped}");

    // A supervisor shut down: the same answer.
    let (sb, b) = child("b", Restart::Permanent, &tx);
    let sup = Supervisor::start(SupervisorSpec::new(Strategy::OneForOne).child(sb))
        .await
        .unwrap();
    sup.shutdown().await.unwrap();
    let stopped = b.call(Do::Ping, SECOND).await.unwrap_err();
    assert!(
        matches!(
            stopped,
            CallError::SupervisorStopped {
                reason: ExitReason::Shutdown,
                ..
            }
        ),
        "{stopped:?}"
    );
}
