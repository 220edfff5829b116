//! Every `ClientError` as an error reporter (anyhow, eyre, tracing's error fields) prints it:
//! the error, then each source. Each cause must appear once: no message repeats a source
//! that the reporter prints on its own line anyway.
//!
//! The pooled checkout and the first connect fail for real (a port nobody listens on), so
//! their chains are the ones users see; the rest are built from the layers' public errors.
#![cfg(all(feature = "client", feature = "resp"))]
#![allow(clippy::unwrap_used)]

use std::io;
use std::sync::Arc;
use std::time::Duration;

use beamline::mux::{ConnectionError, MuxError};
use beamline::pool::{CheckoutError, PoolConfig};
use beamline::reconnect::{CloseReason, ConnectError, GiveUp};
use beamline::{BuildError, Client, ClientError, Pooling, TransportError};
use beamline_testkit::{assert_printed_once, free_port};
use bytes::Bytes;

/// Checks `error`'s chain prints each cause once, and that its root cause (`root`) is in
/// what a reporter prints exactly once.
fn printed_once(error: &(dyn std::error::Error + 'static), root: &str) -> Vec<String> {
    let chain = assert_printed_once(error);
    let printed = chain.join("\n");
    assert_eq!(
        printed.matches(root).count(),
        1,
        "{root:?} should be printed once in {chain:#?}"
    );
    chain
}

fn refused() -> Arc<io::Error> {
    Arc::new(io::Error::other("connection refused by 127.0.0.1:1"))
}

fn transport() -> TransportError {
    TransportError::Connect {
        target: Arc::from("127.0.0.1:1"),
        source: refused(),
    }
}

#[test]
fn every_variant_prints_each_cause_once() {
    let name: Arc<str> = Arc::from("sessions");
    let peer = name.clone();
    let reset = || ConnectionError::Io(Arc::new(io::Error::other("connection reset by peer")));
    let cases: Vec<(ClientError, &str)> = vec![
        (
            ClientError::Disconnected { name: name.clone() },
            "not connected",
        ),
        (
            ClientError::QueueFull {
                name: name.clone(),
                max: 8,
            },
            "queue is full",
        ),
        (
            ClientError::OfflineTimeout {
                name: name.clone(),
                deadline: Duration::from_secs(2),
            },
            "offline deadline",
        ),
        (
            ClientError::NotSent {
                name: name.clone(),
                source: MuxError::NotSent {
                    peer: peer.clone(),
                    cause: reset(),
                },
            },
            "connection reset by peer",
        ),
        (
            ClientError::ConnectionLost {
                name: name.clone(),
                source: MuxError::ConnectionLost {
                    peer: peer.clone(),
                    cause: reset(),
                },
            },
            "connection reset by peer",
        ),
        (
            ClientError::Timeout {
                name: name.clone(),
                sent: true,
            },
            "timed out",
        ),
        (
            ClientError::Remote {
                name: name.clone(),
                payload: Bytes::from("no"),
            },
            "answered with an error",
        ),
        (ClientError::Cancelled { name: name.clone() }, "cancelled"),
        (
            ClientError::Request {
                name: name.clone(),
                source: MuxError::Encode {
                    peer: peer.clone(),
                    source: Arc::new(io::Error::other("key too long for the codec")),
                },
            },
            "key too long for the codec",
        ),
        (
            ClientError::Checkout {
                name: name.clone(),
                source: CheckoutError::Timeout {
                    pool: name.clone(),
                    waited: Duration::from_secs(1),
                    last_connect_error: None,
                },
            },
            "no connection within 1s",
        ),
        (
            ClientError::Closed {
                name: name.clone(),
                reason: CloseReason::GaveUp {
                    limit: GiveUp::Attempts { max: 3 },
                    last_error: Some(ConnectError::Failed {
                        name: name.clone(),
                        attempt: 3,
                        source: Arc::new(transport()),
                    }),
                },
            },
            "connection refused by 127.0.0.1:1",
        ),
    ];
    for (error, root) in &cases {
        let chain = printed_once(error, root);
        assert!(chain[0].starts_with("sessions: "), "{chain:#?}");
    }
}

/// The last case above keeps the real connect error: a closed client says why it gave up.
#[test]
fn a_client_that_gave_up_says_on_what() {
    let closed = ClientError::Closed {
        name: Arc::from("c"),
        reason: CloseReason::GaveUp {
            limit: GiveUp::Attempts { max: 3 },
            last_error: Some(ConnectError::Failed {
                name: Arc::from("c"),
                attempt: 3,
                source: Arc::new(transport()),
            }),
        },
    };
    assert_eq!(
        closed.to_string(),
        "c: closed (gave up after 3 attempts; last error: c: connect attempt 3 failed: \
         127.0.0.1:1: connect failed: connection refused by 127.0.0.1:1); the request was not sent"
    );
}

#[tokio::test]
async fn a_failed_pooled_checkout_prints_the_connect_error_once() {
    let target = format!("127.0.0.1:{}", free_port());
    let client = Client::builder(target.as_str())
        .pool(Pooling::Exclusive(
            PoolConfig::new(1).checkout_timeout(Some(Duration::from_secs(5))),
        ))
        .connect()
        .await
        .unwrap();
    let error = client.call(Bytes::from("ping")).await.unwrap_err();
    assert!(
        matches!(
            &error,
            ClientError::Checkout {
                source: CheckoutError::Connect(_),
                ..
            }
        ),
        "{error}"
    );
    let root = error
        .transport_error()
        .unwrap()
        .io_error()
        .unwrap()
        .to_string();
    let chain = printed_once(&error, &root);
    // client → pool attempt → transport → the OS error
    assert_eq!(chain.len(), 4, "{chain:#?}");
    assert!(chain[2].contains(&target), "{chain:#?}");
}

#[tokio::test]
async fn a_failed_first_connect_prints_the_connect_error_once() {
    let target = format!("127.0.0.1:{}", free_port());
    let error = Client::builder(target.as_str())
        .connect()
        .await
        .unwrap_err();
    let BuildError::Connect { source, .. } = &error else {
        panic!("{error}");
    };
    let root = source.io_error().unwrap().to_string();
    let chain = printed_once(&error, &root);
    assert_eq!(chain.len(), 3, "{chain:#?}");
}
