//! beamline-mux beside its peers, in the same run:
//!
//! - `mux/codec-64B`, `mux/codec-4KiB`: encode then decode 1,000 frames with beamline's
//!   `FrameCodec` and with tokio-util's `LengthDelimitedCodec`, same payloads.
//! - `mux/64-callers`: round trips of 64 concurrent callers, each doing 50 echo round trips
//!   of a 64-byte message against a loopback server started here: over one multiplexed
//!   connection (beamline), over one pipelined connection written the plain way with
//!   tokio-util (`framed-id-map`: `Framed` + `LengthDelimitedCodec`, a `u32` id before each
//!   payload, a writer task draining an mpsc channel with `SinkExt::send_all`, a reader task
//!   finding each answer's `oneshot` in a `Mutex<HashMap<u32, _>>`, against a `Framed` echo
//!   server), through tarpc (its `#[tarpc::service]` echo over a length-delimited bincode
//!   transport, the server handling each request on its own task as tarpc's README does),
//!   over 64 separate connections (raw tokio echo), and taking turns on one connection that
//!   cannot multiplex (raw tokio, behind a mutex). The last two are the designs a pipelining
//!   client replaces; `framed-id-map` and `tarpc` are the ones it must beat.
//!
//! Equal work in `mux/64-callers`:
//!
//! | | beamline-mux | framed-id-map | tarpc | 64-connections | 1-connection-turns |
//! |---|---|---|---|---|---|
//! | runtime | the shared two-worker runtime, client and server together | the same | the same | the same | the same |
//! | connections | 1 | 1 | 1 | 64 | 1 |
//! | in flight | up to 64 (`max_in_flight(64)`) | unbounded (64 callers) | up to 1,000 (its default) | 1 per connection | 1 |
//! | timeouts | none | none | a 10 s deadline per request (`context::current()`; tarpc always has one) | none | none |
//! | buffers | beamline's write coalescing; `FrameCodec` (16 MiB frame limit) | `Framed`'s 8 KiB initial buffers, flushed when the channel is empty; 8 MiB frame limit; a 1024-slot channel | `Framed` + bincode (8 MiB frame limit), its default channel sizes | 64-byte reads | 64-byte reads |
//! | server | `serve_wire` (handlers concurrent within the connection) | `Framed` echo with `send_all` | `BaseChannel`, a task per request | raw read/write loop | raw read/write loop |
//! | `TCP_NODELAY` | on | on | on | on | on |
//!
//! Checked everywhere: every answer equals its caller's message. The codec groups run on the
//! bench's thread (no runtime). Memory: allocations per frame (codecs) and per round trip
//! (callers), and the peak bytes held.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use beamline_benches::memory::{self, Memory};
use beamline_benches::selected;
use beamline_mux::{Client, ClientConfig, Frame, FrameCodec, FrameKind, ServerConfig, serve_wire};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::{SinkExt, StreamExt, TryStreamExt, stream};
use tarpc::server::Channel as _;
use tarpc::tokio_serde::formats::Bincode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_util::codec::{Decoder, Encoder, Framed, LengthDelimitedCodec};

const FRAMES: usize = 1_000;
const CALLERS: usize = 64;
const ROUND_TRIPS: usize = 50;
const MESSAGE: usize = 64;

/// Allocation figures of every group, written once at the end.
static MEMORY: StdMutex<Vec<Memory>> = StdMutex::new(Vec::new());

const CODECS: [&str; 2] = ["beamline-frame-codec", "tokio-util-length-delimited"];

fn codec_group(c: &mut Criterion, name: &str, payload_len: usize, memory_rows: &mut Vec<Memory>) {
    let payload = Bytes::from(vec![0xA5u8; payload_len]);
    let mut group = c.benchmark_group(name);
    group
        .throughput(Throughput::Elements(FRAMES as u64))
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::with_capacity(FRAMES * (payload_len + 16));
    let mut beamline = || {
        for id in 0..FRAMES as u32 {
            let frame = Frame::new(FrameKind::Request, id, payload.clone());
            codec.encode(frame, &mut buf).unwrap();
        }
        let mut n = 0;
        while let Some(frame) = codec.decode(&mut buf).unwrap() {
            n += black_box(frame).payload.len();
        }
        assert_eq!(n, FRAMES * payload_len);
    };
    let mut peer_codec = LengthDelimitedCodec::new();
    let mut peer_buf = BytesMut::with_capacity(FRAMES * (payload_len + 16));
    let mut peer = || {
        for _ in 0..FRAMES {
            peer_codec.encode(payload.clone(), &mut peer_buf).unwrap();
        }
        let mut n = 0;
        while let Some(frame) = peer_codec.decode(&mut peer_buf).unwrap() {
            n += black_box(frame).len();
        }
        assert_eq!(n, FRAMES * payload_len);
    };
    group.bench_function(CODECS[0], |b| b.iter(&mut beamline));
    group.bench_function(CODECS[1], |b| b.iter(&mut peer));
    group.finish();
    if selected(name, &CODECS) {
        memory_rows.extend(memory::measure(name, FRAMES as u64, &CODECS, |side| {
            if side == 0 {
                beamline();
            } else {
                peer();
            }
        }));
    }
}

fn codec(c: &mut Criterion) {
    let mut rows = Vec::new();
    codec_group(c, "mux/codec-64B", 64, &mut rows);
    codec_group(c, "mux/codec-4KiB", 4096, &mut rows);
    MEMORY.lock().unwrap().extend(rows);
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

/// The pipelined client a user writes with tokio-util: `LengthDelimitedCodec` frames of a
/// `u32` id then the payload, one writer task, one reader task, and a map from id to the
/// caller waiting for that answer.
#[derive(Clone)]
struct FramedClient {
    next_id: Arc<AtomicU32>,
    pending: Arc<StdMutex<HashMap<u32, oneshot::Sender<Bytes>>>>,
    requests: mpsc::Sender<Bytes>,
}

impl FramedClient {
    async fn connect(addr: SocketAddr) -> FramedClient {
        let (mut sink, mut answers) =
            Framed::new(dial(addr).await, LengthDelimitedCodec::new()).split();
        let (requests, mut queued) = mpsc::channel::<Bytes>(1024);
        // `send_all` feeds every frame the channel has ready and flushes once it has none.
        tokio::spawn(async move {
            let mut frames = stream::poll_fn(move |cx| queued.poll_recv(cx)).map(Ok);
            let _ = sink.send_all(&mut frames).await;
        });
        let pending: Arc<StdMutex<HashMap<u32, oneshot::Sender<Bytes>>>> = Arc::default();
        let waiting = pending.clone();
        tokio::spawn(async move {
            while let Some(Ok(mut frame)) = answers.next().await {
                let id = frame.get_u32();
                if let Some(caller) = waiting.lock().unwrap().remove(&id) {
                    let _ = caller.send(frame.freeze());
                }
            }
        });
        FramedClient {
            next_id: Arc::default(),
            pending,
            requests,
        }
    }

    async fn call(&self, payload: &[u8]) -> Bytes {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (answer, answered) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, answer);
        let mut frame = BytesMut::with_capacity(4 + payload.len());
        frame.put_u32(id);
        frame.put_slice(payload);
        self.requests.send(frame.freeze()).await.unwrap();
        answered.await.unwrap()
    }
}

/// The `Framed` echo server for [`FramedClient`]: every frame goes back as it came.
async fn framed_server() -> SocketAddr {
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            stream.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let (mut sink, frames) = Framed::new(stream, LengthDelimitedCodec::new()).split();
                let _ = sink.send_all(&mut frames.map_ok(BytesMut::freeze)).await;
            });
        }
    });
    addr
}

/// tarpc's service: the same echo, as a user defines it.
#[tarpc::service]
trait EchoService {
    async fn echo(payload: Vec<u8>) -> Vec<u8>;
}

#[derive(Clone)]
struct TarpcEcho;

impl EchoService for TarpcEcho {
    async fn echo(self, _: tarpc::context::Context, payload: Vec<u8>) -> Vec<u8> {
        payload
    }
}

/// A length-delimited bincode transport over `stream`, as tarpc's TCP helpers make one.
fn tarpc_transport<Item, SinkItem>(
    stream: TcpStream,
) -> tarpc::serde_transport::Transport<TcpStream, Item, SinkItem, Bincode<Item, SinkItem>>
where
    Item: for<'de> tarpc::serde::Deserialize<'de>,
    SinkItem: tarpc::serde::Serialize,
{
    tarpc::serde_transport::new(
        Framed::new(stream, LengthDelimitedCodec::new()),
        Bincode::default(),
    )
}

/// tarpc's server, its requests handled concurrently (each on its own task, as its README
/// shows).
async fn tarpc_server() -> SocketAddr {
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            stream.set_nodelay(true).unwrap();
            let channel = tarpc::server::BaseChannel::with_defaults(tarpc_transport(stream));
            tokio::spawn(
                channel
                    .execute(TarpcEcho.serve())
                    .for_each(|response| async move {
                        tokio::spawn(response);
                    }),
            );
        }
    });
    addr
}

const CALLERS_SIDES: [&str; 5] = [
    "beamline-mux",
    "framed-id-map",
    "tarpc",
    "64-connections",
    "1-connection-turns",
];

/// The four ways to serve 64 callers, connected once.
struct Callers {
    mux: Client<Bytes, Bytes>,
    framed: FramedClient,
    tarpc: EchoServiceClient,
    streams: Vec<Arc<Mutex<TcpStream>>>,
    shared: Arc<Mutex<TcpStream>>,
}

impl Callers {
    async fn connect() -> Callers {
        let config = ClientConfig::new().peer("bench").max_in_flight(CALLERS);
        let (mux, driver) = Client::wire(dial(mux_server().await).await, &config).unwrap();
        tokio::spawn(driver);
        let framed = FramedClient::connect(framed_server().await).await;
        let transport = tarpc_transport(dial(tarpc_server().await).await);
        let tarpc = EchoServiceClient::new(tarpc::client::Config::default(), transport).spawn();
        let addr = raw_server().await;
        let mut streams = Vec::new();
        for _ in 0..CALLERS {
            streams.push(Arc::new(Mutex::new(dial(addr).await)));
        }
        let shared = Arc::new(Mutex::new(dial(raw_server().await).await));
        Callers {
            mux,
            framed,
            tarpc,
            streams,
            shared,
        }
    }

    /// One iteration of side `side`: 64 callers × [`ROUND_TRIPS`] checked round trips.
    async fn run(&self, side: usize) {
        match side {
            0 => {
                run_callers(|i| {
                    let client = self.mux.clone();
                    async move {
                        let message = Bytes::from(vec![i as u8; MESSAGE]);
                        for _ in 0..ROUND_TRIPS {
                            let back = client.call(message.clone()).await.unwrap();
                            assert_eq!(back, message);
                        }
                    }
                })
                .await
            }
            1 => {
                run_callers(|i| {
                    let client = self.framed.clone();
                    async move {
                        let message = [i as u8; MESSAGE];
                        for _ in 0..ROUND_TRIPS {
                            let back = client.call(&message).await;
                            assert_eq!(&back[..], &message[..]);
                        }
                    }
                })
                .await
            }
            2 => {
                run_callers(|i| {
                    let client = self.tarpc.clone();
                    async move {
                        let message = vec![i as u8; MESSAGE];
                        for _ in 0..ROUND_TRIPS {
                            let context = tarpc::context::current();
                            let back = client.echo(context, message.clone()).await.unwrap();
                            assert_eq!(back, message);
                        }
                    }
                })
                .await
            }
            3 => {
                run_callers(|i| {
                    let stream = self.streams[i].clone();
                    async move {
                        let mut stream = stream.lock().await;
                        let message = [i as u8; MESSAGE];
                        for _ in 0..ROUND_TRIPS {
                            raw_round_trip(&mut stream, &message).await;
                        }
                    }
                })
                .await
            }
            _ => {
                run_callers(|i| {
                    let shared = self.shared.clone();
                    async move {
                        let message = [i as u8; MESSAGE];
                        for _ in 0..ROUND_TRIPS {
                            raw_round_trip(&mut *shared.lock().await, &message).await;
                        }
                    }
                })
                .await
            }
        }
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
    let sides = rt.block_on(Callers::connect());
    for (side, function) in CALLERS_SIDES.iter().enumerate() {
        group.bench_function(*function, |b| b.iter(|| rt.block_on(sides.run(side))));
    }
    group.finish();
    if selected("mux/64-callers", &CALLERS_SIDES) {
        let ops = (CALLERS * ROUND_TRIPS) as u64;
        let rows = memory::measure("mux/64-callers", ops, &CALLERS_SIDES, |side| {
            rt.block_on(sides.run(side));
        });
        MEMORY.lock().unwrap().extend(rows);
    }
    drop(sides);
    shutdown(rt);
}

/// Writes the allocation figures the groups above collected.
fn write_memory(_: &mut Criterion) {
    let rows = std::mem::take(&mut *MEMORY.lock().unwrap());
    if !rows.is_empty() {
        memory::write("mux", &rows).unwrap();
    }
}

fn shutdown(rt: Runtime) {
    rt.shutdown_timeout(Duration::from_secs(1));
}

criterion_group!(benches, codec, callers, write_memory);
criterion_main!(benches);
