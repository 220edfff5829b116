//! One served connection: read requests, run their handlers concurrently (bounded), write
//! answers as they complete.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::BuildHasherDefault;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures::future::{AbortHandle, Abortable, Aborted};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};

use super::error::ServeError;
use super::proto::{Incoming, ServerProto};
use crate::io::{WRITE_HIGH_WATER, WriteBuf, poll_read_into};
use crate::mux::IdHasher;

/// Loop iterations per poll before the connection yields to other tasks.
const LOOPS_PER_POLL: usize = 32;
/// Reads per loop iteration.
const READS_PER_LOOP: usize = 4;

/// A request the server has read and not yet answered.
struct Task {
    /// Tells this request apart from a later one with the same id.
    seq: u64,
    /// `None` while it waits for a free handler slot.
    abort: Option<AbortHandle>,
}

/// A running handler, labelled with its request's id.
#[pin_project::pin_project]
struct Running<F> {
    tag: u32,
    #[pin]
    fut: Abortable<F>,
}

impl<F: Future> Future for Running<F> {
    type Output = (u32, Result<F::Output, Aborted>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        this.fut.poll(cx).map(|out| (*this.tag, out))
    }
}

/// Where the connection is in its life.
enum Stage {
    /// Reading requests and answering them.
    Serving,
    /// The client closed its side: answer what is running, then shut down.
    Draining,
    Done,
}

pub(crate) struct ServeConn<T, P: ServerProto, H, F> {
    io: T,
    proto: P,
    handler: H,
    running: FuturesUnordered<Running<F>>,
    /// Every request read and not yet answered, by id.
    tasks: HashMap<u32, Task, BuildHasherDefault<IdHasher>>,
    /// Requests waiting for a handler slot, in arrival order.
    queue: VecDeque<(u32, u64, P::Req)>,
    next_seq: u64,
    max_concurrent: usize,
    rbuf: BytesMut,
    wbuf: WriteBuf,
    stage: Stage,
}

// Handler futures live pinned inside `FuturesUnordered`; nothing else is pinned in place.
impl<T, P: ServerProto, H, F> Unpin for ServeConn<T, P, H, F> {}

impl<T, P, H, F> ServeConn<T, P, H, F>
where
    T: AsyncRead + AsyncWrite + Unpin,
    P: ServerProto,
    H: FnMut(P::Req) -> F,
    F: Future<Output = P::Resp>,
{
    pub(crate) fn new(io: T, proto: P, handler: H, max_concurrent: usize) -> Self {
        ServeConn {
            io,
            proto,
            handler,
            running: FuturesUnordered::new(),
            tasks: HashMap::default(),
            queue: VecDeque::new(),
            next_seq: 0,
            max_concurrent: max_concurrent.max(1),
            rbuf: BytesMut::new(),
            wbuf: WriteBuf::default(),
            stage: Stage::Serving,
        }
    }

    fn poll_serve(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ServeError>> {
        for _ in 0..LOOPS_PER_POLL {
            if matches!(self.stage, Stage::Done) {
                return Poll::Ready(Ok(()));
            }
            let mut progress = self.poll_read(cx)?;
            self.start_queued();
            progress |= self.poll_handlers(cx)?;
            match self.poll_write(cx) {
                Ok(wrote) => progress |= wrote,
                // The client is gone after closing its side: nothing left to answer.
                Err(_) if matches!(self.stage, Stage::Draining) => return Poll::Ready(Ok(())),
                Err(e) => return Poll::Ready(Err(ServeError::Io(e))),
            }
            if matches!(self.stage, Stage::Draining)
                && self.queue.is_empty()
                && self.running.is_empty()
                && self.wbuf.is_flushed()
            {
                let shut = Pin::new(&mut self.io).poll_shutdown(cx);
                if shut.is_pending() {
                    return Poll::Pending;
                }
                self.stage = Stage::Done;
                return Poll::Ready(Ok(()));
            }
            if !progress {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Decodes buffered requests, and reads more, while the queue has room: beyond
    /// `max_concurrent` queued requests the client is held back by TCP flow control. Control
    /// messages (cancels, pings) are still read and handled when the queue is full, as long
    /// as the protocol can tell them apart before decoding (the wire format can).
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Result<bool, ServeError> {
        let mut progress = self.decode_buffered()?;
        for _ in 0..READS_PER_LOOP {
            let wanted = matches!(self.stage, Stage::Serving)
                // A client that does not read its answers is not read either.
                && self.wbuf.remaining() < WRITE_HIGH_WATER
                && (self.has_room() || self.proto.next_is_control(&self.rbuf) != Some(false));
            if !wanted {
                break;
            }
            match poll_read_into(&mut self.io, cx, &mut self.rbuf) {
                Poll::Ready(Ok(0)) => {
                    self.stage = Stage::Draining;
                    progress = true;
                }
                Poll::Ready(Ok(_)) => {
                    progress = true;
                    self.decode_buffered()?;
                }
                Poll::Ready(Err(e)) => return Err(ServeError::Io(e)),
                Poll::Pending => break,
            }
        }
        Ok(progress)
    }

    fn has_room(&self) -> bool {
        self.queue.len() < self.max_concurrent
    }

    fn decode_buffered(&mut self) -> Result<bool, ServeError> {
        let mut progress = false;
        while self.has_room() || self.proto.next_is_control(&self.rbuf) == Some(true) {
            let Some(incoming) = self.proto.decode(&mut self.rbuf)? else {
                break;
            };
            progress = true;
            match incoming {
                Incoming::Request { tag, request } => {
                    if self.tasks.contains_key(&tag) {
                        return Err(ServeError::DuplicateId { id: tag });
                    }
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    self.tasks.insert(tag, Task { seq, abort: None });
                    self.queue.push_back((tag, seq, request));
                }
                Incoming::Cancel { tag } => self.cancel(tag)?,
                Incoming::Ping { tag, payload } => {
                    self.proto.encode_pong(tag, payload, &mut self.wbuf)?;
                }
                Incoming::Ignored => {}
            }
        }
        Ok(progress)
    }

    /// Honours a cancel: a queued request is dropped and acknowledged at once; a running
    /// handler is aborted and acknowledged when it has stopped. Either way the request gets
    /// exactly one answer. A cancel for a request already answered is ignored.
    fn cancel(&mut self, tag: u32) -> Result<(), ServeError> {
        match self.tasks.get(&tag).map(|t| t.abort.clone()) {
            Some(None) => {
                self.tasks.remove(&tag);
                self.proto.encode_cancelled(tag, &mut self.wbuf)?;
            }
            Some(Some(abort)) => abort.abort(),
            None => {}
        }
        Ok(())
    }

    fn start_queued(&mut self) {
        while self.running.len() < self.max_concurrent {
            let Some((tag, seq, request)) = self.queue.pop_front() else {
                return;
            };
            // A request cancelled while queued has left `tasks` (or its id went to a
            // later request): skip it.
            let Some(task) = self
                .tasks
                .get_mut(&tag)
                .filter(|t| t.seq == seq && t.abort.is_none())
            else {
                continue;
            };
            let (abort, registration) = AbortHandle::new_pair();
            task.abort = Some(abort);
            self.running.push(Running {
                tag,
                fut: Abortable::new((self.handler)(request), registration),
            });
        }
    }

    fn poll_handlers(&mut self, cx: &mut Context<'_>) -> Result<bool, ServeError> {
        let mut progress = false;
        while let Poll::Ready(Some((tag, outcome))) = self.running.poll_next_unpin(cx) {
            progress = true;
            self.tasks.remove(&tag);
            match outcome {
                Ok(resp) => self.proto.encode_reply(tag, resp, &mut self.wbuf)?,
                Err(Aborted) => self.proto.encode_cancelled(tag, &mut self.wbuf)?,
            }
        }
        Ok(progress)
    }

    fn poll_write(&mut self, cx: &mut Context<'_>) -> std::io::Result<bool> {
        self.wbuf.poll_drain(&mut self.io, cx)
    }
}

impl<T, P, H, F> Future for ServeConn<T, P, H, F>
where
    T: AsyncRead + AsyncWrite + Unpin,
    P: ServerProto,
    H: FnMut(P::Req) -> F,
    F: Future<Output = P::Resp>,
{
    type Output = Result<(), ServeError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().poll_serve(cx)
    }
}
