//! The shared pool's guarantees: up to `max_users` per connection, least-loaded first,
//! overflow to a new connection, FIFO when full, draining of broken connections.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beamline_pool::{
    CheckoutError, CloseReason, ConfigError, PoolConfig, SharedGuard, SharedPool, StartError,
};
use common::{TestManager, plain, until};

const S: Duration = Duration::from_secs(1);

async fn pool(config: PoolConfig, max_users: usize) -> SharedPool<TestManager> {
    SharedPool::start(TestManager::new(), config, max_users)
        .await
        .unwrap()
}

fn ids(guards: &[SharedGuard<'_, TestManager>]) -> Vec<u64> {
    guards.iter().map(|g| g.id).collect()
}

#[tokio::test(start_paused = true)]
async fn a_full_connection_overflows_to_a_new_one_up_to_max_size() {
    let pool = pool(plain(3), 2).await;
    let mut guards = Vec::new();
    for _ in 0..6 {
        guards.push(pool.get().await.unwrap());
    }
    // Each connection takes two users before the next one is opened.
    assert_eq!(ids(&guards), vec![0, 0, 1, 1, 2, 2]);
    let m = pool.metrics();
    assert_eq!((m.size, m.in_use, m.users, m.idle), (3, 3, 6, 0));
    // All full, max_size reached: the next checkout waits for a share.
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get_owned().await.unwrap() }
    });
    until(|| pool.metrics().waiters == 1).await;
    let freed = guards.remove(2); // a share of connection 1
    drop(freed);
    let got = waiter.await.unwrap();
    assert_eq!(got.id, 1);
    assert_eq!(pool.metrics().created, 3);
}

#[tokio::test(start_paused = true)]
async fn a_checkout_joins_the_least_loaded_connection() {
    let pool = pool(plain(3), 3).await;
    let mut guards = Vec::new();
    for _ in 0..7 {
        guards.push(pool.get().await.unwrap());
    }
    assert_eq!(ids(&guards), vec![0, 0, 0, 1, 1, 1, 2]);
    // Free two shares of 0 and one of 1: loads are 0 → 1, 1 → 2, 2 → 1.
    guards.remove(0);
    guards.remove(0);
    guards.remove(2);
    let next = pool.get().await.unwrap();
    assert!(
        next.id == 0 || next.id == 2,
        "a connection with one user, not 1 with two"
    );
    let loads = |id| guards.iter().filter(|g| g.id == id).count() + usize::from(next.id == id);
    assert!(loads(0) <= 2 && loads(1) == 2 && loads(2) <= 2);
}

#[tokio::test(start_paused = true)]
async fn queued_checkouts_are_served_in_arrival_order() {
    let pool = pool(plain(1), 2).await;
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..6 {
        let (p, order) = (pool.clone(), Arc::clone(&order));
        tasks.push(tokio::spawn(async move {
            let share = p.get().await.unwrap();
            order.lock().unwrap().push(i);
            tokio::task::yield_now().await;
            drop(share);
        }));
        until(|| pool.metrics().waiters == i + 1).await;
    }
    drop((a, b));
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..6).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn one_new_connection_serves_up_to_max_users_waiters() {
    let manager = TestManager::slow(S);
    let pool = SharedPool::start(manager, plain(2), 4).await.unwrap();
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.get_owned().await.unwrap() })
        })
        .collect();
    until(|| pool.metrics().waiters == 4).await;
    assert_eq!(
        pool.metrics().connecting,
        1,
        "four waiters fit on one connection"
    );
    let mut shares = Vec::new();
    for w in waiters {
        shares.push(w.await.unwrap());
    }
    assert!(shares.iter().all(|s| s.id == 0));
    assert_eq!(pool.metrics().created, 1);
}

#[tokio::test(start_paused = true)]
async fn a_broken_connection_drains_takes_no_new_user_and_closes_after_its_last() {
    let pool = pool(plain(2), 4).await;
    let mut a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    assert_eq!((a.id, b.id), (0, 0));
    SharedGuard::mark_broken(&mut a);
    drop(a);
    assert_eq!(pool.manager().live(), 1, "b still uses it");
    let c = pool.get().await.unwrap();
    assert_eq!(c.id, 1, "no new user for the broken one");
    drop(b);
    assert_eq!(pool.manager().live(), 1, "closed after its last user");
    assert_eq!(pool.metrics().closed.get(CloseReason::Broken), 1);
    // A connection the manager reports broken is skipped at checkout.
    c.broken.store(true, Ordering::SeqCst);
    let d = pool.get().await.unwrap();
    assert_eq!(d.id, 2);
    drop((c, d));
    assert_eq!(pool.metrics().closed.get(CloseReason::Broken), 2);
    assert_eq!(pool.manager().live(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_share_dropped_while_its_task_panics_drains_the_connection() {
    let pool = pool(plain(2), 4).await;
    let other = pool.get().await.unwrap();
    let task = tokio::spawn({
        let pool = pool.clone();
        async move {
            let _share = pool.get_owned().await.unwrap();
            panic!("the user crashed mid-request");
        }
    });
    assert!(task.await.unwrap_err().is_panic());
    assert_ne!(pool.get().await.unwrap().id, other.id);
    drop(other);
    assert_eq!(pool.metrics().closed.get(CloseReason::Panicked), 1);
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_and_lifetime_apply_to_shared_connections() {
    let config = plain(2)
        .idle_timeout(Some(10 * S))
        .max_lifetime(Some(100 * S))
        .lifetime_jitter(0.0);
    let pool = pool(config, 1).await;
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    drop(a);
    tokio::time::sleep(12 * S).await;
    let m = pool.metrics();
    assert_eq!((m.size, m.closed.get(CloseReason::IdleTimeout)), (1, 1));
    tokio::time::sleep(100 * S).await;
    assert_eq!(
        pool.metrics().size,
        1,
        "in use: it drains, it is not cut off"
    );
    let c = pool.get().await.unwrap();
    assert_ne!(c.id, b.id, "past its lifetime: no new users");
    drop(b);
    let m = pool.metrics();
    assert_eq!((m.size, m.closed.get(CloseReason::MaxLifetime)), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn timeout_detach_and_close() {
    let pool = pool(plain(1).checkout_timeout(Some(2 * S)), 1).await;
    let a = pool.get().await.unwrap();
    assert!(matches!(
        pool.get().await,
        Err(CheckoutError::Timeout { .. })
    ));
    let conn = SharedGuard::detach(a);
    assert_eq!(pool.metrics().detached, 1);
    let b = pool.get().await.unwrap();
    assert_ne!(b.id, conn.id);
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|s| s.id) }
    });
    until(|| pool.metrics().waiters == 1).await;
    pool.close();
    assert!(matches!(
        waiter.await.unwrap(),
        Err(CheckoutError::Closed { .. })
    ));
    drop(b);
    drop(conn);
    assert_eq!(pool.manager().live(), 0);
}

#[tokio::test(start_paused = true)]
async fn zero_users_per_connection_is_a_typed_error() {
    let err = SharedPool::start(TestManager::new(), plain(1), 0)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StartError::Config(ConfigError::ZeroMaxUsers)),
        "{err}"
    );
}
