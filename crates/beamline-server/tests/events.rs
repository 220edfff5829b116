//! Every lifecycle step is one `tracing` event with stable field names (`conn_id`, `peer`,
//! `reason`), and a panic while a connection is being set up (the handler's `Clone`, the
//! function given to `serve`) counts as `panicked`.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use beamline_server::{Connection, ExitReason, Flow, Handler, HandlerContext, Server};
use bytes::BytesMut;
use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The captured lines that contain every one of `parts`.
fn lines_with<'a>(text: &'a str, parts: &[&str]) -> Vec<&'a str> {
    text.lines()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .collect()
}

/// Exactly one captured line contains every one of `parts`; it is returned.
fn one_line<'a>(text: &'a str, parts: &[&str]) -> &'a str {
    let lines = lines_with(text, parts);
    assert_eq!(lines.len(), 1, "{parts:?} in:\n{text}");
    lines[0]
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn every_lifecycle_step_is_one_event_with_stable_fields() {
    let logs = Logs::default();
    let _capture = logs.capture();
    let server = Server::new()
        .bind(localhost())
        .read_timeout(Some(Duration::from_secs(5)))
        .serve_handler(Echo)
        .unwrap();
    // A normal close: the peer leaves.
    let mut leaving = TcpStream::connect(addr(&server)).await.unwrap();
    let leaving_peer = leaving.local_addr().unwrap();
    assert_eq!(round_trip(&mut leaving, b"hi").await, b"hi");
    drop(leaving);
    stats_until(&server, |s| s.closed == 1).await;
    // A read timeout.
    let mut silent = TcpStream::connect(addr(&server)).await.unwrap();
    let silent_peer = silent.local_addr().unwrap();
    assert!(read_until_closed(&mut silent).await.is_empty());
    stats_until(&server, |s| s.closed == 2).await;
    server.suspend().await.unwrap();
    for _ in 0..100 {
        if server.resume().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown(Duration::from_secs(1)).await.unwrap();

    let text = logs.text();
    one_line(&text, &["server started"]);
    one_line(&text, &["server suspended"]);
    one_line(&text, &["server resumed"]);
    one_line(&text, &["drain started"]);
    one_line(&text, &["server stopped", "drained=0", "aborted=0"]);
    let (leaving_peer, silent_peer) = (
        format!("peer={leaving_peer}"),
        format!("peer={silent_peer}"),
    );
    let normal = one_line(&text, &["connection closed", &leaving_peer]);
    assert!(normal.contains("reason=normal"), "{normal}");
    assert!(normal.contains("conn_id="), "{normal}");
    let timeout = one_line(&text, &["connection closed", &silent_peer]);
    assert!(timeout.contains("reason=read_timeout"), "{timeout}");
    assert_eq!(
        lines_with(&text, &["connection started", "conn_id=", "peer="]).len(),
        2
    );
}

/// Echoes; panics when cloned for a connection once `armed`.
struct PanicsOnClone {
    armed: Arc<AtomicBool>,
}

impl Clone for PanicsOnClone {
    fn clone(&self) -> Self {
        assert!(
            !self.armed.load(Ordering::Relaxed),
            "handler clone bug on purpose"
        );
        Self {
            armed: self.armed.clone(),
        }
    }
}

impl Handler for PanicsOnClone {
    async fn on_data(
        &mut self,
        data: &mut BytesMut,
        conn: &mut HandlerContext<'_>,
    ) -> Result<Flow, ExitReason> {
        echo_back(data, conn).await
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_panic_in_the_handlers_clone_counts_as_panicked() {
    let logs = Logs::default();
    let _capture = logs.capture();
    let armed = Arc::new(AtomicBool::new(false));
    let server = Server::new()
        .bind(localhost())
        .serve_handler(PanicsOnClone {
            armed: armed.clone(),
        })
        .unwrap();
    let mut fine = TcpStream::connect(addr(&server)).await.unwrap();
    assert_eq!(round_trip(&mut fine, b"ok").await, b"ok");
    armed.store(true, Ordering::Relaxed);
    let mut doomed = TcpStream::connect(addr(&server)).await.unwrap();
    assert!(read_until_closed(&mut doomed).await.is_empty());
    let stats = stats_until(&server, |s| s.active == 1).await;
    assert_eq!((stats.panicked, stats.killed), (1, 0));
    assert_balanced(&stats);
    let text = logs.text();
    let line = one_line(&text, &["connection closed", "reason=panic"]);
    assert!(line.contains("handler clone bug on purpose"), "{line}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_panic_in_the_function_given_to_serve_counts_as_panicked() {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let server = Server::new()
        .bind(localhost())
        .serve_fn(move |mut conn: Connection| {
            assert_ne!(
                calls.fetch_add(1, Ordering::Relaxed),
                1,
                "serve function bug on purpose"
            );
            async move {
                conn.write_all(b"fine").await?;
                Ok(())
            }
        })
        .unwrap();
    let mut said = Vec::new();
    for _ in 0..3 {
        let mut client = TcpStream::connect(addr(&server)).await.unwrap();
        said.push(read_until_closed(&mut client).await);
    }
    assert_eq!(said, [&b"fine"[..], b"", b"fine"]);
    let stats = stats_until(&server, |s| s.accepted == 3 && s.active == 0).await;
    assert_eq!((stats.closed, stats.panicked, stats.killed), (2, 1, 0));
    assert_balanced(&stats);
}
