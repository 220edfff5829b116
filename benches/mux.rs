//! beamline-mux beside its peers, in the same run:
//!
//! - `mux/codec-64B`, `mux/codec-4KiB`: encode then decode 1,000 frames with beamline's
//!   `FrameCodec` and with tokio-util's `LengthDelimitedCodec`, same payloads.
//! - `mux/64-callers`: round trips of 64 concurrent callers, each doing 50 echo round trips
//!   of a 64-byte message against a loopback server started here: over one multiplexed
//!   connection (beamline), over 64 separate connections (raw tokio echo), and taking turns
//!   on one connection that cannot multiplex (raw tokio, behind a mutex).
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use beamline_mux::{Client, ClientConfig, Frame, FrameCodec, FrameKind, ServerConfig, serve_wire};
use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::Mutex;
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

const FRAMES: usize = 1_000;
const CALLERS: usize = 64;
const ROUND_TRIPS: usize = 50;
const MESSAGE: usize = 64;

fn codec_group(c: &mut Criterion, name: &str, payload_len: usize) {
    let payload = Bytes::from(vec![0xA5u8; payload_len]);
    let mut group = c.benchmark_group(name);
    group
        .throughput(Throughput::Elements(FRAMES as u64))
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::with_capacity(FRAMES * (payload_len + 16));
    group.bench_function("beamline-frame-codec", |b| {
        b.iter(|| {
            for id in 0..FRAMES as u32 {
                let frame = Frame::new(FrameKind::Request, id, payload.clone());
                codec.encode(frame, &mut buf).unwrap();
            }
            let mut n = 0;
            while let Some(frame) = codec.decode(&mut buf).unwrap() {
                n += black_box(frame).payload.len();
            }
            assert_eq!(n, FRAMES * payload_len);
        });
    });

    let mut peer = LengthDelimitedCodec::new();
    let mut buf = BytesMut::with_capacity(FRAMES * (payload_len + 16));
    group.bench_function("tokio-util-length-delimited", |b| {
        b.iter(|| {
            for _ in 0..FRAMES {
                peer.encode(payload.clone(), &mut buf).unwrap();
            }
            let mut n = 0;
            while let Some(frame) = peer.decode(&mut buf).unwrap() {
                n += black_box(frame).len();
            }
            assert_eq!(n, FRAMES * payload_len);
        });
    });
    group.finish();
}

fn codec(c: &mut Criterion) {
    codec_group(c, "mux/codec-64B", 64);
    codec_group(c, "mux/codec-4KiB", 4096);
}

async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

async fn dial(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// A beamline wire-format echo server.
async fn mux_server() -> SocketAddr {
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            stream.set_nodelay(true).unwrap();
            tokio::spawn(serve_wire(
                stream,
                &ServerConfig::new(),
                |req: Bytes| async move { Ok::<_, Bytes>(req) },
            ));
        }
    });
    addr
}

/// A raw tokio echo server for fixed-size messages: the peer's best case.
async fn raw_server() -> SocketAddr {
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            stream.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; MESSAGE];
                while stream.read_exact(&mut buf).await.is_ok() {
                    if stream.write_all(&buf).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn raw_round_trip(stream: &mut TcpStream, message: &[u8; MESSAGE]) {
    stream.write_all(message).await.unwrap();
    let mut back = [0u8; MESSAGE];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, message);
}

/// Runs `caller` on 64 tasks at once and waits for all of them.
async fn run_callers<F, Fut>(caller: F)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let tasks: Vec<_> = (0..CALLERS).map(|i| tokio::spawn(caller(i))).collect();
    for t in tasks {
        t.await.unwrap();
    }
}

fn callers(c: &mut Criterion) {
    let rt = beamline_benches::runtime();
    let mut group = c.benchmark_group("mux/64-callers");
    group
        .throughput(Throughput::Elements((CALLERS * ROUND_TRIPS) as u64))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(6));

    let client = rt.block_on(async {
        let config = ClientConfig::new().peer("bench").max_in_flight(CALLERS);
        let (client, driver) = Client::wire(dial(mux_server().await).await, &config).unwrap();
        tokio::spawn(driver);
        client
    });
    group.bench_function("beamline-mux", |b| {
        b.iter(|| {
            rt.block_on(run_callers(|i| {
                let client = client.clone();
                async move {
                    let message = Bytes::from(vec![i as u8; MESSAGE]);
                    for _ in 0..ROUND_TRIPS {
                        let back = client.call(message.clone()).await.unwrap();
                        assert_eq!(back, message);
                    }
                }
            }));
        });
    });

    let streams: Vec<Arc<Mutex<TcpStream>>> = rt.block_on(async {
        let addr = raw_server().await;
        let mut streams = Vec::new();
        for _ in 0..CALLERS {
            streams.push(Arc::new(Mutex::new(dial(addr).await)));
        }
        streams
    });
    group.bench_function("64-connections", |b| {
        b.iter(|| {
            rt.block_on(run_callers(|i| {
                let stream = streams[i].clone();
                async move {
                    let mut stream = stream.lock().await;
                    let message = [i as u8; MESSAGE];
                    for _ in 0..ROUND_TRIPS {
                        raw_round_trip(&mut stream, &message).await;
                    }
                }
            }));
        });
    });

    let shared = rt.block_on(async { Arc::new(Mutex::new(dial(raw_server().await).await)) });
    group.bench_function("1-connection-turns", |b| {
        b.iter(|| {
            rt.block_on(run_callers(|i| {
                let shared = shared.clone();
                async move {
                    let message = [i as u8; MESSAGE];
                    for _ in 0..ROUND_TRIPS {
                        raw_round_trip(&mut *shared.lock().await, &message).await;
                    }
                }
            }));
        });
    });
    group.finish();
    drop(client);
    shutdown(rt);
}

fn shutdown(rt: Runtime) {
    rt.shutdown_timeout(Duration::from_secs(1));
}

criterion_group!(benches, codec, callers);
criterion_main!(benches);
