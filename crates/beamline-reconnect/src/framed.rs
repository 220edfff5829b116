//! A plain (not multiplexed) connection over a `tokio_util::codec::Framed`: requests are
//! written in order, pipelined up to a limit, and the n-th response answers the n-th request.

use std::collections::VecDeque;
use std::error::Error as StdError;
use std::fmt;
use std::future::poll_fn;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::{Decoder, Encoder, Framed};

use crate::reconnect::catch_panic;
use crate::{Connection, WasSent};

/// How many requests a [`FramedConnection`] made with [`FramedConnection::new`] keeps
/// written-but-unanswered at once.
pub const DEFAULT_MAX_IN_FLIGHT: NonZeroUsize = match NonZeroUsize::new(128) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};

/// A [`Connection`] over one `Framed<T, U>`: a request/response protocol without request
/// ids (Redis RESP, a line protocol, memcached text), where responses come back in request
/// order.
///
/// A background task owns the framed transport. Requests are written in the order their
/// [`call`](Connection::call) futures are first polled, up to `max_in_flight` of them
/// unanswered at once (pipelining; 1 means strictly one at a time); the n-th decoded
/// response completes the n-th written request. Callers beyond the limit wait in FIFO
/// order. Handles are cheap to clone and share one transport.
///
/// # Failure
/// - A request whose caller gave up (dropped its future) before it was written is never
///   written; one dropped after being written still has its response read and discarded,
///   so the responses of the others stay matched.
/// - A request that cannot be encoded fails alone with [`FramedError::Encode`]; its
///   partial bytes are discarded and the connection stays up.
/// - When the transport ends (EOF, an I/O or decode error, a response nobody asked for, or
///   [`close`](Connection::close)), the connection is marked closed first, then every
///   request already handed to the transport fails with [`FramedError::ConnectionLost`]
///   (it may have been delivered) and every request not yet written with
///   [`FramedError::NotSent`] (it certainly was not).
/// - Dropping every handle closes the transport.
///
/// # Panics
/// [`new`](Self::new) and [`with_max_in_flight`](Self::with_max_in_flight) spawn a task,
/// so they panic outside a tokio runtime.
///
/// # Examples
/// ```no_run
/// use beamline_reconnect::{Connection, FramedConnection};
/// use tokio::net::TcpStream;
/// use tokio_util::codec::{Framed, LinesCodec};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let stream = TcpStream::connect("127.0.0.1:7000").await?;
/// let lines = LinesCodec::new_with_max_length(8 * 1024);
/// let conn = FramedConnection::new(Framed::new(stream, lines));
/// let reply: String = conn.call("PING".to_string()).await?;
/// # let _ = reply;
/// # Ok(())
/// # }
/// ```
pub struct FramedConnection<Req, Resp> {
    jobs: mpsc::Sender<Job<Req, Resp>>,
    /// `None` while open; the cause once closed. Shared with the driver task.
    state: Arc<watch::Sender<Option<FramedCloseCause>>>,
}

impl<Req, Resp> Clone for FramedConnection<Req, Resp> {
    fn clone(&self) -> Self {
        Self {
            jobs: self.jobs.clone(),
            state: self.state.clone(),
        }
    }
}

impl<Req, Resp> fmt::Debug for FramedConnection<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FramedConnection")
            .field("closed", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

/// Why a [`FramedConnection`] call failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FramedError {
    /// The connection was closed before this request was written. It was not delivered:
    /// retrying on another connection is safe.
    #[error("request not sent: the connection is closed ({cause})")]
    NotSent {
        /// Why the connection closed.
        cause: FramedCloseCause,
    },
    /// The request was handed to the transport but the connection ended before its
    /// response arrived. It may have been delivered: retry only if it is idempotent.
    #[error(
        "connection lost before the response arrived ({cause}); the request may have been delivered"
    )]
    ConnectionLost {
        /// Why the connection closed.
        cause: FramedCloseCause,
    },
    /// The codec could not encode this request. Nothing was written and the connection
    /// is still up; retrying the same request will fail the same way.
    #[error("request could not be encoded")]
    Encode {
        /// The codec's error.
        source: Arc<dyn StdError + Send + Sync>,
    },
}

/// Only [`ConnectionLost`](FramedError::ConnectionLost) may have been written: the driver
/// knows which requests it handed to the transport.
impl WasSent for FramedError {
    fn was_sent(&self) -> bool {
        matches!(self, FramedError::ConnectionLost { .. })
    }
}

/// Why a [`FramedConnection`] closed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FramedCloseCause {
    /// The peer closed its side (end of stream).
    #[error("closed by the peer")]
    Eof,
    /// Reading, writing or decoding failed.
    #[error("transport error: {0}")]
    Transport(Arc<dyn StdError + Send + Sync>),
    /// A response arrived with no request waiting for it: the stream is out of step.
    #[error("a response arrived with no request waiting for it")]
    UnexpectedResponse,
    /// This side closed it ([`Connection::close`], or every handle dropped).
    #[error("closed by this side")]
    Closed,
    /// The driver's codec (or the transport) panicked; the panic's message. It stayed in
    /// the driver's task, which closed the connection as for any other cause.
    #[error("the driver panicked: {0}")]
    Panicked(Arc<str>),
}

struct Job<Req, Resp> {
    request: Req,
    reply: oneshot::Sender<Result<Resp, FramedError>>,
}

impl<Req, Resp> FramedConnection<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    /// Starts driving `framed`, pipelining up to [`DEFAULT_MAX_IN_FLIGHT`] requests.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn new<T, U>(framed: Framed<T, U>) -> Self
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
        U: Encoder<Req> + Decoder<Item = Resp> + Send + 'static,
        <U as Encoder<Req>>::Error: StdError + Send + Sync + 'static,
        <U as Decoder>::Error: StdError + Send + Sync + 'static,
    {
        Self::with_max_in_flight(framed, DEFAULT_MAX_IN_FLIGHT)
    }

    /// Starts driving `framed` with at most `max_in_flight` requests written and not yet
    /// answered (1: one request at a time).
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn with_max_in_flight<T, U>(framed: Framed<T, U>, max_in_flight: NonZeroUsize) -> Self
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
        U: Encoder<Req> + Decoder<Item = Resp> + Send + 'static,
        <U as Encoder<Req>>::Error: StdError + Send + Sync + 'static,
        <U as Decoder>::Error: StdError + Send + Sync + 'static,
    {
        let (jobs, rx) = mpsc::channel(max_in_flight.get());
        let state = Arc::new(watch::Sender::new(None));
        let driver = Driver {
            framed,
            jobs: rx,
            written: VecDeque::with_capacity(max_in_flight.get()),
            unflushed: false,
            max_in_flight: max_in_flight.get(),
            state: state.clone(),
            cause: None,
        };
        tokio::spawn(driver.run());
        Self { jobs, state }
    }
}

impl<Req, Resp> FramedConnection<Req, Resp> {
    fn cause(&self) -> FramedCloseCause {
        self.state
            .borrow()
            .clone()
            .unwrap_or(FramedCloseCause::Closed)
    }
}

impl<Req, Resp> Connection for FramedConnection<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    type Request = Req;
    type Response = Resp;
    type Error = FramedError;

    async fn call(&self, request: Req) -> Result<Resp, FramedError> {
        if self.is_closed() {
            return Err(FramedError::NotSent {
                cause: self.cause(),
            });
        }
        let (reply, response) = oneshot::channel();
        if self.jobs.send(Job { request, reply }).await.is_err() {
            return Err(FramedError::NotSent {
                cause: self.cause(),
            });
        }
        match response.await {
            Ok(result) => result,
            // The driver answers every job it took; losing the reply means it was torn
            // down mid-way (runtime shutdown), so the request may have been written.
            Err(_) => Err(FramedError::ConnectionLost {
                cause: self.cause(),
            }),
        }
    }

    fn is_closed(&self) -> bool {
        self.state.borrow().is_some()
    }

    async fn closed(&self) {
        let mut rx = self.state.subscribe();
        // Err only if the sender is gone, which cannot happen while `self` holds it.
        let _ = rx.wait_for(Option::is_some).await;
    }

    fn close(&self) {
        mark_closed(&self.state, FramedCloseCause::Closed);
    }
}

/// Records the first cause only: a later one does not overwrite why it closed.
fn mark_closed(state: &watch::Sender<Option<FramedCloseCause>>, cause: FramedCloseCause) {
    state.send_if_modified(|current| {
        if current.is_none() {
            *current = Some(cause);
            true
        } else {
            false
        }
    });
}

/// The task that owns the transport.
struct Driver<T, U, Req, Resp> {
    framed: Framed<T, U>,
    jobs: mpsc::Receiver<Job<Req, Resp>>,
    /// Replies of requests handed to the transport, oldest first.
    written: VecDeque<oneshot::Sender<Result<Resp, FramedError>>>,
    /// Some request was encoded into the write buffer since the last completed flush.
    unflushed: bool,
    max_in_flight: usize,
    state: Arc<watch::Sender<Option<FramedCloseCause>>>,
    /// Set when the transport ended; `Drop` fails the remaining requests with it.
    cause: Option<FramedCloseCause>,
}

fn transport<E: StdError + Send + Sync + 'static>(e: E) -> FramedCloseCause {
    FramedCloseCause::Transport(Arc::new(e))
}

impl<T, U, Req, Resp> Driver<T, U, Req, Resp>
where
    T: AsyncRead + AsyncWrite + Unpin,
    U: Encoder<Req> + Decoder<Item = Resp>,
    <U as Encoder<Req>>::Error: StdError + Send + Sync + 'static,
    <U as Decoder>::Error: StdError + Send + Sync + 'static,
{
    async fn run(mut self) {
        let mut close = self.state.subscribe();
        // User code (the codec) runs in `poll_io`: a panic there is the connection's cause
        // instead of an unwinding task.
        let io = poll_fn(|cx| {
            catch_panic(|| self.poll_io(cx))
                .unwrap_or_else(|message| Poll::Ready(FramedCloseCause::Panicked(message)))
        });
        let cause = tokio::select! {
            cause = io => cause,
            _ = close.wait_for(Option::is_some) => FramedCloseCause::Closed,
        };
        self.cause = Some(cause);
        // Dropping `self` marks the connection closed and fails what is left.
    }

    /// Moves bytes until the transport ends; returns why it ended.
    fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<FramedCloseCause> {
        loop {
            let mut progressed = false;

            // Responses, in order.
            loop {
                match Pin::new(&mut self.framed).poll_next(cx) {
                    Poll::Ready(Some(Ok(response))) => {
                        progressed = true;
                        match self.written.pop_front() {
                            // A caller that went away simply does not get it.
                            Some(reply) => drop(reply.send(Ok(response))),
                            None => return Poll::Ready(FramedCloseCause::UnexpectedResponse),
                        }
                    }
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(transport(e)),
                    Poll::Ready(None) => return Poll::Ready(FramedCloseCause::Eof),
                    Poll::Pending => break,
                }
            }

            // New requests, while the pipeline has room and the sink accepts them.
            while self.written.len() < self.max_in_flight {
                match Pin::new(&mut self.framed).poll_ready(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(transport(e)),
                    Poll::Pending => break,
                }
                match self.jobs.poll_recv(cx) {
                    Poll::Ready(Some(job)) => {
                        progressed = true;
                        self.write(job);
                    }
                    // Every handle is gone: nobody can be waiting for anything.
                    Poll::Ready(None) => return Poll::Ready(FramedCloseCause::Closed),
                    Poll::Pending => break,
                }
            }

            if self.unflushed {
                match Pin::new(&mut self.framed).poll_flush(cx) {
                    Poll::Ready(Ok(())) => {
                        self.unflushed = false;
                        progressed = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(transport(e)),
                    Poll::Pending => {}
                }
            }

            if !progressed {
                return Poll::Pending;
            }
        }
    }

    fn write(&mut self, job: Job<Req, Resp>) {
        if job.reply.is_closed() {
            // The caller gave up before its request was written: never write it.
            return;
        }
        let before = self.framed.write_buffer().len();
        match Pin::new(&mut self.framed).start_send(job.request) {
            Ok(()) => {
                self.written.push_back(job.reply);
                self.unflushed = true;
            }
            Err(e) => {
                // Drop whatever the encoder wrote before failing, so the stream stays framed.
                self.framed.write_buffer_mut().truncate(before);
                let _ = job.reply.send(Err(FramedError::Encode {
                    source: Arc::new(e),
                }));
            }
        }
    }
}

impl<T, U, Req, Resp> Drop for Driver<T, U, Req, Resp> {
    fn drop(&mut self) {
        // Closed is published before any request fails (the `Connection` contract).
        mark_closed(
            &self.state,
            self.cause.take().unwrap_or(FramedCloseCause::Closed),
        );
        let cause = self
            .state
            .borrow()
            .clone()
            .unwrap_or(FramedCloseCause::Closed);
        for reply in self.written.drain(..) {
            let _ = reply.send(Err(FramedError::ConnectionLost {
                cause: cause.clone(),
            }));
        }
        self.jobs.close();
        while let Ok(job) = self.jobs.try_recv() {
            let _ = job.reply.send(Err(FramedError::NotSent {
                cause: cause.clone(),
            }));
        }
    }
}

#[cfg(test)]
mod tests;
