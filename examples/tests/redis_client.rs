//! The `redis_client` example's logic against a real `redis-server`: every reply is the
//! caller's own, and across a server restart every request ends in a reply or a typed
//! failure while the supervised connections exit and are restarted.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use beamline_examples::redis_client::{App, Options, Tally, run, start};
use beamline_testkit::RedisServer;

/// The example's application on `redis`, with options for `callers` doing `max_pairs` each.
async fn setup(redis: &RedisServer, callers: usize, max_pairs: u64) -> (App, Options) {
    let options = Options {
        addr: redis.addr().to_string(),
        callers,
        duration: Duration::from_secs(30),
        max_pairs,
        ..Options::default()
    };
    (start(&options).await.unwrap(), options)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_client_gets_every_reply_right() {
    let redis = RedisServer::start();
    let (app, options) = setup(&redis, 64, 50).await;
    let tally = Arc::new(Tally::default());
    run(&app, &options, tally.clone()).await;
    assert_eq!(tally.snapshot(), (64 * 50 * 2, 0, 0, 0));
    // The tree: four supervised connections, all running, none restarted.
    let children = app.redis.which_children().await.unwrap();
    assert_eq!(children.len(), 4);
    assert!(children.iter().all(|c| c.pid.is_some() && c.restarts == 0));
    assert_eq!(app.callers.count_children().await.unwrap().active, 0);
    app.sup.shutdown().await.unwrap();
    assert!(app.clients.iter().all(|c| c.pid().is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_client_survives_a_restart() {
    let mut redis = RedisServer::start();
    let (app, options) = setup(&redis, 16, 400).await;
    let app = Arc::new(app);
    let tally = Arc::new(Tally::default());
    let running = tokio::spawn({
        let (app, options, tally) = (app.clone(), options.clone(), tally.clone());
        async move { run(&app, &options, tally).await }
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
    // Each connection exited when redis went away and was restarted by its supervisor.
    assert!(app.restarts().await >= 4, "{}", app.restarts().await);
    app.sup.shutdown().await.unwrap();
}
