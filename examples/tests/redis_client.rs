//! The `redis_client` example's logic against a real `redis-server`: every reply is the
//! caller's own, and across a server restart every request ends in a reply or a typed
//! failure.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use beamline::resp::{Command, Value};
use beamline::{Client, Stack};
use beamline_examples::redis_client::{Options, Tally, connect, run};
use beamline_testkit::RedisServer;

/// The example's client of `redis`, and options for `callers` doing `max_pairs` each.
async fn setup(
    redis: &RedisServer,
    callers: usize,
    max_pairs: u64,
) -> (Client<Command, Value>, Options) {
    let options = Options {
        addr: redis.addr().to_string(),
        callers,
        duration: Duration::from_secs(30),
        max_pairs,
        ..Options::default()
    };
    (connect(&options).await.unwrap(), options)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_client_gets_every_reply_right() {
    let redis = RedisServer::start();
    let (client, options) = setup(&redis, 64, 50).await;
    let tally = Arc::new(Tally::default());
    run(&client, &options, tally.clone()).await;
    assert_eq!(tally.snapshot(), (64 * 50 * 2, 0, 0, 0));
    // 64 callers, 32 in flight per connection: the pool needed more than one.
    let Stack::Shared(pool) = client.stack() else {
        panic!("the example's client is a shared pool: {client:?}");
    };
    assert!(pool.metrics().created >= 2, "{:?}", pool.metrics());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_client_survives_a_restart() {
    let mut redis = RedisServer::start();
    let (client, options) = setup(&redis, 16, 400).await;
    let tally = Arc::new(Tally::default());
    let running = tokio::spawn({
        let (client, options, tally) = (client.clone(), options.clone(), tally.clone());
        async move { run(&client, &options, tally).await }
    });
    while tally.ok.load(Ordering::Relaxed) < 500 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    redis.stop();
    redis.restart().unwrap();
    running.await.unwrap();
    let (ok, not_sent, maybe_sent, wrong) = tally.snapshot();
    eprintln!("{ok} ok, {not_sent} not sent, {maybe_sent} maybe sent");
    assert_eq!(wrong, 0);
    // Every request ended in a reply or a typed failure: the counts add up.
    assert_eq!(
        ok + not_sent + maybe_sent,
        tally.made.load(Ordering::Relaxed)
    );
    assert!(ok > 500, "{ok}");
}
