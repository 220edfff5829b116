//! Slow, silent and hostile peers hold nothing for long: a peer that never reads is closed at
//! the send timeout, one that never finishes a frame at the read buffer limit, a callback
//! blocked past the lifetime is killed, and the per-IP cap sees through IPv4-mapped addresses.
//! Time-based tests run on tokio's paused clock.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use beamline_server::{
    ConnError, ConnInfo, Connection, ExitReason, Flow, Handler, HandlerContext, Server,
};
use bytes::BytesMut;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

const SECOND: Duration = Duration::from_secs(1);

/// Fails a test that would otherwise wait for ever (on the paused clock, at once).
async fn within<F: std::future::Future>(limit: Duration, f: F) -> F::Output {
    tokio::time::timeout(limit, f)
        .await
        .expect("still waiting at the limit")
}

/// A client with a small receive buffer, so that a server writing to it blocks soon.
async fn small_window_client(addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Writes 64 KiB chunks and never reads, until the server closes the connection (a write
/// fails) or `max` bytes went out. Returns how many bytes were written.
async fn write_never_read(client: &mut TcpStream, max: usize) -> usize {
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < max {
        match client.write(&chunk).await {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    sent
}

/// What reached `on_error`.
#[derive(Debug, PartialEq, Eq)]
enum Reported {
    SendTimeout(Duration),
    ReadBufferFull { buffered: usize, max: usize },
    Other(String),
}

/// Echoes (or, `hoarding`, keeps every byte as a partial frame that never completes: the
/// documented pattern for a frame that is not whole yet), and reports what reaches
/// `on_error`.
#[derive(Clone)]
struct Reporting {
    hoarding: bool,
    errors: tokio::sync::mpsc::UnboundedSender<Reported>,
}

impl Handler for Reporting {
    async fn on_data(
        &mut self,
        data: &mut BytesMut,
        conn: &mut HandlerContext<'_>,
    ) -> Result<Flow, ExitReason> {
        if self.hoarding {
            return Ok(Flow::Continue);
        }
        echo_back(data, conn).await
    }

    fn on_error(&mut self, error: &ConnError, _info: &ConnInfo) -> Result<(), ExitReason> {
        let reported = match error {
            ConnError::SendTimeout { timeout } => Reported::SendTimeout(*timeout),
            ConnError::ReadBufferFull { buffered, max } => Reported::ReadBufferFull {
                buffered: *buffered,
                max: *max,
            },
            other => Reported::Other(other.to_string()),
        };
        self.errors.send(reported).unwrap();
        Ok(())
    }
}

fn reporting(hoarding: bool) -> (Reporting, tokio::sync::mpsc::UnboundedReceiver<Reported>) {
    let (errors, rx) = tokio::sync::mpsc::unbounded_channel();
    (Reporting { hoarding, errors }, rx)
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_never_reads_is_closed_at_the_send_timeout() {
    let logs = Logs::default();
    let _capture = logs.capture();
    let (handler, mut errors) = reporting(false);
    let server = Server::new()
        .bind(localhost())
        .serve_handler(handler)
        .unwrap();
    let started = Instant::now();
    let mut client = small_window_client(addr(&server)).await;
    let peer = format!("peer={}", client.local_addr().unwrap());
    let sent = within(10 * 60 * SECOND, write_never_read(&mut client, 256 << 20)).await;
    assert!(sent < 256 << 20, "the server never stopped taking bytes");
    let stats = stats_until(&server, |s| s.active == 0).await;
    let closed_at = started.elapsed();
    assert!(
        closed_at >= 30 * SECOND && closed_at < 31 * SECOND,
        "the default send timeout is 30 s: closed after {closed_at:?}"
    );
    assert_eq!((stats.errored, stats.send_timeouts), (1, 1));
    assert_balanced(&stats);
    assert_eq!(
        errors.try_recv().unwrap(),
        Reported::SendTimeout(30 * SECOND)
    );
    let text = logs.text();
    let closed = text
        .lines()
        .find(|l| l.contains("connection closed") && l.contains(&peer))
        .unwrap_or_else(|| panic!("no close event:\n{text}"));
    assert!(closed.contains("reason=send_timeout"), "{closed}");
}

/// Echoes, and reports what its writes ended with.
async fn echo_reporting(
    mut conn: Connection,
    errors: tokio::sync::mpsc::UnboundedSender<(std::io::ErrorKind, bool)>,
) -> Result<(), ExitReason> {
    let mut buf = vec![0u8; 8192];
    loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        if let Err(error) = conn.write_all(&buf[..n]).await {
            let inner = error.get_ref().and_then(|e| e.downcast_ref::<ConnError>());
            let typed = matches!(inner, Some(ConnError::SendTimeout { .. }));
            errors.send((error.kind(), typed)).unwrap();
            return Err(error.into());
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_connection_function_gets_timed_out_from_its_write() {
    let (tx, mut errors) = tokio::sync::mpsc::unbounded_channel();
    let server = Server::new()
        .bind(localhost())
        .serve_fn(move |conn| echo_reporting(conn, tx.clone()))
        .unwrap();
    let started = Instant::now();
    let mut client = small_window_client(addr(&server)).await;
    within(10 * 60 * SECOND, write_never_read(&mut client, 256 << 20)).await;
    let (kind, typed) = within(SECOND, errors.recv()).await.unwrap();
    assert_eq!(kind, std::io::ErrorKind::TimedOut);
    assert!(typed, "the inner error is a ConnError::SendTimeout");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= 30 * SECOND && elapsed < 31 * SECOND,
        "{elapsed:?}"
    );
    let stats = stats_until(&server, |s| s.active == 0).await;
    assert_eq!((stats.errored, stats.send_timeouts), (1, 1));
}

/// Sends `total` bytes as soon as the connection is up, through a small send buffer.
#[derive(Clone)]
struct Firehose {
    total: usize,
}

impl Handler for Firehose {
    async fn on_connect(&mut self, conn: &mut HandlerContext<'_>) -> Result<Flow, ExitReason> {
        let tcp = conn.stream().tcp().unwrap();
        socket2::SockRef::from(tcp).set_send_buffer_size(4096)?;
        let block = vec![b'y'; 4096];
        for _ in 0..self.total / block.len() {
            conn.send(&block).await?;
        }
        Ok(Flow::Close)
    }

    async fn on_data(
        &mut self,
        data: &mut BytesMut,
        _conn: &mut HandlerContext<'_>,
    ) -> Result<Flow, ExitReason> {
        data.clear();
        Ok(Flow::Continue)
    }
}

// Real time, not the paused clock: a reader's progress reaches the writer through the
// kernel's TCP timers (window updates, zero-window probes), which a paused clock would
// outrun.
#[tokio::test]
async fn a_slow_but_moving_reader_is_never_cut_off() {
    const TOTAL: usize = 64 * 1024;
    const SEND_TIMEOUT: Duration = Duration::from_millis(600);
    let server = Server::new()
        .bind(localhost())
        .send_timeout(Some(SEND_TIMEOUT))
        .serve_handler(Firehose { total: TOTAL })
        .unwrap();
    let mut client = small_window_client(addr(&server)).await;
    let started = std::time::Instant::now();
    let mut got = 0;
    let mut buf = vec![0u8; 8 * 1024];
    // 8 KiB every 150 ms: each wait well inside the send timeout, the whole twice as long.
    while got < TOTAL {
        tokio::time::sleep(Duration::from_millis(150)).await;
        match within(10 * SECOND, client.read(&mut buf)).await.unwrap() {
            0 => break,
            n => got += n,
        }
    }
    assert_eq!(got, TOTAL, "closed after {:?}", started.elapsed());
    assert!(
        started.elapsed() > 2 * SEND_TIMEOUT,
        "{:?}",
        started.elapsed()
    );
    let stats = stats_until(&server, |s| s.active == 0).await;
    assert_eq!(
        (stats.closed, stats.errored, stats.send_timeouts),
        (1, 0, 0)
    );
}

#[tokio::test]
async fn an_unending_partial_frame_is_cut_at_the_read_buffer_limit() {
    for (limit, max) in [(None, 1 << 20), (Some(64 * 1024), 64 * 1024)] {
        let (handler, mut errors) = reporting(true);
        let mut server = Server::new().bind(localhost());
        if let Some(limit) = limit {
            server = server.max_read_buffer(limit);
        }
        let server = server.serve_handler(handler).unwrap();
        let mut client = TcpStream::connect(addr(&server)).await.unwrap();
        // Far more than the limit (1 MiB by default), unless the server closes first.
        let sent = within(10 * SECOND, write_never_read(&mut client, 64 << 20)).await;
        assert!(sent < 64 << 20, "the server kept taking an unending frame");
        assert!(read_until_closed(&mut client).await.is_empty());
        let stats = stats_until(&server, |s| s.active == 0).await;
        assert_eq!(stats.errored, 1);
        assert_balanced(&stats);
        match errors.try_recv().unwrap() {
            Reported::ReadBufferFull { buffered, max: m } => {
                assert_eq!(m, max);
                // Over the limit by at most one read (8 KiB).
                assert!(buffered > max && buffered <= max + 8 * 1024, "{buffered}");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_callback_blocked_when_the_lifetime_passes_is_killed() {
    let server = Server::new()
        .bind(localhost())
        .lifetime(Some(10 * SECOND))
        .serve_handler(Blocking)
        .unwrap();
    let started = Instant::now();
    let mut client = TcpStream::connect(addr(&server)).await.unwrap();
    client.write_all(b"block").await.unwrap();
    within(60 * SECOND, read_until_closed(&mut client)).await;
    assert_eq!(started.elapsed(), 10 * SECOND);
    let stats = stats_until(&server, |s| s.active == 0).await;
    assert_eq!(stats.killed, 1);
    assert_balanced(&stats);
}

#[tokio::test(start_paused = true)]
async fn a_write_blocked_when_the_lifetime_passes_is_killed() {
    // No send timeout: only the lifetime ends a write the peer never takes.
    let server = Server::new()
        .bind(localhost())
        .send_timeout(None)
        .lifetime(Some(45 * SECOND))
        .serve_handler(Echo)
        .unwrap();
    let started = Instant::now();
    let mut client = small_window_client(addr(&server)).await;
    within(10 * 60 * SECOND, write_never_read(&mut client, 256 << 20)).await;
    let stats = stats_until(&server, |s| s.active == 0).await;
    assert_eq!(started.elapsed(), 45 * SECOND);
    assert_eq!((stats.killed, stats.send_timeouts), (1, 0));
    assert_balanced(&stats);
}

#[tokio::test]
async fn an_ipv4_mapped_peer_and_the_same_ipv4_peer_count_once() {
    // A dual-stack socket bound to the IPv4-mapped loopback address sees IPv4 clients as
    // ::ffff:127.0.0.1; a plain IPv4 listener sees the same client as 127.0.0.1.
    let mapped: SocketAddr = "[::ffff:127.0.0.1]:0".parse().unwrap();
    let server = Server::new()
        .bind(mapped)
        .bind(localhost())
        .max_connections_per_ip(1)
        .serve_handler(Echo)
        .unwrap();
    let addrs: Vec<SocketAddr> = server
        .local_addrs()
        .iter()
        .map(|a| a.socket_addr().unwrap())
        .collect();
    let v4_port_of_mapped = SocketAddr::from(([127, 0, 0, 1], addrs[0].port()));
    let mut first = TcpStream::connect(v4_port_of_mapped).await.unwrap();
    assert_eq!(round_trip(&mut first, b"mapped").await, b"mapped");
    let mut second = TcpStream::connect(addrs[1]).await.unwrap();
    assert!(
        within(5 * SECOND, read_until_closed(&mut second))
            .await
            .is_empty(),
        "the same IPv4 peer was admitted twice"
    );
    let stats = stats_until(&server, |s| s.rejected == 1).await;
    assert_eq!(stats.active, 1);
}
