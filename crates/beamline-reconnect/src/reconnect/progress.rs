//! A live connection and its progress tracking: calls in flight, when one last completed, and
//! whether the connection has stalled.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::handover::{Handover, poll_once};
use super::{BoxedCall, lock};
use crate::Connection;

/// A call the driver started on a caller's behalf (in queue order); the caller finishes it.
pub(super) struct Started<C: Connection> {
    pub(super) live: Arc<Live<C>>,
    pub(super) call: Handover<BoxedCall<C>>,
}

impl<C: Connection> Started<C> {
    /// Starts `request` on `live` now ([`poll_once`]), so the connection sees it in the
    /// order the driver walks the queue. `Err` holds the message of a panic in that first
    /// poll.
    pub(super) fn begin(live: Arc<Live<C>>, request: C::Request) -> Result<Self, Arc<str>> {
        let on = live.clone();
        let call: BoxedCall<C> = Box::pin(async move { on.call_tracked(request).await });
        Ok(Self {
            live,
            call: poll_once(call)?,
        })
    }
}

/// One physical connection, with what progress detection needs to know about it.
pub(super) struct Live<C> {
    pub(super) conn: C,
    /// `None` when progress detection is off (no bookkeeping on the request path then).
    pub(super) progress: Option<Mutex<Progress>>,
}

pub(super) struct Progress {
    pub(super) in_flight: usize,
    /// The later of the last response and the start of the oldest in-flight request.
    pub(super) since: Instant,
}

impl<C: Connection> Live<C> {
    pub(super) fn new(conn: C, track_progress: bool) -> Self {
        Self {
            conn,
            progress: track_progress.then(|| {
                Mutex::new(Progress {
                    in_flight: 0,
                    since: Instant::now(),
                })
            }),
        }
    }

    pub(super) async fn call_tracked(&self, request: C::Request) -> Result<C::Response, C::Error> {
        let mut guard = InFlight::start(self.progress.as_ref());
        let result = self.conn.call(request).await;
        if result.is_ok() {
            guard.answered = true;
        }
        result
    }

    /// When the driver should next look at progress: the stall deadline while requests
    /// are in flight, otherwise one timeout from now (a request starting in between is
    /// then caught exactly at its own deadline).
    pub(super) fn progress_deadline(&self, now: Instant, timeout: Duration) -> Instant {
        match self.progress.as_ref().map(lock) {
            Some(p) if p.in_flight > 0 => p.since + timeout,
            _ => now + timeout,
        }
    }

    pub(super) fn stalled(&self, now: Instant, timeout: Duration) -> bool {
        self.progress
            .as_ref()
            .map(lock)
            .is_some_and(|p| p.in_flight > 0 && now.saturating_duration_since(p.since) >= timeout)
    }
}

/// Counts one request in flight; dropping it (done or cancelled) counts it out.
pub(super) struct InFlight<'a> {
    pub(super) progress: Option<&'a Mutex<Progress>>,
    pub(super) answered: bool,
}

impl<'a> InFlight<'a> {
    pub(super) fn start(progress: Option<&'a Mutex<Progress>>) -> Self {
        if let Some(p) = progress {
            let mut p = lock(p);
            if p.in_flight == 0 {
                p.since = Instant::now();
            }
            p.in_flight += 1;
        }
        Self {
            progress,
            answered: false,
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.progress {
            let mut p = lock(p);
            p.in_flight = p.in_flight.saturating_sub(1);
            if self.answered {
                p.since = Instant::now();
            }
        }
    }
}
