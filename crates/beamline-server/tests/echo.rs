//! Serving real sockets: echo round trips over TCP and Unix in both handler forms, a
//! pipelined Framed loop, 1,000 concurrent connections, and the socket options.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use beamline_server::{
    Connection, ExitReason, Flow, Handler, HandlerContext, ListenAddr, Server, Transport,
};
use bytes::BytesMut;
use common::*;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio_util::codec::{Framed, LinesCodec};

#[tokio::test]
async fn the_callback_form_echoes_and_counts_every_byte() {
    let server = Server::new().bind(localhost()).serve_handler(Echo).unwrap();
    let mut client = TcpStream::connect(addr(&server)).await.unwrap();
    assert_eq!(round_trip(&mut client, b"hello").await, b"hello");
    assert_eq!(round_trip(&mut client, b" world!").await, b" world!");
    drop(client);
    let stats = stats_until(&server, |s| s.closed == 1).await;
    assert_eq!((stats.accepted, stats.active), (1, 0));
    assert_eq!((stats.bytes_in, stats.bytes_out), (12, 12));
    assert_balanced(&stats);
}

#[tokio::test]
async fn the_stream_form_echoes() {
    let server = Server::new().bind(localhost()).serve_fn(echo_fn).unwrap();
    let mut client = TcpStream::connect(addr(&server)).await.unwrap();
    for msg in [&b"one"[..], b"two", &[7u8; 10_000]] {
        assert_eq!(round_trip(&mut client, msg).await, msg);
    }
    drop(client);
    let stats = stats_until(&server, |s| s.closed == 1).await;
    assert_eq!(stats.bytes_in, 10_006);
}

/// The facade's kv server shape: a pipelined request/response loop over `Framed`.
#[tokio::test]
async fn a_pipelined_framed_loop_answers_every_request_in_order() {
    let server = Server::new()
        .bind(localhost())
        .serve_fn(|conn: Connection| async move {
            let mut framed = Framed::new(conn, LinesCodec::new_with_max_length(8 * 1024));
            while let Some(line) = framed.next().await {
                let line = line?;
                framed.feed(line.to_uppercase()).await?;
                // Answer a whole pipelined batch with one write.
                if framed.read_buffer().is_empty() {
                    SinkExt::<String>::flush(&mut framed).await?;
                }
            }
            Ok(())
        })
        .unwrap();
    let client = TcpStream::connect(addr(&server)).await.unwrap();
    let mut framed = Framed::new(client, LinesCodec::new_with_max_length(8 * 1024));
    for i in 0..200 {
        framed.feed(format!("get key{i}")).await.unwrap();
    }
    SinkExt::<String>::flush(&mut framed).await.unwrap();
    for i in 0..200 {
        assert_eq!(framed.next().await.unwrap().unwrap(), format!("GET KEY{i}"));
    }
}

/// Reports what the handler sees of its connection, then echoes.
#[derive(Clone)]
struct Describe;

impl Handler for Describe {
    async fn on_connect(&mut self, conn: &mut HandlerContext<'_>) -> Result<Flow, ExitReason> {
        let info = conn.info().clone();
        let line = format!(
            "{} {} {} {}\n",
            info.id().as_u64(),
            info.transport(),
            info.peer(),
            info.local()
        );
        conn.send(line.as_bytes()).await?;
        Ok(Flow::Continue)
    }

    async fn on_data(
        &mut self,
        data: &mut BytesMut,
        conn: &mut HandlerContext<'_>,
    ) -> Result<Flow, ExitReason> {
        echo_back(data, conn).await
    }
}

async fn first_line<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while stream.read_exact(&mut byte).await.is_ok() && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    String::from_utf8(line).unwrap()
}

#[tokio::test]
async fn handlers_see_their_connection_id_and_addresses() {
    let server = Server::new()
        .bind(localhost())
        .serve_handler(Describe)
        .unwrap();
    let mut a = TcpStream::connect(addr(&server)).await.unwrap();
    let mut b = TcpStream::connect(addr(&server)).await.unwrap();
    let (la, lb) = (first_line(&mut a).await, first_line(&mut b).await);
    let fields: Vec<&str> = la.split(' ').collect();
    assert_eq!(fields[1], "tcp");
    assert_eq!(fields[2], a.local_addr().unwrap().to_string());
    assert_eq!(fields[3], addr(&server).to_string());
    assert_ne!(la.split(' ').next(), lb.split(' ').next(), "ids are unique");
}

#[tokio::test]
async fn a_unix_socket_serves_and_its_file_goes_with_the_listener() {
    let dir = std::env::temp_dir().join(format!("beamline-server-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("echo.sock");
    let _ = std::fs::remove_file(&path);
    let server = Server::new()
        .bind_unix(&path)
        .serve_handler(Describe)
        .unwrap();
    assert_eq!(server.local_addrs(), [ListenAddr::Unix(path.clone())]);
    assert_eq!(server.local_addrs()[0].transport(), Transport::Unix);
    let mut client = UnixStream::connect(&path).await.unwrap();
    let line = first_line(&mut client).await;
    assert!(line.contains(" unix unix:(unnamed) unix:"), "{line}");
    client.write_all(b"over unix").await.unwrap();
    let mut back = [0u8; 9];
    client.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"over unix");
    drop(client);
    server.shutdown(Duration::from_secs(1)).await.unwrap();
    assert!(
        !path.exists(),
        "the socket file is removed with the listener"
    );
    let _ = std::fs::remove_dir(&dir);
}

#[test]
fn a_thousand_concurrent_connections_are_all_served() {
    const TEST: &str = "a_thousand_concurrent_connections_are_all_served";
    // Client and server ends of 1,000 connections in one process: 2,000+ descriptors.
    if fd_limit() < 2_200 && !is_child(TEST) {
        run_in_child(TEST, 4_096);
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let server = Server::new()
                .bind(localhost())
                .backlog(1024)
                .serve_fn(echo_fn)
                .unwrap();
            let target = addr(&server);
            let clients: Vec<_> = (0..1_000u32)
                .map(|i| {
                    tokio::spawn(async move {
                        let mut client = TcpStream::connect(target).await.unwrap();
                        let msg = i.to_be_bytes();
                        assert_eq!(round_trip(&mut client, &msg).await, msg);
                        client
                    })
                })
                .collect();
            let mut open = Vec::new();
            for client in clients {
                open.push(client.await.unwrap());
            }
            // All 1,000 are live at once.
            let stats = server.stats();
            assert_eq!((stats.accepted, stats.active), (1_000, 1_000));
            drop(open);
            let stats = stats_until(&server, |s| s.closed == 1_000).await;
            assert_eq!(stats.active, 0);
            assert_balanced(&stats);
        });
}

#[tokio::test]
async fn accepted_sockets_get_nodelay_and_keepalive() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let server = Server::new()
        .bind(localhost())
        .keepalive(Some(Duration::from_secs(30)))
        .serve_fn(move |mut conn: Connection| {
            let tx = tx.clone();
            async move {
                let tcp = conn.stream().tcp().unwrap();
                let sock = socket2::SockRef::from(tcp);
                tx.send((
                    tcp.nodelay()?,
                    sock.keepalive()?,
                    sock.tcp_keepalive_time()?,
                ))
                .unwrap();
                Ok(())
            }
        })
        .unwrap();
    let _client = TcpStream::connect(addr(&server)).await.unwrap();
    let (nodelay, keepalive, idle) = rx.recv().await.unwrap();
    assert!(nodelay, "TCP_NODELAY is on by default");
    assert!(keepalive);
    assert_eq!(idle, Duration::from_secs(30));

    let plain = Server::new()
        .bind(localhost())
        .nodelay(false)
        .serve_fn(|mut conn: Connection| async move {
            assert!(!conn.stream().tcp().unwrap().nodelay()?);
            conn.write_all(b"k").await?;
            Ok(())
        })
        .unwrap();
    let mut client = TcpStream::connect(addr(&plain)).await.unwrap();
    assert_eq!(read_until_closed(&mut client).await, b"k");
    assert_eq!(
        stats_until(&plain, |s| s.closed + s.panicked == 1)
            .await
            .closed,
        1
    );
}

/// Listening sockets on `port` in /proc/net/tcp (state 0A = LISTEN).
fn listeners_on(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let suffix = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields[1].ends_with(&suffix) && fields[3] == "0A"
        })
        .count()
}

#[tokio::test]
async fn reuseport_gives_each_acceptor_its_own_listener() {
    let shared = Server::new()
        .bind(localhost())
        .acceptors(3)
        .serve_handler(Echo)
        .unwrap();
    assert_eq!(listeners_on(addr(&shared).port()), 1);
    let spread = Server::new()
        .bind(localhost())
        .acceptors(3)
        .reuseport(true)
        .serve_handler(Echo)
        .unwrap();
    let port = addr(&spread).port();
    assert_eq!(listeners_on(port), 3);
    for i in 0..30u8 {
        let mut client = TcpStream::connect(addr(&spread)).await.unwrap();
        assert_eq!(round_trip(&mut client, &[i]).await, [i]);
    }
    assert_eq!(spread.stats().accepted, 30);
    spread.shutdown(Duration::from_secs(1)).await.unwrap();
    assert_eq!(listeners_on(port), 0);
}
