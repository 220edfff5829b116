//! beamline's counters and gauges through the [`metrics`] facade (feature `metrics`).
//!
//! Every layer already keeps its own numbers — [`ServerStats`](crate::server::ServerStats),
//! [`PoolMetrics`](crate::pool::PoolMetrics), [`MuxStats`](crate::mux::MuxStats), a
//! reconnecting connection's [`State`](crate::reconnect::State) — as snapshots read without
//! a lock on the hot path. A [`Publisher`] reads the snapshots of the sources you give it
//! and writes them to whatever recorder the application installed (Prometheus, StatsD,
//! OpenTelemetry, ... through their `metrics` exporters): nothing is recorded per request,
//! so publishing costs nothing between two publishes.
//!
//! Every metric carries one label, `name`, the name you gave the source. Counters are
//! monotonic (written with [`Counter::absolute`](metrics::Counter::absolute)), gauges are
//! the value at the publish; the names follow Prometheus's conventions (`_total` for
//! counters, base units). The full list is [`METRICS`].
//!
//! # Guarantees
//! - Reading a source never blocks a request path: the server's and mux's counters are
//!   atomics, the pool's snapshot is one short lock (the one its checkouts take).
//! - A publish that panics (a recorder's code, say) ends the [`PublisherTask`] with
//!   [`PublisherError::Panicked`] carrying the panic's message; nothing else is affected
//!   (`publisher_task_reports_a_panicking_source`).
//! - A publisher keeps only what its sources need to be read: a server's counters (not the
//!   server: dropping the [`ServerHandle`](crate::server::ServerHandle) still stops it), or a
//!   clone of a pool, connection or client handle, which keeps that resource open until the
//!   publisher (or its task) is dropped.
//!
//! # Example
//! ```no_run
//! # #[cfg(all(feature = "server", feature = "client"))]
//! # async fn run(server: beamline::server::ServerHandle, client: beamline::Client<bytes::Bytes, bytes::Bytes>) {
//! use std::time::Duration;
//! use beamline::metrics::Publisher;
//!
//! // With a recorder installed first, e.g.
//! // metrics_exporter_prometheus::PrometheusBuilder::new().install()?
//! let task = Publisher::new()
//!     .server("edge", &server)
//!     .client("kv", &client)
//!     .spawn(Duration::from_secs(5));
//! # drop(task);
//! # }
//! ```

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ::metrics::{Unit, counter, describe_counter, describe_gauge, gauge};
use beamline_failure::panic_message;

/// Every metric a [`Publisher`] may write: its name, whether it is a counter, and what it
/// counts. Each has the label `name`; the pool's closed-connection counter also has
/// `reason`.
pub const METRICS: &[(&str, Kind, &str)] = &[
    // server
    (
        "beamline_server_connections_accepted_total",
        Kind::Counter,
        "connections accepted from the kernel, rejected ones included",
    ),
    (
        "beamline_server_connections_active",
        Kind::Gauge,
        "connection processes running now",
    ),
    (
        "beamline_server_connections_rejected_total",
        Kind::Counter,
        "connections accepted and closed at once (over a cap, stopping, backlog at close)",
    ),
    (
        "beamline_server_connections_closed_total",
        Kind::Counter,
        "connections that ended normally",
    ),
    (
        "beamline_server_connections_errored_total",
        Kind::Counter,
        "connections that ended with an error (handler error, reset, send timeout, read buffer limit)",
    ),
    (
        "beamline_server_connections_panicked_total",
        Kind::Counter,
        "connections whose handler panicked",
    ),
    (
        "beamline_server_connections_killed_total",
        Kind::Counter,
        "connections killed (drain deadline, lifetime, handle dropped)",
    ),
    (
        "beamline_server_handshake_failures_total",
        Kind::Counter,
        "TLS handshakes and PROXY headers that failed",
    ),
    (
        "beamline_server_accept_errors_total",
        Kind::Counter,
        "accept() calls that failed",
    ),
    (
        "beamline_server_send_timeouts_total",
        Kind::Counter,
        "connections whose peer stopped reading for the send timeout",
    ),
    (
        "beamline_server_proxy_failures_total",
        Kind::Counter,
        "connections closed for their PROXY header",
    ),
    (
        "beamline_server_received_bytes_total",
        Kind::Counter,
        "bytes received from peers (after TLS)",
    ),
    (
        "beamline_server_sent_bytes_total",
        Kind::Counter,
        "bytes sent to peers (before TLS)",
    ),
    // pool
    (
        "beamline_pool_max_size",
        Kind::Gauge,
        "the pool's configured maximum",
    ),
    ("beamline_pool_connections", Kind::Gauge, "open connections"),
    (
        "beamline_pool_connections_idle",
        Kind::Gauge,
        "open connections nobody uses",
    ),
    (
        "beamline_pool_connections_in_use",
        Kind::Gauge,
        "open connections with at least one user",
    ),
    (
        "beamline_pool_users",
        Kind::Gauge,
        "checkouts holding a connection",
    ),
    (
        "beamline_pool_connecting",
        Kind::Gauge,
        "connect attempts under way or backing off",
    ),
    (
        "beamline_pool_waiters",
        Kind::Gauge,
        "checkouts queued for a connection",
    ),
    (
        "beamline_pool_checkouts_total",
        Kind::Counter,
        "successful checkouts",
    ),
    (
        "beamline_pool_checkout_timeouts_total",
        Kind::Counter,
        "checkouts that timed out",
    ),
    (
        "beamline_pool_connections_created_total",
        Kind::Counter,
        "connections opened",
    ),
    (
        "beamline_pool_connect_failures_total",
        Kind::Counter,
        "connect attempts that failed or timed out",
    ),
    (
        "beamline_pool_connections_closed_total",
        Kind::Counter,
        "connections closed, by reason (label reason)",
    ),
    (
        "beamline_pool_connections_detached_total",
        Kind::Counter,
        "connections taken out of the pool by detach",
    ),
    // mux
    (
        "beamline_mux_in_flight",
        Kind::Gauge,
        "requests admitted and not yet answered",
    ),
    (
        "beamline_mux_abandoned",
        Kind::Gauge,
        "abandoned requests still waiting for their late answers",
    ),
    (
        "beamline_mux_late_replies_total",
        Kind::Counter,
        "replies for abandoned requests, dropped",
    ),
    (
        "beamline_mux_stray_replies_total",
        Kind::Counter,
        "replies for ids no request held, dropped",
    ),
    (
        "beamline_mux_timed_out_total",
        Kind::Counter,
        "requests whose deadline passed",
    ),
    (
        "beamline_mux_cancelled_total",
        Kind::Counter,
        "requests whose caller gave up",
    ),
    (
        "beamline_mux_quarantine_expired_total",
        Kind::Counter,
        "quarantined ids released by age",
    ),
    (
        "beamline_mux_abandon_expired_total",
        Kind::Counter,
        "FIFO connections wedged by a reply that never came",
    ),
    // reconnect
    (
        "beamline_reconnect_connected",
        Kind::Gauge,
        "1 while the connection is up, else 0",
    ),
    (
        "beamline_reconnect_attempt",
        Kind::Gauge,
        "the connect attempt under way or next (0 while connected)",
    ),
    (
        "beamline_reconnect_closed",
        Kind::Gauge,
        "1 once the connection is closed for good",
    ),
    (
        "beamline_reconnect_queued",
        Kind::Gauge,
        "requests waiting in the offline queue",
    ),
    // supervised client
    (
        "beamline_client_running",
        Kind::Gauge,
        "1 while a supervised client has a running incarnation",
    ),
];

/// Whether a metric is a counter (monotonic) or a gauge (a value now).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::exhaustive_enums)] // closed: the two kinds the table uses
pub enum Kind {
    /// Only goes up; written with its running total.
    Counter,
    /// The value at the publish.
    Gauge,
}

type Source = Box<dyn Fn() + Send + Sync>;

/// Reads the snapshots of its sources and writes them to the installed `metrics` recorder.
///
/// Build it with one call per source, then [`publish`](Self::publish) when you like (a
/// scrape handler) or [`spawn`](Self::spawn) a task that publishes on an interval.
pub struct Publisher {
    sources: Vec<(String, Source)>,
    /// Whether the descriptions were written (by this publisher's first publish).
    described: AtomicBool,
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field(
                "sources",
                &self.sources.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Default for Publisher {
    fn default() -> Self {
        Self::new()
    }
}

impl Publisher {
    /// A publisher with no sources.
    pub fn new() -> Self {
        Publisher {
            sources: Vec::new(),
            described: AtomicBool::new(false),
        }
    }

    /// The names given so far, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sources.iter().map(|(name, _)| name.as_str())
    }

    /// A source of your own: `publish` is called with the source's `name` on every publish
    /// and writes through the `metrics` macros itself.
    pub fn source(
        mut self,
        name: impl Into<String>,
        publish: impl Fn(&str) + Send + Sync + 'static,
    ) -> Self {
        let name = name.into();
        let label = name.clone();
        self.sources
            .push((name, Box::new(move || publish(label.as_str()))));
        self
    }

    /// A server's counters (`beamline_server_*`). Keeps only the counters, not the server.
    #[cfg(feature = "server")]
    pub fn server(self, name: impl Into<String>, server: &crate::server::ServerHandle) -> Self {
        let reader = server.stats_reader();
        self.source(name, move |name| publish_server(name, &reader.snapshot()))
    }

    /// An exclusive pool's gauges and counters (`beamline_pool_*`).
    #[cfg(feature = "pool")]
    pub fn pool<M: crate::pool::Manager>(
        self,
        name: impl Into<String>,
        pool: &crate::pool::Pool<M>,
    ) -> Self {
        let pool = pool.clone();
        self.source(name, move |name| publish_pool(name, &pool.metrics()))
    }

    /// A shared pool's gauges and counters (`beamline_pool_*`).
    #[cfg(feature = "pool")]
    pub fn shared_pool<M: crate::pool::Manager>(
        self,
        name: impl Into<String>,
        pool: &crate::pool::SharedPool<M>,
    ) -> Self
    where
        M::Connection: Sync,
    {
        let pool = pool.clone();
        self.source(name, move |name| publish_pool(name, &pool.metrics()))
    }

    /// A multiplexed connection's counters (`beamline_mux_*`).
    #[cfg(feature = "mux")]
    pub fn mux<Req: Send + 'static, Resp: Send + 'static>(
        self,
        name: impl Into<String>,
        mux: &crate::mux::Client<Req, Resp>,
    ) -> Self {
        let mux = mux.clone();
        self.source(name, move |name| publish_mux(name, &mux.stats()))
    }

    /// A reconnecting connection's state (`beamline_reconnect_*`).
    #[cfg(feature = "reconnect")]
    pub fn reconnect<C: crate::reconnect::Connection>(
        self,
        name: impl Into<String>,
        connection: &crate::reconnect::Reconnect<C>,
    ) -> Self {
        let connection = connection.clone();
        self.source(name, move |name| publish_reconnect(name, &connection))
    }

    /// The composed client, by its stack: a single connection's state
    /// (`beamline_reconnect_*`), a pool's gauges and counters (`beamline_pool_*`), and for a
    /// supervised client whether an incarnation runs (`beamline_client_running`) and the
    /// running one's numbers.
    #[cfg(feature = "client")]
    pub fn client<Req: Send + 'static, Resp: Send + 'static>(
        self,
        name: impl Into<String>,
        client: &crate::Client<Req, Resp>,
    ) -> Self {
        let stack = client.stack().clone();
        self.source(name, move |name| publish_stack(name, &stack))
    }

    /// Writes every source's current numbers to the installed recorder (and, on this
    /// publisher's first publish, the metrics' descriptions). Without a recorder it does
    /// nothing.
    ///
    /// # Panics
    /// If the recorder panics; [`spawn`](Self::spawn) catches that and reports it.
    pub fn publish(&self) {
        if !self.described.swap(true, Ordering::Relaxed) {
            describe();
        }
        for (_, source) in &self.sources {
            source();
        }
    }

    /// Publishes now and then every `every`, on a tokio task, until the returned handle is
    /// dropped (or [`stop`](PublisherTask::stop)ped). A publish that panics ends the task,
    /// and [`PublisherTask::join`] reports it.
    ///
    /// # Panics
    /// Outside a tokio runtime, or if `every` is zero.
    pub fn spawn(self, every: Duration) -> PublisherTask {
        assert!(
            !every.is_zero(),
            "a metrics publisher needs a non-zero interval"
        );
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| self.publish())) {
                    return PublisherError::Panicked(panic_message(panic.as_ref()).to_string());
                }
            }
        });
        PublisherTask { task: Some(task) }
    }
}

/// The task [`Publisher::spawn`] started. Dropping it stops the task.
#[derive(Debug)]
pub struct PublisherTask {
    task: Option<tokio::task::JoinHandle<PublisherError>>,
}

impl PublisherTask {
    /// Stops publishing (what was published stays in the recorder).
    pub fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Whether the task has ended (only a panic ends it on its own).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits for the task to end, which it does only when a publish panicked, and says why.
    pub async fn join(mut self) -> PublisherError {
        let Some(task) = self.task.take() else {
            return PublisherError::Stopped;
        };
        match task.await {
            Ok(error) => error,
            Err(e) if e.is_panic() => {
                PublisherError::Panicked(panic_message(e.into_panic().as_ref()).to_string())
            }
            Err(_) => PublisherError::Stopped,
        }
    }
}

impl Drop for PublisherTask {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Why a [`PublisherTask`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublisherError {
    /// A publish panicked (the recorder, or a source of your own); the message.
    Panicked(String),
    /// The task was aborted from outside (its runtime shut down).
    Stopped,
}

impl fmt::Display for PublisherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublisherError::Panicked(message) => {
                write!(f, "a metrics publish panicked: {message}")
            }
            PublisherError::Stopped => f.write_str("the metrics publisher was stopped"),
        }
    }
}

impl std::error::Error for PublisherError {}

fn describe() {
    for &(metric, kind, help) in METRICS {
        let unit = if metric.ends_with("_bytes_total") {
            Some(Unit::Bytes)
        } else {
            None
        };
        match (kind, unit) {
            (Kind::Counter, Some(unit)) => describe_counter!(metric, unit, help),
            (Kind::Counter, None) => describe_counter!(metric, help),
            (Kind::Gauge, _) => describe_gauge!(metric, help),
        }
    }
}

#[cfg_attr(
    not(any(feature = "server", feature = "pool", feature = "mux")),
    allow(dead_code)
)]
fn set_counter(metric: &'static str, name: &str, value: u64) {
    counter!(metric, "name" => name.to_owned()).absolute(value);
}

#[cfg_attr(
    not(any(
        feature = "server",
        feature = "pool",
        feature = "mux",
        feature = "reconnect"
    )),
    allow(dead_code)
)]
fn set_gauge(metric: &'static str, name: &str, value: f64) {
    gauge!(metric, "name" => name.to_owned()).set(value);
}

#[cfg(feature = "server")]
#[allow(clippy::cast_precision_loss)]
fn publish_server(name: &str, s: &crate::server::ServerStats) {
    set_gauge("beamline_server_connections_active", name, s.active as f64);
    for (metric, value) in [
        ("beamline_server_connections_accepted_total", s.accepted),
        ("beamline_server_connections_rejected_total", s.rejected),
        ("beamline_server_connections_closed_total", s.closed),
        ("beamline_server_connections_errored_total", s.errored),
        ("beamline_server_connections_panicked_total", s.panicked),
        ("beamline_server_connections_killed_total", s.killed),
        (
            "beamline_server_handshake_failures_total",
            s.handshake_failures,
        ),
        ("beamline_server_accept_errors_total", s.accept_errors),
        ("beamline_server_send_timeouts_total", s.send_timeouts),
        ("beamline_server_proxy_failures_total", s.proxy_failures),
        ("beamline_server_received_bytes_total", s.bytes_in),
        ("beamline_server_sent_bytes_total", s.bytes_out),
    ] {
        set_counter(metric, name, value);
    }
}

#[cfg(feature = "pool")]
#[allow(clippy::cast_precision_loss)]
fn publish_pool(name: &str, m: &crate::pool::PoolMetrics) {
    for (metric, value) in [
        ("beamline_pool_max_size", m.max_size),
        ("beamline_pool_connections", m.size),
        ("beamline_pool_connections_idle", m.idle),
        ("beamline_pool_connections_in_use", m.in_use),
        ("beamline_pool_users", m.users),
        ("beamline_pool_connecting", m.connecting),
        ("beamline_pool_waiters", m.waiters),
    ] {
        set_gauge(metric, name, value as f64);
    }
    for (metric, value) in [
        ("beamline_pool_checkouts_total", m.checkouts),
        ("beamline_pool_checkout_timeouts_total", m.timeouts),
        ("beamline_pool_connections_created_total", m.created),
        ("beamline_pool_connect_failures_total", m.connect_failures),
        ("beamline_pool_connections_detached_total", m.detached),
    ] {
        set_counter(metric, name, value);
    }
    for (reason, count) in m.closed.iter() {
        counter!(
            "beamline_pool_connections_closed_total",
            "name" => name.to_owned(),
            "reason" => reason.name()
        )
        .absolute(count);
    }
}

#[cfg(feature = "mux")]
#[allow(clippy::cast_precision_loss)]
fn publish_mux(name: &str, s: &crate::mux::MuxStats) {
    set_gauge("beamline_mux_in_flight", name, s.in_flight as f64);
    set_gauge("beamline_mux_abandoned", name, s.abandoned as f64);
    for (metric, value) in [
        ("beamline_mux_late_replies_total", s.late_replies),
        ("beamline_mux_stray_replies_total", s.stray_replies),
        ("beamline_mux_timed_out_total", s.timed_out),
        ("beamline_mux_cancelled_total", s.cancelled),
        (
            "beamline_mux_quarantine_expired_total",
            s.quarantine_expired,
        ),
        ("beamline_mux_abandon_expired_total", s.abandon_expired),
    ] {
        set_counter(metric, name, value);
    }
}

#[cfg(feature = "reconnect")]
#[allow(clippy::cast_precision_loss)]
fn publish_reconnect<C: crate::reconnect::Connection>(
    name: &str,
    connection: &crate::reconnect::Reconnect<C>,
) {
    use crate::reconnect::State;
    let state = connection.state();
    let attempt = match &state {
        State::Connecting { attempt } | State::BackingOff { attempt, .. } => *attempt,
        // Connected, closed, or a state a later version adds: no attempt under way.
        _ => 0,
    };
    let up = |yes: bool| if yes { 1.0 } else { 0.0 };
    set_gauge(
        "beamline_reconnect_connected",
        name,
        up(state.is_connected()),
    );
    set_gauge("beamline_reconnect_attempt", name, f64::from(attempt));
    set_gauge(
        "beamline_reconnect_closed",
        name,
        up(matches!(state, State::Closed(_))),
    );
    set_gauge(
        "beamline_reconnect_queued",
        name,
        connection.queued() as f64,
    );
}

#[cfg(feature = "client")]
fn publish_stack<Req: Send + 'static, Resp: Send + 'static>(
    name: &str,
    stack: &crate::Stack<Req, Resp>,
) {
    use crate::Stack;
    match stack {
        Stack::Single(connection) => publish_reconnect(name, connection),
        Stack::Exclusive(pool) => publish_pool(name, &pool.metrics()),
        Stack::Shared(pool) => publish_pool(name, &pool.metrics()),
        #[cfg(feature = "process")]
        Stack::Supervised(supervised) => {
            let current = supervised.current();
            set_gauge(
                "beamline_client_running",
                name,
                if current.is_some() { 1.0 } else { 0.0 },
            );
            if let Some(stack) = current {
                publish_stack(name, &stack);
            }
        }
        // A stack a later version adds: nothing to read yet.
        _ => {}
    }
}
