//! Stress: a DynamicSupervisor with 10,000 children, 10% of which panic while the others are
//! being called. Every call to a live child succeeds, and after shutdown no task is left.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

mod common;

use std::time::Duration;

use beamline_process::{
    Addr, ChildSpec, Context, DynamicSupervisor, DynamicSupervisorConfig, Event, ExitReason, Reply,
};
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
                Event::Exit { reason, .. } => return Err(reason),
                Event::Down { .. } => {}
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
