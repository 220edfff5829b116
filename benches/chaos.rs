//! What the chaos proxy costs when no fault is in force: the same traffic through the proxy
//! (`beamline-chaos`), through the least a proxy can be (`copy-bidirectional`: accept,
//! connect, tokio's `copy_bidirectional`) and straight to the server (`direct`), in the same
//! run.
//!
//! A proxy adds a hop (every byte crosses two connections instead of one), so it cannot beat a
//! direct connection; the goals bound how much slower it may be, so that tests routed through
//! it measure the code under test, not the proxy, and require it to keep up with the minimal
//! proxy although it checks its faults on every chunk.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use beamline_benches::runtime;
use beamline_chaos::Proxy;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An echo server on a free loopback port, serving every connection on its own task.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            socket.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let (mut rx, mut tx) = socket.split();
                let _ = tokio::io::copy(&mut rx, &mut tx).await;
            });
        }
    });
    addr
}

/// The least a TCP proxy can be, the peer a user would otherwise hand-roll: accept, connect
/// upstream, tokio's `copy_bidirectional`, no faults.
async fn minimal_proxy(upstream: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            client.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut server = connect(upstream).await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    addr
}

async fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// `iters` echo round trips of `msg` on `stream`.
async fn round_trips(stream: &mut TcpStream, msg: &[u8], iters: u64) -> Duration {
    let mut reply = vec![0u8; msg.len()];
    let start = Instant::now();
    for _ in 0..iters {
        stream.write_all(msg).await.unwrap();
        stream.read_exact(&mut reply).await.unwrap();
        black_box(&reply);
    }
    start.elapsed()
}

/// `iters` transfers of `block` echoed back, written and read concurrently.
async fn transfers(stream: &mut TcpStream, block: &[u8], iters: u64) -> Duration {
    let mut back = vec![0u8; block.len()];
    let start = Instant::now();
    for _ in 0..iters {
        let (mut rx, mut tx) = stream.split();
        let (w, r) = tokio::join!(tx.write_all(block), rx.read_exact(&mut back));
        w.unwrap();
        r.unwrap();
        black_box(&back);
    }
    start.elapsed()
}

/// Sizes a group so the whole file runs in well under a minute.
fn configure(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rate: Throughput,
    samples: usize,
    secs: u64,
) {
    group
        .throughput(rate)
        .sample_size(samples)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(secs));
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let (proxy, mut through_proxy, mut through_minimal, mut direct) = rt.block_on(async {
        let server = echo_server().await;
        let proxy = Proxy::start("127.0.0.1:0".parse().unwrap(), server)
            .await
            .unwrap();
        let through_proxy = connect(proxy.local_addr()).await;
        let through_minimal = connect(minimal_proxy(server).await).await;
        let direct = connect(server).await;
        (proxy, through_proxy, through_minimal, direct)
    });

    let msg = [7u8; 64];
    let mut group = c.benchmark_group("chaos/round_trip_64b");
    configure(&mut group, Throughput::Elements(1), 30, 4);
    group.bench_function("beamline-chaos", |b| {
        b.iter_custom(|iters| rt.block_on(round_trips(&mut through_proxy, &msg, iters)))
    });
    group.bench_function("copy-bidirectional", |b| {
        b.iter_custom(|iters| rt.block_on(round_trips(&mut through_minimal, &msg, iters)))
    });
    group.bench_function("direct", |b| {
        b.iter_custom(|iters| rt.block_on(round_trips(&mut direct, &msg, iters)))
    });
    group.finish();

    let block = vec![0x5Au8; 1 << 20];
    let mut group = c.benchmark_group("chaos/echo_1mib");
    configure(&mut group, Throughput::Bytes(block.len() as u64), 20, 5);
    group.bench_function("beamline-chaos", |b| {
        b.iter_custom(|iters| rt.block_on(transfers(&mut through_proxy, &block, iters)))
    });
    group.bench_function("copy-bidirectional", |b| {
        b.iter_custom(|iters| rt.block_on(transfers(&mut through_minimal, &block, iters)))
    });
    group.bench_function("direct", |b| {
        b.iter_custom(|iters| rt.block_on(transfers(&mut direct, &block, iters)))
    });
    group.finish();

    drop((through_proxy, through_minimal, direct));
    rt.block_on(proxy.shutdown());
}

criterion_group!(benches, bench);
criterion_main!(benches);
