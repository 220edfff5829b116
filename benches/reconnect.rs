//! reconnect: what computing a backoff delay costs, per policy, beside backon (the backoff
//! redis-rs's connection manager retries with), in the same run.
//!
//! Each `reconnect/delay-*` iteration is one retry loop: build a seeded policy, then take
//! ten delays from it (throughput: 10 delays). backon has one jitter kind (`t + rand(0, t)`,
//! which can reach twice the cap), so it is the peer for every jittered kind.
//! The clock is read once, outside the measured loop, for both (backon takes no `now`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ConstantBuilder, ExponentialBuilder};
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

fn delays(c: &mut Criterion) {
    let now = Instant::now();
    let exponential = BackoffConfig::exponential(MS * 100, 2.0, Duration::from_secs(10));
    let kinds = [
        ("none", Jitter::None),
        ("full", Jitter::Full),
        ("equal", Jitter::Equal),
        ("decorrelated", Jitter::Decorrelated),
    ];
    for (name, jitter) in kinds {
        let config = exponential.clone().jitter(jitter);
        let mut group = c.benchmark_group(format!("reconnect/delay-{name}"));
        group.throughput(Throughput::Elements(DELAYS));
        let mut seed = 0u64;
        group.bench_function("beamline", |b| {
            b.iter(|| {
                seed = seed.wrapping_add(1);
                beamline_loop(black_box(&config), seed, now)
            })
        });
        let with_jitter = jitter != Jitter::None;
        group.bench_function("backon", |b| {
            b.iter(|| {
                seed = seed.wrapping_add(1);
                backon_loop(black_box(backon_exponential(with_jitter, seed)))
            })
        });
        group.finish();
    }

    let mut group = c.benchmark_group("reconnect/delay-grpc");
    group.throughput(Throughput::Elements(DELAYS));
    let grpc = BackoffConfig::grpc();
    let mut seed = 0u64;
    group.bench_function("beamline", |b| {
        b.iter(|| {
            seed = seed.wrapping_add(1);
            beamline_loop(black_box(&grpc), seed, now)
        })
    });
    group.bench_function("backon", |b| {
        b.iter(|| {
            seed = seed.wrapping_add(1);
            let builder = ExponentialBuilder::new()
                .with_min_delay(Duration::from_secs(1))
                .with_factor(1.6)
                .with_max_delay(Duration::from_secs(120))
                .without_max_times()
                .with_jitter()
                .with_jitter_seed(seed);
            backon_loop(black_box(builder))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("reconnect/delay-constant");
    group.throughput(Throughput::Elements(DELAYS));
    let constant = BackoffConfig::constant(MS * 500);
    group.bench_function("beamline", |b| {
        b.iter(|| beamline_loop(black_box(&constant), 1, now))
    });
    group.bench_function("backon", |b| {
        b.iter(|| {
            let builder = ConstantBuilder::new()
                .with_delay(MS * 500)
                .without_max_times();
            backon_loop(black_box(builder))
        })
    });
    group.finish();
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
