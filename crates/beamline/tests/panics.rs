//! A panic in code the client's background task runs (here, a codec whose `clone` panics when
//! a new connection is made) closes the client with `CloseReason::Panicked`, and the reason
//! reaches `state()` watchers and every later `ClientError`, instead of vanishing with the
//! task.
#![cfg(feature = "client")]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use beamline::WasSent;
use beamline::reconnect::{BackoffConfig, CloseReason, State};
use beamline::{Client, ClientError, Stack};
use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_util::codec::{Decoder, Encoder, Framed, LinesCodec, LinesCodecError};

const MAX_LINE: usize = 1024;

/// Lines, but the second clone (made for the second connection) panics.
#[derive(Debug)]
struct Exploding {
    clones: Arc<AtomicUsize>,
    lines: LinesCodec,
}

impl Clone for Exploding {
    fn clone(&self) -> Self {
        if self.clones.fetch_add(1, Ordering::SeqCst) >= 1 {
            panic!("codec clone exploded");
        }
        Exploding {
            clones: self.clones.clone(),
            lines: self.lines.clone(),
        }
    }
}

impl Encoder<String> for Exploding {
    type Error = LinesCodecError;

    fn encode(&mut self, line: String, dst: &mut BytesMut) -> Result<(), LinesCodecError> {
        self.lines.encode(line, dst)
    }
}

impl Decoder for Exploding {
    type Item = String;
    type Error = LinesCodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<String>, LinesCodecError> {
        self.lines.decode(src)
    }
}

/// Echoes lines; `quit` closes the connection unanswered.
async fn line_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut lines = Framed::new(stream, LinesCodec::new_with_max_length(MAX_LINE));
                while let Some(Ok(line)) = lines.next().await {
                    if line == "quit" || lines.send(line).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_panic_in_the_background_task_is_the_clients_close_reason() {
    let addr = line_server().await;
    let codec = Exploding {
        clones: Arc::default(),
        lines: LinesCodec::new_with_max_length(MAX_LINE),
    };
    let client = Client::builder(addr)
        .fifo::<String, _>(codec)
        .backoff(BackoffConfig::exponential(
            Duration::from_millis(1),
            2.0,
            Duration::from_millis(10),
        ))
        .connect()
        .await
        .unwrap();
    assert_eq!(client.call("hi".to_owned()).await.unwrap(), "hi");
    let Stack::Single(reconnect) = client.stack() else {
        panic!("one connection expected");
    };
    let mut states = reconnect.state_changes();
    // The server drops the connection; the reconnect makes a new one, whose codec panics.
    let lost = client.call("quit".to_owned()).await.unwrap_err();
    assert!(lost.was_sent(), "{lost}");
    let state = tokio::time::timeout(Duration::from_secs(5), states.wait_for(State::is_closed))
        .await
        .unwrap()
        .unwrap()
        .clone();
    assert!(
        matches!(&state, State::Closed(CloseReason::Panicked(m)) if m.contains("codec clone exploded")),
        "{state:?}"
    );
    let err = client.call("after".to_owned()).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Closed { reason: CloseReason::Panicked(m), .. } if m.contains("codec clone exploded")),
        "{err}"
    );
    assert!(!err.was_sent());
    assert!(err.to_string().contains("codec clone exploded"), "{err}");
    assert!(matches!(
        client.close_reason(),
        Some(CloseReason::Panicked(_))
    ));
}
