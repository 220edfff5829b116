//! The body of a connection's process: the TLS handshake under its timeout, then the handler
//! (callback form) or the user's function (stream-owning form) beside the mailbox and the
//! timers, with panics caught and every end counted exactly once.

use std::any::Any;
use std::future::{Future, poll_fn};
use std::io;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker, ready};
use std::time::Duration;

use beamline_process::{ChildSpec, Context, DynamicSupervisor, Event, ExitReason, Info, ProcessId};
use bytes::BytesMut;
use pin_project::pin_project;
use tokio::io::{AsyncReadExt, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::deadline::{Deadlines, poll_expired};
use super::{
    Conn, ConnInfo, ConnState, Connection, Endpoint, Flow, Handler, Io, Stream, TimeoutKind,
    TlsInfo, Transport,
};
use crate::limits::{Admission, Limits};
use crate::stats::{Outcome, Stats};

/// Per-connection settings, the same for every connection of a server.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnConfig {
    pub(crate) handshake_timeout: Duration,
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) lifetime: Option<Duration>,
    pub(crate) read_buffer: usize,
}

/// A socket fresh from `accept()`.
pub(crate) enum AcceptedIo {
    Tcp(TcpStream),
    Tls(TcpStream, TlsAcceptor),
    Unix(UnixStream),
}

/// What an acceptor hands to a new connection process.
pub(crate) struct Accepted {
    pub(crate) io: AcceptedIo,
    pub(crate) peer: Endpoint,
    pub(crate) local: Endpoint,
    pub(crate) admission: Admission,
}

/// Everything the acceptors and connection processes of one server share.
pub(crate) struct Shared<S> {
    pub(crate) service: S,
    pub(crate) config: ConnConfig,
    pub(crate) limits: Limits,
    pub(crate) stats: Arc<Stats>,
    pub(crate) sup: DynamicSupervisor,
}

/// How a connection's handling ended (before it is counted).
pub(crate) enum End {
    /// The peer, the handler, a timeout or a graceful drain closed it.
    Closed,
    /// Reading failed (a reset); the handler's `on_error` accepted it.
    PeerError,
    /// The handler or function failed, or a linked process did (its reason).
    Failed(ExitReason),
    /// The supervisor went away abruptly (the server handle was dropped).
    Stopped(ExitReason),
}

/// Serves one connection once it is set up: the two handler forms implement this. The
/// future is built at once (the user's function is called, its connection moved in) and
/// borrows nothing, so a connection's process carries each part of its state once.
pub(crate) trait Service: Send + Sync + 'static {
    type Message: Send + 'static;

    fn serve(
        &self,
        ctx: Context<Self::Message>,
        stream: Stream,
        info: ConnInfo,
        config: &ConnConfig,
    ) -> impl Future<Output = End> + Send + 'static + use<Self>;
}

/// The callback form: the prototype handler, cloned for each connection.
pub(crate) struct HandlerService<H, M> {
    handler: H,
    _message: PhantomData<fn() -> M>,
}

impl<H, M> HandlerService<H, M> {
    pub(crate) fn new(handler: H) -> Self {
        Self {
            handler,
            _message: PhantomData,
        }
    }
}

impl<H, M> Service for HandlerService<H, M>
where
    H: Handler<M> + Clone + Sync,
    M: Send + 'static,
{
    type Message = M;

    fn serve(
        &self,
        ctx: Context<M>,
        stream: Stream,
        info: ConnInfo,
        config: &ConnConfig,
    ) -> impl Future<Output = End> + Send + 'static + use<H, M> {
        let deadlines = Deadlines::new(Instant::now(), config.read_timeout, config.lifetime);
        serve_handler(
            self.handler.clone(),
            ctx,
            stream,
            info,
            config.read_buffer,
            deadlines,
        )
    }
}

/// The stream-owning form: the user's function.
pub(crate) struct FnService<F>(pub(crate) F);

impl<F, Fut> Service for FnService<F>
where
    F: Fn(Connection) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), ExitReason>> + Send + 'static,
{
    type Message = ();

    fn serve(
        &self,
        ctx: Context<()>,
        stream: Stream,
        info: ConnInfo,
        config: &ConnConfig,
    ) -> impl Future<Output = End> + Send + 'static + use<F, Fut> {
        let state = stream.state().clone();
        let deadlines = Deadlines::new(Instant::now(), config.read_timeout, config.lifetime);
        let sleep = tokio::time::sleep_until(deadlines.next().unwrap_or_else(Instant::now));
        FnServe {
            user: (self.0)(Connection::new(stream, info, state.clone())),
            ctx,
            state,
            deadlines,
            sleep,
        }
    }
}

/// Counts a connection from the moment its process exists to the moment it ends, however it
/// ends: a body dropped unfinished (killed) is counted as killed, and its limits are freed.
struct Guard {
    state: Arc<ConnState>,
    _admission: Admission,
    outcome: Outcome,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.state.flush_bytes();
        self.state.stats().ended(self.outcome);
    }
}

/// The child spec of one accepted connection: a temporary child that traps exits, so the
/// supervisor's shutdown arrives as a message the connection can answer.
pub(crate) fn child_spec<S: Service>(
    shared: &Arc<Shared<S>>,
    accepted: Accepted,
) -> ChildSpec<S::Message> {
    let shared = shared.clone();
    ChildSpec::temporary("conn", move |ctx| {
        // Runs inside `start_child`: from here on the connection is counted, and the guard
        // sees it to its end even if the body never runs.
        let state = ConnState::new(shared.stats.clone());
        shared.stats.started();
        let Accepted {
            io,
            peer,
            local,
            admission,
        } = accepted;
        let guard = Guard {
            state: state.clone(),
            _admission: admission,
            outcome: Outcome::Killed,
        };
        let setup = Setup {
            peer,
            local,
            state,
            guard,
        };
        match io {
            AcceptedIo::Tcp(tcp) => Body::Ready(setup.serve(ctx, Io::Tcp(tcp), None, &shared)),
            AcceptedIo::Unix(unix) => Body::Ready(setup.serve(ctx, Io::Unix(unix), None, &shared)),
            // Boxed: a rustls session in the middle of a handshake is large, and a plain TCP
            // connection's process should not carry room for one.
            AcceptedIo::Tls(tcp, acceptor) => {
                Body::Handshaking(Box::pin(tls_body(ctx, tcp, acceptor, setup, shared)))
            }
        }
    })
    .trap_exit(true)
}

/// What a connection has between `accept()` and the start of its handler.
struct Setup {
    peer: Endpoint,
    local: Endpoint,
    state: Arc<ConnState>,
    guard: Guard,
}

impl Setup {
    /// Builds the handler's future (for TLS, once the handshake is done).
    fn serve<S: Service>(
        self,
        ctx: Context<S::Message>,
        io: Io,
        tls: Option<Box<TlsInfo>>,
        shared: &Shared<S>,
    ) -> Supervised<impl Future<Output = End> + Send + 'static + use<S>> {
        let id = ctx.id();
        let transport = match io {
            Io::Tcp(_) => Transport::Tcp,
            Io::Tls(_) => Transport::Tls,
            Io::Unix(_) => Transport::Unix,
        };
        tracing::trace!(conn = id.as_u64(), peer = %self.peer, %transport, "connection started");
        let info = ConnInfo {
            id,
            transport,
            peer: self.peer,
            local: self.local,
            tls,
        };
        let stream = Stream::new(io, self.state);
        Supervised {
            inner: shared.service.serve(ctx, stream, info, &shared.config),
            guard: self.guard,
            id,
        }
    }
}

/// A connection process's body: serving, or (TLS) still shaking hands.
#[pin_project(project = BodyProj)]
enum Body<F> {
    Ready(#[pin] Supervised<F>),
    Handshaking(Pin<Box<dyn Future<Output = Result<(), ExitReason>> + Send>>),
}

impl<F: Future<Output = End>> Future for Body<F> {
    type Output = Result<(), ExitReason>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        match self.project() {
            BodyProj::Ready(serving) => serving.poll(cx),
            BodyProj::Handshaking(body) => body.as_mut().poll(cx),
        }
    }
}

async fn tls_body<S: Service>(
    mut ctx: Context<S::Message>,
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    mut setup: Setup,
    shared: Arc<Shared<S>>,
) -> Result<(), ExitReason> {
    let id = ctx.id();
    let timeout = shared.config.handshake_timeout;
    match handshake(&mut ctx, acceptor.accept(tcp), timeout).await {
        Ok(tls) => {
            let session = tls.get_ref().1;
            let info = TlsInfo {
                sni: session.server_name().map(Box::from),
                alpn: session.alpn_protocol().map(Box::from),
            };
            let io = Io::Tls(Box::new(tls));
            setup.serve(ctx, io, Some(Box::new(info)), &shared).await
        }
        Err(Handshake::Failed(error)) => {
            tracing::debug!(conn = id.as_u64(), peer = %setup.peer, %error, "TLS handshake failed");
            setup.guard.outcome = Outcome::HandshakeFailed;
            Ok(())
        }
        Err(Handshake::TimedOut) => {
            tracing::debug!(conn = id.as_u64(), peer = %setup.peer, ?timeout, "TLS handshake timed out");
            setup.guard.outcome = Outcome::HandshakeFailed;
            Ok(())
        }
        Err(Handshake::Stopped(reason)) => stopped(&mut setup.guard, reason),
    }
}

/// Runs a connection's handler future with its panics caught, and turns how it ended into
/// the count and the process's exit reason.
#[pin_project]
struct Supervised<F> {
    #[pin]
    inner: F,
    guard: Guard,
    id: ProcessId,
}

impl<F: Future<Output = End>> Future for Supervised<F> {
    type Output = Result<(), ExitReason>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let end = match poll_catching(this.inner, cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(end) => end,
        };
        let id = this.id.as_u64();
        let guard = this.guard;
        Poll::Ready(match end {
            Ok(End::Closed) => {
                guard.outcome = Outcome::Closed;
                Ok(())
            }
            Ok(End::PeerError) => {
                guard.outcome = Outcome::Errored;
                Ok(())
            }
            Ok(End::Failed(reason)) => {
                guard.outcome = Outcome::Errored;
                tracing::warn!(conn = id, %reason, "connection failed");
                Err(reason)
            }
            Ok(End::Stopped(reason)) => stopped(guard, reason),
            Err(payload) => {
                guard.outcome = Outcome::Panicked;
                let message = panic_message(&*payload);
                tracing::error!(conn = id, panic = %message, "connection handler panicked; closing only this connection");
                Err(ExitReason::Panicked(message))
            }
        })
    }
}

/// The stream-owning form's future: the user's function beside the mailbox and the timers.
#[pin_project]
struct FnServe<Fut> {
    #[pin]
    user: Fut,
    ctx: Context<()>,
    state: Arc<ConnState>,
    deadlines: Deadlines,
    #[pin]
    sleep: Sleep,
}

impl<Fut: Future<Output = Result<(), ExitReason>>> Future for FnServe<Fut> {
    type Output = End;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<End> {
        let this = self.project();
        // The user's function first: it is the data path.
        if let Poll::Ready(result) = this.user.poll(cx) {
            return Poll::Ready(match result {
                Ok(()) => End::Closed,
                Err(reason) => End::Failed(reason),
            });
        }
        while let Poll::Ready(event) = poll_event(this.ctx, cx) {
            match event {
                Event::Exit { from, reason } if this.ctx.parent() == Some(&from) => {
                    if !matches!(reason, ExitReason::Shutdown) {
                        return Poll::Ready(End::Stopped(reason));
                    }
                    if !this.state.shutdown_requested() {
                        this.state.request_shutdown();
                        if !this.state.shutdown_watched() {
                            // Nobody listens for the drain: close now rather than hold it up.
                            return Poll::Ready(End::Closed);
                        }
                    }
                }
                Event::Exit { reason, .. } if reason.is_abnormal() => {
                    return Poll::Ready(End::Failed(reason));
                }
                Event::Msg(()) | Event::Exit { .. } | Event::Down { .. } => {}
            }
        }
        this.deadlines
            .observe(this.state.bytes_read(), Instant::now);
        poll_expired(this.sleep, this.deadlines, cx).map(|kind| {
            tracing::debug!(conn = this.ctx.id().as_u64(), %kind, "connection timed out");
            End::Closed
        })
    }
}

/// The supervisor ended this connection: gracefully (a drain that reached it before it was
/// set up) or abruptly (the server handle was dropped).
fn stopped(guard: &mut Guard, reason: ExitReason) -> Result<(), ExitReason> {
    if matches!(reason, ExitReason::Shutdown) {
        guard.outcome = Outcome::Closed;
        Ok(())
    } else {
        guard.outcome = Outcome::Killed;
        Err(reason)
    }
}

enum Handshake {
    Failed(io::Error),
    TimedOut,
    Stopped(ExitReason),
}

/// Runs the TLS handshake under its timeout, beside the mailbox: a drain or a stop ends it at
/// once.
async fn handshake<M: Send + 'static, F>(
    ctx: &mut Context<M>,
    accept: F,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, Handshake>
where
    F: Future<Output = io::Result<TlsStream<TcpStream>>>,
{
    let accept = tokio::time::timeout(timeout, accept);
    let mut accept = pin!(accept);
    loop {
        tokio::select! {
            biased;
            done = &mut accept => {
                return match done {
                    Ok(Ok(tls)) => Ok(tls),
                    Ok(Err(error)) => Err(Handshake::Failed(error)),
                    Err(_) => Err(Handshake::TimedOut),
                };
            }
            event = ctx.recv() => {
                // Nobody has this process's address yet: only its supervisor can signal it.
                if let Event::Exit { from, reason } = event
                    && ctx.parent() == Some(&from)
                {
                    return Err(Handshake::Stopped(reason));
                }
            }
        }
    }
}

/// Where a callback-form connection stands: whether the peer is still sending, and whether
/// the server is draining. Changes only in [`Phase::on`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Open,
    PeerDone,
    Draining,
    DrainingPeerDone,
}

#[derive(Clone, Copy, Debug)]
enum PhaseEvent {
    PeerEof,
    Shutdown,
}

impl Phase {
    fn on(self, event: PhaseEvent) -> Self {
        match (self, event) {
            (Self::Open, PhaseEvent::PeerEof) => Self::PeerDone,
            (Self::Draining, PhaseEvent::PeerEof) => Self::DrainingPeerDone,
            (Self::Open, PhaseEvent::Shutdown) => Self::Draining,
            (Self::PeerDone, PhaseEvent::Shutdown) => Self::DrainingPeerDone,
            (state @ (Self::PeerDone | Self::DrainingPeerDone), PhaseEvent::PeerEof)
            | (state @ (Self::Draining | Self::DrainingPeerDone), PhaseEvent::Shutdown) => state,
        }
    }

    fn reads(self) -> bool {
        matches!(self, Self::Open | Self::Draining)
    }

    fn draining(self) -> bool {
        matches!(self, Self::Draining | Self::DrainingPeerDone)
    }
}

/// What woke a callback-form connection.
enum Wake<M> {
    Event(Event<M>),
    Timeout(TimeoutKind),
    Data,
    Eof,
    ReadError(io::Error),
}

async fn serve_handler<H, M>(
    mut handler: H,
    mut ctx: Context<M>,
    mut stream: Stream,
    info: ConnInfo,
    read_buffer: usize,
    mut deadlines: Deadlines,
) -> End
where
    H: Handler<M>,
    M: Send + 'static,
{
    // Each callback gets a fresh `Conn` over the connection's parts.
    macro_rules! call {
        ($method:ident $(, $arg:expr)*) => {
            handler.$method($($arg,)* &mut Conn::new(&mut stream, &info, &ctx)).await
        };
    }

    let mut sleep = pin!(tokio::time::sleep_until(
        deadlines.next().unwrap_or_else(Instant::now)
    ));
    let mut buf = BytesMut::new();
    let mut phase = Phase::Open;
    let mut result = call!(on_connect);
    loop {
        match result {
            Ok(Flow::Continue) => {}
            Ok(Flow::Close) => {
                close_now(&mut stream);
                return End::Closed;
            }
            Err(reason) => return End::Failed(reason),
        }
        let reads = phase.reads();
        let wake = poll_fn(|cx| {
            poll_wake(
                cx,
                &mut ctx,
                &mut stream,
                &mut buf,
                reads,
                read_buffer,
                &mut deadlines,
                sleep.as_mut(),
            )
        })
        .await;
        result = match wake {
            Wake::Event(Event::Msg(message)) => call!(on_message, message),
            Wake::Event(Event::Exit { from, reason }) if ctx.parent() == Some(&from) => {
                if !matches!(reason, ExitReason::Shutdown) {
                    return End::Stopped(reason);
                }
                if phase.draining() {
                    continue;
                }
                phase = phase.on(PhaseEvent::Shutdown);
                call!(on_shutdown)
            }
            Wake::Event(Event::Exit { from, reason }) => {
                call!(on_info, Info::Exit { from, reason })
            }
            Wake::Event(Event::Down { id, pid, reason }) => {
                call!(on_info, Info::Down { id, pid, reason })
            }
            Wake::Data => call!(on_data, &mut buf),
            Wake::Eof => {
                phase = phase.on(PhaseEvent::PeerEof);
                call!(on_close)
            }
            Wake::ReadError(error) => {
                return match handler.on_error(&error, &info) {
                    Ok(()) => {
                        tracing::debug!(conn = info.id.as_u64(), %error, "connection read failed");
                        End::PeerError
                    }
                    Err(reason) => End::Failed(reason),
                };
            }
            Wake::Timeout(kind) => match (kind, call!(on_timeout, kind)) {
                (TimeoutKind::ReadIdle, Ok(Flow::Continue)) => {
                    deadlines.restart_read(Instant::now());
                    Ok(Flow::Continue)
                }
                (TimeoutKind::Lifetime, Ok(_)) => Ok(Flow::Close),
                (_, other) => other,
            },
        };
    }
}

/// One wake-up of a callback-form connection: the mailbox first (a drain is never starved by
/// a busy peer), then the timers, then the socket.
#[allow(clippy::too_many_arguments)]
fn poll_wake<M: Send + 'static>(
    cx: &mut TaskContext<'_>,
    ctx: &mut Context<M>,
    stream: &mut Stream,
    buf: &mut BytesMut,
    reads: bool,
    read_buffer: usize,
    deadlines: &mut Deadlines,
    sleep: Pin<&mut Sleep>,
) -> Poll<Wake<M>> {
    if let Poll::Ready(event) = poll_event(ctx, cx) {
        return Poll::Ready(Wake::Event(event));
    }
    deadlines.observe(stream.bytes_read(), Instant::now);
    if let Poll::Ready(kind) = poll_expired(sleep, deadlines, cx) {
        return Poll::Ready(Wake::Timeout(kind));
    }
    if !reads {
        return Poll::Pending;
    }
    poll_read(cx, stream, buf, read_buffer).map(|read| match read {
        Ok(0) => Wake::Eof,
        Ok(_) => Wake::Data,
        Err(error) => Wake::ReadError(error),
    })
}

fn poll_event<M: Send + 'static>(ctx: &mut Context<M>, cx: &mut TaskContext<'_>) -> Poll<Event<M>> {
    pin!(ctx.recv()).poll(cx)
}

/// Reads into `buf`, giving it room only once the socket has data: an idle connection holds
/// no read buffer. `Ok(0)` is the peer's EOF (`buf` always has room when read).
fn poll_read(
    cx: &mut TaskContext<'_>,
    stream: &mut Stream,
    buf: &mut BytesMut,
    read_buffer: usize,
) -> Poll<io::Result<usize>> {
    if buf.len() == buf.capacity() {
        ready!(stream.poll_read_ready(cx))?;
        buf.reserve(read_buffer);
    }
    pin!(stream.read_buf(buf)).poll(cx)
}

/// Closes the sending side if the socket takes it right now (for TLS, the close_notify
/// alert); dropping the stream then closes the socket. Never waits on a slow peer.
fn close_now(stream: &mut Stream) {
    if stream.transport() == Transport::Tls {
        let mut cx = TaskContext::from_waker(Waker::noop());
        let _ = Pin::new(stream).poll_shutdown(&mut cx);
    }
}

/// Polls `inner` with its panics caught: a panicking handler becomes an `Err` here instead of
/// unwinding through the connection's process. (Not polled again after a panic.)
fn poll_catching<F: Future>(
    inner: Pin<&mut F>,
    cx: &mut TaskContext<'_>,
) -> Poll<Result<F::Output, Box<dyn Any + Send>>> {
    match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
        Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
        Ok(Poll::Pending) => Poll::Pending,
        Err(payload) => Poll::Ready(Err(payload)),
    }
}

/// The message of a panic payload, when it is a string.
fn panic_message(payload: &(dyn Any + Send)) -> Arc<str> {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        Arc::from(*s)
    } else if let Some(s) = payload.downcast_ref::<String>() {
        Arc::from(s.as_str())
    } else {
        Arc::from("panic with a non-string payload")
    }
}

/// Hands an accepted connection to its own process. A refusal (the server is stopping)
/// closes the socket and counts it as rejected.
pub(crate) fn spawn_connection<S: Service>(shared: &Arc<Shared<S>>, accepted: Accepted) {
    if let Err(error) = shared.sup.start_child(child_spec(shared, accepted)) {
        shared.stats.rejected();
        tracing::debug!(%error, "connection refused: the server is stopping");
    }
}

impl<S> std::fmt::Debug for Shared<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_follow_eof_and_shutdown_in_any_order() {
        use PhaseEvent::{PeerEof, Shutdown};
        assert_eq!(
            Phase::Open.on(PeerEof).on(Shutdown),
            Phase::DrainingPeerDone
        );
        assert_eq!(
            Phase::Open.on(Shutdown).on(PeerEof),
            Phase::DrainingPeerDone
        );
        assert_eq!(Phase::Open.on(Shutdown).on(Shutdown), Phase::Draining);
        assert!(Phase::Open.reads() && Phase::Draining.reads());
        assert!(!Phase::PeerDone.reads() && !Phase::DrainingPeerDone.reads());
        assert!(Phase::Draining.draining() && !Phase::PeerDone.draining());
    }

    #[test]
    fn panic_messages_are_kept() {
        assert_eq!(&*panic_message(&"boom"), "boom");
        assert_eq!(&*panic_message(&String::from("boom 2")), "boom 2");
        assert_eq!(&*panic_message(&7_u8), "panic with a non-string payload");
    }

    #[tokio::test]
    async fn a_panic_while_polling_becomes_an_error() {
        let mut panicking = pin!(async { panic!("inside") });
        let caught = poll_fn(|cx| poll_catching(panicking.as_mut(), cx)).await;
        let payload = caught.unwrap_err();
        assert_eq!(&*panic_message(&*payload), "inside");
        let mut fine = pin!(async { 5 });
        let fine = poll_fn(|cx| poll_catching(fine.as_mut(), cx)).await.ok();
        assert_eq!(fine, Some(5));
    }
}
