//! The two-phase drain under HTTP, on tokio's paused clock: every request in flight (HTTP/1
//! and HTTP/2) completes, idle connections close at once, new connections are refused, the
//! report counts them; whatever is still open at the deadline is killed and reported.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use beamline_http::serve;
use beamline_server::{Server, ServerState};
use common::*;
use http::StatusCode;
use tokio::net::TcpStream;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn a_drain_finishes_requests_in_flight_and_refuses_new_connections() {
    let (app, state) = app();
    let server = std::sync::Arc::new(serve(Server::new().bind(localhost()), app).unwrap());
    let addr = server.local_addr().unwrap();
    // Two HTTP/1 requests and two HTTP/2 streams (one connection) in flight; one idle
    // connection of each protocol.
    let mut in_flight = Vec::new();
    for _ in 0..2 {
        let mut send = h1(addr).await;
        in_flight.push(tokio::spawn(async move {
            let response = send.send_request(get_req("/wait")).await.unwrap();
            let close = response.headers().get("connection").cloned();
            (read(response).await, close.is_some_and(|c| c == "close"))
        }));
    }
    let send2 = h2(addr).await;
    for _ in 0..2 {
        let mut send = send2.clone();
        in_flight.push(tokio::spawn(async move {
            (
                read(send.send_request(get_req("/wait")).await.unwrap()).await,
                true,
            )
        }));
    }
    let (_idle1, idle1_driven) = h1_driven(addr).await;
    let (mut idle2, idle2_driven) = h2_driven(addr).await;
    assert_eq!(
        read(idle2.send_request(get_req("/")).await.unwrap())
            .await
            .0,
        StatusCode::OK
    );
    until(|| state.waiting.load(Ordering::SeqCst) == 4).await;

    let started = Instant::now();
    let draining = {
        let server = server.clone();
        tokio::spawn(async move { server.shutdown(Duration::from_secs(30)).await.unwrap() })
    };
    until(|| server.server().state() == ServerState::Draining).await;
    // Idle connections close at once (HTTP/2 with GOAWAY); new ones are refused.
    idle1_driven.await.unwrap();
    idle2_driven.await.unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );

    tokio::time::sleep(Duration::from_secs(3)).await;
    state.release.notify_waiters();
    for request in in_flight {
        let ((status, body), closing) = request.await.unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, "released"));
        assert!(
            closing,
            "an HTTP/1 answer during a drain says `connection: close`"
        );
    }
    let report = draining.await.unwrap();
    assert_eq!((report.drained, report.aborted), (5, 0), "{report:?}");
    // Over as the last request ended (3 s and the waits' 10 ms steps), not at the deadline.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let s = server.server().stats();
    assert_eq!((s.accepted, s.closed, s.killed), (5, 5, 0), "{s:?}");
    assert_eq!(server.stats().requests, 5);
}

#[tokio::test(start_paused = true)]
async fn at_the_drain_deadline_requests_still_in_flight_are_killed_and_reported() {
    let (app, state) = app();
    let server = serve(Server::new().bind(localhost()), app).unwrap();
    let addr = server.local_addr().unwrap();
    let mut send1 = h1(addr).await;
    let stuck1 = tokio::spawn(send1.send_request(get_req("/wait")));
    let mut send2 = h2(addr).await;
    let stuck2 = tokio::spawn(send2.send_request(get_req("/wait")));
    until(|| state.waiting.load(Ordering::SeqCst) == 2).await;

    let started = Instant::now();
    let report = server.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!((report.drained, report.aborted), (0, 2), "{report:?}");
    // The clients see their connections end without an answer.
    assert!(stuck1.await.unwrap().is_err());
    assert!(stuck2.await.unwrap().is_err());
    let s = server.server().stats();
    assert_eq!((s.killed, s.active), (2, 0), "{s:?}");
}
