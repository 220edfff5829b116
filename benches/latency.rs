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

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use beamline::pool::{PoolConfig, Start};
use beamline::resp::{Command, Value};
use beamline::{Client, Pooling};
use beamline_benches::{External, results_dir, write_external};
use beamline_testkit::RedisServer;
use redis::aio::MultiplexedConnection;

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

/// The value caller `caller` writes in pair `pair`: 32 bytes, its own.
fn value(caller: usize, pair: usize) -> String {
    format!("{caller:>8}:{pair:>8}:{:>14}", "latency-bench")
}

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

/// A SET and a GET of the caller's own key through the beamline client, checked.
async fn beamline_pair(
    client: Client<Command, Value>,
    caller: usize,
    pair: usize,
) -> [Duration; 2] {
    let (key, value) = (format!("latency:{caller}"), value(caller, pair));
    let start = Instant::now();
    let set = client.call(Command::new("SET").arg(&key).arg(&value)).await;
    let set_took = start.elapsed();
    assert_eq!(set.unwrap(), Value::ok());
    let start = Instant::now();
    let got = client.call(Command::new("GET").arg(&key)).await.unwrap();
    let get_took = start.elapsed();
    assert_eq!(got.as_bytes(), Some(value.as_bytes()));
    [set_took, get_took]
}

/// The same pair through redis-rs, checked.
async fn redis_rs_pair(
    mut conn: MultiplexedConnection,
    caller: usize,
    pair: usize,
) -> [Duration; 2] {
    let (key, value) = (format!("latency:{caller}"), value(caller, pair));
    let start = Instant::now();
    let set: String = redis::cmd("SET")
        .arg(&key)
        .arg(&value)
        .query_async(&mut conn)
        .await
        .unwrap();
    let set_took = start.elapsed();
    assert_eq!(set, "OK");
    let start = Instant::now();
    let got: Vec<u8> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let get_took = start.elapsed();
    assert_eq!(got, value.as_bytes());
    [set_took, get_took]
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let redis = RedisServer::start();
    let redis_rs = rt
        .block_on(async {
            redis::Client::open(redis.url())?
                .get_multiplexed_async_connection()
                .await
        })
        .unwrap();
    let pool = PoolConfig::new(4).min_idle(4).start(Start::Eager);
    let beamline = rt
        .block_on(
            Client::builder(redis.addr())
                .resp()
                .max_in_flight(16)
                .pool(Pooling::Shared(pool))
                .connect(),
        )
        .unwrap();
    let run_beamline = || {
        let client = beamline.clone();
        rt.block_on(round(move |caller, pair| {
            beamline_pair(client.clone(), caller, pair)
        }))
    };
    let run_redis_rs = || {
        let conn = redis_rs.clone();
        rt.block_on(round(move |caller, pair| {
            redis_rs_pair(conn.clone(), caller, pair)
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
