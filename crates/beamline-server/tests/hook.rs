//! `Server::on_connection_error`: a failed connection is visible without a tracing
//! subscriber. The hook sees a function's error, a panic, a failed TLS handshake and a kill
//! at a drain's deadline, each once, with the connection's peer; never a connection that
//! ended normally.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beamline_server::{Connection, ExitReason, Server, ServerHandle};
use beamline_testkit::TestPki;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the hook saw: the peer and the reason, as text.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

fn recording(server: Server) -> (Server, Seen) {
    let seen = Seen::default();
    let log = seen.clone();
    let server = server.on_connection_error(move |info, reason| {
        log.lock()
            .unwrap()
            .push((info.peer().to_string(), reason.to_string()));
    });
    (server, seen)
}

/// Reads one message: `fail` fails, `panic` panics, `block` waits for ever (ignoring the
/// drain), anything else ends normally.
async fn fragile(mut conn: Connection) -> Result<(), ExitReason> {
    let mut buf = [0u8; 16];
    let n = conn.read(&mut buf).await?;
    match &buf[..n] {
        b"fail" => Err(std::io::Error::other("refused on purpose").into()),
        b"panic" => panic!("bug on purpose"),
        b"block" => {
            let _signal = conn.shutdown_signal();
            std::future::pending().await
        }
        _ => Ok(()),
    }
}

async fn send(server: &ServerHandle, message: &[u8]) -> (TcpStream, SocketAddr) {
    let mut stream = TcpStream::connect(addr(server)).await.unwrap();
    stream.write_all(message).await.unwrap();
    let local = stream.local_addr().unwrap();
    (stream, local)
}

#[tokio::test]
async fn each_failed_connection_is_seen_once_with_its_peer_and_reason() {
    let (server, seen) = recording(Server::new().bind(localhost()));
    let server = server.serve_fn(fragile).unwrap();
    let (_fine, _) = send(&server, b"bye").await;
    let (_failing, failing) = send(&server, b"fail").await;
    stats_until(&server, |s| s.closed + s.errored == 2).await;
    let (_panicking, panicking) = send(&server, b"panic").await;
    stats_until(&server, |s| s.panicked == 1).await;
    let (_blocked, blocked) = send(&server, b"block").await;
    stats_until(&server, |s| s.active == 1).await;
    let report = server.shutdown(Duration::from_millis(50)).await.unwrap();
    assert_eq!((report.drained, report.aborted), (0, 1));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            (failing.to_string(), "error: refused on purpose".to_owned()),
            (panicking.to_string(), "panicked: bug on purpose".to_owned()),
            (blocked.to_string(), "killed".to_owned()),
        ]
    );
    assert_balanced(&server.stats());
}

#[tokio::test]
async fn a_failed_tls_handshake_is_seen() {
    let pki = TestPki::new();
    let (server, seen) = recording(Server::new().bind_tls(localhost(), pki.server_config()));
    let server = server.serve_fn(fragile).unwrap();
    let (mut not_tls, peer) = send(&server, b"GET / HTTP/1.1\r\n\r\n").await;
    let _ = not_tls.read(&mut [0u8; 64]).await;
    stats_until(&server, |s| s.handshake_failures == 1).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, peer.to_string());
    assert!(seen[0].1.starts_with("error: "), "{seen:?}");
}

#[tokio::test]
async fn a_panicking_hook_is_caught_and_the_server_goes_on() {
    let server = Server::new()
        .bind(localhost())
        .on_connection_error(|_, _| panic!("hook bug"))
        .serve_fn(fragile)
        .unwrap();
    let (_failing, _) = send(&server, b"fail").await;
    stats_until(&server, |s| s.errored == 1).await;
    let (_fine, _) = send(&server, b"bye").await;
    stats_until(&server, |s| s.closed == 1).await;
    assert_balanced(&server.stats());
}

/// Behind a balancer the hook is told the client the PROXY header named (and the balancer
/// as `via`), the same peer the handler and the events see.
#[tokio::test]
async fn behind_a_balancer_the_hook_sees_the_client_the_header_named() {
    use beamline_server::{ProxyHeader, ProxyProtocol, ProxyVersion};
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let server = Server::new()
        .bind(localhost())
        .proxy_protocol(ProxyProtocol::Required)
        .on_connection_error(move |info, _| {
            let via = info.via().map(ToString::to_string);
            log.lock().unwrap().push((info.peer().to_string(), via));
        })
        .serve_fn(fragile)
        .unwrap();
    let mut header = Vec::new();
    ProxyHeader::new(
        ProxyVersion::V2,
        "192.0.2.7:4242".parse().unwrap(),
        "10.0.0.1:6380".parse().unwrap(),
    )
    .encode(&mut header);
    let (_failing, balancer) = send(&server, &[&header[..], b"fail"].concat()).await;
    stats_until(&server, |s| s.errored == 1).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [("192.0.2.7:4242".to_owned(), Some(balancer.to_string()))]
    );
}
