//! A scripted server and connection, shared by the state machine's tests: every request's
//! fate is in its text (`hang`, `kill`, `notsent`, `reject`, `slow:N`, `flaky:..`, `panic`).
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beamline_reconnect::{
    BackoffConfig, Connect, Connection, HealthCheck, Jitter, OfflinePolicy, Reconnect,
    ReconnectConfig, ReconnectError, State, WasSent,
};
use tokio::sync::watch;
use tokio::time::{Instant, sleep};

pub(crate) const MS: Duration = Duration::from_millis(1);

// ---------------------------------------------------------------------------------------
// A scripted server and connection.

#[derive(Debug)]
pub(crate) enum MockError {
    /// Never written.
    NotSent,
    /// Written, then the connection died.
    Lost,
    /// The server rejected this request; the connection stays up.
    Rejected,
}

impl fmt::Display for MockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for MockError {}

impl WasSent for MockError {
    fn was_sent(&self) -> bool {
        !matches!(self, MockError::NotSent)
    }
}

/// Code a test runs inside a connection's `call`.
pub(crate) type Hook = Arc<dyn Fn(&str) + Send + Sync>;

#[derive(Default)]
pub(crate) struct Server {
    pub(crate) up: AtomicBool,
    /// Connect attempts never complete (a blackholed address).
    pub(crate) hang_connects: AtomicBool,
    /// Pings are written but never answered (a half-open connection).
    pub(crate) ignore_pings: AtomicBool,
    pub(crate) attempts: Mutex<Vec<Instant>>,
    /// Every request written, with the connection it went to.
    pub(crate) delivered: Mutex<Vec<(usize, String)>>,
    pub(crate) conns: Mutex<Vec<MockConn>>,
    /// `flaky:` requests already seen once.
    pub(crate) seen: Mutex<HashSet<String>>,
    /// Connect attempts panic (a connector with a bug).
    pub(crate) panic_connects: AtomicBool,
    /// Runs at the first poll of every call, before anything else: user code the caller of
    /// `call` runs (the driver, for a queued request).
    pub(crate) on_call: Mutex<Option<Hook>>,
}

impl Server {
    pub(crate) fn new(up: bool) -> Arc<Self> {
        let s = Self::default();
        s.up.store(up, Ordering::SeqCst);
        Arc::new(s)
    }

    pub(crate) fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }

    /// Kills the newest connection (the server side goes away).
    pub(crate) fn kill_current(&self) {
        if let Some(c) = self.conns.lock().unwrap().last() {
            c.close();
        }
    }

    pub(crate) fn attempt_offsets(&self, t0: Instant) -> Vec<Duration> {
        self.attempts
            .lock()
            .unwrap()
            .iter()
            .map(|t| *t - t0)
            .collect()
    }

    pub(crate) fn delivered(&self) -> Vec<String> {
        self.delivered
            .lock()
            .unwrap()
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }

    pub(crate) fn connections(&self) -> usize {
        self.conns.lock().unwrap().len()
    }
}

#[derive(Clone)]
pub(crate) struct MockConn {
    pub(crate) id: usize,
    pub(crate) server: Arc<Server>,
    pub(crate) closed: Arc<watch::Sender<bool>>,
}

impl Connection for MockConn {
    type Request = String;
    type Response = String;
    type Error = MockError;

    async fn call(&self, request: String) -> Result<String, MockError> {
        let hook = self.server.on_call.lock().unwrap().clone();
        if let Some(hook) = hook {
            hook(&request);
        }
        if request == "panic" {
            // A connection with a bug: it panics when the call starts.
            panic!("call exploded");
        }
        if self.is_closed() {
            return Err(MockError::NotSent);
        }
        if request == "notsent" {
            // The connection dies while the request still sits in its write buffer.
            self.close();
            return Err(MockError::NotSent);
        }
        self.server
            .delivered
            .lock()
            .unwrap()
            .push((self.id, request.clone()));
        let first_time = self.server.seen.lock().unwrap().insert(request.clone());
        let ignore = request == "ping" && self.server.ignore_pings.load(Ordering::SeqCst);
        if request == "kill" || (request.starts_with("flaky") && first_time) {
            self.close();
            return Err(MockError::Lost);
        }
        if request == "reject" {
            return Err(MockError::Rejected);
        }
        if request == "hang" || ignore {
            self.closed().await;
            return Err(MockError::Lost);
        }
        if let Some(ms) = request.strip_prefix("slow:") {
            sleep(MS * ms.parse::<u32>().unwrap()).await;
        }
        Ok(format!("ok:{request}"))
    }

    fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    async fn closed(&self) {
        let mut rx = self.closed.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    fn close(&self) {
        self.closed.send_replace(true);
    }
}

pub(crate) fn connector(server: Arc<Server>) -> impl Connect<Connection = MockConn> + Clone + Sync {
    move || {
        let server = server.clone();
        async move {
            server.attempts.lock().unwrap().push(Instant::now());
            if server.panic_connects.load(Ordering::SeqCst) {
                panic!("connector exploded");
            }
            if server.hang_connects.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            if !server.up.load(Ordering::SeqCst) {
                return Err(io::Error::from(io::ErrorKind::ConnectionRefused));
            }
            let mut conns = server.conns.lock().unwrap();
            let conn = MockConn {
                id: conns.len(),
                server: server.clone(),
                closed: Arc::new(watch::Sender::new(false)),
            };
            conns.push(conn.clone());
            Ok(conn)
        }
    }
}

/// Exponential 100 ms, ×2, 10 s cap, no jitter: delays 100, 200, 400, 800 ms...
pub(crate) fn exact_backoff() -> BackoffConfig {
    BackoffConfig::exponential(MS * 100, 2.0, Duration::from_secs(10)).jitter(Jitter::None)
}

pub(crate) fn queue(max: usize, deadline: Duration) -> ReconnectConfig {
    ReconnectConfig::new(OfflinePolicy::Queue { max, deadline })
        .name("mock")
        .backoff(exact_backoff())
}

/// Awaits `fut`, failing the test (instead of hanging it) if the virtual clock passes an
/// hour first: a missing capability is a failure, not a stuck test.
pub(crate) async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(3600), fut)
        .await
        .expect("still waiting after an hour of virtual time")
}

pub(crate) async fn wait_for(conn: &Reconnect<MockConn>, want: impl Fn(&State) -> bool) -> State {
    let mut rx = conn.state_changes();
    within(rx.wait_for(|s| want(s))).await.unwrap().clone()
}

pub(crate) async fn connected(conn: &Reconnect<MockConn>) {
    wait_for(conn, State::is_connected).await;
}

pub(crate) fn spawn_call(
    conn: &Reconnect<MockConn>,
    request: &str,
) -> tokio::task::JoinHandle<Result<String, ReconnectError<MockError>>> {
    let (conn, request) = (conn.clone(), request.to_string());
    tokio::spawn(async move { conn.call(request).await })
}

pub(crate) async fn start(server: &Arc<Server>, config: ReconnectConfig) -> Reconnect<MockConn> {
    Reconnect::start(connector(server.clone()), config)
        .await
        .unwrap()
}

/// A server that is up and a connection to it, connected.
pub(crate) async fn up_and_connected(
    config: ReconnectConfig,
) -> (Arc<Server>, Reconnect<MockConn>) {
    let server = Server::new(true);
    let conn = start(&server, config).await;
    connected(&conn).await;
    (server, conn)
}

/// [`up_and_connected`] with a ping every second that must be answered within 500 ms.
pub(crate) async fn up_with_health_check(ignore_pings: bool) -> (Arc<Server>, Reconnect<MockConn>) {
    let server = Server::new(true);
    server.ignore_pings.store(ignore_pings, Ordering::SeqCst);
    let check = HealthCheck::new(Duration::from_secs(1), MS * 500, || "ping".to_string());
    let conn = Reconnect::start_with_health_check(
        connector(server.clone()),
        queue(10, Duration::from_secs(5)),
        check,
    )
    .await
    .unwrap();
    connected(&conn).await;
    (server, conn)
}

pub(crate) fn assert_lost(err: &ReconnectError<MockError>) {
    assert!(
        matches!(err, ReconnectError::ConnectionLost { .. }),
        "want ConnectionLost, got {err}"
    );
    assert!(err.was_sent());
}

/// Keeps the deliberate panics of the mock connector and connection (`connector exploded`,
/// `call exploded`) out of the test output; any other panic still prints.
pub(crate) fn quiet_panics() {
    beamline_testkit::quiet_panics(|message| message.ends_with("exploded"));
}
