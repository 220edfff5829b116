//! The stream form's busy marks: while a [`Busy`](beamline_server::Busy) guard lives the
//! connection is working on something its peer waits for, and the read timeout does not run
//! (as during a callback of the callback form); it starts again when the last guard drops.
//! On tokio's paused clock: exact, not slept.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use beamline_server::{Connection, ExitReason, Server};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

const S: Duration = Duration::from_secs(1);

/// Reads one byte, then answers it after `work` of "handler time" with a busy mark held,
/// and loops.
async fn slow_answers(mut conn: Connection, work: Duration) -> Result<(), ExitReason> {
    let activity = conn.activity();
    let mut byte = [0u8; 1];
    loop {
        if conn.read(&mut byte).await? == 0 {
            return Ok(());
        }
        let busy = activity.busy();
        assert!(activity.is_busy());
        tokio::time::sleep(work).await;
        conn.write_all(&byte).await?;
        drop(busy);
    }
}

#[tokio::test(start_paused = true)]
async fn a_busy_connection_is_not_read_timed_out_and_the_timeout_restarts_after() {
    let server = Server::new()
        .bind(localhost())
        .read_timeout(Some(10 * S))
        .serve_fn(|conn| slow_answers(conn, 25 * S))
        .unwrap();
    let started = Instant::now();
    let mut client = TcpStream::connect(addr(&server)).await.unwrap();
    // The answer takes 25 s, well past the 10 s read timeout: the peer waits on the server.
    assert_eq!(round_trip(&mut client, b"a").await, b"a");
    assert_eq!(started.elapsed(), 25 * S);
    // Idle again from the answer on: closed 10 s later, not at once.
    assert!(read_until_closed(&mut client).await.is_empty());
    assert_eq!(started.elapsed(), 35 * S);
    let stats = stats_until(&server, |s| s.closed == 1).await;
    assert_balanced(&stats);
}

#[tokio::test(start_paused = true)]
async fn a_busy_mark_does_not_stop_the_lifetime() {
    let server = Server::new()
        .bind(localhost())
        .read_timeout(Some(10 * S))
        .lifetime(Some(15 * S))
        .serve_fn(|conn| slow_answers(conn, 100 * S))
        .unwrap();
    let started = Instant::now();
    let mut client = TcpStream::connect(addr(&server)).await.unwrap();
    client.write_all(b"a").await.unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    assert_eq!(started.elapsed(), 15 * S);
}
