//! Checkout + return with a no-op manager: beamline-pool beside deadpool and bb8, same run.
//!
//! The pool's own cost is all there is to measure here (the manager opens nothing), so these
//! groups compare the machinery: the queue, the bookkeeping, the guard. beamline runs with
//! every guarantee on — FIFO queue, checkout and connect timeouts, idle timeout, max lifetime
//! with jitter, `min_idle`, a `check` on every checkout, metrics — and the peers with their
//! defaults, which is what their users get (deadpool: no timeouts, which is its fastest
//! setting; bb8: a test on checkout, idle timeout, max lifetime, connection timeout).
//!
//! - `pool/get_drop_1task`: one task on a current-thread runtime, a pool of 4.
//! - `pool/get_drop_16tasks`: 16 tasks on a pool of 4 on the multi-thread runtime (2 workers):
//!   most checkouts queue, so this measures hand-off through the waiter queue.
//! - `pool/shared_get_drop_1task`, `pool/shared_get_drop_16tasks`: the shared pool (4
//!   connections × 4 users) taking a share of a connection with free capacity. The peers have
//!   no shared mode; their numbers are their exclusive checkout in the same setting, which is
//!   what a user of those pools would have to use for a multiplexed connection.

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use beamline_pool::{CheckPolicy, Manager, Pool, PoolConfig, SharedPool, Start};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;

const POOL_SIZE: usize = 4;
const TASKS: u64 = 16;
const SHARED_USERS: usize = 4;
const TIMEOUT: Duration = Duration::from_secs(30);

/// The manager every pool gets: a connection is a number, nothing can fail.
#[derive(Debug)]
struct Noop;

impl Manager for Noop {
    type Connection = u64;
    type Error = std::io::Error;
    async fn create(&self) -> std::io::Result<u64> {
        Ok(0)
    }
    fn target(&self) -> String {
        "noop".to_owned()
    }
}

impl deadpool::managed::Manager for Noop {
    type Type = u64;
    type Error = Infallible;
    async fn create(&self) -> Result<u64, Infallible> {
        Ok(0)
    }
    async fn recycle(
        &self,
        _: &mut u64,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Infallible> {
        Ok(())
    }
}

impl bb8::ManageConnection for Noop {
    type Connection = u64;
    type Error = Infallible;
    async fn connect(&self) -> Result<u64, Infallible> {
        Ok(0)
    }
    async fn is_valid(&self, _: &mut u64) -> Result<(), Infallible> {
        Ok(())
    }
    fn has_broken(&self, _: &mut u64) -> bool {
        false
    }
}

/// beamline with every feature on.
fn beamline_config() -> PoolConfig {
    PoolConfig::new(POOL_SIZE)
        .name("bench")
        .min_idle(2)
        .connect_timeout(Some(TIMEOUT))
        .checkout_timeout(Some(TIMEOUT))
        .idle_timeout(Some(Duration::from_secs(600)))
        .max_lifetime(Some(Duration::from_secs(1800)))
        .lifetime_jitter(0.1)
        .check(CheckPolicy::Always)
}

/// Opens every connection of `$pool` (checkouts held at once), so no measurement pays for a
/// first connect.
macro_rules! open_all {
    ($pool:expr) => {{
        let mut held = Vec::new();
        for _ in 0..POOL_SIZE {
            held.push($pool.get().await.unwrap());
        }
        drop(held);
    }};
}

async fn beamline_pool() -> Pool<Noop> {
    let pool = Pool::start(Noop, beamline_config()).await.unwrap();
    open_all!(pool);
    pool
}

async fn beamline_shared() -> SharedPool<Noop> {
    let config = beamline_config().min_idle(POOL_SIZE).start(Start::Eager);
    SharedPool::start(Noop, config, SHARED_USERS).await.unwrap()
}

async fn deadpool_pool() -> deadpool::managed::Pool<Noop> {
    let pool = deadpool::managed::Pool::builder(Noop)
        .max_size(POOL_SIZE)
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .unwrap();
    open_all!(pool);
    pool
}

async fn bb8_pool() -> bb8::Pool<Noop> {
    let pool = bb8::Pool::builder()
        .max_size(u32::try_from(POOL_SIZE).unwrap())
        .build(Noop)
        .await
        .unwrap();
    open_all!(pool);
    pool
}

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn multi_thread() -> Runtime {
    beamline_benches::runtime()
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .throughput(Throughput::Elements(1))
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
}

/// One task: `iters` checkouts, each returned at once.
macro_rules! one_task {
    ($group:expr, $rt:expr, $id:expr, $pool:expr) => {{
        let pool = $rt.block_on($pool);
        $group.bench_function($id, |b| {
            b.iter_custom(|iters| {
                $rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let conn = pool.get().await.unwrap();
                        black_box(&*conn);
                        drop(conn);
                    }
                    start.elapsed()
                })
            })
        });
    }};
}

/// `TASKS` tasks share the pool, `iters` checkouts in all.
macro_rules! many_tasks {
    ($group:expr, $rt:expr, $id:expr, $pool:expr) => {{
        let pool = $rt.block_on($pool);
        $group.bench_function($id, |b| {
            b.iter_custom(|iters| {
                let per_task = iters.div_ceil(TASKS);
                $rt.block_on(async {
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..TASKS)
                        .map(|_| {
                            let pool = pool.clone();
                            tokio::spawn(async move {
                                for _ in 0..per_task {
                                    let conn = pool.get().await.unwrap();
                                    black_box(&*conn);
                                    drop(conn);
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                    start.elapsed()
                })
            })
        });
    }};
}

/// The two groups `<name>_1task` and `<name>_16tasks`: beamline (`$id`, built by `$pool`)
/// beside deadpool and bb8.
macro_rules! groups {
    ($c:expr, $name:literal, $id:literal, $pool:expr) => {{
        let rt = current_thread();
        let mut group = $c.benchmark_group(concat!($name, "_1task"));
        configure(&mut group);
        one_task!(group, rt, $id, $pool);
        one_task!(group, rt, "deadpool", deadpool_pool());
        one_task!(group, rt, "bb8", bb8_pool());
        group.finish();

        let rt = multi_thread();
        let mut group = $c.benchmark_group(concat!($name, "_16tasks"));
        configure(&mut group);
        many_tasks!(group, rt, $id, $pool);
        many_tasks!(group, rt, "deadpool", deadpool_pool());
        many_tasks!(group, rt, "bb8", bb8_pool());
        group.finish();
    }};
}

fn get_drop(c: &mut Criterion) {
    groups!(c, "pool/get_drop", "beamline", beamline_pool());
}

fn shared_get_drop(c: &mut Criterion) {
    groups!(
        c,
        "pool/shared_get_drop",
        "beamline-shared",
        beamline_shared()
    );
}

criterion_group!(benches, get_drop, shared_get_drop);
criterion_main!(benches);
