//! What the builder's defaults promise, checked against servers a new user meets by
//! mistake: one that never answers (the wrong protocol, a stuck peer). Under the defaults a
//! call still ends, with `ClientError::Timeout`, at the default request timeout.
#![cfg(all(feature = "client", feature = "resp"))]
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use beamline::resp::Command;
use beamline::{Client, ClientError, DEFAULT_REQUEST_TIMEOUT};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::time::Instant;

/// A server that accepts, reads everything it is sent and never answers.
async fn silent_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

/// Runs `call` on paused time and checks it ends with a sent `Timeout` exactly at the
/// default request timeout. A call that would hang fails the test (an hour of paused time
/// passes in no time).
async fn ends_at_the_default_timeout<T: std::fmt::Debug>(
    call: impl Future<Output = Result<T, ClientError>>,
) {
    tokio::time::pause();
    let started = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(3600), call)
        .await
        .expect("the call never ended under the default settings");
    let err = ended.unwrap_err();
    assert!(
        matches!(err, ClientError::Timeout { sent: true, .. }),
        "{err}"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= DEFAULT_REQUEST_TIMEOUT
            && elapsed < DEFAULT_REQUEST_TIMEOUT + Duration::from_millis(10),
        "ended after {elapsed:?}"
    );
}

#[tokio::test]
async fn a_resp_call_to_a_server_that_never_answers_times_out_under_the_defaults() {
    assert_eq!(DEFAULT_REQUEST_TIMEOUT, Duration::from_secs(30));
    let client = Client::builder(silent_server().await)
        .resp()
        .connect()
        .await
        .unwrap();
    ends_at_the_default_timeout(client.call(Command::new("GET").arg("k"))).await;
}

#[tokio::test]
async fn a_wire_call_to_a_server_that_never_answers_times_out_under_the_defaults() {
    let client = Client::builder(silent_server().await)
        .connect()
        .await
        .unwrap();
    ends_at_the_default_timeout(client.call(bytes::Bytes::from("ping"))).await;
}

/// `no_timeout` is the explicit way out: the same call is still waiting an hour later.
#[tokio::test]
async fn no_timeout_turns_the_default_off() {
    let client = Client::builder(silent_server().await)
        .resp()
        .no_timeout()
        .connect()
        .await
        .unwrap();
    tokio::time::pause();
    let call = client.call(Command::new("GET").arg("k"));
    assert!(
        tokio::time::timeout(Duration::from_secs(3600), call)
            .await
            .is_err()
    );
}
