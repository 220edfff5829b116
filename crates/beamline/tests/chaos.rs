//! The Client through beamline-chaos's proxy: a connection reset (a real RST) under
//! requests in flight fails each of them as "maybe delivered", typed, and the client
//! reconnects through the proxy; requests made meanwhile wait in the offline queue.
#![allow(clippy::unwrap_used)]
#![cfg(all(feature = "client", feature = "chaos"))]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use beamline::WasSent;
use beamline::chaos::Proxy;
use beamline::reconnect::{BackoffConfig, OfflinePolicy};
use beamline::{Client, ClientError, Stack};
use bytes::Bytes;
use common::wire_server;
use tokio::sync::Notify;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_fails_what_was_in_flight_and_the_client_reconnects() {
    // "hold" requests are answered only when released; count those that arrived.
    let arrived = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let handler = {
        let (arrived, release) = (arrived.clone(), release.clone());
        move |req: Bytes| {
            let (arrived, release) = (arrived.clone(), release.clone());
            async move {
                if req == "hold" {
                    arrived.fetch_add(1, Ordering::SeqCst);
                    release.notified().await;
                }
                Ok::<_, Bytes>(req)
            }
        }
    };
    let (server, _task) = wire_server(handler).await;
    let proxy = Proxy::start("127.0.0.1:0".parse().unwrap(), server)
        .await
        .unwrap();
    let client = Client::builder(proxy.local_addr())
        .name("through chaos")
        .backoff(BackoffConfig::constant(Duration::from_millis(10)))
        .offline(OfflinePolicy::Queue {
            max: 64,
            deadline: Duration::from_secs(10),
        })
        .connect()
        .await
        .unwrap();

    let held: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.call(Bytes::from("hold")).await })
        })
        .collect();
    while arrived.load(Ordering::SeqCst) < 8 {
        tokio::task::yield_now().await;
    }
    let Stack::Single(reconnect) = client.stack() else {
        unreachable!("single-connection client")
    };
    let mut states = reconnect.state_changes();
    proxy.reset_all();
    for call in held {
        let err = call.await.unwrap().unwrap_err();
        assert!(matches!(err, ClientError::ConnectionLost { .. }), "{err:?}");
        assert!(err.was_sent());
        assert!(err.to_string().starts_with("through chaos: "), "{err}");
    }
    states.wait_for(|s| !s.is_connected()).await.unwrap();
    // Made while reconnecting: queued, then answered on the new connection.
    let after = client.call(Bytes::from("after")).await.unwrap();
    assert_eq!(after, "after");
    assert!(reconnect.state().is_connected());
    assert_eq!(proxy.stats().accepted, 2, "{:?}", proxy.stats());
    release.notify_waiters();
}
