//! Checkout + return with a no-op manager: beamline-pool beside deadpool and bb8, same run.
//!
//! The pool's own cost is all there is to measure here (the manager opens nothing), so these
//! groups compare the machinery: the queue, the bookkeeping, the guard. beamline runs with
//! every guarantee on — FIFO queue, checkout and connect timeouts, idle timeout, max lifetime
//! with jitter, `min_idle`, a `check` on every checkout, metrics — and the peers with their
//! defaults, which is what their users get (deadpool: no timeouts, which is its fastest
//! setting; bb8: a test on checkout, idle timeout, max lifetime, connection timeout).
//!
//! Equal work: every pool has **4 slots** — deadpool and bb8 `max_size(4)`, beamline's
//! exclusive pool 4 connections, beamline's shared pool 2 connections × 2 users — all opened
//! before measuring. No connections (the manager's connection is a number), no buffers;
//! timeouts as above (never reached). What is checked: every checkout succeeds.
//!
//! - `pool/get_drop_1task`: one task on a current-thread runtime.
//! - `pool/get_drop_16tasks`: 16 tasks on the shared two-worker runtime, each returning its
//!   connection at once. With 2 workers and 4 slots a checkout rarely finds them all taken:
//!   this measures contention on the pool's state across cores, not its queue (the counts
//!   below show it).
//! - `pool/get_hold_16tasks`: the same 16 tasks, each holding its connection across an
//!   `.await` (a `yield_now`) before returning it, so checkouts queue and are handed over
//!   through the waiter queue.
//! - `pool/shared_*`: the same three settings through beamline's shared pool (a share of a
//!   multiplexed connection). The peers have no shared mode; their numbers are their
//!   exclusive checkout with the same slot count, which is what a user of those pools would
//!   have to use for a multiplexed connection.
//!
//! After the timings, each 16-task setting runs once more with a sampler task beside it,
//! reading each pool's own wait counters: beamline's `PoolMetrics` (`waiters`, and the
//! checkouts outside the wait histogram's no-wait bucket), bb8's `Statistics`
//! (`get_waited`, `pending_gets`), deadpool's `Status::waiting` (it counts no waits, so
//! only the gauge, sampled). The counts go to BENCHMARKS.md as a section; a hold setting in
//! which any pool never queued fails the bench. Memory: allocations per checkout and peak
//! bytes, 1,000 checkouts per iteration, in each setting.

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use beamline_benches::{memory, selected, write_section};
use beamline_pool::{CheckPolicy, Manager, Pool, PoolConfig, SharedPool, Start};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;

const SLOTS: usize = 4;
const SHARED_CONNECTIONS: usize = 2;
const SHARED_USERS: usize = 2;
const TASKS: u64 = 16;
const TIMEOUT: Duration = Duration::from_secs(30);
/// Checkouts per iteration of the memory count and per task of the queueing count.
const CHECKOUTS: u64 = 1_000;

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

/// What the bench needs of a pool: one checkout, and its own wait counters.
trait BenchPool: Clone + Send + Sync + 'static {
    /// Checks a connection out and returns it; `hold`: across a `yield_now` first.
    fn get_drop(&self, hold: bool) -> impl Future<Output = ()> + Send;
    /// Checkouts that waited for a slot so far, when the pool counts them.
    fn waited(&self) -> Option<u64>;
    /// Checkouts waiting now.
    fn waiting(&self) -> u64;
}

/// One checkout through `$pool`, held across a yield when `$hold`.
macro_rules! get_drop {
    ($pool:expr, $hold:expr) => {{
        let conn = $pool.get().await.unwrap();
        black_box(&*conn);
        if $hold {
            tokio::task::yield_now().await;
        }
        drop(conn);
    }};
}

/// Checkouts that waited, from beamline's metrics: those outside the no-wait bucket.
fn beamline_waited(m: &beamline_pool::PoolMetrics) -> u64 {
    m.checkouts.saturating_sub(m.wait_time.buckets()[0])
}

/// beamline's two pools report the same metrics.
macro_rules! beamline_bench_pool {
    ($($pool:ty),*) => {$(
        impl BenchPool for $pool {
            async fn get_drop(&self, hold: bool) {
                get_drop!(self, hold);
            }
            fn waited(&self) -> Option<u64> {
                Some(beamline_waited(&self.metrics()))
            }
            fn waiting(&self) -> u64 {
                self.metrics().waiters as u64
            }
        }
    )*};
}

beamline_bench_pool!(Pool<Noop>, SharedPool<Noop>);

impl BenchPool for deadpool::managed::Pool<Noop> {
    async fn get_drop(&self, hold: bool) {
        get_drop!(self, hold);
    }
    fn waited(&self) -> Option<u64> {
        None
    }
    fn waiting(&self) -> u64 {
        self.status().waiting as u64
    }
}

impl BenchPool for bb8::Pool<Noop> {
    async fn get_drop(&self, hold: bool) {
        get_drop!(self, hold);
    }
    fn waited(&self) -> Option<u64> {
        Some(self.state().statistics.get_waited)
    }
    fn waiting(&self) -> u64 {
        self.state().statistics.pending_gets()
    }
}

/// beamline with every feature on, `connections` of them.
fn beamline_config(connections: usize) -> PoolConfig {
    PoolConfig::new(connections)
        .name("bench")
        .min_idle(connections.min(2))
        .connect_timeout(Some(TIMEOUT))
        .checkout_timeout(Some(TIMEOUT))
        .idle_timeout(Some(Duration::from_secs(600)))
        .max_lifetime(Some(Duration::from_secs(1800)))
        .lifetime_jitter(0.1)
        .check(CheckPolicy::Always)
}

/// Opens every slot of `pool` (checkouts held at once), so no measurement pays for a first
/// connect.
macro_rules! open_all {
    ($pool:expr) => {{
        let mut held = Vec::new();
        for _ in 0..SLOTS {
            held.push($pool.get().await.unwrap());
        }
        drop(held);
    }};
}

async fn beamline_pool() -> Pool<Noop> {
    let pool = Pool::start(Noop, beamline_config(SLOTS)).await.unwrap();
    open_all!(pool);
    pool
}

async fn beamline_shared() -> SharedPool<Noop> {
    let config = beamline_config(SHARED_CONNECTIONS)
        .min_idle(SHARED_CONNECTIONS)
        .start(Start::Eager);
    let pool = SharedPool::start(Noop, config, SHARED_USERS).await.unwrap();
    open_all!(pool);
    pool
}

async fn deadpool_pool() -> deadpool::managed::Pool<Noop> {
    let pool = deadpool::managed::Pool::builder(Noop)
        .max_size(SLOTS)
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .unwrap();
    open_all!(pool);
    pool
}

async fn bb8_pool() -> bb8::Pool<Noop> {
    let pool = bb8::Pool::builder()
        .max_size(u32::try_from(SLOTS).unwrap())
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

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .throughput(Throughput::Elements(1))
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
}

/// `checkouts` checkouts through `pool`: one task, or [`TASKS`] tasks sharing them.
async fn checkouts<P: BenchPool>(pool: &P, tasks: u64, hold: bool, checkouts: u64) -> Duration {
    let start = Instant::now();
    if tasks == 1 {
        for _ in 0..checkouts {
            pool.get_drop(hold).await;
        }
        return start.elapsed();
    }
    let per_task = checkouts.div_ceil(tasks);
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    pool.get_drop(hold).await;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    start.elapsed()
}

/// One setting of the bench: its group name, tasks and whether checkouts hold.
#[derive(Debug, Clone, Copy)]
struct Setting {
    suffix: &'static str,
    tasks: u64,
    hold: bool,
}

const SETTINGS: [Setting; 3] = [
    Setting {
        suffix: "get_drop_1task",
        tasks: 1,
        hold: false,
    },
    Setting {
        suffix: "get_drop_16tasks",
        tasks: TASKS,
        hold: false,
    },
    Setting {
        suffix: "get_hold_16tasks",
        tasks: TASKS,
        hold: true,
    },
];

/// What the queueing pass saw of one pool.
struct Queueing {
    group: String,
    function: &'static str,
    waited: Option<u64>,
    most_waiting: u64,
}

/// Runs `setting`'s 16 tasks once more with a sampler beside them, reading the pool's own
/// counters.
fn queueing<P: BenchPool>(rt: &Runtime, pool: &P, setting: Setting) -> (Option<u64>, u64) {
    rt.block_on(async {
        let before = pool.waited();
        let done = Arc::new(AtomicBool::new(false));
        let most = Arc::new(AtomicUsize::new(0));
        let sampler = {
            let (pool, done, most) = (pool.clone(), done.clone(), most.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    most.fetch_max(pool.waiting() as usize, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            })
        };
        checkouts(pool, setting.tasks, setting.hold, TASKS * CHECKOUTS).await;
        done.store(true, Ordering::Relaxed);
        sampler.await.unwrap();
        let waited = pool.waited().zip(before).map(|(a, b)| a - b);
        (waited, most.load(Ordering::Relaxed) as u64)
    })
}

/// The pools of one group, measured side by side.
struct Sides<A, B, C> {
    beamline: (&'static str, A),
    deadpool: B,
    bb8: C,
}

fn group<A: BenchPool, B: BenchPool, C: BenchPool>(
    c: &mut Criterion,
    rt: &Runtime,
    name: &str,
    setting: Setting,
    sides: &Sides<A, B, C>,
    out: &mut Report,
) {
    let functions = [sides.beamline.0, "deadpool", "bb8"];
    let mut g = c.benchmark_group(name);
    configure(&mut g);
    let run = |side: usize, n: u64| match side {
        0 => rt.block_on(checkouts(&sides.beamline.1, setting.tasks, setting.hold, n)),
        1 => rt.block_on(checkouts(&sides.deadpool, setting.tasks, setting.hold, n)),
        _ => rt.block_on(checkouts(&sides.bb8, setting.tasks, setting.hold, n)),
    };
    for (side, function) in functions.iter().enumerate() {
        g.bench_function(*function, |b| b.iter_custom(|iters| run(side, iters)));
    }
    g.finish();
    if !selected(name, &functions) {
        return;
    }
    out.memory
        .extend(memory::measure(name, CHECKOUTS, &functions, |side| {
            run(side, CHECKOUTS);
        }));
    if setting.tasks > 1 {
        let counts = [
            queueing(rt, &sides.beamline.1, setting),
            queueing(rt, &sides.deadpool, setting),
            queueing(rt, &sides.bb8, setting),
        ];
        for (function, (waited, most_waiting)) in functions.into_iter().zip(counts) {
            out.queueing.push(Queueing {
                group: name.to_owned(),
                function,
                waited,
                most_waiting,
            });
        }
    }
}

/// What the groups collect beside their timings.
#[derive(Default)]
struct Report {
    memory: Vec<memory::Memory>,
    queueing: Vec<Queueing>,
}

fn pools(c: &mut Criterion) {
    let mut report = Report::default();
    for setting in SETTINGS {
        let rt = if setting.tasks == 1 {
            current_thread()
        } else {
            beamline_benches::runtime()
        };
        let exclusive = Sides {
            beamline: ("beamline", rt.block_on(beamline_pool())),
            deadpool: rt.block_on(deadpool_pool()),
            bb8: rt.block_on(bb8_pool()),
        };
        let name = format!("pool/{}", setting.suffix);
        group(c, &rt, &name, setting, &exclusive, &mut report);
        let shared = Sides {
            beamline: ("beamline-shared", rt.block_on(beamline_shared())),
            deadpool: exclusive.deadpool,
            bb8: exclusive.bb8,
        };
        let name = format!("pool/shared_{}", setting.suffix);
        group(c, &rt, &name, setting, &shared, &mut report);
    }
    if !report.memory.is_empty() {
        memory::write("pool", &report.memory).unwrap();
    }
    if !report.queueing.is_empty() {
        let markdown = queueing_section(&report.queueing);
        print!("{markdown}");
        write_section("pool-queueing", &markdown).unwrap();
        for q in &report.queueing {
            let queued = q.most_waiting > 0 || q.waited.is_some_and(|w| w > 0);
            assert!(
                queued || !q.group.contains("hold"),
                "{}: {}'s checkouts never queued, so the group does not measure its queue",
                q.group,
                q.function
            );
        }
    }
}

fn queueing_section(rows: &[Queueing]) -> String {
    let mut s = String::from(
        "### pool: do the 16-task checkouts queue?\n\n\
         Each 16-task setting run once more (16 tasks × 1,000 checkouts, 4 slots, 2 workers) \
         with a sampler task beside it reading the pool's own counters: beamline's \
         `PoolMetrics` (`waiters`; checkouts outside the wait histogram's no-wait bucket), \
         bb8's `Statistics` (`pending_gets`, `get_waited`), deadpool's `Status::waiting` (it \
         counts no waits; the gauge is its users beyond its size, so it also counts checkouts \
         in progress that never block). `get_drop` returns each connection at once; \
         `get_hold` holds it across a `yield_now`.\n\n\
         | group | pool | checkouts that waited (its own count) | most waiting at once (sampled) |\n\
         |---|---|---|---|\n",
    );
    for q in rows {
        let waited = q
            .waited
            .map_or_else(|| "not counted".to_owned(), |w| w.to_string());
        let _ = writeln!(
            s,
            "| {} | {} | {waited} of {} | {} |",
            q.group,
            q.function,
            TASKS * CHECKOUTS,
            q.most_waiting
        );
    }
    s
}

criterion_group!(benches, pools);
criterion_main!(benches);
