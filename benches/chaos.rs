//! What the chaos proxy costs when no fault is in force: the same traffic through the proxy
//! (`beamline-chaos`), through the least a proxy can be (`copy-bidirectional`: accept,
//! connect, tokio's `copy_bidirectional_with_sizes`) and straight to the server (`direct`),
//! in the same run.
//!
//! A proxy adds a hop (every byte crosses two connections instead of one), so it cannot beat a
//! direct connection; the goals bound how much slower it may be, so that tests routed through
//! it measure the code under test, not the proxy, and require it to keep up with the minimal
//! proxy although it checks its faults on every chunk.
//!
//! Equal work:
//!
//! | | beamline-chaos | copy-bidirectional | direct |
//! |---|---|---|---|
//! | runtime | the shared two-worker runtime (echo server, proxies and client together) | the same | the same |
//! | connections | 1 client connection, kept across iterations; 1 upstream | the same | 1 client connection |
//! | timeouts | none | none | none |
//! | buffers | 32 KiB read buffer per direction | 32 KiB per direction (`copy_bidirectional_with_sizes`) | — |
//! | `TCP_NODELAY` | on, both hops | on, both hops | on |
//!
//! The echo server (tokio's `io::copy`, 8 KiB) is the same for all three. What is checked:
//! every echo is read back in full (`read_exact` of its length); the content is not compared.
//! Memory: allocations per round trip (64 B) and per 1 MiB transfer, and the peak bytes
//! held, counted in the whole process (proxy tasks included) by `beamline_benches::memory`.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use beamline_benches::{memory, runtime, selected};
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

/// The read buffer beamline-chaos uses per direction; the minimal proxy gets the same.
const BUFFER: usize = 32 * 1024;
/// The three paths, as criterion functions.
const FUNCTIONS: [&str; 3] = ["beamline-chaos", "copy-bidirectional", "direct"];
/// Round trips per iteration of the memory count.
const MEMORY_ROUND_TRIPS: u64 = 100;

/// The least a TCP proxy can be, the peer a user would otherwise hand-roll: accept, connect
/// upstream, tokio's `copy_bidirectional_with_sizes` with beamline-chaos's buffer size, no
/// faults.
async fn minimal_proxy(upstream: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            client.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut server = connect(upstream).await;
                let _ = tokio::io::copy_bidirectional_with_sizes(
                    &mut client,
                    &mut server,
                    BUFFER,
                    BUFFER,
                )
                .await;
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
    let (proxy, mut paths) = rt.block_on(async {
        let server = echo_server().await;
        let proxy = Proxy::start("127.0.0.1:0".parse().unwrap(), server)
            .await
            .unwrap();
        let paths = [
            connect(proxy.local_addr()).await,
            connect(minimal_proxy(server).await).await,
            connect(server).await,
        ];
        (proxy, paths)
    });

    let msg = [7u8; 64];
    let mut group = c.benchmark_group("chaos/round_trip_64b");
    configure(&mut group, Throughput::Elements(1), 30, 4);
    for (function, stream) in FUNCTIONS.iter().zip(&mut paths) {
        group.bench_function(*function, |b| {
            b.iter_custom(|iters| rt.block_on(round_trips(stream, &msg, iters)))
        });
    }
    group.finish();

    let block = vec![0x5Au8; 1 << 20];
    let mut group = c.benchmark_group("chaos/echo_1mib");
    configure(&mut group, Throughput::Bytes(block.len() as u64), 20, 5);
    for (function, stream) in FUNCTIONS.iter().zip(&mut paths) {
        group.bench_function(*function, |b| {
            b.iter_custom(|iters| rt.block_on(transfers(stream, &block, iters)))
        });
    }
    group.finish();

    let mut rows = Vec::new();
    if selected("chaos/round_trip_64b", &FUNCTIONS) {
        let ops = MEMORY_ROUND_TRIPS;
        rows.extend(memory::measure(
            "chaos/round_trip_64b",
            ops,
            &FUNCTIONS,
            |i| {
                let _ = rt.block_on(round_trips(&mut paths[i], &msg, ops));
            },
        ));
    }
    if selected("chaos/echo_1mib", &FUNCTIONS) {
        rows.extend(memory::measure("chaos/echo_1mib", 1, &FUNCTIONS, |i| {
            let _ = rt.block_on(transfers(&mut paths[i], &block, 1));
        }));
    }
    if !rows.is_empty() {
        memory::write("chaos", &rows).unwrap();
    }
    drop(paths);
    rt.block_on(proxy.shutdown());
}

criterion_group!(benches, bench);
criterion_main!(benches);
