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
use common::*;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const ENHANCE_YOUR_CALM: u32 = 0xb;

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// The preface, empty SETTINGS, then `n` streams each opened (`GET /`, HPACK static
/// entries: `:method GET`, `:scheme http`, `:path /`) and cancelled at once.
fn burst(n: u32) -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    frame(&mut out, SETTINGS, 0, 0, &[]);
    for i in 0..n {
        let stream = 2 * i + 1;
        frame(&mut out, HEADERS, 0x4 | 0x1, stream, &[0x82, 0x86, 0x84]);
        frame(&mut out, RST_STREAM, 0, stream, &8u32.to_be_bytes()); // CANCEL
    }
    out
}

/// The error code of the first GOAWAY in `bytes` (frames after the server's preface).
fn goaway(bytes: &[u8]) -> Option<u32> {
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let len = u32::from_be_bytes([0, bytes[at], bytes[at + 1], bytes[at + 2]]) as usize;
        let kind = bytes[at + 3];
        let payload = bytes.get(at + 9..at + 9 + len)?;
        if kind == GOAWAY {
            return Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()));
        }
        at += 9 + len;
    }
    None
}

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
        let _ = writer.write_all(&burst(STREAMS)).await;
    };
    let mut answer = Vec::new();
    let read = async {
        let _ =
            tokio::time::timeout(Duration::from_secs(30), reader.read_to_end(&mut answer)).await;
    };
    tokio::join!(sent, read);
    assert_eq!(
        goaway(&answer),
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
