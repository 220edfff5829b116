//! The offline policy through the facade: requests made while no connection is up fail at
//! once (fail fast), or wait in a bounded queue and go out in queue order when the server
//! comes up, or end unsent at their deadline.
#![allow(clippy::unwrap_used)]
#![cfg(feature = "client")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use beamline::WasSent;
use beamline::reconnect::{BackoffConfig, OfflinePolicy};
use beamline::{Client, ClientError, Stack};
use bytes::Bytes;
use common::{recording_echo, serve_on};
use tokio::net::TcpListener;

fn queued(client: &Client<Bytes, Bytes>) -> usize {
    match client.stack() {
        Stack::Single(reconnect) => reconnect.queued(),
        _ => unreachable!("single-connection client"),
    }
}

/// A client of a port nothing listens on (yet), connecting in the background.
fn offline_client(port: u16, policy: OfflinePolicy) -> beamline::ClientBuilder<Bytes, Bytes> {
    Client::builder(format!("127.0.0.1:{port}"))
        .name("offline")
        .sync_connect(false)
        .backoff(BackoffConfig::constant(Duration::from_millis(10)))
        .offline(policy)
}

#[tokio::test]
async fn fail_fast_refuses_at_once_unsent() {
    let port = beamline_testkit::free_port();
    let client = offline_client(port, OfflinePolicy::FailFast)
        .connect()
        .await
        .unwrap();
    let err = client.call(Bytes::from("x")).await.unwrap_err();
    assert!(matches!(err, ClientError::Disconnected { .. }), "{err:?}");
    assert!(!err.was_sent());
    assert!(err.to_string().starts_with("offline: "), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_requests_go_out_in_queue_order_when_the_server_comes_up() {
    let port = beamline_testkit::free_port();
    let policy = OfflinePolicy::Queue {
        max: 1_000,
        deadline: Duration::from_secs(20),
    };
    // More queued requests than in-flight slots: the order must hold past the bound too.
    let client = offline_client(port, policy)
        .max_in_flight(8)
        .connect()
        .await
        .unwrap();
    let mut handles = Vec::new();
    for i in 0..300 {
        let caller = client.clone();
        handles.push(tokio::spawn(async move {
            let payload = Bytes::from(format!("{i}"));
            (caller.call(payload.clone()).await, payload)
        }));
        // Each request is in the queue before the next is made.
        while queued(&client) < i + 1 {
            tokio::task::yield_now().await;
        }
    }

    let log = Arc::new(Mutex::new(Vec::new()));
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let _server = tokio::spawn(serve_on(listener, recording_echo(&log)));
    for handle in handles {
        let (answer, payload) = handle.await.unwrap();
        assert_eq!(answer.unwrap(), payload);
    }
    let seen: Vec<Bytes> = log.lock().unwrap().clone();
    let want: Vec<Bytes> = (0..300).map(|i| Bytes::from(format!("{i}"))).collect();
    assert_eq!(seen, want, "queued requests went out out of order");
    assert_eq!(queued(&client), 0);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_and_a_queued_request_times_out_unsent() {
    let port = beamline_testkit::free_port();
    let policy = OfflinePolicy::Queue {
        max: 2,
        deadline: Duration::from_secs(3),
    };
    let client = offline_client(port, policy).connect().await.unwrap();
    let waiting: Vec<_> = (0..2)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.call(Bytes::from(format!("{i}"))).await })
        })
        .collect();
    while queued(&client) < 2 {
        tokio::task::yield_now().await;
    }
    let err = client.call(Bytes::from("third")).await.unwrap_err();
    assert!(
        matches!(err, ClientError::QueueFull { max: 2, .. }),
        "{err:?}"
    );
    assert!(!err.was_sent());

    let started = tokio::time::Instant::now();
    for call in waiting {
        let err = call.await.unwrap().unwrap_err();
        assert!(
            matches!(err, ClientError::OfflineTimeout { deadline, .. } if deadline == Duration::from_secs(3)),
            "{err:?}"
        );
        assert!(!err.was_sent() && err.is_timeout());
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited <= Duration::from_millis(3_001),
        "{waited:?}"
    );
    assert_eq!(queued(&client), 0);
}
