//! Server counters: [`ServerStats`] (a snapshot) and the atomics behind it.

use std::sync::atomic::{
    AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed, Ordering::SeqCst, fence,
};

use tokio::sync::Notify;

/// A snapshot of a server's counters, from [`ServerHandle::stats`](crate::ServerHandle::stats).
///
/// Every accepted connection ends in exactly one bucket, so once the server is idle
/// `accepted == rejected + active + closed + errored + panicked + killed + handshake_failures`.
/// The counters are read one by one without a lock, so a snapshot taken while connections come
/// and go may be off by the connections that moved meanwhile (never negative).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Connections accepted from the kernel (including those then rejected).
    pub accepted: u64,
    /// Connection processes running now (TLS handshakes in progress included).
    pub active: u64,
    /// Accepted and closed at once: over `max_connections` under
    /// [`Overload::Reject`](crate::Overload::Reject), over the per-IP cap (behind a PROXY
    /// header: once the header named the client), accepted while the server was stopping,
    /// or waiting in the kernel's backlog when a listener closed (suspend, shutdown, drop).
    pub rejected: u64,
    /// Ended normally: the peer or the handler closed, a read timeout, the lifetime between
    /// callbacks, or a graceful shutdown.
    pub closed: u64,
    /// Ended with an error: the handler returned `Err`, reading the socket failed (a reset),
    /// the send timeout passed, or the read buffer limit was exceeded.
    pub errored: u64,
    /// Ended because the handler panicked, or its setup did (the handler's `Clone`, the
    /// function given to [`serve`](crate::Server::serve_fn)); only that connection was closed.
    pub panicked: u64,
    /// Killed without finishing: still running at a drain's deadline, a callback still
    /// running when the lifetime passed, or the server handle was dropped.
    pub killed: u64,
    /// TLS handshakes that failed (bad client, wrong CA, plain TCP on a TLS port) or did not
    /// finish within the handshake timeout, and PROXY headers refused (see
    /// `proxy_failures`).
    pub handshake_failures: u64,
    /// `accept()` calls that failed (each failure, not each back-off episode).
    pub accept_errors: u64,
    /// Connections whose writes made no progress for the send timeout (the peer stopped
    /// reading). Not a bucket of its own: each is also counted where it ended (`errored` for
    /// a [`Handler`](crate::Handler); for a [`Connection`](crate::Connection) function, as its
    /// function ended).
    pub send_timeouts: u64,
    /// Connections on a PROXY listener closed for their header: missing, malformed, too
    /// large, late, from an untrusted source, or cut short
    /// ([`ProxyError`](crate::ProxyError)). Not a bucket of its own: each is also counted in
    /// `handshake_failures`.
    pub proxy_failures: u64,
    /// Bytes received from peers (after TLS decryption). Counted in 64 KiB steps while a
    /// connection lives and exactly when it ends.
    pub bytes_in: u64,
    /// Bytes sent to peers (before TLS encryption), counted like `bytes_in`.
    pub bytes_out: u64,
}

/// A reader of a server's counters that does not own the server: from
/// [`ServerHandle::stats_reader`](crate::ServerHandle::stats_reader), for a metrics
/// publisher or a health endpoint that lives apart from the handle.
///
/// Cloning it is one reference count. It keeps only the counters alive, never the server:
/// dropping the [`ServerHandle`](crate::ServerHandle) still stops the server, after which
/// the reader keeps returning the final counts.
#[derive(Clone, Debug)]
pub struct StatsReader(pub(crate) std::sync::Arc<Stats>);

impl StatsReader {
    /// A snapshot of the counters, the same as
    /// [`ServerHandle::stats`](crate::ServerHandle::stats) gives.
    pub fn snapshot(&self) -> ServerStats {
        self.0.snapshot()
    }
}

/// How a connection ended: the one bucket it is counted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Closed,
    Errored,
    Panicked,
    Killed,
    HandshakeFailed,
    /// Refused once started: over the per-IP cap by the address a PROXY header carried.
    Rejected,
}

/// Bytes are added to the server-wide counters each time a connection's own total crosses a
/// multiple of this, and the remainder when it ends: live counts without a shared atomic per
/// read.
pub(crate) const BYTES_GRAIN_SHIFT: u32 = 16;

/// The live counters. Updated at connection start and end (and per 64 KiB of traffic), never
/// per read, so connections on different cores do not fight over them.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    accepted: AtomicU64,
    started: AtomicU64,
    rejected: AtomicU64,
    closed: AtomicU64,
    errored: AtomicU64,
    panicked: AtomicU64,
    killed: AtomicU64,
    handshake_failures: AtomicU64,
    accept_errors: AtomicU64,
    send_timeouts: AtomicU64,
    proxy_failures: AtomicU64,
    /// Connections refused after their process started (counted in `rejected` too).
    late_rejected: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    /// Backlog connections closed since the last episode was logged.
    backlog: AtomicU64,
    /// Why connections may be killed now: a [`Stopping`] as a byte.
    stopping: AtomicU8,
    /// Set while a shutdown waits for the last connection to be counted.
    draining: AtomicBool,
    idle: Notify,
}

/// What the server is doing to its connections, so that one killed says why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stopping {
    /// Serving (a kill comes from elsewhere).
    No = 0,
    /// A graceful shutdown: a kill is its deadline.
    Draining = 1,
    /// The handle was dropped.
    Dropped = 2,
}

impl Stats {
    pub(crate) fn accepted(&self) {
        self.accepted.fetch_add(1, Relaxed);
    }

    pub(crate) fn rejected(&self) {
        self.rejected.fetch_add(1, Relaxed);
    }

    pub(crate) fn accept_error(&self) {
        self.accept_errors.fetch_add(1, Relaxed);
    }

    pub(crate) fn send_timeout(&self) {
        self.send_timeouts.fetch_add(1, Relaxed);
    }

    pub(crate) fn proxy_failure(&self) {
        self.proxy_failures.fetch_add(1, Relaxed);
    }

    /// `n` connections waiting in a closing listener's backlog were accepted and closed.
    pub(crate) fn backlog_closed(&self, n: u64) {
        self.accepted.fetch_add(n, Relaxed);
        self.rejected.fetch_add(n, Relaxed);
        self.backlog.fetch_add(n, Relaxed);
    }

    /// How many backlog connections were closed since the last call (one log line each
    /// episode).
    pub(crate) fn take_backlog(&self) -> u64 {
        self.backlog.swap(0, Relaxed)
    }

    pub(crate) fn set_stopping(&self, stopping: Stopping) {
        self.stopping.store(stopping as u8, Relaxed);
    }

    pub(crate) fn stopping(&self) -> Stopping {
        match self.stopping.load(Relaxed) {
            1 => Stopping::Draining,
            2 => Stopping::Dropped,
            _ => Stopping::No,
        }
    }

    pub(crate) fn started(&self) {
        self.started.fetch_add(1, Relaxed);
    }

    pub(crate) fn ended(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Closed => &self.closed,
            Outcome::Errored => &self.errored,
            Outcome::Panicked => &self.panicked,
            Outcome::Killed => &self.killed,
            Outcome::HandshakeFailed => &self.handshake_failures,
            Outcome::Rejected => &self.late_rejected,
        };
        counter.fetch_add(1, Relaxed);
        // Pairs with the fence in `wait_idle`: either it sees this end, or this sees it waiting.
        fence(SeqCst);
        if self.draining.load(Relaxed) && self.snapshot().active == 0 {
            self.idle.notify_waiters();
        }
    }

    /// Waits until every started connection has been counted as ended. A connection's exit
    /// is published (which ends a drain) a moment before its counters are updated; a
    /// shutdown waits for this so that the stats it leaves behind are final.
    pub(crate) async fn wait_idle(&self) {
        self.draining.store(true, Relaxed);
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            fence(SeqCst);
            if self.snapshot().active == 0 {
                return;
            }
            idle.await;
        }
    }

    pub(crate) fn snapshot(&self) -> ServerStats {
        // Ends before starts: `active` can be stale but never negative.
        let closed = self.closed.load(Relaxed);
        let errored = self.errored.load(Relaxed);
        let panicked = self.panicked.load(Relaxed);
        let killed = self.killed.load(Relaxed);
        let handshake_failures = self.handshake_failures.load(Relaxed);
        let late_rejected = self.late_rejected.load(Relaxed);
        let ended = closed + errored + panicked + killed + handshake_failures + late_rejected;
        let started = self.started.load(Relaxed);
        ServerStats {
            accepted: self.accepted.load(Relaxed),
            active: started.saturating_sub(ended),
            rejected: self.rejected.load(Relaxed) + late_rejected,
            closed,
            errored,
            panicked,
            killed,
            handshake_failures,
            accept_errors: self.accept_errors.load(Relaxed),
            send_timeouts: self.send_timeouts.load(Relaxed),
            proxy_failures: self.proxy_failures.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_connection_lands_in_one_bucket() {
        let stats = Stats::default();
        for outcome in [
            Outcome::Closed,
            Outcome::Errored,
            Outcome::Panicked,
            Outcome::Killed,
            Outcome::HandshakeFailed,
            Outcome::Rejected,
        ] {
            stats.accepted();
            stats.started();
            assert_eq!(stats.snapshot().active, 1);
            stats.ended(outcome);
        }
        stats.accepted();
        stats.rejected();
        let s = stats.snapshot();
        assert_eq!(s.active, 0);
        assert_eq!(
            s.accepted,
            s.rejected
                + s.active
                + s.closed
                + s.errored
                + s.panicked
                + s.killed
                + s.handshake_failures
        );
        assert_eq!(
            (
                s.closed,
                s.errored,
                s.panicked,
                s.killed,
                s.handshake_failures,
                s.rejected
            ),
            (1, 1, 1, 1, 1, 2)
        );
    }

    #[test]
    fn backlog_connections_are_accepted_and_rejected_and_logged_once_per_episode() {
        let stats = Stats::default();
        stats.backlog_closed(3);
        stats.backlog_closed(2);
        let s = stats.snapshot();
        assert_eq!((s.accepted, s.rejected, s.active), (5, 5, 0));
        assert_eq!(stats.take_backlog(), 5);
        assert_eq!(stats.take_backlog(), 0, "the episode was taken");
        stats.send_timeout();
        assert_eq!(stats.snapshot().send_timeouts, 1);
        assert_eq!(stats.stopping(), Stopping::No);
        stats.set_stopping(Stopping::Dropped);
        assert_eq!(stats.stopping(), Stopping::Dropped);
    }
}
