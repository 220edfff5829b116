//! One HTTP connection's process body: hyper's connection, its HTTP/2 streams, the header
//! and keep-alive timers and the drain, all in the connection's own task; then, for an
//! upgraded connection, the wait for the upgraded stream to end.

use std::error::Error as StdError;
use std::future::{Future, poll_fn};
use std::io;
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use beamline_server::{Connection, ExitReason};
use futures::FutureExt;
use futures::future::CatchUnwind;
use futures::stream::{FuturesUnordered, StreamExt};
use http_body::Body;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::time::{Instant, Sleep};

use crate::HttpConn;
use crate::config::Http;
use crate::ctx::{ConnCtx, Task};
use crate::exec::LocalExec;
use crate::io::HttpIo;
use crate::serve::HttpService;
use crate::service::{BoxError, ConnService};
use crate::stats::Stats;
use beamline_failure::panic_message;

/// What every connection of one server shares.
#[derive(Debug)]
pub(crate) struct Shared<S> {
    pub(crate) service: S,
    pub(crate) http: Http,
    pub(crate) stats: Arc<Stats>,
}

/// Serves one connection: the function [`Http::serve`] gives the server.
pub(crate) async fn serve_connection<S: HttpService>(
    conn: Connection,
    shared: Arc<Shared<S>>,
) -> Result<(), ExitReason> {
    // Taken: a drain asks hyper to finish (HTTP/1: the request in flight; HTTP/2: GOAWAY)
    // instead of dropping the connection.
    let shutdown = conn.shutdown_signal();
    let ctx = Arc::new(ConnCtx::new(
        shared.stats.clone(),
        conn.activity(),
        HttpConn::new(conn.info().clone(), shutdown.clone()),
    ));
    let _ctx_guard = EndOfConnection(ctx.clone());
    let builder = shared.http.hyper_builder(LocalExec(ctx.clone()));
    let io = TokioIo::new(HttpIo::new(conn, ctx.clone()));
    let service = ConnService::new(shared.service.clone(), ctx.clone());
    let mut hyper_conn = Box::pin(builder.serve_connection_with_upgrades(io, service));
    let end = {
        let requested = pin!(shutdown.requested());
        let timer = pin!(tokio::time::sleep(shared.http.header_timeout()));
        let mut driver = Driver::new(&shared.http, &ctx, requested, timer);
        poll_fn(|cx| driver.poll(hyper_conn.as_mut(), cx)).await
    };
    drop(hyper_conn);
    let result = match end {
        End::Conn(result) => outcome(&ctx, result),
        End::HeaderTimeout => Ok(()),
    };
    // An upgraded stream lives on outside hyper: the connection's process waits for it, so
    // it stays counted, under the server's limits, and killed with the process. Its reads
    // wake this wait, so the server's read timeout sees them as they come.
    poll_fn(|cx| {
        ctx.owner.register(cx.waker());
        ctx.reads_seen();
        if ctx.is_io_dropped() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    // Counted now, not when the guard drops: the process's body drops only after its exit
    // is published, and a drain that returned must find every request in the count.
    ctx.flush_requests();
    result
}

/// Runs however the connection's process ends (also when it is killed): counts its
/// requests, stops an upgraded stream still held elsewhere, and drops queued streams (which
/// hold the context: no cycle is left behind).
struct EndOfConnection(Arc<ConnCtx>);

impl Drop for EndOfConnection {
    fn drop(&mut self) {
        self.0.flush_requests();
        if !self.0.is_io_dropped() {
            self.0.kill();
        }
        drop(self.0.take_tasks());
    }
}

/// How hyper's part ended.
enum End {
    Conn(Result<(), BoxError>),
    HeaderTimeout,
}

/// Where the connection is between requests, for its timers.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// A request head is owed since `since` (the connection's start, or the first byte of a
    /// later HTTP/1 request): the header read timeout.
    Head { since: Instant },
    /// No request in flight and nothing received since `since` (when `bytes` had been
    /// received): the keep-alive timeout.
    Idle { since: Instant, bytes: u64 },
    /// Requests in flight: no HTTP timer (the server's limits still apply).
    Busy,
}

type StreamTask = CatchUnwind<AssertUnwindSafe<Task>>;

struct Driver<'a, R> {
    ctx: &'a ConnCtx,
    header_timeout: Duration,
    keep_alive: Option<Duration>,
    phase: Phase,
    seen_ended: u64,
    /// Set lazily: moved only when a deadline comes earlier, pushed when it fires early.
    timer: Pin<&'a mut Sleep>,
    armed: bool,
    requested: Pin<&'a mut R>,
    draining: bool,
    streams: FuturesUnordered<StreamTask>,
}

impl<'a, R: Future<Output = ()>> Driver<'a, R> {
    fn new(
        http: &Http,
        ctx: &'a ConnCtx,
        requested: Pin<&'a mut R>,
        timer: Pin<&'a mut Sleep>,
    ) -> Self {
        Self {
            ctx,
            header_timeout: http.header_timeout(),
            keep_alive: http.keep_alive(),
            phase: Phase::Head {
                since: Instant::now(),
            },
            seen_ended: 0,
            timer,
            armed: false,
            requested,
            draining: false,
            streams: FuturesUnordered::new(),
        }
    }

    fn poll<C>(&mut self, mut conn: Pin<&mut C>, cx: &mut Context<'_>) -> Poll<End>
    where
        C: Future<Output = Result<(), BoxError>> + GracefulShutdown,
    {
        if !self.draining && self.requested.as_mut().poll(cx).is_ready() {
            self.draining = true;
            conn.as_mut().graceful_shutdown();
        }
        // The connection, then the streams it queued; once more if they moved.
        for _ in 0..2 {
            if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                return Poll::Ready(End::Conn(result));
            }
            if !self.run_streams(cx) {
                break;
            }
        }
        if self.draining {
            return Poll::Pending;
        }
        match self.poll_timers(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Phase::Head { .. }) => {
                self.ctx.stats.header_timeout();
                tracing::debug!(
                    conn_id = self.ctx.conn.id().as_u64(),
                    peer = %self.ctx.conn.peer(),
                    "no complete request head within the header read timeout; closing"
                );
                Poll::Ready(End::HeaderTimeout)
            }
            Poll::Ready(_) => {
                self.ctx.stats.idle_close();
                tracing::debug!(
                    conn_id = self.ctx.conn.id().as_u64(),
                    "keep-alive timeout; closing gracefully"
                );
                self.draining = true;
                conn.as_mut().graceful_shutdown();
                conn.poll(cx).map(End::Conn)
            }
        }
    }

    /// Polls the HTTP/2 streams; whether any was queued or finished.
    fn run_streams(&mut self, cx: &mut Context<'_>) -> bool {
        let mut moved = false;
        if let Some(queued) = self.ctx.take_tasks() {
            moved = !queued.is_empty();
            for task in queued {
                self.streams.push(AssertUnwindSafe(task).catch_unwind());
            }
        }
        while let Poll::Ready(Some(done)) = self.streams.poll_next_unpin(cx) {
            moved = true;
            if let Err(payload) = done {
                // Handlers and bodies catch their own panics; this is hyper's stream code.
                self.ctx.stats.panic();
                tracing::error!(
                    conn_id = self.ctx.conn.id().as_u64(),
                    error = %panic_message(&*payload),
                    "HTTP/2 stream panicked; stream dropped"
                );
            }
        }
        moved
    }

    /// Ready with the phase whose deadline passed.
    fn poll_timers(&mut self, cx: &mut Context<'_>) -> Poll<Phase> {
        self.observe();
        let deadline = match self.phase {
            Phase::Busy => return Poll::Pending,
            Phase::Head { since } => since + self.header_timeout,
            Phase::Idle { since, .. } => match self.keep_alive {
                Some(keep_alive) => since + keep_alive,
                None => return Poll::Pending,
            },
        };
        loop {
            if self.timer.deadline() > deadline {
                self.timer.as_mut().reset(deadline);
                self.armed = false;
            } else if self.armed && !self.timer.is_elapsed() {
                return Poll::Pending;
            }
            // A poll refused for lack of coop budget registers nothing: do not count on it.
            let budget = tokio::task::coop::has_budget_remaining();
            if self.timer.as_mut().poll(cx).is_pending() {
                self.armed = budget;
                return Poll::Pending;
            }
            self.armed = false;
            if Instant::now() >= deadline {
                return Poll::Ready(self.phase);
            }
            // Fired for an older deadline: requests came and went since it was set.
            self.timer.as_mut().reset(deadline);
        }
    }

    /// Moves the phase on from the request counts and the bytes received.
    fn observe(&mut self) {
        let (started, ended) = self.ctx.requests();
        if started != ended {
            self.phase = Phase::Busy;
        } else if ended != self.seen_ended || matches!(self.phase, Phase::Busy) {
            self.seen_ended = ended;
            self.phase = Phase::Idle {
                since: Instant::now(),
                bytes: self.ctx.bytes(),
            };
        } else if let Phase::Idle { bytes, .. } = self.phase
            && self.ctx.bytes() != bytes
            && !self.ctx.is_http2()
        {
            // An HTTP/1 request is arriving. (HTTP/2 peers also send control frames between
            // requests; an HTTP/2 connection stays idle until a stream opens.)
            self.phase = Phase::Head {
                since: Instant::now(),
            };
        }
    }
}

/// hyper's graceful shutdown, as a trait so the driver is independent of the connection's
/// long type.
trait GracefulShutdown {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S, E, B> GracefulShutdown
    for hyper_util::server::conn::auto::UpgradeableConnection<'_, I, S, E>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: Body + 'static,
    B::Error: Into<BoxError>,
    E: hyper_util::server::conn::auto::HttpServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper_util::server::conn::auto::UpgradeableConnection::graceful_shutdown(self);
    }
}

/// The process's result for how hyper ended: what the peer did (a reset, a malformed
/// request, an HTTP/2 protocol error) ends the connection normally; the service's or a
/// body's error, and a write that timed out, fail it.
fn outcome(ctx: &ConnCtx, result: Result<(), BoxError>) -> Result<(), ExitReason> {
    let Err(error) = result else {
        return Ok(());
    };
    let failed = |error: BoxError| Err(ExitReason::Error(Arc::from(error)));
    if let Some(io) = io_error(&*error) {
        return if io.kind() == io::ErrorKind::TimedOut {
            failed(error)
        } else {
            Ok(())
        };
    }
    if let Some(e) = error.downcast_ref::<hyper::Error>() {
        if e.is_user() {
            return failed(error);
        }
        if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
            return Ok(());
        }
    }
    ctx.stats.protocol_error();
    tracing::debug!(
        conn_id = ctx.conn.id().as_u64(),
        peer = %ctx.conn.peer(),
        %error,
        "HTTP protocol error; connection closed"
    );
    Ok(())
}

/// The I/O error under `error`, if it is one.
fn io_error<'e>(error: &'e (dyn StdError + 'static)) -> Option<&'e io::Error> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return Some(io);
        }
        next = e.source();
    }
    None
}
