//! The `cluster/*` cells: beamline-redis's `ClusterClient` over a real Redis Cluster (three
//! primaries and three replicas, `redis-server` processes started for the cell) while the
//! cluster changes under load.
//!
//! ```text
//! 32 callers + 4 on the victim slot ─► ClusterClient (2 s deadline) ─► 3 primaries + 3 replicas
//!                                                         └─(partition-primary)─► Proxy ─► one primary
//! ```
//!
//! The victim slot is the slot of the hash tag `{victim}`; four callers use only keys of
//! that slot, so it has load whatever the fault. The fault comes 1 s into the load:
//!
//! - `cluster/none`: nothing. No request may fail, and no redirect is needed.
//! - `cluster/kill-primary`: `kill -9` of the victim slot's primary; its replica takes over.
//! - `cluster/manual-failover`: `CLUSTER FAILOVER` on that primary's replica.
//! - `cluster/migrate-slot`: the victim slot migrates to another primary: `MIGRATING` /
//!   `IMPORTING`, its keys moved, 500 ms of `ASK`, then the slot assigned (`MOVED`).
//! - `cluster/partition-primary`: the client dials the victim slot's primary through a
//!   beamline-chaos proxy (`ClusterBuilder::map_address`), partitioned for 2.5 s (longer
//!   than a request's deadline, so some must time out), then healed.
//!   The cluster itself sees nothing (its bus does not cross the proxy).
//!
//! # What a cell checks
//!
//! - Every request ends within its 2 s deadline (+ 1 s slack) with its own reply (each
//!   `GET` and `INCRBY` answer is unique to its request) or a typed `ClusterError` a fault
//!   explains (`timeout`; `connection_lost` of a non-idempotent `INCRBY` only: reads and
//!   declared-idempotent `SET`s are resent). In `cluster/none`, no error at all. Errors are
//!   counted by kind. See [`crate::cluster_load`].
//! - No `INCRBY` is applied twice: every key is read back and holds its request's unique
//!   amount once or nothing; it must hold it when the call answered (unless a `kill -9` lost
//!   a write its primary acknowledged before replicating it: counted, and allowed only on
//!   the killed primary's slots for requests started before the kill), and nothing when the
//!   error said "not applied".
//! - Writes resume on the affected slots (the victim primary's; for a migration, the victim
//!   slot): the time from the fault to the first successful write started after it is the
//!   report's `recovery_ms`; for a failover it must be within the failover's own time plus
//!   1 s (beamline-redis's promise) and slack.
//! - After the fault, every caller sends 12 more requests and every one must succeed.
//! - The fault happened: the killed node is dead and the client routes the slot to the new
//!   primary; the manual failover moved the slot and the client followed a `MOVED`; the
//!   migration made the client follow at least one `ASK` and one `MOVED`; the proxy held
//!   live connections and forwarded no byte to the client while partitioned, and requests
//!   to that primary timed out meanwhile.
//! - Nothing leaks: after the client, the proxy and the cluster are gone, no task is left in
//!   the runtime and the file descriptors are back to their count before it started.

mod fault;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use beamline::chaos::Proxy;
use beamline::process::panic_message;
use beamline_redis::{ClusterClient, SLOTS, key_slot};
use beamline_testkit::RedisCluster;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::load::{Log, Sample};
use super::report::CellReport;
use super::run::{TEARDOWN_LIMIT, run_isolated, tasks_left};
use crate::cluster_load::{self, CallerPlan, End, LoadLog, Until};
use fault::Injected;

/// The cluster cells' names, in the matrix's order.
pub const CELLS: [&str; 5] = [
    "cluster/none",
    "cluster/kill-primary",
    "cluster/manual-failover",
    "cluster/migrate-slot",
    "cluster/partition-primary",
];

/// The client's deadline per request, over redirects and retries.
const TIMEOUT: Duration = Duration::from_secs(2);
/// What a request may overshoot its deadline by before it counts as a hang (a busy
/// two-core machine schedules late; no fault is bounded by this).
const SLACK: Duration = Duration::from_secs(1);
/// Callers on keys spread over every slot.
const CALLERS: u16 = 32;
/// Callers on keys of the victim slot only.
const PROBES: u16 = 4;
/// The hash tag of the victim slot.
const TAG: &str = "victim";
/// The time between the starts of a caller's requests.
const PACE: Duration = Duration::from_millis(10);
/// When the fault comes, from the start of the load.
const FAULT_AT: Duration = Duration::from_secs(1);
/// How long the load goes on after the fault is over.
const SETTLE: Duration = Duration::from_secs(1);
/// Requests per caller after the fault, every one of which must succeed.
const FINAL_REQUESTS: u32 = 12;
/// What writes resuming after a failover may take beyond the failover itself: beamline-redis
/// promises 1 s (a request whose primary is down asks the replica, which takes the write
/// when it is promoted; no refresh needed).
const AFTER_FAILOVER: Duration = Duration::from_secs(1);

/// What happens to the cluster in a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterFault {
    /// Nothing.
    None,
    /// `kill -9` of the victim slot's primary.
    KillPrimary,
    /// `CLUSTER FAILOVER` on the victim primary's replica.
    ManualFailover,
    /// The victim slot migrates to another primary.
    MigrateSlot,
    /// The victim slot's primary, dialled through a proxy, partitioned for 2.5 s.
    PartitionPrimary,
}

impl ClusterFault {
    /// The fault of a `cluster/...` cell name.
    pub fn of(cell: &str) -> Option<ClusterFault> {
        let all = [
            ClusterFault::None,
            ClusterFault::KillPrimary,
            ClusterFault::ManualFailover,
            ClusterFault::MigrateSlot,
            ClusterFault::PartitionPrimary,
        ];
        all.into_iter().find(|f| f.name() == cell)
    }

    /// The cell's name.
    pub fn name(self) -> &'static str {
        match self {
            ClusterFault::None => CELLS[0],
            ClusterFault::KillPrimary => CELLS[1],
            ClusterFault::ManualFailover => CELLS[2],
            ClusterFault::MigrateSlot => CELLS[3],
            ClusterFault::PartitionPrimary => CELLS[4],
        }
    }

    /// A seed from the name (FNV-1a), so a rerun replays the same keys.
    pub fn seed(self) -> u64 {
        self.name().bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    }
}

/// Runs the cell of `fault` in a runtime of its own and reports what it saw.
pub fn run_cluster(fault: ClusterFault, seed: u64) -> CellReport {
    run_isolated(fault.name().to_owned(), seed, || drive(fault, seed))
}

/// Runs `f` on the cluster on a blocking thread (the testkit's waits sleep); a panic there
/// (a cluster that never agreed, with its nodes' logs) becomes the error.
async fn blocking<T, F>(cluster: &Arc<RedisCluster>, f: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce(&RedisCluster) -> T + Send + 'static,
{
    let cluster = cluster.clone();
    tokio::task::spawn_blocking(move || f(&cluster))
        .await
        .map_err(|e| match e.try_into_panic() {
            Ok(payload) => panic_message(&*payload).to_string(),
            Err(e) => e.to_string(),
        })
}

/// The cell inside its runtime.
async fn drive(fault: ClusterFault, seed: u64) -> Result<(Log, Vec<String>), String> {
    let started = Instant::now();
    let cluster = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .map_err(|e| match e.try_into_panic() {
            Ok(payload) => format!("the cluster did not start: {}", panic_message(&*payload)),
            Err(e) => format!("the cluster did not start: {e}"),
        })?;
    let cluster = Arc::new(cluster);
    let slot = key_slot(TAG.as_bytes());
    let owner = blocking(&cluster, move |c| c.primary_of(slot)).await?;
    let proxy = match fault {
        ClusterFault::PartitionPrimary => Some(
            Proxy::builder(owner)
                .seed(seed)
                .start()
                .await
                .map_err(|e| format!("the proxy did not start: {e}"))?,
        ),
        _ => None,
    };
    let mut builder = ClusterClient::builder(cluster.addrs().iter().map(ToString::to_string))
        .name(fault.name())
        .timeout(TIMEOUT);
    if let Some(proxy) = &proxy {
        builder = builder.map_address(owner.to_string(), proxy.local_addr().to_string());
    }
    let client = builder
        .connect()
        .await
        .map_err(|e| format!("the cluster client did not start: {e}"))?;
    let on_owner: Vec<bool> = (0..SLOTS)
        .map(|s| client.primary_of(s) == Some(owner.to_string()))
        .collect();
    let affected = move |s: u16| match fault {
        ClusterFault::MigrateSlot => s == slot,
        _ => on_owner[usize::from(s)],
    };
    println!(
        "{}: seed {seed}, cluster up in {:.2}s, victim slot {slot} on {owner}, {CALLERS} + {PROBES} callers",
        fault.name(),
        started.elapsed().as_secs_f64()
    );

    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let plan = |caller: u16, until: Until, first_seq: u32, errors_allowed: bool| CallerPlan {
        caller,
        seed,
        first_seq,
        tag: (caller >= CALLERS).then(|| Arc::from(TAG)),
        until,
        pace: Some(PACE),
        deadline: TIMEOUT + SLACK,
        errors_allowed,
        epoch,
        observer: None,
    };
    let spawn_all = |until: Until, first_seq: u32, errors_allowed: bool| {
        (0..CALLERS + PROBES)
            .map(|c| {
                let plan = plan(c, until.clone(), first_seq, errors_allowed);
                tokio::spawn(cluster_load::caller(client.clone(), plan))
            })
            .collect::<Vec<_>>()
    };
    let errors_allowed = fault != ClusterFault::None;
    let under = spawn_all(Until::Flag(stop.clone()), 0, errors_allowed);
    tokio::time::sleep_until(epoch + FAULT_AT).await;
    let stats_before = client.stats();
    let injected = fault::inject(fault, &cluster, proxy.as_ref(), slot, epoch).await;
    tokio::time::sleep(SETTLE).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut failures = Vec::new();
    let mut load = LoadLog::default();
    join_into(under, &mut load, &mut failures).await;
    let injected = injected.unwrap_or_else(|why| {
        failures.push(format!("the fault could not be injected: {why}"));
        Injected::default()
    });
    println!(
        "  {:.2}s: under the fault: {} requests, {} answered, errors {:?}; {}",
        epoch.elapsed().as_secs_f64(),
        load.outcomes.len(),
        load.ok(),
        load.errors(),
        injected.what
    );
    let recovery = match fault {
        ClusterFault::None => None,
        _ => load.writes_resumed(injected.at, &affected),
    };

    let after = spawn_all(Until::Count(FINAL_REQUESTS), 1 << 24, false);
    let mut final_phase = LoadLog::default();
    join_into(after, &mut final_phase, &mut failures).await;
    println!(
        "  {:.2}s: after the fault: {} requests, {} answered",
        epoch.elapsed().as_secs_f64(),
        final_phase.outcomes.len(),
        final_phase.ok()
    );
    load.merge(final_phase);

    // Acknowledged writes a kill -9 may have lost: on the killed primary's slots, started
    // before it was dead (Redis replicates asynchronously).
    let lossy = |s: u16, started: Duration| {
        fault == ClusterFault::KillPrimary && affected(s) && started < injected.at
    };
    match cluster_load::read_back(&client, &load.incrs, seed).await {
        Ok(values) => {
            let verdict = cluster_load::verify_incrs(&load.incrs, &values, lossy);
            println!(
                "  read back {} INCRBY keys: {} stored, {} applied after an error that said maybe, {} acknowledged and lost with the killed primary",
                values.len(),
                verdict.stored,
                verdict.maybe_applied,
                verdict.lost
            );
            load.violations.extend(verdict.violations);
        }
        Err(why) => failures.push(format!("reading the INCRBY keys back failed: {why}")),
    }
    load.violations
        .extend(cluster_load::verify_reads(&load.missing_reads, lossy));

    let stats = client.stats();
    println!(
        "  writes resumed on the affected slots {} after the fault; client stats before the fault {stats_before:?}, at the end {stats:?}",
        recovery.map_or_else(
            || "never".to_owned(),
            |d| format!("{:.0} ms", d.as_secs_f64() * 1e3)
        )
    );
    failures.extend(
        fault::verify(
            fault,
            &fault::Evidence {
                injected: &injected,
                cluster: &cluster,
                client: &client,
                before: stats_before,
                after: stats,
                slot,
                load: &load,
                affected: &affected,
                recovery,
            },
        )
        .await,
    );

    // Tear down everything, then every task must be gone.
    drop(client);
    if let Some(proxy) = proxy {
        proxy.shutdown().await;
    }
    // Dropping the cluster kills its nodes and waits for them: not on a runtime thread.
    if let Err(e) = tokio::task::spawn_blocking(move || drop(cluster)).await {
        failures.push(format!("stopping the cluster failed: {e}"));
    }
    let left = tasks_left(TEARDOWN_LIMIT).await;
    if left > 0 {
        failures.push(format!(
            "{left} tokio tasks still alive {TEARDOWN_LIMIT:?} after the client, proxy and cluster were gone"
        ));
    }
    println!(
        "  {:.2}s: torn down, {left} tasks left",
        epoch.elapsed().as_secs_f64()
    );
    Ok((into_log(load, recovery), failures))
}

/// Waits for every caller and merges its log; a caller that panicked is a failure.
async fn join_into(
    handles: Vec<JoinHandle<LoadLog>>,
    load: &mut LoadLog,
    failures: &mut Vec<String>,
) {
    for handle in handles {
        match handle.await {
            Ok(caller) => load.merge(caller),
            Err(e) => failures.push(format!("a caller task failed: {e}")),
        }
    }
}

/// The matrix's log of what the callers saw.
fn into_log(load: LoadLog, recovery: Option<Duration>) -> Log {
    let mut log = Log {
        requests: load.outcomes.len() as u64,
        ok: load.ok(),
        errors: load.errors(),
        violations: load.violations,
        recovery,
        ..Log::default()
    };
    for o in &load.outcomes {
        match o.end {
            End::Ok => log.samples.push(Sample {
                start: o.started,
                latency: o.took,
            }),
            End::Failed { .. } | End::Broken => log.failed_at.push(o.started),
        }
    }
    log
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cell_name_parses_back_with_its_own_seed() {
        let faults: Vec<ClusterFault> = CELLS.iter().filter_map(|c| ClusterFault::of(c)).collect();
        assert_eq!(faults.len(), CELLS.len());
        for f in &faults {
            assert_eq!(ClusterFault::of(f.name()), Some(*f));
        }
        let seeds: std::collections::HashSet<u64> = faults.iter().map(|f| f.seed()).collect();
        assert_eq!(seeds.len(), CELLS.len());
        assert_eq!(ClusterFault::of("cluster/fire"), None);
    }

    #[test]
    fn the_timeline_fits_the_ci_budget() {
        // A 3 + 3 cluster starts in about 3 s; the failover waits are bounded by the
        // testkit. Load, settle and the final phase stay within a few seconds per cell.
        let final_phase = PACE * FINAL_REQUESTS;
        assert!(FAULT_AT + SETTLE + final_phase < Duration::from_secs(3));
        assert_eq!(FINAL_REQUESTS % 3, 0, "a whole SET, GET, INCRBY cycle");
    }
}
