//! The `redis_client` example's logic: a Redis client that lives in a supervision tree, the
//! way an Elixir application starts Redix. The connections are supervised processes (one
//! pipelined `beamline::Client` each, in FIFO mode), the callers that use them are
//! processes too, and every reply is checked, every failure classified.
//!
//! ```text
//! app          Supervisor, rest_for_one: the callers depend on the connections
//! ├── redis    Supervisor, one_for_one: connections redis-0 .. redis-N-1, each a Client
//! └── callers  DynamicSupervisor: the callers, started by `run`
//! ```
//!
//! A connection that loses redis exits (`exit_on_disconnection`, as with Redix) with a typed
//! reason, and its supervisor starts a new one, which reconnects with a jittered backoff;
//! meanwhile callers' requests wait for it in the offline queue. A redis that stays away
//! makes each connection give up after the outage allowance, and the new ones too, until
//! their supervisor's restart intensity is exceeded (about two allowances after redis
//! left); then the application stops with that error instead of retrying in silence.
//!
//! It lives here (not in `examples/redis_client.rs`) so that a test can run it in-process
//! against a real `redis-server`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use beamline::process::{
    ChildSpec, Context, DynamicSupervisor, DynamicSupervisorConfig, Intensity, StartError,
    Strategy, Supervisor, SupervisorSpec,
};
use beamline::reconnect::{BackoffConfig, OfflinePolicy, ReconnectConfig};
use beamline::resp::{Command, Value};
use beamline::{Client, ClientError, WasSent};
use tokio::time::Instant;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The redis server, `host:port`.
    pub addr: String,
    /// Concurrent callers, spread over the connections.
    pub callers: usize,
    /// Supervised connections (`redis-0` .. `redis-N-1`).
    pub connections: usize,
    /// Requests in flight on one connection; callers beyond wait their turn.
    pub per_connection: usize,
    /// How long to run.
    pub duration: Duration,
    /// At most this many SET/GET pairs per caller (a bound for tests).
    pub max_pairs: u64,
    /// How long a connection keeps reconnecting to a redis that is away before it gives up
    /// (and exits, for its supervisor to decide).
    pub outage: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            addr: "127.0.0.1:6379".to_owned(),
            callers: 64,
            connections: 4,
            per_connection: 32,
            duration: Duration::from_secs(10),
            max_pairs: u64::MAX,
            outage: Duration::from_secs(10),
        }
    }
}

/// Counts of outcomes, shared by the callers and whoever reports progress.
#[derive(Debug, Default)]
pub struct Tally {
    /// Requests made.
    pub made: AtomicU64,
    /// Replies that matched what their caller expected.
    pub ok: AtomicU64,
    /// Failures whose request certainly never reached redis (safe to retry).
    pub not_sent: AtomicU64,
    /// Failures whose request may have been applied (the connection died after writing it).
    pub maybe_sent: AtomicU64,
    /// Replies that were not the caller's own. Always 0; counted to prove it.
    pub wrong: AtomicU64,
}

impl Tally {
    /// `(ok, not_sent, maybe_sent, wrong)` now.
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.not_sent.load(Ordering::Relaxed),
            self.maybe_sent.load(Ordering::Relaxed),
            self.wrong.load(Ordering::Relaxed),
        )
    }

    fn failed(&self, e: &ClientError) {
        let counter = if e.was_sent() {
            &self.maybe_sent
        } else {
            &self.not_sent
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The running application: its supervision tree and the handles to its connections.
#[derive(Debug)]
pub struct App {
    /// The root of the tree; shutting it down stops the callers, then the connections.
    pub sup: Supervisor,
    /// The `redis` supervisor, whose children are the connections.
    pub redis: Supervisor,
    /// The connections' handles, valid across their restarts.
    pub clients: Vec<Client<Command, Value>>,
    /// Where `run` starts the callers.
    pub callers: DynamicSupervisor,
}

/// One connection as a supervised process: FIFO (RESP has no request ids), `per_connection`
/// requests pipelined, a jittered backoff that gives up after `outage`, requests made while
/// it is down held in a bounded queue for up to 2 s, and an exit when the connection is lost
/// (its supervisor starts the next one).
fn connection(options: &Options, n: usize) -> (ChildSpec<Infallible>, Client<Command, Value>) {
    let addr = &options.addr;
    let backoff =
        BackoffConfig::exponential(Duration::from_millis(20), 2.0, Duration::from_secs(1))
            .max_elapsed(options.outage);
    let reconnect = ReconnectConfig::new(OfflinePolicy::Queue {
        max: 4_096,
        deadline: Duration::from_secs(2),
    })
    .backoff(backoff)
    .exit_on_disconnection(true);
    Client::builder(addr.as_str())
        .resp()
        .name(format!("redis-{n} {addr}"))
        .max_in_flight(options.per_connection)
        .timeout(Duration::from_secs(2))
        .reconnect(reconnect)
        .child_spec(format!("redis-{n}"))
}

/// Starts the application's supervision tree. The connections start (and connect in the
/// background) before the callers' supervisor does.
///
/// # Errors
/// [`StartError`] if a part of the tree did not start.
pub async fn start(options: &Options) -> Result<App, StartError> {
    // Each connection may exit twice per redis restart (the loss, and a reconnect into the
    // dying server). A redis that stays away makes each incarnation give up after `outage`:
    // the third round of exits is one too many, so the supervisor gives up about two
    // outages after redis left.
    let mut redis = SupervisorSpec::new(Strategy::OneForOne).intensity(Intensity::new(
        2 * options.connections as u32,
        3 * options.outage,
    ));
    let mut clients = Vec::with_capacity(options.connections);
    for n in 0..options.connections {
        let (spec, client) = connection(options, n);
        redis = redis.child(spec);
        clients.push(client);
    }
    let redis = redis.into_child("redis")?;
    let redis_handle = redis.handle();
    let callers = DynamicSupervisor::new(DynamicSupervisorConfig::new());
    // No restart at the top: when the connections' supervisor gives up, so does the
    // application (its callers could not work anyway), with the reason.
    let sup = Supervisor::start(
        SupervisorSpec::new(Strategy::RestForOne)
            .intensity(Intensity::new(0, Duration::from_secs(1)))
            .child(redis)
            .child(callers.child_spec("callers")),
    )
    .await?;
    Ok(App {
        sup,
        redis: Supervisor::from(redis_handle),
        clients,
        callers,
    })
}

impl App {
    /// How many times the connections have been restarted, in all.
    pub async fn restarts(&self) -> u32 {
        match self.redis.which_children().await {
            Ok(children) => children.iter().map(|c| c.restarts).sum(),
            Err(_) => 0,
        }
    }
}

/// Runs `options.callers` callers for `options.duration` (or `max_pairs` each), counting
/// into `tally`. Each caller is a process under the app's `callers` supervisor, using
/// connection `caller % connections`; it SETs a value only it knows and GETs it back.
pub async fn run(app: &App, options: &Options, tally: Arc<Tally>) {
    let deadline = Instant::now() + options.duration;
    let mut callers = Vec::with_capacity(options.callers);
    for caller in 0..options.callers {
        let client = app.clients[caller % app.clients.len()].clone();
        let tally = tally.clone();
        let max_pairs = options.max_pairs;
        let body = move |_ctx: Context<()>| pairs(client, caller, max_pairs, deadline, tally);
        match app
            .callers
            .start_child(ChildSpec::temporary("caller", body))
        {
            Ok(addr) => callers.push(addr),
            Err(e) => tracing::warn!(%e, "caller not started"),
        }
    }
    for caller in callers {
        caller.exited().await;
    }
}

/// One caller's SET/GET pairs.
async fn pairs(
    client: Client<Command, Value>,
    caller: usize,
    max_pairs: u64,
    deadline: Instant,
    tally: Arc<Tally>,
) -> Result<(), beamline::process::ExitReason> {
    let mut pair = 0;
    while pair < max_pairs && Instant::now() < deadline {
        let key = format!("beamline:example:{caller}");
        let value = format!("{caller}:{pair}");
        pair += 1;
        let set = Command::new("SET").arg(&key).arg(&value);
        tally.made.fetch_add(1, Ordering::Relaxed);
        match client.call(set).await {
            Ok(reply) if reply == Value::ok() => {
                tally.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {
                tally.wrong.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Err(e) => {
                tally.failed(&e);
                continue;
            }
        }
        // A read is idempotent: replayed once if the connection drops under it.
        tally.made.fetch_add(1, Ordering::Relaxed);
        match client.call_idempotent(Command::new("GET").arg(&key)).await {
            Ok(reply) if reply == Value::bulk(value) => {
                tally.ok.fetch_add(1, Ordering::Relaxed);
            }
            // A restart empties redis (no persistence in tests): nil is honest.
            Ok(Value::Null) => {
                tally.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {
                tally.wrong.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tally.failed(&e),
        }
    }
    Ok(())
}
