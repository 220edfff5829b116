//! Per-request latency of beamline's composed Client beside redis-rs, against the same
//! `redis-server` (started here on a free loopback port), under the same bounded load:
//! 64 callers, each doing 250 SET/GET pairs back to back, every reply checked.
//!
//! - `beamline-fifo-pooled`: one `beamline::Client` in FIFO mode (RESP) over a shared pool
//!   of 4 connections taking 16 requests each (as in `client/64-callers-pooled`);
//! - `redis-rs-multiplexed`: one redis-rs `MultiplexedConnection`.
//!
//! The two take turns over 3 rounds (after a warm-up round each), and every request's
//! latency is kept. Not a criterion bench (a distribution, not a mean time): it writes
//! `target/beamline-bench/latency.csv` (`percentile,<function>,<function>`, in ms, which
//! `cargo xtask bench` draws as `benches/plots/latency.svg`) and the p50 and p99 as
//! external results in `target/beamline-bench/latency.json` (groups
//! `client/latency-p50-64-callers` and `client/latency-p99-64-callers`).
//!
//! Run it alone with `cargo bench -p beamline-benches --bench latency`.
#![allow(clippy::unwrap_used)]

#[path = "common/redis_pair.rs"]
mod redis_pair;

use std::fmt::Write as _;
use std::time::Duration;

use beamline_benches::{External, results_dir, write_external};
use beamline_testkit::RedisServer;

const CALLERS: usize = 64;
const PAIRS: usize = 250;
const ROUNDS: usize = 3;
const GROUPS: [&str; 2] = [
    "client/latency-p50-64-callers",
    "client/latency-p99-64-callers",
];
const SUBJECT: &str = "beamline-fifo-pooled";
const PEER: &str = "redis-rs-multiplexed";
/// The percentiles written to the CSV: dense where the tail is.
const PERCENTILES: [f64; 17] = [
    0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 97.5, 99.0, 99.5, 99.75, 99.9, 99.95, 99.975, 99.99,
    99.995, 100.0,
];

/// One round of the load through `call`; returns every request's latency.
async fn round<F, Fut>(call: F) -> Vec<Duration>
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = [Duration; 2]> + Send,
{
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(2 * PAIRS);
                for pair in 0..PAIRS {
                    latencies.extend(call(caller, pair).await);
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
    // `cargo bench` passes `--bench`; a filter that names neither group skips this file.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if let Some(filter) = filter
        && !GROUPS.iter().any(|g| g.contains(&filter))
        && !"client/latency".contains(&filter)
    {
        return;
    }
    let rt = beamline_benches::runtime();
    let redis = RedisServer::start();
    let redis_rs = redis_pair::redis_rs(&rt, &redis);
    let beamline = redis_pair::beamline_pooled(&rt, &redis);
    let run_beamline = || {
        let client = beamline.clone();
        rt.block_on(round(move |caller, pair| {
            let client = client.clone();
            async move { redis_pair::beamline_pair(&client, caller, pair).await }
        }))
    };
    let run_redis_rs = || {
        let conn = redis_rs.clone();
        rt.block_on(round(move |caller, pair| {
            let mut conn = conn.clone();
            async move { redis_pair::redis_rs_pair(&mut conn, caller, pair).await }
        }))
    };
    println!(
        "client/latency: {CALLERS} callers x {PAIRS} SET/GET pairs, {ROUNDS} rounds each, turns alternating"
    );
    // Warm both up (connections, redis-server's allocator), then measure in turns.
    run_beamline();
    run_redis_rs();
    let (mut subject, mut peer) = (Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        if r % 2 == 0 {
            subject.extend(run_beamline());
            peer.extend(run_redis_rs());
        } else {
            peer.extend(run_redis_rs());
            subject.extend(run_beamline());
        }
    }
    subject.sort_unstable();
    peer.sort_unstable();

    let mut csv = format!("percentile,{SUBJECT},{PEER}\n");
    println!("\n{:>10} {:>22} {:>22}", "percentile", SUBJECT, PEER);
    for p in PERCENTILES {
        let (s, q) = (percentile_ms(&subject, p), percentile_ms(&peer, p));
        writeln!(csv, "{p},{s:.4},{q:.4}").unwrap();
        println!("{p:>10} {s:>19.3} ms {q:>19.3} ms");
    }
    let dir = results_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let csv_path = dir.join("latency.csv");
    std::fs::write(&csv_path, csv).unwrap();

    let mut results = Vec::new();
    for (group, p) in GROUPS.into_iter().zip([50.0, 99.0]) {
        for (function, sorted) in [(SUBJECT, &subject), (PEER, &peer)] {
            results.push(External {
                group: group.to_owned(),
                function: function.to_owned(),
                metric: "ms",
                amount: percentile_ms(sorted, p),
                higher_is_better: false,
            });
        }
    }
    let json_path = write_external("latency", &results).unwrap();
    println!(
        "\nwritten to {} and {}",
        csv_path.display(),
        json_path.display()
    );
}
