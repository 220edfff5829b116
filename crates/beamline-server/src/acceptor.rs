//! Acceptors: each loops on one listener, admits what the limits allow, and hands every
//! connection to its own process. What an accept error does is decided here, in
//! [`classify`] and the [`AcceptBackoff`] state machine, so that nothing kills an acceptor and
//! nothing makes it spin.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use beamline_process::catch_panic;
use tokio::task::JoinHandle;

use crate::conn::run::{Accepted, Service, Shared, spawn_connection};
use crate::listen::{self, Bound, ListenSpec, Listener, SocketOptions};

/// How long an acceptor waits after a resource-exhaustion error (Thousand Island's and Ranch's
/// 100 ms): long enough to stop a busy loop, short enough to resume quickly once descriptors
/// are freed.
pub(crate) const EXHAUSTION_BACKOFF: Duration = Duration::from_millis(100);

/// What an `accept()` error means for the acceptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AcceptErrorKind {
    /// The process or system is out of something (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`):
    /// retrying at once would spin, so back off.
    Exhausted,
    /// One incoming connection failed before we got it (`ECONNABORTED`, `EPROTO`, network
    /// errors accept(2) passes through, `EINTR`): retry at once.
    Transient,
    /// Anything else. Unexpected, so treated like exhaustion: back off and keep going.
    Unexpected,
}

/// Classifies an `accept()` error.
pub(crate) fn classify(error: &io::Error) -> AcceptErrorKind {
    match error.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
            AcceptErrorKind::Exhausted
        }
        Some(
            libc::ECONNABORTED
            | libc::EPROTO
            | libc::ENETDOWN
            | libc::ENETUNREACH
            | libc::EHOSTDOWN
            | libc::EHOSTUNREACH
            | libc::ENOPROTOOPT
            | libc::EOPNOTSUPP
            | libc::ETIMEDOUT
            | libc::EPERM
            | libc::EINTR
            | libc::EAGAIN
            | libc::ECONNRESET,
        ) => AcceptErrorKind::Transient,
        Some(_) => AcceptErrorKind::Unexpected,
        None => match error.kind() {
            io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock => AcceptErrorKind::Transient,
            _ => AcceptErrorKind::Unexpected,
        },
    }
}

/// An acceptor's error episodes: a run of back-off errors is one episode, logged once when it
/// starts and once when accepting works again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum AcceptBackoff {
    /// Accepting normally.
    #[default]
    Accepting,
    /// In an episode: this many errors so far.
    BackingOff { errors: u64 },
}

/// What the acceptor does after an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Accept again now.
    RetryNow,
    /// Wait `delay`, then accept again; `log` is true for the first error of an episode.
    BackOff { delay: Duration, log: bool },
}

impl AcceptBackoff {
    /// An accept failed with an error of `kind`.
    pub(crate) fn on_error(&mut self, kind: AcceptErrorKind) -> Decision {
        match (*self, kind) {
            (_, AcceptErrorKind::Transient) => Decision::RetryNow,
            (Self::Accepting, AcceptErrorKind::Exhausted | AcceptErrorKind::Unexpected) => {
                *self = Self::BackingOff { errors: 1 };
                Decision::BackOff {
                    delay: EXHAUSTION_BACKOFF,
                    log: true,
                }
            }
            (
                Self::BackingOff { errors },
                AcceptErrorKind::Exhausted | AcceptErrorKind::Unexpected,
            ) => {
                *self = Self::BackingOff { errors: errors + 1 };
                Decision::BackOff {
                    delay: EXHAUSTION_BACKOFF,
                    log: false,
                }
            }
        }
    }

    /// An accept succeeded: ends an episode, returning how many errors it had.
    pub(crate) fn on_success(&mut self) -> Option<u64> {
        match std::mem::take(self) {
            Self::Accepting => None,
            Self::BackingOff { errors } => Some(errors),
        }
    }
}

/// Starts the acceptor tasks for every bound address: `acceptors` per address, each on its
/// own listener (with `SO_REUSEPORT`) or all on the shared one.
pub(crate) fn spawn_acceptors<S: Service>(
    shared: &Arc<Shared<S>>,
    bound: &[Bound],
    acceptors: usize,
    runtime: &tokio::runtime::Handle,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::with_capacity(bound.len() * acceptors);
    for group in bound {
        for n in 0..acceptors {
            let Some(listener) = group.listeners.get(n % group.listeners.len().max(1)) else {
                continue;
            };
            tasks.push(runtime.spawn(acceptor(listener.clone(), shared.clone(), n)));
        }
    }
    tasks
}

/// One acceptor's task: [`accept_loop`], started again if it ever panics. No user code runs
/// there (a connection's start runs in its own process), so a panic is a bug in beamline:
/// it is logged at `error` with its message and the loop restarts after the exhaustion
/// back-off, instead of the listener silently losing an acceptor.
async fn acceptor<S: Service>(listener: Arc<Listener>, shared: Arc<Shared<S>>, acceptor: usize) {
    loop {
        let run = accept_loop(listener.clone(), shared.clone(), acceptor);
        if let Err(reason) = catch_panic(run).await {
            tracing::error!(acceptor, %reason, "acceptor panicked; restarting it");
            tokio::time::sleep(EXHAUSTION_BACKOFF).await;
        }
    }
}

/// One acceptor: reserve a place (under `Pause`), accept, admit, hand off. Never returns; it
/// is stopped by aborting its task (every `.await` here is cancel-safe).
async fn accept_loop<S: Service>(listener: Arc<Listener>, shared: Arc<Shared<S>>, acceptor: usize) {
    let mut backoff = AcceptBackoff::default();
    let mut reserved = None;
    loop {
        if reserved.is_none() {
            reserved = shared.limits.reserve().await;
        }
        match listener.accept().await {
            Ok((io, peer, local)) => {
                if let Some(errors) = backoff.on_success() {
                    tracing::info!(acceptor, errors, "accepting again after accept errors");
                }
                shared.stats.accepted();
                // Behind a PROXY header, the client's address is known only once the
                // connection's process has read it: the per-IP cap is applied there.
                let proxy = listener.proxy();
                let ip = peer.ip().map(|addr| addr.ip()).filter(|_| !proxy.is_on());
                match shared.limits.admit(reserved.take(), ip) {
                    Ok(admission) => spawn_connection(
                        &shared,
                        Accepted {
                            io,
                            peer,
                            local,
                            admission,
                            proxy,
                        },
                    ),
                    Err(refusal) => {
                        shared.stats.rejected();
                        tracing::debug!(%peer, reason = %refusal.name(), "connection rejected");
                    }
                }
            }
            Err(error) => {
                shared.stats.accept_error();
                match backoff.on_error(classify(&error)) {
                    Decision::RetryNow => {
                        tracing::debug!(acceptor, %error, "accept failed for one connection; retrying");
                    }
                    Decision::BackOff { delay, log } => {
                        if log {
                            tracing::warn!(acceptor, %error, ?delay, "accept failed; backing off until it succeeds");
                        }
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        }
    }
}

/// What the handle needs from the (generic) acceptor pool to reopen listeners after a
/// suspend.
pub(crate) trait Acceptors: Send + Sync {
    fn bind(&self, spec: &ListenSpec) -> io::Result<Bound>;
    fn spawn(&self, bound: &[Bound]) -> Vec<JoinHandle<()>>;
}

/// The acceptors of one server: how many per listener, on which runtime, with which socket
/// options; `Acceptors` erases the service type for the handle.
pub(crate) struct AcceptorPool<S> {
    pub(crate) shared: Arc<Shared<S>>,
    pub(crate) count: usize,
    pub(crate) options: SocketOptions,
    pub(crate) runtime: tokio::runtime::Handle,
}

impl<S: Service> Acceptors for AcceptorPool<S> {
    fn bind(&self, spec: &ListenSpec) -> io::Result<Bound> {
        let _entered = self.runtime.enter();
        listen::bind(spec, self.count, self.options, &self.shared.stats)
    }

    fn spawn(&self, bound: &[Bound]) -> Vec<JoinHandle<()>> {
        spawn_acceptors(&self.shared, bound, self.count, &self.runtime)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn os(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn exhaustion_backs_off_and_connection_errors_retry() {
        for code in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert_eq!(classify(&os(code)), AcceptErrorKind::Exhausted, "{code}");
        }
        for code in [
            libc::ECONNABORTED,
            libc::EPROTO,
            libc::EINTR,
            libc::ENETDOWN,
        ] {
            assert_eq!(classify(&os(code)), AcceptErrorKind::Transient, "{code}");
        }
        assert_eq!(classify(&os(libc::EBADF)), AcceptErrorKind::Unexpected);
        assert_eq!(
            classify(&io::Error::from(io::ErrorKind::ConnectionAborted)),
            AcceptErrorKind::Transient
        );
        assert_eq!(
            classify(&io::Error::other("weird")),
            AcceptErrorKind::Unexpected
        );
    }

    #[test]
    fn an_episode_logs_once_and_ends_on_success() {
        let mut b = AcceptBackoff::default();
        let first = b.on_error(AcceptErrorKind::Exhausted);
        assert_eq!(
            first,
            Decision::BackOff {
                delay: EXHAUSTION_BACKOFF,
                log: true
            }
        );
        // Transient errors inside an episode neither log nor end it.
        assert_eq!(b.on_error(AcceptErrorKind::Transient), Decision::RetryNow);
        for _ in 0..5 {
            assert_eq!(
                b.on_error(AcceptErrorKind::Exhausted),
                Decision::BackOff {
                    delay: EXHAUSTION_BACKOFF,
                    log: false
                }
            );
        }
        assert_eq!(b.on_success(), Some(6));
        assert_eq!(b.on_success(), None);
        assert!(matches!(
            b.on_error(AcceptErrorKind::Unexpected),
            Decision::BackOff { log: true, .. }
        ));
    }

    proptest! {
        /// Whatever the errors, the acceptor never waits on a transient one, always waits on
        /// any other (no busy loop), and logs exactly once per episode.
        #[test]
        fn never_spins_and_logs_once_per_episode(events in proptest::collection::vec(0u8..4, 0..200)) {
            let mut b = AcceptBackoff::default();
            let (mut episodes, mut logs) = (0u64, 0u64);
            let mut in_episode = false;
            for e in events {
                let kind = match e {
                    0 => None,
                    1 => Some(AcceptErrorKind::Transient),
                    2 => Some(AcceptErrorKind::Exhausted),
                    _ => Some(AcceptErrorKind::Unexpected),
                };
                match kind {
                    None => { b.on_success(); in_episode = false; }
                    Some(kind) => match b.on_error(kind) {
                        Decision::RetryNow => prop_assert_eq!(kind, AcceptErrorKind::Transient),
                        Decision::BackOff { delay, log } => {
                            prop_assert_ne!(kind, AcceptErrorKind::Transient);
                            prop_assert_eq!(delay, EXHAUSTION_BACKOFF);
                            if !in_episode { episodes += 1; in_episode = true; }
                            logs += u64::from(log);
                        }
                    },
                }
            }
            prop_assert_eq!(logs, episodes);
        }
    }
}
