//! The pool's own tasks survive a panic in user code: a panicking `Manager::create` fails the
//! longest waiter and gives its place back, and a panicking connection `Drop` during
//! maintenance is logged while reaping, lifetime expiry and `min_idle` top-up go on. Both
//! pools, each test once per pool.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use beamline_backoff::BackoffConfig;
use beamline_pool::{CheckPolicy, CheckoutError, CloseReason, Pool, SharedPool};
use common::{TestManager, plain, until};
use tokio::time::Instant;

const S: Duration = Duration::from_secs(1);

/// The same tests for the exclusive and the shared pool (`max_users` 1, so each checkout
/// takes a connection of its own, as in the exclusive pool).
macro_rules! panic_tests {
    ($kind:ident, $pool:ident $(, $users:expr)?) => {
        mod $kind {
            use super::*;

            #[tokio::test(start_paused = true)]
            async fn a_panic_in_create_fails_the_longest_waiter_and_frees_its_place() {
                let manager = TestManager::new();
                manager.panics.store(1, SeqCst);
                let config = plain(1)
                    .checkout_timeout(Some(10 * S))
                    .backoff(BackoffConfig::constant(S / 10));
                let pool = $pool::start(manager, config $(, $users)?).await.unwrap();
                let started = Instant::now();
                let err = pool.get().await.unwrap_err();
                assert!(
                    started.elapsed() < S,
                    "the waiter waited {:?} for an attempt that had panicked: {err}",
                    started.elapsed()
                );
                assert!(
                    matches!(&err, CheckoutError::CreatePanicked { pool, message }
                        if &**pool == "test" && message.contains("create panicked")),
                    "{err:?}"
                );
                assert!(err.to_string().contains("pool test"), "{err}");
                // The panicked attempt's place is free: the next checkout connects.
                let conn = pool.get().await.unwrap();
                let m = pool.metrics();
                assert_eq!((m.size, m.connecting, m.max_size), (1, 0, 1));
                drop(conn);
            }

            #[tokio::test(start_paused = true)]
            async fn panics_in_create_back_off_and_min_idle_is_still_met() {
                let manager = TestManager::new();
                manager.panics.store(3, SeqCst);
                let config = plain(2)
                    .min_idle(1)
                    .backoff(BackoffConfig::constant(S / 10));
                let pool = $pool::start(manager, config $(, $users)?).await.unwrap();
                let started = Instant::now();
                until(|| pool.metrics().idle == 1).await;
                // Three panics, each followed by the backoff delay: no tight loop.
                assert!(started.elapsed() >= 3 * S / 10, "{:?}", started.elapsed());
                assert_eq!(pool.manager().shared.attempts.load(SeqCst), 4);
                assert_eq!(pool.metrics().connecting, 0);
            }

            #[tokio::test(start_paused = true)]
            async fn maintenance_survives_a_panicking_connection_drop() {
                let config = plain(3)
                    .min_idle(1)
                    .idle_timeout(Some(10 * S))
                    .max_lifetime(Some(100 * S))
                    .lifetime_jitter(0.0)
                    .checkout_timeout(Some(S));
                let pool = $pool::start(TestManager::new(), config $(, $users)?).await.unwrap();
                until(|| pool.metrics().idle == 1).await;
                let held = (pool.get().await.unwrap(), pool.get().await.unwrap());
                let third = pool.get().await.unwrap();
                drop((held, third));
                assert_eq!(pool.metrics().idle, 3);

                // The idle timeout reaps two; the first one dropped panics.
                pool.manager().shared.panic_on_drop.store(true, SeqCst);
                tokio::time::sleep(11 * S).await;
                let m = pool.metrics();
                assert_eq!(m.closed.get(CloseReason::IdleTimeout), 2);
                assert!(!pool.manager().shared.panic_on_drop.load(SeqCst), "it panicked");
                assert_eq!(pool.manager().live(), 1);

                // Lifetime expiry and the min_idle top-up go on.
                tokio::time::sleep(95 * S).await;
                assert_eq!(pool.metrics().closed.get(CloseReason::MaxLifetime), 1);
                until(|| pool.metrics().idle == 1).await;
                assert_eq!(pool.metrics().created, 4);

                // The two closed in the panic count no more: three checkouts fit again.
                let held = (pool.get().await.unwrap(), pool.get().await.unwrap());
                let third = pool.get().await.unwrap();
                drop((held, third));

                // And reaping goes on.
                tokio::time::sleep(11 * S).await;
                assert_eq!(pool.metrics().closed.get(CloseReason::IdleTimeout), 4);
                assert_eq!(pool.manager().live(), 1);
            }
        }
    };
}

panic_tests!(exclusive, Pool);
panic_tests!(shared, SharedPool, 1);

/// The other way an attempt task ends early: its runtime drops it mid-`create`. Its place
/// in `connecting` is given back all the same.
#[test]
fn an_attempt_dropped_with_its_runtime_gives_its_place_back() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let pool = runtime.block_on(async {
        let manager = TestManager::slow(3600 * S);
        let pool = Pool::start(manager, plain(1).min_idle(1)).await.unwrap();
        until(|| pool.manager().shared.attempts.load(SeqCst) == 1).await;
        assert_eq!(pool.metrics().connecting, 1);
        pool
    });
    drop(runtime);
    assert_eq!(pool.metrics().connecting, 0);
}

/// A checkout given up while its connection is being checked (its caller timed out) gives
/// the connection back: it does not vanish from the pool's books.
#[tokio::test(start_paused = true)]
async fn a_checkout_dropped_during_its_check_leaves_the_pool_whole() {
    let manager = TestManager::new();
    *manager.check_delay.lock().unwrap() = 10 * S;
    let config = plain(1).check(CheckPolicy::Always);
    let pool = Pool::start(manager, config).await.unwrap();
    let gave_up = tokio::time::timeout(S, pool.get()).await;
    assert!(gave_up.is_err(), "the check takes 10 s");
    *pool.manager().check_delay.lock().unwrap() = Duration::ZERO;
    let conn = tokio::time::timeout(S, pool.get()).await;
    assert!(
        matches!(conn, Ok(Ok(_))),
        "the pool's one place was lost: {:?}",
        pool.metrics()
    );
}

/// The exclusive pool's checkout callbacks: a panic in `check` or `recycle` discards the
/// connection (its state is unknown) before the panic reaches the caller of `get`.
#[tokio::test(start_paused = true)]
async fn a_panic_in_check_or_recycle_discards_the_connection() {
    let config = plain(1)
        .check(CheckPolicy::Always)
        .checkout_timeout(Some(S));
    let pool = Pool::start(TestManager::new(), config).await.unwrap();
    for flag in [&pool.manager().panic_check, &pool.manager().panic_recycle] {
        drop(pool.get().await.unwrap()); // a used connection: recycled on its next checkout
        flag.store(true, SeqCst);
        let pool2 = pool.clone();
        let panicked = tokio::spawn(async move { pool2.get().await.map(|_| ()) }).await;
        assert!(panicked.unwrap_err().is_panic());
        assert_eq!(
            pool.manager().live(),
            0,
            "the suspect connection was closed"
        );
        assert_eq!(pool.metrics().size, 0);
        drop(pool.get().await.unwrap());
    }
}

/// `is_broken` on return (both pools) and on a shared checkout: a panic there discards the
/// connection, and the pool keeps its place.
macro_rules! is_broken_test {
    ($name:ident, $pool:ident $(, $users:expr)?) => {
        #[tokio::test(start_paused = true)]
        async fn $name() {
            let config = plain(1).checkout_timeout(Some(S));
            let pool = $pool::start(TestManager::new(), config $(, $users)?).await.unwrap();
            let conn = pool.get().await.unwrap();
            pool.manager().panic_is_broken.store(true, SeqCst);
            let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(conn)));
            assert!(dropped.is_err(), "is_broken's panic reaches the guard's owner");
            assert_eq!((pool.manager().live(), pool.metrics().size), (0, 0));
            drop(pool.get().await.unwrap());
            assert_eq!(pool.metrics().size, 1);
        }
    };
}

is_broken_test!(a_panic_in_is_broken_on_return_discards_the_connection, Pool);
is_broken_test!(
    a_panic_in_is_broken_on_a_shared_return_drains_the_connection,
    SharedPool,
    1
);

#[tokio::test(start_paused = true)]
async fn a_panic_in_is_broken_on_a_shared_checkout_drains_the_connection() {
    let config = plain(1).checkout_timeout(Some(S));
    let pool = SharedPool::start(TestManager::new(), config, 1)
        .await
        .unwrap();
    drop(pool.get().await.unwrap());
    pool.manager().panic_is_broken.store(true, SeqCst);
    let pool2 = pool.clone();
    let panicked = tokio::spawn(async move { pool2.get().await.map(|_| ()) }).await;
    assert!(panicked.unwrap_err().is_panic());
    assert_eq!((pool.manager().live(), pool.metrics().size), (0, 0));
    drop(pool.get().await.unwrap());
}
