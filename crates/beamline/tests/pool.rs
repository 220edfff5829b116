//! The Client over a pool: a pool that cannot connect says why (the real connect error,
//! not a timeout), an eager pool fails at start with it, a closed pool is a closed client.
#![allow(clippy::unwrap_used)]
#![cfg(feature = "client")]

mod common;

use std::io::ErrorKind;
use std::time::Duration;

use beamline::WasSent;
use beamline::pool::{CheckoutError, PoolConfig, Start};
use beamline::{BuildError, Client, ClientError, Pooling, TransportError};
use bytes::Bytes;
use common::{echo, wire_server};

fn nowhere() -> String {
    format!("127.0.0.1:{}", beamline_testkit::free_port())
}

#[tokio::test]
async fn a_pool_that_cannot_connect_gives_the_real_error() {
    for pooling in [
        Pooling::Exclusive(PoolConfig::new(2).checkout_timeout(Some(Duration::from_secs(5)))),
        Pooling::Shared(PoolConfig::new(2).checkout_timeout(Some(Duration::from_secs(5)))),
    ] {
        let client = Client::builder(nowhere())
            .name("down")
            .pool(pooling)
            .connect()
            .await
            .unwrap();
        let err = client.call(Bytes::from("x")).await.unwrap_err();
        let ClientError::Checkout { name, source } = &err else {
            panic!("expected a checkout error, got {err:?}");
        };
        assert_eq!(&**name, "down");
        assert!(matches!(source, CheckoutError::Connect(_)), "{source:?}");
        assert!(!err.was_sent());
        let transport = err.transport_error().unwrap();
        assert!(
            matches!(transport, TransportError::Connect { .. }),
            "{transport:?}"
        );
        assert_eq!(
            transport.io_error().map(|e| e.kind()),
            Some(ErrorKind::ConnectionRefused)
        );
        let chain = beamline_testkit::error_chain(&err).join(": ");
        assert!(chain.contains("refused"), "{chain}");
    }
}

#[tokio::test]
async fn an_eager_pool_fails_at_start_with_the_real_error() {
    let err = Client::builder(nowhere())
        .pool(Pooling::Shared(PoolConfig::new(2).start(Start::Eager)))
        .connect()
        .await
        .unwrap_err();
    let BuildError::Connect { source, .. } = &err else {
        panic!("expected a connect error, got {err:?}");
    };
    assert_eq!(
        source.io_error().map(|e| e.kind()),
        Some(ErrorKind::ConnectionRefused)
    );
}

#[tokio::test]
async fn a_bad_pool_setting_is_refused() {
    let (addr, _server) = wire_server(echo).await;
    let err = Client::builder(addr)
        .pool(Pooling::Exclusive(PoolConfig::new(0)))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::Pool(_)), "{err:?}");
}

#[tokio::test]
async fn a_closed_pool_is_a_closed_client() {
    let (addr, _server) = wire_server(echo).await;
    for pooling in [
        Pooling::Exclusive(PoolConfig::new(2)),
        Pooling::Shared(PoolConfig::new(2)),
    ] {
        let client = Client::builder(addr).pool(pooling).connect().await.unwrap();
        assert_eq!(client.call(Bytes::from("x")).await.unwrap(), "x");
        client.close();
        assert!(client.is_closed());
        let err = client.call(Bytes::from("y")).await.unwrap_err();
        assert!(matches!(err, ClientError::Closed { .. }), "{err:?}");
        assert!(!err.was_sent());
    }
}
