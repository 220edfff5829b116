//! The HTTP timers and the server's read timeout under HTTP, on tokio's paused clock: exact,
//! not slept.
//!
//! - a slowloris on headers is closed at the header read timeout while other clients are
//!   served; a connection that never sends a request too;
//! - an idle kept-alive connection is closed gracefully at the keep-alive timeout (HTTP/1:
//!   closed; HTTP/2: GOAWAY);
//! - the server's read timeout does not cut a request waiting on a slow handler (busy
//!   marks), but does cut a request whose body stops coming.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use beamline_http::Http;
use beamline_server::Server;
use common::*;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

const S: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn a_slowloris_on_headers_is_closed_at_the_header_timeout_and_others_are_served() {
    let (app, _) = app();
    let server = Http::new()
        .keep_alive_timeout(None)
        .serve(Server::new().bind(localhost()), app)
        .unwrap();
    let addr = server.local_addr().unwrap();
    let started = Instant::now();
    let (mut reader, mut writer) = TcpStream::connect(addr).await.unwrap().into_split();
    tokio::spawn(async move {
        // One header byte a second: the server's read timeout (60 s) would never fire.
        for byte in b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa" {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(S).await;
        }
    });
    let closed = tokio::spawn(async move {
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest).await;
        (started.elapsed(), rest)
    });
    // Meanwhile another client is served at once.
    tokio::time::sleep(3 * S).await;
    let (status, body) = get1(addr, "/").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));
    assert_eq!(started.elapsed(), 3 * S);

    let (elapsed, answer) = closed.await.unwrap();
    assert_eq!(elapsed, 10 * S, "the default header read timeout is 10 s");
    assert!(answer.is_empty());
    let stats = server.stats();
    assert_eq!(stats.header_timeouts, 1, "{stats:?}");
    assert_eq!(stats.requests, 1);
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_sends_no_request_is_closed_at_the_header_timeout() {
    let (app, _) = app();
    let server = Http::new()
        .header_read_timeout(4 * S)
        .serve(Server::new().bind(localhost()), app)
        .unwrap();
    let started = Instant::now();
    let mut silent = TcpStream::connect(server.local_addr().unwrap())
        .await
        .unwrap();
    assert!(read_until_closed(&mut silent).await.is_empty());
    assert_eq!(started.elapsed(), 4 * S);
    assert_eq!(server.stats().header_timeouts, 1);
}

#[tokio::test(start_paused = true)]
async fn an_idle_http1_connection_is_closed_at_the_keep_alive_timeout() {
    let (app, _) = app();
    let server = Http::new()
        .keep_alive_timeout(Some(20 * S))
        .serve(Server::new().bind(localhost()), app)
        .unwrap();
    let (mut send, driven) = h1_driven(server.local_addr().unwrap()).await;
    for _ in 0..3 {
        let (status, _) = read(send.send_request(get_req("/")).await.unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        tokio::time::sleep(15 * S).await;
    }
    // Each request restarted the idle wait: still open after 45 s.
    assert!(!send.is_closed());
    let idle_from = Instant::now();
    driven.await.unwrap();
    // Idle since the last response, 15 s ago.
    assert_eq!(idle_from.elapsed(), 5 * S);
    let stats = server.stats();
    assert_eq!(
        (stats.idle_closes, stats.header_timeouts),
        (1, 0),
        "{stats:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_idle_http2_connection_gets_goaway_at_the_keep_alive_timeout() {
    let (app, _) = app();
    let server = Http::new()
        .keep_alive_timeout(Some(20 * S))
        .serve(Server::new().bind(localhost()), app)
        .unwrap();
    let (mut send, driven) = h2_driven(server.local_addr().unwrap()).await;
    let (status, _) = read(send.send_request(get_req("/")).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let idle_from = Instant::now();
    driven.await.unwrap();
    assert_eq!(idle_from.elapsed(), 20 * S);
    assert_eq!(server.stats().idle_closes, 1);
    until(|| server.server().stats().closed == 1).await;
    assert_eq!(server.server().stats().errored, 0);
}

#[tokio::test(start_paused = true)]
async fn the_read_timeout_does_not_cut_a_request_waiting_on_a_slow_handler() {
    let server = read_timeout_server(10 * S);
    let addr = server.local_addr().unwrap();
    // HTTP/1 and HTTP/2: the peer sends nothing for 25 s, waiting on the handler.
    let started = Instant::now();
    let (status, body) = get1(addr, "/slow/25").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "slept 25s"));
    assert_eq!(started.elapsed(), 25 * S);
    let (mut send, driven) = h2_driven(addr).await;
    let (status, _) = read(send.send_request(get_req("/slow/25")).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    // Idle once answered: the read timeout counts from the answer.
    let answered = Instant::now();
    driven.await.unwrap();
    assert_eq!(answered.elapsed(), 10 * S);
    until(|| server.server().stats().closed == 2).await;
}

#[tokio::test(start_paused = true)]
async fn the_read_timeout_cuts_a_request_body_that_stops_coming() {
    let server = read_timeout_server(10 * S);
    let started = Instant::now();
    let mut client = TcpStream::connect(server.local_addr().unwrap())
        .await
        .unwrap();
    client
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    // 90 bytes never come: the handler waits on its peer, which is not the server's doing.
    assert!(read_until_closed(&mut client).await.is_empty());
    assert_eq!(started.elapsed(), 10 * S);
}
