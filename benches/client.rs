//! beamline's composed Client beside redis-rs, in the same run, against the same
//! `redis-server` (started here on a free loopback port):
//!
//! - `client/64-callers-1-connection`: 64 concurrent callers, each doing 50 SET/GET pairs
//!   (6,400 commands per iteration, every reply checked), through one `beamline::Client`
//!   in FIFO mode over one connection, and through one redis-rs `MultiplexedConnection`
//!   (its pipelined, multiplexed client). `beamline-fifo-supervised` is the same client run
//!   as a supervised process (`Client::child_spec` under a `Supervisor`): each call first
//!   reads the running incarnation from its handle, and that must cost nothing measurable.
//! - `client/64-callers-pooled`: the same workload through a `beamline::Client` over a
//!   shared pool of 4 connections taking 16 requests each, beside the same redis-rs
//!   connection.
#![allow(clippy::unwrap_used)]

#[path = "common/redis_pair.rs"]
mod redis_pair;

use std::time::Duration;

use beamline::Client;
use beamline::process::{Strategy, Supervisor, SupervisorSpec};
use beamline::resp::{Command, Value};
use beamline_benches::runtime;
use beamline_testkit::RedisServer;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use redis::aio::MultiplexedConnection;

const CALLERS: usize = 64;
const PAIRS: usize = 50;
const COMMANDS: u64 = (CALLERS * PAIRS * 2) as u64;

async fn beamline_workload(client: &Client<Command, Value>) {
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let client = client.clone();
            tokio::spawn(async move {
                for pair in 0..PAIRS {
                    redis_pair::beamline_pair(&client, caller, pair).await;
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
}

async fn redis_rs_workload(conn: &MultiplexedConnection) {
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let mut conn = conn.clone();
            tokio::spawn(async move {
                for pair in 0..PAIRS {
                    redis_pair::redis_rs_pair(&mut conn, caller, pair).await;
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
    let redis_rs = redis_pair::redis_rs(&rt, &redis);
    let one = rt
        .block_on(Client::builder(redis.addr()).resp().connect())
        .unwrap();
    let pooled = redis_pair::beamline_pooled(&rt, &redis);
    // The same one-connection client, as a supervised process.
    let (spec, supervised) = Client::child_spec("redis", Client::builder(redis.addr()).resp());
    let _tree = rt
        .block_on(Supervisor::start(
            SupervisorSpec::new(Strategy::OneForOne).child(spec),
        ))
        .unwrap();

    for (group, id, beamline) in [
        ("client/64-callers-1-connection", "beamline-fifo", &one),
        ("client/64-callers-pooled", "beamline-fifo-pooled", &pooled),
    ] {
        let mut group = c.benchmark_group(group);
        group
            .throughput(Throughput::Elements(COMMANDS))
            .sample_size(20)
            .warm_up_time(Duration::from_secs(2))
            .measurement_time(Duration::from_secs(8));
        group.bench_function(id, |b| {
            b.to_async(&rt).iter(|| beamline_workload(beamline));
        });
        if id == "beamline-fifo" {
            group.bench_function("beamline-fifo-supervised", |b| {
                b.to_async(&rt).iter(|| beamline_workload(&supervised));
            });
        }
        group.bench_function("redis-rs-multiplexed", |b| {
            b.to_async(&rt).iter(|| redis_rs_workload(&redis_rs));
        });
        group.finish();
    }
}

criterion_group!(benches, clients);
criterion_main!(benches);
