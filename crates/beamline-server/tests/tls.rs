//! TLS with a CA made at test time: the handshake, SNI and ALPN reach the handler, a client
//! that trusts another CA fails, plain TCP and stalled handshakes are counted handshake
//! failures, and the server goes on serving.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use beamline_server::{ExitReason, Flow, Handler, HandlerContext, ListenAddr, Server, Transport};
use beamline_testkit::TestPki;
use bytes::BytesMut;
use common::*;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Greets with what it knows of the TLS session, then echoes.
#[derive(Clone)]
struct TlsInfo;

impl Handler for TlsInfo {
    async fn on_connect(&mut self, conn: &mut HandlerContext<'_>) -> Result<Flow, ExitReason> {
        let info = conn.info();
        let line = format!(
            "{} sni={} alpn={}\n",
            info.transport(),
            info.sni().unwrap_or("-"),
            info.alpn()
                .map_or("-".into(), |p| String::from_utf8_lossy(p).into_owned())
        );
        let version = conn.stream().tls().and_then(|s| s.protocol_version());
        assert!(version.is_some(), "a TLS stream exposes its session");
        conn.send(line.as_bytes()).await?;
        Ok(Flow::Continue)
    }

    async fn on_data(
        &mut self,
        data: &mut BytesMut,
        conn: &mut HandlerContext<'_>,
    ) -> Result<Flow, ExitReason> {
        echo_back(data, conn).await
    }
}

async fn tls_connect(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

async fn line<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while stream.read_exact(&mut byte).await.is_ok() && byte[0] != b'\n' {
        out.push(byte[0]);
    }
    String::from_utf8(out).unwrap()
}

fn tls_server(pki: &TestPki) -> beamline_server::ServerHandle {
    Server::new()
        .bind_tls(
            localhost(),
            pki.server_config_with_alpn(&[b"beamline/1", b"h2"]),
        )
        .serve_handler(TlsInfo)
        .unwrap()
}

/// A full TLS session: handshake, greeting, echo.
async fn tls_session_works(server: &beamline_server::ServerHandle, pki: &TestPki) {
    let mut client = tls_connect(addr(server), pki.client_config_with_alpn(&[b"beamline/1"]))
        .await
        .unwrap();
    assert_eq!(line(&mut client).await, "tls sni=localhost alpn=beamline/1");
    client.write_all(b"secret").await.unwrap();
    client.flush().await.unwrap();
    let mut back = [0u8; 6];
    client.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"secret");
}

#[tokio::test]
async fn a_tls_handshake_with_the_ca_works_and_shows_sni_and_alpn() {
    let pki = TestPki::new();
    let server = tls_server(&pki);
    assert!(matches!(server.local_addrs()[0], ListenAddr::Tls(_)));
    assert_eq!(server.local_addrs()[0].transport(), Transport::Tls);
    tls_session_works(&server, &pki).await;
    // Without ALPN the handler sees none.
    let mut plain_alpn = tls_connect(addr(&server), pki.client_config())
        .await
        .unwrap();
    assert_eq!(line(&mut plain_alpn).await, "tls sni=localhost alpn=-");
    assert_eq!(server.stats().handshake_failures, 0);
}

#[tokio::test]
async fn a_client_that_trusts_another_ca_fails_and_is_counted() {
    let pki = TestPki::new();
    let server = tls_server(&pki);
    let stranger = TestPki::new();
    let err = tls_connect(addr(&server), stranger.client_config())
        .await
        .unwrap_err();
    let inner = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    assert!(
        matches!(inner, Some(rustls::Error::InvalidCertificate(_))),
        "{err:?}"
    );
    let stats = stats_until(&server, |s| s.handshake_failures == 1).await;
    assert_eq!(stats.active, 0);
    tls_session_works(&server, &pki).await;
}

#[tokio::test]
async fn plain_tcp_on_the_tls_port_is_a_counted_handshake_failure() {
    let pki = TestPki::new();
    let server = tls_server(&pki);
    let mut plain = TcpStream::connect(addr(&server)).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let reply = read_until_closed(&mut plain).await;
    // At most a TLS alert record (content type 21), never application data.
    assert!(reply.is_empty() || reply[0] == 21, "{reply:?}");
    let stats = stats_until(&server, |s| s.handshake_failures == 1).await;
    assert_eq!((stats.accepted, stats.active), (1, 0));
    // The server goes on serving.
    tls_session_works(&server, &pki).await;
    assert_balanced(&stats_until(&server, |s| s.active == 1).await);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_handshake_is_closed_at_the_handshake_timeout() {
    let pki = TestPki::new();
    let server = Server::new()
        .bind_tls(localhost(), pki.server_config())
        .handshake_timeout(Duration::from_secs(3))
        .read_timeout(None)
        .serve_handler(TlsInfo)
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut stalled = TcpStream::connect(addr(&server)).await.unwrap();
    // Half a ClientHello: a TLS handshake record header promising more than is sent.
    stalled.write_all(&[22, 3, 1, 0, 200, 1, 0]).await.unwrap();
    assert!(read_until_closed(&mut stalled).await.is_empty());
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    let stats = stats_until(&server, |s| s.handshake_failures == 1).await;
    assert_eq!(stats.active, 0);
    assert_balanced(&stats);
}

#[tokio::test(start_paused = true)]
async fn a_tls_peer_that_never_reads_is_closed_at_the_send_timeout() {
    let pki = TestPki::new();
    let server = tls_server(&pki);
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(addr(&server)).await.unwrap();
    let mut tls = TlsConnector::from(pki.client_config())
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    // Echoed records pile up in the server's session and socket; nobody reads them.
    let chunk = vec![b'z'; 16 * 1024];
    let mut sent = 0usize;
    let writing = async {
        while sent < 256 << 20 && tls.write_all(&chunk).await.is_ok() {
            sent += chunk.len();
        }
    };
    tokio::time::timeout(Duration::from_secs(600), writing)
        .await
        .expect("the server never closed");
    let stats = stats_until(&server, |s| s.active == 0).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(30) && elapsed < Duration::from_secs(31),
        "{elapsed:?}"
    );
    assert_eq!((stats.errored, stats.send_timeouts), (1, 1));
    assert_balanced(&stats);
}
