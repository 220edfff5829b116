//! The server side, driven frame by frame from a raw client: bounded concurrency, answers
//! out of order, cancels honoured with exactly one answer per request, protocol errors.
#![cfg(feature = "driver")]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use beamline_mux::{
    Frame, FrameCodec, FrameError, FrameKind, ServeError, ServerConfig, serve_wire,
};
use bytes::Bytes;
use common::tcp_pair;
use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;

/// Counts live handlers and remembers the most seen at once.
#[derive(Clone, Default)]
struct Gauge {
    now: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

/// Held by a handler while it runs; counts a drop before completion as a cancellation.
struct Live {
    gauge: Gauge,
    finished: bool,
}

impl Live {
    fn new(gauge: &Gauge) -> Self {
        let now = gauge.now.fetch_add(1, Ordering::SeqCst) + 1;
        gauge.most.fetch_max(now, Ordering::SeqCst);
        Live {
            gauge: gauge.clone(),
            finished: false,
        }
    }
}

impl Live {
    /// The handler completed: its drop is not a cancellation.
    fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.gauge.now.fetch_sub(1, Ordering::SeqCst);
        if !self.finished {
            self.gauge.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A server whose handler for payload `[n]` waits for `n` permits of `gate`, then echoes.
async fn gated_server(
    config: ServerConfig,
) -> (
    Framed<TcpStream, FrameCodec>,
    Arc<Semaphore>,
    Gauge,
    JoinHandle<Result<(), ServeError>>,
) {
    let (client, server) = tcp_pair().await;
    let gate = Arc::new(Semaphore::new(0));
    let gauge = Gauge::default();
    let serve = {
        let (gate, gauge) = (gate.clone(), gauge.clone());
        tokio::spawn(serve_wire(server, &config, move |req: Bytes| {
            let (gate, live) = (gate.clone(), Live::new(&gauge));
            async move {
                let n = u32::from(req.first().copied().unwrap_or(0));
                if n > 0 {
                    gate.acquire_many(n).await.unwrap().forget();
                }
                live.finish();
                Ok(req)
            }
        }))
    };
    (Framed::new(client, FrameCodec::new()), gate, gauge, serve)
}

async fn send(
    framed: &mut Framed<TcpStream, FrameCodec>,
    kind: FrameKind,
    id: u32,
    payload: impl Into<Bytes>,
) {
    framed.send(Frame::new(kind, id, payload)).await.unwrap();
}

async fn next(framed: &mut Framed<TcpStream, FrameCodec>) -> Frame {
    framed.next().await.unwrap().unwrap()
}

async fn wait_for(mut done: impl FnMut() -> bool) {
    while !done() {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn handlers_run_up_to_the_bound_and_answer_as_they_complete() {
    let (mut client, gate, gauge, serve) =
        gated_server(ServerConfig::new().max_concurrent(3)).await;
    // Requests 0..6, request i needs 6 - i permits: later requests finish first.
    for i in 0..6u32 {
        send(&mut client, FrameKind::Request, i, vec![(6 - i) as u8]).await;
    }
    wait_for(|| gauge.now.load(Ordering::SeqCst) == 3).await;
    gate.add_permits(100);
    let mut ids = Vec::new();
    for _ in 0..6 {
        let f = next(&mut client).await;
        assert_eq!(f.kind, FrameKind::Response);
        assert_eq!(f.payload[..], [(6 - f.id) as u8]);
        ids.push(f.id);
    }
    ids.sort_unstable();
    assert_eq!(ids, [0, 1, 2, 3, 4, 5]);
    assert_eq!(gauge.most.load(Ordering::SeqCst), 3);
    client.get_mut().shutdown().await.unwrap();
    assert!(client.next().await.is_none());
    serve.await.unwrap().unwrap();
}

#[tokio::test]
async fn answers_go_out_in_completion_order() {
    let (mut client, gate, _gauge, _serve) = gated_server(ServerConfig::new()).await;
    send(&mut client, FrameKind::Request, 1, vec![2]).await;
    send(&mut client, FrameKind::Request, 2, vec![0]).await;
    assert_eq!(next(&mut client).await.id, 2, "the quick one answers first");
    gate.add_permits(2);
    assert_eq!(next(&mut client).await.id, 1);
}

#[tokio::test]
async fn a_cancel_stops_a_running_handler_and_is_acknowledged_once() {
    let (mut client, gate, gauge, _serve) = gated_server(ServerConfig::new()).await;
    send(&mut client, FrameKind::Request, 9, vec![1]).await;
    wait_for(|| gauge.now.load(Ordering::SeqCst) == 1).await;
    send(&mut client, FrameKind::Cancel, 9, "").await;
    assert_eq!(
        next(&mut client).await,
        Frame::new(FrameKind::Cancel, 9, "")
    );
    assert_eq!(gauge.dropped.load(Ordering::SeqCst), 1);
    // Nothing else follows for id 9: a ping comes back next.
    gate.add_permits(10);
    send(&mut client, FrameKind::Ping, 1, "p").await;
    assert_eq!(next(&mut client).await, Frame::new(FrameKind::Pong, 1, "p"));
    // A cancel for a request already answered (or never made) is ignored.
    send(&mut client, FrameKind::Request, 3, vec![0]).await;
    assert_eq!(next(&mut client).await.id, 3);
    send(&mut client, FrameKind::Cancel, 3, "").await;
    send(&mut client, FrameKind::Ping, 2, "").await;
    assert_eq!(next(&mut client).await, Frame::new(FrameKind::Pong, 2, ""));
}

#[tokio::test]
async fn a_cancel_for_a_queued_request_answers_without_running_it() {
    let (mut client, gate, gauge, _serve) =
        gated_server(ServerConfig::new().max_concurrent(1)).await;
    send(&mut client, FrameKind::Request, 1, vec![1]).await;
    send(&mut client, FrameKind::Request, 2, vec![0]).await;
    send(&mut client, FrameKind::Cancel, 2, "").await;
    assert_eq!(
        next(&mut client).await,
        Frame::new(FrameKind::Cancel, 2, "")
    );
    gate.add_permits(1);
    assert_eq!(next(&mut client).await.id, 1);
    // Request 2 never ran: one handler started, none was dropped.
    assert_eq!(gauge.most.load(Ordering::SeqCst), 1);
    assert_eq!(gauge.dropped.load(Ordering::SeqCst), 0);
    // The id is free again.
    send(&mut client, FrameKind::Request, 2, vec![0]).await;
    assert_eq!(next(&mut client).await.kind, FrameKind::Response);
}

#[tokio::test]
async fn an_id_reused_while_unanswered_is_a_protocol_error() {
    let (mut client, _gate, _gauge, serve) = gated_server(ServerConfig::new()).await;
    send(&mut client, FrameKind::Request, 5, vec![1]).await;
    send(&mut client, FrameKind::Request, 5, vec![1]).await;
    assert!(matches!(
        serve.await.unwrap(),
        Err(ServeError::DuplicateId { id: 5 })
    ));
}

#[tokio::test]
async fn a_response_frame_from_the_client_is_a_protocol_error() {
    let (mut client, _gate, _gauge, serve) = gated_server(ServerConfig::new()).await;
    send(&mut client, FrameKind::Response, 1, "").await;
    assert!(matches!(
        serve.await.unwrap(),
        Err(ServeError::UnexpectedFrame {
            kind: FrameKind::Response,
            id: 1
        })
    ));
}

#[tokio::test]
async fn an_oversized_request_is_refused_from_its_header() {
    let (mut client, _gate, _gauge, serve) =
        gated_server(ServerConfig::new().max_frame_len(10)).await;
    send(&mut client, FrameKind::Request, 1, vec![0u8; 11]).await;
    let Err(ServeError::Decode(e)) = serve.await.unwrap() else {
        panic!("expected a decode error");
    };
    assert_eq!(
        e.downcast_ref::<FrameError>(),
        Some(&FrameError::TooLarge { len: 11, max: 10 })
    );
}

#[tokio::test]
async fn a_response_too_large_even_to_explain_gets_a_short_error() {
    let (client, server) = tcp_pair().await;
    let config = ServerConfig::new().max_frame_len(8);
    let serve = tokio::spawn(serve_wire(server, &config, |_req: Bytes| async move {
        Ok(Bytes::from(vec![0u8; 9]))
    }));
    let mut client = Framed::new(client, FrameCodec::new());
    send(&mut client, FrameKind::Request, 4, "x").await;
    let Some(answer) = client.next().await else {
        panic!("no answer: {:?}", serve.await);
    };
    let answer = answer.unwrap();
    assert_eq!((answer.kind, answer.id), (FrameKind::Error, 4));
    assert_eq!(&answer.payload[..], b"response");
}

#[tokio::test]
async fn a_half_closed_client_still_gets_every_answer() {
    let (mut client, gate, _gauge, serve) = gated_server(ServerConfig::new()).await;
    for i in 0..4u32 {
        send(&mut client, FrameKind::Request, i, vec![1]).await;
    }
    client.get_mut().shutdown().await.unwrap();
    gate.add_permits(4);
    let mut n = 0;
    while let Some(frame) = client.next().await {
        assert_eq!(frame.unwrap().kind, FrameKind::Response);
        n += 1;
    }
    assert_eq!(n, 4);
    serve.await.unwrap().unwrap();
}
