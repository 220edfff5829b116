//! reconnect: what computing a backoff delay costs, per policy, beside backon (the backoff
//! redis-rs's connection manager retries with), in the same run.
//!
//! Each `reconnect/delay-*` iteration is one retry loop: build a seeded policy, then take
//! ten delays from it (throughput: 10 delays). backon has one jitter kind (`t + rand(0, t)`,
//! which can reach twice the cap), so it is the peer for every jittered kind.
//! The clock is read once, outside the measured loop, for both (backon takes no `now`).
//!
//! Equal work: both sides are pure computation on the bench's thread (no runtime, no
//! connections, no timeouts, no buffers); both build a seeded policy and sum ten delays
//! (passed through `black_box`, not checked). Only `delay-none` (exponential, no jitter) and
//! `delay-constant` compute the same formula on both sides, so only they have goals in
//! benches/goals.txt; the jittered kinds (full, equal, decorrelated, the gRPC preset's ±20%)
//! are other formulas than backon's single jitter, and their rows are shown for the cost
//! alone — tens of nanoseconds next to the sleep they compute. What matters about jitter is
//! the herd it spreads, which BENCHMARKS.md shows from `beamline_reconnect::herd`.
//! Memory: allocations per delay and the peak bytes of one loop.

use std::hint::black_box;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ConstantBuilder, ExponentialBuilder};
use beamline_benches::{memory, selected};
use beamline_reconnect::{BackoffConfig, Jitter};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const DELAYS: u64 = 10;
const MS: Duration = Duration::from_millis(1);

fn beamline_loop(config: &BackoffConfig, seed: u64, now: Instant) -> Duration {
    let Ok(mut policy) = config.build_seeded(seed) else {
        return Duration::ZERO;
    };
    let mut total = Duration::ZERO;
    for _ in 0..DELAYS {
        if let Ok(delay) = policy.next_delay(now) {
            total += delay;
        }
    }
    total
}

fn backon_loop<B: BackoffBuilder>(builder: B) -> Duration {
    builder.build().take(DELAYS as usize).sum()
}

fn backon_exponential(jitter: bool, seed: u64) -> ExponentialBuilder {
    let b = ExponentialBuilder::new()
        .with_min_delay(MS * 100)
        .with_factor(2.0)
        .with_max_delay(Duration::from_secs(10))
        .without_max_times();
    if jitter {
        b.with_jitter().with_jitter_seed(seed)
    } else {
        b
    }
}

const FUNCTIONS: [&str; 2] = ["beamline", "backon"];

/// The group `reconnect/delay-<name>`: `beamline(seed)` beside `backon(seed)`, each one
/// retry loop of [`DELAYS`] delays; then (when selected) their allocations.
fn group(
    c: &mut Criterion,
    name: &str,
    mut beamline: impl FnMut(u64) -> Duration,
    mut backon: impl FnMut(u64) -> Duration,
    memory_rows: &mut Vec<memory::Memory>,
) {
    let name = format!("reconnect/delay-{name}");
    let mut group = c.benchmark_group(&name);
    group.throughput(Throughput::Elements(DELAYS));
    let mut seed = 0u64;
    group.bench_function(FUNCTIONS[0], |b| {
        b.iter(|| {
            seed = seed.wrapping_add(1);
            beamline(seed)
        })
    });
    group.bench_function(FUNCTIONS[1], |b| {
        b.iter(|| {
            seed = seed.wrapping_add(1);
            backon(seed)
        })
    });
    group.finish();
    if selected(&name, &FUNCTIONS) {
        memory_rows.extend(memory::measure(&name, DELAYS, &FUNCTIONS, |i| {
            black_box(if i == 0 { beamline(1) } else { backon(1) });
        }));
    }
}

fn delays(c: &mut Criterion) {
    let now = Instant::now();
    let mut rows = Vec::new();
    let exponential = BackoffConfig::exponential(MS * 100, 2.0, Duration::from_secs(10));
    let kinds = [
        ("none", Jitter::None),
        ("full", Jitter::Full),
        ("equal", Jitter::Equal),
        ("decorrelated", Jitter::Decorrelated),
    ];
    for (name, jitter) in kinds {
        let config = exponential.clone().jitter(jitter);
        let with_jitter = jitter != Jitter::None;
        group(
            c,
            name,
            |seed| beamline_loop(black_box(&config), seed, now),
            |seed| backon_loop(black_box(backon_exponential(with_jitter, seed))),
            &mut rows,
        );
    }

    let grpc = BackoffConfig::grpc();
    group(
        c,
        "grpc",
        |seed| beamline_loop(black_box(&grpc), seed, now),
        |seed| {
            let builder = ExponentialBuilder::new()
                .with_min_delay(Duration::from_secs(1))
                .with_factor(1.6)
                .with_max_delay(Duration::from_secs(120))
                .without_max_times()
                .with_jitter()
                .with_jitter_seed(seed);
            backon_loop(black_box(builder))
        },
        &mut rows,
    );

    let constant = BackoffConfig::constant(MS * 500);
    group(
        c,
        "constant",
        |_| beamline_loop(black_box(&constant), 1, now),
        |_| {
            let builder = ConstantBuilder::new()
                .with_delay(MS * 500)
                .without_max_times();
            backon_loop(black_box(builder))
        },
        &mut rows,
    );
    if !rows.is_empty() {
        memory::write("reconnect", &rows).unwrap_or_else(|e| panic!("memory results: {e}"));
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = delays
}
criterion_main!(benches);
