//! A user protocol with its own ids, multiplexed through `Tagged`: a Cassandra-like codec
//! with 15-bit stream ids, served by `serve_tagged`, called through `Client::tagged`.
#![cfg(feature = "driver")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use beamline_mux::{
    Client, ClientConfig, ConfigError, MuxError, ServerConfig, Tagged, serve_tagged,
};
use bytes::Bytes;
use common::tagged::{Codec, Message, Op};
use common::tcp_pair;

/// Answers `"sleep N: text"` after N ms with `"done: text"`.
async fn handle<const MAX: u32>(req: Message<MAX>) -> Message<MAX> {
    let text = String::from_utf8_lossy(&req.body).into_owned();
    if let Some(rest) = text.strip_prefix("sleep ") {
        let (ms, _) = rest.split_once(':').unwrap();
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
    }
    Message {
        stream: 0,
        op: Op::Result,
        body: Bytes::from(format!("done: {text}")),
    }
}

async fn pair<const MAX: u32>(config: &ClientConfig) -> Client<Message<MAX>, Message<MAX>> {
    let (client_io, server_io) = tcp_pair().await;
    tokio::spawn(serve_tagged(
        server_io,
        Codec::<MAX>,
        &ServerConfig::new(),
        handle::<MAX>,
    ));
    let (client, driver) = Client::tagged(client_io, Codec::<MAX>, config).unwrap();
    tokio::spawn(driver);
    client
}

const CASSANDRA: u32 = i16::MAX as u32;

#[tokio::test]
async fn answers_come_back_out_of_order_to_the_right_callers() {
    let client = pair::<CASSANDRA>(&ClientConfig::new().peer("cql")).await;
    let slow = client.call(Message::query("sleep 30: slow"));
    let fast = client.call(Message::query("sleep 0: fast"));
    let (slow, fast) = tokio::join!(slow, fast);
    assert_eq!(&slow.unwrap().body[..], b"done: sleep 30: slow");
    assert_eq!(&fast.unwrap().body[..], b"done: sleep 0: fast");
}

/// An id space of 8 ids, walked round many times with cancellations mixed in: no answer
/// ever reaches another caller, and quarantined ids are skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_id_space_wraps_around_without_misrouting() {
    let client = pair::<7>(&ClientConfig::new().max_in_flight(4)).await;
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let client = client.clone();
            tokio::spawn(async move {
                for i in 0..40 {
                    let text = format!("sleep {}: {task}/{i}", (task + i) % 3);
                    let call = client.call(Message::query(&text));
                    if (task + i) % 5 == 0 {
                        // Give up right away: sometimes before the write, sometimes after.
                        let _ = tokio::time::timeout(Duration::from_micros(300), call).await;
                        continue;
                    }
                    let answer = call.await.unwrap();
                    assert_eq!(answer.body, format!("done: {text}"));
                    assert!(answer.tag() <= 7);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(client.in_flight(), 0);
    while client.stats().abandoned != 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(client.stats().stray_replies, 0);
}

#[tokio::test]
async fn a_cancelled_call_is_cancelled_on_the_server_with_the_protocols_message() {
    let client = pair::<CASSANDRA>(&ClientConfig::new()).await;
    let err = client
        .call_timeout(
            Message::query("sleep 60000: never"),
            Duration::from_millis(50),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, MuxError::Timeout { sent: true, .. }),
        "{err:?}"
    );
    // The server's cancel acknowledgement releases the quarantined id long before the
    // handler's 60 s would have.
    tokio::time::timeout(Duration::from_secs(5), async {
        while client.stats().abandoned != 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(client.stats().late_replies, 1);
}

#[tokio::test]
async fn more_in_flight_than_the_protocol_has_ids_is_refused() {
    let (client_io, _server_io) = tokio::io::duplex(64);
    let err = Client::<Message<7>, Message<7>>::tagged(
        client_io,
        Codec::<7>,
        &ClientConfig::new().max_in_flight(9),
    )
    .unwrap_err();
    assert_eq!(
        err,
        ConfigError::IdSpaceTooSmall {
            max_in_flight: 9,
            ids: 8
        }
    );
}

/// What a handler refuses, answered with the protocol's own message.
struct Refused(&'static str);

impl<const MAX: u32> From<Refused> for Message<MAX> {
    fn from(why: Refused) -> Self {
        Message {
            stream: 0,
            op: Op::Result,
            body: Bytes::from(format!("refused: {}", why.0)),
        }
    }
}

/// A handler may return `Result<Resp, E>` like `serve_wire`'s: its error becomes the
/// response (through `E: Into<Resp>`), tagged with the request's id like any answer.
#[tokio::test]
async fn a_handler_error_is_answered_with_the_protocols_message() {
    let (client_io, server_io) = tcp_pair().await;
    tokio::spawn(serve_tagged(
        server_io,
        Codec::<CASSANDRA>,
        &ServerConfig::new(),
        |req: Message<CASSANDRA>| async move {
            if req.body.is_empty() {
                return Err(Refused("empty query"));
            }
            Ok(Message::<CASSANDRA> {
                stream: 0,
                op: Op::Result,
                body: req.body,
            })
        },
    ));
    let (client, driver) =
        Client::tagged(client_io, Codec::<CASSANDRA>, &ClientConfig::new()).unwrap();
    tokio::spawn(driver);
    let (refused, fine) = tokio::join!(
        client.call(Message::query("")),
        client.call(Message::query("select"))
    );
    assert_eq!(&refused.unwrap().body[..], b"refused: empty query");
    assert_eq!(&fine.unwrap().body[..], b"select");
}
