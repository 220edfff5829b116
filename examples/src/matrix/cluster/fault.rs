//! Injecting a cluster cell's fault, and the evidence that it happened and was survived.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use beamline::chaos::Proxy;
use beamline_redis::{ClusterClient, ClusterStats};
use beamline_testkit::{Failover, RedisCluster};
use tokio::time::Instant;

use super::{AFTER_FAILOVER, ClusterFault, SLACK, TIMEOUT, blocking};
use crate::cluster_load::{End, LoadLog, OpKind};

/// How long the partition lasts: longer than a request's deadline, so the requests that
/// reach the partitioned primary early in it must time out (with exactly the deadline, a
/// request started just after the partition began is answered by the heal, a race that
/// left a run without any evidence).
pub(super) const PARTITION_FOR: Duration = Duration::from_millis(2500);
/// How long the migrating slot stays half-moved, its keys on the target: the window of
/// `ASK`.
const ASK_WINDOW: Duration = Duration::from_millis(500);
/// Bytes a write under way when the partition began may still deliver: the partition's
/// evidence is read from this long after it began.
const PARTITION_GRACE: Duration = Duration::from_millis(100);

/// What the fault did, when.
#[derive(Debug, Default)]
pub(super) struct Injected {
    /// When it happened, from the load's epoch (the kill: once the process was reaped).
    pub(super) at: Duration,
    /// How long until the cluster settled again (every node agreeing), or the fault ended.
    pub(super) took: Duration,
    /// In words, for the log.
    pub(super) what: String,
    /// A failover's result (kill or manual).
    pub(super) failover: Option<Failover>,
    /// Where the migrated slot went.
    pub(super) migrated_to: Option<SocketAddr>,
    /// What the proxy saw while partitioned.
    pub(super) partition: Option<PartitionSeen>,
}

/// The proxy's counters across the partition.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PartitionSeen {
    /// Connections it held when the partition began.
    live: usize,
    /// Bytes it forwarded to the client from the grace on until the heal: must be 0.
    forwarded: u64,
}

/// Injects `fault` on the victim `slot` now and returns when it is over (the cluster agreed
/// on the change, or the partition healed).
pub(super) async fn inject(
    fault: ClusterFault,
    cluster: &Arc<RedisCluster>,
    proxy: Option<&Proxy>,
    slot: u16,
    epoch: Instant,
) -> Result<Injected, String> {
    let since = |at: Instant| at.duration_since(epoch);
    let failed_over = |f: Failover, how: &str| Injected {
        at: since(Instant::from_std(f.at)),
        took: f.took,
        what: format!(
            "{how}: {} -> {}, every node agreed {:.0} ms later",
            f.from,
            f.to,
            f.took.as_secs_f64() * 1e3
        ),
        failover: Some(f),
        ..Injected::default()
    };
    match fault {
        ClusterFault::None => Ok(Injected {
            at: since(Instant::now()),
            what: "no fault".into(),
            ..Injected::default()
        }),
        ClusterFault::KillPrimary => {
            let f = blocking(cluster, move |c| c.kill_primary(slot)).await?;
            Ok(failed_over(f, "kill -9 of the primary"))
        }
        ClusterFault::ManualFailover => {
            let f = blocking(cluster, move |c| c.failover(slot)).await?;
            Ok(failed_over(f, "CLUSTER FAILOVER"))
        }
        ClusterFault::MigrateSlot => {
            let at = Instant::now();
            let (migration, keys) = blocking(cluster, move |c| {
                let migration = c.begin_migration(slot);
                let keys = c.migrate_keys(&migration);
                (migration, keys)
            })
            .await?;
            let (from, to) = (migration.from, migration.to);
            tokio::time::sleep(ASK_WINDOW).await;
            let late = blocking(cluster, move |c| {
                // A write already on its way to the old owner when the keys moved.
                let late = c.migrate_keys(&migration);
                c.finish_migration(migration);
                late
            })
            .await?;
            Ok(Injected {
                at: since(at),
                took: at.elapsed(),
                what: format!(
                    "slot {slot} migrated {from} -> {to}: {} keys moved, {ASK_WINDOW:?} of ASK, then assigned",
                    keys + late
                ),
                migrated_to: Some(to),
                ..Injected::default()
            })
        }
        ClusterFault::PartitionPrimary => {
            let proxy = proxy.ok_or("the partition cell has no proxy")?;
            let at = Instant::now();
            proxy.partition();
            let live = proxy.stats().live;
            tokio::time::sleep(PARTITION_GRACE).await;
            let before = proxy.stats().downstream_bytes;
            tokio::time::sleep_until(at + PARTITION_FOR).await;
            let forwarded = proxy.stats().downstream_bytes - before;
            proxy
                .heal()
                .map_err(|e| format!("the proxy did not heal: {e}"))?;
            Ok(Injected {
                at: since(at),
                took: at.elapsed(),
                what: format!(
                    "the primary's proxy partitioned for {PARTITION_FOR:?} ({live} connections held, {forwarded} bytes forwarded meanwhile)"
                ),
                partition: Some(PartitionSeen { live, forwarded }),
                ..Injected::default()
            })
        }
    }
}

/// What [`verify`] looks at.
pub(super) struct Evidence<'a> {
    pub(super) injected: &'a Injected,
    pub(super) cluster: &'a Arc<RedisCluster>,
    pub(super) client: &'a ClusterClient,
    /// The client's counters just before the fault, and at the end.
    pub(super) before: ClusterStats,
    pub(super) after: ClusterStats,
    pub(super) slot: u16,
    pub(super) load: &'a LoadLog,
    pub(super) affected: &'a dyn Fn(u16) -> bool,
    /// From the fault to the first successful write on the affected slots.
    pub(super) recovery: Option<Duration>,
}

/// The evidence that the fault happened and that writes came back in time.
pub(super) async fn verify(fault: ClusterFault, e: &Evidence<'_>) -> Vec<String> {
    let mut failures = Vec::new();
    let injected = e.injected;
    // How long writes may take to come back: the fault's own time, then (after a
    // failover) the 1 s the client promises, or (after a partition) one request's deadline.
    let bound = match fault {
        ClusterFault::None => None,
        ClusterFault::KillPrimary | ClusterFault::ManualFailover => {
            Some(injected.took + AFTER_FAILOVER + SLACK)
        }
        ClusterFault::MigrateSlot => Some(injected.took + SLACK),
        ClusterFault::PartitionPrimary => Some(injected.took + TIMEOUT + SLACK),
    };
    if let Some(bound) = bound {
        match e.recovery {
            None => failures
                .push("writes never resumed on the affected slots before the load stopped".into()),
            Some(resumed) if resumed > bound => failures.push(format!(
                "writes resumed {resumed:?} after the fault, later than {bound:?} ({})",
                injected.what
            )),
            Some(_) => {}
        }
        let loaded = e.load.outcomes.iter().any(|o| {
            o.kind.writes() && o.end == End::Ok && o.started < injected.at && (e.affected)(o.slot)
        });
        if !loaded {
            failures.push("no write succeeded on the affected slots before the fault".into());
        }
    }
    let routed_to = e.client.primary_of(e.slot);
    match fault {
        ClusterFault::None => {
            if e.after.moved + e.after.asked > 0 {
                failures.push(format!(
                    "with no fault the client was redirected: {:?}",
                    e.after
                ));
            }
        }
        ClusterFault::KillPrimary | ClusterFault::ManualFailover => {
            let Some(f) = injected.failover else {
                failures.push("no failover happened".into());
                return failures;
            };
            if f.from == f.to {
                failures.push(format!("the slot stayed on {}", f.from));
            }
            if routed_to != Some(f.to.to_string()) {
                failures.push(format!(
                    "the client routes slot {} to {routed_to:?}, not the new primary {}",
                    e.slot, f.to
                ));
            }
            if fault == ClusterFault::KillPrimary {
                let from = f.from;
                let alive = blocking(e.cluster, move |c| c.live_addrs().contains(&from)).await;
                if alive != Ok(false) {
                    failures.push(format!("the killed primary {from} is not dead: {alive:?}"));
                }
            } else if e.after.moved == e.before.moved {
                failures.push(format!(
                    "the client followed no MOVED after the manual failover: {:?}",
                    e.after
                ));
            }
        }
        ClusterFault::MigrateSlot => {
            if e.after.asked == e.before.asked || e.after.moved == e.before.moved {
                failures.push(format!(
                    "the migration must make the client follow ASK and MOVED: before {:?}, after {:?}",
                    e.before, e.after
                ));
            }
            let to = injected.migrated_to.map(|to| to.to_string());
            if to.is_none() || routed_to != to {
                failures.push(format!(
                    "the client routes slot {} to {routed_to:?}, not where it migrated ({to:?})",
                    e.slot
                ));
            }
        }
        ClusterFault::PartitionPrimary => {
            let Some(seen) = injected.partition else {
                failures.push("no partition happened".into());
                return failures;
            };
            if seen.live == 0 || seen.forwarded > 0 {
                failures.push(format!(
                    "the proxy must hold live connections and forward nothing while partitioned: {seen:?}"
                ));
            }
            let window = injected.at..injected.at + PARTITION_FOR;
            let timed_out = e.load.outcomes.iter().any(|o| {
                matches!(
                    o.end,
                    End::Failed {
                        kind: "timeout",
                        ..
                    }
                ) && window.contains(&o.started)
                    && (e.affected)(o.slot)
            });
            if !timed_out {
                failures.push(
                    "no request to the partitioned primary timed out during the partition".into(),
                );
            }
        }
    }
    if e.load.outcomes.iter().all(|o| o.kind != OpKind::Incr) {
        failures.push("no INCRBY was sent".into());
    }
    failures
}
