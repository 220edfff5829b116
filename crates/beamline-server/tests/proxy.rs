//! The PROXY protocol on accept: the header read in the connection's own process (peeked, so
//! nothing after it is lost, whether it comes whole or in pieces), the client's address as
//! `peer()` and for the per-IP cap, the balancer's as `via()`, v2 TLVs, and every refused
//! header a typed, counted error — missing, malformed, too large, late, untrusted.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use beamline_server::proxy::Tlv;
use beamline_server::{
    Cidr, Connection, ExitReason, ProxyHeader, ProxyProtocol, ProxyVersion, Server, ServerHandle,
    StartError,
};
use common::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Says who it thinks the peer is, then echoes.
async fn who(mut conn: Connection) -> Result<(), ExitReason> {
    let info = conn.info().clone();
    let header = info.proxy_header();
    let text = |v: Option<&[u8]>| v.map(|v| String::from_utf8_lossy(v).into_owned());
    let line = format!(
        "peer={} via={:?} alpn={:?} authority={:?} id={:?}\n",
        info.peer(),
        info.via().map(ToString::to_string),
        header.and_then(|h| text(h.alpn())),
        header.and_then(|h| h.authority().map(str::to_owned)),
        header.and_then(|h| text(h.unique_id())),
    );
    conn.write_all(line.as_bytes()).await?;
    echo_fn(conn).await
}

fn proxied(mode: ProxyProtocol) -> Server {
    Server::new().bind(localhost()).proxy_protocol(mode)
}

fn header(version: ProxyVersion, source: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    ProxyHeader::new(
        version,
        source.parse().unwrap(),
        "10.0.0.1:6380".parse().unwrap(),
    )
    .encode(&mut bytes);
    bytes
}

/// Sends `first`, then reads the server's first line and the echo of `after`.
async fn who_am_i(server: &ServerHandle, first: &[u8], after: &[u8]) -> (String, Vec<u8>) {
    let stream = TcpStream::connect(addr(server)).await.unwrap();
    let mut stream = BufReader::new(stream);
    stream
        .get_mut()
        .write_all(&[first, after].concat())
        .await
        .unwrap();
    let mut line = String::new();
    stream.read_line(&mut line).await.unwrap();
    let mut echoed = vec![0u8; after.len()];
    stream.read_exact(&mut echoed).await.unwrap();
    (line, echoed)
}

#[tokio::test]
async fn v1_and_v2_headers_become_the_peer_and_the_balancer_is_via() {
    let server = proxied(ProxyProtocol::Required).serve_fn(who).unwrap();
    for version in [ProxyVersion::V1, ProxyVersion::V2] {
        // The client's first bytes travel in the same segment as the header: none is lost.
        let (line, echoed) = who_am_i(&server, &header(version, "192.0.2.7:4242"), b"ping").await;
        assert!(
            line.starts_with("peer=192.0.2.7:4242 via=Some(\"127.0.0.1:"),
            "{line}"
        );
        assert_eq!(echoed, b"ping");
    }
    let stats = stats_until(&server, |s| s.active == 0 && s.closed == 2).await;
    assert_eq!((stats.proxy_failures, stats.handshake_failures), (0, 0));
    assert_balanced(&stats);
}

#[tokio::test]
async fn v2_tlvs_reach_the_handler() {
    let server = proxied(ProxyProtocol::Required).serve_fn(who).unwrap();
    let mut bytes = Vec::new();
    let source: SocketAddr = "[2001:db8::7]:1000".parse().unwrap();
    ProxyHeader::new(
        ProxyVersion::V2,
        source,
        "[2001:db8::1]:443".parse().unwrap(),
    )
    .with_tlv(Tlv::ALPN, b"h2")
    .unwrap()
    .with_tlv(Tlv::AUTHORITY, b"kv.example")
    .unwrap()
    .with_tlv(Tlv::UNIQUE_ID, b"req-42")
    .unwrap()
    .encode(&mut bytes);
    let (line, _) = who_am_i(&server, &bytes, b"x").await;
    assert!(
        line.starts_with("peer=[2001:db8::7]:1000 via=Some("),
        "{line}"
    );
    assert!(
        line.ends_with("alpn=Some(\"h2\") authority=Some(\"kv.example\") id=Some(\"req-42\")\n"),
        "{line}"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_header_in_pieces_is_waited_for_not_spun_on() {
    let server = proxied(ProxyProtocol::Required).serve_fn(who).unwrap();
    let bytes = header(ProxyVersion::V2, "198.51.100.1:7");
    let mut stream = TcpStream::connect(addr(&server)).await.unwrap();
    for piece in [&bytes[..5], &bytes[5..14], &bytes[14..20], &bytes[20..]] {
        stream.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut stream = BufReader::new(stream);
    let mut line = String::new();
    stream.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("peer=198.51.100.1:7 "), "{line}");
    assert_eq!(server.stats().proxy_failures, 0);
}

/// Connects, sends `bytes`, and expects the server to close without a word.
async fn refused(server: &ServerHandle, bytes: &[u8]) {
    let mut stream = TcpStream::connect(addr(server)).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    assert!(read_until_closed(&mut stream).await.is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn a_missing_or_malformed_header_is_a_typed_counted_error() {
    let logs = Logs::default();
    let _capture = logs.capture();
    let server = proxied(ProxyProtocol::Required).serve_fn(who).unwrap();
    refused(&server, b"*1\r\n$4\r\nPING\r\n").await;
    refused(&server, b"PROXY TCP4 1.2.3.4\r\n*1\r\n").await;
    // Declared too large: refused from the length field, before the rest arrives.
    refused(&server, b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff").await;
    // The peer gives up in the middle of the header.
    let mut cut = TcpStream::connect(addr(&server)).await.unwrap();
    cut.write_all(b"PROXY TCP4 1.2").await.unwrap();
    drop(cut);
    let stats = stats_until(&server, |s| s.proxy_failures == 4 && s.active == 0).await;
    assert_eq!((stats.handshake_failures, stats.closed), (4, 0));
    assert_balanced(&stats);
    let text = logs.text();
    for error in [
        "did not start with a PROXY header",
        "malformed PROXY v1 header: no destination address",
        "PROXY header of 65551 bytes exceeds the limit of 4096",
        "closed the connection before its PROXY header ended",
    ] {
        assert!(
            text.lines()
                .any(|l| l.contains("reason=proxy_header_failed") && l.contains(error)),
            "{error} in:\n{text}"
        );
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_peer_that_never_sends_its_header_holds_nothing_past_the_handshake_timeout() {
    let logs = Logs::default();
    let _capture = logs.capture();
    let server = proxied(ProxyProtocol::Required)
        .handshake_timeout(Duration::from_secs(3))
        .serve_fn(who)
        .unwrap();
    let mut silent = TcpStream::connect(addr(&server)).await.unwrap();
    let started = tokio::time::Instant::now();
    assert!(read_until_closed(&mut silent).await.is_empty());
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    let stats = stats_until(&server, |s| s.active == 0).await;
    assert_eq!((stats.proxy_failures, stats.handshake_failures), (1, 1));
    assert!(logs.text().contains("reason=proxy_header_timeout"));
}

#[tokio::test(flavor = "current_thread")]
async fn only_trusted_sources_may_send_a_header() {
    let elsewhere: Cidr = "10.0.0.0/8".parse().unwrap();
    let here: Cidr = "127.0.0.1".parse().unwrap();
    // Required, from a source that may not send one: refused before reading anything.
    let strict = proxied(ProxyProtocol::Required)
        .proxy_protocol_from([elsewhere])
        .serve_fn(who)
        .unwrap();
    refused(&strict, &header(ProxyVersion::V1, "192.0.2.1:1")).await;
    stats_until(&strict, |s| s.proxy_failures == 1 && s.active == 0).await;

    // Optional: a trusted source may send one or not.
    let optional = proxied(ProxyProtocol::Optional)
        .proxy_protocol_from([here])
        .serve_fn(who)
        .unwrap();
    let (line, _) = who_am_i(&optional, &header(ProxyVersion::V2, "192.0.2.9:9"), b"a").await;
    assert!(line.starts_with("peer=192.0.2.9:9 "), "{line}");
    let (line, echoed) = who_am_i(&optional, b"", b"GET / HTTP/1.0\r\n").await;
    assert!(
        line.starts_with("peer=127.0.0.1:") && line.contains("via=None"),
        "{line}"
    );
    assert_eq!(
        echoed, b"GET / HTTP/1.0\r\n",
        "nothing was taken from the stream"
    );

    // Optional, from an untrusted source: served without a header, refused with one.
    let guarded = proxied(ProxyProtocol::Optional)
        .proxy_protocol_from([elsewhere])
        .serve_fn(who)
        .unwrap();
    let (line, _) = who_am_i(&guarded, b"", b"hello").await;
    assert!(line.starts_with("peer=127.0.0.1:"), "{line}");
    refused(&guarded, &header(ProxyVersion::V2, "192.0.2.1:1")).await;
    let stats = stats_until(&guarded, |s| s.proxy_failures == 1 && s.active == 0).await;
    assert_balanced(&stats);
}

#[tokio::test(flavor = "current_thread")]
async fn the_per_ip_cap_counts_the_address_the_header_carried() {
    let server = proxied(ProxyProtocol::Required)
        .max_connections_per_ip(1)
        .serve_fn(who)
        .unwrap();
    // Every connection comes from the balancer (127.0.0.1); the clients differ.
    let open = |client: &'static str| {
        let server_addr = addr(&server);
        async move {
            let mut s = BufReader::new(TcpStream::connect(server_addr).await.unwrap());
            s.get_mut()
                .write_all(&header(ProxyVersion::V2, client))
                .await
                .unwrap();
            let mut line = String::new();
            s.read_line(&mut line).await.unwrap();
            (s, line)
        }
    };
    let (_a, line_a) = open("192.0.2.1:1").await;
    let (_b, line_b) = open("192.0.2.2:1").await;
    assert!(line_a.starts_with("peer=192.0.2.1:1") && line_b.starts_with("peer=192.0.2.2:1"));
    // A second connection of the first client is over its cap.
    let (_again, line) = open("192.0.2.1:2").await;
    assert_eq!(line, "", "closed without a word");
    let stats = stats_until(&server, |s| s.rejected == 1).await;
    assert_eq!((stats.active, stats.proxy_failures), (2, 0));
    assert_balanced(&stats);
}

#[tokio::test(flavor = "current_thread")]
async fn events_show_the_client_and_the_balancer() {
    let logs = Logs::default();
    let _capture = logs.capture();
    let server = proxied(ProxyProtocol::Required).serve_fn(who).unwrap();
    let (line, _) = who_am_i(&server, &header(ProxyVersion::V1, "203.0.113.5:999"), b"x").await;
    assert!(line.starts_with("peer=203.0.113.5:999"), "{line}");
    server.shutdown(Duration::from_secs(1)).await.unwrap();
    let text = logs.text();
    for message in ["proxy header received", "connection closed"] {
        assert!(
            text.lines().any(|l| l.contains(message)
                && l.contains("peer=203.0.113.5:999")
                && l.contains("via=127.0.0.1:")),
            "{message} in:\n{text}"
        );
    }
}

#[tokio::test]
async fn tls_starts_after_the_header() {
    let pki = beamline_testkit::TestPki::new();
    let server = Server::new()
        .bind_tls(localhost(), pki.server_config())
        .proxy_protocol(ProxyProtocol::Required)
        .serve_fn(who)
        .unwrap();
    let mut tcp = TcpStream::connect(addr(&server)).await.unwrap();
    tcp.write_all(&header(ProxyVersion::V2, "192.0.2.44:5"))
        .await
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(pki.client_config());
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let mut tls = BufReader::new(tls);
    let mut line = String::new();
    tls.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("peer=192.0.2.44:5 "), "{line}");
}

#[tokio::test]
async fn a_unix_listener_reads_headers_too() {
    let dir = std::env::temp_dir().join(format!("beamline-proxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("proxied.sock");
    let _ = std::fs::remove_file(&path);
    let server = Server::new()
        .bind_unix(&path)
        .proxy_protocol(ProxyProtocol::Required)
        .serve_fn(who)
        .unwrap();
    let mut unix = tokio::net::UnixStream::connect(&path).await.unwrap();
    unix.write_all(&header(ProxyVersion::V1, "192.0.2.8:80"))
        .await
        .unwrap();
    let mut unix = BufReader::new(unix);
    let mut line = String::new();
    unix.read_line(&mut line).await.unwrap();
    assert!(
        line.starts_with("peer=192.0.2.8:80 via=Some(\"unix:"),
        "{line}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn misplaced_or_unsafe_settings_do_not_start() {
    let early = Server::new()
        .proxy_protocol(ProxyProtocol::Required)
        .bind(localhost())
        .serve_fn(who);
    assert!(
        matches!(
            early,
            Err(StartError::Invalid {
                setting: "proxy_protocol",
                ..
            })
        ),
        "{early:?}"
    );
    let anyone = proxied(ProxyProtocol::Optional).serve_fn(who);
    assert!(
        matches!(&anyone, Err(StartError::Invalid { reason, .. }) if reason.contains("proxy_protocol_from")),
        "{anyone:?}"
    );
    // Per listener: the second address takes no header.
    let mixed = Server::new()
        .bind(localhost())
        .proxy_protocol(ProxyProtocol::Required)
        .bind(localhost())
        .serve_fn(who)
        .unwrap();
    let plain = mixed.local_addrs()[1].socket_addr().unwrap();
    let mut stream = BufReader::new(TcpStream::connect(plain).await.unwrap());
    let mut line = String::new();
    stream.read_line(&mut line).await.unwrap();
    assert!(
        line.starts_with("peer=127.0.0.1:") && line.contains("via=None"),
        "{line}"
    );
}
