//! `cargo xtask demo cluster`: a real Redis Cluster loses a primary to `kill -9` under 64
//! callers of beamline-redis's `ClusterClient`, and the client finds the replica that took
//! over.
//!
//! 1. Starts a Redis Cluster of `redis-server` processes on loopback (3 primaries, 3
//!    replicas, `cluster-node-timeout` 1 s: `beamline_testkit::RedisCluster`).
//! 2. Connects one `ClusterClient` (2 s request deadline) and runs 64 callers back to back,
//!    each doing checked `SET` / `GET` / `INCRBY` on keys of its own ([`crate::cluster_load`]):
//!    every reply must be the request's own. Each caller's keys share a hash tag, so each
//!    caller works on one slot and the callers spread over the primaries: when one dies,
//!    its callers wait for the takeover while the others go on, which is what the per-node
//!    lines show. (Callers whose keys span every slot would all soon wait on the dead node,
//!    one request each, and every node's line would drop.)
//! 3. Midway, kills (SIGKILL) the primary of the slot of `{victim}`, and waits until every
//!    node agrees that its replica took over (the cluster's view of the takeover).
//! 4. Prints a line a second: requests answered per node (by the node the client's slot map
//!    names for the key's slot when the answer came), errors by kind, and the moment the
//!    client's first write on the dead primary's slots succeeded (the client's view).
//! 5. Reads every `INCRBY` key back: each holds its request's unique amount once or nothing,
//!    as the request's result said (a write the killed primary acknowledged before
//!    replicating it may be lost: Redis replicates asynchronously; those are counted).
//!
//! [`ClusterDemoReport::csv`] gives requests answered per node per 100 ms window (and
//! errors), [`ClusterDemoReport::events_csv`] the kill and the two takeover moments, and
//! [`ClusterDemoReport::summary`] says it in words.

mod tally;

pub use tally::WINDOW;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use beamline::process::panic_message;
use beamline_redis::{ClusterClient, ClusterStats, SLOTS, key_slot};
use beamline_testkit::RedisCluster;
use tokio::time::Instant;

use crate::cluster_load::{self, CallerPlan, End, IncrVerdict, LoadLog, Observer, Until};
use tally::Tally;

/// The hash tag whose slot's primary is killed.
const TAG: &str = "victim";
/// Slack beyond the client's deadline before a request counts as a hang.
const SLACK: Duration = Duration::from_secs(1);

/// How big and how long the demo is.
#[derive(Debug, Clone)]
pub struct ClusterDemoConfig {
    /// Concurrent callers, each one request at a time, back to back.
    pub callers: u16,
    /// Every request's deadline, over redirects and retries.
    pub timeout: Duration,
    /// When the primary is killed, from the start of the load.
    pub kill_at: Duration,
    /// How long the load runs.
    pub run_for: Duration,
    /// Part of every key and value.
    pub seed: u64,
    /// Print a progress line a second, and the events.
    pub live: bool,
}

impl ClusterDemoConfig {
    /// The full demo: 64 callers for 20 s, the kill at 8 s.
    pub fn full() -> ClusterDemoConfig {
        ClusterDemoConfig {
            callers: 64,
            timeout: Duration::from_secs(2),
            kill_at: Duration::from_secs(8),
            run_for: Duration::from_secs(20),
            seed: 2026,
            live: true,
        }
    }

    /// `--quick`: 8 s, the kill at 3 s (the takeover and the client's recovery take about
    /// 3 s).
    pub fn quick() -> ClusterDemoConfig {
        ClusterDemoConfig {
            kill_at: Duration::from_secs(3),
            run_for: Duration::from_secs(8),
            ..ClusterDemoConfig::full()
        }
    }
}

/// What the demo saw.
#[derive(Debug, Clone)]
pub struct ClusterDemoReport {
    /// Callers.
    pub callers: u16,
    /// Every node's address: the CSV's columns.
    pub nodes: Vec<String>,
    /// Per [`WINDOW`]: requests answered per node, then errors.
    pub windows: Vec<Vec<u64>>,
    /// Requests started.
    pub requests: u64,
    /// Requests answered with their own reply.
    pub ok: u64,
    /// Typed errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Median latency of the answered requests, in ms.
    pub p50_ms: f64,
    /// 99th percentile latency of the answered requests, in ms.
    pub p99_ms: f64,
    /// The load's length.
    pub seconds: f64,
    /// The killed primary.
    pub victim: String,
    /// How many slots it served.
    pub victim_slots: usize,
    /// The replica that took over.
    pub new_primary: String,
    /// When the killed primary was dead (reaped), from the start of the load.
    pub kill_at: Duration,
    /// From the kill until every live node agreed on the new primary.
    pub cluster_took: Duration,
    /// From the kill until the end of the client's first successful write (started after
    /// the kill) on the dead primary's slots.
    pub client_resumed: Option<Duration>,
    /// The client's counters at the end.
    pub stats: ClusterStats,
    /// The read-back of every `INCRBY`.
    pub incrs: IncrVerdict,
    /// Broken invariants (a reply not its own, an error no fault explains, a hang, an
    /// `INCRBY` applied twice): must be empty.
    pub violations: Vec<String>,
}

/// Runs the demo on the current (multi-threaded) runtime.
///
/// # Errors
/// When the cluster cannot start (`redis-server` missing: the message names the install
/// command), the client cannot connect, or the kill's failover is not seen in 30 s.
pub async fn run(config: &ClusterDemoConfig) -> Result<ClusterDemoReport, String> {
    if config.live {
        println!("starting a Redis Cluster: 3 primaries + 3 replicas (redis-server on loopback)");
    }
    let started = Instant::now();
    let cluster = Arc::new(blocking_start().await?);
    let nodes: Vec<String> = cluster.addrs().iter().map(ToString::to_string).collect();
    let client = ClusterClient::builder(nodes.clone())
        .name("cluster demo")
        .timeout(config.timeout)
        .connect()
        .await
        .map_err(|e| format!("the cluster client did not start: {e}"))?;
    let slot = key_slot(TAG.as_bytes());
    let victim = client
        .primary_of(slot)
        .ok_or_else(|| format!("the client's slot map has no primary for slot {slot}"))?;
    let on_victim: Vec<bool> = (0..SLOTS)
        .map(|s| client.primary_of(s).as_deref() == Some(victim.as_str()))
        .collect();
    let victim_slots = on_victim.iter().filter(|&&v| v).count();
    if config.live {
        println!(
            "cluster up in {:.1}s: {}; {} callers for {:?}, kill -9 of {victim} ({victim_slots} slots) at {:?}",
            started.elapsed().as_secs_f64(),
            nodes.join(" "),
            config.callers,
            config.run_for,
            config.kill_at
        );
    }

    let tally = Arc::new(Tally::new(
        nodes.clone(),
        config.run_for + config.timeout + SLACK,
    ));
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let observer: Observer = {
        let (tally, client) = (tally.clone(), client.clone());
        Arc::new(move |o| {
            let node = client.primary_of(o.slot).and_then(|n| tally.node_index(&n));
            tally.record(o, node);
        })
    };
    let callers: Vec<_> = (0..config.callers)
        .map(|caller| {
            let plan = CallerPlan {
                caller,
                seed: config.seed,
                first_seq: 0,
                tag: Some(Arc::from(format!("caller{caller}"))),
                until: Until::Flag(stop.clone()),
                pace: None,
                deadline: config.timeout + SLACK,
                errors_allowed: true,
                epoch,
                observer: Some(observer.clone()),
            };
            tokio::spawn(cluster_load::caller(client.clone(), plan))
        })
        .collect();
    drop(observer);
    let progress = config
        .live
        .then(|| tokio::spawn(progress(tally.clone(), epoch, stop.clone())));

    tokio::time::sleep_until(epoch + config.kill_at).await;
    let victim_addr: SocketAddr = victim
        .parse()
        .map_err(|e| format!("the victim's address {victim}: {e}"))?;
    // Kill first, so the moment is known before any answer after it can be counted;
    // `kill_primary` then finds the dead node still named primary (a failover takes the
    // node timeout, 1 s, at least), finds it already dead, and waits for the takeover.
    {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || cluster.kill(victim_addr))
            .await
            .map_err(|e| join_error("the kill", e))?;
    }
    let kill_at = epoch.elapsed();
    tally.killing(kill_at, on_victim.clone());
    if config.live {
        println!("  {:>5.1}s  kill -9 {victim}", kill_at.as_secs_f64());
    }
    let failover = {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || cluster.kill_primary(slot))
            .await
            .map_err(|e| join_error("the failover", e))?
    };
    if failover.from != victim_addr {
        return Err(format!(
            "the slot's primary changed before the failover was watched: {failover:?}"
        ));
    }
    let cluster_took =
        (Instant::from_std(failover.at) + failover.took).duration_since(epoch) - kill_at;
    if config.live {
        println!(
            "  {:>5.1}s  the cluster agrees: replica {} took over, {:.2}s after the kill",
            epoch.elapsed().as_secs_f64(),
            failover.to,
            cluster_took.as_secs_f64()
        );
    }

    tokio::time::sleep_until(epoch + config.run_for).await;
    stop.store(true, Ordering::Relaxed);
    let mut load = LoadLog::default();
    for caller in callers {
        load.merge(caller.await.map_err(|e| format!("a caller failed: {e}"))?);
    }
    if let Some(progress) = progress {
        let _ = progress.await;
    }
    let seconds = epoch.elapsed().as_secs_f64();
    let lossy = |s: u16, started: Duration| on_victim[usize::from(s)] && started < kill_at;
    let values = cluster_load::read_back(&client, &load.incrs, config.seed).await?;
    let incrs = cluster_load::verify_incrs(&load.incrs, &values, lossy);
    let mut violations = std::mem::take(&mut load.violations);
    violations.extend(incrs.violations.iter().cloned());
    violations.extend(cluster_load::verify_reads(&load.missing_reads, lossy));
    let client_resumed = load.writes_resumed(kill_at, |s| on_victim[usize::from(s)]);
    let mut latencies: Vec<Duration> = load
        .outcomes
        .iter()
        .filter(|o| o.end == End::Ok)
        .map(|o| o.took)
        .collect();
    latencies.sort_unstable();
    let stats = client.stats();
    drop(client);
    // Dropping the cluster kills its nodes and waits for them: not on a runtime thread.
    let _ = tokio::task::spawn_blocking(move || drop(cluster)).await;
    Ok(ClusterDemoReport {
        callers: config.callers,
        nodes,
        windows: tally.rows(),
        requests: load.outcomes.len() as u64,
        ok: load.ok(),
        errors: tally.errors(),
        p50_ms: crate::matrix::percentile_ms(&latencies, 50.0),
        p99_ms: crate::matrix::percentile_ms(&latencies, 99.0),
        seconds,
        victim,
        victim_slots,
        new_primary: failover.to.to_string(),
        kill_at,
        cluster_took,
        client_resumed,
        stats,
        incrs,
        violations,
    })
}

async fn blocking_start() -> Result<RedisCluster, String> {
    tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .map_err(|e| join_error("the cluster's start", e))
}

/// A blocking task's failure in words (the testkit panics with the nodes' logs).
fn join_error(what: &str, e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => format!("{what} failed: {}", panic_message(&*payload)),
        Err(e) => format!("{what} failed: {e}"),
    }
}

/// A line a second: answers per node over the last second, errors by kind so far, and
/// the client's first write on the dead primary's slots once it came.
async fn progress(tally: Arc<Tally>, epoch: Instant, stop: Arc<AtomicBool>) {
    let per_second = (Duration::from_secs(1).as_millis() / WINDOW.as_millis()) as usize;
    let mut told_resumed = false;
    let mut second = 1;
    loop {
        tokio::time::sleep_until(epoch + Duration::from_secs(second)).await;
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let to = second as usize * per_second;
        let counts = tally.per_node(to - per_second, to);
        let nodes: Vec<String> = tally
            .nodes
            .iter()
            .zip(&counts)
            .filter(|(_, n)| **n > 0)
            .map(|(node, n)| format!("{node} {n:>6}/s"))
            .collect();
        let errors = crate::cli::errors_line(&tally.errors());
        println!(
            "  {second:>5}s  {}  errors: {errors}",
            if nodes.is_empty() {
                "no answers".to_owned()
            } else {
                nodes.join("  ")
            }
        );
        if !told_resumed && let Some(after) = tally.first_write_after_kill() {
            told_resumed = true;
            println!(
                "          the client's first write on the dead primary's slots succeeded {:.2}s after the kill",
                after.as_secs_f64()
            );
        }
        second += 1;
    }
}

impl ClusterDemoReport {
    /// Requests answered per node per window, and errors:
    /// `window_start_ms,<node>,...,errors`.
    pub fn csv(&self) -> String {
        let mut s = String::from("window_start_ms");
        for node in &self.nodes {
            s.push(',');
            s.push_str(node);
        }
        s.push_str(",errors\n");
        // Up to the end of the load (the windows beyond only catch late answers).
        let rows = (self.seconds * 1000.0 / WINDOW.as_millis() as f64).ceil() as usize;
        for (i, row) in self.windows.iter().take(rows).enumerate() {
            let _ = write!(s, "{}", i as u128 * WINDOW.as_millis());
            for n in row {
                let _ = write!(s, ",{n}");
            }
            s.push('\n');
        }
        s
    }

    /// The moments to mark on the plot: `event,ms` from the start of the load.
    pub fn events_csv(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mut s = String::from("event,ms\n");
        let _ = writeln!(s, "kill -9 {},{:.0}", self.victim, ms(self.kill_at));
        let _ = writeln!(
            s,
            "cluster: {} took over,{:.0}",
            self.new_primary,
            ms(self.kill_at + self.cluster_took)
        );
        if let Some(resumed) = self.client_resumed {
            let _ = writeln!(
                s,
                "client: first write on its slots,{:.0}",
                ms(self.kill_at + resumed)
            );
        }
        s
    }

    /// The summary, in a few lines.
    pub fn summary(&self) -> String {
        let mut s = String::from("cluster demo summary\n");
        let errors = if self.errors.is_empty() {
            "none".to_owned()
        } else {
            self.errors
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            s,
            "  {} callers, {:.0}s: {} requests, {} answered with their own reply ({:.0}/s), p50 {:.2} ms, p99 {:.2} ms; errors: {errors}",
            self.callers,
            self.seconds,
            self.requests,
            self.ok,
            self.ok as f64 / self.seconds.max(0.001),
            self.p50_ms,
            self.p99_ms
        );
        let resumed = self.client_resumed.map_or_else(
            || "the client never wrote to those slots again".to_owned(),
            |d| {
                format!(
                    "the client's first write on those slots succeeded {:.2}s after the kill",
                    d.as_secs_f64()
                )
            },
        );
        let _ = writeln!(
            s,
            "  kill -9 of {} (primary of {} slots) at {:.2}s: the cluster agreed on its replica {} {:.2}s later; {resumed}",
            self.victim,
            self.victim_slots,
            self.kill_at.as_secs_f64(),
            self.new_primary,
            self.cluster_took.as_secs_f64()
        );
        let _ = writeln!(
            s,
            "  INCRBY read back: {} applied once and acknowledged, {} applied after an error that said \"may have been applied\", none twice; {} acknowledged writes lost with the killed primary (Redis replicates asynchronously)",
            self.incrs.stored, self.incrs.maybe_applied, self.incrs.lost
        );
        let _ = writeln!(
            s,
            "  client: {} topology refreshes, {} MOVED, {} ASK, {} idempotent requests resent after a lost connection, {} answered by the dead primary's replica once promoted",
            self.stats.refreshes,
            self.stats.moved,
            self.stats.asked,
            self.stats.resent,
            self.stats.stood_in
        );
        let _ = writeln!(
            s,
            "  broken invariants (a reply not its own, an unexplained error, a hang, a double apply): {}",
            self.violations.len()
        );
        for v in self.violations.iter().take(5) {
            let _ = writeln!(s, "    BROKEN: {v}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> ClusterDemoReport {
        ClusterDemoReport {
            callers: 64,
            nodes: vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()],
            windows: vec![vec![5, 6, 0], vec![0, 7, 2], vec![1, 1, 0]],
            requests: 21,
            ok: 19,
            errors: BTreeMap::from([("timeout".to_owned(), 2)]),
            p50_ms: 1.0,
            p99_ms: 9.0,
            seconds: 0.2,
            victim: "127.0.0.1:1".into(),
            victim_slots: 5461,
            new_primary: "127.0.0.1:3".into(),
            kill_at: Duration::from_millis(100),
            cluster_took: Duration::from_millis(2100),
            client_resumed: Some(Duration::from_millis(3000)),
            stats: ClusterStats::default(),
            incrs: IncrVerdict::default(),
            violations: vec![],
        }
    }

    #[test]
    fn the_csv_has_a_column_per_node_and_the_errors_up_to_the_end_of_the_load() {
        let csv = report().csv();
        assert_eq!(
            csv,
            "window_start_ms,127.0.0.1:1,127.0.0.1:2,errors\n0,5,6,0\n100,0,7,2\n"
        );
    }

    #[test]
    fn events_and_summary_name_the_kill_and_both_takeovers() {
        let events = report().events_csv();
        assert!(
            events.starts_with("event,ms\nkill -9 127.0.0.1:1,100\n"),
            "{events}"
        );
        assert!(
            events.contains("took over,2200") && events.contains("first write on its slots,3100")
        );
        let summary = report().summary();
        assert!(summary.contains("errors: timeout 2"), "{summary}");
        assert!(summary.contains("2.10s later") && summary.contains("3.00s after the kill"));
        assert!(summary.contains("broken invariants (a reply not its own, an unexplained error, a hang, a double apply): 0"));
    }
}
