//! The callback form's loop: one event at a time from the mailbox, the timers and the socket,
//! each handed to its [`Handler`] callback; every callback raced against the lifetime; the
//! send timeout and the read buffer limit checked after each.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context as TaskContext, Poll, Waker, ready};

use beamline_process::{Context, Event, ExitReason, Info};
use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWrite};
use tokio::time::Instant;

use super::deadline::{Alarm, Deadlines};
use super::run::{Close, ConnConfig, End};
use super::service::{poll_event, timed_out};
use super::{ConnError, ConnInfo, Flow, Handler, HandlerContext, Stream, TimeoutKind, Transport};

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

pub(crate) async fn serve_handler<H, M>(
    mut handler: H,
    mut ctx: Context<M>,
    mut stream: Stream,
    info: ConnInfo,
    config: ConnConfig,
) -> End
where
    H: Handler<M>,
    M: Send + 'static,
{
    let mut deadlines = Deadlines::new(Instant::now(), config.read_timeout, config.lifetime);
    let mut alarm = pin!(Alarm::new(&deadlines));

    // Each callback gets a fresh `HandlerContext` over the connection's parts and, unless it is the
    // lifetime's own `on_timeout`, runs against the lifetime: if that passes first, the
    // callback is dropped where it stands and the connection is killed.
    macro_rules! call {
        (raced: $raced:expr, $method:ident $(, $arg:expr)*) => {{
            let mut conn = HandlerContext::new(&mut stream, &info, &ctx);
            let callback = handler.$method($($arg,)* &mut conn);
            match against_lifetime(callback, alarm.as_mut(), &deadlines, $raced).await {
                Some(result) => result,
                None => return End::Expired,
            }
        }};
        ($method:ident $(, $arg:expr)*) => { call!(raced: true, $method $(, $arg)*) };
    }

    let mut buf = BytesMut::new();
    let mut phase = Phase::Open;
    // Why a `Flow::Close` from the last callback closes the connection.
    let mut why = Close::Normal;
    let mut result = call!(on_connect);
    loop {
        // Whatever the callback returned, a stream that can no longer be written to ends.
        if let Some(timeout) = stream.send_timed_out() {
            let error = ConnError::SendTimeout { timeout };
            return peer_fault(&mut handler, &info, error, Close::SendTimeout);
        }
        match result {
            Ok(Flow::Continue) if buf.len() > config.max_read_buffer => {
                let error = ConnError::ReadBufferFull {
                    buffered: buf.len(),
                    max: config.max_read_buffer,
                };
                return peer_fault(&mut handler, &info, error, Close::ReadBufferFull);
            }
            Ok(Flow::Continue) => {}
            Ok(Flow::Close) => {
                close_now(&mut stream);
                return End::Closed(why);
            }
            Err(reason) => return End::Failed(Close::Error, reason),
        }
        why = Close::Normal;
        let reads = phase.reads();
        let wake = poll_fn(|cx| {
            poll_wake(
                cx,
                &mut ctx,
                &mut stream,
                &mut buf,
                reads,
                config.read_buffer,
                &mut deadlines,
                alarm.as_mut(),
            )
        })
        .await;
        result = match wake {
            Wake::Event(Event::Msg(message)) => call!(on_message, message),
            Wake::Event(Event::Info(Info::Exit { from, reason }))
                if ctx.parent() == Some(&from) =>
            {
                if !matches!(reason, ExitReason::Shutdown) {
                    return End::Stopped(reason);
                }
                if phase.draining() {
                    continue;
                }
                phase = phase.on(PhaseEvent::Shutdown);
                why = Close::Drain;
                call!(on_shutdown)
            }
            Wake::Event(Event::Info(info)) => call!(on_info, info),
            Wake::Data => call!(on_data, &mut buf),
            Wake::Eof => {
                phase = phase.on(PhaseEvent::PeerEof);
                call!(on_close)
            }
            Wake::ReadError(error) => {
                let error = ConnError::Read(error);
                return peer_fault(&mut handler, &info, error, Close::PeerError);
            }
            Wake::Timeout(kind) => {
                why = timed_out(kind);
                let raced = kind != TimeoutKind::Lifetime;
                match (kind, call!(raced: raced, on_timeout, kind)) {
                    (TimeoutKind::ReadIdle, Ok(Flow::Continue)) => {
                        deadlines.restart_read(Instant::now());
                        Ok(Flow::Continue)
                    }
                    (TimeoutKind::Lifetime, Ok(_)) => Ok(Flow::Close),
                    (_, other) => other,
                }
            }
        };
    }
}

/// Runs `callback`; with `raced`, against the lifetime: `None` if that passed first.
async fn against_lifetime<F: Future>(
    callback: F,
    mut alarm: Pin<&mut Alarm>,
    deadlines: &Deadlines,
    raced: bool,
) -> Option<F::Output> {
    let mut callback = pin!(callback);
    poll_fn(|cx| {
        if let Poll::Ready(output) = callback.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if !raced {
            return Poll::Pending;
        }
        alarm.as_mut().poll_lifetime(deadlines, cx).map(|()| None)
    })
    .await
}

/// The peer did something the connection ends for: `on_error` says whether the process ends
/// normally (`Ok`) or with a reason; either way it counts as errored.
fn peer_fault<H: Handler<M>, M: Send + 'static>(
    handler: &mut H,
    info: &ConnInfo,
    error: ConnError,
    close: Close,
) -> End {
    match handler.on_error(&error, info) {
        Ok(()) => End::PeerFault(close),
        Err(reason) => End::Failed(close, reason),
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
    alarm: Pin<&mut Alarm>,
) -> Poll<Wake<M>> {
    if let Poll::Ready(event) = poll_event(ctx, cx) {
        return Poll::Ready(Wake::Event(event));
    }
    deadlines.observe(stream.bytes_read(), Instant::now);
    if let Poll::Ready(kind) = alarm.poll_expired(deadlines, cx) {
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

/// Reads at most `read_buffer` bytes into `buf`, giving it room only once the socket has
/// data: an idle connection holds no read buffer. `Ok(0)` is the peer's EOF (`buf` always
/// has room when read).
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
    pin!(stream.read_buf(&mut buf.limit(read_buffer))).poll(cx)
}

/// Closes the sending side if the socket takes it right now (for TLS, the close_notify
/// alert); dropping the stream then closes the socket. Never waits on a slow peer.
fn close_now(stream: &mut Stream) {
    if stream.transport() == Transport::Tls {
        let mut cx = TaskContext::from_waker(Waker::noop());
        let _ = Pin::new(stream).poll_shutdown(&mut cx);
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
}
