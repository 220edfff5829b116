//! `DynamicSupervisor`: one-shot and restartable children, max_children, terminate_child,
//! concurrent shutdown with one deadline, escalation, nesting, and a real socket per child.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

mod common;

use beamline_process::Info;
use std::time::Duration;

use beamline_process::{
    ChildSpec, Context, DynamicSupervisor, DynamicSupervisorConfig, Event, ExitReason, Intensity,
    RestartIntensityExceeded, Shutdown, StartChildError, Strategy, Supervisor, SupervisorSpec,
    TerminateChildError,
};
use common::{DELIBERATE, quiet_deliberate_panics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::time::Instant;

const SECOND: Duration = Duration::from_secs(1);

/// A temporary child that traps exits and, on shutdown, says goodbye on `log` (after
/// `goodbye_takes`) before exiting.
fn polite(
    name: &'static str,
    goodbye_takes: Duration,
    log: &UnboundedSender<String>,
) -> ChildSpec<()> {
    let log = log.clone();
    ChildSpec::temporary(name, move |mut ctx: Context<()>| async move {
        loop {
            if let Event::Info(Info::Exit { reason, .. }) = ctx.recv().await {
                tokio::time::sleep(goodbye_takes).await;
                let _ = log.send(format!("{name}: bye ({reason})"));
                return Err(reason);
            }
        }
    })
    .trap_exit(true)
}

/// A temporary child that traps exits and never leaves on its own.
fn stubborn(name: &'static str) -> ChildSpec<()> {
    ChildSpec::temporary(name, |mut ctx: Context<()>| async move {
        loop {
            ctx.recv().await;
        }
    })
    .trap_exit(true)
}

/// A temporary child that does not trap exits: a shutdown or its supervisor's death ends it.
fn idle(name: &'static str) -> ChildSpec<()> {
    ChildSpec::temporary(name, |mut ctx: Context<()>| async move {
        loop {
            ctx.recv().await;
        }
    })
}

#[tokio::test]
async fn a_one_shot_start_owns_its_value_and_the_child_is_forgotten_when_it_exits() {
    let sup = DynamicSupervisor::start(DynamicSupervisorConfig::new());
    let (tx, mut rx) = unbounded_channel();
    let owned = String::from("owned by the start");
    let addr = sup
        .start_child(ChildSpec::<u32>::temporary(
            "once",
            move |mut ctx| async move {
                if let Event::Msg(n) = ctx.recv().await {
                    let _ = tx.send(format!("{owned}: {n}"));
                }
                Ok(())
            },
        ))
        .unwrap();
    assert_eq!(sup.count_children().await.unwrap().active, 1);
    let infos = sup.which_children().await.unwrap();
    assert_eq!(infos[0].id.as_str(), "once");
    assert_eq!(infos[0].pid.as_ref(), Some(&addr.pid()));
    addr.cast(7).await.unwrap();
    assert_eq!(rx.recv().await.unwrap(), "owned by the start: 7");
    addr.exited().await;
    assert_eq!(sup.count_children().await.unwrap().active, 0);
    assert_eq!(
        addr.pid().exit_reason().map(|r| r.to_string()),
        Some("normal".into())
    );
}

#[tokio::test]
async fn max_children_refuses_with_a_typed_error_and_returns_the_spec() {
    let sup = DynamicSupervisor::start(DynamicSupervisorConfig::new().max_children(2));
    let a = sup.start_child(stubborn("a")).unwrap();
    sup.start_child(stubborn("b")).unwrap();
    match sup.start_child(stubborn("c")) {
        Err(StartChildError::MaxChildren {
            max,
            supervisor,
            spec,
        }) => {
            assert_eq!(max, 2);
            assert_eq!(Some(supervisor), sup.pid().map(|p| p.id()));
            assert_eq!(spec.id().as_str(), "c");
            // Not a restart-intensity failure: the supervisor is fine, and the returned spec
            // starts once there is room.
            a.kill();
            a.exited().await;
            sup.count_children().await.unwrap();
            sup.start_child(*spec).unwrap();
        }
        other => panic!("expected MaxChildren, got {other:?}"),
    }
    assert_eq!(sup.count_children().await.unwrap().active, 2);
}

#[tokio::test]
async fn terminate_child_sends_shutdown_and_forgets_the_child() {
    let sup = DynamicSupervisor::start(DynamicSupervisorConfig::new());
    let (tx, mut log) = unbounded_channel();
    let addr = sup.start_child(polite("p", Duration::ZERO, &tx)).unwrap();
    sup.terminate_child(&addr.pid()).await.unwrap();
    assert_eq!(log.recv().await.unwrap(), "p: bye (shutdown)");
    assert!(!addr.is_alive());
    assert_eq!(sup.count_children().await.unwrap().active, 0);
    match sup.terminate_child(&addr.pid()).await {
        Err(TerminateChildError::NotFound { child }) => assert_eq!(child, addr.id()),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_all_children_concurrently_under_one_deadline_and_reports() {
    let sup = DynamicSupervisor::start(DynamicSupervisorConfig::new());
    let (tx, mut log) = unbounded_channel();
    // Three say goodbye within the deadline (each takes 400 ms: concurrently, not 1.2 s),
    // two ignore it, one is brutal, and two do not trap exits (they end at once).
    for name in ["p1", "p2", "p3"] {
        sup.start_child(polite(name, Duration::from_millis(400), &tx))
            .unwrap();
    }
    let s1 = sup.start_child(stubborn("s1")).unwrap();
    sup.start_child(stubborn("s2")).unwrap();
    sup.start_child(stubborn("brutal").shutdown(Shutdown::Brutal))
        .unwrap();
    for _ in 0..2 {
        sup.start_child(idle("plain")).unwrap();
    }
    tokio::task::yield_now().await;
    let start = Instant::now();
    let report = sup.shutdown(SECOND).await.unwrap();
    assert_eq!(start.elapsed(), SECOND, "one deadline for everyone");
    assert_eq!((report.exited, report.aborted), (5, 3));
    let mut byes: Vec<String> = std::iter::from_fn(|| log.try_recv().ok()).collect();
    byes.sort();
    assert_eq!(
        byes,
        [
            "p1: bye (shutdown)",
            "p2: bye (shutdown)",
            "p3: bye (shutdown)"
        ]
    );
    assert!(matches!(s1.exit_reason(), Some(ExitReason::Killed)));
    assert!(sup.pid().is_none());
    assert!(matches!(
        sup.start_child(stubborn("late")),
        Err(StartChildError::NotRunning {
            reason: ExitReason::Shutdown,
            ..
        })
    ));
}

#[tokio::test(start_paused = true)]
async fn shutdown_returns_as_soon_as_everyone_has_left() {
    let sup = DynamicSupervisor::start(DynamicSupervisorConfig::new());
    let (tx, _log) = unbounded_channel();
    sup.start_child(polite("p", Duration::from_millis(10), &tx))
        .unwrap();
    tokio::task::yield_now().await;
    let start = Instant::now();
    let report = sup.shutdown(Duration::from_secs(30)).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(10));
    assert_eq!((report.exited, report.aborted), (1, 0));
}

#[derive(Debug)]
enum Work {
    Crash,
    Done,
    Ping(beamline_process::Reply<u32>),
}

fn restartable(
    transient: bool,
    generation: &std::sync::Arc<std::sync::atomic::AtomicU32>,
) -> ChildSpec<Work> {
    let generation = generation.clone();
    let body = move |mut ctx: Context<Work>| {
        let n = generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            loop {
                match ctx.recv().await {
                    Event::Msg(Work::Crash) => panic!("{DELIBERATE}: worker crash"),
                    Event::Msg(Work::Done) => return Ok(()),
                    Event::Msg(Work::Ping(r)) => {
                        let _ = r.send(n);
                    }
                    _ => {}
                }
            }
        }
    };
    if transient {
        ChildSpec::transient("worker", body)
    } else {
        ChildSpec::permanent("worker", body)
    }
}

#[tokio::test]
async fn restartable_children_restart_per_their_type_and_handles_follow() {
    quiet_deliberate_panics();
    let sup = DynamicSupervisor::start(DynamicSupervisorConfig::new());
    let generation = std::sync::Arc::default();
    let spec = restartable(true, &generation);
    let handle = spec.handle();
    sup.start_child(spec).unwrap();
    assert_eq!(handle.call(Work::Ping, SECOND).await.unwrap(), 0);
    let first = handle.current();
    first.cast(Work::Crash).await.unwrap();
    first.exited().await;
    let infos = sup.which_children().await.unwrap();
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0].restarts, 1);
    assert_eq!(handle.call(Work::Ping, SECOND).await.unwrap(), 1);
    // A transient child that finishes normally is not restarted.
    let second = handle.current();
    second.cast(Work::Done).await.unwrap();
    second.exited().await;
    assert_eq!(sup.count_children().await.unwrap().active, 0);
}

#[tokio::test(start_paused = true)]
async fn too_many_restarts_escalate_and_the_supervisor_refuses_new_children() {
    quiet_deliberate_panics();
    let sup = DynamicSupervisor::start(
        DynamicSupervisorConfig::new().intensity(Intensity::new(2, Duration::from_secs(60))),
    );
    let sup_pid = sup.pid().unwrap();
    let generation = std::sync::Arc::default();
    let spec = restartable(false, &generation);
    let handle = spec.handle();
    sup.start_child(spec).unwrap();
    let bystander = sup.start_child(stubborn("bystander")).unwrap();
    for _ in 0..3 {
        let addr = handle.current();
        let _ = addr.cast(Work::Crash).await;
        addr.exited().await;
        let _ = sup.count_children().await;
    }
    let reason = sup_pid.exited().await;
    assert!(
        reason
            .downcast_error::<RestartIntensityExceeded>()
            .is_some()
    );
    // Every child was stopped first; this one ignores shutdown, so it was killed at its timeout.
    assert!(matches!(bystander.exit_reason(), Some(ExitReason::Killed)));
    match sup.start_child(stubborn("late")) {
        Err(StartChildError::NotRunning { reason, spec }) => {
            assert!(
                reason
                    .downcast_error::<RestartIntensityExceeded>()
                    .is_some()
            );
            assert_eq!(spec.id().as_str(), "late");
        }
        other => panic!("expected NotRunning, got {other:?}"),
    }
}

#[tokio::test]
async fn a_nested_dynamic_supervisor_keeps_its_handle_across_restarts() {
    let dynsup = DynamicSupervisor::new(DynamicSupervisorConfig::new());
    assert!(matches!(
        dynsup.start_child(stubborn("early")),
        Err(StartChildError::NotRunning {
            reason: ExitReason::NoProc,
            ..
        })
    ));
    let top = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne).child(dynsup.child_spec("conns")),
    )
    .await
    .unwrap();
    let child = dynsup.start_child(idle("c1")).unwrap();
    let trapper = dynsup
        .start_child(
            ChildSpec::<()>::temporary("t1", |mut ctx| async move {
                match ctx.recv().await {
                    // OTP: a child that traps exits hears of its parent's death and must leave.
                    Event::Info(Info::Exit { from, reason }) if ctx.parent() == Some(&from) => {
                        Err(reason)
                    }
                    _ => Ok(()),
                }
            })
            .trap_exit(true),
        )
        .unwrap();
    let first = dynsup.pid().unwrap();
    first.kill();
    first.exited().await;
    assert!(
        matches!(child.exited().await, ExitReason::Killed),
        "children die with their supervisor"
    );
    assert!(matches!(trapper.exited().await, ExitReason::Killed));
    top.count_children().await.unwrap(); // the restart has happened
    let second = dynsup.pid().unwrap();
    assert_ne!(first, second);
    dynsup.start_child(idle("c2")).unwrap();
    assert_eq!(dynsup.count_children().await.unwrap().active, 1);
    top.shutdown().await.unwrap();
    assert!(dynsup.pid().is_none());
}

/// A temporary child that traps exits and then never looks at its mailbox again: busy in
/// a callback, or blocked on a socket.
fn busy(name: &'static str) -> ChildSpec<()> {
    ChildSpec::temporary(name, |_ctx: Context<()>| std::future::pending()).trap_exit(true)
}

#[tokio::test(start_paused = true)]
async fn kill_ends_every_child_at_once_even_one_that_traps_exits_and_is_busy() {
    // Killing only the supervisor's process is OTP's `exit(Sup, kill)`: children that trap
    // exits get a `Killed` exit signal in their mailbox, so a busy one lives on.
    let sup = DynamicSupervisor::start(DynamicSupervisorConfig::new());
    let survivor = sup.start_child(busy("busy")).unwrap();
    sup.pid().unwrap().kill();
    tokio::time::sleep(SECOND).await;
    assert!(survivor.is_alive(), "OTP semantics: a trapped exit signal");
    survivor.pid().kill();

    let sup = DynamicSupervisor::start(DynamicSupervisorConfig::new());
    let children = [
        sup.start_child(busy("busy")).unwrap().pid(),
        sup.start_child(stubborn("stubborn")).unwrap().pid(),
        sup.start_child(idle("idle")).unwrap().pid(),
    ];
    let me = sup.pid().unwrap();
    assert_eq!(sup.kill(), 3);
    for child in &children {
        assert!(matches!(child.exited().await, ExitReason::Killed));
    }
    assert!(matches!(me.exited().await, ExitReason::Killed));
    assert!(sup.pid().is_none());
    assert!(matches!(
        sup.start_child(idle("late")),
        Err(StartChildError::NotRunning {
            reason: ExitReason::Killed,
            ..
        })
    ));
    assert_eq!(sup.kill(), 0, "a second kill finds nothing");
}

#[tokio::test(start_paused = true)]
async fn kill_during_a_shutdown_kills_the_children_it_waits_for() {
    let sup = DynamicSupervisor::start(DynamicSupervisorConfig::new());
    let children = [
        sup.start_child(busy("busy")).unwrap().pid(),
        sup.start_child(stubborn("stubborn")).unwrap().pid(),
    ];
    let start = Instant::now();
    let shutdown = tokio::spawn({
        let sup = sup.clone();
        async move { sup.shutdown(Duration::from_secs(60)).await }
    });
    // The drain has begun: both children got their shutdown signal and ignore it.
    tokio::time::sleep(SECOND).await;
    assert!(sup.start_child(idle("late")).is_err());
    assert_eq!(sup.kill(), 2);
    for child in &children {
        assert!(matches!(child.exited().await, ExitReason::Killed));
    }
    // The shutdown in progress ends with its supervisor, well before its deadline.
    assert!(shutdown.await.unwrap().is_err());
    assert_eq!(start.elapsed(), SECOND);
}

/// The server pattern on a real socket: each accepted connection is a temporary child owning
/// its stream; it echoes until shutdown, then says goodbye on the socket.
#[tokio::test]
async fn a_connection_per_child_says_goodbye_on_shutdown() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sup = DynamicSupervisor::start(DynamicSupervisorConfig::new().max_children(8));
    let acceptor_sup = sup.clone();
    let acceptor = tokio::spawn(async move {
        for _ in 0..2 {
            let (stream, _) = listener.accept().await.unwrap();
            acceptor_sup
                .start_child(ChildSpec::<()>::temporary("conn", move |mut ctx| async move {
                    let mut stream = stream;
                    let mut buf = [0_u8; 64];
                    loop {
                        tokio::select! {
                            read = stream.read(&mut buf) => {
                                let n = read?;
                                if n == 0 { return Ok(()) }
                                stream.write_all(&buf[..n]).await?;
                            }
                            event = ctx.recv() => if let Event::Info(Info::Exit { reason, .. }) = event {
                                stream.write_all(b"bye\n").await?;
                                return Err(reason);
                            }
                        }
                    }
                }).trap_exit(true))
                .unwrap();
        }
    });
    let mut clients = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"ping").await.unwrap();
        let mut buf = [0_u8; 4];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        clients.push(c);
    }
    acceptor.await.unwrap();
    assert_eq!(sup.count_children().await.unwrap().active, 2);
    let report = sup.shutdown(SECOND).await.unwrap();
    assert_eq!((report.exited, report.aborted), (2, 0));
    for mut c in clients {
        let mut rest = String::new();
        c.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "bye\n");
    }
}

/// A permanent child whose start panics the first time, before it ever runs.
fn crashes_once_at_start(crashed: &std::sync::Arc<std::sync::atomic::AtomicBool>) -> ChildSpec<()> {
    let crashed = crashed.clone();
    ChildSpec::permanent("crashes-once", move |mut ctx: Context<()>| {
        if !crashed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            panic!("{DELIBERATE}: the start itself panics");
        }
        async move {
            loop {
                ctx.recv().await;
            }
        }
    })
}

/// A child's exit signal can reach its supervisor before the supervisor's body first runs
/// (here the child dies inside `start_child`, on a current-thread runtime where the
/// supervisor has not been polled yet): the supervisor traps exits from its first instant,
/// so it restarts the child instead of dying with it.
#[tokio::test]
async fn a_child_that_dies_before_its_supervisor_first_ran_is_restarted() {
    quiet_deliberate_panics();
    let crashed = std::sync::Arc::default();
    let sup = DynamicSupervisor::start(DynamicSupervisorConfig::new());
    let first = sup.start_child(crashes_once_at_start(&crashed)).unwrap();
    assert!(matches!(first.exit_reason(), Some(ExitReason::Panicked(_))));
    let infos = sup.which_children().await.unwrap();
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0].restarts, 1);

    // The same under a parent: the nested dynamic supervisor's spec traps exits too.
    let crashed = std::sync::Arc::default();
    let nested = DynamicSupervisor::new(DynamicSupervisorConfig::new());
    let top = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne).child(nested.child_spec("nested")),
    )
    .await
    .unwrap();
    let nested_pid = nested.pid().unwrap();
    nested.start_child(crashes_once_at_start(&crashed)).unwrap();
    assert_eq!(nested.which_children().await.unwrap()[0].restarts, 1);
    assert_eq!(
        nested.pid().unwrap(),
        nested_pid,
        "the nested supervisor lived on"
    );
    top.shutdown().await.unwrap();
}
