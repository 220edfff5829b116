//! The start handshake: a supervisor waits, child by child, for each acknowledged child's
//! start (`Context::started`, or a `GenServer`'s `init` returning) before it starts the next,
//! and a child that fails before acknowledging fails the start, OTP style.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

mod common;

use beamline_process::Info;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use beamline_process::{
    ChildSpec, Context, DynamicSupervisor, DynamicSupervisorConfig, Event, ExitReason, GenServer,
    Intensity, Registry, Restart, StartChildError, StartError, StartTimeout, Strategy, Supervisor,
    SupervisorSpec, serve,
};
use common::{DELIBERATE, quiet_deliberate_panics};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

const SECOND: Duration = Duration::from_secs(1);

/// Registers itself under "registered" in its init, after yielding a few times (as real setup
/// work would: binding a socket, reading a file), then serves.
struct Registrant {
    names: Registry<()>,
}

impl GenServer for Registrant {
    type Message = ();

    async fn init(&mut self, ctx: &mut Context<()>) -> Result<(), ExitReason> {
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        self.names.register("registered".to_string(), &ctx.addr())?;
        Ok(())
    }

    async fn handle(&mut self, (): (), _ctx: &mut Context<()>) -> Result<(), ExitReason> {
        Ok(())
    }
}

/// Looks the name up in its own init: it must already be there.
struct Lookup {
    names: Registry<()>,
}

#[derive(Debug, thiserror::Error)]
#[error("the sibling's name was not registered yet")]
struct NotYet;

impl GenServer for Lookup {
    type Message = ();

    async fn init(&mut self, _ctx: &mut Context<()>) -> Result<(), ExitReason> {
        self.names.lookup("registered").ok_or(NotYet)?;
        Ok(())
    }

    async fn handle(&mut self, (): (), _ctx: &mut Context<()>) -> Result<(), ExitReason> {
        Ok(())
    }
}

/// The test: on a multi-thread runtime, a sibling started after a child that
/// registers a name finds it in its own init, every time. Without the handshake the
/// supervisor only spawns the first child before starting the second, which then races it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sibling_finds_the_name_an_earlier_child_registered_in_its_init_1000_times() {
    for round in 0..1_000 {
        let names = Registry::new();
        let first = names.clone();
        let second = names.clone();
        let spec = SupervisorSpec::new(Strategy::OneForOne)
            .intensity(Intensity::new(0, SECOND))
            .child(
                ChildSpec::permanent("registrant", move |ctx| {
                    serve(
                        ctx,
                        Registrant {
                            names: first.clone(),
                        },
                    )
                })
                .acknowledged(SECOND),
            )
            .child(
                ChildSpec::permanent("lookup", move |ctx| {
                    serve(
                        ctx,
                        Lookup {
                            names: second.clone(),
                        },
                    )
                })
                .acknowledged(SECOND),
            );
        let sup = match Supervisor::start(spec).await {
            Ok(sup) => sup,
            Err(e) => panic!("round {round}: {e}"),
        };
        let counts = sup.count_children().await.unwrap();
        assert_eq!(counts.active, 2, "round {round}: both children run");
        sup.shutdown().await.unwrap();
    }
}

/// How a test child's start goes.
#[derive(Clone, Copy, Debug)]
enum Init {
    /// Acknowledges after this long (zero: at once).
    AckAfter(Duration),
    /// Returns an error before acknowledging.
    Fail,
    /// Panics before acknowledging.
    Panic,
    /// Never acknowledges.
    Silent,
}

const ACK: Init = Init::AckAfter(Duration::ZERO);

#[derive(Debug, thiserror::Error)]
#[error("init failed")]
struct InitFailed;

/// A child that logs "init <id>", starts as `init` says (per incarnation: `init(n)`), logs
/// "ready <id>", and on a shutdown signal logs "stop <id>" (it traps exits from the start).
/// A message makes it panic.
fn worker(
    id: &'static str,
    restart: Restart,
    init: impl Fn(usize) -> Init + Send + Sync + 'static,
    log: &UnboundedSender<String>,
) -> ChildSpec<()> {
    let log = log.clone();
    let incarnation = Arc::new(AtomicUsize::new(0));
    let body = move |mut ctx: Context<()>| {
        let log = log.clone();
        let init = init(incarnation.fetch_add(1, Ordering::SeqCst));
        async move {
            let _ = log.send(format!("init {id}"));
            match init {
                Init::AckAfter(wait) => {
                    tokio::time::sleep(wait).await;
                    ctx.started();
                }
                Init::Fail => return Err(ExitReason::error(InitFailed)),
                Init::Panic => panic!("{DELIBERATE}: {id} panics in its init"),
                Init::Silent => {}
            }
            let _ = log.send(format!("ready {id}"));
            loop {
                match ctx.recv().await {
                    Event::Info(Info::Exit { reason, .. }) => {
                        let _ = log.send(format!("stop {id}"));
                        return Err(reason);
                    }
                    Event::Msg(()) => panic!("{DELIBERATE}: {id} told to crash"),
                    Event::Info(Info::Down { .. }) => {}
                }
            }
        }
    };
    match restart {
        Restart::Permanent => ChildSpec::permanent(id, body),
        Restart::Transient => ChildSpec::transient(id, body),
        Restart::Temporary => ChildSpec::temporary(id, body),
    }
    .trap_exit(true)
    .acknowledged(5 * SECOND)
}

fn always(init: Init) -> impl Fn(usize) -> Init + Send + Sync + 'static {
    move |_| init
}

fn lines(log: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(line) = log.try_recv() {
        out.push(line);
    }
    out
}

#[tokio::test(start_paused = true)]
async fn a_child_that_fails_its_start_fails_the_start_and_its_elder_siblings_stop_in_reverse() {
    let (tx, mut log) = unbounded_channel();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("a", Restart::Permanent, always(ACK), &tx))
        .child(worker("b", Restart::Permanent, always(ACK), &tx))
        .child(worker("c", Restart::Permanent, always(Init::Fail), &tx))
        .child(worker("d", Restart::Permanent, always(ACK), &tx));
    match Supervisor::start(spec).await {
        Err(StartError::Child { child, reason }) => {
            assert_eq!(child.as_str(), "c");
            assert!(reason.downcast_error::<InitFailed>().is_some(), "{reason}");
        }
        other => panic!("expected StartError::Child, got {other:?}"),
    }
    assert_eq!(
        lines(&mut log),
        [
            "init a", "ready a", "init b", "ready b", "init c", "stop b", "stop a"
        ],
        "d never starts; b and a stop in reverse order"
    );
}

#[tokio::test(start_paused = true)]
async fn a_panic_before_acknowledging_fails_the_start_with_the_panic() {
    quiet_deliberate_panics();
    let (tx, _log) = unbounded_channel();
    let spec = SupervisorSpec::new(Strategy::OneForOne).child(worker(
        "p",
        Restart::Permanent,
        always(Init::Panic),
        &tx,
    ));
    match Supervisor::start(spec).await {
        Err(StartError::Child {
            reason: ExitReason::Panicked(message),
            ..
        }) => assert!(message.contains("panics in its init"), "{message}"),
        other => panic!("expected a panicked start, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_child_silent_past_its_start_timeout_is_killed_and_fails_the_start() {
    let (tx, mut log) = unbounded_channel();
    let started = tokio::time::Instant::now();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("a", Restart::Permanent, always(ACK), &tx))
        .child(worker(
            "mute",
            Restart::Permanent,
            always(Init::Silent),
            &tx,
        ));
    match Supervisor::start(spec).await {
        Err(StartError::Child { child, reason }) => {
            assert_eq!(child.as_str(), "mute");
            let timeout = reason.downcast_error::<StartTimeout>().unwrap();
            assert_eq!(timeout.timeout, 5 * SECOND);
        }
        other => panic!("expected a start timeout, got {other:?}"),
    }
    assert_eq!(started.elapsed(), 5 * SECOND, "the child's start timeout");
    // Killed (so it never logged its stop), then its elder sibling stopped.
    assert_eq!(
        lines(&mut log),
        ["init a", "ready a", "init mute", "ready mute", "stop a"]
    );
}

#[tokio::test(start_paused = true)]
async fn children_that_do_not_opt_in_count_as_started_once_spawned() {
    let (tx, mut log) = unbounded_channel();
    let slow = tx.clone();
    let started = tokio::time::Instant::now();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(ChildSpec::permanent("slow", move |mut ctx: Context<()>| {
            let log = slow.clone();
            async move {
                tokio::time::sleep(60 * SECOND).await;
                let _ = log.send("slow is set up".to_string());
                loop {
                    ctx.recv().await;
                }
            }
        }))
        .child(worker("next", Restart::Permanent, always(ACK), &tx));
    let sup = Supervisor::start(spec).await.unwrap();
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "no wait for a spawn-only child"
    );
    assert_eq!(lines(&mut log), ["init next", "ready next"]);
    sup.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_restart_waits_for_each_handshake_in_order() {
    let (tx, mut log) = unbounded_channel();
    let a = worker("a", Restart::Permanent, always(Init::AckAfter(SECOND)), &tx);
    let a_handle = a.handle();
    let spec = SupervisorSpec::new(Strategy::RestForOne)
        .child(a)
        .child(worker(
            "b",
            Restart::Permanent,
            always(Init::AckAfter(SECOND)),
            &tx,
        ));
    let sup = Supervisor::start(spec).await.unwrap();
    assert_eq!(lines(&mut log), ["init a", "ready a", "init b", "ready b"]);
    let first = a_handle.current();
    first.cast(()).await.unwrap();
    first.exited().await;
    sup.count_children().await.unwrap(); // answered once the restart is done
    assert_eq!(
        lines(&mut log),
        ["stop b", "init a", "ready a", "init b", "ready b"],
        "b restarts only after a acknowledged"
    );
    sup.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn restarts_that_fail_their_start_count_against_the_intensity() {
    quiet_deliberate_panics();
    let (tx, _log) = unbounded_channel();
    // Starts once, then every restart fails in its init.
    let flaky = worker(
        "flaky",
        Restart::Permanent,
        |n| if n == 0 { ACK } else { Init::Fail },
        &tx,
    );
    let handle = flaky.handle();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(Intensity::new(3, 60 * SECOND))
        .child(flaky);
    let sup = Supervisor::start(spec).await.unwrap();
    let sup_pid = sup.pid();
    handle.current().cast(()).await.unwrap();
    let reason = sup_pid.exited().await;
    let exceeded = reason
        .downcast_error::<beamline_process::RestartIntensityExceeded>()
        .unwrap();
    assert_eq!(exceeded.child.as_str(), "flaky");
}

#[tokio::test(start_paused = true)]
async fn a_nested_supervisor_fails_its_parent_start_when_its_child_fails() {
    let (tx, _log) = unbounded_channel();
    let inner = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("ok", Restart::Permanent, always(ACK), &tx))
        .child(worker("bad", Restart::Permanent, always(Init::Fail), &tx))
        .into_child("inner")
        .unwrap();
    let outer = SupervisorSpec::new(Strategy::OneForOne).child(inner);
    match Supervisor::start(outer).await {
        Err(StartError::Child { child, reason }) => {
            assert_eq!(child.as_str(), "inner");
            match reason.downcast_error::<StartError>() {
                Some(StartError::Child { child, .. }) => assert_eq!(child.as_str(), "bad"),
                other => panic!("expected the inner StartError, got {other:?}"),
            }
        }
        other => panic!("expected StartError::Child, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn start_child_acknowledged_waits_for_the_handshake_and_reports_a_failed_start() {
    let (tx, mut log) = unbounded_channel();
    let sup = DynamicSupervisor::start(DynamicSupervisorConfig::new());
    let started = tokio::time::Instant::now();
    let slow = worker(
        "slow",
        Restart::Permanent,
        always(Init::AckAfter(SECOND)),
        &tx,
    );
    sup.start_child_acknowledged(slow).await.unwrap();
    assert_eq!(started.elapsed(), SECOND);
    assert_eq!(lines(&mut log), ["init slow", "ready slow"]);

    // A permanent child whose start fails is forgotten, not restarted.
    let bad = worker("bad", Restart::Permanent, always(Init::Fail), &tx);
    match sup.start_child_acknowledged(bad).await {
        Err(StartChildError::Failed { child, reason }) => {
            assert_eq!(child.as_str(), "bad");
            assert!(reason.downcast_error::<InitFailed>().is_some());
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    let mute = worker("mute", Restart::Permanent, always(Init::Silent), &tx);
    match sup.start_child_acknowledged(mute).await {
        Err(StartChildError::Failed { reason, .. }) => {
            assert!(reason.downcast_error::<StartTimeout>().is_some());
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    tokio::time::sleep(SECOND).await;
    assert_eq!(sup.count_children().await.unwrap().active, 1, "only slow");
    assert_eq!(lines(&mut log), ["init bad", "init mute", "ready mute"]);

    // `start_child` does not wait: the child counts as started once spawned.
    let later = worker(
        "later",
        Restart::Permanent,
        always(Init::AckAfter(SECOND)),
        &tx,
    );
    let before = tokio::time::Instant::now();
    sup.start_child(later).unwrap();
    assert_eq!(before.elapsed(), Duration::ZERO);
    sup.shutdown(SECOND).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_dynamic_child_that_crashes_right_after_acknowledging_is_restarted() {
    quiet_deliberate_panics();
    let (tx, mut log) = unbounded_channel();
    let sup = DynamicSupervisor::start(DynamicSupervisorConfig::new());
    // The first incarnation panics the moment it has acknowledged: its exit is a crash to
    // restart, not a failed start (the acknowledgement came first).
    let crashes = Arc::new(AtomicUsize::new(0));
    let counted = crashes.clone();
    let log_tx = tx.clone();
    let spec = ChildSpec::permanent("eager", move |mut ctx: Context<()>| {
        let first = counted.fetch_add(1, Ordering::SeqCst) == 0;
        let log = log_tx.clone();
        async move {
            ctx.started();
            let _ = log.send("acknowledged".to_string());
            if first {
                panic!("{DELIBERATE}: crash right after acknowledging");
            }
            loop {
                ctx.recv().await;
            }
        }
    })
    .acknowledged(SECOND);
    let first = sup.start_child_acknowledged(spec).await.unwrap();
    first.exited().await;
    let infos = sup.which_children().await.unwrap();
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0].restarts, 1);
    assert_eq!(lines(&mut log), ["acknowledged", "acknowledged"]);
    drop(tx);
}
