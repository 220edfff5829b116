//! Stress: a DynamicSupervisor with 10,000 children, 10% of which panic while the others are
//! being called (every call to a live child succeeds, and after shutdown no task is left);
//! and one restarted over and over by its parent while children come and go (no child
//! outlives the incarnation that started it).
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

mod common;

use beamline_process::Info;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use beamline_process::{
    Addr, ChildSpec, Context, DynamicSupervisor, DynamicSupervisorConfig, Event, ExitReason,
    Intensity, Pid, Reply, Strategy, Supervisor, SupervisorSpec,
};
use beamline_testkit::Rng;
use common::{DELIBERATE, quiet_deliberate_panics};

const CHILDREN: usize = 10_000;
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

enum Msg {
    Echo(usize, Reply<usize>),
    Crash,
}

fn echo(i: usize) -> ChildSpec<Msg> {
    ChildSpec::temporary("echo", move |mut ctx: Context<Msg>| async move {
        loop {
            match ctx.recv().await {
                Event::Msg(Msg::Echo(n, reply)) => {
                    let _ = reply.send(n);
                }
                Event::Msg(Msg::Crash) => panic!("{DELIBERATE}: child {i} crashes"),
                Event::Info(Info::Exit { reason, .. }) => return Err(reason),
                Event::Info(Info::Down { .. }) => {}
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_children_ten_percent_panic() {
    quiet_deliberate_panics();
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();

    let sup = DynamicSupervisor::start(DynamicSupervisorConfig::new().max_children(CHILDREN));
    let children: Vec<Addr<Msg>> = (0..CHILDREN)
        .map(|i| sup.start_child(echo(i)).unwrap())
        .collect();
    assert_eq!(sup.count_children().await.unwrap().active, CHILDREN);

    // Every tenth child panics while callers hammer the rest, from several tasks at once.
    let crashers = children.iter().step_by(10).cloned().collect::<Vec<_>>();
    let crash = tokio::spawn(async move {
        for c in &crashers {
            c.cast(Msg::Crash).await.unwrap();
        }
        for c in &crashers {
            assert!(matches!(c.exited().await, ExitReason::Panicked(_)));
        }
    });
    let live: Vec<(usize, Addr<Msg>)> = children
        .iter()
        .cloned()
        .enumerate()
        .filter(|(i, _)| i % 10 != 0)
        .collect();
    let callers: Vec<_> = live
        .chunks(live.len() / 8 + 1)
        .map(|chunk| {
            let chunk = chunk.to_vec();
            tokio::spawn(async move {
                for (i, c) in chunk {
                    let got = c.call(|r| Msg::Echo(i, r), CALL_TIMEOUT).await;
                    assert_eq!(got.unwrap(), i, "call to live child {i}");
                }
            })
        })
        .collect();
    for c in callers {
        c.await.unwrap();
    }
    crash.await.unwrap();

    let counts = sup.count_children().await.unwrap();
    assert_eq!(counts.active, CHILDREN - CHILDREN / 10);
    let report = sup.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(report.exited, CHILDREN - CHILDREN / 10);
    assert_eq!(report.aborted, 0);
    drop(children);

    // Tasks finish a moment after publishing their exit: give them a bounded while.
    for _ in 0..200 {
        if metrics.num_alive_tasks() == baseline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(metrics.num_alive_tasks(), baseline, "tasks left behind");
}

/// A child of the restarted dynamic supervisor: `kind` 0 and 1 watch their supervisor (a
/// monitor) and idle until signalled (one permanent, one temporary), 2 exits by itself after
/// a yield.
fn churn(kind: u64) -> ChildSpec<()> {
    let idle = |mut ctx: Context<()>| async move {
        if let Some(sup) = ctx.parent().cloned() {
            ctx.monitor(&sup);
        }
        loop {
            let _ = ctx.recv().await;
        }
    };
    match kind {
        0 => ChildSpec::permanent("idle-permanent", idle),
        1 => ChildSpec::temporary("idle-temporary", idle),
        _ => ChildSpec::temporary("short", |_ctx: Context<()>| async {
            tokio::task::yield_now().await;
            Ok(())
        }),
    }
}

/// The stress test: a dynamic supervisor under a permanent parent, killed and
/// restarted over and over while another task starts children (some exit by themselves).
/// Each incarnation owns its own children, so none outlives the incarnation that started it
/// unsignalled: afterwards every child has exited and the live task count is back where it
/// started. (The race: the old incarnation's exit reaches the parent through its link
/// before its table hook runs; a restart in between used to clear the table, leaving the
/// old children running, unseen.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_dynamic_supervisor_leaves_no_child_behind() {
    const RESTARTS: usize = 150;
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();

    let conns = DynamicSupervisor::new(DynamicSupervisorConfig::new());
    // A sibling that exits as soon as it runs keeps the parent busy restarting it, on either
    // worker, as a parent with other work would be when the dynamic supervisor dies.
    let flapper = ChildSpec::permanent("flapper", |_ctx: Context<()>| async {
        tokio::task::yield_now().await;
        Ok(())
    });
    let parent = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne)
            .intensity(Intensity::new(u32::MAX, Duration::from_secs(1)))
            .child(conns.child_spec("conns"))
            .child(flapper),
    )
    .await
    .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let starter = tokio::spawn({
        let (conns, stop) = (conns.clone(), stop.clone());
        async move {
            let mut rng = Rng::new(16);
            let mut started: Vec<Pid> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..8 {
                    if let Ok(addr) = conns.start_child(churn(rng.below(3))) {
                        started.push(addr.pid());
                    }
                }
                tokio::task::yield_now().await;
            }
            started
        }
    });
    for _ in 0..RESTARTS {
        // Let the parent restart it and the starter give the new incarnation a few hundred
        // children (a bounded wait), then kill it.
        for _ in 0..10_000 {
            match conns.count_children().await {
                Ok(counts) if counts.active >= 128 => break,
                _ => tokio::task::yield_now().await,
            }
        }
        if let Some(current) = conns.pid() {
            current.kill();
            current.exited().await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let started = starter.await.unwrap();
    assert!(
        started.len() > RESTARTS,
        "children were started throughout: {}",
        started.len()
    );
    parent.shutdown().await.unwrap();

    // Signalled children end at once (none traps exits): a bounded wait for them all.
    let all_exited = async {
        for pid in &started {
            pid.exited().await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), all_exited).await;
    let orphans = started.iter().filter(|pid| pid.is_alive()).count();
    assert_eq!(
        orphans, 0,
        "children still running after their supervisor exited"
    );
    for _ in 0..200 {
        if metrics.num_alive_tasks() == baseline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(metrics.num_alive_tasks(), baseline, "tasks left behind");
}
