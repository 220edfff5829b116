//! A user protocol with its own ids, multiplexed through `Tagged`: a Cassandra-like codec
//! with 15-bit stream ids, served by `serve_tagged`, called through `Client::tagged`.
#![cfg(feature = "driver")]
#![allow(clippy::unwrap_used)]

mod common;

use std::io;
use std::time::Duration;

use beamline_mux::{
    Client, ClientConfig, ConfigError, MuxError, ServerConfig, Tagged, serve_tagged,
};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::tcp_pair;
use tokio_util::codec::{Decoder, Encoder};

/// One message: `[stream: i16][opcode: u8][len: u32][body]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Message<const MAX: u32> {
    stream: i16,
    op: Op,
    body: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Query,
    Result,
    /// Client: cancel that stream. Server: that stream was cancelled.
    Cancel,
}

impl<const MAX: u32> Message<MAX> {
    fn query(body: &str) -> Self {
        Message {
            stream: -1,
            op: Op::Query,
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }
}

impl<const MAX: u32> Tagged for Message<MAX> {
    const MAX_TAG: u32 = MAX;

    fn tag(&self) -> u32 {
        self.stream as u32
    }

    fn set_tag(&mut self, tag: u32) {
        self.stream = i16::try_from(tag).unwrap_or(i16::MAX);
    }

    fn cancel(tag: u32) -> Option<Self> {
        let mut m = Message {
            stream: 0,
            op: Op::Cancel,
            body: Bytes::new(),
        };
        m.set_tag(tag);
        Some(m)
    }

    fn cancels(&self) -> Option<u32> {
        (self.op == Op::Cancel).then(|| self.tag())
    }
}

#[derive(Debug, Default)]
struct Codec<const MAX: u32>;

impl<const MAX: u32> Decoder for Codec<MAX> {
    type Item = Message<MAX>;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Message<MAX>>> {
        if src.len() < 7 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[3], src[4], src[5], src[6]]) as usize;
        if len > 1 << 20 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "frame too long"));
        }
        if src.len() < 7 + len {
            return Ok(None);
        }
        let stream = src.get_i16();
        let op = match src.get_u8() {
            0 => Op::Query,
            1 => Op::Result,
            2 => Op::Cancel,
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("opcode {other}"),
                ));
            }
        };
        src.advance(4);
        let body = src.split_to(len).freeze();
        Ok(Some(Message { stream, op, body }))
    }
}

impl<const MAX: u32> Encoder<Message<MAX>> for Codec<MAX> {
    type Error = io::Error;

    fn encode(&mut self, m: Message<MAX>, dst: &mut BytesMut) -> io::Result<()> {
        dst.put_i16(m.stream);
        dst.put_u8(match m.op {
            Op::Query => 0,
            Op::Result => 1,
            Op::Cancel => 2,
        });
        dst.put_u32(m.body.len() as u32);
        dst.put_slice(&m.body);
        Ok(())
    }
}

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
