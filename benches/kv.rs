//! The `kv` example beside a real `redis-server`, measured by the real `redis-benchmark`:
//! `-t ping,set,get -c 50 -P 16 -q --csv`, the same number of requests against each.
//!
//! Not a criterion bench: the measurement is redis-benchmark's own requests/s. The two
//! servers take turns over a few rounds (so a noisy moment hurts both alike) and each test's
//! median is written to `target/beamline-bench/kv.json` for `cargo xtask bench`:
//!
//! | group | what |
//! |---|---|
//! | `kv/redis-benchmark-ping` | `PING` as a RESP array (`PING_MBULK`) |
//! | `kv/redis-benchmark-ping-inline` | `PING` as an inline command (`PING_INLINE`) |
//! | `kv/redis-benchmark-set` | `SET key:__rand_int__ xxx` |
//! | `kv/redis-benchmark-get` | `GET key:__rand_int__` |
//!
//! with functions `beamline-kv` (the subject) and `redis-server` (the peer). kv runs in
//! this process on a multi-thread tokio runtime with **one** worker thread: the same compute
//! as redis-server's single main thread (a separate process with persistence off), leaving
//! the other core of a 2-core machine to redis-benchmark, which drives both. (With a worker
//! per core, kv and the load generator fight over the same cores and the figure measures the
//! contention, not the server.) Each run is sized to take about 8 s (from a calibration run), at most
//! 5 million requests per test.
//!
//! Environment: `BEAMLINE_KV_BENCH_ROUNDS` (default 3) rounds; `BEAMLINE_KV_BENCH_N` fixes
//! the number of requests per test instead of calibrating.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use beamline_benches::{External, write_external};
use beamline_examples::kv::{self, KvConfig};
use beamline_testkit::RedisServer;

/// redis-benchmark's test names and the groups they are reported under.
const TESTS: [(&str, &str); 4] = [
    ("PING_INLINE", "kv/redis-benchmark-ping-inline"),
    ("PING_MBULK", "kv/redis-benchmark-ping"),
    ("SET", "kv/redis-benchmark-set"),
    ("GET", "kv/redis-benchmark-get"),
];

const SUBJECT: &str = "beamline-kv";
const PEER: &str = "redis-server";

/// The time one run (all four tests against one server) should take.
const RUN_TARGET: Duration = Duration::from_secs(8);
/// A run that takes longer than this is stopped: the bench fails rather than hang.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Requests/s per test name, from one `redis-benchmark --csv` run against `port`.
fn redis_benchmark(port: u16, requests: u64) -> BTreeMap<String, f64> {
    let mut child = match Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-t", "ping,set,get", "-c", "50", "-P", "16", "-q", "--csv"])
        .args(["-n", &requests.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("redis-benchmark not found: run `apt-get install -y redis-tools`")
        }
        Err(e) => panic!("cannot start redis-benchmark: {e}"),
    };
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            panic!("redis-benchmark against port {port} ran over {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "redis-benchmark failed: {stdout}{stderr}");
    let rates: BTreeMap<String, f64> = stdout
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(',').map(|f| f.trim_matches('"'));
            let (name, rps) = (fields.next()?, fields.next()?);
            Some((name.to_owned(), rps.parse().ok()?))
        })
        .collect();
    for (test, _) in TESTS {
        assert!(rates.contains_key(test), "no {test} in: {stdout}{stderr}");
    }
    rates
}

/// Seconds one run of `requests` per test takes at these rates.
fn run_time(rates: &BTreeMap<String, f64>, requests: u64) -> f64 {
    TESTS
        .iter()
        .map(|(test, _)| requests as f64 / rates[*test])
        .sum()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
    )
}

fn main() {
    // `cargo bench` passes `--bench`; a filter (as criterion takes it: a part of a group
    // name) that names none of this file's groups skips it.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if let Some(filter) = filter
        && !TESTS.iter().any(|(_, group)| group.contains(&filter))
    {
        return;
    }
    let rounds = env_number("BEAMLINE_KV_BENCH_ROUNDS").unwrap_or(3).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let kv = runtime
        .block_on(async { kv::start(KvConfig::new().addr("127.0.0.1:0".parse().unwrap())) })
        .unwrap();
    let redis = RedisServer::start();
    let servers = [(SUBJECT, kv.local_addr().port()), (PEER, redis.port())];

    let requests = env_number("BEAMLINE_KV_BENCH_N").unwrap_or_else(|| {
        // Calibrate (and warm both up): size runs so the slower server's takes RUN_TARGET.
        let probe = 200_000;
        let slowest = servers
            .iter()
            .map(|(_, port)| run_time(&redis_benchmark(*port, probe), probe))
            .fold(0.0, f64::max);
        let scaled = probe as f64 * RUN_TARGET.as_secs_f64() / slowest;
        ((scaled / 100_000.0).round() as u64 * 100_000).clamp(100_000, 5_000_000)
    });
    println!("kv: redis-benchmark -t ping,set,get -c 50 -P 16 -n {requests}, {rounds} rounds");

    let mut samples: BTreeMap<(&str, &str), Vec<f64>> = BTreeMap::new();
    for round in 0..rounds {
        // Alternate who goes first, so neither always runs on a machine the other warmed.
        let order: Vec<_> = if round % 2 == 0 {
            servers.iter().collect()
        } else {
            servers.iter().rev().collect()
        };
        for (function, port) in order {
            let rates = redis_benchmark(*port, requests);
            let line: Vec<String> = TESTS
                .iter()
                .map(|(test, _)| format!("{test} {:.0}", rates[*test]))
                .collect();
            println!("  round {} {function:<13} {}", round + 1, line.join(", "));
            for (test, _) in TESTS {
                samples
                    .entry((function, test))
                    .or_default()
                    .push(rates[test]);
            }
        }
    }
    let stats = kv.server().stats();
    assert_eq!((stats.panicked, stats.errored), (0, 0), "{stats:?}");
    drop(kv);
    drop(redis);

    let mut results = Vec::new();
    println!(
        "\n{:<32} {:>14} {:>14} {:>7}",
        "group (median requests/s)", SUBJECT, PEER, "ratio"
    );
    for (test, group) in TESTS {
        let subject = median(samples.get_mut(&(SUBJECT, test)).unwrap());
        let peer = median(samples.get_mut(&(PEER, test)).unwrap());
        println!(
            "{group:<32} {subject:>14.0} {peer:>14.0} {:>7.2}",
            subject / peer
        );
        for (function, amount) in [(SUBJECT, subject), (PEER, peer)] {
            results.push(External {
                group: group.to_owned(),
                function: function.to_owned(),
                metric: "requests/s",
                amount,
                higher_is_better: true,
            });
        }
    }
    let path = write_external("kv", &results).unwrap();
    println!("\nwritten to {}", path.display());
}
