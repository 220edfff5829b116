//! beamline's composed Client beside redis-rs and fred, in the same run, against the same
//! `redis-server` (started here on a free loopback port), on the same connections:
//!
//! - `client/64-callers-1-connection`: 64 concurrent callers, each doing 50 SET/GET pairs
//!   (6,400 commands per iteration, every reply checked), through one connection:
//!   `beamline::Client` in FIFO mode, one redis-rs `MultiplexedConnection` (its pipelined,
//!   multiplexed client), one fred `Client` (auto-pipelined). `beamline-fifo-supervised` is
//!   the same beamline client run as a supervised process (`Client::child_spec` under a
//!   `Supervisor`): each call first reads the running incarnation from its handle, and that
//!   must cost nothing measurable beside `beamline-fifo`.
//! - `client/64-callers-pooled`: the same workload over 4 connections: a `beamline::Client`
//!   over a shared pool of 4 connections taking 16 requests each, 4 redis-rs
//!   `MultiplexedConnection`s taken in turn, a fred `Pool` of 4.
//!
//! Equal work (see `common/redis_pair.rs` for the table): the same 500 ms request timeout
//! on every client (redis-rs's default, a timer per request on every side), `TCP_NODELAY`
//! on every connection, the same connection count per row, the same two-worker runtime for
//! callers and clients, one redis-server process; every reply checked. Memory: allocations
//! per command and the peak bytes of one iteration, counted in this process (redis-server
//! is another one).
#![allow(clippy::unwrap_used)]

#[path = "common/redis_pair.rs"]
mod redis_pair;

use std::time::Duration;

use beamline_benches::{memory, runtime, selected};
use beamline_testkit::RedisServer;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use redis_pair::{Clients, Kind};

const CALLERS: usize = 64;
const PAIRS: usize = 50;
const COMMANDS: u64 = (CALLERS * PAIRS * 2) as u64;

async fn workload(clients: &Clients) {
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let mut client = clients.for_caller(caller);
            tokio::spawn(async move {
                for pair in 0..PAIRS {
                    client.pair(caller, pair).await;
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
}

fn clients(c: &mut Criterion) {
    let rt = runtime();
    let redis = RedisServer::start();
    let mut rows = Vec::new();
    for (group, kinds) in [
        (
            "client/64-callers-1-connection",
            vec![
                Kind::Beamline,
                Kind::BeamlineSupervised,
                Kind::RedisRs,
                Kind::Fred,
            ],
        ),
        (
            "client/64-callers-pooled",
            vec![Kind::BeamlinePooled, Kind::RedisRsPooled, Kind::FredPooled],
        ),
    ] {
        let functions: Vec<_> = kinds.iter().copied().map(Kind::function).collect();
        let connected: Vec<_> = kinds
            .iter()
            .map(|&kind| Clients::connect(&rt, &redis, kind))
            .collect();
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Elements(COMMANDS))
            .sample_size(20)
            .warm_up_time(Duration::from_secs(2))
            .measurement_time(Duration::from_secs(8));
        for (function, clients) in functions.iter().zip(&connected) {
            g.bench_function(*function, |b| {
                b.to_async(&rt).iter(|| workload(clients));
            });
        }
        g.finish();
        if selected(group, &functions) {
            rows.extend(memory::measure(group, COMMANDS, &functions, |side| {
                rt.block_on(workload(&connected[side]));
            }));
        }
    }
    if !rows.is_empty() {
        memory::write("client", &rows).unwrap();
    }
}

criterion_group!(benches, clients);
criterion_main!(benches);
