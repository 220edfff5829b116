//! What `client.rs` and `latency.rs` share: the two clients under test, connected to the
//! same `redis-server`, and one checked SET/GET pair through each. Included by both with
//! `#[path]` (it uses the benches' dev-dependencies, which the `beamline_benches` library
//! cannot).

use std::time::{Duration, Instant};

use beamline::pool::{PoolConfig, Start};
use beamline::resp::{Command, Value};
use beamline::{Client, Pooling};
use beamline_testkit::RedisServer;
use redis::aio::MultiplexedConnection;
use tokio::runtime::Runtime;

/// The value caller `caller` writes in pair `pair`: 32 bytes, its own.
pub(crate) fn value(caller: usize, pair: usize) -> String {
    format!("{caller:>8}:{pair:>8}:{:>14}", "beamline-bench")
}

/// redis-rs's multiplexed connection to `redis`.
pub(crate) fn redis_rs(rt: &Runtime, redis: &RedisServer) -> MultiplexedConnection {
    rt.block_on(async {
        redis::Client::open(redis.url())?
            .get_multiplexed_async_connection()
            .await
    })
    .unwrap()
}

/// A FIFO (RESP) `beamline::Client` over a shared pool of 4 connections taking 16 requests
/// each, all connected before it returns.
pub(crate) fn beamline_pooled(rt: &Runtime, redis: &RedisServer) -> Client<Command, Value> {
    let pool = PoolConfig::new(4).min_idle(4).start(Start::Eager);
    rt.block_on(
        Client::builder(redis.addr())
            .resp()
            .max_in_flight(16)
            .pool(Pooling::Shared(pool))
            .connect(),
    )
    .unwrap()
}

/// A SET and a GET of the caller's own key through the beamline client, both replies
/// checked; how long each took.
pub(crate) async fn beamline_pair(
    client: &Client<Command, Value>,
    caller: usize,
    pair: usize,
) -> [Duration; 2] {
    let (key, value) = (format!("bench:{caller}"), value(caller, pair));
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
pub(crate) async fn redis_rs_pair(
    conn: &mut MultiplexedConnection,
    caller: usize,
    pair: usize,
) -> [Duration; 2] {
    let (key, value) = (format!("bench:{caller}"), value(caller, pair));
    let start = Instant::now();
    let set: String = redis::cmd("SET")
        .arg(&key)
        .arg(&value)
        .query_async(conn)
        .await
        .unwrap();
    let set_took = start.elapsed();
    assert_eq!(set, "OK");
    let start = Instant::now();
    let got: Vec<u8> = redis::cmd("GET").arg(&key).query_async(conn).await.unwrap();
    let get_took = start.elapsed();
    assert_eq!(got, value.as_bytes());
    [set_took, get_took]
}
