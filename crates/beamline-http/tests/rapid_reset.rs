//! The HTTP/2 rapid-reset attack (CVE-2023-44487), written as raw frames: a burst of streams
//! each opened (HEADERS) and at once cancelled (RST_STREAM). The connection is ended with
//! `GOAWAY`, the handler runs only for the few streams accepted before that, and the server
//! goes on serving everyone else.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use beamline_http::serve;
use beamline_server::Server;
use beamline_testkit::h2::{ENHANCE_YOUR_CALM, goaway_code, rapid_reset_burst};
use common::*;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(start_paused = true)]
async fn a_rapid_reset_burst_ends_in_goaway_and_the_server_serves_on() {
    let (app, state) = app();
    let server = serve(Server::new().bind(localhost()), app).unwrap();
    let addr = server.local_addr().unwrap();
    const STREAMS: u32 = 10_000;
    let mut attacker = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = attacker.split();
    let sent = async {
        // The server may close mid-burst: a failed write is part of the outcome.
        let _ = writer.write_all(&rapid_reset_burst(STREAMS)).await;
    };
    let mut answer = Vec::new();
    let read = async {
        let _ =
            tokio::time::timeout(Duration::from_secs(30), reader.read_to_end(&mut answer)).await;
    };
    tokio::join!(sent, read);
    assert_eq!(
        goaway_code(&answer),
        Some(ENHANCE_YOUR_CALM),
        "the server ends the connection with GOAWAY (ENHANCE_YOUR_CALM)"
    );
    let handled = state.handled.load(Ordering::Relaxed);
    println!("handlers run for {handled} of {STREAMS} streams");
    assert!(handled < u64::from(STREAMS) / 10, "{handled} handlers ran");
    assert_eq!(get1(addr, "/").await.0, StatusCode::OK);
    until(|| server.stats().protocol_errors == 1).await;
    let s = server.server().stats();
    assert_eq!((s.panicked, s.errored, s.killed), (0, 0, 0), "{s:?}");
}
