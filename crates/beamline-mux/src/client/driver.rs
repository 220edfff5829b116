//! The connection task: owns the transport and the codec, and moves bytes between them and
//! the shared [`Mux`] that callers start requests in.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use beamline_failure::panic_message;
use bytes::BytesMut;
use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

use super::error::{ConnectionError, MuxError, ProtocolViolation};
use super::gate::Gate;
use super::proto::{EncodeError, Inbound, Proto, Reply};
use crate::io::{WRITE_HIGH_WATER, WriteBuf, poll_read_into};
use crate::mux::{Fired, Mux, Recipient, Transmit};

/// How a caller is told the outcome of its request.
pub(crate) type Waiter<Resp> = oneshot::Sender<Result<Resp, MuxError>>;

/// An outcome and the caller it goes to.
struct Answer<Resp> {
    waiter: Waiter<Resp>,
    outcome: Result<Resp, MuxError>,
}

/// Loop iterations per poll before the driver yields to other tasks.
const LOOPS_PER_POLL: usize = 32;
/// Reads per loop iteration.
const READS_PER_LOOP: usize = 4;
/// How long a closing driver waits for the transport's shutdown (a TLS close_notify).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// What callers and the driver share.
pub(crate) struct Shared<Req, Resp> {
    pub(crate) state: Mutex<State<Req, Resp>>,
    /// The driver's waker: callers wake it when they queue something to write.
    pub(crate) driver: AtomicWaker,
    /// Cancelled when the connection is closed or dead.
    pub(crate) closed: CancellationToken,
    pub(crate) peer: Arc<str>,
    pub(crate) max_in_flight: usize,
    pub(crate) timeout: Option<Duration>,
}

impl<Req, Resp> Shared<Req, Resp> {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State<Req, Resp>> {
        // Nothing panics while holding the lock but a user codec; its state is still the
        // mux's, which stays consistent between calls.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) struct State<Req, Resp> {
    pub(crate) mux: Mux<Req, Waiter<Resp>>,
    /// Calls waiting for room in `mux`, in the order of their first polls.
    pub(crate) gate: Gate<Req, Waiter<Resp>>,
    pub(crate) phase: Phase,
    /// Every `Client` handle was dropped: the driver stops.
    pub(crate) handles_gone: bool,
}

impl<Req, Resp> State<Req, Resp> {
    /// Admits waiting calls while the mux has room: called after everything that can make
    /// room (an answer, a timer, a cancel, a failed encode). Returns whether any was
    /// admitted. Once the driver has stopped nothing is admitted any more (the gate was
    /// emptied then, and nothing joins it after).
    pub(crate) fn admit_waiting(&mut self, now: Instant) -> bool {
        self.phase != Phase::Closed && self.gate.admit(&mut self.mux, now)
    }
}

/// The connection's life, as callers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Requests are admitted.
    Open,
    /// [`Client::close`](crate::Client::close) was called: the driver fails what is in
    /// flight and stops.
    Closing,
    /// The driver has stopped: nothing will be answered any more.
    Closed,
}

/// Why the running driver stops.
enum Exit {
    /// The transport or the protocol failed.
    Failed(ConnectionError),
    /// Closed by this side, or every handle dropped: shut the transport down politely.
    Close,
}

/// Where the driver is in its own life.
enum Stage {
    Running,
    ShuttingDown,
    Done,
}

#[derive(Default)]
struct ReadOutcome {
    progress: bool,
    end: Option<ConnectionError>,
}

pub(crate) struct Conn<T, P: Proto> {
    io: T,
    proto: P,
    shared: Arc<Shared<P::Req, P::Resp>>,
    rbuf: BytesMut,
    wbuf: WriteBuf,
    /// Decoded this round, delivered under one lock.
    inbound: Vec<Inbound<P::Resp>>,
    /// Answers to hand out once the lock is released.
    deliveries: Vec<Answer<P::Resp>>,
    timer: Option<Pin<Box<Sleep>>>,
    timer_at: Option<Instant>,
    /// The driver stepped back once before starting a batch (write coalescing).
    deferred: bool,
    stage: Stage,
    /// The callers were told how the connection ended.
    finished: bool,
}

// The driver never pins its fields in place (the transport is `Unpin`, the codec is used
// through `&mut`), so it can move freely.
impl<T, P: Proto> Unpin for Conn<T, P> {}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl<T, P> Conn<T, P>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    P: Proto,
{
    pub(crate) fn new(io: T, proto: P, shared: Arc<Shared<P::Req, P::Resp>>) -> Self {
        Conn {
            io,
            proto,
            shared,
            rbuf: BytesMut::new(),
            wbuf: WriteBuf::default(),
            inbound: Vec::new(),
            deliveries: Vec::new(),
            timer: None,
            timer_at: None,
            deferred: false,
            stage: Stage::Running,
            finished: false,
        }
    }

    fn poll_conn(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnectionError>> {
        loop {
            match self.stage {
                Stage::Running => match self.poll_running(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Exit::Failed(cause)) => {
                        tracing::debug!(peer = %self.shared.peer, %cause, "mux connection failed");
                        self.finish(cause.clone());
                        self.stage = Stage::Done;
                        return Poll::Ready(Err(cause));
                    }
                    Poll::Ready(Exit::Close) => {
                        tracing::debug!(peer = %self.shared.peer, "mux connection closing");
                        self.finish(ConnectionError::Closed);
                        self.arm_timer(now() + SHUTDOWN_GRACE);
                        self.stage = Stage::ShuttingDown;
                    }
                },
                Stage::ShuttingDown => {
                    let shut = Pin::new(&mut self.io).poll_shutdown(cx).is_ready();
                    if !shut && !self.poll_timer(cx) {
                        return Poll::Pending;
                    }
                    self.stage = Stage::Done;
                    return Poll::Ready(Ok(()));
                }
                Stage::Done => return Poll::Ready(Ok(())),
            }
        }
    }

    fn poll_running(&mut self, cx: &mut Context<'_>) -> Poll<Exit> {
        self.shared.driver.register(cx.waker());
        for _ in 0..LOOPS_PER_POLL {
            let read = self.poll_read(cx);
            let (exit, next_timer) = self.sync(now());
            if let Some(exit) = exit {
                return Poll::Ready(exit);
            }
            if let Some(end) = read.end {
                return Poll::Ready(Exit::Failed(end));
            }
            if self.deferred {
                // Callers that are ready to run queue their requests first; this batch is
                // written when the driver's turn comes back.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let wrote = match self.poll_write(cx) {
                Ok(wrote) => wrote,
                Err(cause) => return Poll::Ready(Exit::Failed(cause)),
            };
            let fired = match next_timer {
                Some(at) => {
                    self.arm_timer(at);
                    self.poll_timer(cx)
                }
                None => false,
            };
            if !(read.progress || wrote || fired) {
                return Poll::Pending;
            }
        }
        // Busy: let other tasks run, then carry on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn poll_read(&mut self, cx: &mut Context<'_>) -> ReadOutcome {
        let mut out = ReadOutcome::default();
        for _ in 0..READS_PER_LOOP {
            match poll_read_into(&mut self.io, cx, &mut self.rbuf) {
                Poll::Ready(Ok(0)) => {
                    out.end = Some(ConnectionError::PeerClosed);
                    break;
                }
                Poll::Ready(Ok(_)) => {
                    out.progress = true;
                    if let Err(cause) = self.decode_all() {
                        out.end = Some(cause);
                        break;
                    }
                }
                Poll::Ready(Err(e)) => {
                    out.end = Some(ConnectionError::Io(Arc::new(e)));
                    break;
                }
                Poll::Pending => break,
            }
        }
        out
    }

    fn decode_all(&mut self) -> Result<(), ConnectionError> {
        while let Some(inbound) = self.proto.decode(&mut self.rbuf)? {
            self.inbound.push(inbound);
        }
        Ok(())
    }

    /// Everything that needs the shared state, under one lock: hand replies to their
    /// callers, fire timers, notice close, and encode what callers queued. Returns why the
    /// driver must stop, if it must, and when the next timer is due.
    fn sync(&mut self, now: Instant) -> (Option<Exit>, Option<Instant>) {
        let shared = Arc::clone(&self.shared);
        let peer = &shared.peer;
        let mut exit = None;
        let mut st = shared.lock();

        for inbound in self.inbound.drain(..) {
            match inbound {
                Inbound::Reply { tag, reply } => match st.mux.handle_reply(tag) {
                    Recipient::Caller(waiter) => {
                        let outcome = match reply {
                            Reply::Ok(resp) => Ok(resp),
                            Reply::Remote(payload) => Err(MuxError::Remote {
                                peer: peer.clone(),
                                payload,
                            }),
                            Reply::Cancelled => Err(MuxError::Cancelled { peer: peer.clone() }),
                        };
                        self.deliveries.push(Answer { waiter, outcome });
                    }
                    Recipient::Late | Recipient::Stray => {}
                    Recipient::Unsolicited => {
                        exit = Some(Exit::Failed(ConnectionError::protocol(
                            ProtocolViolation::UnsolicitedReply,
                        )));
                        break;
                    }
                },
                Inbound::Ping { tag, payload } => {
                    let mark = self.wbuf.mark();
                    if self
                        .proto
                        .encode_pong(tag, payload, &mut self.wbuf)
                        .is_err()
                    {
                        self.wbuf.rollback(mark);
                    }
                }
                Inbound::Ignored => {}
            }
        }
        self.inbound.clear();

        while let Some(fired) = st.mux.handle_timeout(now) {
            match fired {
                Fired::Expired(expired) => self.deliveries.push(Answer {
                    waiter: expired.waiter,
                    outcome: Err(MuxError::Timeout {
                        peer: peer.clone(),
                        sent: expired.sent,
                    }),
                }),
                Fired::Wedged { abandon_timeout } => {
                    tracing::warn!(
                        peer = %peer,
                        abandon_timeout_ms = abandon_timeout.as_millis() as u64,
                        "mux: an abandoned FIFO reply never came; failing the wedged connection",
                    );
                    exit.get_or_insert(Exit::Failed(ConnectionError::Wedged { abandon_timeout }));
                    break;
                }
            }
        }
        // Answers, timers and failed encodes make room: waiting calls go in, in order.
        st.admit_waiting(now);

        if exit.is_none() && (st.phase != Phase::Open || st.handles_gone) {
            exit = Some(Exit::Close);
        }

        // Write coalescing: the first request of a batch does not go out at once. The
        // driver steps back once (to the end of the run queue) so that callers already
        // woken can queue theirs, and the whole batch goes out in one write.
        let start_batch = self.wbuf.is_empty() && st.mux.has_transmit();
        self.deferred = start_batch && !self.deferred;
        if exit.is_none() && !self.deferred {
            while self.wbuf.remaining() < WRITE_HIGH_WATER {
                let mark = self.wbuf.mark();
                match st.mux.poll_transmit(mark) {
                    Some(Transmit::Request { ticket, request }) => {
                        let tag = ticket.tag().unwrap_or_default();
                        if let Err(e) = self.proto.encode(tag, request, &mut self.wbuf) {
                            self.wbuf.rollback(mark);
                            if let Some(waiter) = st.mux.transmit_failed(ticket) {
                                self.deliveries.push(Answer {
                                    waiter,
                                    outcome: Err(encode_error(peer, e)),
                                });
                            }
                            st.admit_waiting(now);
                        }
                    }
                    Some(Transmit::Cancel { tag }) => {
                        if self.proto.encode_cancel(tag, &mut self.wbuf).is_err() {
                            self.wbuf.rollback(mark);
                        }
                    }
                    None => break,
                }
            }
        }

        let next_timer = st.mux.poll_timeout();
        drop(st);

        for Answer { waiter, outcome } in self.deliveries.drain(..) {
            // A caller that went away in the meantime no longer cares.
            let _ = waiter.send(outcome);
        }
        (exit, next_timer)
    }

    fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<bool, ConnectionError> {
        self.wbuf
            .poll_drain(&mut self.io, cx)
            .map_err(|e| ConnectionError::Io(Arc::new(e)))
    }

    fn arm_timer(&mut self, at: Instant) {
        if self.timer_at == Some(at) {
            return;
        }
        let deadline = tokio::time::Instant::from_std(at);
        match &mut self.timer {
            Some(timer) => timer.as_mut().reset(deadline),
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        self.timer_at = Some(at);
    }

    /// Whether the armed timer has fired.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> bool {
        match &mut self.timer {
            Some(timer) if self.timer_at.is_some() => {
                let fired = timer.as_mut().poll(cx).is_ready();
                if fired {
                    self.timer_at = None;
                }
                fired
            }
            _ => false,
        }
    }
}

impl<T, P: Proto> Conn<T, P> {
    /// Fails every request still in flight with `cause` (each told whether any byte of it
    /// was written), refuses new ones, and wakes everyone waiting. Runs once.
    fn finish(&mut self, cause: ConnectionError) {
        if self.finished {
            return;
        }
        self.finished = true;
        let (lost, waiting) = {
            let mut st = self.shared.lock();
            st.phase = Phase::Closed;
            (st.mux.connection_lost(self.wbuf.written()), st.gate.drain())
        };
        // Whatever was not written yet never will be: those requests were just told so.
        self.wbuf = WriteBuf::default();
        let peer = &self.shared.peer;
        for waiter in waiting {
            let _ = waiter.send(Err(MuxError::NotSent {
                peer: peer.clone(),
                cause: cause.clone(),
            }));
        }
        for lost in lost {
            let (peer, cause) = (peer.clone(), cause.clone());
            let err = if lost.sent {
                MuxError::ConnectionLost { peer, cause }
            } else {
                MuxError::NotSent { peer, cause }
            };
            let _ = lost.waiter.send(Err(err));
        }
        self.shared.closed.cancel();
    }
}

fn encode_error(peer: &Arc<str>, e: EncodeError) -> MuxError {
    match e {
        EncodeError::TooLarge { len, max } => MuxError::FrameTooLarge {
            peer: peer.clone(),
            len,
            max,
        },
        EncodeError::Codec(source) => MuxError::Encode {
            peer: peer.clone(),
            source,
        },
    }
}

impl<T, P> Future for Conn<T, P>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    P: Proto,
{
    type Output = Result<(), ConnectionError>;

    /// Every poll runs under `catch_unwind`: a panic in the codec ends the connection with
    /// [`ConnectionError::Panicked`] instead of unwinding out of the task with the callers
    /// told only that the driver went away.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match catch_unwind(AssertUnwindSafe(|| this.poll_conn(cx))) {
            Ok(polled) => polled,
            Err(payload) => {
                let cause = ConnectionError::Panicked(panic_message(payload.as_ref()));
                tracing::error!(peer = %this.shared.peer, %cause, "mux connection closed");
                this.finish(cause.clone());
                Poll::Ready(Err(cause))
            }
        }
    }
}

impl<T, P: Proto> Drop for Conn<T, P> {
    fn drop(&mut self) {
        self.finish(ConnectionError::DriverDropped);
    }
}

/// The future that runs one client connection: spawn it (`tokio::spawn(driver)`) next to
/// the [`Client`](crate::Client) it came with.
///
/// It resolves when the connection ends: `Ok(())` after [`Client::close`](crate::Client::close)
/// or once every `Client` handle is dropped (the transport is then shut down), `Err` with
/// the cause when the transport or the protocol failed. Either way every request still in
/// flight has been failed with a [`MuxError`] saying whether it was written. Dropping the
/// driver before it resolves does the same with [`ConnectionError::DriverDropped`].
#[must_use = "the connection does nothing unless its driver is spawned or polled"]
pub struct Driver {
    conn: Pin<Box<dyn Future<Output = Result<(), ConnectionError>> + Send>>,
    peer: Arc<str>,
}

impl Driver {
    pub(crate) fn new<T, P>(conn: Conn<T, P>) -> Self
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        P: Proto,
    {
        let peer = conn.shared.peer.clone();
        Driver {
            conn: Box::pin(conn),
            peer,
        }
    }
}

impl Future for Driver {
    type Output = Result<(), ConnectionError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.conn.as_mut().poll(cx)
    }
}

impl fmt::Debug for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}
