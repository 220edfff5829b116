//! The server's limits carry over to HTTP connections: max connections (Reject), the per-IP
//! cap, the lifetime, the send timeout, suspend / resume. On tokio's paused clock.

#![allow(clippy::unwrap_used)]

mod common;

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use beamline_http::serve;
use beamline_server::{Overload, Server};
use bytes::Bytes;
use common::*;
use http::StatusCode;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

const S: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn max_connections_and_the_per_ip_cap_hold_http_clients() {
    let (app, _) = app();
    let server = serve(
        Server::new()
            .bind(localhost())
            .max_connections(2)
            .overload(Overload::Reject),
        app.clone(),
    )
    .unwrap();
    let addr = server.local_addr().unwrap();
    // (An HTTP/2 client asks at once: on the paused clock, a handshake left idle lets time
    // jump to the header timeout, with hyper's own server too.)
    let mut a = h1(addr).await;
    assert_eq!(
        read(a.send_request(get_req("/")).await.unwrap()).await.0,
        StatusCode::OK
    );
    let mut b = h2(addr).await;
    assert_eq!(
        read(b.send_request(get_req("/")).await.unwrap()).await.0,
        StatusCode::OK
    );
    let mut third = TcpStream::connect(addr).await.unwrap();
    third
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .ok();
    assert!(read_until_closed(&mut third).await.is_empty(), "rejected");
    assert_eq!(server.server().stats().rejected, 1);

    let per_ip = serve(
        Server::new().bind(localhost()).max_connections_per_ip(1),
        app,
    )
    .unwrap();
    let addr = per_ip.local_addr().unwrap();
    let mut first = h1(addr).await;
    let mut second = TcpStream::connect(addr).await.unwrap();
    assert!(
        read_until_closed(&mut second).await.is_empty(),
        "over the per-IP cap"
    );
    assert_eq!(
        read(first.send_request(get_req("/")).await.unwrap())
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(per_ip.server().stats().rejected, 1);
}

#[tokio::test(start_paused = true)]
async fn the_lifetime_ends_an_http_connection_even_mid_request() {
    let (app, _) = app();
    let server = serve(Server::new().bind(localhost()).lifetime(Some(5 * S)), app).unwrap();
    let started = Instant::now();
    let mut send = h1(server.local_addr().unwrap()).await;
    assert!(send.send_request(get_req("/slow/100")).await.is_err());
    assert_eq!(started.elapsed(), 5 * S);
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_stops_reading_a_response_hits_the_send_timeout() {
    // 1 GiB in 64 KiB chunks, made as it is sent.
    let app = axum::Router::new().route(
        "/big",
        get(|| async {
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let chunks = futures::stream::repeat(chunk)
                .take(16 * 1024)
                .map(Ok::<_, Infallible>);
            Body::from_stream(chunks)
        }),
    );
    let server = serve(
        Server::new().bind(localhost()).send_timeout(Some(5 * S)),
        app,
    )
    .unwrap();
    let mut client = TcpStream::connect(server.local_addr().unwrap())
        .await
        .unwrap();
    client
        .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Never read: the socket buffers fill, then nothing moves for 5 s.
    until(|| server.server().stats().send_timeouts == 1).await;
    until(|| server.server().stats().active == 0).await;
    let s = server.server().stats();
    assert_eq!(
        s.errored, 1,
        "a write that timed out fails the connection: {s:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn suspend_refuses_new_http_clients_and_resume_serves_them_again() {
    let (app, _) = app();
    let server = serve(Server::new().bind(localhost()), app).unwrap();
    let addr = server.local_addr().unwrap();
    let mut kept = h1(addr).await;
    assert_eq!(
        read(kept.send_request(get_req("/")).await.unwrap()).await.0,
        StatusCode::OK
    );
    server.server().suspend().await.unwrap();
    assert!(TcpStream::connect(addr).await.is_err());
    // A live connection is not touched.
    assert_eq!(
        read(kept.send_request(get_req("/")).await.unwrap()).await.0,
        StatusCode::OK
    );
    server.server().resume().await.unwrap();
    assert_eq!(get1(addr, "/").await.0, StatusCode::OK);
}

use futures::StreamExt;
