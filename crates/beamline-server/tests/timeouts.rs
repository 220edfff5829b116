//! Read-idle and lifetime timeouts, on tokio's paused clock: exact, not slept.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use beamline_server::{ExitReason, Flow, Handler, HandlerContext, Server, TimeoutKind};
use bytes::BytesMut;
use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test(start_paused = true)]
async fn a_silent_peer_is_closed_at_the_read_timeout() {
    let server = Server::new().bind(localhost()).serve_handler(Echo).unwrap();
    let started = Instant::now();
    let mut silent = TcpStream::connect(addr(&server)).await.unwrap();
    assert!(read_until_closed(&mut silent).await.is_empty());
    assert_eq!(
        started.elapsed(),
        MINUTE,
        "the default read timeout is 60 s"
    );
    let stats = stats_until(&server, |s| s.closed == 1).await;
    assert_balanced(&stats);
}

#[tokio::test(start_paused = true)]
async fn only_received_bytes_restart_the_read_timeout() {
    let server = Server::new()
        .bind(localhost())
        .read_timeout(Some(Duration::from_secs(10)))
        .serve_handler(Echo)
        .unwrap();
    let started = Instant::now();
    let mut client = TcpStream::connect(addr(&server)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(round_trip(&mut client, b"x").await, b"x");
    // The server wrote (the echo) at 7 s too; only the byte it received counts.
    assert!(read_until_closed(&mut client).await.is_empty());
    assert_eq!(started.elapsed(), Duration::from_secs(17));
}

/// Keeps the connection through one read timeout, nudging the peer, then gives up.
#[derive(Clone, Default)]
struct Patient {
    timeouts: u32,
}

impl Handler for Patient {
    async fn on_data(
        &mut self,
        data: &mut BytesMut,
        _conn: &mut HandlerContext<'_>,
    ) -> Result<Flow, ExitReason> {
        data.clear();
        Ok(Flow::Continue)
    }

    async fn on_timeout(
        &mut self,
        kind: TimeoutKind,
        conn: &mut HandlerContext<'_>,
    ) -> Result<Flow, ExitReason> {
        self.timeouts += 1;
        conn.send(format!("{kind} {}\n", self.timeouts).as_bytes())
            .await?;
        Ok(if self.timeouts < 2 {
            Flow::Continue
        } else {
            Flow::Close
        })
    }
}

#[tokio::test(start_paused = true)]
async fn on_timeout_may_continue_and_then_close() {
    let server = Server::new()
        .bind(localhost())
        .read_timeout(Some(Duration::from_secs(5)))
        .serve_handler(Patient::default())
        .unwrap();
    let started = Instant::now();
    let mut client = TcpStream::connect(addr(&server)).await.unwrap();
    let said = read_until_closed(&mut client).await;
    assert_eq!(said, b"read timeout 1\nread timeout 2\n");
    assert_eq!(started.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn the_lifetime_closes_even_a_busy_connection() {
    let server = Server::new()
        .bind(localhost())
        .read_timeout(Some(Duration::from_secs(5)))
        .lifetime(Some(Duration::from_secs(12)))
        .serve_handler(Patient::default())
        .unwrap();
    let started = Instant::now();
    let mut client = TcpStream::connect(addr(&server)).await.unwrap();
    let mut said = Vec::new();
    // Busy: a byte every 2 s, so the read timeout never fires.
    let (mut rx, mut tx) = client.split();
    let reader = async {
        read_all(&mut rx, &mut said).await;
        started.elapsed()
    };
    let writer = async {
        while tx.write_all(b".").await.is_ok() {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    };
    let (closed_at, ()) = tokio::join!(reader, writer);
    assert_eq!(said, b"lifetime 1\n", "closed whatever on_timeout returned");
    assert_eq!(closed_at, Duration::from_secs(12));
}

async fn read_all(rx: &mut tokio::net::tcp::ReadHalf<'_>, out: &mut Vec<u8>) {
    let mut buf = [0u8; 256];
    loop {
        match tokio::io::AsyncReadExt::read(rx, &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_connection_function_is_closed_at_the_read_timeout() {
    let server = Server::new()
        .bind(localhost())
        .read_timeout(Some(Duration::from_secs(30)))
        .serve_fn(echo_fn)
        .unwrap();
    let started = Instant::now();
    let mut client = TcpStream::connect(addr(&server)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(round_trip(&mut client, b"ping").await, b"ping");
    assert!(read_until_closed(&mut client).await.is_empty());
    assert_eq!(started.elapsed(), Duration::from_secs(50));
    assert_eq!(stats_until(&server, |s| s.closed == 1).await.active, 0);
}

#[tokio::test(start_paused = true)]
async fn without_a_read_timeout_an_idle_connection_stays() {
    let server = Server::new()
        .bind(localhost())
        .read_timeout(None)
        .serve_handler(Echo)
        .unwrap();
    let mut client = TcpStream::connect(addr(&server)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(round_trip(&mut client, b"still").await, b"still");
    assert_eq!(server.stats().active, 1);
}
