//! Cooperative scheduling: a task looping on a mailbox that is always ready (room to cast
//! into, messages to receive) still gives its worker back, as a tokio channel does, so a
//! timer on the same current-thread runtime fires while the loop runs.
#![allow(clippy::unwrap_used)]

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use beamline_process::{Event, SpawnConfig, spawn_with};
use beamline_testkit::Witness;

/// More iterations than a task would ever run without yielding once.
const LOOPS: usize = 100_000;

fn roomy() -> SpawnConfig {
    SpawnConfig::new().capacity(NonZeroUsize::new(LOOPS).unwrap())
}

#[tokio::test(start_paused = true)]
async fn a_cast_loop_into_a_mailbox_with_room_lets_a_timer_fire() {
    let addr = spawn_with(roomy(), |mut ctx| async move {
        while let Event::Msg(()) = ctx.recv().await {}
        Ok(())
    });
    let casts = Arc::new(AtomicUsize::new(0));
    let witness = Witness::start(&casts).await;
    witness.make_due().await;
    while witness.fired_at().is_none() && casts.load(SeqCst) < LOOPS {
        addr.cast(()).await.unwrap();
        casts.fetch_add(1, SeqCst);
    }
    assert!(
        witness.fired_at().is_some(),
        "{LOOPS} casts never yielded: the timer was starved"
    );
}

#[tokio::test(start_paused = true)]
async fn a_recv_loop_over_a_full_mailbox_lets_a_timer_fire() {
    let received = Arc::new(AtomicUsize::new(0));
    let witness = Witness::start(&received).await;
    let addr = spawn_with(roomy(), {
        let received = received.clone();
        move |mut ctx| async move {
            while received.load(SeqCst) < LOOPS {
                let Event::Msg(()) = ctx.recv().await else {
                    break;
                };
                received.fetch_add(1, SeqCst);
            }
            Ok(())
        }
    });
    // Full before the body first runs: every `recv` of its loop is ready at once.
    for _ in 0..LOOPS {
        addr.try_cast(()).unwrap();
    }
    witness.make_due().await;
    addr.exited().await;
    assert!(
        witness.fired_at().is_some_and(|at| at < LOOPS),
        "the loop received all {LOOPS} messages before the timer fired: it was starved"
    );
}
