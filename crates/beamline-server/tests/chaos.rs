//! Faults injected between clients and the server by beamline-chaos: a reset ends only its
//! own connection, a blackholed peer is closed at the read timeout, and a handshake slowed
//! past the handshake timeout is a counted failure — while the server goes on serving.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use beamline_chaos::{Direction, Fault, Proxy};
use beamline_server::Server;
use beamline_testkit::TestPki;
use common::*;
use rustls_pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

#[tokio::test]
async fn a_reset_ends_only_the_connection_it_hits() {
    let server = Server::new().bind(localhost()).serve_handler(Echo).unwrap();
    let proxy = Proxy::start(localhost(), addr(&server)).await.unwrap();
    let mut direct = TcpStream::connect(addr(&server)).await.unwrap();
    let mut proxied = TcpStream::connect(proxy.local_addr()).await.unwrap();
    assert_eq!(round_trip(&mut proxied, b"before").await, b"before");
    stats_until(&server, |s| s.active == 2).await;

    proxy.reset_all();
    // The server's side of the proxied connection got an RST: an error, counted.
    let stats = stats_until(&server, |s| s.errored == 1).await;
    assert_eq!(stats.active, 1);
    assert_eq!(round_trip(&mut direct, b"unaffected").await, b"unaffected");
    let mut again = TcpStream::connect(proxy.local_addr()).await.unwrap();
    assert_eq!(round_trip(&mut again, b"again").await, b"again");
    proxy.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_blackholed_peer_is_closed_at_the_read_timeout() {
    let server = Server::new()
        .bind(localhost())
        .read_timeout(Some(Duration::from_secs(20)))
        .serve_handler(Echo)
        .unwrap();
    let proxy = Proxy::start(localhost(), addr(&server)).await.unwrap();
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    assert_eq!(round_trip(&mut client, b"hi").await, b"hi");
    let started = Instant::now();
    proxy.apply(Direction::Upstream, Fault::Blackhole);
    // The client keeps talking; none of it reaches the server.
    client.write_all(b"anyone there?").await.unwrap();
    assert!(read_until_closed(&mut client).await.is_empty());
    assert_eq!(started.elapsed(), Duration::from_secs(20));
    assert_eq!(stats_until(&server, |s| s.closed == 1).await.active, 0);
    proxy.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_handshake_slowed_past_its_timeout_fails_and_a_fast_one_succeeds() {
    let pki = TestPki::new();
    let server = Server::new()
        .bind_tls(localhost(), pki.server_config())
        .handshake_timeout(Duration::from_secs(2))
        .serve_handler(Echo)
        .unwrap();
    let proxy = Proxy::start(localhost(), addr(&server)).await.unwrap();
    let connector = TlsConnector::from(pki.client_config());
    let name = ServerName::try_from("localhost").unwrap();

    // 800 ms each way: the server has the client's Finished 3 x 800 ms after accepting,
    // past its 2 s timeout. (The client may think it is done at 1.6 s; the server is not.)
    proxy.apply(Direction::Both, Fault::latency(Duration::from_millis(800)));
    let started = Instant::now();
    let slow = TcpStream::connect(proxy.local_addr()).await.unwrap();
    if let Ok(mut tls) = connector.connect(name.clone(), slow).await {
        let mut byte = [0u8; 1];
        let read = tokio::io::AsyncReadExt::read(&mut tls, &mut byte).await;
        assert!(!matches!(read, Ok(1)), "served after a failed handshake");
    }
    stats_until(&server, |s| s.handshake_failures == 1).await;
    assert!(started.elapsed() >= Duration::from_secs(2));

    // 200 ms each way: well within the timeout.
    proxy.apply(Direction::Both, Fault::latency(Duration::from_millis(200)));
    let fast = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let mut tls = connector.connect(name, fast).await.unwrap();
    tls.write_all(b"tls").await.unwrap();
    tls.flush().await.unwrap();
    let mut back = [0u8; 3];
    tokio::io::AsyncReadExt::read_exact(&mut tls, &mut back)
        .await
        .unwrap();
    assert_eq!(&back, b"tls");
    let stats = server.stats();
    assert_eq!((stats.handshake_failures, stats.active), (1, 1));
    proxy.shutdown().await;
}
