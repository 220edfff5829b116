//! The one ordered admission gate of `Client`: requests are written in the order their calls
//! were first polled, at most `max_in_flight` at a time; a call that finds no room waits in
//! line and goes in as soon as room appears, whatever made it; a waiting call that is dropped
//! leaves the line; `try_call` never waits. Time-based cases run on the paused clock with no
//! request deadline, so nothing but the room itself can end a wait.
#![cfg(feature = "driver")]
#![allow(clippy::unwrap_used)]

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use beamline_mux::{Client, ClientConfig, Frame, FrameKind, MuxError};
use bytes::Bytes;
use common::tagged::{Codec, Message, Op};
use common::{Peer, spawn_call, wire_pipe};
use futures::{FutureExt, SinkExt, StreamExt};
use proptest::prelude::*;
use tokio::io::DuplexStream;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::codec::Framed;

/// Longer than any wait these tests allow (paused clock: it costs nothing), so a call that
/// is never admitted fails the test instead of hanging it.
const NEVER: Duration = Duration::from_secs(3600);

/// The next frame the client writes, or a failure if none comes.
async fn next_frame(peer: &mut Peer) -> Frame {
    timeout(NEVER, peer.next())
        .await
        .expect("the client never wrote the next request")
        .unwrap()
        .unwrap()
}

/// Writes `payload` and abandons it (its caller is dropped after it was written).
async fn abandon(client: &Client<Bytes, Bytes>, peer: &mut Peer, payload: &'static str) -> Frame {
    let call = spawn_call(client, payload, None);
    let frame = next_frame(peer).await;
    assert_eq!(&frame.payload[..], payload.as_bytes());
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    assert_eq!(next_frame(peer).await.kind, FrameKind::Cancel);
    frame
}

/// Answers `frame` with its own payload.
async fn answer(peer: &mut Peer, frame: &Frame) {
    let reply = Frame::new(FrameKind::Response, frame.id, frame.payload.clone());
    peer.send(reply).await.unwrap();
}

/// `call` is still waiting after a long quiet time: the room it needs has not appeared.
async fn still_waiting(call: &JoinHandle<Result<Bytes, MuxError>>) {
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(!call.is_finished(), "the call ended without room");
}

/// Room made by an answer: the late answer to an abandoned request ends its quarantine.
#[tokio::test(start_paused = true)]
async fn a_call_blocked_by_abandoned_requests_goes_in_when_a_late_answer_comes() {
    let (client, mut peer) = wire_pipe(&ClientConfig::new().max_abandoned(1));
    let a = abandon(&client, &mut peer, "a").await;
    let b = spawn_call(&client, "b", None);
    still_waiting(&b).await;
    answer(&mut peer, &a).await;
    let b_frame = next_frame(&mut peer).await;
    assert_eq!(&b_frame.payload[..], b"b");
    answer(&mut peer, &b_frame).await;
    assert_eq!(b.await.unwrap().unwrap(), "b");
}

/// Room made by a cancel: a call in flight is dropped, and its slot goes to the next in line.
#[tokio::test(start_paused = true)]
async fn a_call_waiting_for_a_slot_goes_in_when_a_call_in_flight_is_dropped() {
    let (client, mut peer) = wire_pipe(&ClientConfig::new().max_in_flight(1));
    let a = spawn_call(&client, "a", None);
    next_frame(&mut peer).await;
    let b = spawn_call(&client, "b", None);
    still_waiting(&b).await;
    a.abort();
    assert_eq!(next_frame(&mut peer).await.kind, FrameKind::Cancel);
    assert_eq!(&next_frame(&mut peer).await.payload[..], b"b");
    assert!(!b.is_finished());
}

/// Room made by an age limit: a quarantine ends with no answer at all, and nothing else
/// happens on the connection that could wake the waiting call.
#[tokio::test(start_paused = true)]
async fn a_call_blocked_by_abandoned_requests_goes_in_when_a_quarantine_ages_out() {
    let config = ClientConfig::new()
        .max_abandoned(1)
        .quarantine(Duration::from_secs(30));
    let (client, mut peer) = wire_pipe(&config);
    abandon(&client, &mut peer, "a").await;
    let aged_out = tokio::time::Instant::now() + Duration::from_secs(30);
    let b = spawn_call(&client, "b", None);
    assert_eq!(&next_frame(&mut peer).await.payload[..], b"b");
    assert_eq!(tokio::time::Instant::now(), aged_out);
    assert_eq!(client.stats().quarantine_expired, 1);
    assert!(!b.is_finished());
}

/// A protocol with two ids, 0 and 1.
type Cql = Message<1>;
type CqlPeer = Framed<DuplexStream, Codec<1>>;

/// A client of the two-id protocol (two in flight at most), and the raw peer.
fn two_ids(config: &ClientConfig) -> (Client<Cql, Cql>, CqlPeer) {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let config = config.clone().max_in_flight(2);
    let (client, driver) = Client::tagged(client_io, Codec::<1>, &config).unwrap();
    tokio::spawn(driver);
    (client, Framed::new(server_io, Codec::<1>))
}

/// Writes `text` over the two-id protocol and abandons it; returns its id.
async fn abandon_tagged(client: &Client<Cql, Cql>, peer: &mut CqlPeer, text: &'static str) -> i16 {
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.call(Message::query(text)).await }
    });
    let written = timeout(NEVER, peer.next()).await.unwrap().unwrap().unwrap();
    call.abort();
    let _ = call.await;
    let cancel = timeout(NEVER, peer.next()).await.unwrap().unwrap().unwrap();
    assert_eq!((cancel.op, cancel.stream), (Op::Cancel, written.stream));
    written.stream
}

/// Room made by an id released by a cancel: the only free id was taken by a request not yet
/// written, whose caller then gave up, so the id is free again at once.
#[tokio::test(start_paused = true)]
async fn a_call_blocked_by_a_full_id_space_goes_in_when_a_cancel_frees_an_id() {
    let (client, mut peer) = two_ids(&ClientConfig::new());
    abandon_tagged(&client, &mut peer, "a").await;
    // "b" takes the last id; the driver has not run yet, so nothing of it is written.
    let mut b = Box::pin(client.call(Message::query("b")));
    assert!(first_poll(&mut b).is_pending());
    // "c" finds no free id and waits.
    let mut c = Box::pin({
        let client = client.clone();
        async move { client.call(Message::query("c")).await }
    });
    assert!(first_poll(&mut c).is_pending());
    drop(b);
    let c = tokio::spawn(c);
    let written = timeout(NEVER, peer.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(&written.body[..], b"c", "\"b\" was never written");
    assert!(!c.is_finished());
}

/// Room made by an id released by its age: both ids sit in quarantine until it ends.
#[tokio::test(start_paused = true)]
async fn a_call_blocked_by_a_full_id_space_goes_in_when_an_id_ages_out() {
    let (client, mut peer) = two_ids(&ClientConfig::new().quarantine(Duration::from_secs(20)));
    abandon_tagged(&client, &mut peer, "a").await;
    let started = tokio::time::Instant::now();
    abandon_tagged(&client, &mut peer, "b").await;
    let c = tokio::spawn({
        let client = client.clone();
        async move { client.call(Message::query("c")).await }
    });
    let written = timeout(NEVER, peer.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(&written.body[..], b"c");
    assert_eq!(started.elapsed(), Duration::from_secs(20));
    assert!(!c.is_finished());
}

/// Polls `call` once with a waker that does nothing: its first poll.
fn first_poll<F: Future + Unpin>(call: &mut F) -> Poll<F::Output> {
    Pin::new(call).poll(&mut Context::from_waker(Waker::noop()))
}

#[tokio::test(start_paused = true)]
async fn the_line_keeps_first_poll_order_and_try_call_never_joins_it() {
    let (client, mut peer) = wire_pipe(&ClientConfig::new().max_in_flight(2));
    let mut calls: Vec<Pending> = (0..8).map(|i| owned_call(&client, i, false)).collect();
    let order = [5, 2, 7, 0, 3, 6, 1, 4];
    for &i in &order {
        assert!(first_poll(&mut calls[i]).is_pending());
    }
    assert_eq!((client.in_flight(), client.waiting()), (2, 6));
    // A try_call neither waits nor overtakes, even when a slot frees up under it.
    let busy = client
        .try_call(Bytes::from_static(b"try"))
        .await
        .unwrap_err();
    assert!(matches!(busy, MuxError::Busy { .. }), "{busy:?}");
    assert_eq!(client.waiting(), 6);
    // The third in line (7) leaves before its turn: it is never written.
    let dropped = calls.remove(7);
    drop(dropped);
    assert_eq!(client.waiting(), 5);
    let mut seen = Vec::new();
    let tasks: Vec<_> = calls.into_iter().map(tokio::spawn).collect();
    while seen.len() < 7 {
        let frame = next_frame(&mut peer).await;
        seen.push(String::from_utf8(frame.payload.to_vec()).unwrap());
        answer(&mut peer, &frame).await;
    }
    assert_eq!(seen, ["5", "2", "0", "3", "6", "1", "4"]);
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!((client.in_flight(), client.waiting()), (0, 0));
}

/// A loop of calls that are refused at once must not starve the other tasks of its
/// (single) worker: the admission path gives tokio's cooperative budget back.
#[test]
fn a_loop_of_refused_calls_lets_other_tasks_run() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, mut peer) = wire_pipe(&ClientConfig::new().max_in_flight(1));
        let _held = spawn_call(&client, "held", None);
        next_frame(&mut peer).await;
        let ran = Arc::new(AtomicBool::new(false));
        tokio::spawn({
            let ran = ran.clone();
            async move { ran.store(true, Ordering::SeqCst) }
        });
        let mut refused = 0u32;
        while !ran.load(Ordering::SeqCst) && refused < 100_000 {
            let busy = client.try_call(Bytes::from_static(b"x")).await.unwrap_err();
            assert!(matches!(busy, MuxError::Busy { .. }), "{busy:?}");
            refused += 1;
        }
        assert!(
            ran.load(Ordering::SeqCst),
            "the other task never ran during {refused} refused calls"
        );
        assert!(
            refused <= 1_000,
            "it ran only after {refused} refused calls"
        );
    });
}

// ---------------------------------------------------------------------------------------
// Arbitrary interleavings.

#[derive(Debug, Clone)]
enum Step {
    /// A new call, first polled now.
    Call,
    /// A `try_call`, first polled now.
    Try,
    /// The `n`-th pending call's caller gives up; with `settle`, only after everything the
    /// client wrote so far has reached the peer (then an unseen request must never come).
    Drop { n: usize, settle: bool },
    /// The peer answers the `n`-th request it holds (abandoned ones too: a late answer).
    Reply(usize),
    /// The driver and the peer run, then the pending calls are polled, starting with the
    /// `n`-th (tasks run in any order; only first polls decide the order of writes).
    Run(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Call),
        1 => Just(Step::Try),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(n, settle)| Step::Drop { n, settle }),
        3 => any::<usize>().prop_map(Step::Reply),
        3 => any::<usize>().prop_map(Step::Run),
    ]
}

type Pending = Pin<Box<dyn Future<Output = Result<Bytes, MuxError>> + Send>>;

/// A call of payload `index` (a `try_call` with `try_call`) that owns its client handle.
fn owned_call(client: &Client<Bytes, Bytes>, index: usize, try_call: bool) -> Pending {
    let (client, payload) = (client.clone(), Bytes::from(index.to_string()));
    if try_call {
        Box::pin(async move { client.try_call(payload).await })
    } else {
        Box::pin(async move { client.call(payload).await })
    }
}

const BOUND: usize = 3;

/// The peer's view and the test's bookkeeping.
struct World {
    client: Client<Bytes, Bytes>,
    peer: Peer,
    /// Calls not finished yet: (first-poll index, future).
    pending: Vec<(usize, Pending)>,
    next: usize,
    /// Indexes of the requests the peer received, in arrival order.
    received: Vec<usize>,
    /// Requests the peer holds unanswered: (id, payload).
    holding: Vec<(u32, Bytes)>,
    /// Calls dropped before the client wrote them: they must never arrive.
    never: Vec<usize>,
}

impl World {
    /// Lets the driver run, then reads everything it wrote.
    async fn run(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
        while let Some(frame) = self.peer.next().now_or_never() {
            let frame = frame.unwrap().unwrap();
            match frame.kind {
                FrameKind::Request => {
                    let index: usize = String::from_utf8_lossy(&frame.payload).parse().unwrap();
                    prop_assert!(
                        !self.never.contains(&index),
                        "{index} was written after its caller left the line"
                    );
                    self.received.push(index);
                    self.holding.push((frame.id, frame.payload));
                }
                FrameKind::Cancel => {}
                other => prop_assert!(false, "unexpected {other:?}"),
            }
        }
        Ok(())
    }

    /// Polls every pending call once, starting with the `first`-th; checks and removes the
    /// finished ones.
    fn poll_all(&mut self, first: usize) -> Result<(), TestCaseError> {
        let mut cx = Context::from_waker(Waker::noop());
        let mut still = Vec::new();
        let n = self.pending.len().max(1);
        self.pending.rotate_left(first % n);
        for (index, mut call) in self.pending.drain(..) {
            match call.as_mut().poll(&mut cx) {
                Poll::Pending => still.push((index, call)),
                Poll::Ready(Ok(answer)) => prop_assert_eq!(answer, Bytes::from(index.to_string())),
                Poll::Ready(Err(e)) => prop_assert!(false, "call {} failed: {}", index, e),
            }
        }
        self.pending = still;
        Ok(())
    }

    fn start(&mut self, try_call: bool) -> Result<(), TestCaseError> {
        let index = self.next;
        self.next += 1;
        let waiting_before = self.client.waiting();
        let mut call = owned_call(&self.client, index, try_call);
        match first_poll(&mut call) {
            Poll::Pending => self.pending.push((index, call)),
            Poll::Ready(Err(MuxError::Busy { .. })) if try_call => {
                prop_assert_eq!(
                    self.client.waiting(),
                    waiting_before,
                    "try_call joined the line"
                );
            }
            Poll::Ready(other) => prop_assert!(false, "call {} ended at once: {:?}", index, other),
        }
        if try_call && waiting_before > 0 {
            prop_assert_eq!(
                self.client.waiting(),
                waiting_before,
                "try_call overtook the line"
            );
        }
        Ok(())
    }
}

fn interleave(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let config = ClientConfig::new().max_in_flight(BOUND).max_abandoned(2);
        let (client, peer) = wire_pipe(&config);
        let mut w = World {
            client,
            peer,
            pending: Vec::new(),
            next: 0,
            received: Vec::new(),
            holding: Vec::new(),
            never: Vec::new(),
        };
        for step in steps {
            match step {
                Step::Call => w.start(false)?,
                Step::Try => w.start(true)?,
                Step::Drop { n, settle } if !w.pending.is_empty() => {
                    if settle {
                        w.run().await?;
                    }
                    let (index, call) = w.pending.remove(n % w.pending.len());
                    drop(call);
                    if settle && !w.received.contains(&index) {
                        w.never.push(index);
                    }
                }
                Step::Reply(n) if !w.holding.is_empty() => {
                    let (id, payload) = w.holding.remove(n % w.holding.len());
                    w.peer
                        .send(Frame::new(FrameKind::Response, id, payload))
                        .await
                        .unwrap();
                }
                Step::Run(first) => {
                    w.run().await?;
                    w.poll_all(first)?;
                }
                _ => {}
            }
            prop_assert!(
                w.client.in_flight() <= BOUND,
                "{} in flight",
                w.client.in_flight()
            );
        }
        // Everything left is answered, and every call still pending ends with its answer.
        for _ in 0..1_000 {
            if w.pending.is_empty() && w.holding.is_empty() {
                break;
            }
            w.run().await?;
            for (id, payload) in std::mem::take(&mut w.holding) {
                w.peer
                    .send(Frame::new(FrameKind::Response, id, payload))
                    .await
                    .unwrap();
            }
            w.run().await?;
            w.poll_all(0)?;
            prop_assert!(w.client.in_flight() <= BOUND);
        }
        prop_assert!(
            w.pending.is_empty(),
            "{} calls never ended",
            w.pending.len()
        );
        // First-poll order: the peer saw requests in increasing index order.
        prop_assert!(
            w.received.windows(2).all(|p| p[0] < p[1]),
            "written out of first-poll order: {:?}",
            w.received
        );
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_interleaving_keeps_first_poll_order_and_the_bound(
        steps in prop::collection::vec(step(), 1..120)
    ) {
        interleave(steps)?;
    }
}
