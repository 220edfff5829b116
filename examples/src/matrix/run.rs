//! Running one cell: its own runtime, server, proxy and client; the load under the fault;
//! the final phase after the heal; the tear-down and the leak count.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use beamline::chaos::Proxy;
use beamline::pool::PoolConfig;
use beamline::reconnect::{BackoffConfig, Jitter, OfflinePolicy, ReconnectConfig};
use beamline::{Client, Pooling, rustls};
use beamline_testkit::{TestPki, open_fds};
use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::cell::{Cell, Fault, Shape, Transport};
use super::fault::{self, Injected};
use super::load::{self, CallerPlan, Log, Phase};
use super::report::CellReport;
use super::server::{EchoServer, Frames, Protocol};

/// A request's own timeout once it reaches a connection (in-flight slot, write, answer).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a request made while offline waits for a connection.
const OFFLINE_DEADLINE: Duration = Duration::from_secs(1);
/// How long a pooled call waits for a connection.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(1);
/// One connect attempt (TCP connect and TLS handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// What a request's deadline allows beyond the sum of the client's own bounds: scheduling
/// on a busy machine, never a fault (a fault is bounded by the client's timeouts).
const SLACK: Duration = Duration::from_secs(1);
/// Connections in a pooled client.
const POOL_SIZE: usize = 4;
/// Requests in flight per connection in a shared pool: 16 callers need all four.
const SHARED_IN_FLIGHT: usize = 4;
/// How long the tear-down may take to end every task.
pub(crate) const TEARDOWN_LIMIT: Duration = Duration::from_secs(5);
/// The most broken invariants a report lists one by one.
const MAX_LISTED: usize = 20;

/// When things happen in a cell, from the start of its load.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// When the fault starts.
    pub fault_at: Duration,
    /// How long it lasts (the partition's 2 s; the restart's time away).
    pub fault_for: Duration,
    /// How long the load goes on after the heal before the final phase.
    pub settle: Duration,
    /// Requests per caller in the final phase, after the heal: every one must succeed.
    pub final_requests: u32,
    /// Time between the starts of a caller's requests.
    pub pace: Duration,
}

impl Timeline {
    /// The matrix's timeline: fault at 0.5 s for 2 s, load until 3 s, then 20 requests per
    /// caller that must all succeed, one every 10 ms.
    pub fn standard() -> Timeline {
        Timeline {
            fault_at: Duration::from_millis(500),
            fault_for: Duration::from_secs(2),
            settle: Duration::from_millis(500),
            final_requests: 20,
            pace: Duration::from_millis(10),
        }
    }

    /// The timeline of `fault`: [`standard`](Self::standard), except that an abandoned
    /// reply lasts until the client can have healed it under its defaults: the swallowed
    /// request's own timeout, then the abandon timeout (twice the request timeout), then
    /// one reconnect (at most the backoff's 400 ms cap), 3.5 s in all.
    pub fn for_fault(fault: Fault) -> Timeline {
        match fault {
            Fault::AbandonedReply => Timeline {
                fault_for: REQUEST_TIMEOUT * 3 + Duration::from_millis(500),
                ..Timeline::standard()
            },
            _ => Timeline::standard(),
        }
    }

    /// When the load under the fault stops.
    pub fn load_end(&self) -> Duration {
        self.fault_at + self.fault_for + self.settle
    }
}

/// How many callers a shape gets: enough to keep its connections busy, few enough that
/// none waits past its timeout for a turn when nothing is wrong (a single connection with
/// one request in flight serves four callers, twenty milliseconds apart under latency).
fn callers(shape: Shape) -> u16 {
    match shape {
        Shape::Single | Shape::FifoSingle => 4,
        Shape::Pooled | Shape::FifoPooled => 8,
        Shape::Mux | Shape::PooledMux | Shape::Fifo | Shape::PooledFifo => 16,
    }
}

/// The longest a request may take to end, answer or error: the sum of the bounds it can
/// meet on its way (a pool checkout, the offline queue, its own timeout) plus slack.
pub(crate) fn deadline(shape: Shape) -> Duration {
    let checkout = if shape.is_pooled() {
        CHECKOUT_TIMEOUT
    } else {
        Duration::ZERO
    };
    checkout + OFFLINE_DEADLINE + REQUEST_TIMEOUT + SLACK
}

/// Runs `cell` in a runtime of its own and reports what it saw. Counts the process's file
/// descriptors before the runtime starts and after it is gone, and the runtime's live
/// tasks after everything was shut down: both must come back to where they started.
pub fn run_cell(cell: Cell, seed: u64, timeline: &Timeline) -> CellReport {
    run_isolated(cell.to_string(), seed, || drive(cell, seed, timeline))
}

/// Runs a cell's `drive` in a runtime of its own, then checks that nothing leaked (file
/// descriptors, tasks) and builds the report: what every cell family shares.
pub(crate) fn run_isolated<F, Fut>(name: String, seed: u64, drive: F) -> CellReport
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(Log, Vec<String>), String>>,
{
    let wall = std::time::Instant::now();
    // tokio opens a process-wide signal pipe the first time any runtime with I/O starts,
    // and keeps it for good: start one first, so the count sees only what the cell opens.
    drop(runtime());
    let fds_before = open_fds();
    let open_before = fd_targets();
    let mut failures = Vec::new();
    let mut log = Log::default();
    match runtime() {
        Ok(runtime) => {
            match runtime.block_on(drive()) {
                Ok((seen, broken)) => {
                    log = seen;
                    failures.extend(broken);
                }
                Err(why) => failures.push(why),
            }
            runtime.shutdown_timeout(TEARDOWN_LIMIT);
        }
        Err(e) => failures.push(format!("no tokio runtime: {e}")),
    }
    let fds_after = open_fds();
    if fds_after != fds_before {
        let new: Vec<String> = fd_targets()
            .into_iter()
            .filter(|fd| !open_before.contains(fd))
            .map(|(fd, target)| format!("{fd} -> {target}"))
            .collect();
        failures.push(format!(
            "file descriptors: {fds_before} before the runtime started, {fds_after} after it was dropped (new: {})",
            new.join(", ")
        ));
    }
    let mut violations = std::mem::take(&mut log.violations);
    let more = violations.len().saturating_sub(MAX_LISTED);
    violations.truncate(MAX_LISTED);
    failures.extend(violations);
    if more > 0 {
        failures.push(format!("... and {more} more broken invariants"));
    }
    let mut latencies: Vec<Duration> = log.samples.iter().map(|s| s.latency).collect();
    latencies.sort_unstable();
    CellReport {
        cell: name,
        seed,
        passed: failures.is_empty(),
        requests: log.requests,
        ok: log.ok,
        errors: log
            .errors
            .iter()
            .map(|(k, n)| ((*k).to_owned(), *n))
            .collect(),
        p50_ms: load::percentile_ms(&latencies, 50.0),
        p99_ms: load::percentile_ms(&latencies, 99.0),
        seconds: wall.elapsed().as_secs_f64(),
        recovery_ms: log.recovery.map(|d| d.as_secs_f64() * 1e3),
        failures,
    }
}

/// The cell's runtime: two workers, like the machine the matrix is sized for.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// This process's open descriptors and what each points at, to name a leak.
fn fd_targets() -> Vec<(String, String)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .map(|entry| {
            let target = std::fs::read_link(entry.path())
                .map_or_else(|e| format!("? ({e})"), |p| p.display().to_string());
            (entry.file_name().to_string_lossy().into_owned(), target)
        })
        .collect()
}

/// The cell inside its runtime. `Err` when it could not even be set up; otherwise the log
/// and the invariants broken beyond the log's own (fault evidence, leaks).
async fn drive(cell: Cell, seed: u64, t: &Timeline) -> Result<(Log, Vec<String>), String> {
    let pki = (cell.transport == Transport::Tls).then(TestPki::new);
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let protocol = if cell.shape.is_fifo() {
        Protocol::Fifo(Arc::default())
    } else {
        Protocol::Wire
    };
    let tls = pki.as_ref().map(TestPki::server_config);
    let mut server = EchoServer::start(loopback, tls, protocol)
        .map_err(|e| format!("the server did not start: {e}"))?;
    let proxy = Proxy::builder(server.addr())
        .seed(seed)
        .start()
        .await
        .map_err(|e| format!("the proxy did not start: {e}"))?;
    let client = connect(
        cell,
        proxy.local_addr(),
        pki.as_ref().map(TestPki::client_config),
        seed,
    )
    .await?;
    let callers = callers(cell.shape);
    println!(
        "{cell}: seed {seed}, server {}, proxy {}, {callers} callers, deadline {:?}",
        server.addr(),
        proxy.local_addr(),
        deadline(cell.shape)
    );

    let epoch = Instant::now();
    let plan = |caller: u16, phase: Phase, first_seq: u32| CallerPlan {
        caller,
        seed,
        first_seq,
        phase,
        pace: t.pace,
        deadline: deadline(cell.shape),
        errors_forbidden: matches!(cell.fault, Fault::None | Fault::Latency),
        epoch,
    };
    let spawn_all = |phase: Phase, first_seq: u32| -> Vec<JoinHandle<Log>> {
        (0..callers)
            .map(|c| tokio::spawn(load::caller(client.clone(), plan(c, phase, first_seq))))
            .collect()
    };
    let mut failures = Vec::new();
    let mut log = Log::default();

    let under = spawn_all(
        Phase::UnderFault {
            end: epoch + t.load_end(),
        },
        0,
    );
    let injected = fault::inject(cell.fault, &proxy, &mut server, t, epoch).await;
    println!("  {:.2}s: the fault healed", epoch.elapsed().as_secs_f64());
    join_into(under, &mut log, &mut failures).await;
    println!(
        "  {:.2}s: under the fault: {} requests, {} answered, errors {:?}",
        epoch.elapsed().as_secs_f64(),
        log.requests,
        log.ok,
        log.errors
    );
    let after = spawn_all(
        Phase::AfterHeal {
            count: t.final_requests,
        },
        1 << 24,
    );
    join_into(after, &mut log, &mut failures).await;
    println!(
        "  {:.2}s: after the heal: {} requests in all, {} answered",
        epoch.elapsed().as_secs_f64(),
        log.requests,
        log.ok
    );

    let injected = injected.unwrap_or_else(|why| {
        failures.push(format!("injecting the fault failed: {why}"));
        Injected::default()
    });
    let mut injected = injected;
    injected.swallow = server.swallow().map(|s| {
        (
            s.swallowed.load(std::sync::atomic::Ordering::SeqCst),
            s.closed_by_client.load(std::sync::atomic::Ordering::SeqCst),
        )
    });
    failures.extend(fault::verify(
        cell.fault,
        cell.shape,
        t,
        &injected,
        proxy.stats().resets,
        &server.stats(),
        &log,
    ));

    // Tear down everything, then every task must be gone.
    client.close();
    drop(client);
    proxy.shutdown().await;
    if let Err(e) = server.stop().await {
        failures.push(format!("the server's shutdown failed: {e}"));
    }
    drop(server);
    let left = tasks_left(TEARDOWN_LIMIT).await;
    if left > 0 {
        failures.push(format!(
            "{left} tokio tasks still alive {TEARDOWN_LIMIT:?} after the client, proxy and server were shut down"
        ));
    }
    println!(
        "  {:.2}s: torn down, {left} tasks left",
        epoch.elapsed().as_secs_f64()
    );
    Ok((log, failures))
}

/// The cell's client: the facade's `Client` in the cell's shape, through the proxy, every
/// bound short so a fault shows within the cell's seconds.
async fn connect(
    cell: Cell,
    proxy: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    seed: u64,
) -> Result<Client<Bytes, Bytes>, String> {
    let backoff =
        BackoffConfig::exponential(Duration::from_millis(50), 2.0, Duration::from_millis(400))
            .jitter(Jitter::Full);
    let reconnect = ReconnectConfig::new(OfflinePolicy::Queue {
        max: 1024,
        deadline: OFFLINE_DEADLINE,
    })
    .backoff(backoff.clone())
    .connect_timeout(CONNECT_TIMEOUT)
    .seed(seed)
    .sync_connect(true);
    let pool = PoolConfig::new(POOL_SIZE)
        .checkout_timeout(Some(CHECKOUT_TIMEOUT))
        .connect_timeout(Some(CONNECT_TIMEOUT))
        .backoff(backoff);
    let (max_in_flight, pooling) = match cell.shape {
        Shape::Single | Shape::FifoSingle => (1, Pooling::Single),
        Shape::Pooled | Shape::FifoPooled => (1, Pooling::Exclusive(pool)),
        Shape::Mux | Shape::Fifo => (256, Pooling::Single),
        Shape::PooledMux | Shape::PooledFifo => (SHARED_IN_FLIGHT, Pooling::Shared(pool)),
    };
    let mut builder = Client::builder(proxy)
        .name(format!("matrix {cell}"))
        .timeout(REQUEST_TIMEOUT)
        .max_in_flight(max_in_flight)
        .reconnect(reconnect)
        .pool(pooling);
    if let Some(config) = tls {
        builder = builder.tls(config);
    }
    let started = if cell.shape.is_fifo() {
        // The defaults under test: the abandon timeout is twice the request timeout.
        builder.fifo::<Bytes, _>(Frames::new()).connect().await
    } else {
        builder.connect().await
    };
    started.map_err(|e| format!("the client did not start: {e}"))
}

/// Waits for every caller and merges its log; a caller that panicked is a failure.
pub(crate) async fn join_into(
    handles: Vec<JoinHandle<Log>>,
    log: &mut Log,
    failures: &mut Vec<String>,
) {
    for handle in handles {
        match handle.await {
            Ok(caller) => log.merge(caller),
            Err(e) => failures.push(format!("a caller task failed: {e}")),
        }
    }
}

/// The runtime's live tasks once they have had `limit` to end (0 as soon as they have).
/// Connection tasks end asynchronously after their sockets close, so this watches the
/// count fall rather than reading it once.
pub(crate) async fn tasks_left(limit: Duration) -> usize {
    let metrics = Handle::current().metrics();
    let give_up = Instant::now() + limit;
    loop {
        let alive = metrics.num_alive_tasks();
        if alive == 0 || Instant::now() >= give_up {
            return alive;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_add_up_the_bounds_a_request_can_meet() {
        assert_eq!(deadline(Shape::Mux), Duration::from_secs(3));
        assert_eq!(deadline(Shape::Pooled), Duration::from_secs(4));
    }

    #[test]
    fn the_standard_timeline_fits_the_budget() {
        let t = Timeline::standard();
        assert_eq!(
            t.fault_for,
            Duration::from_secs(2),
            "the issue's 2 s partition"
        );
        assert!(t.load_end() > t.fault_at + t.fault_for);
        // Under ~5 s of load per cell: 48 cells stay well inside 10 minutes.
        let final_phase = t.pace * t.final_requests;
        assert!(t.load_end() + final_phase < Duration::from_secs(5));
    }

    #[test]
    fn an_abandoned_reply_lasts_until_the_default_abandon_timeout_can_heal_it() {
        let t = Timeline::for_fault(Fault::AbandonedReply);
        // Swallowed at the start: its timeout, twice that, and the backoff cap.
        let heal = REQUEST_TIMEOUT * 3 + Duration::from_millis(400);
        assert!(t.fault_for >= heal, "{:?}", t.fault_for);
        let final_phase = t.pace * t.final_requests;
        assert!(t.load_end() + final_phase < Duration::from_secs(5));
        assert_eq!(Timeline::for_fault(Fault::Reset), Timeline::standard());
    }
}
