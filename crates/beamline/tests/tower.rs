//! `Client` as a `tower::Service`: a tower `Timeout` layer bounds a call, the timed-out
//! call frees its in-flight slot at once, and in FIFO mode its late reply is discarded
//! instead of reaching the next caller.
#![allow(clippy::unwrap_used)]
#![cfg(feature = "tower")]

mod common;

use std::time::Duration;

use beamline::resp::{Command, Value};
use beamline::{Client, ClientError, Stack};
use beamline_testkit::RedisServer;
use bytes::Bytes;
use common::{echo_unless_hang, wire_server};
use tower::timeout::error::Elapsed;
use tower::{Service, ServiceBuilder, ServiceExt};

#[tokio::test]
async fn a_timeout_layer_bounds_the_call_and_frees_its_slot() {
    let (addr, _server) = wire_server(echo_unless_hang).await;
    // One slot: if the timed-out call kept it, the next call could not go out.
    let client = Client::builder(addr)
        .max_in_flight(1)
        .connect()
        .await
        .unwrap();
    let mut service = ServiceBuilder::new()
        .timeout(Duration::from_secs(5))
        .service(client.clone());
    let warm = service
        .ready()
        .await
        .unwrap()
        .call(Bytes::from("warm"))
        .await;
    assert_eq!(warm.unwrap(), "warm");

    // The layer's timer on the paused clock: it fires as soon as nothing else can run.
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    let err = service
        .ready()
        .await
        .unwrap()
        .call(Bytes::from("hang"))
        .await
        .unwrap_err();
    assert!(err.is::<Elapsed>(), "{err}");
    // Exactly the layer's deadline (tokio's timer wheel rounds up to the millisecond).
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited <= Duration::from_millis(5_001),
        "{waited:?}"
    );
    let Stack::Single(reconnect) = client.stack() else {
        unreachable!("single-connection client")
    };
    assert!(reconnect.state().is_connected());
    tokio::time::resume();

    let next = service
        .ready()
        .await
        .unwrap()
        .call(Bytes::from("next"))
        .await;
    assert_eq!(next.unwrap(), "next");

    // A closed client says so through poll_ready.
    client.close();
    let err = service.ready().await.unwrap_err();
    let closed = err.downcast_ref::<ClientError>();
    assert!(matches!(closed, Some(ClientError::Closed { .. })), "{err}");
}

#[tokio::test]
async fn a_timed_out_fifo_reply_does_not_reach_the_next_caller() {
    let redis = RedisServer::start();
    let client = Client::builder(redis.addr())
        .resp()
        .connect()
        .await
        .unwrap();
    let mut service = ServiceBuilder::new()
        .timeout(Duration::from_millis(50))
        .service(client);
    // BLPOP on an empty list answers nil after 0.2 s, long after the layer gave up.
    let blpop = Command::from_args(["BLPOP", "empty", "0.2"]);
    let err = service
        .ready()
        .await
        .unwrap()
        .call(blpop)
        .await
        .unwrap_err();
    assert!(err.is::<Elapsed>(), "{err}");
    let mut service = service.into_inner();
    let echo = Command::from_args(["ECHO", "mine"]);
    let reply = service.ready().await.unwrap().call(echo).await.unwrap();
    assert_eq!(reply, Value::bulk("mine"));
}
