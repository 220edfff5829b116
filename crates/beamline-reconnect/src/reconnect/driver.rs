//! The background task: the reconnect state machine. Each phase waits for its events in
//! [`Driver::wait`]; every transition is in the one `match` of [`Driver::step`].
//!
//! User code (the connector, the health check, the first poll of a queued call) runs with
//! no lock held, and a panic in it becomes an event: the connection closes with
//! [`CloseReason::Panicked`]. Anything that still unwinds out of the state machine is
//! caught in [`Driver::run`] and ends the same way.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::time::{Instant, sleep_until, timeout};

use super::handover::catch_panic;
use super::{
    CloseReason, ConnectError, HealthCheck, Live, LossCause, ReconnectConfig, Refusal, Shared,
    Started, State,
};
use crate::{Backoff, Connect, Connection};
use beamline_failure::panic_message;

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
    ping: Option<Ping>,
}

/// What can happen to a phase; `E` is the connector's error.
enum Event<C, E> {
    Connected(C),
    ConnectFailed(ConnectError<E>),
    Lost(LossCause),
    Stable,
    BackoffElapsed,
    /// User code the driver ran panicked, with this message.
    Panicked(Arc<str>),
    /// The handle closed (`close()`, last handle dropped): `Shared` is already shut down.
    Closed,
}

/// A health check's ping in progress: `Err` is the message of a panic in the ping's call.
type Ping = Pin<Box<dyn Future<Output = Result<bool, Arc<str>>> + Send>>;

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
    last_error: Option<ConnectError<K::Error>>,
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
    pub(super) async fn connect_first(mut self) -> Result<Self, ConnectError<K::Error>> {
        let limit = self
            .backoff
            .connect_timeout()
            .unwrap_or(self.connect_timeout);
        match connect_once(&mut self.connector, &self.shared.name, 1, limit).await {
            Ok(conn) => Ok(self.connected(conn)),
            Err(e) => {
                // As an error, so a subscriber shows its sources (the connector's error) too.
                tracing::warn!(name = %self.shared.name, attempt = 1, error = &e as &(dyn std::error::Error + 'static), "reconnect: first connect failed (sync_connect)");
                Err(e)
            }
        }
    }

    /// Starts in `Connected` with `conn`, a connection made before the driver existed (the
    /// first attempt of `sync_connect`, or one the caller made).
    pub(super) fn connected(mut self, conn: Conn<K>) -> Self {
        self.phase = self.install(conn, 1, Instant::now());
        self
    }

    /// Runs the state machine until it closes. A panic that escapes it (one no narrower
    /// guard turned into an event) closes the connection with [`CloseReason::Panicked`]
    /// instead of vanishing with the task.
    pub(super) async fn run(mut self) {
        self.running = true;
        let shared = self.shared.clone();
        if let Err(payload) = AssertUnwindSafe(self.run_states()).catch_unwind().await {
            let message = panic_message(payload.as_ref());
            tracing::error!(name = %shared.name, message = %message, "reconnect: the background task panicked");
            shared.shutdown(CloseReason::Panicked(message));
        }
    }

    async fn run_states(mut self) {
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
    async fn wait(
        &mut self,
        mut phase: Phase<Conn<K>>,
    ) -> (Phase<Conn<K>>, Event<Conn<K>, K::Error>) {
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

    async fn wait_connected(&mut self, up: &mut Up<Conn<K>>) -> Event<Conn<K>, K::Error> {
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
                    match healthy {
                        Ok(true) => {}
                        Ok(false) => return Event::Lost(LossCause::HealthCheck),
                        Err(message) => return Event::Panicked(message),
                    }
                    up.next_health = self.health.as_ref().map(|h| Instant::now() + h.interval);
                }
                () = sleep_opt(up.stable_at), if up.stable_at.is_some() => return Event::Stable,
                () = sleep_opt(up.next_health), if up.next_health.is_some() => {
                    up.next_health = None;
                    if let Some(check) = &self.health {
                        match ping(&up.live, check) {
                            Ok(ping) => up.ping = Some(ping),
                            Err(message) => return Event::Panicked(message),
                        }
                    }
                }
                () = sleep_opt(progress_at), if progress_at.is_some() => {
                    let now = Instant::now();
                    if self.progress_timeout.is_some_and(|t| up.live.stalled(now, t)) {
                        return Event::Lost(LossCause::NoProgress);
                    }
                }
            }
        }
    }

    /// Every transition of the state machine.
    fn step(&mut self, phase: Phase<Conn<K>>, event: Event<Conn<K>, K::Error>) -> Phase<Conn<K>> {
        let now = Instant::now();
        match (phase, event) {
            // `Shared::shutdown` already failed the queue, closed the connection and
            // published `Closed`.
            (_, Event::Closed) => Phase::Closed,
            (_, Event::Panicked(message))
            | (
                Phase::Connecting { .. },
                Event::ConnectFailed(ConnectError::Panicked { message, .. }),
            ) => {
                tracing::error!(name = %self.shared.name, message = %message, "reconnect: user code panicked in the background task; closing");
                // Closes the live connection: calls on it end as it reports them.
                self.shared.shutdown(CloseReason::Panicked(message));
                Phase::Closed
            }
            (Phase::Connecting { attempt }, Event::Connected(conn)) => {
                self.install(conn, attempt, now)
            }
            (Phase::Connecting { attempt }, Event::ConnectFailed(e)) => {
                tracing::warn!(name = %self.shared.name, attempt, error = &e as &(dyn std::error::Error + 'static), "reconnect: connect failed");
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
    ///
    /// The queue is taken under the lock and started outside it (each call's first poll is
    /// the connection's code); requests made meanwhile keep joining the queue (`installing`)
    /// and are started in the next round, so nothing overtakes the queue. A panic in a first
    /// poll closes everything: the calls started before it are handed over and end as the
    /// closed connection reports them, the one that panicked may have been delivered, the
    /// rest were never sent.
    fn install(&mut self, conn: Conn<K>, attempt: u32, now: Instant) -> Phase<Conn<K>> {
        let live = Arc::new(Live::new(conn, self.progress_timeout.is_some()));
        {
            let mut inner = self.shared.inner();
            if inner.closed.is_some() {
                drop(inner);
                live.conn.close();
                return Phase::Closed;
            }
            inner.live = Some(live.clone());
            inner.installing = true;
        }
        let mut queued = 0;
        loop {
            let waiters = {
                let mut inner = self.shared.inner();
                if inner.closed.is_some() {
                    // Closed meanwhile: `shutdown` closed `live` and failed the queue.
                    return Phase::Closed;
                }
                if inner.queue.is_empty() {
                    inner.installing = false;
                    self.shared.state.send_replace(State::Connected);
                    break;
                }
                std::mem::take(&mut inner.queue)
            };
            let mut waiters = waiters.into_iter();
            while let Some(waiter) = waiters.next() {
                if waiter.reply.is_closed() {
                    continue; // its caller left: never sent
                }
                match Started::begin(live.clone(), waiter.request) {
                    Ok(started) => {
                        queued += 1;
                        // A caller that left just now drops its call here.
                        let _ = waiter.reply.send(Ok(started));
                    }
                    Err(message) => {
                        tracing::error!(name = %self.shared.name, message = %message, "reconnect: a queued call panicked when started; closing");
                        let _ = waiter.reply.send(Err(Refusal::Panicked(message.clone())));
                        let reason = CloseReason::Panicked(message);
                        for unsent in waiters {
                            let _ = unsent.reply.send(Err(Refusal::Closed(reason.clone())));
                        }
                        self.shared.shutdown(reason);
                        return Phase::Closed;
                    }
                }
            }
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
                    error = self.last_error.as_ref().map(|e| e as &(dyn std::error::Error + 'static)),
                    "reconnect: backing off",
                );
                if self.shared.publish(State::BackingOff { attempt, until }) {
                    Phase::BackingOff { attempt, until }
                } else {
                    Phase::Closed
                }
            }
            Err(limit) => {
                tracing::error!(name = %self.shared.name, limit = %limit, error = self.last_error.as_ref().map(|e| e as &(dyn std::error::Error + 'static)), "reconnect: giving up");
                self.shared.shutdown(CloseReason::GaveUp {
                    limit,
                    last_error: self.last_error.take().map(ConnectError::erase),
                });
                Phase::Closed
            }
        }
    }
}

impl<K: Connect> Drop for Driver<K> {
    fn drop(&mut self) {
        // A normal exit already closed `Shared` (this is then a no-op); otherwise the task
        // was torn down (its runtime shut down) and callers must not hang. While a panic
        // unwinds, `run` closes with the panic's message instead.
        if self.running && !std::thread::panicking() {
            self.shared.shutdown(CloseReason::Stopped);
        }
    }
}

/// One connect attempt under the connect timeout. A panic in the connector is caught and
/// returned as [`ConnectError::Panicked`].
async fn connect_once<K: Connect>(
    connector: &mut K,
    name: &Arc<str>,
    attempt: u32,
    limit: Duration,
) -> Result<Conn<K>, ConnectError<K::Error>> {
    tracing::debug!(name = %name, attempt, timeout_ms = limit.as_millis() as u64, "reconnect: connecting");
    let panicked = |message| ConnectError::Panicked {
        name: name.clone(),
        attempt,
        message,
    };
    let connecting = catch_panic(move || connector.connect()).map_err(panicked)?;
    match timeout(limit, AssertUnwindSafe(connecting).catch_unwind()).await {
        Ok(Ok(Ok(conn))) => Ok(conn),
        Ok(Ok(Err(e))) => Err(ConnectError::Failed {
            name: name.clone(),
            attempt,
            source: e,
        }),
        Ok(Err(payload)) => Err(panicked(panic_message(payload.as_ref()))),
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

async fn poll_ping(ping: &mut Option<Ping>) -> Result<bool, Arc<str>> {
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

/// Starts one health check. `Err` (here, or from the ping) is the message of a panic in the
/// `ping` closure or in the connection's call.
fn ping<C: Connection>(
    live: &Arc<Live<C>>,
    check: &HealthCheck<C::Request>,
) -> Result<Ping, Arc<str>> {
    let live = live.clone();
    let request = catch_panic(|| (check.ping)())?;
    let limit = check.timeout;
    let answered =
        async move { matches!(timeout(limit, live.call_tracked(request)).await, Ok(Ok(_))) };
    Ok(Box::pin(async move {
        AssertUnwindSafe(answered)
            .catch_unwind()
            .await
            .map_err(|payload| panic_message(payload.as_ref()))
    }))
}

/// About 30 years from now, as tokio does for "never".
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}
