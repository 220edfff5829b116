//! The `redis_client` example's logic: callers doing SET/GET pairs through one
//! `beamline::Client` in FIFO mode over a shared pool of pipelined, reconnecting
//! connections, every reply checked, every failure classified.
//!
//! It lives here (not in `examples/redis_client.rs`) so that a test can run it in-process
//! against a real `redis-server`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use beamline::pool::PoolConfig;
use beamline::reconnect::{BackoffConfig, OfflinePolicy};
use beamline::resp::{Command, Value};
use beamline::{BuildError, Client, ClientError, Pooling};
use tokio::time::Instant;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The redis server, `host:port`.
    pub addr: String,
    /// Concurrent callers, all sharing the client.
    pub callers: usize,
    /// At most this many connections in the pool.
    pub connections: usize,
    /// Requests in flight on one connection; the pool opens another when all are full.
    pub per_connection: usize,
    /// How long to run.
    pub duration: Duration,
    /// At most this many SET/GET pairs per caller (a bound for tests).
    pub max_pairs: u64,
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

/// The client the example uses: FIFO (RESP has no request ids), a shared pool of up to
/// `connections` connections taking `per_connection` requests each, pipelined by the mux,
/// each reconnecting with a jittered backoff and holding requests made during a restart in
/// a bounded queue for up to 2 s.
///
/// # Errors
/// When the pool's first connection fails (redis is not running there).
pub async fn connect(options: &Options) -> Result<Client<Command, Value>, BuildError> {
    let addr = &options.addr;
    let pool = PoolConfig::new(options.connections)
        .min_idle(1)
        .start(beamline::pool::Start::Eager)
        .checkout_timeout(Some(Duration::from_secs(2)));
    Client::builder(addr.as_str())
        .resp()
        .name(format!("redis {addr}"))
        .max_in_flight(options.per_connection)
        .pool(Pooling::Shared(pool))
        .timeout(Duration::from_secs(2))
        .backoff(BackoffConfig::exponential(
            Duration::from_millis(20),
            2.0,
            Duration::from_secs(1),
        ))
        .offline(OfflinePolicy::Queue {
            max: 4_096,
            deadline: Duration::from_secs(2),
        })
        .connect()
        .await
}

/// Runs `options.callers` callers for `options.duration` (or `max_pairs` each), counting
/// into `tally`. Each caller SETs a value only it knows and GETs it back.
pub async fn run(client: &Client<Command, Value>, options: &Options, tally: Arc<Tally>) {
    let deadline = Instant::now() + options.duration;
    let callers: Vec<_> = (0..options.callers)
        .map(|caller| {
            let (client, tally) = (client.clone(), tally.clone());
            let max_pairs = options.max_pairs;
            tokio::spawn(async move {
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
            })
        })
        .collect();
    for caller in callers {
        // A caller task only ends by returning.
        let _ = caller.await;
    }
}
