//! Failover on real clusters (a fresh 3 + 3 cluster per test, the tests one at a time):
//! kill -9 of a primary under load from 64 callers, a manual `CLUSTER FAILOVER` under
//! load, and kill -9 of the replica that serves reads.
//!
//! Invariants checked on every request: it ends by its deadline; an `Ok` is its own reply
//! (each `INCRBY` adds a number only it uses to a key only it uses, and answers that
//! number; each `GET` reads a key whose value names it); an error is typed and says
//! whether the request may have been applied, which the key's value afterwards must not
//! contradict; no request was applied twice.

// Scenario helpers are plain functions, not #[test]s: a failed unwrap there is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use beamline_redis::{ClusterClient, ClusterError, ReadFrom, SLOTS, key_slot};
use beamline_resp::{Command, Value};
use beamline_testkit::RedisCluster;
use tokio::task::block_in_place;

/// Destructive tests, one at a time: each starts its own cluster, and the failover timing
/// is measured without the other test's cluster competing for the 2 cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Every request's deadline.
const TIMEOUT: Duration = Duration::from_secs(4);
/// What the deadline may be overshot by (a busy 2-core machine schedules late).
const SLACK: Duration = Duration::from_millis(500);
/// Callers during the manual failover.
const CALLERS_MANUAL: usize = 16;
/// Keys pre-written for the reads.
const SEEDED: u64 = 256;

#[derive(Debug)]
enum Op {
    /// `INCRBY req:<id> <id + 1>`: not idempotent, answered `id + 1`.
    Incr { id: u64 },
    /// `GET seed:<j>`: read-only, answered `v<j>`.
    Get { j: u64 },
}

#[derive(Debug)]
struct Outcome {
    op: Op,
    slot: u16,
    started: Instant,
    ended: Instant,
    result: Result<Value, ClusterError>,
}

fn seeds(cluster: &RedisCluster) -> Vec<String> {
    cluster.addrs().iter().map(ToString::to_string).collect()
}

async fn client(cluster: &RedisCluster) -> ClusterClient {
    ClusterClient::builder(seeds(cluster))
        .timeout(TIMEOUT)
        .connect()
        .await
        .expect("the cluster client starts")
}

async fn seed_reads(c: &ClusterClient) {
    let mut mset = Command::new("MSET");
    for j in 0..SEEDED {
        mset.push(format!("seed:{j}"));
        mset.push(format!("v{j}"));
    }
    assert_eq!(c.call(mset).await.unwrap(), Value::ok());
}

/// One caller: requests back to back until told to stop (at most 100,000).
async fn caller(
    c: ClusterClient,
    next: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    reads: bool,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for _ in 0..100_000 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let id = next.fetch_add(1, Ordering::Relaxed);
        let (op, key, command) = if reads && id % 2 == 1 {
            let j = (id / 2) % SEEDED;
            let key = format!("seed:{j}");
            let command = Command::new("GET").arg(&key);
            (Op::Get { j }, key, command)
        } else {
            let key = format!("req:{id}");
            let command = Command::new("INCRBY").arg(&key).arg(id + 1);
            (Op::Incr { id }, key, command)
        };
        let started = Instant::now();
        let result = c.call(command).await;
        outcomes.push(Outcome {
            op,
            slot: key_slot(key.as_bytes()),
            started,
            ended: Instant::now(),
            result,
        });
    }
    outcomes
}

/// Runs `callers` callers until `stop` is set, returning every outcome.
fn start_load(
    c: &ClusterClient,
    callers: usize,
    reads: bool,
) -> (Arc<AtomicBool>, Vec<tokio::task::JoinHandle<Vec<Outcome>>>) {
    let (next, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let tasks = (0..callers)
        .map(|_| tokio::spawn(caller(c.clone(), next.clone(), stop.clone(), reads)))
        .collect();
    (stop, tasks)
}

async fn stop_load(
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Outcome>>>,
) -> Vec<Outcome> {
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.extend(task.await.expect("a caller panicked"));
    }
    outcomes
}

/// The value of every `req:<id>` key afterwards, by id (read through the client, `MGET`
/// split by slot).
async fn read_back(c: &ClusterClient, outcomes: &[Outcome]) -> Vec<(u64, Value)> {
    let ids: Vec<u64> = outcomes
        .iter()
        .filter_map(|o| match o.op {
            Op::Incr { id } => Some(id),
            Op::Get { .. } => None,
        })
        .collect();
    let mut values = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let mut mget = Command::new("MGET");
        for id in chunk {
            mget.push(format!("req:{id}"));
        }
        let Value::Array(items) = c.call(mget).await.expect("read back") else {
            panic!("MGET answered something else than an array");
        };
        assert_eq!(items.len(), chunk.len());
        values.extend(chunk.iter().copied().zip(items));
    }
    values
}

/// The per-request invariants. `lossy(slot)`: whether an acknowledged write to `slot` may
/// have been lost (a primary killed before replicating it). Returns counts for the report.
async fn check(
    c: &ClusterClient,
    outcomes: &[Outcome],
    lossy: impl Fn(u16) -> bool,
) -> (usize, usize, usize) {
    let (mut ok, mut lost, mut timed_out) = (0, 0, 0);
    for o in outcomes {
        let took = o.ended - o.started;
        assert!(took <= TIMEOUT + SLACK, "{o:?} took {took:?}");
        match (&o.op, &o.result) {
            (Op::Incr { id }, Ok(v)) => {
                assert_eq!(
                    *v,
                    Value::Integer(*id as i64 + 1),
                    "{o:?}: not its own reply"
                );
                ok += 1;
            }
            (Op::Get { j }, Ok(v)) => {
                assert_eq!(*v, Value::bulk(format!("v{j}")), "{o:?}: not its own reply");
                ok += 1;
            }
            (Op::Get { .. }, Err(e)) => {
                assert!(
                    !matches!(e, ClusterError::ConnectionLost { .. }),
                    "a read-only request was not resent: {o:?}"
                );
                assert!(e.is_timeout(), "{o:?}");
                timed_out += 1;
            }
            (Op::Incr { .. }, Err(e)) => match e {
                ClusterError::ConnectionLost { .. } => lost += 1,
                ClusterError::Timeout { .. } => timed_out += 1,
                other => panic!("unexpected error {other:?} for {o:?}"),
            },
        }
    }
    let by_id: std::collections::HashMap<u64, &Outcome> = outcomes
        .iter()
        .filter_map(|o| match o.op {
            Op::Incr { id } => Some((id, o)),
            Op::Get { .. } => None,
        })
        .collect();
    for (id, value) in read_back(c, outcomes).await {
        let o = by_id[&id];
        let once = Value::bulk((id + 1).to_string());
        assert!(
            value == Value::Null || value == once,
            "req:{id} holds {value:?}: applied twice, or someone else's write ({o:?})"
        );
        match &o.result {
            Err(e) if !e.may_have_been_applied() => {
                assert_eq!(value, Value::Null, "{o:?} said not applied, but was");
            }
            Ok(_) if !lossy(o.slot) => assert_eq!(value, once, "{o:?} acknowledged, not stored"),
            _ => {}
        }
    }
    (ok, lost, timed_out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_primary_under_load_from_64_callers() {
    let _serial = SERIAL.lock().await;
    let cluster = Arc::new(block_in_place(RedisCluster::start));
    let c = client(&cluster).await;
    seed_reads(&c).await;
    block_in_place(|| cluster.wait_for_replication());
    let slot = key_slot(b"victim");
    let victim = cluster.primary_of(slot).to_string();
    let on_victim: Vec<bool> = (0..SLOTS)
        .map(|s| c.primary_of(s).as_deref() == Some(victim.as_str()))
        .collect();
    assert!(on_victim.iter().filter(|&&v| v).count() > 5000);

    let run = Instant::now();
    let (stop, tasks) = start_load(&c, 64, true);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let failover = {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || cluster.kill_primary(slot))
            .await
            .expect("kill_primary")
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let outcomes = stop_load(stop, tasks).await;
    let (stats, elapsed) = (c.stats(), run.elapsed());

    // Writes resume on the dead primary's slots within the cluster's failover time plus
    // 1 s, counted from the moment the primary was dead (requests started since cannot have
    // been answered by it). The client does not wait for a refresh to find the new owner: a
    // request whose primary is down asks one of its replicas, which takes the write the
    // moment it is promoted (and answers `MOVED` back to the dead primary before).
    let kill_at = failover.at;
    let resumed = outcomes
        .iter()
        .filter(|o| {
            matches!(o.op, Op::Incr { .. })
                && o.result.is_ok()
                && o.started >= kill_at
                && on_victim[usize::from(o.slot)]
        })
        .map(|o| o.ended - kill_at)
        .min()
        .expect("writes never resumed on the dead primary's slots");
    assert!(
        resumed <= failover.took + Duration::from_secs(1),
        "writes resumed {resumed:?} after the kill; the failover took {:?}",
        failover.took
    );
    let (ok, lost, timed_out) = check(&c, &outcomes, |s| on_victim[usize::from(s)]).await;

    let refreshes = stats.refreshes + stats.failed_refreshes;
    assert!(
        refreshes <= elapsed.as_secs() + 2,
        "{refreshes} refreshes in {elapsed:?}: not rate-limited"
    );
    assert!(
        !c.connected_nodes().contains(&victim),
        "the dead primary's client was not dropped: {:?}",
        c.connected_nodes()
    );
    eprintln!(
        "kill -9 {victim}: {} requests ({ok} ok, {lost} ConnectionLost, {timed_out} timed out), \
         failover {:?}, writes resumed {resumed:?} after the kill, {stats:?}",
        outcomes.len(),
        failover.took
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_failover_moves_writes_to_the_new_primary() {
    let _serial = SERIAL.lock().await;
    let cluster = Arc::new(block_in_place(RedisCluster::start));
    let c = client(&cluster).await;
    let slot = key_slot(b"manual");
    let (stop, tasks) = start_load(&c, CALLERS_MANUAL, false);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let failover = {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || cluster.failover(slot))
            .await
            .expect("failover")
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let outcomes = stop_load(stop, tasks).await;
    // A manual failover loses nothing and fails nothing: every write is answered and kept.
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.result.is_err()).collect();
    assert!(failed.is_empty(), "requests failed: {failed:?}");
    let (ok, _, _) = check(&c, &outcomes, |_| false).await;
    let after = c
        .call(Command::new("SET").arg("manual").arg("after"))
        .await
        .unwrap();
    assert_eq!(after, Value::ok());
    assert_eq!(c.primary_of(slot), Some(failover.to.to_string()));
    // The first `MOVED` to the shard's replica moves the whole shard in the map (the roles
    // swapped): only the requests already on their way to the old primary are redirected,
    // not one request per slot until the next refresh.
    let moved = c.stats().moved;
    assert!(
        (1..=2 * CALLERS_MANUAL as u64).contains(&moved),
        "{moved} MOVED answers followed: {:?}",
        c.stats()
    );
    eprintln!(
        "manual failover {} -> {} in {:?}: {ok} requests, all answered; {:?}",
        failover.from,
        failover.to,
        failover.took,
        c.stats()
    );
}

/// How many times `node` ran `GET` (`INFO commandstats`).
fn gets(cluster: &RedisCluster, node: std::net::SocketAddr) -> u64 {
    let stats = cluster.command(node, &["INFO", "commandstats"]);
    stats
        .text()
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_get:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefer_replica_reads_fall_back_to_the_primary_when_the_replica_dies() {
    let _serial = SERIAL.lock().await;
    let cluster = Arc::new(block_in_place(RedisCluster::start));
    let builder = ClusterClient::builder(seeds(&cluster)).timeout(Duration::from_secs(2));
    let prefer = builder
        .clone()
        .read_from(ReadFrom::PreferReplica)
        .connect()
        .await
        .unwrap();
    let only = builder
        .read_from(ReadFrom::Replica)
        .connect()
        .await
        .unwrap();
    let key = "read:k";
    let slot = key_slot(key.as_bytes());
    let set = prefer.call(Command::new("SET").arg(key).arg("v")).await;
    assert_eq!(set.unwrap(), Value::ok());
    let (primary, replica) = block_in_place(|| {
        cluster.wait_for_replication();
        (cluster.primary_of(slot), cluster.replicas_of(slot)[0])
    });
    let get = || Command::new("GET").arg(key);
    assert_eq!(prefer.call(get()).await.unwrap(), Value::bulk("v"));
    assert_eq!(only.call(get()).await.unwrap(), Value::bulk("v"));
    let served = block_in_place(|| (gets(&cluster, primary), gets(&cluster, replica)));
    assert_eq!(served.1, 2, "both reads were served by the replica");

    block_in_place(|| cluster.kill(replica));
    // PreferReplica: every read still succeeds, from the primary, well within its deadline.
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(prefer.call(get()).await.unwrap(), Value::bulk("v"));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    let on_primary = block_in_place(|| gets(&cluster, primary));
    assert_eq!(
        on_primary,
        served.0 + 5,
        "the primary served the fallback reads"
    );
    // Replica only: no replica left, so the read waits out its deadline, never sent.
    let err = only.call(get()).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(!err.may_have_been_applied());
}
