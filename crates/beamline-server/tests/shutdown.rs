//! Two-phase graceful shutdown, suspend / resume, and dropping the handle.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use beamline_server::{
    Connection, ExitReason, Flow, Handler, HandlerContext, ResumeError, Server, ServerState,
    ShutdownError, SuspendError,
};
use bytes::BytesMut;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Says goodbye and closes during a drain.
#[derive(Clone)]
struct Polite;

impl Handler for Polite {
    async fn on_data(
        &mut self,
        data: &mut BytesMut,
        conn: &mut HandlerContext<'_>,
    ) -> Result<Flow, ExitReason> {
        echo_back(data, conn).await
    }

    async fn on_shutdown(&mut self, conn: &mut HandlerContext<'_>) -> Result<Flow, ExitReason> {
        conn.send(b"goodbye\n").await?;
        Ok(Flow::Close)
    }
}

/// Keeps serving during a drain (and never times out by itself).
#[derive(Clone)]
struct Stubborn;

impl Handler for Stubborn {
    async fn on_data(
        &mut self,
        data: &mut BytesMut,
        conn: &mut HandlerContext<'_>,
    ) -> Result<Flow, ExitReason> {
        echo_back(data, conn).await
    }

    async fn on_shutdown(&mut self, conn: &mut HandlerContext<'_>) -> Result<Flow, ExitReason> {
        conn.send(b"finishing\n").await?;
        Ok(Flow::Continue)
    }
}

async fn connect_all(server: &beamline_server::ServerHandle, n: usize) -> Vec<TcpStream> {
    let mut clients = Vec::new();
    for i in 0..n {
        let mut c = TcpStream::connect(addr(server)).await.unwrap();
        let msg = [i as u8];
        assert_eq!(round_trip(&mut c, &msg).await, msg);
        clients.push(c);
    }
    clients
}

#[tokio::test(start_paused = true)]
async fn a_drain_returns_as_soon_as_every_connection_has_said_goodbye() {
    let server = Server::new()
        .bind(localhost())
        .serve_handler(Polite)
        .unwrap();
    let mut clients = connect_all(&server, 10).await;
    let started = Instant::now();
    let report = server.shutdown(Duration::from_secs(30)).await.unwrap();
    assert_eq!((report.drained, report.aborted), (10, 0));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    for c in &mut clients {
        assert_eq!(read_until_closed(c).await, b"goodbye\n");
    }
    assert_eq!(server.state(), ServerState::Stopped);
    let stats = server.stats();
    assert_eq!((stats.closed, stats.killed, stats.active), (10, 0, 0));
    assert_balanced(&stats);
    // Nothing of ours listens any more: a connect is refused, or (the port is free for any
    // process of this shared machine to take) reaches someone else.
    if let Ok(stranger) = TcpStream::connect(addr(&server)).await {
        drop(stranger);
        tokio::task::yield_now().await;
        assert_eq!(server.stats().accepted, 10, "accepted after the shutdown");
    }
}

#[tokio::test(start_paused = true)]
async fn a_drain_aborts_at_the_deadline_what_does_not_end_and_reports_it() {
    let server = Server::new()
        .bind(localhost())
        .read_timeout(None)
        .serve_handler(Stubborn)
        .unwrap();
    let mut clients = connect_all(&server, 5).await;
    // One of them ends by itself during the drain.
    let mut leaving = clients.pop().unwrap();
    let started = Instant::now();
    let drain = server.shutdown(Duration::from_secs(10));
    let leave = async {
        let mut line = [0u8; 10];
        leaving.read_exact(&mut line).await.unwrap();
        assert_eq!(&line, b"finishing\n");
        // Still served while draining.
        assert_eq!(round_trip(&mut leaving, b"last").await, b"last");
        drop(leaving);
        // Yield (the paused clock stays put) until the server has seen the close: on a
        // loaded machine the FIN can reach the socket a moment after the runtime goes idle.
        stats_until(&server, |s| s.closed == 1).await;
    };
    let (report, ()) = tokio::join!(drain, leave);
    let report = report.unwrap();
    assert_eq!((report.drained, report.aborted), (1, 4));
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    for c in &mut clients {
        assert_eq!(read_until_closed(c).await, b"finishing\n");
    }
    let stats = server.stats();
    assert_eq!((stats.closed, stats.killed, stats.active), (1, 4, 0));
    assert_balanced(&stats);
}

#[tokio::test(start_paused = true)]
async fn a_connection_function_that_ignores_the_drain_is_closed_at_once() {
    let server = Server::new()
        .bind(localhost())
        .read_timeout(None)
        .serve_fn(echo_fn)
        .unwrap();
    let mut clients = connect_all(&server, 3).await;
    let started = Instant::now();
    let report = server.shutdown(Duration::from_secs(60)).await.unwrap();
    assert_eq!((report.drained, report.aborted), (3, 0));
    assert!(started.elapsed() < Duration::from_secs(1));
    for c in &mut clients {
        assert!(read_until_closed(c).await.is_empty());
    }
}

async fn waves_goodbye(mut conn: Connection) -> Result<(), ExitReason> {
    let shutdown = conn.shutdown_signal();
    let mut buf = [0u8; 64];
    loop {
        tokio::select! {
            n = conn.read(&mut buf) => {
                let n = n?;
                if n == 0 {
                    return Ok(());
                }
                conn.write_all(&buf[..n]).await?;
            }
            () = shutdown.requested() => {
                assert!(shutdown.is_requested());
                conn.write_all(b"bye from the function\n").await?;
                return Ok(());
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_connection_function_that_takes_the_signal_says_goodbye() {
    let server = Server::new()
        .bind(localhost())
        .serve_fn(waves_goodbye)
        .unwrap();
    let mut clients = connect_all(&server, 3).await;
    let report = server.shutdown(Duration::from_secs(60)).await.unwrap();
    assert_eq!((report.drained, report.aborted), (3, 0));
    for c in &mut clients {
        assert_eq!(read_until_closed(c).await, b"bye from the function\n");
    }
}

/// Tests bind port 0, so the port a suspended server frees lies in the ephemeral range, where
/// a connection of a test running beside this one may be given it as its local port for a
/// moment; binding it again then fails until that connection closes. Retry for a while.
async fn resume_when_free(server: &beamline_server::ServerHandle) {
    for _ in 0..100 {
        match server.resume().await {
            Err(ResumeError::Bind { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other.unwrap(),
        }
    }
    panic!("the port stayed taken");
}

#[tokio::test]
async fn suspend_closes_the_listeners_without_touching_live_connections() {
    let server = Server::new()
        .bind(localhost())
        .acceptors(2)
        .serve_handler(Echo)
        .unwrap();
    let target = addr(&server);
    let mut live = TcpStream::connect(target).await.unwrap();
    assert_eq!(round_trip(&mut live, b"before").await, b"before");

    server.suspend().await.unwrap();
    assert_eq!(server.state(), ServerState::Suspended);
    let refused = TcpStream::connect(target).await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    assert_eq!(round_trip(&mut live, b"during").await, b"during");
    assert!(matches!(
        server.suspend().await,
        Err(SuspendError::NotRunning {
            state: ServerState::Suspended
        })
    ));

    resume_when_free(&server).await;
    assert_eq!(server.local_addr(), Some(target), "the same port");
    let mut fresh = TcpStream::connect(target).await.unwrap();
    assert_eq!(round_trip(&mut fresh, b"after").await, b"after");
    assert_eq!(round_trip(&mut live, b"still").await, b"still");
    assert!(matches!(
        server.resume().await,
        Err(ResumeError::NotSuspended {
            state: ServerState::Running
        })
    ));

    // A suspended server can still drain.
    server.suspend().await.unwrap();
    let report = server.shutdown(Duration::from_secs(1)).await.unwrap();
    assert_eq!((report.drained, report.aborted), (2, 0));
    assert!(matches!(
        server.shutdown(Duration::from_secs(1)).await,
        Err(ShutdownError::AlreadyShutDown {
            state: ServerState::Stopped
        })
    ));
    assert!(matches!(
        server.resume().await,
        Err(ResumeError::NotSuspended {
            state: ServerState::Stopped
        })
    ));
}

#[tokio::test]
async fn resume_reports_a_port_taken_meanwhile_and_can_retry() {
    let server = Server::new().bind(localhost()).serve_handler(Echo).unwrap();
    let target = addr(&server);
    server.suspend().await.unwrap();
    let mut squatter = None;
    for _ in 0..100 {
        // (See resume_when_free.)
        match listen_reusable(target) {
            Ok(socket) => {
                squatter = Some(socket);
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let squatter = squatter.expect("the port stayed taken");
    match server.resume().await {
        Err(ResumeError::Bind { addr, source }) => {
            assert_eq!(addr.socket_addr(), Some(target));
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.state(), ServerState::Suspended);
    drop(squatter);
    resume_when_free(&server).await;
    let mut client = TcpStream::connect(target).await.unwrap();
    assert_eq!(round_trip(&mut client, b"back").await, b"back");
}

#[test]
fn dropping_the_handle_leaks_nothing() {
    // Counting this process's descriptors needs no other test running beside it.
    alone_in_child("dropping_the_handle_leaks_nothing", drop_leaks_nothing);
}

async fn drop_leaks_nothing() {
    let baseline = beamline_testkit::open_fds();
    let dir = std::env::temp_dir().join(format!("beamline-server-drop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    let _ = std::fs::remove_file(&path);
    let server = Server::new()
        .bind(localhost())
        .bind_unix(&path)
        .acceptors(2)
        .reuseport(true)
        .serve_handler(Polite)
        .unwrap();
    let mut clients = connect_all(&server, 5).await;
    let stats = server.stats();
    assert_eq!(stats.active, 5);
    drop(server);
    // Every connection is closed (killed: no goodbye), every listener too.
    for c in &mut clients {
        let said = tokio::time::timeout(Duration::from_secs(5), read_until_closed(c)).await;
        assert!(said.expect("a connection outlived its server").is_empty());
    }
    drop(clients);
    let started = std::time::Instant::now();
    while (beamline_testkit::open_fds() > baseline || path.exists())
        && started.elapsed() < Duration::from_secs(5)
    {
        tokio::task::yield_now().await;
    }
    assert_eq!(beamline_testkit::open_fds(), baseline, "descriptors leaked");
    assert!(!path.exists(), "the Unix socket file was left behind");
    let _ = std::fs::remove_dir(&dir);
}
