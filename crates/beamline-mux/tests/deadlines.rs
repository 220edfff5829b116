//! Deadlines, quarantine and blocking on the paused clock, against a raw peer over an
//! in-memory pipe: exact, and never slept.
#![cfg(feature = "driver")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use beamline_mux::WasSent;
use beamline_mux::{Client, ClientConfig, ConnectionError, Frame, FrameKind, MuxError};
use bytes::Bytes;
use common::{spawn_call, wire_pipe as connect};
use futures::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_util::codec::{Framed, LinesCodec};

#[tokio::test(start_paused = true)]
async fn a_written_request_past_its_deadline_times_out_as_sent_and_is_cancelled() {
    let (client, mut peer) = connect(&ClientConfig::new().peer("slow"));
    let start = Instant::now();
    let call = spawn_call(&client, "q", Some(Duration::from_secs(2)));
    let req = peer.next().await.unwrap().unwrap();
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert!(
        matches!(err, MuxError::Timeout { sent: true, .. }),
        "{err:?}"
    );
    assert!(err.was_sent());
    // The peer is told, and the id sits in quarantine until the late answer.
    assert_eq!(
        peer.next().await.unwrap().unwrap(),
        Frame::new(FrameKind::Cancel, req.id, "")
    );
    assert_eq!(client.stats().abandoned, 1);
    assert_eq!(client.in_flight(), 0);
    peer.send(Frame::new(FrameKind::Response, req.id, "late"))
        .await
        .unwrap();
    while client.stats().abandoned == 1 {
        tokio::task::yield_now().await;
    }
    let stats = client.stats();
    assert_eq!((stats.late_replies, stats.timed_out), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn the_default_timeout_covers_a_call_without_its_own() {
    let (client, mut peer) = connect(&ClientConfig::new().timeout(Duration::from_millis(300)));
    let start = Instant::now();
    let call = spawn_call(&client, "q", None);
    peer.next().await.unwrap().unwrap();
    let err = call.await.unwrap().unwrap_err();
    assert!(
        matches!(err, MuxError::Timeout { sent: true, .. }),
        "{err:?}"
    );
    assert_eq!(start.elapsed(), Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn a_call_waiting_for_a_slot_times_out_unsent() {
    let (client, mut peer) = connect(&ClientConfig::new().max_in_flight(1));
    let _first = spawn_call(&client, "first", None);
    peer.next().await.unwrap().unwrap();
    let start = Instant::now();
    let err = client
        .call_timeout(Bytes::from_static(b"second"), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, MuxError::Timeout { sent: false, .. }),
        "{err:?}"
    );
    assert!(!err.was_sent());
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(client.in_flight(), 1);
    assert_eq!(client.waiting(), 0, "it left the line");
}

#[tokio::test(start_paused = true)]
async fn a_deadline_set_with_call_deadline_is_exact() {
    let (client, mut peer) = connect(&ClientConfig::new());
    let deadline = Instant::now() + Duration::from_millis(1500);
    let call = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .call_deadline(Bytes::from_static(b"x"), deadline)
                .await
        })
    };
    peer.next().await.unwrap().unwrap();
    assert!(matches!(
        call.await.unwrap(),
        Err(MuxError::Timeout { sent: true, .. })
    ));
    assert_eq!(Instant::now(), deadline);
}

/// Abandoned requests beyond `max_abandoned` hold new calls back until late answers come.
#[tokio::test(start_paused = true)]
async fn too_many_abandoned_requests_block_new_calls_until_late_answers() {
    let config = ClientConfig::new().max_abandoned(1);
    let (client, mut peer) = connect(&config);
    let first = spawn_call(&client, "a", Some(Duration::from_secs(1)));
    let a = peer.next().await.unwrap().unwrap();
    assert!(first.await.unwrap().is_err());
    assert_eq!(peer.next().await.unwrap().unwrap().kind, FrameKind::Cancel);
    // One abandoned request: the next call waits instead of being written...
    let second = spawn_call(&client, "b", None);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(!second.is_finished());
    // ...and a deadline while blocked means "never written".
    let third = client
        .call_timeout(Bytes::from_static(b"c"), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(third, MuxError::Timeout { sent: false, .. }),
        "{third:?}"
    );
    // The late answer to "a" unblocks "b".
    peer.send(Frame::new(FrameKind::Cancel, a.id, ""))
        .await
        .unwrap();
    let b = peer.next().await.unwrap().unwrap();
    assert_eq!(&b.payload[..], b"b");
    peer.send(Frame::new(FrameKind::Response, b.id, "B"))
        .await
        .unwrap();
    assert_eq!(&second.await.unwrap().unwrap()[..], b"B");
}

#[tokio::test(start_paused = true)]
async fn a_quarantine_without_a_late_answer_ends_at_its_age_limit() {
    let config = ClientConfig::new().quarantine(Duration::from_secs(30));
    let (client, mut peer) = connect(&config);
    let call = spawn_call(&client, "a", Some(Duration::from_secs(1)));
    let a = peer.next().await.unwrap().unwrap();
    assert!(call.await.unwrap().is_err());
    let age_limit = Instant::now() + Duration::from_secs(30);
    tokio::time::sleep_until(age_limit - Duration::from_millis(1)).await;
    assert_eq!(
        client.stats().abandoned,
        1,
        "still quarantined just before the limit"
    );
    tokio::time::sleep_until(age_limit).await;
    while client.stats().abandoned == 1 {
        tokio::task::yield_now().await;
    }
    assert_eq!(Instant::now(), age_limit);
    assert_eq!(client.stats().quarantine_expired, 1);
    // A very late answer now finds no one; it is dropped and counted as stray.
    peer.send(Frame::new(FrameKind::Response, a.id, "very late"))
        .await
        .unwrap();
    while client.stats().stray_replies == 0 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_answers_in_time_is_not_timed_out() {
    let (client, mut peer) = connect(&ClientConfig::new());
    let call = spawn_call(&client, "q", Some(Duration::from_secs(5)));
    let req = peer.next().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(4999)).await;
    peer.send(Frame::new(FrameKind::Response, req.id, "in time"))
        .await
        .unwrap();
    assert_eq!(&call.await.unwrap().unwrap()[..], b"in time");
    assert_eq!(client.stats().timed_out, 0);
}

/// The FIFO wedge: a reply that never comes (a blocking command whose caller timed out)
/// holds every later reply behind it. Past the abandon timeout (twice the request timeout
/// by default) the connection fails: what was written ends `ConnectionLost`, what was not
/// `NotSent`, both saying why.
#[tokio::test(start_paused = true)]
async fn a_fifo_reply_that_never_comes_fails_the_connection_after_the_abandon_timeout() {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let lines = || LinesCodec::new_with_max_length(1024);
    let config = ClientConfig::new()
        .peer("fifo")
        .max_in_flight(3)
        .timeout(Duration::from_secs(1));
    let (client, driver) = Client::fifo(client_io, lines(), &config).unwrap();
    let driver = tokio::spawn(driver);
    let mut peer = Framed::new(server_io, lines());
    let start = Instant::now();
    let call = |line: &'static str| {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .call_timeout(line.to_owned(), Duration::from_secs(60))
                .await
        })
    };

    let err = client.call("BLPOP k 0".to_owned()).await.unwrap_err();
    assert!(
        matches!(err, MuxError::Timeout { sent: true, .. }),
        "{err:?}"
    );
    assert_eq!(peer.next().await.unwrap().unwrap(), "BLPOP k 0");
    let written = [call("GET a"), call("GET b"), call("GET c")];
    for line in ["GET a", "GET b", "GET c"] {
        assert_eq!(peer.next().await.unwrap().unwrap(), line);
    }
    let waiting = call("GET d");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(client.waiting(), 1);

    client.closed().await;
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(3),
        "abandoned at 1 s, + 2 s"
    );
    for call in written {
        let err = call.await.unwrap().unwrap_err();
        assert!(
            matches!(
                &err,
                MuxError::ConnectionLost {
                    cause: ConnectionError::Wedged { .. },
                    ..
                }
            ),
            "{err:?}"
        );
    }
    let err = waiting.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, MuxError::NotSent { cause: ConnectionError::Wedged { abandon_timeout }, .. } if *abandon_timeout == Duration::from_secs(2)),
        "{err:?}"
    );
    assert_eq!(client.stats().abandon_expired, 1);
    assert!(matches!(
        driver.await.unwrap(),
        Err(ConnectionError::Wedged { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_late_fifo_reply_within_the_abandon_timeout_keeps_the_connection() {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let lines = || LinesCodec::new_with_max_length(1024);
    let config = ClientConfig::new().abandon_timeout(Duration::from_secs(5));
    let (client, driver) = Client::fifo(client_io, lines(), &config).unwrap();
    tokio::spawn(driver);
    let mut peer = Framed::new(server_io, lines());
    let err = client
        .call_timeout("slow".to_owned(), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, MuxError::Timeout { sent: true, .. }),
        "{err:?}"
    );
    assert_eq!(peer.next().await.unwrap().unwrap(), "slow");
    tokio::time::sleep(Duration::from_millis(4900)).await;
    peer.send("late".to_owned()).await.unwrap();
    let next = {
        let client = client.clone();
        tokio::spawn(async move { client.call("next".to_owned()).await })
    };
    assert_eq!(peer.next().await.unwrap().unwrap(), "next");
    peer.send("answer".to_owned()).await.unwrap();
    assert_eq!(next.await.unwrap().unwrap(), "answer");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!client.is_closed());
    let stats = client.stats();
    assert_eq!((stats.late_replies, stats.abandon_expired), (1, 0));
}
