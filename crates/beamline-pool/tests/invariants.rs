//! The pool's invariants under load: 64 tasks × 1,000 checkouts each, on two worker threads,
//! with random hold times and random broken connections. For both pools:
//! - never more than `max_size` connections alive (counted by the connections themselves);
//! - never a connection handed to a checkout that started after it was reported broken;
//! - (shared pool) never more than `max_users` on one connection;
//! - at the end, every connection accounted for: the pool's books match the connections
//!   alive, and closing the pool leaves none.
#![allow(clippy::unwrap_used)]

mod common;

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use beamline_backoff::BackoffConfig;
use beamline_pool::{
    CheckPolicy, Pool, PoolConfig, PoolGuard, PoolMetrics, SharedGuard, SharedPool,
};
use beamline_testkit::Rng;
use common::{TestConn, TestManager, until};

const TASKS: u64 = 64;
const CHECKOUTS: u64 = 1000;
const MAX_SIZE: usize = 6;
const MAX_USERS: usize = 4;

fn config() -> PoolConfig {
    PoolConfig::new(MAX_SIZE)
        .min_idle(2)
        .check(CheckPolicy::Always)
        .checkout_timeout(None)
        .backoff(BackoffConfig::constant(Duration::from_millis(1)))
}

/// The test's own sequence clock: orders "reported broken" against "checkout started".
#[derive(Debug, Default)]
struct Seq(AtomicU64);

impl Seq {
    fn tick(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst)
    }
}

/// A checkout that began at `started` got `conn`: it must not have been reported broken
/// before that.
fn assert_not_retired(conn: &TestConn, started: u64) {
    let retired = conn.retired_at.load(Ordering::SeqCst);
    assert!(
        retired == u64::MAX || retired > started,
        "connection {} was reported broken at {retired}, handed out to a checkout begun at {started}",
        conn.id
    );
}

/// How a user leaves its connection, at random: fine (most of the time), marked broken, or
/// broken as the manager will see it on return.
enum Leave {
    Fine,
    Marked,
    Flagged,
}

fn leave(rng: &mut Rng) -> Leave {
    match rng.below(40) {
        0 => Leave::Marked,
        1 => Leave::Flagged,
        _ => Leave::Fine,
    }
}

async fn hold(rng: &mut Rng) {
    for _ in 0..rng.below(4) {
        tokio::task::yield_now().await;
    }
}

/// Once the load is over: the books match the connections alive, then close leaves none.
async fn assert_accounted(
    metrics: impl Fn() -> PoolMetrics,
    manager: &TestManager,
    close: impl Fn(),
) {
    until(|| metrics().connecting == 0).await;
    let m = metrics();
    assert_eq!((m.users, m.in_use, m.waiters), (0, 0, 0), "{m:?}");
    assert_eq!(m.size, m.idle, "{m:?}");
    assert_eq!(m.created, manager.shared.created.load(Ordering::SeqCst));
    assert_eq!(m.created, m.closed.total() + m.size as u64, "{m:?}");
    assert_eq!(manager.live(), m.size, "the books match what is alive");
    assert!(manager.shared.peak.load(Ordering::SeqCst) <= MAX_SIZE);
    assert_eq!(
        m.checkouts,
        TASKS * CHECKOUTS,
        "one per successful get, retries not counted"
    );
    assert_eq!(m.wait_time.count(), m.checkouts);
    close();
    assert_eq!(manager.live(), 0, "closing an idle pool closes everything");
}

/// What the load loop needs from either pool.
trait Load: Clone + Send + Sync + 'static {
    type Guard: Deref<Target = TestConn> + Send + 'static;
    /// Users one connection may have at once.
    const MAX_USERS: usize;
    fn checkout(&self) -> impl Future<Output = Self::Guard> + Send;
    fn mark_broken(guard: &mut Self::Guard);
}

impl Load for Pool<TestManager> {
    type Guard = PoolGuard<'static, TestManager>;
    const MAX_USERS: usize = 1;
    async fn checkout(&self) -> Self::Guard {
        self.get_owned().await.unwrap()
    }
    fn mark_broken(guard: &mut Self::Guard) {
        PoolGuard::mark_broken(guard);
    }
}

impl Load for SharedPool<TestManager> {
    type Guard = SharedGuard<'static, TestManager>;
    const MAX_USERS: usize = MAX_USERS;
    async fn checkout(&self) -> Self::Guard {
        self.get_owned().await.unwrap()
    }
    fn mark_broken(guard: &mut Self::Guard) {
        SharedGuard::mark_broken(guard);
    }
}

/// `TASKS` tasks × `CHECKOUTS` checkouts with random holds and random broken connections,
/// checking each checkout as it happens.
async fn load<P: Load>(pool: &P, seed: u64) {
    let seq = Arc::new(Seq::default());
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (pool, seq) = (pool.clone(), Arc::clone(&seq));
            tokio::spawn(async move {
                let mut rng = Rng::new(seed ^ ((t + 1) * 0x1234_5678_9ABC));
                for _ in 0..CHECKOUTS {
                    let started = seq.tick();
                    let mut conn = pool.checkout().await;
                    assert_not_retired(&conn, started);
                    let users = conn.users.fetch_add(1, Ordering::SeqCst) + 1;
                    assert!(
                        users <= P::MAX_USERS,
                        "{users} users on connection {}",
                        conn.id
                    );
                    hold(&mut rng).await;
                    conn.users.fetch_sub(1, Ordering::SeqCst);
                    let retired = Arc::clone(&conn.retired_at);
                    match leave(&mut rng) {
                        Leave::Fine => {
                            drop(conn);
                            continue;
                        }
                        Leave::Marked => P::mark_broken(&mut conn),
                        Leave::Flagged => conn.broken.store(true, Ordering::SeqCst),
                    }
                    drop(conn);
                    retired.store(seq.tick(), Ordering::SeqCst);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exclusive_pool_keeps_its_invariants_under_load() {
    let pool = Pool::start(TestManager::new(), config()).await.unwrap();
    load(&pool, 0x9E37_79B9).await;
    assert!(
        pool.metrics().closed.total() > 0,
        "some connections were broken"
    );
    assert_accounted(|| pool.metrics(), pool.manager(), || pool.close()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_pool_keeps_its_invariants_under_load() {
    let pool = SharedPool::start(TestManager::new(), config(), MAX_USERS)
        .await
        .unwrap();
    load(&pool, 0x51_7CC1_B727).await;
    assert!(
        pool.metrics().closed.total() > 0,
        "some connections were broken"
    );
    assert_accounted(|| pool.metrics(), pool.manager(), || pool.close()).await;
}

/// The fast paths (a return left in the returning thread's shard, a checkout served from it)
/// race with checkouts that queue. If a returned connection could stay in a shard while a
/// checkout waited, some checkout here would wait forever: two connections, 16 tasks in tight
/// loops on two threads, no checkout timeout, and a deadline on the whole run instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_connection_stays_in_a_shard_while_a_checkout_waits() {
    let config = PoolConfig::new(2)
        .checkout_timeout(None)
        .check(CheckPolicy::Never);
    let pool = Pool::start(TestManager::new(), config).await.unwrap();
    let tasks: Vec<_> = (0..16u64)
        .map(|t| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for i in 0..2000u64 {
                    let conn = pool.get().await.unwrap();
                    // Every few rounds, hold across a yield so that others queue.
                    if (i + t) % 7 == 0 {
                        tokio::task::yield_now().await;
                    }
                    drop(conn);
                }
            })
        })
        .collect();
    let all = async {
        for t in tasks {
            t.await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(20), all)
        .await
        .expect("a checkout waited while a connection sat idle");
    let m = pool.metrics();
    assert_eq!(
        (m.checkouts, m.waiters, m.in_use, m.size),
        (32_000, 0, 0, 2)
    );
    assert!(
        m.wait_time.buckets()[1..].iter().sum::<u64>() > 0,
        "some checkouts queued"
    );
}
