//! Upgrades (`101 Switching Protocols`, the WebSocket handshake's shape) keep working, and the
//! upgraded stream stays inside its connection's process: counted as a live connection, under
//! the server's limits (max connections, read timeout), drained and killed with it — even
//! when the handler moved it to a task of its own (`tokio::spawn`, as axum's WebSocketUpgrade
//! does). A raw handshake, then a simple echo protocol.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use beamline_http::{HttpHandle, serve};
use beamline_server::{Overload, Server};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

const S: Duration = Duration::from_secs(1);

/// Connects, upgrades to the echo protocol, checks one echo.
async fn upgraded(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(
            stream.read(&mut byte).await.unwrap(),
            1,
            "closed during the handshake"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols"),
        "{head}"
    );
    stream.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    stream.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"ping");
    stream
}

fn server_with(server: Server) -> HttpHandle {
    let (app, _) = app();
    serve(server.bind(localhost()), app).unwrap()
}

#[tokio::test(start_paused = true)]
async fn an_upgraded_stream_stays_a_live_connection_under_the_connection_limit() {
    let server = server_with(Server::new().max_connections(1).overload(Overload::Reject));
    let addr = server.local_addr().unwrap();
    let mut stream = upgraded(addr).await;
    assert_eq!(server.stats().upgrades, 1);
    // Long after the HTTP exchange ended, the stream is still the server's one connection.
    tokio::time::sleep(5 * S).await;
    assert_eq!(server.server().stats().active, 1);
    let mut refused = TcpStream::connect(addr).await.unwrap();
    assert!(read_until_closed(&mut refused).await.is_empty());
    assert_eq!(server.server().stats().rejected, 1);
    // Still echoing; closing it ends the connection.
    stream.write_all(b"more").await.unwrap();
    let mut echo = [0u8; 4];
    stream.read_exact(&mut echo).await.unwrap();
    drop(stream);
    until(|| server.server().stats().active == 0).await;
    assert_eq!(server.server().stats().closed, 1);
}

#[tokio::test(start_paused = true)]
async fn an_idle_upgraded_stream_is_closed_at_the_read_timeout() {
    let server = read_timeout_server(10 * S);
    let mut stream = upgraded(server.local_addr().unwrap()).await;
    let idle_from = Instant::now();
    assert!(read_until_closed(&mut stream).await.is_empty());
    assert_eq!(idle_from.elapsed(), 10 * S);
    until(|| server.server().stats().active == 0).await;
}

#[tokio::test(start_paused = true)]
async fn at_the_drain_deadline_an_upgraded_stream_is_killed_and_reported() {
    let server = server_with(Server::new());
    let mut stream = upgraded(server.local_addr().unwrap()).await;
    let started = Instant::now();
    let report = server.shutdown(5 * S).await.unwrap();
    assert_eq!((report.drained, report.aborted), (0, 1), "{report:?}");
    assert_eq!(started.elapsed(), 5 * S);
    assert!(read_until_closed(&mut stream).await.is_empty());
    assert_eq!(server.server().stats().killed, 1);
}
