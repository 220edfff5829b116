//! beamline-process beside its peers: raw tokio channels (the floor), flume, and kameo (the
//! Rust actor library it must beat).
//!
//! - `process/cast`: messages from one task to another, through a process mailbox vs a raw
//!   `tokio::sync::mpsc` channel of the same capacity (1024) — plain (`tokio-mpsc`: both
//!   loops spend tokio's coop budget and yield every 128 operations) and inside
//!   `tokio::task::coop::unconstrained` (`tokio-mpsc-unconstrained`: never forced to yield) —
//!   and vs `flume::bounded(1024)` (`flume`: async, outside tokio's budget, so it never
//!   yields either). Whichever fairness the mailbox has (it spends the budget, or not), one
//!   peer here has the same.
//! - `process/call`: request/reply round trips with no timeout on either side:
//!   `Addr::call(.., Timeout::Infinity)` vs raw mpsc + oneshot vs kameo's `ask`.
//! - `process/call-timeout`: the same with a 5 s timeout on every call: `Addr::call(.., 5 s)`
//!   vs raw mpsc + oneshot under `tokio::time::timeout` vs kameo's `ask().reply_timeout()`.
//! - `process/spawn`: a process's whole short life: spawn, one message telling it to stop,
//!   wait for its exit; vs kameo's spawn, `stop_gracefully`, `wait_for_shutdown`.
//! - `process/supervised-child`: a DynamicSupervisor child that starts and exits (the shape
//!   of a short connection), vs a bare `tokio::spawn` (no supervision at all);
//!   `beamline-acknowledged` starts each child with the start handshake
//!   (`start_child_acknowledged`: the child acknowledges, then exits), one after the other,
//!   as OTP's synchronous `start_child` does.
//! - `process/restart`: restart latency, from a child's panic to its replacement answering a
//!   call through its stable handle, vs a hand-rolled tokio respawn loop.
//!
//! Equal work: every side runs on the shared two-worker runtime, sender and receiver (or
//! caller and server) each a spawned task; no connections. Queues: 1024 slots everywhere
//! (the mailbox's capacity, the mpsc and flume bounds; kameo's mailbox is its default
//! bounded one). Timeouts: none in `call`, 5 s on every side in `call-timeout`. Checked:
//! every message is counted by the receiver; every reply is compared with its request.
//! Memory: allocations per message / call / spawn / child, and the peak bytes held.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use beamline_benches::{memory, runtime, selected};
use beamline_process::{
    Addr, ChildSpec, Context, DynamicSupervisor, DynamicSupervisorConfig, Event, Intensity, Reply,
    Strategy, Supervisor, SupervisorSpec, Timeout, spawn,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kameo::actor::{ActorRef, Spawn};
use kameo::message::{Context as KameoContext, Message};
use tokio::sync::{mpsc, oneshot};

/// Messages per `process/cast` and calls per `process/call` iteration.
const BATCH: u64 = 10_000;
/// Children per `process/supervised-child` iteration.
const CHILDREN: u64 = 1_000;
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Allocation figures of every group, written once at the end.
static MEMORY: Mutex<Vec<memory::Memory>> = Mutex::new(Vec::new());

// ---- process/cast ---------------------------------------------------------------------------

const CAST: [&str; 4] = [
    "beamline",
    "tokio-mpsc",
    "tokio-mpsc-unconstrained",
    "flume",
];

/// `total` casts from one task to a process; how long until the last arrived.
async fn cast_beamline(total: u64) -> Duration {
    let (done, finished) = oneshot::channel();
    let receiver = spawn(move |mut ctx| async move {
        let mut n = 0;
        while n < total {
            if let Event::Msg(_) = ctx.recv().await {
                n += 1;
            }
        }
        let _ = done.send(());
        Ok(())
    });
    let start = Instant::now();
    tokio::spawn(async move {
        for i in 0..total {
            receiver.cast(i).await.expect("receiver alive");
        }
    });
    finished.await.expect("receiver done");
    start.elapsed()
}

/// Spawns `task`, opted out of tokio's coop budget when `unconstrained`.
fn spawn_task<F>(unconstrained: bool, task: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    if unconstrained {
        tokio::spawn(tokio::task::coop::unconstrained(task));
    } else {
        tokio::spawn(task);
    }
}

/// A peer's channel of 1024 messages, as the cast loops use it.
trait Queue: Sized + Send + 'static {
    type Sender: Send + 'static;
    fn bounded() -> (Self::Sender, Self);
    /// Whether a message came (false: the channel closed).
    fn recv(&mut self) -> impl Future<Output = bool> + Send;
    fn send(tx: &Self::Sender, v: u64) -> impl Future<Output = ()> + Send;
}

impl Queue for mpsc::Receiver<u64> {
    type Sender = mpsc::Sender<u64>;
    fn bounded() -> (Self::Sender, Self) {
        mpsc::channel(1024)
    }
    async fn recv(&mut self) -> bool {
        mpsc::Receiver::recv(self).await.is_some()
    }
    async fn send(tx: &Self::Sender, v: u64) {
        tx.send(v).await.expect("receiver alive");
    }
}

impl Queue for flume::Receiver<u64> {
    type Sender = flume::Sender<u64>;
    fn bounded() -> (Self::Sender, Self) {
        flume::bounded(1024)
    }
    async fn recv(&mut self) -> bool {
        self.recv_async().await.is_ok()
    }
    async fn send(tx: &Self::Sender, v: u64) {
        tx.send_async(v).await.expect("receiver alive");
    }
}

/// The same through a peer's channel `Q`, both loops constrained by tokio's budget or not.
async fn cast_queue<Q: Queue>(total: u64, unconstrained: bool) -> Duration {
    let (done, finished) = oneshot::channel();
    let (tx, mut rx) = Q::bounded();
    spawn_task(unconstrained, async move {
        let mut n = 0;
        while n < total {
            if rx.recv().await {
                n += 1;
            }
        }
        let _ = done.send(());
    });
    let start = Instant::now();
    spawn_task(unconstrained, async move {
        for i in 0..total {
            Q::send(&tx, i).await;
        }
    });
    finished.await.expect("receiver done");
    start.elapsed()
}

async fn cast_with(side: usize, total: u64) -> Duration {
    match side {
        0 => cast_beamline(total).await,
        1 => cast_queue::<mpsc::Receiver<u64>>(total, false).await,
        2 => cast_queue::<mpsc::Receiver<u64>>(total, true).await,
        // flume's async operations never spend tokio's budget, wrapped or not.
        _ => cast_queue::<flume::Receiver<u64>>(total, false).await,
    }
}

fn cast(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("process/cast");
    g.throughput(Throughput::Elements(BATCH));
    for (side, function) in CAST.iter().enumerate() {
        g.bench_function(*function, |b| {
            b.to_async(&rt)
                .iter_custom(|iters| cast_with(side, iters * BATCH));
        });
    }
    g.finish();
    if selected("process/cast", &CAST) {
        let rows = memory::measure("process/cast", BATCH, &CAST, |side| {
            rt.block_on(cast_with(side, BATCH));
        });
        MEMORY.lock().expect("memory rows").extend(rows);
    }
}

// ---- process/call ---------------------------------------------------------------------------

enum Req {
    Echo(u64, Reply<u64>),
    Stop,
}

fn echo_server() -> Addr<Req> {
    spawn(|mut ctx| async move {
        loop {
            match ctx.recv().await {
                Event::Msg(Req::Echo(v, reply)) => {
                    let _ = reply.send(v);
                }
                Event::Msg(Req::Stop) => return Ok(()),
                Event::Info(_) => {}
            }
        }
    })
}

struct KameoEcho;

impl kameo::Actor for KameoEcho {
    type Args = Self;
    type Error = kameo::error::Infallible;

    async fn on_start(state: Self, _: ActorRef<Self>) -> Result<Self, Self::Error> {
        Ok(state)
    }
}

struct Echo(u64);

impl Message<Echo> for KameoEcho {
    type Reply = u64;

    async fn handle(&mut self, msg: Echo, _: &mut KameoContext<Self, u64>) -> u64 {
        msg.0
    }
}

fn call(c: &mut Criterion) {
    call_group(c, "process/call", Timeout::Infinity);
    call_group(c, "process/call-timeout", Timeout::After(CALL_TIMEOUT));
}

const CALL: [&str; 3] = ["beamline", "tokio-mpsc-oneshot", "kameo"];

/// `n` calls from a spawned caller task to an echo server of side `side` (see [`CALL`]),
/// every reply checked; how long they took.
async fn call_with(side: usize, n: u64, timeout: Timeout) -> Duration {
    let caller = tokio::spawn(async move {
        match side {
            0 => {
                let server = echo_server();
                let start = Instant::now();
                for i in 0..n {
                    let v = server
                        .call(|r| Req::Echo(i, r), timeout)
                        .await
                        .expect("reply");
                    assert_eq!(v, i);
                }
                let elapsed = start.elapsed();
                let _ = server.cast(Req::Stop).await;
                elapsed
            }
            1 => {
                let (tx, mut rx) = mpsc::channel::<(u64, oneshot::Sender<u64>)>(1024);
                tokio::spawn(async move {
                    while let Some((v, reply)) = rx.recv().await {
                        let _ = reply.send(v);
                    }
                });
                let start = Instant::now();
                for i in 0..n {
                    let (otx, orx) = oneshot::channel();
                    let exchange = async {
                        tx.send((i, otx)).await.expect("server alive");
                        orx.await.expect("reply")
                    };
                    let v = match timeout {
                        Timeout::After(t) => {
                            tokio::time::timeout(t, exchange).await.expect("in time")
                        }
                        _ => exchange.await,
                    };
                    assert_eq!(v, i);
                }
                start.elapsed()
            }
            _ => {
                let actor = KameoEcho::spawn(KameoEcho);
                let start = Instant::now();
                for i in 0..n {
                    let v = match timeout {
                        Timeout::After(t) => actor.ask(Echo(i)).reply_timeout(t).await,
                        _ => actor.ask(Echo(i)).await,
                    };
                    assert_eq!(v.expect("reply"), i);
                }
                let elapsed = start.elapsed();
                let _ = actor.stop_gracefully().await;
                elapsed
            }
        }
    });
    caller.await.expect("caller")
}

fn call_group(c: &mut Criterion, name: &str, timeout: Timeout) {
    let rt = runtime();
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(BATCH));
    for (side, function) in CALL.iter().enumerate() {
        g.bench_function(*function, |b| {
            b.to_async(&rt)
                .iter_custom(|iters| call_with(side, iters * BATCH, timeout));
        });
    }
    g.finish();
    if selected(name, &CALL) {
        let rows = memory::measure(name, BATCH, &CALL, |side| {
            rt.block_on(call_with(side, BATCH, timeout));
        });
        MEMORY.lock().expect("memory rows").extend(rows);
    }
}

// ---- process/spawn --------------------------------------------------------------------------

const SPAWN: [&str; 2] = ["beamline", "kameo"];
/// Lives per iteration of the memory count.
const SPAWNS: u64 = 100;

/// `n` whole short lives of side `side` (see [`SPAWN`]), one after another.
async fn spawn_with(side: usize, n: u64) -> Duration {
    let driver = tokio::spawn(async move {
        let start = Instant::now();
        for _ in 0..n {
            if side == 0 {
                let p = echo_server();
                p.cast(Req::Stop).await.expect("alive");
                p.exited().await;
            } else {
                let actor = KameoEcho::spawn(KameoEcho);
                actor.stop_gracefully().await.expect("alive");
                actor.wait_for_shutdown().await;
            }
        }
        start.elapsed()
    });
    driver.await.expect("driver")
}

fn spawn_cost(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("process/spawn");
    g.throughput(Throughput::Elements(1));
    for (side, function) in SPAWN.iter().enumerate() {
        g.bench_function(*function, |b| {
            b.to_async(&rt).iter_custom(|iters| spawn_with(side, iters));
        });
    }
    g.finish();
    if selected("process/spawn", &SPAWN) {
        let rows = memory::measure("process/spawn", SPAWNS, &SPAWN, |side| {
            rt.block_on(spawn_with(side, SPAWNS));
        });
        MEMORY.lock().expect("memory rows").extend(rows);
    }
}

// ---- process/supervised-child ---------------------------------------------------------------

const CHILD: [&str; 3] = ["beamline", "beamline-acknowledged", "tokio-spawn"];

/// `iters` batches of [`CHILDREN`] children that start and exit: under `sup` (side 0), under
/// `sup` with the start handshake (side 1: each child acknowledges its start and is started
/// with `start_child_acknowledged`, so the next one starts only once it has), or bare tokio
/// tasks (side 2).
async fn children_with(side: usize, sup: DynamicSupervisor, iters: u64) -> Duration {
    let driver = tokio::spawn(async move {
        let start = Instant::now();
        for _ in 0..iters {
            if side == 2 {
                let tasks: Vec<_> = (0..CHILDREN).map(|_| tokio::spawn(async {})).collect();
                for task in tasks {
                    task.await.expect("task");
                }
                continue;
            }
            let mut children: Vec<Addr<()>> = Vec::with_capacity(CHILDREN as usize);
            for _ in 0..CHILDREN {
                let child = if side == 1 {
                    let spec = ChildSpec::temporary("conn", |ctx: Context<()>| async move {
                        ctx.started();
                        Ok(())
                    });
                    let spec = spec.acknowledged(Timeout::Infinity);
                    sup.start_child_acknowledged(spec).await
                } else {
                    sup.start_child(ChildSpec::temporary("conn", |_ctx| async { Ok(()) }))
                };
                children.push(child.expect("the child started"));
            }
            for child in children {
                child.exited().await;
            }
            // The supervisor has forgotten them all once it answers.
            sup.count_children().await.expect("supervisor alive");
        }
        start.elapsed()
    });
    driver.await.expect("driver")
}

fn supervised_child(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("process/supervised-child");
    g.throughput(Throughput::Elements(CHILDREN));
    let sup = rt.block_on(async { DynamicSupervisor::start(DynamicSupervisorConfig::new()) });
    for (side, function) in CHILD.iter().enumerate() {
        g.bench_function(*function, |b| {
            b.to_async(&rt)
                .iter_custom(|iters| children_with(side, sup.clone(), iters));
        });
    }
    g.finish();
    if selected("process/supervised-child", &CHILD) {
        let rows = memory::measure("process/supervised-child", CHILDREN, &CHILD, |side| {
            rt.block_on(children_with(side, sup.clone(), 1));
        });
        MEMORY.lock().expect("memory rows").extend(rows);
    }
    rt.block_on(async {
        let _ = sup.shutdown(Duration::from_secs(1)).await;
    });
}

// ---- process/restart ------------------------------------------------------------------------

enum Work {
    Echo(u64, Reply<u64>),
    Crash,
}

enum RawWork {
    Echo(u64, oneshot::Sender<u64>),
    Crash,
}

fn restart(c: &mut Criterion) {
    // Every iteration panics on purpose; keep the output readable.
    std::panic::set_hook(Box::new(|_| {}));
    let rt = runtime();
    let mut g = c.benchmark_group("process/restart");
    g.throughput(Throughput::Elements(1));

    let (sup, worker) = rt.block_on(async {
        let spec = ChildSpec::permanent("worker", |mut ctx| async move {
            loop {
                match ctx.recv().await {
                    Event::Msg(Work::Echo(v, reply)) => {
                        let _ = reply.send(v);
                    }
                    Event::Msg(Work::Crash) => panic!("crash on purpose"),
                    Event::Info(_) => {}
                }
            }
        });
        let worker = spec.handle();
        let sup = Supervisor::start(
            SupervisorSpec::new(Strategy::OneForOne)
                // Unbounded for the benchmark: every iteration is one more restart.
                .intensity(Intensity::new(u32::MAX, Duration::from_millis(1)))
                .child(spec),
        )
        .await
        .expect("supervisor");
        (sup, worker)
    });
    g.bench_function("beamline", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let worker = worker.clone();
            async move {
                let driver = tokio::spawn(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        worker.current().cast(Work::Crash).await.expect("alive");
                        // The stable handle reaches the replacement as soon as it exists.
                        while worker
                            .call(|r| Work::Echo(1, r), CALL_TIMEOUT)
                            .await
                            .is_err()
                        {
                            tokio::task::yield_now().await;
                        }
                    }
                    start.elapsed()
                });
                driver.await.expect("driver")
            }
        });
    });

    // Hand-rolled: a respawn loop publishing the current worker's sender in a shared slot.
    let slot: Arc<Mutex<mpsc::Sender<RawWork>>> = rt.block_on(async {
        let (tx, _) = mpsc::channel(1);
        let slot = Arc::new(Mutex::new(tx));
        let publish = slot.clone();
        tokio::spawn(async move {
            loop {
                let (tx, mut rx) = mpsc::channel::<RawWork>(1024);
                *publish.lock().expect("slot") = tx;
                let worker = tokio::spawn(async move {
                    while let Some(work) = rx.recv().await {
                        match work {
                            RawWork::Echo(v, reply) => {
                                let _ = reply.send(v);
                            }
                            RawWork::Crash => panic!("crash on purpose"),
                        }
                    }
                });
                if worker.await.is_ok() {
                    break;
                }
            }
        });
        tokio::task::yield_now().await;
        slot
    });
    g.bench_function("tokio-hand-rolled", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let slot = slot.clone();
            async move {
                let driver = tokio::spawn(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let current = slot.lock().expect("slot").clone();
                        current.send(RawWork::Crash).await.expect("alive");
                        loop {
                            let sender = slot.lock().expect("slot").clone();
                            let (otx, orx) = oneshot::channel();
                            if sender.send(RawWork::Echo(1, otx)).await.is_ok() && orx.await.is_ok()
                            {
                                break;
                            }
                            tokio::task::yield_now().await;
                        }
                    }
                    start.elapsed()
                });
                driver.await.expect("driver")
            }
        });
    });
    g.finish();
    rt.block_on(async {
        let _ = sup.shutdown().await;
    });
    let _ = std::panic::take_hook();
}

/// Writes the allocation figures the groups above collected.
fn write_memory(_: &mut Criterion) {
    let rows = std::mem::take(&mut *MEMORY.lock().expect("memory rows"));
    if !rows.is_empty() {
        memory::write("process", &rows).unwrap_or_else(|e| panic!("memory results: {e}"));
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(30);
    targets = cast, call, spawn_cost, supervised_child, restart, write_memory
}
criterion_main!(benches);
