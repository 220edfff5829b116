//! cluster: beamline-redis's `ClusterClient` beside the two Rust Redis Cluster clients a user
//! would pick, redis-rs's async cluster client and fred's clustered client, on the same real
//! cluster (`beamline_testkit::RedisCluster`: 3 primaries + 3 replicas of `redis-server` on
//! 127.0.0.1), in the same run.
//!
//! Every side is set up for the same work:
//!
//! | | beamline | redis-rs-cluster | fred-cluster |
//! |---|---|---|---|
//! | client | `ClusterClient::builder(seeds).timeout(1 s)`, its other defaults (1 s refresh floor, 30 s periodic refresh) | `redis::cluster::ClusterClient::builder(seeds)` `.response_timeout(1 s)` (its overall timeout too, over retries and redirects), `.get_async_connection()`; retry settings its defaults | `Builder::from_config(Config { server: ServerConfig::new_clustered(seeds) })`, `default_command_timeout` 1 s, `ReconnectPolicy::new_exponential(0, 10, 500, 2)` (no policy means no reconnect at all: a fred cluster user sets one; this one matches beamline's 10 ms doubling to 500 ms), its other defaults |
//! | request timeout | 1 s over redirects and retries | 1 s, the same | 1 s, the same |
//! | `TCP_NODELAY` | on (its default) | on (`TcpSettings::set_nodelay`) | on (`TcpConfig::nodelay`) |
//! | connections | one FIFO-multiplexed `Client` per node | one multiplexed connection per node | one connection per primary (its default) |
//! | reads | primaries only (`ReadFrom::Primary`, its default) | primaries (no `read_from_replicas`) | primaries (no replica config) |
//!
//! All three run on the bench's two-worker runtime; the six `redis-server`s are separate
//! processes on the same two cores.
//!
//! Groups:
//! - `cluster/64-callers` (requests/s): 64 tasks, each doing checked SET/GET pairs on keys
//!   of its own drawn at random (`c<caller>:<0..10000>`, so they land on every node), 100
//!   pairs per caller per round: SET must answer `OK`, GET the caller's own 32-byte value.
//!   A warm-up round per side, then 5 rounds (`BEAMLINE_CLUSTER_BENCH_ROUNDS`) with the
//!   sides taking turns in an order that rotates every round; per-round throughput as
//!   samples, median with min–max.
//! - `cluster/mget-100` (MGETs/s): one `MGET` of 100 keys, each in a slot of its own spread
//!   evenly over the 16,384 (so over all three primaries), from 16 tasks, 40 per task per
//!   round, every value checked, rounds as above. beamline splits the keys by slot, sends
//!   the parts in parallel and answers in the caller's order; redis-rs 1.8's cluster client
//!   does the same by itself (`RouteBy::MultiShard` for `MGET`), so both get the plain
//!   `MGET` command. fred is left out: its clustered client routes a command by its first
//!   key, so a cross-slot `MGET` is answered `CROSSSLOT`; fred's docs say `MGET` needs one
//!   slot and offer `fred::util::group_by_hash_slot` for the user to split the keys and
//!   send one `MGET` per slot by hand, which would measure the user's code, not fred's.
//! - `cluster/recovery-after-kill` (a markdown section, `sections/cluster.md`): under 8
//!   callers writing (7 on random keys, one probe writing a key of one chosen slot), each
//!   checking every `OK`, pausing 5 ms after a failed write (every side alike), the slot's
//!   primary is killed with SIGKILL (`RedisCluster::kill_primary`); measured from the kill
//!   to the end of the probe's first successful write that started after the kill. A fresh
//!   cluster per run, 5 runs per client (`BEAMLINE_CLUSTER_BENCH_RECOVERY_RUNS`), the sides
//!   taking turns; the median and min–max per client, and the cluster's own failover time
//!   (from the kill until every live node agrees on the new primary). A run whose probe does
//!   not write within 20 s of the kill is counted as such, not as a time.
//!
//! Not criterion (rounds over real clusters). Run alone with
//! `cargo bench -p beamline-benches --bench cluster` (about 2 minutes: 16 clusters started).
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use beamline::resp::{Command, Value};
use beamline_benches::{Sampled, Summary, selected, write_sampled, write_section};
use beamline_redis::{ClusterClient, SLOTS, key_slot};
use beamline_testkit::RedisCluster;
use bytes::Bytes;
use fred::prelude::{
    Client as FredClient, ClientLike, Config as FredConfig, KeysInterface, ReconnectPolicy,
    ServerConfig,
};
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::TcpSettings;
use tokio::runtime::Runtime;

#[path = "common/fred.rs"]
mod fred_setup;

/// Every side's request timeout (over redirects and retries).
const TIMEOUT: Duration = Duration::from_secs(1);
const CALLERS: usize = 64;
const PAIRS: usize = 100;
/// Rounds per side after the warm-up (`BEAMLINE_CLUSTER_BENCH_ROUNDS` overrides).
const ROUNDS: usize = 5;
const MGET_KEYS: usize = 100;
const MGET_CALLERS: usize = 16;
const MGETS: usize = 40;
/// Runs per side of the recovery (`BEAMLINE_CLUSTER_BENCH_RECOVERY_RUNS` overrides).
const RECOVERY_RUNS: usize = 5;
const WRITERS: usize = 8;
/// How long the recovery waits for the probe's first write after the kill.
const RECOVERY_BOUND: Duration = Duration::from_secs(20);
/// The pause after a failed write in the recovery load.
const ERROR_PAUSE: Duration = Duration::from_millis(5);
const SIDES: [Side; 3] = [Side::Beamline, Side::RedisRs, Side::Fred];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Beamline,
    RedisRs,
    Fred,
}

impl Side {
    fn function(self) -> &'static str {
        match self {
            Side::Beamline => "beamline",
            Side::RedisRs => "redis-rs-cluster",
            Side::Fred => "fred-cluster",
        }
    }
}

/// A connected cluster client, cheap to clone for each caller.
#[derive(Clone)]
enum Cluster {
    Beamline(ClusterClient),
    RedisRs(ClusterConnection),
    Fred(FredClient),
}

impl Cluster {
    async fn connect(cluster: &RedisCluster, side: Side) -> Cluster {
        let seeds: Vec<String> = cluster.addrs().iter().map(ToString::to_string).collect();
        match side {
            Side::Beamline => Cluster::Beamline(
                ClusterClient::builder(seeds)
                    .timeout(TIMEOUT)
                    .connect()
                    .await
                    .unwrap(),
            ),
            Side::RedisRs => {
                let urls = seeds.iter().map(|s| format!("redis://{s}"));
                let client = redis::cluster::ClusterClient::builder(urls)
                    .response_timeout(TIMEOUT)
                    .tcp_settings(TcpSettings::default().set_nodelay(true))
                    .build()
                    .unwrap();
                Cluster::RedisRs(client.get_async_connection().await.unwrap())
            }
            Side::Fred => {
                let hosts = cluster
                    .addrs()
                    .iter()
                    .map(|a| (a.ip().to_string(), a.port()))
                    .collect();
                let config = FredConfig {
                    server: ServerConfig::new_clustered(hosts),
                    ..FredConfig::default()
                };
                let mut builder = fred_setup::equal_work(config, TIMEOUT);
                builder.set_policy(ReconnectPolicy::new_exponential(0, 10, 500, 2));
                let client = builder.build().unwrap();
                client.init().await.unwrap();
                Cluster::Fred(client)
            }
        }
    }

    /// `SET key value`; whether it answered `OK` (any error is `false`).
    async fn set(&mut self, key: &str, value: &str) -> bool {
        match self {
            Cluster::Beamline(c) => c
                .call(Command::new("SET").arg(key).arg(value))
                .await
                .is_ok_and(|v| v == Value::ok()),
            Cluster::RedisRs(c) => redis::cmd("SET")
                .arg(key)
                .arg(value)
                .query_async::<String>(c)
                .await
                .is_ok_and(|v| v == "OK"),
            Cluster::Fred(c) => c
                .set::<String, _, _>(key, value, None, None, false)
                .await
                .is_ok_and(|v| v == "OK"),
        }
    }

    /// `GET key`'s value; panics on an error or a null (the bench only reads what it wrote).
    async fn get(&mut self, key: &str) -> Bytes {
        match self {
            Cluster::Beamline(c) => {
                let v = c.call(Command::new("GET").arg(key)).await.unwrap();
                Bytes::copy_from_slice(v.as_bytes().unwrap())
            }
            Cluster::RedisRs(c) => Bytes::from(
                redis::cmd("GET")
                    .arg(key)
                    .query_async::<Vec<u8>>(c)
                    .await
                    .unwrap(),
            ),
            Cluster::Fred(c) => c.get::<Bytes, _>(key).await.unwrap(),
        }
    }

    /// `MGET keys`, every value as bytes; panics on an error or a null.
    async fn mget(&mut self, keys: &[String]) -> Vec<Bytes> {
        match self {
            Cluster::Beamline(c) => {
                let mut mget = Command::new("MGET");
                for k in keys {
                    mget.push(k.as_str());
                }
                let Value::Array(values) = c.call(mget).await.unwrap() else {
                    panic!("MGET answered something other than an array");
                };
                values
                    .iter()
                    .map(|v| Bytes::copy_from_slice(v.as_bytes().unwrap()))
                    .collect()
            }
            Cluster::RedisRs(c) => redis::cmd("MGET")
                .arg(keys)
                .query_async::<Vec<Vec<u8>>>(c)
                .await
                .unwrap()
                .into_iter()
                .map(Bytes::from)
                .collect(),
            Cluster::Fred(_) => unreachable!("fred is not measured on MGET (see the header)"),
        }
    }

    async fn close(self) {
        if let Cluster::Fred(c) = self {
            let _ = tokio::time::timeout(Duration::from_secs(2), c.quit()).await;
        }
    }
}

/// The value caller `caller` writes in pair `pair`: 32 bytes, its own.
fn value(caller: usize, pair: usize) -> String {
    format!("{caller:>8}:{pair:>8}:{:>14}", "beamline-bench")
}

/// SplitMix64: each caller's own reproducible key sequence, no dependency.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name).map_or(default, |v| {
        v.parse::<usize>()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
            .max(2)
    })
}

fn sampled(group: &str, function: &str, metric: &'static str, samples: Vec<f64>) -> Sampled {
    Sampled {
        group: group.to_owned(),
        function: function.to_owned(),
        metric,
        samples,
        summary: Summary::Median,
        higher_is_better: true,
    }
}

/// One round of the 64 callers; requests per second.
async fn pairs_round(client: &Cluster, round: usize) -> f64 {
    let started = Instant::now();
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let mut c = client.clone();
            tokio::spawn(async move {
                let mut rng = ((round as u64) << 32) ^ caller as u64;
                for pair in 0..PAIRS {
                    let key = format!("c{caller}:{}", next(&mut rng) % 10_000);
                    let value = value(caller, pair);
                    assert!(c.set(&key, &value).await, "SET {key} answered OK");
                    assert_eq!(c.get(&key).await, value.as_bytes(), "GET {key}");
                }
            })
        })
        .collect();
    for c in callers {
        c.await.unwrap();
    }
    (2 * CALLERS * PAIRS) as f64 / started.elapsed().as_secs_f64()
}

/// 100 keys, each in a slot of its own, the slots spread evenly over all of them.
fn mget_keys() -> Vec<String> {
    (0..MGET_KEYS)
        .map(|i| {
            let lo = i * usize::from(SLOTS) / MGET_KEYS;
            let hi = (i + 1) * usize::from(SLOTS) / MGET_KEYS;
            (0..)
                .map(|n| format!("m{i}:{n}"))
                .find(|k| (lo..hi).contains(&usize::from(key_slot(k.as_bytes()))))
                .unwrap()
        })
        .collect()
}

/// One round of MGETs; MGETs per second.
async fn mget_round(client: &Cluster, keys: &Arc<Vec<String>>) -> f64 {
    let started = Instant::now();
    let callers: Vec<_> = (0..MGET_CALLERS)
        .map(|_| {
            let (mut c, keys) = (client.clone(), Arc::clone(keys));
            tokio::spawn(async move {
                for _ in 0..MGETS {
                    let values = c.mget(&keys).await;
                    assert_eq!(values.len(), keys.len(), "one value per key");
                    for (k, v) in keys.iter().zip(&values) {
                        assert_eq!(v, k.as_bytes(), "MGET's value of {k}");
                    }
                }
            })
        })
        .collect();
    for c in callers {
        c.await.unwrap();
    }
    (MGET_CALLERS * MGETS) as f64 / started.elapsed().as_secs_f64()
}

/// `cluster/64-callers` and `cluster/mget-100` on one shared cluster.
fn throughput(rt: &Runtime, pairs: bool, mget: bool) {
    let rounds = env_count("BEAMLINE_CLUSTER_BENCH_ROUNDS", ROUNDS);
    let cluster = RedisCluster::start();
    let clients: Vec<Cluster> = rt.block_on(async {
        let mut clients = Vec::new();
        for side in SIDES {
            clients.push(Cluster::connect(&cluster, side).await);
        }
        clients
    });
    let mut results = Vec::new();
    if pairs {
        let mut figures = vec![Vec::with_capacity(rounds); SIDES.len()];
        for c in &clients {
            rt.block_on(pairs_round(c, 0));
        }
        for r in 0..rounds {
            for k in 0..SIDES.len() {
                let i = (r + k) % SIDES.len();
                figures[i].push(rt.block_on(pairs_round(&clients[i], r + 1)));
            }
        }
        for (side, samples) in SIDES.iter().zip(figures) {
            println!(
                "cluster/64-callers {:<18} {samples:.0?} requests/s",
                side.function()
            );
            results.push(sampled(
                "cluster/64-callers",
                side.function(),
                "requests/s",
                samples,
            ));
        }
    }
    if mget {
        let keys = Arc::new(mget_keys());
        let sides = [Side::Beamline, Side::RedisRs];
        rt.block_on(async {
            let Cluster::Beamline(c) = &clients[0] else {
                unreachable!("the first client is beamline's");
            };
            let mut mset = Command::new("MSET");
            for k in keys.iter() {
                mset.push(k.as_str());
                mset.push(k.as_str());
            }
            assert_eq!(c.call(mset).await.unwrap(), Value::ok());
        });
        let mut figures = vec![Vec::with_capacity(rounds); sides.len()];
        for c in &clients[..sides.len()] {
            rt.block_on(mget_round(c, &keys));
        }
        for r in 0..rounds {
            for k in 0..sides.len() {
                let i = (r + k) % sides.len();
                figures[i].push(rt.block_on(mget_round(&clients[i], &keys)));
            }
        }
        for (side, samples) in sides.iter().zip(figures) {
            println!(
                "cluster/mget-100 {:<18} {samples:.0?} MGETs/s",
                side.function()
            );
            results.push(sampled(
                "cluster/mget-100",
                side.function(),
                "MGETs/s",
                samples,
            ));
        }
    }
    rt.block_on(async {
        for c in clients {
            c.close().await;
        }
    });
    drop(cluster);
    let path = write_sampled("cluster", &results).unwrap();
    println!("written to {}", path.display());
}

/// One recovery run on a fresh cluster: (time from the kill to the probe's first write,
/// the cluster's failover time, failed writes).
async fn recovery_run(side: Side, run: usize) -> (Option<Duration>, Duration, usize) {
    let cluster = Arc::new(tokio::task::block_in_place(RedisCluster::start));
    let client = Cluster::connect(&cluster, side).await;
    let probe_key = format!("{{recovery}}:{run}");
    let slot = key_slot(probe_key.as_bytes());
    let stop = Arc::new(AtomicBool::new(false));
    // The kill's instant, known once the failover is over; the probe says when it has written
    // after it.
    let killed_at = Arc::new(OnceLock::<Instant>::new());
    let recovered = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (mut c, stop) = (client.clone(), Arc::clone(&stop));
            let (killed_at, recovered) = (Arc::clone(&killed_at), Arc::clone(&recovered));
            let probe_key = probe_key.clone();
            tokio::spawn(async move {
                let mut rng = ((run as u64) << 32) ^ w as u64;
                let mut outcomes = Vec::new();
                let until = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                    let key = if w == 0 {
                        probe_key.clone()
                    } else {
                        format!("w{w}:{}", next(&mut rng) % 10_000)
                    };
                    let started = Instant::now();
                    let ok = c.set(&key, "v").await;
                    outcomes.push((started, Instant::now(), ok));
                    if !ok {
                        tokio::time::sleep(ERROR_PAUSE).await;
                    } else if w == 0 && killed_at.get().is_some_and(|at| started >= *at) {
                        recovered.store(true, Ordering::Relaxed);
                    }
                }
                outcomes
            })
        })
        .collect();
    // Every node's connection in use before the kill.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killer = Arc::clone(&cluster);
    let failover = tokio::task::spawn_blocking(move || killer.kill_primary(slot))
        .await
        .unwrap();
    let _ = killed_at.set(failover.at);
    let deadline = failover.at + RECOVERY_BOUND;
    while !recovered.load(Ordering::Relaxed) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut failed = 0;
    let mut first_write = None;
    for (w, writer) in writers.into_iter().enumerate() {
        let outcomes = writer.await.unwrap();
        failed += outcomes.iter().filter(|o| !o.2).count();
        if w == 0 {
            first_write = outcomes
                .iter()
                .find(|(started, ended, ok)| *ok && *started >= failover.at && *ended <= deadline)
                .map(|(_, ended, _)| *ended - failover.at);
        }
    }
    client.close().await;
    tokio::task::block_in_place(|| drop(cluster));
    (first_write, failover.took, failed)
}

fn median_min_max(mut v: Vec<Duration>) -> String {
    if v.is_empty() {
        return "—".into();
    }
    v.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "{:.0} ms ({:.0}–{:.0})",
        ms(v[v.len() / 2]),
        ms(v[0]),
        ms(v[v.len() - 1])
    )
}

/// `cluster/recovery-after-kill`: a markdown section.
fn recovery(rt: &Runtime) {
    let runs = env_count("BEAMLINE_CLUSTER_BENCH_RECOVERY_RUNS", RECOVERY_RUNS);
    let mut figures: Vec<(Vec<Duration>, Vec<Duration>, usize, usize)> =
        vec![(Vec::new(), Vec::new(), 0, 0); SIDES.len()];
    for run in 0..runs {
        for k in 0..SIDES.len() {
            let i = (run + k) % SIDES.len();
            let (recovered, took, failed) = rt.block_on(recovery_run(SIDES[i], run));
            println!(
                "cluster/recovery-after-kill {:<18} run {run}: first write {recovered:?}, failover {took:?}, {failed} failed writes",
                SIDES[i].function()
            );
            let f = &mut figures[i];
            match recovered {
                Some(d) => f.0.push(d),
                None => f.3 += 1,
            }
            f.1.push(took);
            f.2 += failed;
        }
    }
    let mut md = String::new();
    writeln!(md, "### cluster: recovery after kill -9 of a primary").unwrap();
    writeln!(md).unwrap();
    writeln!(
        md,
        "A fresh 3 + 3 `redis-server` cluster per run, {runs} runs per client taking turns; \
         {WRITERS} callers writing (one probe on a key of the chosen slot, the others on random \
         keys), every side with a 1 s request timeout. The slot's primary gets SIGKILL; measured \
         from the kill to the end of the probe's first successful `SET` that started after it. \
         The cluster's failover: from the kill until every live node agrees on the new primary."
    )
    .unwrap();
    writeln!(md).unwrap();
    writeln!(
        md,
        "| client | first write after the kill, median (min–max) | cluster's failover, median (min–max) | runs without a write within {} s | failed writes (all runs) |",
        RECOVERY_BOUND.as_secs()
    )
    .unwrap();
    writeln!(md, "|---|---|---|---|---|").unwrap();
    for (side, (recovered, took, failed, missing)) in SIDES.iter().zip(figures) {
        writeln!(
            md,
            "| {} | {} | {} | {missing} | {failed} |",
            side.function(),
            median_min_max(recovered),
            median_min_max(took),
        )
        .unwrap();
    }
    print!("{md}");
    write_section("cluster", &md).unwrap();
}

fn main() {
    let rt = beamline_benches::runtime();
    let functions = SIDES.map(Side::function);
    let pairs = selected("cluster/64-callers", &functions);
    let mget = selected("cluster/mget-100", &functions[..2]);
    if pairs || mget {
        throughput(&rt, pairs, mget);
    }
    if selected("cluster/recovery-after-kill", &functions) {
        recovery(&rt);
    }
}
