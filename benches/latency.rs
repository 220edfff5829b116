//! Per-request latency of beamline's composed Client beside redis-rs and fred, against the
//! same `redis-server` (started here on a free loopback port), under the same bounded load:
//! 64 callers, each doing 150 SET/GET pairs back to back per round, every reply checked.
//!
//! - `beamline-fifo-pooled`: one `beamline::Client` in FIFO mode (RESP) over a shared pool
//!   of 4 connections taking 16 requests each (as in `client/64-callers-pooled`);
//! - `redis-rs-4-multiplexed`: 4 redis-rs `MultiplexedConnection`s taken in turn;
//! - `fred-pool-4`: a fred `Pool` of 4 clients.
//!
//! Equal work as in `client.rs` (`common/redis_pair.rs`): 4 connections each, a 500 ms
//! request timeout on every client, `TCP_NODELAY` everywhere, the shared two-worker
//! runtime, every reply checked.
//!
//! The clients take turns over [`ROUNDS`] rounds (after a warm-up round each; the order
//! rotates every round so none always follows the same one). Each round gives each client
//! its p50, p99 and p99.9; the figure reported is their mean over the rounds with its 95%
//! Student-t interval, and a ratio is taken round by round (a client's round against the
//! rounds of the others that ran beside it) as a geometric mean with its t-interval. Rounds,
//! not requests, are the unit of the interval: a scheduler hiccup slows a whole stretch of
//! requests together, so requests are not independent, rounds nearly are. Written to
//! `target/beamline-bench/latency.json` (groups `client/latency-p50-64-callers`,
//! `-p99-`, `-p99.9-`); every request's latency, pooled over the rounds, goes to
//! `target/beamline-bench/latency.csv` (`percentile,<function>…`, in ms), which `cargo xtask
//! bench` draws as `benches/plots/latency.svg`.
//!
//! Not a criterion bench (a distribution, not a mean time). Run it alone with
//! `cargo bench -p beamline-benches --bench latency`.
#![allow(clippy::unwrap_used)]

// Only the pooled kinds are measured here; the single-connection ones are client.rs's.
#[allow(dead_code)]
#[path = "common/redis_pair.rs"]
mod redis_pair;

use std::fmt::Write as _;
use std::time::Duration;

use beamline_benches::{Sampled, Summary, results_dir, selected, write_sampled};
use beamline_testkit::RedisServer;
use redis_pair::{Clients, Kind};

const CALLERS: usize = 64;
const PAIRS: usize = 150;
/// Rounds per client: the per-round percentiles' t-interval has 29 degrees of freedom.
const ROUNDS: usize = 30;
const KINDS: [Kind; 3] = [Kind::BeamlinePooled, Kind::RedisRsPooled, Kind::FredPooled];
/// The reported percentiles and their groups.
const REPORTED: [(f64, &str); 3] = [
    (50.0, "client/latency-p50-64-callers"),
    (99.0, "client/latency-p99-64-callers"),
    (99.9, "client/latency-p99.9-64-callers"),
];
/// The percentiles written to the CSV: dense where the tail is.
const PERCENTILES: [f64; 17] = [
    0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 97.5, 99.0, 99.5, 99.75, 99.9, 99.95, 99.975, 99.99,
    99.995, 100.0,
];

/// One round of the load through `clients`; returns every request's latency.
async fn round(clients: Clients) -> Vec<Duration> {
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let mut client = clients.for_caller(caller);
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(2 * PAIRS);
                for pair in 0..PAIRS {
                    latencies.extend(client.pair(caller, pair).await);
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::with_capacity(CALLERS * PAIRS * 2);
    for caller in callers {
        all.extend(caller.await.unwrap());
    }
    all
}

/// The `p`-th percentile (nearest rank) of `sorted`, in ms.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1e3
}

fn main() {
    let functions = KINDS.map(Kind::function);
    if !REPORTED
        .iter()
        .any(|(_, group)| selected(group, &functions))
    {
        return;
    }
    let rt = beamline_benches::runtime();
    let redis = RedisServer::start();
    let clients = KINDS.map(|kind| Clients::connect(&rt, &redis, kind));
    println!(
        "client/latency: {CALLERS} callers x {PAIRS} SET/GET pairs, {ROUNDS} rounds per client, order rotating"
    );
    // Warm every client up (connections, redis-server's allocator), then measure in turns.
    for c in &clients {
        rt.block_on(round(c.clone()));
    }
    let n = clients.len();
    let mut all: Vec<Vec<Duration>> = vec![Vec::new(); n];
    // per_round[client][reported percentile][round]
    let mut per_round = vec![vec![Vec::with_capacity(ROUNDS); REPORTED.len()]; n];
    for r in 0..ROUNDS {
        for k in 0..n {
            let i = (r + k) % n;
            let mut latencies = rt.block_on(round(clients[i].clone()));
            latencies.sort_unstable();
            for (q, (p, _)) in REPORTED.iter().enumerate() {
                per_round[i][q].push(percentile_ms(&latencies, *p));
            }
            all[i].extend(latencies);
        }
    }
    for latencies in &mut all {
        latencies.sort_unstable();
    }

    let mut csv = format!("percentile,{}\n", functions.join(","));
    println!(
        "\n{:>10} {}",
        "percentile",
        functions.map(|f| format!("{f:>24}")).join(" ")
    );
    for p in PERCENTILES {
        let row: Vec<f64> = all.iter().map(|sorted| percentile_ms(sorted, p)).collect();
        let cells: Vec<String> = row.iter().map(|ms| format!("{ms:.4}")).collect();
        writeln!(csv, "{p},{}", cells.join(",")).unwrap();
        let shown: Vec<String> = row.iter().map(|ms| format!("{ms:>21.3} ms")).collect();
        println!("{p:>10} {}", shown.join(" "));
    }
    let dir = results_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let csv_path = dir.join("latency.csv");
    std::fs::write(&csv_path, csv).unwrap();

    let mut results = Vec::new();
    for (q, (_, group)) in REPORTED.iter().enumerate() {
        for (i, function) in functions.iter().enumerate() {
            let samples = per_round[i][q].clone();
            let mean = samples.iter().sum::<f64>() / samples.len() as f64;
            println!("{group:<34} {function:<24} mean over rounds {mean:.3} ms");
            results.push(Sampled {
                group: (*group).to_owned(),
                function: (*function).to_owned(),
                metric: "ms",
                samples,
                summary: Summary::Mean,
                higher_is_better: false,
            });
        }
    }
    let json_path = write_sampled("latency", &results).unwrap();
    println!(
        "\nwritten to {} and {}",
        csv_path.display(),
        json_path.display()
    );
}
