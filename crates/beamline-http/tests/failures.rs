//! A panic in a request handler ends that request with a `500`, is counted, and touches
//! nothing else: not the server, not another connection, not another HTTP/2 stream of the
//! same connection. A panicking response body cuts only its response. A head over the size
//! limit is a `431`.

#![allow(clippy::unwrap_used)]

mod common;

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use beamline_http::{Http, serve};
use beamline_server::Server;
use bytes::Bytes;
use common::*;
use http::StatusCode;
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test(start_paused = true)]
async fn a_panicking_http1_handler_is_a_500_and_closes_only_its_connection() {
    let (app, _) = app();
    let server = serve(Server::new().bind(localhost()), app).unwrap();
    let addr = server.local_addr().unwrap();
    // A bystander with a request in flight on its own connection.
    let mut bystander = h1(addr).await;
    let in_flight = tokio::spawn(bystander.send_request(get_req("/slow/2")));
    tokio::task::yield_now().await;

    let (mut send, driven) = h1_driven(addr).await;
    let response = send.send_request(get_req("/panic")).await.unwrap();
    assert_eq!(response.headers()["connection"], "close");
    let (status, body) = read(response).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "")
    );
    driven.await.unwrap();

    let (status, body) = read(in_flight.await.unwrap().unwrap()).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "slept 2s"));
    assert_eq!(get1(addr, "/").await.0, StatusCode::OK);
    assert_eq!(server.stats().panics, 1);
    // The connection ended normally: the panic was the request's, not the connection's.
    let s = server.server().stats();
    assert_eq!((s.panicked, s.errored), (0, 0), "{s:?}");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_http2_handler_is_a_500_and_the_other_streams_go_on() {
    let (app, _) = app();
    let server = serve(Server::new().bind(localhost()), app).unwrap();
    let mut send = h2(server.local_addr().unwrap()).await;
    let slow = tokio::spawn(send.send_request(get_req("/slow/2")));
    let (status, _) = read(send.send_request(get_req("/panic")).await.unwrap()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    // The same connection serves on, and the stream in flight finishes.
    assert_eq!(
        read(send.send_request(get_req("/")).await.unwrap()).await,
        (StatusCode::OK, "hello".to_owned())
    );
    assert_eq!(read(slow.await.unwrap().unwrap()).await.0, StatusCode::OK);
    assert_eq!(server.stats().panics, 1);
    assert_eq!(server.server().stats().panicked, 0);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_response_body_cuts_only_its_response() {
    let app = axum::Router::new()
        .route(
            "/",
            get(|| async {
                let frames = futures::stream::iter([0, 1]).map(|i| {
                    if i == 1 {
                        panic!("the body panicked on purpose");
                    }
                    Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(b"first ")))
                });
                Body::new(http_body_util::StreamBody::new(frames))
            }),
        )
        .route("/ok", get(|| async { "ok" }));
    let server = serve(Server::new().bind(localhost()), app).unwrap();
    let addr = server.local_addr().unwrap();
    let mut send = h2(addr).await;
    // The stream is reset: before its head reached the client, or during its body.
    match send.send_request(get_req("/")).await {
        Ok(response) => assert!(response.into_body().collect().await.is_err()),
        Err(e) => assert!(format!("{e:?}").contains("INTERNAL_ERROR"), "{e:?}"),
    }
    assert_eq!(
        read(send.send_request(get_req("/ok")).await.unwrap()).await,
        (StatusCode::OK, "ok".to_owned())
    );
    let mut send = h1(addr).await;
    match send.send_request(get_req("/")).await {
        Ok(response) => assert!(response.into_body().collect().await.is_err()),
        Err(e) => assert!(e.is_incomplete_message() || e.is_closed(), "{e:?}"),
    }
    assert_eq!(get1(addr, "/ok").await.0, StatusCode::OK);
    assert_eq!(server.stats().panics, 2);
}

#[tokio::test(start_paused = true)]
async fn a_head_over_the_size_limit_is_a_431() {
    let (app, _) = app();
    let server = Http::new()
        .max_header_size(8 * 1024)
        .serve(Server::new().bind(localhost()), app)
        .unwrap();
    let mut client = TcpStream::connect(server.local_addr().unwrap())
        .await
        .unwrap();
    let big = "a".repeat(10 * 1024);
    let request = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let _ = client.write_all(request.as_bytes()).await;
    let answer = String::from_utf8_lossy(&read_until_closed(&mut client).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    until(|| server.stats().protocol_errors == 1).await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(server.stats().requests, 0);
}

use futures::StreamExt;
