//! The client's FIFO defaults against a real `redis-server`: a reply that never comes costs
//! one connection, not the client. `BLPOP k 0` blocks its connection for good; once its
//! caller timed out, every later reply would queue behind it for ever. After the abandon
//! timeout (twice the request timeout by default) the connection fails and the client
//! reconnects, so later calls on the same `Client` succeed again.
#![cfg(all(feature = "client", feature = "resp"))]
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use beamline::reconnect::{BackoffConfig, OfflinePolicy};
use beamline::resp::{Command, Value};
use beamline::{Client, ClientError, Pooling};
use beamline_testkit::RedisServer;

fn cmd(args: &[&str]) -> Command {
    Command::from_args(args)
}

/// What may happen to a call made while the connection is wedged or being replaced: its
/// own timeout behind the missing reply, the connection failing under it, or the offline
/// queue's deadline. Anything else is a bug.
fn wedge_error(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Timeout { .. }
            | ClientError::ConnectionLost { .. }
            | ClientError::NotSent { .. }
            | ClientError::OfflineTimeout { .. }
    )
}

async fn heals_after_an_abandoned_blpop(pooling: Pooling) {
    let redis = RedisServer::start();
    let timeout = Duration::from_millis(200);
    let backoff_cap = Duration::from_millis(100);
    let client = Client::builder(redis.addr())
        .resp()
        .name(format!("redis {}", redis.addr()))
        .timeout(timeout)
        .backoff(BackoffConfig::exponential(
            Duration::from_millis(10),
            2.0,
            backoff_cap,
        ))
        .offline(OfflinePolicy::Queue {
            max: 16,
            deadline: Duration::from_secs(1),
        })
        .pool(pooling)
        .connect()
        .await
        .unwrap();
    let started = Instant::now();
    let err = client.call(cmd(&["BLPOP", "k", "0"])).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Timeout { sent: true, .. }),
        "{err}"
    );
    // Abandoned at `timeout`; the connection fails `2 * timeout` later, and one reconnect
    // (at most one backoff delay) brings calls back.
    let healed_by = timeout + 2 * timeout + backoff_cap;
    let slack = Duration::from_millis(500);
    let pong = loop {
        match client.call(cmd(&["PING"])).await {
            Ok(pong) => break pong,
            Err(e) => assert!(wedge_error(&e), "{e}"),
        }
        assert!(
            started.elapsed() < healed_by + slack,
            "still failing {:?} after the BLPOP",
            started.elapsed()
        );
    };
    assert_eq!(pong, Value::simple("PONG"));
    assert!(
        started.elapsed() < healed_by + slack,
        "{:?}",
        started.elapsed()
    );
    client.call(cmd(&["SET", "after", "heal"])).await.unwrap();
    assert_eq!(
        client.call(cmd(&["GET", "after"])).await.unwrap(),
        Value::bulk("heal")
    );
}

#[tokio::test]
async fn an_abandoned_blpop_costs_one_reconnect_not_the_client() {
    heals_after_an_abandoned_blpop(Pooling::Single).await;
}

#[tokio::test]
async fn an_abandoned_blpop_costs_a_pooled_client_one_connection() {
    let pool = beamline::pool::PoolConfig::new(1).checkout_timeout(Some(Duration::from_secs(1)));
    heals_after_an_abandoned_blpop(Pooling::Shared(pool)).await;
}

#[tokio::test]
async fn the_builder_takes_an_abandon_timeout_and_refuses_zero() {
    let redis = RedisServer::start();
    let err = Client::builder(redis.addr())
        .resp()
        .abandon_timeout(Duration::ZERO)
        .connect()
        .await
        .unwrap_err();
    let chain = beamline_testkit::error_chain(&err).join(": ");
    assert!(chain.contains("abandon timeout"), "{chain}");
    // Explicit, and shorter than the default: the wedge is found sooner.
    let client = Client::builder(redis.addr())
        .resp()
        .timeout(Duration::from_secs(5))
        .abandon_timeout(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    let blpop = client.call(cmd(&["BLPOP", "k", "0"]));
    assert!(
        tokio::time::timeout(Duration::from_millis(50), blpop)
            .await
            .is_err()
    );
    let started = Instant::now();
    let err = client.call(cmd(&["PING"])).await.unwrap_err();
    assert!(matches!(err, ClientError::ConnectionLost { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}
