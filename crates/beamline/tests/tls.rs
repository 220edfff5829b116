//! The Client over TLS (tokio-rustls, ring) against a wire-format server made with a test
//! PKI: calls work, an untrusted or misnamed certificate is a typed connect error carrying
//! the rustls error, and a lost TLS connection is replaced.
#![allow(clippy::unwrap_used)]
#![cfg(all(feature = "client", feature = "tls"))]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use beamline::mux::{ServerConfig, serve_wire};
use beamline::reconnect::{BackoffConfig, OfflinePolicy};
use beamline::{BuildError, Client, Stack, Target, TransportError};
use beamline_testkit::TestPki;
use bytes::Bytes;
use common::echo;
use rustls::pki_types::ServerName;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// A TLS wire-format echo server. Notifying `drop_all` closes every live connection.
async fn tls_server(pki: &TestPki) -> (SocketAddr, Arc<Notify>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(pki.server_config());
    let drop_all = Arc::new(Notify::new());
    let kill = drop_all.clone();
    tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { return };
                    let acceptor = acceptor.clone();
                    connections.spawn(async move {
                        // A failed handshake (an untrusting client) just ends this connection.
                        if let Ok(tls) = acceptor.accept(stream).await {
                            let _ = serve_wire(tls, &ServerConfig::new(), echo).await;
                        }
                    });
                }
                () = kill.notified() => connections.abort_all(),
            }
        }
    });
    (addr, drop_all)
}

fn rustls_error(err: &BuildError) -> &rustls::Error {
    let BuildError::Connect {
        source: source @ TransportError::Tls { .. },
        ..
    } = err
    else {
        panic!("expected a TLS connect error, got {err:?}");
    };
    source
        .io_error()
        .and_then(|io| io.get_ref())
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .unwrap_or_else(|| panic!("no rustls error inside {source:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_tls_and_a_lost_connection_is_replaced() {
    let pki = TestPki::new();
    let (addr, drop_all) = tls_server(&pki).await;
    let client = Client::builder(addr)
        .tls(pki.client_config())
        .backoff(BackoffConfig::constant(Duration::from_millis(10)))
        .offline(OfflinePolicy::Queue {
            max: 100,
            deadline: Duration::from_secs(10),
        })
        .connect()
        .await
        .unwrap();
    let calls: Vec<_> = (0..100)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let payload = Bytes::from(format!("secret {i}"));
                assert_eq!(client.call(payload.clone()).await.unwrap(), payload);
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }

    let Stack::Single(reconnect) = client.stack() else {
        unreachable!("single-connection client")
    };
    let mut states = reconnect.state_changes();
    drop_all.notify_one();
    states.wait_for(|s| !s.is_connected()).await.unwrap();
    // Queued while offline, sent on the next TLS connection.
    let again = client.call_idempotent(Bytes::from("again")).await.unwrap();
    assert_eq!(again, "again");
    assert!(reconnect.state().is_connected());
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_typed_tls_error() {
    let pki = TestPki::new();
    let (addr, _) = tls_server(&pki).await;
    let stranger = TestPki::new();
    let err = tls_client(addr, &stranger, None).await.unwrap_err();
    assert!(
        matches!(rustls_error(&err), rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
    let chain = beamline_testkit::error_chain(&err).join(": ");
    assert!(chain.contains("TLS handshake failed"), "{chain}");
}

/// A TLS client of `addr` trusting `pki`, checking `name` (the host when `None`).
async fn tls_client(
    addr: SocketAddr,
    pki: &TestPki,
    name: Option<&'static str>,
) -> Result<Client<Bytes, Bytes>, BuildError> {
    let builder = Client::builder(addr).tls(pki.client_config());
    let builder = match name {
        Some(name) => builder.tls_server_name(ServerName::try_from(name).unwrap()),
        None => builder,
    };
    builder.connect().await
}

#[tokio::test]
async fn the_server_name_is_the_host_unless_given() {
    let pki = TestPki::new();
    let (addr, _) = tls_server(&pki).await;
    // 127.0.0.1 is in the certificate; so is localhost, given explicitly.
    for name in [None, Some("localhost")] {
        let client = tls_client(addr, &pki, name).await.unwrap();
        assert_eq!(
            client.call(Bytes::from("hi")).await.unwrap(),
            "hi",
            "{name:?}"
        );
    }
    // A name the certificate does not carry is refused by the handshake.
    let err = tls_client(addr, &pki, Some("elsewhere.example"))
        .await
        .unwrap_err();
    assert!(
        matches!(rustls_error(&err), rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn tls_over_a_unix_socket_needs_a_server_name() {
    let pki = TestPki::new();
    let err = Client::builder(Target::unix("/nonexistent/beamline.sock"))
        .tls(pki.client_config())
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::ServerName { .. }), "{err:?}");
}
