//! The `balanced/*` cells: one `Balanced` client over five servers, each behind its own
//! chaos proxy, while one endpoint goes wrong.
//!
//! ```text
//! callers ─► Balanced (P2C PeakEWMA, ejection, budget) ─► 5 × beamline::Client ─► 5 × Proxy ─► 5 × beamline-server + serve_wire
//! ```
//!
//! - `balanced/slow-endpoint`: one proxy adds 20 ms to every answer for 2 s. No request
//!   may fail, and the slow endpoint must get at most a tenth of the requests meanwhile.
//! - `balanced/reset-endpoint`: one proxy resets every connection for 2 s. Errors must be
//!   typed ones a reset explains; the endpoint must get at most a twentieth of the
//!   requests meanwhile (ejected, or seen reconnecting).
//! - `balanced/endpoint-removed`: discovery removes one endpoint at 0.5 s. No request may
//!   fail, and no request started after the removal took effect may reach its server
//!   (every payload is kept at the servers and looked up).
//!
//! Then, as in every cell: 20 more requests per caller that must all succeed, every
//! request ended by its deadline with its own payload or a typed error, and no task or file
//! descriptor left behind.

mod fleet;

pub use fleet::{Fleet, Node, Received};

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beamline::balance::{BalanceError, Balanced, Change, Discovery, EndpointState, HealthConfig};
use beamline::chaos::{Direction, Fault};
use beamline::reconnect::{BackoffConfig, Jitter, SplitMix64};
use beamline::{BuildError, Client, ClientError};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use super::Timeline;
use super::load::{self, Log, Payload, Sample};
use super::report::CellReport;
use super::run::{TEARDOWN_LIMIT, join_into, run_isolated, tasks_left};

/// The balanced cells' names, in the matrix's order.
pub const CELLS: [&str; 3] = [
    "balanced/slow-endpoint",
    "balanced/reset-endpoint",
    "balanced/endpoint-removed",
];

/// Endpoints in every balanced cell, and which one goes wrong.
const ENDPOINTS: usize = 5;
const SICK: usize = 1;
/// The balanced client's deadline per call, and the slack beyond it a request gets before
/// the cell calls it a hang.
const DEADLINE: Duration = Duration::from_secs(2);
const SLACK: Duration = Duration::from_secs(1);
const CALLERS: u16 = 16;
/// The slow endpoint's extra latency.
const SLOW: Duration = Duration::from_millis(20);

type Endpoint = Client<Bytes, Bytes>;

/// What goes wrong in a balanced cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalancedFault {
    /// One endpoint answers 20 ms late.
    SlowEndpoint,
    /// One endpoint resets every connection.
    ResetEndpoint,
    /// Discovery removes one endpoint.
    EndpointRemoved,
}

impl BalancedFault {
    /// The fault of a `balanced/...` cell name.
    pub fn of(cell: &str) -> Option<BalancedFault> {
        match cell {
            "balanced/slow-endpoint" => Some(BalancedFault::SlowEndpoint),
            "balanced/reset-endpoint" => Some(BalancedFault::ResetEndpoint),
            "balanced/endpoint-removed" => Some(BalancedFault::EndpointRemoved),
            _ => None,
        }
    }

    /// The cell's name.
    pub fn name(self) -> &'static str {
        match self {
            BalancedFault::SlowEndpoint => CELLS[0],
            BalancedFault::ResetEndpoint => CELLS[1],
            BalancedFault::EndpointRemoved => CELLS[2],
        }
    }

    /// A seed from the name (FNV-1a), so a rerun replays.
    pub fn seed(self) -> u64 {
        self.name().bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    }
}

/// Runs the cell of `fault` in a runtime of its own and reports what it saw.
pub fn run_balanced(fault: BalancedFault, seed: u64) -> CellReport {
    run_isolated(fault.name().to_owned(), seed, || drive(fault, seed))
}

/// One endpoint's client: the facade's `Client` with the matrix's short bounds.
async fn endpoint(addr: SocketAddr) -> Result<Endpoint, BuildError> {
    Client::builder(addr)
        .name(format!("matrix balanced {addr}"))
        .timeout(Duration::from_secs(1))
        .backoff(
            BackoffConfig::exponential(Duration::from_millis(50), 2.0, Duration::from_millis(400))
                .jitter(Jitter::Full),
        )
        .connect()
        .await
}

/// Requests started once the removal took effect, for the lookup at the removed server.
#[derive(Debug, Default)]
struct AfterRemoval {
    removed: AtomicBool,
    started: Mutex<Vec<Bytes>>,
}

/// One caller's paced requests through the balanced client, judged like every cell's.
async fn caller(
    client: Balanced<Endpoint>,
    id: u16,
    seed: u64,
    first_seq: u32,
    until: Until,
    epoch: Instant,
    after_removal: Arc<AfterRemoval>,
) -> Log {
    let mut rng = SplitMix64::new(seed ^ (u64::from(id) << 32));
    let mut log = Log::default();
    let mut ticks = tokio::time::interval(Timeline::standard().pace);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut seq = first_seq;
    while until.more(seq - first_seq) {
        ticks.tick().await;
        let payload = Payload::make(id, seq, &mut rng);
        seq += 1;
        if after_removal.removed.load(Ordering::SeqCst) {
            let mut started = after_removal
                .started
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            started.push(payload.clone());
        }
        let started = Instant::now();
        let outcome = tokio::time::timeout(DEADLINE + SLACK, client.call(payload.clone())).await;
        log.requests += 1;
        let who = format!("caller {id} request {}", seq - 1);
        let start = started.duration_since(epoch);
        match outcome {
            Ok(Ok(reply)) if reply == payload => {
                log.ok += 1;
                log.samples.push(Sample {
                    start,
                    latency: started.elapsed(),
                });
            }
            Ok(Ok(_)) => log
                .violations
                .push(format!("{who} got a reply not its own")),
            Ok(Err(e)) => {
                let kind = kind(&e);
                *log.errors.entry(kind).or_default() += 1;
                log.failed_at.push(start);
                if !until.errors_allowed() || !load::a_fault_can_cause(kind) {
                    log.violations.push(format!("{who} failed: {e}"));
                }
            }
            Err(_) => log.violations.push(format!(
                "{who} neither answered nor failed within {:?}",
                DEADLINE + SLACK
            )),
        }
    }
    log
}

/// How long a caller goes on, and whether errors are allowed meanwhile.
#[derive(Debug, Clone, Copy)]
enum Until {
    /// Under the fault, until `end`; `errors`: whether typed errors a fault explains are
    /// allowed.
    Time { end: Instant, errors: bool },
    /// After the heal: `n` requests, every one answered.
    Count(u32),
}

impl Until {
    fn more(self, done: u32) -> bool {
        match self {
            Until::Time { end, .. } => Instant::now() < end,
            Until::Count(n) => done < n,
        }
    }

    fn errors_allowed(self) -> bool {
        matches!(self, Until::Time { errors: true, .. })
    }
}

/// The error kinds of the matrix, for a balanced call: the endpoint's own error's kind, or
/// the balancer's.
fn kind(e: &BalanceError<ClientError>) -> &'static str {
    match e {
        BalanceError::Endpoint { source, .. } => load::kind(source),
        BalanceError::NoEndpoint { .. } => "no_endpoint",
        BalanceError::Timeout { .. } => "timeout",
        BalanceError::Closed { .. } => "closed",
        _ => "other",
    }
}

/// The cell inside its runtime.
async fn drive(fault: BalancedFault, seed: u64) -> Result<(Log, Vec<String>), String> {
    let t = Timeline::standard();
    let keep = fault == BalancedFault::EndpointRemoved;
    let fleet = Fleet::start(ENDPOINTS, Duration::ZERO, seed, keep)
        .await
        .map_err(|e| format!("the fleet did not start: {e}"))?;
    let addrs = fleet.addrs();
    let (changes, rx) = mpsc::unbounded_channel();
    for addr in &addrs {
        let _ = changes.send(Change::Insert(*addr));
    }
    let discovery = Discovery::stream(
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
            .boxed(),
    );
    let client = Balanced::builder(discovery, endpoint)
        .name(fault.name())
        .timeout(DEADLINE)
        .seed(seed)
        .health(HealthConfig::new().base_ejection(Duration::from_secs(1)))
        .start()
        .map_err(|e| format!("the balanced client did not start: {e}"))?;
    let up = Instant::now() + Duration::from_secs(5);
    while client
        .stats()
        .endpoints
        .iter()
        .filter(|(_, s)| s.state == EndpointState::Healthy)
        .count()
        < ENDPOINTS
    {
        if Instant::now() > up {
            return Err(format!(
                "the endpoints did not come up: {:?}",
                client.stats()
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("{}: seed {seed}, endpoints {addrs:?}", fault.name());

    let epoch = Instant::now();
    let after_removal = Arc::new(AfterRemoval::default());
    let spawn_all = |until: Until, first_seq: u32| {
        (0..CALLERS)
            .map(|id| {
                let run = caller(
                    client.clone(),
                    id,
                    seed,
                    first_seq,
                    until,
                    epoch,
                    after_removal.clone(),
                );
                tokio::spawn(run)
            })
            .collect::<Vec<_>>()
    };
    let errors = fault == BalancedFault::ResetEndpoint;
    let under = spawn_all(
        Until::Time {
            end: epoch + t.load_end(),
            errors,
        },
        0,
    );
    let sick = &fleet.nodes[SICK];
    tokio::time::sleep_until(epoch + t.fault_at).await;
    let before = fleet.counts();
    match fault {
        BalancedFault::SlowEndpoint => sick
            .proxy
            .apply(Direction::Downstream, Fault::latency(SLOW)),
        BalancedFault::ResetEndpoint => {
            sick.proxy.apply(Direction::Both, Fault::reset());
            sick.proxy.reset_all();
        }
        BalancedFault::EndpointRemoved => {
            let _ = changes.send(Change::Remove(addrs[SICK]));
            while client
                .stats()
                .endpoint(addrs[SICK])
                .is_some_and(|s| s.state != EndpointState::Draining)
            {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            after_removal.removed.store(true, Ordering::SeqCst);
        }
    }
    tokio::time::sleep_until(epoch + t.fault_at + t.fault_for).await;
    let during: Vec<u64> = fleet
        .counts()
        .iter()
        .zip(&before)
        .map(|(a, b)| a - b)
        .collect();
    sick.proxy.clear_all();
    println!(
        "  {:.2}s: the fault healed; requests per server meanwhile {during:?}",
        epoch.elapsed().as_secs_f64()
    );

    let mut log = Log::default();
    let mut failures = Vec::new();
    join_into(under, &mut log, &mut failures).await;
    let after = spawn_all(Until::Count(t.final_requests), 1 << 24);
    join_into(after, &mut log, &mut failures).await;
    let stats = client.stats();
    println!(
        "  {:.2}s: {} requests, {} answered, {:?}",
        epoch.elapsed().as_secs_f64(),
        log.requests,
        log.ok,
        stats.totals
    );

    failures.extend(verify(
        fault,
        &during,
        &fleet,
        &after_removal,
        &log,
        sick.proxy.stats().resets,
    ));
    client.close();
    drop(client);
    fleet.shutdown().await;
    let left = tasks_left(TEARDOWN_LIMIT).await;
    if left > 0 {
        failures.push(format!(
            "{left} tokio tasks still alive after the tear-down"
        ));
    }
    Ok((log, failures))
}

/// The evidence that the fault happened, and the cell's own invariant.
fn verify(
    fault: BalancedFault,
    during: &[u64],
    fleet: &Fleet,
    after_removal: &AfterRemoval,
    log: &Log,
    resets: u64,
) -> Vec<String> {
    let mut failures = Vec::new();
    let total: u64 = during.iter().sum();
    let share = during[SICK] as f64 / total.max(1) as f64;
    match fault {
        BalancedFault::SlowEndpoint => {
            if !log.samples.iter().any(|s| s.latency >= SLOW) {
                failures.push("no request was slowed: the latency never applied".into());
            }
            if share > 0.10 {
                failures.push(format!(
                    "the slow endpoint got {:.1}% of the requests",
                    share * 100.0
                ));
            }
        }
        BalancedFault::ResetEndpoint => {
            if resets == 0 {
                failures.push("the proxy reset nothing".into());
            }
            if share > 0.05 {
                failures.push(format!(
                    "the resetting endpoint got {:.1}% of the requests",
                    share * 100.0
                ));
            }
        }
        BalancedFault::EndpointRemoved => {
            let started = after_removal
                .started
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let reached = started
                .iter()
                .filter(|p| fleet.nodes[SICK].received.saw(p))
                .count();
            if reached > 0 {
                failures.push(format!(
                    "{reached} requests started after the removal reached the removed server"
                ));
            }
            if started.is_empty() || fleet.nodes[SICK].received.count() == 0 {
                failures.push(
                    "the removed endpoint never served, or nothing came after the removal".into(),
                );
            }
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cell_name_parses_back_with_its_own_seed() {
        let faults: Vec<BalancedFault> =
            CELLS.iter().filter_map(|c| BalancedFault::of(c)).collect();
        assert_eq!(faults.len(), 3);
        for f in &faults {
            assert_eq!(BalancedFault::of(f.name()), Some(*f));
        }
        assert_ne!(faults[0].seed(), faults[1].seed());
        assert_eq!(BalancedFault::of("balanced/fire"), None);
    }
}
