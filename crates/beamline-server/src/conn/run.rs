//! The life of a connection's process: handed off by an acceptor to the supervisor, counted
//! from its first moment by a [`Guard`] that sees it to its end however it ends, set up (for
//! TLS, after the handshake in [`tls`](super::tls)), served with its panics caught, and closed
//! with one `tracing` event that says why.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use beamline_process::{ChildSpec, Context, DynamicSupervisor, ExitReason, panic_message};
use pin_project::pin_project;
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsAcceptor;

use super::proxied::proxied_body;
use super::tls::tls_body;
use super::{ConnInfo, ConnState, Endpoint, Io, ProxyInfo, Stream, TlsInfo, Transport};
use crate::limits::{Admission, Limits};
use crate::proxy::{Cidr, ProxyProtocol};
use crate::stats::{Outcome, Stats, Stopping};

pub(crate) use super::service::{FnService, HandlerService, Service};

/// Per-connection settings, the same for every connection of a server.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnConfig {
    pub(crate) handshake_timeout: Duration,
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) send_timeout: Option<Duration>,
    pub(crate) lifetime: Option<Duration>,
    pub(crate) read_buffer: usize,
    pub(crate) max_read_buffer: usize,
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
    /// Whether the connection starts with a PROXY header (its listener's setting).
    pub(crate) proxy: ProxyProtocol,
}

/// What [`Server::on_connection_error`](crate::Server::on_connection_error) calls.
pub(crate) type ConnHook = Arc<dyn Fn(&ConnInfo, &ExitReason) + Send + Sync>;

/// Everything the acceptors and connection processes of one server share.
pub(crate) struct Shared<S> {
    pub(crate) service: S,
    pub(crate) config: ConnConfig,
    pub(crate) limits: Limits,
    pub(crate) stats: Arc<Stats>,
    pub(crate) sup: DynamicSupervisor,
    pub(crate) on_error: Option<ConnHook>,
    /// The sources trusted to send PROXY headers; empty: any.
    pub(crate) proxy_from: Box<[Cidr]>,
}

/// Why a connection ended: the `reason` of its "connection closed" event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Close {
    /// The peer or the handler closed it.
    Normal,
    /// A graceful drain closed it.
    Drain,
    /// Nothing was received for the read timeout.
    ReadTimeout,
    /// The lifetime passed (between callbacks: closed; during one: killed).
    Lifetime,
    /// A write made no progress for the send timeout.
    SendTimeout,
    /// The handler left more than the read buffer limit unconsumed.
    ReadBufferFull,
    /// Reading the socket failed (a reset).
    PeerError,
    /// The handler or function failed (`Err`), or a linked process did.
    Error,
    /// A panic in the handler or its setup.
    Panic,
    /// The TLS handshake failed.
    HandshakeFailed,
    /// The TLS handshake did not finish in time.
    HandshakeTimeout,
    /// The PROXY header was refused (a [`ProxyError`](crate::ProxyError)).
    ProxyFailed,
    /// No whole PROXY header within the handshake timeout.
    ProxyTimeout,
    /// Over the per-IP cap, by the address its PROXY header carried.
    PerIp,
    /// Killed: at a drain's deadline, by a dropped handle, or by another process.
    Killed,
}

impl Close {
    /// The event's `reason` field: stable names, listed in the crate docs.
    fn name(self, stopping: Stopping) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Drain => "drain",
            Self::ReadTimeout => "read_timeout",
            Self::Lifetime => "lifetime",
            Self::SendTimeout => "send_timeout",
            Self::ReadBufferFull => "read_buffer_full",
            Self::PeerError => "peer_error",
            Self::Error => "error",
            Self::Panic => "panic",
            Self::HandshakeFailed => "handshake_failed",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::ProxyFailed => "proxy_header_failed",
            Self::ProxyTimeout => "proxy_header_timeout",
            Self::PerIp => "per_ip",
            Self::Killed => match stopping {
                Stopping::Draining => "drain_deadline",
                Stopping::Dropped => "server_dropped",
                Stopping::No => "killed",
            },
        }
    }
}

/// How a connection's handling ended (before it is counted).
pub(crate) enum End {
    /// Closed normally (counted in `closed`).
    Closed(Close),
    /// Closed on the peer's account, which the handler's `on_error` accepted (counted in
    /// `errored`; the process ends normally).
    PeerFault(Close),
    /// The handler or function failed with this exit reason (counted in `errored`).
    Failed(Close, ExitReason),
    /// A callback was still running when the lifetime passed (counted in `killed`).
    Expired,
    /// The supervisor ended it: gracefully (`Shutdown`), or abruptly.
    Stopped(ExitReason),
}

/// Counts a connection from the moment its process exists to the moment it ends, however it
/// ends: a body dropped unfinished (killed) is counted as killed, and its limits are freed.
/// Its drop emits the connection's one "connection closed" event.
pub(crate) struct Guard {
    state: Arc<ConnState>,
    /// Its places under the limits, freed when it drops.
    pub(crate) admission: Admission,
    outcome: Outcome,
    close: Close,
    /// The error or panic message, for the event.
    detail: Option<Box<str>>,
    id: u64,
    pub(crate) peer: Endpoint,
    /// The balancer's address, when a PROXY header named the peer.
    pub(crate) via: Option<Box<Endpoint>>,
    /// The user's hook and what it is told; boxed, so a server without one carries a
    /// pointer per connection.
    hook: Option<Box<Hooked>>,
}

/// What a connection keeps for [`Server::on_connection_error`](crate::Server::on_connection_error).
struct Hooked {
    hook: ConnHook,
    info: ConnInfo,
    /// Why it failed: the handler's error, a panic, a failed handshake, a kill.
    exit: Option<ExitReason>,
}

impl Guard {
    /// The connection's id (its process id), as in its events.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Records how the connection ended.
    pub(crate) fn end(&mut self, outcome: Outcome, close: Close) {
        self.outcome = outcome;
        self.close = close;
    }

    /// Records the error or panic message that goes with the end.
    pub(crate) fn detail(&mut self, detail: Box<str>) {
        self.detail = Some(detail);
    }

    /// Records why the connection failed, for the hook (if there is one).
    pub(crate) fn failed(&mut self, reason: impl FnOnce() -> ExitReason) {
        if let Some(hooked) = &mut self.hook {
            hooked.exit = Some(reason());
        }
    }

    /// What the hook is told, if the connection failed: its handler's or function's error,
    /// a panic, a failed handshake, or a kill (not the one of a dropped server handle).
    fn failure(
        outcome: Outcome,
        stopping: Stopping,
        exit: &mut Option<ExitReason>,
    ) -> Option<ExitReason> {
        match (outcome, stopping) {
            (Outcome::Killed, Stopping::Dropped) => None,
            (Outcome::Killed, _) => Some(exit.take().unwrap_or(ExitReason::Killed)),
            (Outcome::Errored | Outcome::Panicked | Outcome::HandshakeFailed, _) => exit.take(),
            _ => None,
        }
    }

    /// The supervisor ended this connection: gracefully (a drain that reached it before it
    /// was set up) or abruptly (killed).
    pub(crate) fn stopped(&mut self, reason: ExitReason) -> Result<(), ExitReason> {
        if matches!(reason, ExitReason::Shutdown) {
            self.end(Outcome::Closed, Close::Drain);
            Ok(())
        } else {
            self.end(Outcome::Killed, Close::Killed);
            self.failed(|| reason.clone());
            Err(reason)
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let stats = self.state.stats();
        let close = match self.close {
            // Whatever else happened, a connection that stopped being writable says so.
            Close::Normal | Close::Error if self.state.sending_timed_out() => Close::SendTimeout,
            close => close,
        };
        let reason = close.name(stats.stopping());
        let (id, peer) = (self.id, &self.peer);
        let error = self.detail.as_deref().map(tracing::field::display);
        let via = self.via.as_deref().map(tracing::field::display);
        match (close, stats.stopping()) {
            (Close::Panic, _) => {
                tracing::error!(conn_id = id, %peer, via, %reason, error, "connection closed");
            }
            (Close::Error, _) | (Close::Killed, Stopping::No | Stopping::Draining) => {
                tracing::warn!(conn_id = id, %peer, via, %reason, error, "connection closed");
            }
            _ => tracing::debug!(conn_id = id, %peer, via, %reason, error, "connection closed"),
        }
        if let Some(hooked) = &mut self.hook
            && let Some(failure) = Guard::failure(self.outcome, stats.stopping(), &mut hooked.exit)
        {
            // User code in a drop: a panic in it is logged, never unwound from here.
            let called = catch_unwind(AssertUnwindSafe(|| (hooked.hook)(&hooked.info, &failure)));
            if let Err(payload) = called {
                let panic = panic_message(&*payload);
                tracing::error!(conn_id = id, %panic, "the on_connection_error hook panicked");
            }
        }
        // Counted last: a shutdown waiting for the count then finds the event logged.
        self.state.flush_bytes();
        stats.ended(self.outcome);
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
            proxy,
        } = accepted;
        let id = ctx.id().as_u64();
        let transport = match io {
            AcceptedIo::Tcp(_) => Transport::Tcp,
            AcceptedIo::Tls(..) => Transport::Tls,
            AcceptedIo::Unix(_) => Transport::Unix,
        };
        tracing::debug!(conn_id = id, %peer, %transport, "connection started");
        let hook = shared.on_error.as_ref().map(|hook| {
            let info = ConnInfo {
                id: ctx.id(),
                transport,
                peer: peer.clone(),
                local: local.clone(),
                tls: None,
                proxy: None,
            };
            Box::new(Hooked {
                hook: hook.clone(),
                info,
                exit: None,
            })
        });
        let guard = Guard {
            state: state.clone(),
            admission,
            outcome: Outcome::Killed,
            close: Close::Killed,
            detail: None,
            id,
            peer: peer.clone(),
            hook,
            via: None,
        };
        let setup = Setup {
            peer,
            local,
            state,
            guard,
            proxy: None,
        };
        if proxy.is_on() {
            // Boxed, like a TLS handshake: the header is read before anything else.
            return Body::Handshaking(Box::pin(proxied_body(ctx, io, proxy, setup, shared)));
        }
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
pub(crate) struct Setup {
    pub(crate) peer: Endpoint,
    local: Endpoint,
    state: Arc<ConnState>,
    pub(crate) guard: Guard,
    /// What a PROXY header said, and the balancer's address.
    pub(crate) proxy: Option<Box<ProxyInfo>>,
}

impl Setup {
    /// Builds the handler's future (for TLS, once the handshake is done). A panic while
    /// building it (the handler's `Clone`, the function given to `serve`) ends the
    /// connection as panicked.
    pub(crate) fn serve<S: Service>(
        mut self,
        ctx: Context<S::Message>,
        io: Io,
        tls: Option<Box<TlsInfo>>,
        shared: &Shared<S>,
    ) -> Supervised<impl Future<Output = super::run::End> + Send + 'static + use<S>> {
        let transport = match io {
            Io::Tcp(_) => Transport::Tcp,
            Io::Tls(_) => Transport::Tls,
            Io::Unix(_) => Transport::Unix,
        };
        if let Some(hooked) = &mut self.guard.hook {
            hooked.info.tls.clone_from(&tls);
            // Behind a balancer, the hook is told the client a PROXY header named.
            hooked.info.peer.clone_from(&self.peer);
            hooked.info.proxy.clone_from(&self.proxy);
        }
        let info = ConnInfo {
            id: ctx.id(),
            transport,
            peer: self.peer,
            local: self.local,
            tls,
            proxy: self.proxy,
        };
        let stream = Stream::new(io, self.state, shared.config.send_timeout);
        let built = catch_unwind(AssertUnwindSafe(|| {
            shared.service.serve(ctx, stream, info, &shared.config)
        }));
        let inner = match built {
            Ok(inner) => Some(inner),
            Err(payload) => {
                let message = panic_message(&*payload);
                self.guard.end(Outcome::Panicked, Close::Panic);
                self.guard.detail(message.as_ref().into());
                self.guard.failed(|| ExitReason::Panicked(message));
                None
            }
        };
        Supervised {
            inner,
            guard: self.guard,
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

/// Runs a connection's handler future with its panics caught, and turns how it ended into
/// the count and the process's exit reason. No future: its setup panicked.
#[pin_project]
pub(crate) struct Supervised<F> {
    #[pin]
    inner: Option<F>,
    guard: Guard,
}

impl<F: Future<Output = End>> Future for Supervised<F> {
    type Output = Result<(), ExitReason>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let guard = this.guard;
        let Some(inner) = this.inner.as_pin_mut() else {
            let message = guard.detail.as_deref().unwrap_or("panic");
            return Poll::Ready(Err(ExitReason::Panicked(Arc::from(message))));
        };
        let end = match poll_catching(inner, cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(end) => end,
        };
        Poll::Ready(match end {
            Ok(End::Closed(close)) => {
                guard.end(Outcome::Closed, close);
                Ok(())
            }
            Ok(End::PeerFault(close)) => {
                guard.end(Outcome::Errored, close);
                Ok(())
            }
            Ok(End::Failed(close, reason)) => {
                guard.end(Outcome::Errored, close);
                guard.detail(reason.to_string().into());
                guard.failed(|| reason.clone());
                Err(reason)
            }
            Ok(End::Expired) => {
                guard.end(Outcome::Killed, Close::Lifetime);
                Err(ExitReason::Killed)
            }
            Ok(End::Stopped(reason)) => guard.stopped(reason),
            Err(payload) => {
                let message = panic_message(&*payload);
                guard.end(Outcome::Panicked, Close::Panic);
                guard.detail(message.as_ref().into());
                guard.failed(|| ExitReason::Panicked(message.clone()));
                Err(ExitReason::Panicked(message))
            }
        })
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

/// Hands an accepted connection to its own process. A refusal (the server is stopping)
/// closes the socket and counts it as rejected.
pub(crate) fn spawn_connection<S: Service>(shared: &Arc<Shared<S>>, accepted: Accepted) {
    let peer = accepted.peer.clone();
    if let Err(error) = shared.sup.start_child(child_spec(shared, accepted)) {
        shared.stats.rejected();
        tracing::debug!(%peer, reason = %"stopping", %error, "connection rejected");
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
    use std::future::poll_fn;
    use std::pin::pin;

    #[test]
    fn panic_messages_are_kept() {
        assert_eq!(&*panic_message(&"boom"), "boom");
        assert_eq!(&*panic_message(&String::from("boom 2")), "boom 2");
        assert_eq!(&*panic_message(&7_u8), "panic with a non-string payload");
    }

    #[test]
    fn a_kill_is_named_by_what_the_server_is_doing() {
        assert_eq!(Close::Killed.name(Stopping::Draining), "drain_deadline");
        assert_eq!(Close::Killed.name(Stopping::Dropped), "server_dropped");
        assert_eq!(Close::Killed.name(Stopping::No), "killed");
        assert_eq!(Close::SendTimeout.name(Stopping::Draining), "send_timeout");
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
