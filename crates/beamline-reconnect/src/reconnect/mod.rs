//! The reconnecting connection: a handle callers share, and a background task that owns
//! *when* a connection exists.

mod config;
mod driver;
mod error;
mod handover;
mod progress;
mod route;
mod state;
#[cfg(feature = "process")]
mod supervised;

pub use config::{
    DEFAULT_BACKOFF, HealthCheck, OfflinePolicy, ReconnectConfig, ReconnectConfigError,
};
pub use error::{CloseReason, ConnectError, LossCause, ReconnectError, StartError};
pub use state::State;
#[cfg(feature = "process")]
pub use supervised::SupervisedReconnect;

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{Notify, oneshot, watch};

use crate::{Connection, WasSent};
use driver::Driver;
pub(crate) use handover::catch_panic;
use progress::{Live, Started};
use route::{Outcome, Route, lost, route, wait_queued};

/// A connection that reconnects: a cheap, cloneable handle to one logical connection
/// whose physical connections come and go.
///
/// A background task runs the state machine `Connecting → Connected → BackingOff →
/// Connecting …` (see [`State`]), making connections with a [`Connect`](crate::Connect)
/// and spacing failed attempts with a jittered [`Backoff`](crate::Backoff). Callers use
/// [`call`](Self::call) and never see the gaps except through the offline policy.
///
/// # Guarantees
/// - **Bounded, jittered retries.** Attempts follow the backoff (capped, jittered); a lost
///   connection waits one backoff delay before its first reconnect attempt, so clients
///   that lost the same server do not return in the same instant. The backoff resets only
///   after a connection stayed up for the stable period.
/// - **Every request ends in a response or a typed error**, which says whether it may have
///   been delivered ([`WasSent::was_sent`] on [`ReconnectError`]).
/// - **No hidden replays.** A request is sent again only if made with
///   [`call_idempotent`](Self::call_idempotent), at most `max_replays` times.
/// - **Offline requests follow the chosen [`OfflinePolicy`]**: they fail at once, or wait
///   in a bounded queue until their deadline and are started in queue order (before any
///   later request) when a connection comes up.
/// - **Half-open connections are replaced** when a health check fails or, with a progress
///   timeout, when in-flight requests stop getting answers.
/// - **Closing is final and prompt.** After [`close`](Self::close) (or when the last handle
///   is dropped, or the backoff gives up) queued requests fail with
///   [`ReconnectError::Closed`], the live connection is closed, and the task exits.
/// - **User code never runs under the task's lock, and its panics are typed.** The task
///   runs your connector, your health check and the first poll of each queued call with no
///   lock held; a panic in any of them closes the connection with
///   [`CloseReason::Panicked`] and the panic's message (seen by [`state`](Self::state)
///   watchers and in every later error): calls already started end as their connection
///   reports them, the call whose start panicked with [`ReconnectError::Panicked`] (maybe
///   delivered), queued ones with [`ReconnectError::Closed`] (not sent). A panic in the
///   first poll of a call made while connected happens in the caller's own task.
///
/// # Examples
/// ```no_run
/// use std::time::Duration;
/// use beamline_reconnect::{FramedConnection, OfflinePolicy, Reconnect, ReconnectConfig};
/// use tokio::net::TcpStream;
/// use tokio_util::codec::{Framed, LinesCodec};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let addr = "127.0.0.1:7000";
/// let connect = move || async move {
///     let stream = TcpStream::connect(addr).await?;
///     // A line longer than 8 KiB is a decode error, not an unbounded buffer.
///     let lines = LinesCodec::new_with_max_length(8 * 1024);
///     Ok::<_, std::io::Error>(FramedConnection::new(Framed::new(stream, lines)))
/// };
/// let config = ReconnectConfig::new(OfflinePolicy::Queue { max: 100, deadline: Duration::from_secs(2) })
///     .name(format!("echo {addr}"));
/// let conn = Reconnect::start(connect, config).await?;
/// let reply = conn.call("hello".to_string()).await?;
/// # let _ = reply;
/// # Ok(())
/// # }
/// ```
pub struct Reconnect<C: Connection> {
    handle: Arc<HandleToken<C>>,
}

/// Shared by every handle; when the last one goes, the connection closes.
struct HandleToken<C: Connection>(Arc<Shared<C>>);

impl<C: Connection> Drop for HandleToken<C> {
    fn drop(&mut self) {
        self.0.shutdown(CloseReason::Dropped);
    }
}

impl<C: Connection> Clone for Reconnect<C> {
    fn clone(&self) -> Self {
        Self {
            handle: self.handle.clone(),
        }
    }
}

impl<C: Connection> fmt::Debug for Reconnect<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reconnect")
            .field("name", &self.shared().name)
            .field("state", &*self.shared().state.borrow())
            .finish_non_exhaustive()
    }
}

/// State shared by the handles and the driver task.
struct Shared<C: Connection> {
    name: Arc<str>,
    offline: OfflinePolicy,
    max_replays: u32,
    inner: Mutex<Inner<C>>,
    state: watch::Sender<State>,
    /// Wakes the driver when the handle closed.
    wake: Notify,
}

struct Inner<C: Connection> {
    /// The live connection, while the driver is in `Connected` (and while it installs it).
    live: Option<Arc<Live<C>>>,
    /// The driver is starting the queued requests on `live`, outside the lock: new
    /// requests keep going to the queue, behind them, until it is empty.
    installing: bool,
    /// Requests waiting for a connection, oldest first.
    queue: VecDeque<Waiter<C>>,
    next_ticket: u64,
    /// Set once, by whoever closes first.
    closed: Option<CloseReason>,
}

/// A queued request and the way to hand its started call back to its caller.
struct Waiter<C: Connection> {
    ticket: u64,
    request: C::Request,
    reply: oneshot::Sender<Result<Started<C>, Refusal>>,
}

/// Why a queued request was not handed a started call.
enum Refusal {
    /// Closed before it was started: not sent.
    Closed(CloseReason),
    /// The connection's `call` panicked when the driver started it: maybe sent.
    Panicked(Arc<str>),
}

type BoxedCall<C> = Pin<
    Box<dyn Future<Output = Result<<C as Connection>::Response, <C as Connection>::Error>> + Send>,
>;

/// Locks, ignoring poisoning: every critical section leaves the data consistent, and a
/// panic in user code (a connection's first poll) must not wedge every caller.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<C: Connection> Shared<C> {
    fn inner(&self) -> MutexGuard<'_, Inner<C>> {
        lock(&self.inner)
    }

    /// Publishes `state` unless closed; returns `false` when closed.
    fn publish(&self, state: State) -> bool {
        let inner = self.inner();
        if inner.closed.is_some() {
            return false;
        }
        self.state.send_replace(state);
        true
    }

    /// Closes for good (first caller wins): fails the queue, closes the live connection,
    /// publishes `Closed` and wakes the driver.
    fn shutdown(&self, reason: CloseReason) {
        let (live, waiters) = {
            let mut inner = self.inner();
            if inner.closed.is_some() {
                return;
            }
            inner.closed = Some(reason.clone());
            self.state.send_replace(State::Closed(reason.clone()));
            (inner.live.take(), std::mem::take(&mut inner.queue))
        };
        if let Some(live) = live {
            live.conn.close();
        }
        for waiter in waiters {
            let _ = waiter.reply.send(Err(Refusal::Closed(reason.clone())));
        }
        self.wake.notify_one();
        tracing::info!(name = %self.name, reason = %reason, "reconnect: closed");
    }

    fn close_reason(&self) -> CloseReason {
        self.inner().closed.clone().unwrap_or(CloseReason::Stopped)
    }

    /// Takes a queued request out; `false` if the driver already took it.
    fn remove_queued(&self, ticket: u64) -> bool {
        let mut inner = self.inner();
        match inner.queue.iter().position(|w| w.ticket == ticket) {
            Some(i) => {
                inner.queue.remove(i);
                true
            }
            None => false,
        }
    }
}

impl<C: Connection> Reconnect<C> {
    /// Starts the reconnecting connection with `connect` and `config`.
    ///
    /// With `sync_connect`, the first attempt runs here and its failure is returned;
    /// otherwise this returns at once in [`State::Connecting`] and the background task
    /// connects, retrying with backoff.
    ///
    /// # Errors
    /// [`StartError::Config`] for an invalid setting; [`StartError::Connect`] when
    /// `sync_connect` is set and the first attempt fails (with the connector's own error),
    /// times out or panics.
    ///
    /// # Panics
    /// Outside a tokio runtime (it spawns the driver task).
    pub async fn start<K>(connect: K, config: ReconnectConfig) -> Result<Self, StartError<K::Error>>
    where
        K: crate::Connect<Connection = C>,
    {
        Self::start_inner(connect, config, None).await
    }

    /// [`start`](Self::start), plus a [`HealthCheck`] while connected.
    ///
    /// # Errors
    /// As [`start`](Self::start), and [`StartError::Config`] for a zero interval or
    /// timeout in `check`.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn start_with_health_check<K>(
        connect: K,
        config: ReconnectConfig,
        check: HealthCheck<C::Request>,
    ) -> Result<Self, StartError<K::Error>>
    where
        K: crate::Connect<Connection = C>,
    {
        Self::start_inner(connect, config, Some(check)).await
    }

    /// Starts the reconnecting connection with `first`, a connection already made (by
    /// `connect`, or any other way), and `connect` for every later one.
    ///
    /// Nothing is attempted here, so the only failure is a setting: whoever made `first`
    /// has its error already, as it was made (a pool's manager makes the first connection
    /// itself for that reason). `sync_connect` does not apply. When `first` is lost, the
    /// connection backs off and reconnects with `connect` like any other.
    ///
    /// # Errors
    /// [`ReconnectConfigError`] for an invalid setting; `first` is then closed.
    ///
    /// # Panics
    /// Outside a tokio runtime (it spawns the driver task).
    pub fn start_connected<K>(
        first: C,
        connect: K,
        config: ReconnectConfig,
    ) -> Result<Self, ReconnectConfigError>
    where
        K: crate::Connect<Connection = C>,
    {
        let (shared, backoff) = match Self::prepare(&config, None) {
            Ok(prepared) => prepared,
            Err(e) => {
                first.close();
                return Err(e);
            }
        };
        let driver = Driver::new(shared.clone(), connect, backoff, &config, None).connected(first);
        Ok(Self::spawn(shared, driver))
    }

    async fn start_inner<K>(
        connect: K,
        config: ReconnectConfig,
        health: Option<HealthCheck<C::Request>>,
    ) -> Result<Self, StartError<K::Error>>
    where
        K: crate::Connect<Connection = C>,
    {
        let (shared, backoff) = Self::prepare(&config, health.as_ref())?;
        let driver = Driver::new(shared.clone(), connect, backoff, &config, health);
        let driver = if config.sync_connect {
            driver.connect_first().await?
        } else {
            driver
        };
        Ok(Self::spawn(shared, driver))
    }

    /// Runs `driver` on its own task and makes the first handle.
    fn spawn<K>(shared: Arc<Shared<C>>, driver: Driver<K>) -> Self
    where
        K: crate::Connect<Connection = C>,
    {
        tokio::spawn(driver.run());
        Self {
            handle: Arc::new(HandleToken(shared)),
        }
    }

    /// Checks the settings and makes what every start needs: the shared state and the
    /// backoff.
    fn prepare(
        config: &ReconnectConfig,
        health: Option<&HealthCheck<C::Request>>,
    ) -> Result<(Arc<Shared<C>>, crate::Backoff), ReconnectConfigError> {
        config.validate()?;
        if let Some(check) = health {
            check.validate()?;
        }
        let backoff = match config.seed {
            Some(seed) => config.backoff.build_seeded(seed),
            None => config.backoff.build(),
        }
        .map_err(ReconnectConfigError::from)?;
        let shared = Arc::new(Shared {
            name: config.name.clone(),
            offline: config.offline,
            max_replays: config.max_replays,
            inner: Mutex::new(Inner {
                live: None,
                installing: false,
                queue: VecDeque::new(),
                next_ticket: 0,
                closed: None,
            }),
            state: watch::Sender::new(State::Connecting { attempt: 1 }),
            wake: Notify::new(),
        });
        Ok((shared, backoff))
    }

    fn shared(&self) -> &Shared<C> {
        &self.handle.0
    }

    /// Sends `request` and waits for its response. Never replayed.
    ///
    /// # Errors
    /// A [`ReconnectError`] saying whether the request may have been delivered:
    /// `Disconnected`, `QueueFull`, `Timeout` and `Closed` when it never reached a
    /// connection; `NotSent` or `ConnectionLost` when its connection died; `Request` when
    /// the connection failed it and stayed up.
    pub async fn call(&self, request: C::Request) -> Result<C::Response, ReconnectError<C::Error>> {
        let name = || self.shared().name.clone();
        match self.send_once(request).await {
            Outcome::Response(response) => Ok(response),
            Outcome::Refused(e) => Err(e),
            Outcome::Lost { error, sent } => Err(lost(name(), error, sent)),
            Outcome::Failed { error, sent } => Err(ReconnectError::Request {
                name: name(),
                source: error,
                sent,
            }),
        }
    }

    /// Sends an idempotent `request`: if its connection is lost before the response
    /// arrives, it is sent again on the next connection (following the offline policy),
    /// at most `max_replays` times. Use it only for requests that are safe to apply twice.
    ///
    /// # Errors
    /// As [`call`](Self::call). After replays, `ConnectionLost` if any attempt may have
    /// been delivered, else `NotSent`; when a replay could not reach a connection (fail
    /// fast, queue full, deadline, closed), the error is the last lost attempt's.
    pub async fn call_idempotent(
        &self,
        request: C::Request,
    ) -> Result<C::Response, ReconnectError<C::Error>>
    where
        C::Request: Clone,
    {
        let name = || self.shared().name.clone();
        let mut replays = 0;
        let mut maybe_delivered = false;
        let mut last_lost: Option<C::Error> = None;
        loop {
            match self.send_once(request.clone()).await {
                Outcome::Response(response) => return Ok(response),
                Outcome::Failed { error, sent } => {
                    return Err(ReconnectError::Request {
                        name: name(),
                        source: error,
                        sent: sent || maybe_delivered,
                    });
                }
                Outcome::Refused(e) => {
                    return Err(match last_lost {
                        Some(error) => lost(name(), error, maybe_delivered),
                        None => e,
                    });
                }
                Outcome::Lost { error, sent } => {
                    maybe_delivered |= sent;
                    if replays >= self.shared().max_replays {
                        return Err(lost(name(), error, maybe_delivered));
                    }
                    replays += 1;
                    tracing::debug!(
                        name = %self.shared().name,
                        replay = replays,
                        error = &error as &(dyn std::error::Error + 'static),
                        "reconnect: replaying an idempotent request",
                    );
                    last_lost = Some(error);
                }
            }
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.shared().state.borrow().clone()
    }

    /// A receiver that sees every state change (intermediate states may be skipped if
    /// you read slower than they change; the latest is always there).
    pub fn state_changes(&self) -> watch::Receiver<State> {
        self.shared().state.subscribe()
    }

    /// How many requests wait in the offline queue.
    pub fn queued(&self) -> usize {
        self.shared().inner().queue.len()
    }

    /// The name given in the config.
    pub fn name(&self) -> &str {
        &self.shared().name
    }

    /// Whether it is closed for good.
    pub fn is_closed(&self) -> bool {
        self.shared().inner().closed.is_some()
    }

    /// Closes for good: queued requests fail with [`ReconnectError::Closed`] before this
    /// returns, the live connection is closed (its in-flight requests fail as the
    /// connection reports them: not sent or lost), and the background task exits.
    /// Idempotent.
    pub fn close(&self) {
        self.shared().shutdown(CloseReason::Requested);
    }

    async fn send_once(&self, request: C::Request) -> Outcome<C> {
        let shared = self.shared();
        let (live, result) = match route(shared, request) {
            Route::Refused(e) => return Outcome::Refused(e),
            Route::Direct(live, request) => {
                let result = live.call_tracked(request).await;
                (live, result)
            }
            Route::Queued {
                ticket,
                reply,
                deadline,
            } => match wait_queued(shared, ticket, reply, deadline).await {
                Ok(Started { live, call }) => (live, call.await),
                Err(e) => return Outcome::Refused(e),
            },
        };
        match result {
            Ok(response) => Outcome::Response(response),
            Err(error) => {
                let sent = error.was_sent();
                if live.conn.is_closed() {
                    Outcome::Lost { error, sent }
                } else {
                    Outcome::Failed { error, sent }
                }
            }
        }
    }
}

/// A `Reconnect` is itself a [`Connection`], so layers stack (a pool of reconnecting
/// connections). Its calls are never replayed ([`call`](Reconnect::call)); it is closed
/// only when closed for good, not while reconnecting.
impl<C: Connection> Connection for Reconnect<C> {
    type Request = C::Request;
    type Response = C::Response;
    type Error = ReconnectError<C::Error>;

    async fn call(&self, request: C::Request) -> Result<C::Response, Self::Error> {
        Reconnect::call(self, request).await
    }

    fn is_closed(&self) -> bool {
        Reconnect::is_closed(self)
    }

    async fn closed(&self) {
        let mut states = self.state_changes();
        let _ = states.wait_for(State::is_closed).await;
    }

    fn close(&self) {
        Reconnect::close(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Backoff, FramedConnection};
    use tokio::time::Instant;

    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}

    /// The layers above (a pool, the facade's `tower::Service`) need shareable handles and
    /// `Send` futures; this fails to compile if a change loses either.
    #[allow(dead_code)]
    fn handles_are_send_sync_and_futures_send(
        conn: Reconnect<FramedConnection<String, String>>,
        framed: FramedConnection<String, String>,
        backoff: Backoff,
    ) {
        send_sync(&conn);
        send(&conn.call(String::new()));
        send(&conn.call_idempotent(String::new()));
        send(&Connection::closed(&conn));
        send_sync(&framed);
        send(&framed.call(String::new()));
        send_sync(&backoff);
    }

    #[test]
    fn state_helpers() {
        assert!(State::Connected.is_connected());
        assert!(!State::Connecting { attempt: 1 }.is_connected());
        assert!(State::Closed(CloseReason::Requested).is_closed());
        assert!(
            !State::BackingOff {
                attempt: 1,
                until: Instant::now()
            }
            .is_closed()
        );
    }
}
