//! The exclusive pool's guarantees, each shown on the real pool (an in-memory manager, tokio's
//! paused clock for everything time-based, real sockets where the error comes from the OS).
#![allow(clippy::unwrap_used)]

mod common;

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use beamline_backoff::BackoffConfig;
use beamline_pool::{
    CheckPolicy, CheckoutError, CloseReason, ConfigError, ConnectCause, Manager, Pool, PoolConfig,
    PoolGuard, Start, StartError,
};
use common::{TestManager, plain, until};
use tokio::time::Instant;

const S: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

async fn pool(manager: TestManager, config: PoolConfig) -> Pool<TestManager> {
    Pool::start(manager, config).await.unwrap()
}

fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_in_arrival_order() {
    let pool = pool(TestManager::new(), plain(1)).await;
    let held = pool.get().await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (p, order) = (pool.clone(), Arc::clone(&order));
        tasks.push(tokio::spawn(async move {
            let conn = p.get().await.unwrap();
            order.lock().unwrap().push(i);
            tokio::task::yield_now().await;
            drop(conn);
        }));
        // The next task queues only once this one is in the queue.
        until(|| pool.metrics().waiters == i + 1).await;
    }
    drop(held);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..8).collect::<Vec<_>>());
    let m = pool.metrics();
    assert_eq!((m.size, m.created, m.checkouts), (1, 1, 9));
}

#[tokio::test(start_paused = true)]
async fn fifo_holds_across_a_returned_and_a_new_connection() {
    // Connecting takes 1 s. The first waiter's attempt is under way when a connection comes
    // back: the returned one goes to the first waiter, the new one to the second.
    let pool = pool(TestManager::slow(S), plain(2)).await;
    let held = pool.get().await.unwrap();
    let returned_id = held.id;
    // Each waiter keeps what it gets.
    let first = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get_owned().await.unwrap() }
    });
    until(|| pool.metrics().waiters == 1).await;
    let second = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get_owned().await.unwrap() }
    });
    until(|| pool.metrics().waiters == 2).await;
    assert_eq!(pool.metrics().connecting, 1, "one attempt: max_size is 2");
    drop(held);
    let first = first.await.unwrap();
    assert_eq!(first.id, returned_id);
    let second = second.await.unwrap();
    assert_ne!(second.id, returned_id);
    assert_eq!(pool.metrics().created, 2);
}

#[tokio::test(start_paused = true)]
async fn a_checkout_times_out_at_its_deadline_and_loses_nothing() {
    let pool = pool(TestManager::new(), plain(1).checkout_timeout(Some(5 * S))).await;
    let held = pool.get().await.unwrap();
    let start = Instant::now();
    let err = pool.get().await.unwrap_err();
    assert_eq!(start.elapsed(), 5 * S);
    match &err {
        CheckoutError::Timeout {
            pool,
            waited,
            last_connect_error,
        } => {
            assert_eq!(&**pool, "test");
            assert_eq!(*waited, 5 * S);
            assert!(
                last_connect_error.is_none(),
                "the pool is busy, not failing"
            );
        }
        other => panic!("expected a timeout, got {other}"),
    }
    let m = pool.metrics();
    assert_eq!((m.timeouts, m.waiters), (1, 0));
    let id = held.id;
    drop(held);
    assert_eq!(
        pool.get().await.unwrap().id,
        id,
        "the connection is still the pool's"
    );
}

#[tokio::test(start_paused = true)]
async fn a_waiter_dropped_after_being_served_gives_the_connection_back() {
    let pool = pool(TestManager::new(), plain(1)).await;
    let held = pool.get().await.unwrap();
    let mut waiter = Box::pin(pool.get());
    assert!(poll_once(waiter.as_mut()).is_pending());
    let next = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.unwrap().id }
    });
    until(|| pool.metrics().waiters == 2).await;
    drop(held); // served to `waiter`, which never looks
    assert_eq!(pool.metrics().waiters, 1);
    drop(waiter); // gives up: the connection goes to the next waiter
    next.await.unwrap();
    let m = pool.metrics();
    assert_eq!((m.size, m.idle, m.in_use, m.waiters), (1, 1, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_waiter_dropped_while_queued_leaves_the_queue() {
    let pool = pool(TestManager::new(), plain(1)).await;
    let held = pool.get().await.unwrap();
    {
        let mut waiter = pin!(pool.get());
        assert!(poll_once(waiter.as_mut()).is_pending());
        assert_eq!(pool.metrics().waiters, 1);
    }
    assert_eq!(pool.metrics().waiters, 0);
    drop(held);
    assert_eq!(pool.metrics().idle, 1);
}

/// A manager that opens real TCP connections.
struct Tcp(std::net::SocketAddr);

impl Manager for Tcp {
    type Connection = tokio::net::TcpStream;
    type Error = io::Error;
    async fn create(&self) -> io::Result<Self::Connection> {
        tokio::net::TcpStream::connect(self.0).await
    }
    fn target(&self) -> String {
        self.0.to_string()
    }
}

#[tokio::test]
async fn the_real_connect_error_reaches_the_waiter_naming_pool_and_address() {
    // A port nothing listens on: connecting is refused by the OS at once.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = PoolConfig::new(2)
        .name("orders")
        .checkout_timeout(Some(Duration::from_secs(30)));
    let pool = Pool::start(Tcp(addr), config).await.unwrap();
    let start = std::time::Instant::now();
    let err = pool.get().await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5), "not a timeout");
    let CheckoutError::Connect(connect) = &err else {
        panic!("expected the connect error, got {err}");
    };
    assert_eq!(connect.pool(), "orders");
    assert_eq!(connect.target(), addr.to_string());
    assert_eq!(connect.failures(), 1);
    assert_eq!(
        connect.error().unwrap().kind(),
        io::ErrorKind::ConnectionRefused
    );
    let text = err.to_string();
    assert!(
        text.contains("orders") && text.contains(&addr.to_string()),
        "{text}"
    );
    let source = std::error::Error::source(&err).unwrap();
    assert_eq!(
        source.downcast_ref::<io::Error>().unwrap().kind(),
        io::ErrorKind::ConnectionRefused
    );
}

#[tokio::test(start_paused = true)]
async fn failed_attempts_back_off_and_a_timeout_reports_the_last_failure() {
    let backoff = BackoffConfig::constant(10 * S);
    let config = plain(1).backoff(backoff).checkout_timeout(Some(S));
    let pool = pool(TestManager::failing(usize::MAX), config).await;
    let start = Instant::now();
    let first = pool.get().await.unwrap_err();
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "the first attempt is immediate"
    );
    assert!(matches!(first, CheckoutError::Connect(_)), "{first}");
    // The next attempt waits out the 10 s backoff; this checkout gives up after 1 s and says
    // why the wait was long.
    let second = pool.get().await.unwrap_err();
    assert_eq!(start.elapsed(), S);
    let CheckoutError::Timeout {
        last_connect_error: Some(last),
        ..
    } = &second
    else {
        panic!("expected a timeout carrying the last failure, got {second}");
    };
    assert_eq!(last.target(), "test://memory");
    assert_eq!(pool.manager().shared.attempts.load(Ordering::SeqCst), 1);
    // A checkout that waits long enough gets the next attempt's own error, 10 s after the first.
    let pool = pool;
    let third = tokio::time::timeout(20 * S, async {
        loop {
            match pool.get().await {
                Err(CheckoutError::Connect(e)) => return e,
                Err(CheckoutError::Timeout { .. }) => continue,
                other => panic!("{:?}", other.map(|c| c.id)),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(start.elapsed(), 10 * S);
    assert_eq!(third.failures(), 2);
    assert_eq!(pool.metrics().connect_failures, 2);
}

#[tokio::test(start_paused = true)]
async fn by_default_attempts_back_off_exponentially_with_jitter() {
    // DEFAULT_BACKOFF: 100 ms doubling, equal jitter: the n-th delay is in [base/2, base].
    let config = PoolConfig::new(1).checkout_timeout(None);
    let pool = pool(TestManager::failing(usize::MAX), config).await;
    let mut at = Instant::now();
    let mut delays = Vec::new();
    for _ in 0..4 {
        assert!(matches!(pool.get().await, Err(CheckoutError::Connect(_))));
        delays.push(at.elapsed());
        at = Instant::now();
    }
    assert_eq!(delays[0], Duration::ZERO, "the first attempt is immediate");
    for (n, delay) in delays[1..].iter().enumerate() {
        let base = 100 * MS * 2u32.pow(u32::try_from(n).unwrap());
        assert!(
            *delay >= base / 2 && *delay <= base,
            "delay {n}: {delay:?} outside [{:?}, {base:?}]",
            base / 2
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_connect_attempt_that_hangs_times_out() {
    let config = plain(1).connect_timeout(Some(2 * S)).checkout_timeout(None);
    let pool = pool(TestManager::slow(Duration::from_secs(3600)), config).await;
    let start = Instant::now();
    let err = pool.get().await.unwrap_err();
    assert_eq!(start.elapsed(), 2 * S);
    let CheckoutError::Connect(e) = err else {
        panic!("{err}")
    };
    assert!(matches!(e.cause(), ConnectCause::TimedOut(d) if *d == 2 * S));
}

#[tokio::test(start_paused = true)]
async fn giving_up_fails_every_waiter_and_stops_until_the_next_checkout() {
    let backoff = BackoffConfig::constant(S).max_attempts(2);
    let config = plain(4).backoff(backoff).min_idle(1).checkout_timeout(None);
    let pool = pool(TestManager::failing(usize::MAX), config).await;
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.get().await.map(|c| c.id) })
        })
        .collect();
    for w in waiters {
        assert!(matches!(w.await.unwrap(), Err(CheckoutError::Connect(_))));
    }
    let attempts = pool.manager().shared.attempts.load(Ordering::SeqCst);
    // min_idle does not keep hammering once the backoff gave up.
    tokio::time::sleep(60 * S).await;
    assert_eq!(
        pool.manager().shared.attempts.load(Ordering::SeqCst),
        attempts
    );
    assert_eq!(pool.metrics().connecting, 0);
    // A new checkout starts a fresh run.
    pool.manager().fail.store(0, Ordering::SeqCst);
    assert!(pool.get().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_connection_whose_user_panicked_is_discarded_and_replaced() {
    let pool = pool(TestManager::new(), plain(1)).await;
    let first = pool.get().await.unwrap().id;
    let task = tokio::spawn({
        let pool = pool.clone();
        async move {
            let _conn = pool.get_owned().await.unwrap();
            panic!("the user crashed mid-request");
        }
    });
    assert!(task.await.unwrap_err().is_panic());
    let m = pool.metrics();
    assert_eq!(m.closed.get(CloseReason::Panicked), 1);
    assert_eq!((m.size, pool.manager().live()), (0, 0));
    let next = pool.get().await.unwrap();
    assert_ne!(next.id, first, "never handed out again");
}

#[tokio::test(start_paused = true)]
async fn a_connection_marked_broken_or_reported_broken_is_discarded() {
    let pool = pool(TestManager::new(), plain(1)).await;
    let mut conn = pool.get().await.unwrap();
    let first = conn.id;
    PoolGuard::mark_broken(&mut conn);
    assert!(PoolGuard::is_marked_broken(&conn));
    drop(conn);
    let conn = pool.get().await.unwrap();
    let second = conn.id;
    assert_ne!(second, first);
    conn.broken.store(true, Ordering::SeqCst); // Manager::is_broken now says so
    drop(conn);
    assert_ne!(pool.get().await.unwrap().id, second);
    let m = pool.metrics();
    assert_eq!(m.closed.get(CloseReason::Broken), 2);
    assert_eq!(pool.manager().live(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_discarded_connection_is_replaced_for_the_next_waiter() {
    let pool = pool(TestManager::new(), plain(1)).await;
    let mut conn = pool.get().await.unwrap();
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.unwrap().id }
    });
    until(|| pool.metrics().waiters == 1).await;
    PoolGuard::mark_broken(&mut conn);
    let broken = conn.id;
    drop(conn);
    assert_ne!(waiter.await.unwrap(), broken);
}

#[tokio::test(start_paused = true)]
async fn min_idle_is_refilled_after_failures() {
    let config = plain(4)
        .min_idle(2)
        .backoff(BackoffConfig::constant(100 * MS));
    let pool = pool(TestManager::failing(3), config).await;
    until(|| pool.metrics().idle == 2).await;
    let m = pool.metrics();
    assert_eq!((m.connect_failures, m.created), (3, 2));
    // Taking one leaves one idle: another is opened to get back to two.
    let conn = pool.get().await.unwrap();
    until(|| pool.metrics().idle == 2).await;
    assert_eq!(pool.metrics().created, 3);
    drop(conn);
    assert_eq!(pool.metrics().idle, 3);
}

#[tokio::test(start_paused = true)]
async fn idle_connections_beyond_min_idle_close_after_the_idle_timeout() {
    let config = plain(3).min_idle(1).idle_timeout(Some(10 * S));
    let pool = pool(TestManager::new(), config).await;
    until(|| pool.metrics().idle == 1).await;
    let start = Instant::now();
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    let c = pool.get().await.unwrap();
    drop((a, b, c));
    assert_eq!(pool.metrics().idle, 3);
    tokio::time::sleep(9 * S).await;
    assert_eq!(pool.metrics().idle, 3, "not yet");
    tokio::time::sleep(2 * S).await;
    let m = pool.metrics();
    assert_eq!(m.idle, 1, "min_idle stays");
    assert_eq!(m.closed.get(CloseReason::IdleTimeout), 2);
    assert!(start.elapsed() <= 11 * S);
    assert_eq!(pool.manager().live(), 1);
}

#[tokio::test(start_paused = true)]
async fn connections_expire_at_their_jittered_lifetime_idle_or_in_use() {
    // Lifetimes fall in [360 s, 600 s]: 600 s minus up to 40 %.
    let lifetime = 600 * S;
    let config = plain(4)
        .min_idle(4)
        .max_lifetime(Some(lifetime))
        .lifetime_jitter(0.4)
        .start(Start::Eager);
    let pool = pool(TestManager::new(), config).await;
    assert_eq!(pool.metrics().created, 4, "eager start");
    let held = pool.get().await.unwrap();
    let held_id = held.id;
    tokio::time::sleep(359 * S).await;
    assert_eq!(
        pool.metrics().closed.total(),
        0,
        "no lifetime is below 360 s"
    );
    // Watch the idle ones close, second by second, until 602 s.
    let mut seconds_with_closes = 0;
    let mut seen = 0;
    for _ in 0..243 {
        tokio::time::sleep(S).await;
        let closed = pool.metrics().closed.get(CloseReason::MaxLifetime);
        if closed > seen {
            seconds_with_closes += 1;
            seen = closed;
        }
    }
    assert_eq!(
        seen, 3,
        "the three idle ones expired (their replacements live past 720 s)"
    );
    assert!(seconds_with_closes > 1, "jitter spreads them out");
    // The one in use expires when it comes back, and min_idle replaces them all.
    drop(held);
    assert_eq!(pool.metrics().closed.get(CloseReason::MaxLifetime), 4);
    until(|| pool.metrics().idle == 4).await;
    assert_ne!(pool.get().await.unwrap().id, held_id);
    assert_eq!(pool.manager().live(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_check_on_checkout_discards_a_dead_connection() {
    let pool = pool(TestManager::new(), plain(2).check(CheckPolicy::Always)).await;
    let conn = pool.get().await.unwrap();
    let dead = conn.id;
    conn.dead.store(true, Ordering::SeqCst); // the server dropped it while it sat idle
    drop(conn);
    let conn = pool.get().await.unwrap();
    assert_ne!(conn.id, dead);
    let m = pool.metrics();
    assert_eq!(m.closed.get(CloseReason::CheckFailed), 1);
    assert_eq!(m.size, 1);
}

#[tokio::test(start_paused = true)]
async fn idle_for_checks_only_connections_that_sat_long_enough() {
    let config = plain(1)
        .check(CheckPolicy::IdleFor(5 * S))
        .idle_timeout(Some(3600 * S));
    let pool = pool(TestManager::new(), config).await;
    let checks = || pool.manager().shared.checks.load(Ordering::SeqCst);
    drop(pool.get().await.unwrap());
    tokio::time::sleep(S).await;
    drop(pool.get().await.unwrap());
    assert_eq!(checks(), 0, "returned a moment ago: trusted");
    tokio::time::sleep(6 * S).await;
    drop(pool.get().await.unwrap());
    assert_eq!(checks(), 1);
}

#[tokio::test(start_paused = true)]
async fn used_connections_are_recycled_and_a_failed_recycle_discards() {
    let pool = pool(TestManager::new(), plain(1)).await;
    let first = pool.get().await.unwrap().id;
    assert_eq!(
        pool.manager().shared.recycles.load(Ordering::SeqCst),
        0,
        "new: nothing to recycle"
    );
    assert_eq!(pool.get().await.unwrap().id, first);
    assert_eq!(pool.manager().shared.recycles.load(Ordering::SeqCst), 1);
    pool.manager().recycle_fails.store(true, Ordering::SeqCst);
    assert_ne!(pool.get().await.unwrap().id, first);
    assert_eq!(pool.metrics().closed.get(CloseReason::RecycleFailed), 1);
}

#[tokio::test(start_paused = true)]
async fn start_is_lazy_by_default_and_eager_on_request() {
    let lazy = pool(TestManager::failing(usize::MAX), plain(2)).await;
    assert_eq!(lazy.metrics().size, 0, "lazy: nothing opened, no error");
    let filled = pool(TestManager::new(), plain(4).min_idle(3)).await;
    until(|| filled.metrics().idle == 3).await;

    let eager = pool(TestManager::new(), plain(4).min_idle(3).start(Start::Eager)).await;
    assert_eq!(eager.metrics().idle, 3, "open before start returns");

    let err = Pool::start(
        TestManager::failing(usize::MAX),
        plain(2).start(Start::Eager).name("db"),
    )
    .await
    .unwrap_err();
    let StartError::Connect(e) = err else {
        panic!("{err}")
    };
    assert_eq!((e.pool(), e.target()), ("db", "test://memory"));
}

#[tokio::test(start_paused = true)]
async fn a_failed_eager_start_leaves_nothing_open() {
    // The first of three connections opens, the second fails.
    let manager = TestManager::new();
    manager.fail_from.store(1, Ordering::SeqCst);
    let shared = Arc::clone(&manager.shared);
    let config = plain(3).min_idle(3).start(Start::Eager);
    let err = Pool::start(manager, config).await.unwrap_err();
    assert!(matches!(err, StartError::Connect(_)), "{err}");
    assert_eq!(shared.created.load(Ordering::SeqCst), 1);
    assert_eq!(
        shared.live.load(Ordering::SeqCst),
        0,
        "the one opened was closed"
    );
}

#[tokio::test(start_paused = true)]
async fn detach_takes_the_connection_out_of_the_pool() {
    let pool = pool(TestManager::new(), plain(1)).await;
    let conn = pool.get().await.unwrap();
    let mine = PoolGuard::detach(conn);
    let m = pool.metrics();
    assert_eq!((m.size, m.in_use, m.detached), (0, 0, 1));
    let other = pool.get().await.unwrap();
    assert_ne!(other.id, mine.id, "room for a new one");
    drop(other);
    drop(mine);
    assert_eq!(pool.manager().live(), 1);
}

#[tokio::test(start_paused = true)]
async fn close_fails_queued_checkouts_and_closes_connections_in_use_when_they_return() {
    let pool = pool(TestManager::new(), plain(2)).await;
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|c| c.id) }
    });
    until(|| pool.metrics().waiters == 1).await;
    pool.close();
    assert!(pool.is_closed());
    assert!(matches!(
        waiter.await.unwrap(),
        Err(CheckoutError::Closed { .. })
    ));
    assert!(matches!(
        pool.get().await,
        Err(CheckoutError::Closed { .. })
    ));
    assert_eq!(pool.manager().live(), 2, "in use: still the user's");
    drop(b);
    assert_eq!(pool.manager().live(), 1);
    drop(a);
    assert_eq!(pool.manager().live(), 0);
    let m = pool.metrics();
    assert_eq!((m.closed.get(CloseReason::PoolClosed), m.size), (2, 0));
    pool.close(); // idempotent
}

#[tokio::test(start_paused = true)]
async fn close_closes_idle_connections_at_once() {
    let pool = pool(TestManager::new(), plain(2)).await;
    let a = pool.get().await.unwrap();
    drop(pool.get().await.unwrap());
    assert_eq!((pool.metrics().idle, pool.manager().live()), (1, 2));
    pool.close();
    assert_eq!(pool.manager().live(), 1);
    drop(a);
    assert_eq!(pool.manager().live(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_attempt_under_way_at_close_closes_what_it_opens() {
    let pool = pool(TestManager::slow(S), plain(1)).await;
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|c| c.id) }
    });
    until(|| pool.metrics().connecting == 1).await;
    pool.close();
    assert!(matches!(
        waiter.await.unwrap(),
        Err(CheckoutError::Closed { .. })
    ));
    tokio::time::sleep(2 * S).await;
    let m = pool.metrics();
    assert_eq!((m.created, m.size, m.connecting), (1, 0, 0));
    assert_eq!(pool.manager().live(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_bad_setting_is_a_typed_error() {
    let err = Pool::start(TestManager::new(), PoolConfig::new(0))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StartError::Config(ConfigError::ZeroMaxSize)),
        "{err}"
    );
    let err = Pool::start(TestManager::new(), PoolConfig::new(1).min_idle(2))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StartError::Config(ConfigError::MinIdleAboveMaxSize { .. })
    ));
}

#[test]
fn starting_outside_a_runtime_is_a_typed_error() {
    let mut start = pin!(Pool::start(
        TestManager::new(),
        PoolConfig::new(1).name("x")
    ));
    match poll_once(start.as_mut()) {
        Poll::Ready(Err(StartError::NoRuntime { pool })) => assert_eq!(&*pool, "x"),
        other => panic!("{:?}", other.map(|r| r.map(|_| ()))),
    }
}

#[tokio::test(start_paused = true)]
async fn guards_are_returned_from_other_threads() {
    let pool = pool(TestManager::new(), plain(1)).await;
    let conn = pool.get_owned().await.unwrap();
    std::thread::spawn(move || drop(conn)).join().unwrap();
    assert_eq!(pool.metrics().idle, 1);
}

#[tokio::test(start_paused = true)]
async fn metrics_count_waits_by_bucket() {
    let pool = pool(TestManager::new(), plain(1)).await;
    let held = pool.get().await.unwrap();
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { drop(pool.get().await.unwrap()) }
    });
    until(|| pool.metrics().waiters == 1).await;
    tokio::time::sleep(50 * MS).await;
    drop(held);
    waiter.await.unwrap();
    let m = pool.metrics();
    // One checkout without a wait, one that waited 50 ms (the 10–100 ms bucket).
    assert_eq!(m.wait_time.buckets()[0], 1);
    assert_eq!(m.wait_time.buckets()[4], 1);
    assert_eq!(m.checkouts, 2);
}
