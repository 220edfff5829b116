//! The `redis_client` example's logic against a real `redis-server`: every reply is the
//! caller's own, and across a server restart every request ends in a reply or a typed
//! failure.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use beamline_examples::redis_client::{Options, Tally, connect, run};
use beamline_testkit::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_client_gets_every_reply_right() {
    let redis = RedisServer::start();
    let client = connect(&redis.addr().to_string()).await.unwrap();
    let options = Options {
        addr: redis.addr().to_string(),
        callers: 64,
        duration: Duration::from_secs(30),
        max_pairs: 50,
    };
    let tally = Arc::new(Tally::default());
    run(&client, &options, tally.clone()).await;
    assert_eq!(tally.snapshot(), (64 * 50 * 2, 0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_client_survives_a_restart() {
    let mut redis = RedisServer::start();
    let client = connect(&redis.addr().to_string()).await.unwrap();
    let options = Options {
        addr: redis.addr().to_string(),
        callers: 16,
        duration: Duration::from_secs(30),
        max_pairs: 400,
    };
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
