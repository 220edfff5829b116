//! A scriptable in-memory manager for the pool's integration tests: it counts the
//! connections alive (and the peak), fails or delays connect attempts on command, and lets a
//! test kill a connection from outside.
#![allow(dead_code, clippy::unwrap_used, unreachable_pub)]

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beamline_backoff::BackoffConfig;
use beamline_pool::{CheckPolicy, Manager, PoolConfig};

/// A config named `test` with no background surprises: no idle timeout, no lifetime, no
/// check, and a constant 1 s backoff.
pub fn plain(max_size: usize) -> PoolConfig {
    PoolConfig::new(max_size)
        .name("test")
        .idle_timeout(None)
        .max_lifetime(None)
        .check(CheckPolicy::Never)
        .backoff(BackoffConfig::constant(Duration::from_secs(1)))
}

/// What every test connection reports to its manager.
#[derive(Debug, Default)]
pub struct Shared {
    /// Connections alive right now (a connection decrements it when dropped).
    pub live: AtomicUsize,
    /// The most alive at once.
    pub peak: AtomicUsize,
    pub created: AtomicU64,
    pub attempts: AtomicU64,
    pub checks: AtomicU64,
    pub recycles: AtomicU64,
    /// The next connection dropped panics in its `Drop` (one-shot).
    pub panic_on_drop: AtomicBool,
}

#[derive(Debug)]
pub struct TestConn {
    pub id: u64,
    /// Set by a test to make `check` fail (the server dropped it) ...
    pub dead: Arc<AtomicBool>,
    /// ... or `is_broken` say so (the connection knows it is broken).
    pub broken: Arc<AtomicBool>,
    /// Users at this instant (shared pool tests).
    pub users: AtomicUsize,
    /// When (on a test's own sequence clock) the pool was told this connection is broken;
    /// `u64::MAX` until then.
    pub retired_at: Arc<AtomicU64>,
    shared: Arc<Shared>,
}

impl Drop for TestConn {
    fn drop(&mut self) {
        self.shared.live.fetch_sub(1, Ordering::SeqCst);
        if self.shared.panic_on_drop.swap(false, Ordering::SeqCst) && !std::thread::panicking() {
            panic!("test: connection {} panicked in drop", self.id);
        }
    }
}

#[derive(Debug)]
pub struct TestManager {
    pub shared: Arc<Shared>,
    /// Connect attempts that fail from now on (`usize::MAX`: all of them).
    pub fail: AtomicUsize,
    /// Attempts numbered this or higher (from 0) fail.
    pub fail_from: AtomicU64,
    /// How long each connect attempt takes.
    pub delay: Mutex<Duration>,
    /// Whether `recycle` fails.
    pub recycle_fails: AtomicBool,
    /// Connect attempts that panic from now on (before the `fail` ones are counted).
    pub panics: AtomicUsize,
    /// How long each `check` takes.
    pub check_delay: Mutex<Duration>,
    /// The next `check`, `recycle` or `is_broken` call panics (one-shot each).
    pub panic_check: AtomicBool,
    pub panic_recycle: AtomicBool,
    pub panic_is_broken: AtomicBool,
}

impl Default for TestManager {
    fn default() -> Self {
        Self {
            shared: Arc::default(),
            fail: AtomicUsize::new(0),
            fail_from: AtomicU64::new(u64::MAX),
            delay: Mutex::default(),
            recycle_fails: AtomicBool::new(false),
            panics: AtomicUsize::new(0),
            check_delay: Mutex::default(),
            panic_check: AtomicBool::new(false),
            panic_recycle: AtomicBool::new(false),
            panic_is_broken: AtomicBool::new(false),
        }
    }
}

impl TestManager {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn failing(n: usize) -> Self {
        let m = Self::new();
        m.fail.store(n, Ordering::SeqCst);
        m
    }

    pub fn slow(delay: Duration) -> Self {
        let m = Self::new();
        *m.delay.lock().unwrap() = delay;
        m
    }

    pub fn live(&self) -> usize {
        self.shared.live.load(Ordering::SeqCst)
    }
}

impl Manager for TestManager {
    type Connection = TestConn;
    type Error = io::Error;

    async fn create(&self) -> io::Result<TestConn> {
        let attempt = self.shared.attempts.fetch_add(1, Ordering::SeqCst);
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let panicking = self
            .panics
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        assert!(!panicking, "test: create panicked (attempt {attempt})");
        let failing = self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
                0 => None,
                usize::MAX => Some(usize::MAX),
                n => Some(n - 1),
            })
            .is_ok();
        if failing || attempt >= self.fail_from.load(Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "test: connection refused",
            ));
        }
        let id = self.shared.created.fetch_add(1, Ordering::SeqCst);
        let live = self.shared.live.fetch_add(1, Ordering::SeqCst) + 1;
        self.shared.peak.fetch_max(live, Ordering::SeqCst);
        Ok(TestConn {
            id,
            dead: Arc::default(),
            broken: Arc::default(),
            users: AtomicUsize::new(0),
            retired_at: Arc::new(AtomicU64::new(u64::MAX)),
            shared: Arc::clone(&self.shared),
        })
    }

    fn target(&self) -> String {
        "test://memory".to_owned()
    }

    async fn check(&self, conn: &mut TestConn) -> io::Result<()> {
        self.shared.checks.fetch_add(1, Ordering::SeqCst);
        let delay = *self.check_delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        assert!(
            !self.panic_check.swap(false, Ordering::SeqCst),
            "test: check panicked"
        );
        if conn.dead.load(Ordering::SeqCst) {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "test: dead"));
        }
        Ok(())
    }

    fn is_broken(&self, conn: &TestConn) -> bool {
        assert!(
            !self.panic_is_broken.swap(false, Ordering::SeqCst),
            "test: is_broken panicked"
        );
        conn.broken.load(Ordering::SeqCst)
    }

    async fn recycle(&self, _conn: &mut TestConn) -> io::Result<()> {
        self.shared.recycles.fetch_add(1, Ordering::SeqCst);
        assert!(
            !self.panic_recycle.swap(false, Ordering::SeqCst),
            "test: recycle panicked"
        );
        if self.recycle_fails.load(Ordering::SeqCst) {
            return Err(io::Error::other("test: recycle failed"));
        }
        Ok(())
    }
}

/// Lets spawned tasks run until `done` holds: 1,000 yields, then 10 ms sleeps up to 30 s (of
/// paused time in most tests), so a test that waits for something that never happens fails
/// instead of hanging.
pub async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    for _ in 0..3000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached");
}
