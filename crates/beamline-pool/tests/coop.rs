//! Cooperative scheduling: a task whose checkouts are always served at once (an idle
//! connection is always there) still gives its worker back, as a tokio channel does, so a
//! timer on the same current-thread runtime fires while it loops. Both pools.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use beamline_pool::{Pool, SharedPool};
use beamline_testkit::Witness;
use common::{TestManager, plain};

/// More checkouts than a task would ever make without yielding once.
const LOOPS: usize = 100_000;

macro_rules! coop_test {
    ($name:ident, $pool:ident $(, $users:expr)?) => {
        #[tokio::test(start_paused = true)]
        async fn $name() {
            let pool = $pool::start(TestManager::new(), plain(1) $(, $users)?).await.unwrap();
            drop(pool.get().await.unwrap()); // one idle connection from now on
            let checkouts = Arc::new(AtomicUsize::new(0));
            let witness = Witness::start(&checkouts).await;
            witness.make_due().await;
            while witness.fired_at().is_none() && checkouts.load(SeqCst) < LOOPS {
                drop(pool.get().await.unwrap());
                checkouts.fetch_add(1, SeqCst);
            }
            assert!(
                witness.fired_at().is_some(),
                "{LOOPS} checkouts never yielded: the timer was starved"
            );
        }
    };
}

coop_test!(a_checkout_loop_on_an_exclusive_pool_lets_a_timer_fire, Pool);
coop_test!(
    a_checkout_loop_on_a_shared_pool_lets_a_timer_fire,
    SharedPool,
    1
);
