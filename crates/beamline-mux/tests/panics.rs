//! A panic in the user's codec, inside the driver: it stays in the driver's task, the
//! connection ends with `ConnectionError::Panicked` and its message, and every caller gets a
//! typed error saying whether its request was written.
#![cfg(feature = "driver")]
#![allow(clippy::unwrap_used)]

use beamline_mux::WasSent;
use beamline_mux::{Client, ClientConfig, ConnectionError, MuxError};
use beamline_testkit::ExplosiveLines;
use futures::{SinkExt, StreamExt};
use tokio_util::codec::{Framed, LinesCodec};

#[tokio::test]
async fn a_codec_panic_ends_the_connection_typed_and_stays_in_the_driver() {
    beamline_testkit::quiet_panics(|message| message.starts_with("codec exploded"));
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let config = ClientConfig::new().peer("explosive");
    let (client, driver) = Client::fifo(client_io, ExplosiveLines::default(), &config).unwrap();
    let driver = tokio::spawn(driver);
    let mut server = Framed::new(server_io, LinesCodec::new());

    let call = tokio::spawn({
        let client = client.clone();
        async move { client.call("hello".to_string()).await }
    });
    assert_eq!(server.next().await.unwrap().unwrap(), "hello");
    server.send("boom").await.unwrap();

    match call.await.unwrap() {
        Err(MuxError::ConnectionLost {
            cause: ConnectionError::Panicked(message),
            ..
        }) => assert!(message.contains("codec exploded on boom"), "{message}"),
        other => panic!("expected a lost connection that panicked, got {other:?}"),
    }
    // The driver's task ended normally, with the cause: the panic did not escape it.
    match driver.await {
        Ok(Err(ConnectionError::Panicked(_))) => {}
        other => panic!("expected the driver to end with Panicked, got {other:?}"),
    }
    let later = client.call("again".to_string()).await.unwrap_err();
    assert!(!later.was_sent(), "{later}");
}
