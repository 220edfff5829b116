//! One global `max_connections` under both overload policies, the per-IP cap, and the typed
//! errors of a server that cannot start.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use beamline_server::{ListenAddr, Overload, Server, StartError};
use common::*;
use tokio::net::TcpStream;

#[tokio::test]
async fn pause_keeps_connections_beyond_the_limit_waiting_until_one_ends() {
    let server = Server::new()
        .bind(localhost())
        .acceptors(2)
        .max_connections(2)
        .overload(Overload::Pause)
        .serve_handler(Echo)
        .unwrap();
    let mut a = TcpStream::connect(addr(&server)).await.unwrap();
    let mut b = TcpStream::connect(addr(&server)).await.unwrap();
    assert_eq!(round_trip(&mut a, b"a").await, b"a");
    assert_eq!(round_trip(&mut b, b"b").await, b"b");
    // The kernel completes the third connection (backlog), but nobody accepts it.
    let mut c = TcpStream::connect(addr(&server)).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut c, b"c")
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let waited = tokio::time::timeout(
        Duration::from_millis(200),
        tokio::io::AsyncReadExt::read_exact(&mut c, &mut byte),
    )
    .await;
    assert!(
        waited.is_err(),
        "a third connection was served past the limit"
    );
    let stats = server.stats();
    assert_eq!((stats.accepted, stats.active, stats.rejected), (2, 2, 0));
    // One ends: the waiting one is accepted and its queued byte answered.
    drop(a);
    tokio::io::AsyncReadExt::read_exact(&mut c, &mut byte)
        .await
        .unwrap();
    assert_eq!(&byte, b"c");
    let stats = stats_until(&server, |s| s.closed == 1).await;
    assert_eq!((stats.accepted, stats.active, stats.rejected), (3, 2, 0));
}

#[tokio::test]
async fn reject_accepts_and_closes_beyond_the_limit_and_counts_it() {
    let server = Server::new()
        .bind(localhost())
        .max_connections(1)
        .overload(Overload::Reject)
        .serve_handler(Echo)
        .unwrap();
    let mut a = TcpStream::connect(addr(&server)).await.unwrap();
    assert_eq!(round_trip(&mut a, b"a").await, b"a");
    for _ in 0..3 {
        let mut extra = TcpStream::connect(addr(&server)).await.unwrap();
        assert!(read_until_closed(&mut extra).await.is_empty());
    }
    let stats = stats_until(&server, |s| s.rejected == 3).await;
    assert_eq!((stats.accepted, stats.active), (4, 1));
    assert_balanced(&stats);
    // The limit is one global number: once `a` ends, the next one is served.
    drop(a);
    stats_until(&server, |s| s.active == 0).await;
    let mut next = TcpStream::connect(addr(&server)).await.unwrap();
    assert_eq!(round_trip(&mut next, b"n").await, b"n");
}

#[tokio::test]
async fn the_limit_is_global_across_addresses_and_acceptors() {
    let server = Server::new()
        .bind(localhost())
        .bind(localhost())
        .acceptors(3)
        .max_connections(2)
        .overload(Overload::Reject)
        .serve_handler(Echo)
        .unwrap();
    let addrs: Vec<_> = server
        .local_addrs()
        .iter()
        .map(|a| a.socket_addr().unwrap())
        .collect();
    let mut first = TcpStream::connect(addrs[0]).await.unwrap();
    let mut second = TcpStream::connect(addrs[1]).await.unwrap();
    assert_eq!(round_trip(&mut first, b"1").await, b"1");
    assert_eq!(round_trip(&mut second, b"2").await, b"2");
    let mut third = TcpStream::connect(addrs[0]).await.unwrap();
    assert!(read_until_closed(&mut third).await.is_empty());
    assert_eq!(stats_until(&server, |s| s.rejected == 1).await.active, 2);
}

#[tokio::test]
async fn the_per_ip_cap_rejects_beyond_it_and_frees_when_one_ends() {
    let server = Server::new()
        .bind(localhost())
        .max_connections_per_ip(2)
        .serve_handler(Echo)
        .unwrap();
    let mut a = TcpStream::connect(addr(&server)).await.unwrap();
    let mut b = TcpStream::connect(addr(&server)).await.unwrap();
    assert_eq!(round_trip(&mut a, b"a").await, b"a");
    assert_eq!(round_trip(&mut b, b"b").await, b"b");
    let mut c = TcpStream::connect(addr(&server)).await.unwrap();
    assert!(read_until_closed(&mut c).await.is_empty());
    assert_eq!(stats_until(&server, |s| s.rejected == 1).await.active, 2);
    drop(a);
    stats_until(&server, |s| s.active == 1).await;
    let mut d = TcpStream::connect(addr(&server)).await.unwrap();
    assert_eq!(round_trip(&mut d, b"d").await, b"d");
}

#[tokio::test]
async fn bad_settings_are_typed_errors() {
    let invalid = |server: Server| match server.serve_handler(Echo) {
        Err(StartError::Invalid { setting, .. }) => setting,
        other => panic!("expected an invalid setting, got {other:?}"),
    };
    let base = || Server::new().bind(localhost());
    assert_eq!(invalid(base().acceptors(0)), "acceptors");
    assert_eq!(invalid(base().max_connections(0)), "max_connections");
    assert_eq!(
        invalid(base().max_connections(usize::MAX)),
        "max_connections"
    );
    assert_eq!(
        invalid(base().max_connections_per_ip(0)),
        "max_connections_per_ip"
    );
    assert_eq!(
        invalid(base().handshake_timeout(Duration::ZERO)),
        "handshake_timeout"
    );
    assert_eq!(
        invalid(base().read_timeout(Some(Duration::ZERO))),
        "read_timeout"
    );
    assert_eq!(
        invalid(base().send_timeout(Some(Duration::ZERO))),
        "send_timeout"
    );
    assert_eq!(invalid(base().lifetime(Some(Duration::ZERO))), "lifetime");
    assert_eq!(invalid(base().read_buffer(0)), "read_buffer");
    assert_eq!(invalid(base().max_read_buffer(0)), "max_read_buffer");
    assert_eq!(invalid(base().ip_prefix_v6(129)), "ip_prefix_v6");
    assert!(matches!(
        Server::new().serve_handler(Echo),
        Err(StartError::NoListeners)
    ));
}

#[tokio::test]
async fn an_address_in_use_is_a_bind_error_naming_it_and_nothing_is_left_running() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let free_addr = free.local_addr().unwrap();
    drop(free);
    let err = Server::new()
        .bind(free_addr)
        .bind(busy)
        .serve_handler(Echo)
        .unwrap_err();
    match &err {
        StartError::Bind { addr, source } => {
            assert_eq!(addr, &ListenAddr::Tcp(busy));
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains(&busy.to_string()));
    // The address bound before the failure was released.
    listen_reusable(free_addr).unwrap();
}

#[test]
fn starting_outside_a_runtime_is_an_error_not_a_panic() {
    let err = Server::new()
        .bind(localhost())
        .serve_handler(Echo)
        .unwrap_err();
    assert!(matches!(err, StartError::NoRuntime), "{err:?}");
}
