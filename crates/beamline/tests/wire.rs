//! The Client in id mode (beamline's wire format) against `beamline_mux::serve_wire` on
//! loopback: answers out of order reach their own callers, server errors and timeouts are
//! typed, bad settings are refused before anything connects.
#![allow(clippy::unwrap_used)]
#![cfg(feature = "client")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use beamline::WasSent;
use beamline::mux::ConfigError;
use beamline::reconnect::{OfflinePolicy, ReconnectConfigError};
use beamline::{BuildError, Client, ClientError, Target, TransportError};
use bytes::Bytes;
use common::{echo, echo_unless_hang, wire_server};
use tokio::sync::Notify;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_out_of_order_reach_their_own_callers() {
    // "first" is answered only after "second" was: the server answers out of order.
    let first_arrived = Arc::new(Notify::new());
    let second_done = Arc::new(Notify::new());
    let handler = {
        let (first_arrived, second_done) = (first_arrived.clone(), second_done.clone());
        move |req: Bytes| {
            let (first_arrived, second_done) = (first_arrived.clone(), second_done.clone());
            async move {
                match &req[..] {
                    b"first" => {
                        first_arrived.notify_one();
                        second_done.notified().await;
                    }
                    b"second" => second_done.notify_one(),
                    _ => {}
                }
                Ok::<_, Bytes>(req)
            }
        }
    };
    let (addr, _server) = wire_server(handler).await;
    let client = Client::builder(addr).name("ids").connect().await.unwrap();

    let first = tokio::spawn({
        let client = client.clone();
        async move { client.call(Bytes::from("first")).await }
    });
    // Only once "first" is with the server does "second" go out.
    first_arrived.notified().await;
    let second = client.call(Bytes::from("second")).await.unwrap();
    assert_eq!(second, "second");
    assert_eq!(first.await.unwrap().unwrap(), "first");

    // Many callers at once, each checks its own payload.
    let calls: Vec<_> = (0..200)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let payload = Bytes::from(format!("payload-{i}"));
                let answer = client.call(payload.clone()).await.unwrap();
                assert_eq!(answer, payload, "caller {i} got another caller's answer");
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
}

#[tokio::test]
async fn a_server_error_frame_is_remote_and_was_delivered() {
    let (addr, _server) = wire_server(|req: Bytes| async move {
        Err::<Bytes, _>(Bytes::from(format!("no: {}", req.len())))
    })
    .await;
    let client = Client::builder(addr)
        .name("errors")
        .connect()
        .await
        .unwrap();
    let err = client.call(Bytes::from("abc")).await.unwrap_err();
    match &err {
        ClientError::Remote { name, payload } => {
            assert_eq!(&**name, "errors");
            assert_eq!(payload, "no: 3");
        }
        other => panic!("expected Remote, got {other:?}"),
    }
    assert!(err.was_sent());
}

#[tokio::test]
async fn a_request_timeout_is_typed_and_the_connection_stays_up() {
    let (addr, _server) = wire_server(echo_unless_hang).await;
    let client = Client::builder(addr)
        .timeout(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    assert_eq!(client.call(Bytes::from("warm")).await.unwrap(), "warm");
    // The deadline is the mux's timer: with the clock paused it fires exactly, no waiting.
    tokio::time::pause();
    let err = client.call(Bytes::from("hang")).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Timeout { sent: true, .. }),
        "{err:?}"
    );
    assert!(err.was_sent() && err.is_timeout());
    tokio::time::resume();
    assert_eq!(client.call(Bytes::from("after")).await.unwrap(), "after");
    assert!(!client.is_closed());
}

#[tokio::test]
async fn settings_that_cannot_work_are_refused_before_connecting() {
    // Nothing listens there: a setting error must come before any attempt.
    let nowhere = || Client::builder("127.0.0.1:1");
    let zero_in_flight = nowhere().max_in_flight(0).connect().await.unwrap_err();
    let no_queue = OfflinePolicy::Queue {
        max: 0,
        deadline: Duration::from_secs(1),
    };
    let zero_queue = nowhere().offline(no_queue).connect().await.unwrap_err();
    assert!(
        matches!(zero_in_flight, BuildError::Mux(ConfigError::ZeroInFlight)),
        "{zero_in_flight:?}"
    );
    assert!(
        matches!(
            zero_queue,
            BuildError::Reconnect(ReconnectConfigError::ZeroQueueMax)
        ),
        "{zero_queue:?}"
    );
}

#[tokio::test]
async fn a_failed_first_connect_returns_the_real_error() {
    let port = beamline_testkit::free_port();
    let err = Client::builder(format!("127.0.0.1:{port}"))
        .name("down")
        .connect()
        .await
        .unwrap_err();
    let BuildError::Connect { name, source } = &err else {
        panic!("expected Connect, got {err:?}");
    };
    assert_eq!(&**name, "down");
    assert_eq!(source.target(), format!("127.0.0.1:{port}"));
    assert!(
        matches!(source, TransportError::Connect { .. }),
        "{source:?}"
    );
    assert_eq!(
        source.io_error().map(std::io::Error::kind),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
    let chain = beamline_testkit::error_chain(&err).join(": ");
    assert!(
        err.to_string().contains("down") && chain.contains("refused"),
        "{chain}"
    );
}

#[tokio::test]
async fn closing_is_final() {
    let (addr, _server) = wire_server(echo).await;
    let client = Client::builder(addr).connect().await.unwrap();
    let clone = client.clone();
    assert_eq!(clone.call(Bytes::from("x")).await.unwrap(), "x");
    client.close();
    assert!(clone.is_closed());
    let err = clone.call(Bytes::from("y")).await.unwrap_err();
    assert!(matches!(err, ClientError::Closed { .. }), "{err:?}");
    assert!(!err.was_sent());
    assert!(clone.close_reason().is_some());
}

#[cfg(unix)]
#[tokio::test]
async fn a_unix_socket_is_a_transport_too() {
    let dir = std::env::temp_dir().join(format!("beamline-facade-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("wire.sock");
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(beamline::mux::serve_wire(
                stream,
                &beamline::mux::ServerConfig::new(),
                echo,
            ));
        }
    });
    let client = Client::builder(Target::unix(&path))
        .connect()
        .await
        .unwrap();
    assert_eq!(client.name(), format!("unix:{}", path.display()));
    assert_eq!(
        client.call(Bytes::from("over unix")).await.unwrap(),
        "over unix"
    );
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
