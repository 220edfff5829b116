//! Drop and shutdown always finish the job: dropping the handle kills connections blocked in
//! a callback or a write, a cancelled shutdown can be called again, and the connections
//! waiting in the kernel backlog when a listener closes are accepted, closed and counted.

#![allow(clippy::unwrap_used)]

mod common;

use std::task::Poll;
use std::time::Duration;

use beamline_server::{Handler, Overload, Server, ServerHandle, ServerState};
use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn dropping_the_handle_kills_connections_blocked_in_a_callback_or_a_write() {
    // Counting this process's descriptors and tasks needs no other test beside it.
    alone_in_child(
        "dropping_the_handle_kills_connections_blocked_in_a_callback_or_a_write",
        drop_kills_blocked_connections,
    );
}

async fn drop_kills_blocked_connections() {
    let fds = beamline_testkit::open_fds();
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks = metrics.num_alive_tasks();
    let server = Server::new()
        .bind(localhost())
        .acceptors(1)
        .serve_handler(Blocking)
        .unwrap();
    // Blocked in a callback.
    let mut in_callback = TcpStream::connect(addr(&server)).await.unwrap();
    in_callback.write_all(b"block").await.unwrap();
    // Blocked in a write: never reads its echo (and the send timeout is 30 s away).
    let mut in_write = TcpStream::connect(addr(&server)).await.unwrap();
    let chunk = vec![b'w'; 64 * 1024];
    let mut blocked = false;
    for _ in 0..1024 {
        if tokio::time::timeout(Duration::from_millis(50), in_write.write_all(&chunk))
            .await
            .is_err()
        {
            blocked = true;
            break;
        }
    }
    assert!(blocked, "the server never stopped taking bytes");
    assert_eq!(server.stats().active, 2);
    drop(server);
    for client in [&mut in_callback, &mut in_write] {
        let closed = tokio::time::timeout(5 * SECOND, read_until_closed(client)).await;
        closed.expect("a connection outlived its server");
    }
    drop((in_callback, in_write));
    let started = std::time::Instant::now();
    while (beamline_testkit::open_fds() > fds || metrics.num_alive_tasks() > tasks)
        && started.elapsed() < 5 * SECOND
    {
        tokio::task::yield_now().await;
    }
    assert_eq!(beamline_testkit::open_fds(), fds, "descriptors leaked");
    assert_eq!(metrics.num_alive_tasks(), tasks, "tasks leaked");
}

/// Polls `f` once.
async fn poll_once<F: std::future::Future>(mut f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx))).await
}

async fn server_with_clients<H: Handler + Clone + Sync>(
    handler: H,
    n: usize,
) -> (ServerHandle, Vec<TcpStream>) {
    let server = Server::new()
        .bind(localhost())
        .acceptors(1)
        .read_timeout(None)
        .serve_handler(handler)
        .unwrap();
    let mut clients = Vec::new();
    for i in 0..n {
        let mut c = TcpStream::connect(addr(&server)).await.unwrap();
        assert_eq!(round_trip(&mut c, &[i as u8]).await, [i as u8]);
        clients.push(c);
    }
    (server, clients)
}

/// After a cancelled shutdown, a second one (or a drop) ends the server: every client sees
/// its close and, after a shutdown, the counts add up.
async fn finishes(server: ServerHandle, mut clients: Vec<TcpStream>, drop_it: bool) {
    let stats = if drop_it {
        drop(server);
        None
    } else {
        let report = server.shutdown(10 * SECOND).await.unwrap();
        assert_eq!(server.state(), ServerState::Stopped);
        assert_eq!(report.drained + report.aborted, clients.len(), "{report:?}");
        Some(server.stats())
    };
    for c in &mut clients {
        tokio::time::timeout(60 * SECOND, read_until_closed(c))
            .await
            .expect("a connection outlived the shutdown");
    }
    if let Some(stats) = stats {
        assert_eq!(stats.active, 0);
        assert_balanced(&stats);
    }
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_cancelled_at_any_await_point_can_be_called_again_or_dropped() {
    // Cancel after 0, 1, 2, ... polls, yielding between them, until one finishes: a
    // cancellation at every await point it reaches. Then shut down again, or drop.
    // (The connections close when asked, so a drain needs no time to pass; a cancellation
    // while the drain waits for its deadline is the next test.)
    for drop_it in [false, true] {
        let mut polls = 0;
        loop {
            let (server, clients) = server_with_clients(Echo, 3).await;
            let finished = {
                let mut shutdown = std::pin::pin!(server.shutdown(10 * SECOND));
                let mut finished = false;
                for _ in 0..polls {
                    if let Poll::Ready(report) = poll_once(shutdown.as_mut()).await {
                        report.unwrap();
                        finished = true;
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                finished
            };
            if finished {
                // At least: stopping the acceptors, and the drain.
                assert!(polls >= 3, "too few await points to cancel at: {polls}");
                break;
            }
            finishes(server, clients, drop_it).await;
            polls += 1;
            assert!(polls < 200, "a shutdown that never finishes");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_cancelled_while_draining_can_be_called_again() {
    // The connections keep serving during a drain: it runs to its 10 s deadline.
    let (server, clients) = server_with_clients(Blocking, 3).await;
    // Half way through it.
    let cancelled = tokio::time::timeout(5 * SECOND, server.shutdown(10 * SECOND)).await;
    assert!(cancelled.is_err());
    assert_eq!(server.state(), ServerState::Draining);
    finishes(server, clients, false).await;
}

/// A server that serves one connection at a time, and leaves the rest waiting in the kernel's
/// backlog; `waiting` clients connect (the kernel completes their handshakes) behind a live one.
async fn backlogged(waiting: usize) -> (ServerHandle, TcpStream, Vec<TcpStream>) {
    let server = Server::new()
        .bind(localhost())
        .acceptors(1)
        .backlog(2048)
        .max_connections(1)
        .overload(Overload::Pause)
        .serve_handler(Echo)
        .unwrap();
    let mut live = TcpStream::connect(addr(&server)).await.unwrap();
    assert_eq!(round_trip(&mut live, b"live").await, b"live");
    let mut queued = Vec::with_capacity(waiting);
    for _ in 0..waiting {
        queued.push(TcpStream::connect(addr(&server)).await.unwrap());
    }
    assert_eq!(server.stats().accepted, 1);
    (server, live, queued)
}

#[test]
fn a_thousand_connections_waiting_in_the_backlog_during_suspend_are_each_counted() {
    const TEST: &str =
        "a_thousand_connections_waiting_in_the_backlog_during_suspend_are_each_counted";
    if fd_limit() < 2_200 && !is_child(TEST) {
        run_in_child(TEST, 4_096);
        return;
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let logs = Logs::default();
            let _capture = logs.capture();
            let (server, mut live, mut queued) = backlogged(1_000).await;
            server.suspend().await.unwrap();
            let stats = server.stats();
            assert_eq!(
                (stats.accepted, stats.rejected, stats.active),
                (1_001, 1_000, 1)
            );
            assert_balanced(&stats);
            for c in &mut queued {
                assert!(read_until_closed(c).await.is_empty());
            }
            assert_eq!(round_trip(&mut live, b"still").await, b"still");
            let text = logs.text();
            let lines: Vec<&str> = text.lines().filter(|l| l.contains("backlog")).collect();
            assert_eq!(lines.len(), 1, "one line per episode:\n{text}");
            assert!(lines[0].contains("rejected=1000"), "{}", lines[0]);
        });
}

#[tokio::test]
async fn connections_waiting_in_the_backlog_at_shutdown_are_each_counted() {
    let (server, _live, mut queued) = backlogged(50).await;
    let report = server.shutdown(SECOND).await.unwrap();
    assert_eq!((report.drained, report.aborted), (1, 0));
    let stats = server.stats();
    assert_eq!((stats.accepted, stats.rejected), (51, 50));
    assert_balanced(&stats);
    for c in &mut queued {
        assert!(read_until_closed(c).await.is_empty());
    }
}
