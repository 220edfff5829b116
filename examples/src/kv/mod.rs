//! `kv`: a RESP2 key-value server on beamline-server that the real `redis-cli` and
//! `redis-benchmark` talk to.
//!
//! Every connection is its own supervised process (the server's stream-owning form) that
//! owns a `Framed` over its socket with the facade's [`RespCodec`], which reads each request
//! as its arguments' positions in the frame ([`RespCodec::decode_request`]): no value is
//! built per argument, and values a list keeps are copied into shared blocks, not one
//! allocation each. Requests are answered
//! in order; all requests that arrived together are answered with one flush. The key space
//! is a sharded store: each key lives in one of 64 shards with its own lock, held for one
//! command's work and never across an `.await`, so connections on different cores rarely
//! wait for each other.
//!
//! # Commands
//!
//! Each with Redis 7.0's arity, options, replies and error words (`WRONGTYPE`, arity,
//! syntax, overflow, the `NX|XX|GT|LT` rules); checked by Redis's own test suite (see the
//! issue's closing note for the tallies) and by a model per family in the unit tests.
//!
//! | family | commands |
//! |---|---|
//! | strings | `GET`, `SET` (all options), `SETNX`, `SETEX`, `PSETEX`, `GETSET`, `GETDEL`, `GETEX`, `MGET`, `MSET`, `MSETNX`, `APPEND`, `STRLEN`, `INCR`, `DECR`, `INCRBY`, `DECRBY`, `INCRBYFLOAT` (printed as Redis prints), `GETRANGE`, `SUBSTR`, `SETRANGE`, `GETBIT`, `SETBIT`, `LCS` |
//! | keyspace | `DEL`, `UNLINK`, `EXISTS` (repeats count), `TOUCH`, `TYPE`, `KEYS`, `SCAN` (`MATCH`/`COUNT`/`TYPE`), `RANDOMKEY`, `RENAME`, `RENAMENX`, `COPY`, `DBSIZE`, `FLUSHDB`, `FLUSHALL` |
//! | expiry | `EXPIRE`, `PEXPIRE`, `EXPIREAT`, `PEXPIREAT` (`NX\|XX\|GT\|LT`), `TTL`, `PTTL`, `EXPIRETIME`, `PEXPIRETIME`, `PERSIST` |
//! | lists | `LPUSH`, `RPUSH`, `LPUSHX`, `RPUSHX`, `LPOP`, `RPOP`, `LLEN`, `LRANGE`, `LINDEX`, `LSET`, `LINSERT`, `LREM`, `LTRIM`, `LPOS`, `LMOVE`, `RPOPLPUSH`, `LMPOP` |
//! | blocking lists | `BLPOP`, `BRPOP`, `BLMOVE`, `BRPOPLPUSH`, `BLMPOP`: the blocked connection's process waits on its keys; a push serves the longest waiter first; the timeout is exact; a client that disconnects leaves no waiter; `CLIENT UNBLOCK`; a drain answers each waiter `-UNBLOCKED the server is shutting down` |
//! | sets | `SADD`, `SREM`, `SMEMBERS`, `SISMEMBER`, `SMISMEMBER`, `SCARD`, `SPOP`, `SRANDMEMBER`, `SINTER`, `SUNION`, `SDIFF` and their `STORE` forms, `SINTERCARD`, `SMOVE`, `SSCAN` |
//! | hashes | `HSET`, `HMSET`, `HSETNX`, `HGET`, `HMGET`, `HDEL`, `HLEN`, `HEXISTS`, `HGETALL`, `HKEYS`, `HVALS`, `HINCRBY`, `HINCRBYFLOAT`, `HSTRLEN`, `HRANDFIELD`, `HSCAN` |
//! | Pub/Sub | `SUBSCRIBE`, `UNSUBSCRIBE`, `PSUBSCRIBE`, `PUNSUBSCRIBE`, `PUBLISH`, `PUBSUB CHANNELS\|NUMSUB\|NUMPAT`: each subscriber is its connection's process and a publish a message to each; one more than `client-output-buffer-limit pubsub` (32 MiB hard by default) behind is disconnected, the others keep receiving |
//! | transactions | `MULTI`, `EXEC`, `DISCARD`, `WATCH`, `UNWATCH` |
//! | connection, server | `PING`, `ECHO`, `QUIT`, `RESET`, `SELECT 0`, `HELLO [2]`, `CLIENT ID\|GETNAME\|SETNAME\|SETINFO\|REPLY\|UNBLOCK`, `CONFIG GET\|SET` (the parameters the suite touches; unknown ones refused in Redis's words), `INFO`, `TIME`, `FUNCTION LIST` |
//!
//! Anything else gets Redis's own unknown-command error, which is how a real Redis that
//! lacks a command answers, and what `redis-cli` and client libraries fall back from.
//!
//! # Deliberately absent
//!
//! - **Persistence and replication** (`SAVE`, `BGSAVE`, AOF, `REPLICAOF`, `WAIT`, `DUMP` /
//!   `RESTORE`): kv is an in-memory example of beamline's server, not a database.
//! - **Scripting and functions** (`EVAL`, `FCALL`; `FUNCTION LIST` answers an empty list).
//! - **RESP3** (`HELLO 3` is refused with `NOPROTO`, as a RESP2-only Redis answers).
//! - **Sorted sets, streams, bitmaps beyond `GETBIT`/`SETBIT`, HyperLogLog, geo, `SORT`.**
//! - **Several databases**: `SELECT` takes only 0 (run the suite with `--singledb`).
//! - **Keyspace notifications** (`CONFIG SET notify-keyspace-events` is refused).
//! - **`DEBUG`, `OBJECT`, `MEMORY`, internal encodings**: how values are laid out is kv's own.
//! - **A total order across connections**: connections run in parallel, so a command is
//!   ordered after another connection's only once that one's reply was read (Redis's
//!   single thread orders them by arrival).
//!
//! # Guarantees
//!
//! - **Order**: every request gets its reply, in request order, pipelined or not.
//! - **Bad input closes only its connection**: a frame over the limits ([`KvConfig`]) or one
//!   that is not RESP gets Redis's `ERR Protocol error: ...` reply, then the connection
//!   closes. Nothing a peer sends makes the server panic or allocate past the limits.
//! - **Expiry**: a key is never visible after its deadline (checked on access); a sweep
//!   every [`sweep_interval`](KvConfig::sweep_interval) frees expired keys nobody reads,
//!   a bounded number per shard at a time.
//! - **Graceful stop**: [`KvServer::shutdown`] stops accepting, answers each blocked client
//!   with an `UNBLOCKED` error, lets every connection finish the batch it is answering, then
//!   closes it when it has been quiet for 100 ms (a request already on its way is answered,
//!   not met with a closed socket), or after 1 s at its first pause (within the drain
//!   deadline).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use beamline_examples::kv::{self, KvConfig};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = kv::start(KvConfig::new().addr("127.0.0.1:0".parse()?))?;
//! println!("redis-cli -p {}", server.local_addr().port());
//! let report = server.shutdown(Duration::from_secs(5)).await?;
//! # let _ = report;
//! # Ok(()) }
//! ```

mod blocking;
mod commands;
mod conn;
pub mod flags;
mod float;
mod glob;
mod pack;
mod pubsub;
mod rand;
mod session;
mod settings;
mod shared;
mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use beamline::resp::{RespCodec, RespLimits};
use beamline::server::{
    Cidr, DrainReport, ListenFds, ProxyProtocol, Server, ServerHandle, ShutdownError, StartError,
};
use tokio::task::JoinHandle;

use self::settings::Settings;
use self::shared::Shared;
use self::store::{Store, unix_ms};

/// The address `kv` listens on by default: Redis's port plus one, so it can run beside a
/// real Redis.
pub const DEFAULT_ADDR: &str = "127.0.0.1:6380";

/// How a kv server is set up. Every setting has a default; [`KvConfig::new`] listens on
/// [`DEFAULT_ADDR`].
#[derive(Debug, Clone)]
pub struct KvConfig {
    addr: SocketAddr,
    max_connections: usize,
    max_bulk_len: usize,
    max_request_len: usize,
    sweep_interval: Duration,
    idle_timeout: Option<Duration>,
    pubsub_output_limit: usize,
    proxy_protocol: bool,
    proxy_from: Vec<Cidr>,
    max_connections_per_ip: Option<u32>,
}

impl Default for KvConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 6380)),
            max_connections: 10_000,
            max_bulk_len: 64 * 1024 * 1024,
            max_request_len: 128 * 1024 * 1024,
            sweep_interval: Duration::from_millis(100),
            idle_timeout: None,
            pubsub_output_limit: pubsub::DEFAULT_OUTPUT_LIMIT,
            proxy_protocol: false,
            proxy_from: Vec::new(),
            max_connections_per_ip: None,
        }
    }
}

impl KvConfig {
    /// The defaults: [`DEFAULT_ADDR`], 10,000 connections (Redis's `maxclients`), bulk
    /// strings up to 64 MiB and requests up to 128 MiB, a sweep every 100 ms, no idle
    /// timeout (Redis's `timeout 0`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Where to listen (`127.0.0.1:0` picks a free port: see [`KvServer::local_addr`]).
    #[must_use]
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// At most this many live connections; more wait in the listen backlog.
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// The longest bulk string a request may carry (Redis's `proto-max-bulk-len`). A
    /// longer one is refused from its header, before it is read: the client gets
    /// `ERR Protocol error: invalid bulk length` and the connection closes.
    #[must_use]
    pub fn max_bulk_len(mut self, bytes: usize) -> Self {
        self.max_bulk_len = bytes;
        self
    }

    /// The most bytes one request may take; a larger one gets
    /// `ERR Protocol error: too big request` and the connection closes.
    #[must_use]
    pub fn max_request_len(mut self, bytes: usize) -> Self {
        self.max_request_len = bytes;
        self
    }

    /// How often expired keys nobody reads are swept away (they are invisible from their
    /// deadline on either way).
    #[must_use]
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = interval;
        self
    }

    /// Close a connection that sends nothing for this long (`None`: never).
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Every connection starts with a PROXY protocol header (v1 or v2, as HAProxy's
    /// `send-proxy` / `send-proxy-v2` write it): the client's address behind the balancer
    /// is the connection's peer, in the logs and for
    /// [`max_connections_per_ip`](Self::max_connections_per_ip). Default off.
    #[must_use]
    pub fn proxy_protocol(mut self, on: bool) -> Self {
        self.proxy_protocol = on;
        self
    }

    /// The balancers trusted to send PROXY headers (default: any, so the port must be
    /// reachable only by them).
    #[must_use]
    pub fn proxy_from(mut self, sources: impl IntoIterator<Item = Cidr>) -> Self {
        self.proxy_from.extend(sources);
        self
    }

    /// At most this many live connections per client address (behind a balancer: per
    /// address its PROXY header carried); more are closed at once. Default: no cap.
    #[must_use]
    pub fn max_connections_per_ip(mut self, max: u32) -> Self {
        self.max_connections_per_ip = Some(max);
        self
    }

    /// How far a subscriber may fall behind (bytes published to it that its socket has not
    /// taken) before it is disconnected: Redis's `client-output-buffer-limit pubsub` hard
    /// limit, 32 MiB by default (0: no limit). CONFIG SET changes it at run time.
    #[must_use]
    pub fn pubsub_output_limit(mut self, bytes: usize) -> Self {
        self.pubsub_output_limit = bytes;
        self
    }

    /// What CONFIG GET reports about this server's own settings (the rest are Redis's
    /// defaults, see `settings`).
    fn settings(&self) -> Settings {
        Settings::new(&[
            ("maxclients", self.max_connections.to_string()),
            ("proto-max-bulk-len", self.max_bulk_len.to_string()),
            (
                "client-query-buffer-limit",
                self.max_request_len.to_string(),
            ),
            (
                "timeout",
                self.idle_timeout.map_or(0, |t| t.as_secs()).to_string(),
            ),
            ("port", self.addr.port().to_string()),
            ("bind", self.addr.ip().to_string()),
            (
                "client-output-buffer-limit",
                format!(
                    "normal 0 0 0 slave 268435456 67108864 60 pubsub {} 8388608 60",
                    self.pubsub_output_limit
                ),
            ),
        ])
    }

    /// The state every connection shares.
    fn shared(&self, store: Arc<Store>) -> Shared {
        let limits = RespLimits::new()
            .max_bulk_len(self.max_bulk_len)
            .max_frame_len(self.max_request_len)
            // A request is one flat array of bulk strings.
            .max_depth(1);
        Shared::new(
            store,
            RespCodec::with_limits(limits).inline_commands(true),
            self.max_bulk_len,
            self.max_request_len,
            self.settings(),
            self.pubsub_output_limit,
        )
    }
}

/// A running kv server: its [`ServerHandle`] plus the store and the expiry sweep.
///
/// Dropping it stops everything at once (connections are killed); [`shutdown`](Self::shutdown)
/// drains them first.
#[derive(Debug)]
pub struct KvServer {
    server: ServerHandle,
    local_addr: SocketAddr,
    store: Arc<Store>,
    sweeper: JoinHandle<()>,
}

/// Starts a kv server on the current tokio runtime.
///
/// # Errors
/// [`StartError`] from beamline-server: the address cannot be bound, a setting is invalid,
/// or there is no tokio runtime. Nothing is left running.
pub fn start(config: KvConfig) -> Result<KvServer, StartError> {
    launch(config, None)
}

/// Starts a kv server on listening sockets handed to this process: by the kv process it
/// replaces (an upgrade: [`Predecessor`](beamline::server::Predecessor)) or by systemd. A
/// socket for [`KvConfig::addr`] stands in for binding it.
///
/// # Errors
/// As [`start`].
pub fn start_inherited(config: KvConfig, fds: ListenFds) -> Result<KvServer, StartError> {
    launch(config, Some(fds))
}

fn launch(config: KvConfig, fds: Option<ListenFds>) -> Result<KvServer, StartError> {
    let store = Arc::new(Store::new());
    let shared = Arc::new(config.shared(store.clone()));
    let mut builder = Server::new().bind(config.addr);
    if let Some(fds) = fds {
        builder = builder.listen_fds(fds);
    }
    if config.proxy_protocol {
        builder = builder
            .proxy_protocol(ProxyProtocol::Required)
            .proxy_protocol_from(config.proxy_from.iter().copied());
    }
    if let Some(max) = config.max_connections_per_ip {
        builder = builder.max_connections_per_ip(max);
    }
    let server = builder
        .max_connections(config.max_connections)
        .read_timeout(config.idle_timeout)
        .serve_fn(move |conn| conn::serve(conn, shared.clone()))?;
    // One TCP address was bound, so there is one to report.
    let local_addr = server.local_addr().unwrap_or(config.addr);
    let sweeper = tokio::spawn(sweep(store.clone(), config.sweep_interval));
    Ok(KvServer {
        server,
        local_addr,
        store,
        sweeper,
    })
}

/// Frees expired keys every `interval`, a bounded number per shard per round.
async fn sweep(store: Arc<Store>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let now = ticks.tick().await;
        let removed = store.sweep(unix_ms(now));
        if removed > 0 {
            tracing::trace!(removed, "expired keys swept");
        }
    }
}

impl KvServer {
    /// The address it listens on (with the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The server underneath: stats, suspend/resume.
    pub fn server(&self) -> &ServerHandle {
        &self.server
    }

    /// How many keys are stored, counting expired ones the sweep has not removed yet
    /// (Redis's `DBSIZE`).
    pub fn keys(&self) -> usize {
        self.store.len()
    }

    /// Stops accepting, lets each connection finish the batch it is answering, closes
    /// them (killing what is left at `drain_timeout`), and stops the sweep.
    ///
    /// # Errors
    /// [`ShutdownError`] from beamline-server (a shutdown already under way).
    pub async fn shutdown(&self, drain_timeout: Duration) -> Result<DrainReport, ShutdownError> {
        let report = self.server.shutdown(drain_timeout).await;
        self.sweeper.abort();
        report
    }
}

impl Drop for KvServer {
    fn drop(&mut self) {
        self.sweeper.abort();
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use bytes::Bytes;

    use super::store::Data;
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_periodic_sweep_frees_expired_keys_nobody_reads() {
        let store = Arc::new(Store::new());
        let t0 = unix_ms(Instant::now());
        for (key, ttl) in [
            ("k0", Some(150)),
            ("k1", Some(150)),
            ("k2", Some(350)),
            ("forever", None),
        ] {
            let mut db = store.lock(std::iter::once(key.as_bytes()));
            db.set(key.as_bytes(), Data::Str(Bytes::from_static(b"v")));
            db.set_deadline(key.as_bytes(), ttl.map(|ms| t0 + ms));
        }
        let sweeper = tokio::spawn(sweep(store.clone(), Duration::from_millis(100)));
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(store.len(), 4, "nothing expired yet");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            store.len(),
            2,
            "the round at 200 ms freed the two keys due at 150 ms"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(store.len(), 1);
        sweeper.abort();
    }

    #[tokio::test]
    async fn start_reports_what_it_bound_and_fails_cleanly() {
        let kv = start(KvConfig::new().addr("127.0.0.1:0".parse().unwrap())).unwrap();
        assert_ne!(kv.local_addr().port(), 0);
        let taken = start(KvConfig::new().addr(kv.local_addr()));
        assert!(matches!(taken, Err(StartError::Bind { .. })), "{taken:?}");
        let invalid = start(
            KvConfig::new()
                .addr("127.0.0.1:0".parse().unwrap())
                .max_connections(0),
        );
        assert!(
            matches!(invalid, Err(StartError::Invalid { .. })),
            "{invalid:?}"
        );
    }
}
