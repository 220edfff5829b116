//! The background task: the reconnect state machine. Each phase waits for its events in
//! [`Driver::wait`]; every transition is in the one `match` of [`Driver::step`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, sleep_until, timeout};

use super::{
    CloseReason, ConnectError, HealthCheck, Live, LossCause, ReconnectConfig, Shared, Started,
    State,
};
use crate::{Backoff, Connect, Connection};

type Conn<K> = <K as Connect>::Connection;
type Request<K> = <Conn<K> as Connection>::Request;

/// Where the state machine is. Mirrors the public [`State`], plus what each phase needs.
enum Phase<C> {
    Connecting { attempt: u32 },
    Connected(Box<Up<C>>),
    BackingOff { attempt: u32, until: Instant },
    Closed,
}

/// The `Connected` phase's timers and in-progress health check.
struct Up<C> {
    live: Arc<Live<C>>,
    /// When the backoff resets; `None` once it has.
    stable_at: Option<Instant>,
    /// When the next health check is due (none while one is running or when disabled).
    next_health: Option<Instant>,
    ping: Option<Pin<Box<dyn Future<Output = bool> + Send>>>,
}

/// What can happen to a phase.
enum Event<C> {
    Connected(C),
    ConnectFailed(ConnectError),
    Lost(LossCause),
    Stable,
    BackoffElapsed,
    /// The handle closed (`close()`, last handle dropped): `Shared` is already shut down.
    Closed,
}

pub(super) struct Driver<K: Connect> {
    shared: Arc<Shared<Conn<K>>>,
    connector: K,
    backoff: Backoff,
    connect_timeout: Duration,
    stable_period: Duration,
    exit_on_disconnection: bool,
    health: Option<HealthCheck<Request<K>>>,
    progress_timeout: Option<Duration>,
    /// Connect attempts since the backoff last reset.
    attempt: u32,
    /// The last connect error since the last connection, for `CloseReason::GaveUp`.
    last_error: Option<ConnectError>,
    phase: Phase<Conn<K>>,
    /// Set once the task runs: only then does dropping it close `Shared`.
    running: bool,
}

impl<K: Connect> Driver<K> {
    pub(super) fn new(
        shared: Arc<Shared<Conn<K>>>,
        connector: K,
        backoff: Backoff,
        config: &ReconnectConfig,
        health: Option<HealthCheck<Request<K>>>,
    ) -> Self {
        Self {
            shared,
            connector,
            backoff,
            connect_timeout: config.connect_timeout,
            stable_period: config.stable_period,
            exit_on_disconnection: config.exit_on_disconnection,
            health,
            progress_timeout: config.progress_timeout,
            attempt: 1,
            last_error: None,
            phase: Phase::Connecting { attempt: 1 },
            running: false,
        }
    }

    /// `sync_connect`: runs the first attempt before the constructor returns.
    pub(super) async fn connect_first(mut self) -> Result<Self, ConnectError> {
        let limit = self
            .backoff
            .connect_timeout()
            .unwrap_or(self.connect_timeout);
        match connect_once(&mut self.connector, &self.shared.name, 1, limit).await {
            Ok(conn) => {
                self.phase = self.install(conn, 1, Instant::now());
                Ok(self)
            }
            Err(e) => {
                tracing::warn!(name = %self.shared.name, attempt = 1, error = %e, "reconnect: first connect failed (sync_connect)");
                Err(e)
            }
        }
    }

    pub(super) async fn run(mut self) {
        self.running = true;
        loop {
            let phase = std::mem::replace(&mut self.phase, Phase::Closed);
            let (phase, event) = self.wait(phase).await;
            self.phase = self.step(phase, event);
            if matches!(self.phase, Phase::Closed) {
                return;
            }
        }
    }

    /// Waits for the next event of `phase`.
    async fn wait(&mut self, mut phase: Phase<Conn<K>>) -> (Phase<Conn<K>>, Event<Conn<K>>) {
        let event = match &mut phase {
            Phase::Connecting { attempt } => {
                let attempt = *attempt;
                let limit = self
                    .backoff
                    .connect_timeout()
                    .unwrap_or(self.connect_timeout);
                tokio::select! {
                    biased;
                    () = closed(&self.shared) => Event::Closed,
                    result = connect_once(&mut self.connector, &self.shared.name, attempt, limit) => match result {
                        Ok(conn) => Event::Connected(conn),
                        Err(e) => Event::ConnectFailed(e),
                    },
                }
            }
            Phase::BackingOff { until, .. } => {
                tokio::select! {
                    biased;
                    () = closed(&self.shared) => Event::Closed,
                    () = sleep_until(*until) => Event::BackoffElapsed,
                }
            }
            Phase::Connected(up) => self.wait_connected(up).await,
            Phase::Closed => Event::Closed,
        };
        (phase, event)
    }

    async fn wait_connected(&mut self, up: &mut Up<Conn<K>>) -> Event<Conn<K>> {
        loop {
            let now = Instant::now();
            let progress_at = self
                .progress_timeout
                .map(|t| up.live.progress_deadline(now, t));
            tokio::select! {
                biased;
                () = closed(&self.shared) => return Event::Closed,
                () = up.live.conn.closed() => return Event::Lost(LossCause::Closed),
                healthy = poll_ping(&mut up.ping), if up.ping.is_some() => {
                    up.ping = None;
                    if !healthy {
                        return Event::Lost(LossCause::HealthCheck);
                    }
                    up.next_health = self.health.as_ref().map(|h| Instant::now() + h.interval);
                }
                () = sleep_opt(up.stable_at), if up.stable_at.is_some() => return Event::Stable,
                () = sleep_opt(up.next_health), if up.next_health.is_some() => {
                    up.next_health = None;
                    up.ping = self.health.as_ref().map(|h| ping(&up.live, h));
                }
                () = sleep_opt(progress_at), if progress_at.is_some() => {
                    if let Some(t) = self.progress_timeout {
                        if up.live.stalled(Instant::now(), t) {
                            return Event::Lost(LossCause::NoProgress);
                        }
                    }
                }
            }
        }
    }

    /// Every transition of the state machine.
    fn step(&mut self, phase: Phase<Conn<K>>, event: Event<Conn<K>>) -> Phase<Conn<K>> {
        let now = Instant::now();
        match (phase, event) {
            // `Shared::shutdown` already failed the queue, closed the connection and
            // published `Closed`.
            (_, Event::Closed) => Phase::Closed,
            (Phase::Connecting { attempt }, Event::Connected(conn)) => {
                self.install(conn, attempt, now)
            }
            (Phase::Connecting { attempt }, Event::ConnectFailed(e)) => {
                tracing::warn!(name = %self.shared.name, attempt, error = %e, "reconnect: connect failed");
                self.last_error = Some(e);
                self.back_off(now)
            }
            (Phase::Connected(up), Event::Lost(cause)) => {
                up.live.conn.close();
                self.uninstall(&up.live);
                tracing::warn!(name = %self.shared.name, cause = %cause, "reconnect: connection lost");
                if self.exit_on_disconnection {
                    self.shared.shutdown(CloseReason::Disconnected { cause });
                    return Phase::Closed;
                }
                self.back_off(now)
            }
            (Phase::Connected(mut up), Event::Stable) => {
                up.stable_at = None;
                self.reset_backoff();
                Phase::Connected(up)
            }
            (Phase::BackingOff { attempt, .. }, Event::BackoffElapsed) => {
                self.attempt = attempt;
                if self.shared.publish(State::Connecting { attempt }) {
                    Phase::Connecting { attempt }
                } else {
                    Phase::Closed
                }
            }
            // `wait` yields only the events its phase expects; anything else leaves the
            // phase as it is.
            (phase, _) => phase,
        }
    }

    /// Makes `conn` the live connection: starts the queued requests on it in order, then
    /// lets new requests go straight to it.
    fn install(&mut self, conn: Conn<K>, attempt: u32, now: Instant) -> Phase<Conn<K>> {
        let live = Arc::new(Live::new(conn, self.progress_timeout.is_some()));
        let handed = {
            let mut inner = self.shared.inner();
            if inner.closed.is_some() {
                drop(inner);
                live.conn.close();
                return Phase::Closed;
            }
            let waiters = std::mem::take(&mut inner.queue);
            let mut handed = Vec::with_capacity(waiters.len());
            for waiter in waiters {
                if waiter.reply.is_closed() {
                    continue; // its caller left: never sent
                }
                // Started under the lock, so no new request can overtake the queue.
                let started = Started::begin(live.clone(), waiter.request);
                handed.push((waiter.reply, started));
            }
            inner.live = Some(live.clone());
            self.shared.state.send_replace(State::Connected);
            handed
        };
        let queued = handed.len();
        for (reply, started) in handed {
            // A caller that left just now drops its call here.
            let _ = reply.send(Ok(started));
        }
        tracing::info!(name = %self.shared.name, attempt, queued, "reconnect: connected");
        self.last_error = None;
        let stable_at = if self.stable_period.is_zero() {
            self.reset_backoff();
            None
        } else {
            Some(now + self.stable_period)
        };
        Phase::Connected(Box::new(Up {
            live,
            stable_at,
            next_health: self.health.as_ref().map(|h| now + h.interval),
            ping: None,
        }))
    }

    fn uninstall(&self, live: &Arc<Live<Conn<K>>>) {
        let mut inner = self.shared.inner();
        if inner.live.as_ref().is_some_and(|l| Arc::ptr_eq(l, live)) {
            inner.live = None;
        }
    }

    fn reset_backoff(&mut self) {
        self.backoff.reset();
        self.attempt = 0;
        tracing::debug!(name = %self.shared.name, "reconnect: connection stable, backoff reset");
    }

    /// After a failed attempt or a lost connection: wait, or give up.
    fn back_off(&mut self, now: Instant) -> Phase<Conn<K>> {
        match self.backoff.next_delay(now.into_std()) {
            Ok(delay) => {
                let attempt = self.attempt + 1;
                let until = now.checked_add(delay).unwrap_or_else(far_future);
                tracing::info!(
                    name = %self.shared.name,
                    attempt,
                    delay_ms = delay.as_millis() as u64,
                    error = self.last_error.as_ref().map(tracing::field::display),
                    "reconnect: backing off",
                );
                if self.shared.publish(State::BackingOff { attempt, until }) {
                    Phase::BackingOff { attempt, until }
                } else {
                    Phase::Closed
                }
            }
            Err(limit) => {
                tracing::error!(name = %self.shared.name, limit = %limit, error = self.last_error.as_ref().map(tracing::field::display), "reconnect: giving up");
                self.shared.shutdown(CloseReason::GaveUp {
                    limit,
                    last_error: self.last_error.take(),
                });
                Phase::Closed
            }
        }
    }
}

impl<K: Connect> Drop for Driver<K> {
    fn drop(&mut self) {
        // A normal exit already closed `Shared` (this is then a no-op); otherwise the task
        // was torn down (runtime shutdown, a panic in user code) and callers must not hang.
        if self.running {
            self.shared.shutdown(CloseReason::Stopped);
        }
    }
}

/// One connect attempt under the connect timeout.
async fn connect_once<K: Connect>(
    connector: &mut K,
    name: &Arc<str>,
    attempt: u32,
    limit: Duration,
) -> Result<Conn<K>, ConnectError> {
    tracing::debug!(name = %name, attempt, timeout_ms = limit.as_millis() as u64, "reconnect: connecting");
    match timeout(limit, connector.connect()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(ConnectError::Failed {
            name: name.clone(),
            attempt,
            source: Arc::new(e),
        }),
        Err(_) => Err(ConnectError::Timeout {
            name: name.clone(),
            attempt,
            timeout: limit,
        }),
    }
}

/// Resolves once the handle side has closed `Shared`.
async fn closed<C: Connection>(shared: &Shared<C>) {
    loop {
        let notified = shared.wake.notified();
        if shared.inner().closed.is_some() {
            return;
        }
        notified.await;
    }
}

async fn poll_ping(ping: &mut Option<Pin<Box<dyn Future<Output = bool> + Send>>>) -> bool {
    match ping {
        Some(p) => p.await,
        None => std::future::pending().await,
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn ping<C: Connection>(
    live: &Arc<Live<C>>,
    check: &HealthCheck<C::Request>,
) -> Pin<Box<dyn Future<Output = bool> + Send>> {
    let live = live.clone();
    let request = (check.ping)();
    let limit = check.timeout;
    Box::pin(async move { matches!(timeout(limit, live.call_tracked(request)).await, Ok(Ok(_))) })
}

/// About 30 years from now, as tokio does for "never".
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}
