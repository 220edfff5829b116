//! The Client in FIFO mode against a real `redis-server` on a free loopback port:
//! pipelined commands from many callers each get their own reply (also when some callers
//! give up mid-flight), and a server restart loses no request silently.
#![cfg(all(feature = "client", feature = "resp"))]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use beamline::WasSent;
use beamline::pool::PoolConfig;
use beamline::reconnect::{BackoffConfig, OfflinePolicy};
use beamline::resp::{Command, Value};
use beamline::{Client, ClientBuilder, ClientError, Pooling, Stack};
use beamline_testkit::RedisServer;
use beamline_testkit::Rng;

type Redis = Client<Command, Value>;

fn builder(redis: &RedisServer) -> ClientBuilder<Command, Value> {
    Client::builder(redis.addr())
        .resp()
        .name(format!("redis {}", redis.addr()))
}

fn cmd(args: &[&str]) -> Command {
    Command::from_args(args)
}

/// Waits until redis reports `n` clients blocked in BLPOP: their requests were written.
async fn until_blocked(observer: &Redis, n: usize) {
    let want = format!("blocked_clients:{n}");
    loop {
        let info = observer.call(cmd(&["INFO", "clients"])).await.unwrap();
        if info.as_str().is_some_and(|text| text.contains(&want)) {
            return;
        }
        tokio::task::yield_now().await;
    }
}

async fn many_callers_get_their_own_replies(client: Redis) {
    let tasks: Vec<_> = (0..24u64)
        .map(|task| {
            let client = client.clone();
            tokio::spawn(async move {
                for i in 0..40 {
                    let key = format!("k:{task}:{i}");
                    let value = format!("v:{task}:{i}");
                    let set = client.call(cmd(&["SET", &key, &value])).await.unwrap();
                    assert_eq!(set, Value::ok());
                    let got = client.call(cmd(&["GET", &key])).await.unwrap();
                    assert_eq!(
                        got,
                        Value::bulk(value),
                        "GET {key} got another caller's reply"
                    );
                    let n = client
                        .call(cmd(&["INCR", &format!("n:{task}")]))
                        .await
                        .unwrap();
                    assert_eq!(n, Value::Integer(i + 1));
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // Errors are replies, not failures: the request was delivered and answered.
    let err = client.call(cmd(&["NOSUCHCOMMAND"])).await.unwrap();
    assert!(err.is_error(), "{err:?}");
    let missing = client.call(cmd(&["GET", "missing"])).await.unwrap();
    assert_eq!(missing, Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_serves_many_callers() {
    let redis = RedisServer::start();
    let client = builder(&redis).connect().await.unwrap();
    many_callers_get_their_own_replies(client).await;
}

/// How many connections a pooled client has open.
fn pool_size(client: &Redis) -> usize {
    match client.stack() {
        Stack::Exclusive(pool) => pool.metrics().size,
        Stack::Shared(pool) => pool.metrics().size,
        other => panic!("not a pool: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exclusive_pool_serves_many_callers() {
    let redis = RedisServer::start();
    let pooling = Pooling::Exclusive(PoolConfig::new(4));
    let client = builder(&redis).pool(pooling).connect().await.unwrap();
    many_callers_get_their_own_replies(client.clone()).await;
    assert!((2..=4).contains(&pool_size(&client)), "{client:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_pool_serves_many_callers() {
    let redis = RedisServer::start();
    // 8 in flight per connection: 24 callers need more than one connection.
    let pooling = Pooling::Shared(PoolConfig::new(4));
    let client = builder(&redis)
        .max_in_flight(8)
        .pool(pooling)
        .connect()
        .await
        .unwrap();
    many_callers_get_their_own_replies(client.clone()).await;
    assert!((2..=4).contains(&pool_size(&client)), "{client:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_that_give_up_never_shift_replies_onto_others() {
    let redis = RedisServer::start();
    let client = builder(&redis).connect().await.unwrap();
    give_up_now_and_then(client).await;
}

/// An exclusive pool hands a connection whose last user gave up mid-request to the next
/// user: the abandoned reply must still be discarded, not read as the next user's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_that_give_up_in_an_exclusive_pool_never_shift_replies_onto_others() {
    let redis = RedisServer::start();
    let client = builder(&redis)
        .pool(Pooling::Exclusive(PoolConfig::new(4)))
        .connect()
        .await
        .unwrap();
    give_up_now_and_then(client).await;
}

/// 16 callers doing SET, ECHO, GET; one SET in five is abandoned after a few microseconds.
async fn give_up_now_and_then(client: Redis) {
    let tasks: Vec<_> = (0..16u64)
        .map(|task| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut rng = Rng::new(task + 7);
                let mut cancelled = 0;
                for i in 0..50 {
                    let key = format!("k:{task}:{i}");
                    let value = format!("v:{task}:{}", rng.next_u64());
                    let set = client.call(cmd(&["SET", &key, &value]));
                    // Some SETs are abandoned mid-flight: applied or not, their "+OK" must
                    // not land on anyone else.
                    let answered = if rng.below(5) == 0 {
                        tokio::time::timeout(Duration::from_micros(rng.below(200)), set)
                            .await
                            .ok()
                    } else {
                        Some(set.await)
                    };
                    match answered {
                        Some(reply) => assert_eq!(reply.unwrap(), Value::ok()),
                        None => cancelled += 1,
                    }
                    let echo = format!("echo:{task}:{i}");
                    let echoed = client.call(cmd(&["ECHO", &echo])).await.unwrap();
                    assert_eq!(echoed, Value::bulk(echo));
                    let got = client.call(cmd(&["GET", &key])).await.unwrap();
                    assert!(
                        got == Value::bulk(value.clone()) || got == Value::Null,
                        "GET {key} got another caller's reply: {got:?}"
                    );
                }
                cancelled
            })
        })
        .collect();
    let mut cancelled = 0;
    for task in tasks {
        cancelled += task.await.unwrap();
    }
    assert!(
        cancelled > 0,
        "no call was cancelled: the test proves nothing"
    );
}

/// Every request made across a server restart ends in its own reply (checked by payload)
/// or a typed error; none hangs, none gets a reply meant for another. Returns how many
/// requests failed.
async fn a_restart_loses_no_request_silently(client: Redis, redis: &mut RedisServer) -> usize {
    let restarted = Arc::new(AtomicBool::new(false));
    let before_stop = Arc::new(AtomicUsize::new(0));
    let after_restart = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..16u64)
        .map(|task| {
            let (client, restarted, stop) = (client.clone(), restarted.clone(), stop.clone());
            let (before_stop, after_restart) = (before_stop.clone(), after_restart.clone());
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0, 0);
                let mut i = 0u64;
                // Until the main task says stop, and at least 30 calls each; bounded anyway.
                while (i < 30 || !stop.load(Ordering::Relaxed)) && i < 20_000 {
                    let payload = format!("{task}:{i}");
                    let seen_restart = restarted.load(Ordering::Relaxed);
                    match client.call(cmd(&["ECHO", &payload])).await {
                        Ok(reply) => {
                            assert_eq!(
                                reply,
                                Value::bulk(payload),
                                "a reply reached the wrong caller"
                            );
                            ok += 1;
                            let phase = if seen_restart {
                                &after_restart
                            } else {
                                &before_stop
                            };
                            phase.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(
                            ClientError::NotSent { .. }
                            | ClientError::ConnectionLost { .. }
                            | ClientError::Disconnected { .. }
                            | ClientError::QueueFull { .. }
                            | ClientError::OfflineTimeout { .. },
                        ) => failed += 1,
                        Err(other) => panic!("unexpected error across a restart: {other:?}"),
                    }
                    i += 1;
                    tokio::task::yield_now().await;
                }
                (ok, failed)
            })
        })
        .collect();

    while before_stop.load(Ordering::Relaxed) < 100 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // A request certainly in flight when the server dies: redis holds the connection on a
    // BLPOP, so the callers' requests pile up, written and unanswered, behind it.
    let blocked = tokio::spawn({
        let client = client.clone();
        async move { client.call(cmd(&["BLPOP", "never", "0"])).await }
    });
    let observer = builder(redis).connect().await.unwrap();
    until_blocked(&observer, 1).await;
    drop(observer);
    redis.stop();
    let err = blocked.await.unwrap().unwrap_err();
    assert!(matches!(err, ClientError::ConnectionLost { .. }), "{err:?}");
    assert!(err.was_sent());
    assert!(err.to_string().contains("redis 127.0.0.1"), "{err}");
    redis.restart().unwrap();
    restarted.store(true, Ordering::Relaxed);
    while after_restart.load(Ordering::Relaxed) < 100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);

    let (mut ok, mut failed) = (0, 0);
    for task in tasks {
        let (o, f) = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("a request hung across the restart")
            .unwrap();
        ok += o;
        failed += f;
    }
    // Served before and served again after.
    assert!(ok >= 200, "{ok} ok, {failed} failed");
    // The restarted server is empty, and the client talks to it.
    let dbsize = client.call(cmd(&["DBSIZE"])).await.unwrap();
    assert_eq!(dbsize, Value::Integer(0));
    failed
}

/// The restart tests' offline queue: long enough to outlast the restart.
const QUEUE: OfflinePolicy = OfflinePolicy::Queue {
    max: 64,
    deadline: Duration::from_secs(5),
};

/// A client of `redis` that retries every 10 ms, with 8 requests in flight per connection
/// (so 16 callers also wait for slots), `offline` and `pooling`.
async fn restartable(redis: &RedisServer, offline: OfflinePolicy, pooling: Pooling) -> Redis {
    builder(redis)
        .max_in_flight(8)
        .backoff(BackoffConfig::constant(Duration::from_millis(10)))
        .offline(offline)
        .pool(pooling)
        .connect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_an_offline_queue() {
    let mut redis = RedisServer::start();
    let client = restartable(&redis, QUEUE, Pooling::Single).await;
    // The callers' requests piled up behind the BLPOP died with it.
    let failed = a_restart_loses_no_request_silently(client, &mut redis).await;
    assert!(failed > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_failing_fast() {
    let mut redis = RedisServer::start();
    let client = restartable(&redis, OfflinePolicy::FailFast, Pooling::Single).await;
    let failed = a_restart_loses_no_request_silently(client, &mut redis).await;
    assert!(failed > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_under_an_exclusive_pool() {
    let mut redis = RedisServer::start();
    let pooling = Pooling::Exclusive(PoolConfig::new(4));
    let client = restartable(&redis, QUEUE, pooling).await;
    a_restart_loses_no_request_silently(client, &mut redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_under_a_shared_pool() {
    let mut redis = RedisServer::start();
    let pooling = Pooling::Shared(PoolConfig::new(4));
    let client = restartable(&redis, OfflinePolicy::FailFast, pooling).await;
    a_restart_loses_no_request_silently(client, &mut redis).await;
}
