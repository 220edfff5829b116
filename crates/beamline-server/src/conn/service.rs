//! The two ways to serve a connection once it is set up: the [`Handler`] callback loop
//! ([`HandlerService`], in [`callbacks`](super::callbacks)) and a function that owns the
//! [`Connection`] ([`FnService`], beside the mailbox and the timers in [`FnServe`]).

use beamline_process::Info;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use beamline_process::{Context, Event, ExitReason};
use pin_project::pin_project;
use tokio::time::Instant;

use super::callbacks::serve_handler;
use super::deadline::{Alarm, Deadlines};
use super::run::{Close, ConnConfig, End};
use super::{ConnInfo, ConnState, Connection, Handler, Stream, TimeoutKind};

/// Serves one connection once it is set up: the two handler forms implement this. The
/// future is built at once (the handler cloned, or the user's function called with its
/// connection moved in) and borrows nothing, so a connection's process carries each part of
/// its state once.
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
        serve_handler(self.handler.clone(), ctx, stream, info, *config)
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
        let alarm = Alarm::new(&deadlines);
        FnServe {
            user: (self.0)(Connection::new(stream, info, state.clone())),
            ctx,
            state,
            deadlines,
            alarm,
            was_busy: false,
        }
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
    alarm: Alarm,
    /// A busy mark lived when last looked: the read deadline restarts once none does.
    was_busy: bool,
}

impl<Fut: Future<Output = Result<(), ExitReason>>> Future for FnServe<Fut> {
    type Output = End;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<End> {
        let this = self.project();
        // The user's function first: it is the data path.
        if let Poll::Ready(result) = this.user.poll(cx) {
            let close = if this.state.shutdown_requested() {
                Close::Drain
            } else {
                Close::Normal
            };
            return Poll::Ready(match result {
                Ok(()) => End::Closed(close),
                Err(reason) => End::Failed(Close::Error, reason),
            });
        }
        while let Poll::Ready(event) = poll_event(this.ctx, cx) {
            match event {
                Event::Info(Info::Exit { from, reason }) if this.ctx.parent() == Some(&from) => {
                    if !matches!(reason, ExitReason::Shutdown) {
                        return Poll::Ready(End::Stopped(reason));
                    }
                    if !this.state.shutdown_requested() {
                        this.state.request_shutdown();
                        if !this.state.shutdown_watched() {
                            // Nobody listens for the drain: close now rather than hold it up.
                            return Poll::Ready(End::Closed(Close::Drain));
                        }
                    }
                }
                Event::Info(Info::Exit { reason, .. }) if reason.is_abnormal() => {
                    return Poll::Ready(End::Failed(Close::Error, reason));
                }
                Event::Msg(())
                | Event::Info(Info::Exit { .. })
                | Event::Info(Info::Down { .. }) => {}
            }
        }
        this.deadlines
            .observe(this.state.bytes_read(), Instant::now);
        if this.state.is_busy() {
            // The peer waits on the function: only the lifetime counts (as during a callback).
            *this.was_busy = true;
            return this
                .alarm
                .poll_lifetime(this.deadlines, cx)
                .map(|()| End::Closed(Close::Lifetime));
        }
        if std::mem::take(this.was_busy) {
            this.deadlines.restart_read(Instant::now());
        }
        this.alarm
            .poll_expired(this.deadlines, cx)
            .map(|kind| End::Closed(timed_out(kind)))
    }
}

/// The close reason of a timer that ended a connection.
pub(crate) fn timed_out(kind: TimeoutKind) -> Close {
    match kind {
        TimeoutKind::ReadIdle => Close::ReadTimeout,
        TimeoutKind::Lifetime => Close::Lifetime,
    }
}

/// The next mailbox event, if one is waiting (registers the waker otherwise).
pub(crate) fn poll_event<M: Send + 'static>(
    ctx: &mut Context<M>,
    cx: &mut TaskContext<'_>,
) -> Poll<Event<M>> {
    pin!(ctx.recv()).poll(cx)
}
