//! A panic in the codec of a `FramedConnection`, inside its driver task: the connection
//! closes with `FramedCloseCause::Panicked` and the message, and the request in flight ends
//! with it, typed (it may have been delivered).
#![allow(clippy::unwrap_used)]

use beamline_reconnect::{Connection, FramedCloseCause, FramedConnection, FramedError};
use beamline_testkit::ExplosiveLines;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::codec::Framed;

#[tokio::test]
async fn a_codec_panic_closes_the_connection_with_its_message() {
    beamline_testkit::quiet_panics(|message| message.starts_with("codec exploded"));
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let conn: FramedConnection<String, String> =
        FramedConnection::new(Framed::new(client_io, ExplosiveLines::default()));
    let call = tokio::spawn({
        let conn = conn.clone();
        async move { conn.call("hello".to_string()).await }
    });
    let mut server = BufReader::new(server_io);
    let mut line = String::new();
    server.read_line(&mut line).await.unwrap();
    assert_eq!(line, "hello\n");
    server.get_mut().write_all(b"boom\n").await.unwrap();

    match call.await.unwrap() {
        Err(FramedError::ConnectionLost {
            cause: FramedCloseCause::Panicked(message),
        }) => assert!(message.contains("codec exploded on boom"), "{message}"),
        other => panic!("expected a lost connection that panicked, got {other:?}"),
    }
    conn.closed().await;
    assert!(conn.is_closed());
}
