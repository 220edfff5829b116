//! What `client.rs` and `latency.rs` share: the clients under test, connected to the same
//! `redis-server`, and one checked SET/GET pair through each. Included by both with
//! `#[path]` (it uses the benches' dev-dependencies, which the `beamline_benches` library
//! cannot).
//!
//! Every client is set up for the same work:
//!
//! | | beamline | redis-rs | fred |
//! |---|---|---|---|
//! | request timeout | 500 ms (`.timeout`) | 500 ms (`set_response_timeout`, its default) | 500 ms (`default_command_timeout`) |
//! | `TCP_NODELAY` | on (its default) | on (`TcpSettings::set_nodelay`; off by default) | on (`TcpConfig::nodelay`; the OS default otherwise) |
//! | 1 connection | `Client` in FIFO (RESP) mode | one `MultiplexedConnection` | one `Client` (auto-pipelined) |
//! | 4 connections | shared pool of 4, 16 in flight each | 4 `MultiplexedConnection`s, each caller taking the next in turn per request | `Pool` of 4 (round robin per request) |
//!
//! All run on the bench's two-worker runtime; redis-server is a separate process. A caller
//! checks every reply: SET answers OK, GET answers the caller's own 32-byte value.

use std::sync::Arc;
use std::time::{Duration, Instant};

use beamline::pool::{PoolConfig, Start};
use beamline::process::{Strategy, Supervisor, SupervisorSpec};
use beamline::resp::{Command, Value};
use beamline::{Client, Pooling};
use beamline_testkit::RedisServer;
use bytes::Bytes;
use fred::prelude::{
    Builder, Client as FredClient, ClientLike, Config as FredConfig, KeysInterface,
    Pool as FredPool,
};

#[path = "fred.rs"]
mod fred_setup;
use redis::aio::MultiplexedConnection;
use redis::io::tcp::TcpSettings;
use redis::{AsyncConnectionConfig, IntoConnectionInfo};
use tokio::runtime::Runtime;

/// Every client's request timeout: redis-rs's default, set on all of them.
pub(crate) const TIMEOUT: Duration = Duration::from_millis(500);
/// Connections in the pooled rows.
pub(crate) const POOL: usize = 4;

/// The value caller `caller` writes in pair `pair`: 32 bytes, its own.
pub(crate) fn value(caller: usize, pair: usize) -> String {
    format!("{caller:>8}:{pair:>8}:{:>14}", "beamline-bench")
}

/// Which client, and over how many connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// One `beamline::Client` connection, FIFO (RESP).
    Beamline,
    /// `beamline::Client` over a shared pool of [`POOL`] connections, 16 in flight each.
    BeamlinePooled,
    /// The one-connection `beamline::Client` run as a supervised process
    /// (`Client::child_spec` under a `Supervisor`): each call first reads the running
    /// incarnation from its handle.
    BeamlineSupervised,
    /// One redis-rs `MultiplexedConnection`.
    RedisRs,
    /// [`POOL`] redis-rs `MultiplexedConnection`s, taken in turn.
    RedisRsPooled,
    /// One fred `Client`.
    Fred,
    /// A fred `Pool` of [`POOL`] clients.
    FredPooled,
}

impl Kind {
    /// The criterion function id.
    pub(crate) fn function(self) -> &'static str {
        match self {
            Kind::Beamline => "beamline-fifo",
            Kind::BeamlinePooled => "beamline-fifo-pooled",
            Kind::BeamlineSupervised => "beamline-fifo-supervised",
            Kind::RedisRs => "redis-rs-multiplexed",
            Kind::RedisRsPooled => "redis-rs-4-multiplexed",
            Kind::Fred => "fred",
            Kind::FredPooled => "fred-pool-4",
        }
    }
}

/// A connected client, cheap to clone for each caller.
#[derive(Clone)]
pub(crate) enum Clients {
    Beamline(Client<Command, Value>),
    /// The client and the supervisor that runs it (kept alive as long as the client).
    BeamlineSupervised {
        client: Client<Command, Value>,
        _tree: Arc<Supervisor>,
    },
    RedisRs(Vec<MultiplexedConnection>),
    Fred(FredClient),
    FredPool(FredPool),
}

fn redis_rs(redis: &RedisServer) -> redis::RedisResult<redis::Client> {
    let info = redis
        .url()
        .into_connection_info()?
        .set_tcp_settings(TcpSettings::default().set_nodelay(true));
    redis::Client::open(info)
}

fn fred_builder(redis: &RedisServer) -> Builder {
    let config = FredConfig::from_url(&redis.url()).unwrap();
    fred_setup::equal_work(config, TIMEOUT)
}

impl Clients {
    /// `kind` connected to `redis` (every connection open before it returns).
    pub(crate) fn connect(rt: &Runtime, redis: &RedisServer, kind: Kind) -> Clients {
        rt.block_on(async {
            match kind {
                Kind::Beamline | Kind::BeamlinePooled => {
                    let mut builder = Client::builder(redis.addr()).resp().timeout(TIMEOUT);
                    if kind == Kind::BeamlinePooled {
                        let pool = PoolConfig::new(POOL).min_idle(POOL).start(Start::Eager);
                        builder = builder.max_in_flight(16).pool(Pooling::Shared(pool));
                    }
                    Clients::Beamline(builder.connect().await.unwrap())
                }
                Kind::BeamlineSupervised => {
                    let builder = Client::builder(redis.addr()).resp().timeout(TIMEOUT);
                    let (spec, client) = Client::child_spec("redis", builder);
                    let tree = SupervisorSpec::new(Strategy::OneForOne).child(spec);
                    let tree = Supervisor::start(tree).await.unwrap();
                    Clients::BeamlineSupervised {
                        client,
                        _tree: Arc::new(tree),
                    }
                }
                Kind::RedisRs | Kind::RedisRsPooled => {
                    let client = redis_rs(redis).unwrap();
                    let config = AsyncConnectionConfig::new().set_response_timeout(Some(TIMEOUT));
                    let n = if kind == Kind::RedisRs { 1 } else { POOL };
                    let mut conns = Vec::with_capacity(n);
                    for _ in 0..n {
                        conns.push(
                            client
                                .get_multiplexed_async_connection_with_config(&config)
                                .await
                                .unwrap(),
                        );
                    }
                    Clients::RedisRs(conns)
                }
                Kind::Fred => {
                    let client = fred_builder(redis).build().unwrap();
                    client.init().await.unwrap();
                    Clients::Fred(client)
                }
                Kind::FredPooled => {
                    let pool = fred_builder(redis).build_pool(POOL).unwrap();
                    pool.init().await.unwrap();
                    Clients::FredPool(pool)
                }
            }
        })
    }

    /// Caller `caller`'s own handle: a clone, its redis-rs connections rotated so callers
    /// start on different ones.
    pub(crate) fn for_caller(&self, caller: usize) -> Clients {
        let mut clients = self.clone();
        if let Clients::RedisRs(conns) = &mut clients {
            let n = conns.len();
            conns.rotate_left(caller % n);
        }
        clients
    }

    /// A SET and a GET of caller `caller`'s own key, both replies checked; how long each
    /// took.
    pub(crate) async fn pair(&mut self, caller: usize, pair: usize) -> [Duration; 2] {
        let (key, value) = (format!("bench:{caller}"), value(caller, pair));
        let start = Instant::now();
        match self {
            Clients::Beamline(client) | Clients::BeamlineSupervised { client, .. } => {
                let set = client.call(Command::new("SET").arg(&key).arg(&value)).await;
                let set_took = start.elapsed();
                assert_eq!(set.unwrap(), Value::ok());
                let start = Instant::now();
                let got = client.call(Command::new("GET").arg(&key)).await.unwrap();
                let get_took = start.elapsed();
                assert_eq!(got.as_bytes(), Some(value.as_bytes()));
                [set_took, get_took]
            }
            Clients::RedisRs(conns) => {
                // Each request on the next connection, as a round-robin pool hands them out.
                conns.rotate_left(1);
                let set: String = redis::cmd("SET")
                    .arg(&key)
                    .arg(&value)
                    .query_async(&mut conns[0])
                    .await
                    .unwrap();
                let set_took = start.elapsed();
                assert_eq!(set, "OK");
                conns.rotate_left(1);
                let start = Instant::now();
                let got: Vec<u8> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut conns[0])
                    .await
                    .unwrap();
                let get_took = start.elapsed();
                assert_eq!(got, value.as_bytes());
                [set_took, get_took]
            }
            Clients::Fred(client) => fred_pair(client, &key, &value, start).await,
            Clients::FredPool(pool) => fred_pair(pool, &key, &value, start).await,
        }
    }
}

/// The pair through fred (a client or a pool: both take the same commands).
async fn fred_pair<C: KeysInterface + Sync>(
    client: &C,
    key: &str,
    value: &str,
    start: Instant,
) -> [Duration; 2] {
    let set: String = client.set(key, value, None, None, false).await.unwrap();
    let set_took = start.elapsed();
    assert_eq!(set, "OK");
    let start = Instant::now();
    let got: Bytes = client.get(key).await.unwrap();
    let get_took = start.elapsed();
    assert_eq!(got, value.as_bytes());
    [set_took, get_took]
}
