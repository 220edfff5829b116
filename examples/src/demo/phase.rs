//! One phase of the demo: the kv server, the clients and their load, the kill and the
//! restart, with one backoff jitter for every client.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use beamline::pool::PoolConfig;
use beamline::reconnect::{Jitter, OfflinePolicy, ReconnectConfig, State};
use beamline::resp::{Command, Value};
use beamline::server::StartError;
use beamline::{Client, Pooling, Stack};
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until};

use super::tally::{Tally, WINDOW, peak_and_mean, watch_attempts};
use super::{DemoConfig, DemoError, PhaseReport};
use crate::kv::{self, KvConfig, KvServer};
use crate::matrix::{error_kind, percentile_ms};

type KvClient = Client<Command, Value>;

/// How long a connection must stay up for its backoff to reset.
pub(crate) const STABLE_PERIOD: Duration = Duration::from_millis(250);
/// How many clients connect at once while a phase starts.
const CONNECTING_AT_ONCE: usize = 64;
/// How long one call may take, answer or error, before the demo calls it hung: beyond
/// every bound the client has (checkout, offline queue, request timeout).
const HUNG: Duration = Duration::from_secs(10);

/// Runs one phase with every client's backoff jittered by `jitter`.
pub(crate) async fn run(
    config: &DemoConfig,
    jitter: Jitter,
    label: &str,
) -> Result<PhaseReport, DemoError> {
    let server = kv::start(KvConfig::new().addr(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))))
        .map_err(DemoError::Start)?;
    let addr = server.local_addr();
    let clients: Vec<(KvClient, watch::Receiver<State>)> = futures::stream::iter(0..config.clients)
        .map(|i| connect(config, jitter, addr, i))
        .buffer_unordered(CONNECTING_AT_ONCE)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;

    if config.warmup <= STABLE_PERIOD {
        return Err(DemoError::Other(format!(
            "the warm-up ({:?}) must be longer than the stable period ({STABLE_PERIOD:?})",
            config.warmup
        )));
    }
    let kill_at = config.warmup;
    let restart_at = kill_at + config.down_for;
    let end_at = restart_at + config.recover;
    let epoch = Instant::now();
    let tally = Arc::new(Tally::new(epoch, end_at, clients.len() as u64));
    let generation = Arc::new(AtomicU64::new(0));

    let watchers: Vec<JoinHandle<()>> = clients
        .iter()
        .map(|(_, states)| {
            let (states, tally) = (states.clone(), tally.clone());
            tokio::spawn(async move { watch_attempts(states, &tally).await })
        })
        .collect();
    let mut workers = Vec::new();
    for (i, (client, _)) in clients.iter().enumerate() {
        for w in 0..config.workers_per_client {
            let work = Work {
                client: client.clone(),
                key: format!("demo:{i}:{w}"),
                pace: config.pace,
                // Spread the first requests over one pace, so the load is smooth.
                offset: config
                    .pace
                    .mul_f64(spread(i * config.workers_per_client + w)),
                end: epoch + end_at,
                tally: tally.clone(),
                generation: generation.clone(),
            };
            workers.push(tokio::spawn(work.run()));
        }
    }
    let progress = config
        .live
        .then(|| tokio::spawn(progress(label.to_owned(), tally.clone(), config.clients)));

    sleep_until(epoch + kill_at).await;
    let served_before = server.server().stats().accepted;
    server
        .shutdown(Duration::ZERO)
        .await
        .map_err(|e| DemoError::Other(format!("killing the server: {e}")))?;
    drop(server);
    // Only now: a request started while the server was being killed may still have been
    // answered by it, and the key it stored is gone with it.
    generation.fetch_add(1, Relaxed);
    say(
        config.live,
        &format!(
            "{label}: {:.1}s: server killed ({served_before} connections were open); back in {:?}",
            epoch.elapsed().as_secs_f64(),
            config.down_for
        ),
    );
    sleep_until(epoch + restart_at).await;
    let server = restart(addr).await?;
    say(
        config.live,
        &format!(
            "{label}: {:.1}s: server back on {addr}",
            epoch.elapsed().as_secs_f64()
        ),
    );
    let (all_back, accepted_peak) = tokio::join!(
        all_connected(&tally, config.clients as u64, epoch + end_at),
        busiest_accept_window(&server, epoch + end_at),
    );
    sleep_until(epoch + end_at).await;

    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(
            worker
                .await
                .map_err(|e| DemoError::Other(format!("a client task failed: {e}")))?,
        );
    }
    if let Some(progress) = progress {
        progress.abort();
        if terminal() {
            print!("\r\x1b[2K");
        }
    }
    let reconnected = server.server().stats().accepted;
    for (client, _) in &clients {
        client.close();
    }
    drop(clients);
    for watcher in watchers {
        let _ = watcher.await;
    }
    let _ = server.shutdown(Duration::from_secs(1)).await;

    latencies.sort_unstable();
    let windows = tally.windows();
    // The histogram from the kill on: before it every client was connected.
    let kill_window = (kill_at.as_millis() / WINDOW.as_millis()) as usize;
    let attempts_per_window = windows.get(kill_window..).unwrap_or_default().to_vec();
    let (peak, mean) = peak_and_mean(&attempts_per_window);
    Ok(PhaseReport {
        jitter,
        requests: tally.requests.load(Relaxed),
        ok: tally.ok.load(Relaxed),
        lost_with_server: tally.lost_with_server.load(Relaxed),
        errors: tally.errors(),
        wrong_replies: tally.wrong.load(Relaxed),
        wrong_examples: tally.wrong_kept(),
        p50_ms: percentile_ms(&latencies, 50.0),
        p99_ms: percentile_ms(&latencies, 99.0),
        seconds: end_at.as_secs_f64(),
        attempts: tally.attempts.load(Relaxed),
        attempts_per_window,
        peak,
        mean,
        down_for: config.down_for,
        all_back_after: all_back,
        reconnected,
        accepted_peak,
    })
}

/// The most connections `server` accepted in one window from now until `end`.
async fn busiest_accept_window(server: &KvServer, end: Instant) -> u64 {
    let mut ticks = tokio::time::interval(WINDOW);
    let (mut last, mut peak) = (server.server().stats().accepted, 0);
    while ticks.tick().await < end {
        let now = server.server().stats().accepted;
        peak = peak.max(now - last);
        last = now;
    }
    peak
}

/// A client of the demo: RESP over a shared pool of one multiplexed, reconnecting
/// connection, and the state channel of that connection (to count its attempts).
async fn connect(
    config: &DemoConfig,
    jitter: Jitter,
    addr: SocketAddr,
    i: usize,
) -> Result<(KvClient, watch::Receiver<State>), DemoError> {
    let reconnect = ReconnectConfig::new(OfflinePolicy::Queue {
        max: 4 * config.workers_per_client,
        deadline: Duration::from_secs(1),
    })
    .backoff(config.backoff.clone().jitter(jitter))
    .connect_timeout(Duration::from_secs(2))
    // The backoff resets once a connection has been up this long, so when the server is
    // killed every client starts from attempt 1 (the warm-up is longer than this), and
    // the attempt numbers the watcher reads count only reconnects.
    .stable_period(STABLE_PERIOD)
    // Every client draws its own jitter, as separate machines would.
    .seed(config.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let client = Client::builder(addr)
        .resp()
        .name(format!("demo client {i}"))
        .timeout(Duration::from_secs(1))
        .max_in_flight(4 * config.workers_per_client)
        .reconnect(reconnect)
        .pool(Pooling::Shared(
            PoolConfig::new(1).checkout_timeout(Some(Duration::from_secs(2))),
        ))
        .connect()
        .await
        .map_err(|e| DemoError::Other(format!("client {i} did not connect to {addr}: {e}")))?;
    let states = match client.stack() {
        Stack::Shared(pool) => pool
            .get()
            .await
            .map(|connection| connection.state_changes())
            .map_err(|e| DemoError::Other(format!("client {i}: {e}")))?,
        other => {
            return Err(DemoError::Other(format!(
                "client {i} is not a shared pool: {other:?}"
            )));
        }
    };
    Ok((client, states))
}

/// Starts the server again on `addr`. The old one is gone, but its port may take a
/// moment to be free on a busy machine: try for up to a second.
async fn restart(addr: SocketAddr) -> Result<KvServer, DemoError> {
    let give_up = Instant::now() + Duration::from_secs(1);
    loop {
        match kv::start(KvConfig::new().addr(addr)) {
            Ok(server) => return Ok(server),
            Err(StartError::Bind { .. }) if Instant::now() < give_up => {
                sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(DemoError::Start(e)),
        }
    }
}

/// How long after now every client was connected again (`None` if not by `deadline`).
async fn all_connected(tally: &Tally, clients: u64, deadline: Instant) -> Option<Duration> {
    let start = Instant::now();
    while Instant::now() < deadline {
        if tally.connected.load(Relaxed) >= clients {
            return Some(start.elapsed());
        }
        sleep(Duration::from_millis(5)).await;
    }
    None
}

/// One worker of a client: SET its own key to a fresh value, GET it back, and check that
/// each answer is its own. Returns the latencies of its successful requests, in µs.
#[derive(Debug)]
struct Work {
    client: KvClient,
    key: String,
    pace: Duration,
    offset: Duration,
    end: Instant,
    tally: Arc<Tally>,
    /// Bumped once the killed server has stopped answering: a key stored before may be gone.
    generation: Arc<AtomicU64>,
}

impl Work {
    async fn run(self) -> Vec<Duration> {
        let mut latencies = Vec::new();
        sleep(self.offset).await;
        let mut ticks = tokio::time::interval(self.pace);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seq = 0u64;
        loop {
            ticks.tick().await;
            if Instant::now() >= self.end {
                return latencies;
            }
            seq += 1;
            // The value names its key and sequence number: a reply meant for another
            // caller cannot match.
            let value = format!("{}#{seq}#{}", self.key, "x".repeat((seq % 48) as usize));
            let generation = self.generation.load(Relaxed);
            let set = Command::new("SET").arg(&self.key).arg(&value);
            match self.call(set, &mut latencies).await {
                Some(reply) if reply == Value::ok() => {}
                Some(other) => {
                    self.tally
                        .wrong_reply(format!("SET {} answered {other:?}", self.key));
                    continue;
                }
                None => continue,
            }
            ticks.tick().await;
            if Instant::now() >= self.end {
                return latencies;
            }
            let get = Command::new("GET").arg(&self.key);
            match self.call(get, &mut latencies).await {
                Some(Value::Bulk(got)) if got == value.as_bytes() => {}
                Some(Value::Null) if self.generation.load(Relaxed) != generation => {
                    // Stored in the server that was killed: gone with it.
                    self.tally.lost_with_server.fetch_add(1, Relaxed);
                }
                Some(other) => self.tally.wrong_reply(format!(
                    "GET {} after SET {value:?} answered {other:?}",
                    self.key
                )),
                None => {}
            }
        }
    }

    /// One call, counted: its answer (an error reply included), or `None` after a typed
    /// error was counted by kind.
    async fn call(&self, command: Command, latencies: &mut Vec<Duration>) -> Option<Value> {
        self.tally.requests.fetch_add(1, Relaxed);
        let started = Instant::now();
        match tokio::time::timeout(HUNG, self.client.call(command)).await {
            Ok(Ok(value)) => {
                latencies.push(started.elapsed());
                self.tally.ok.fetch_add(1, Relaxed);
                Some(value)
            }
            Ok(Err(e)) => {
                self.tally.error(error_kind(&e));
                None
            }
            Err(_) => {
                self.tally.error("hung");
                None
            }
        }
    }
}

/// A number in `[0, 1)` spread evenly for consecutive `i` (the golden ratio sequence).
fn spread(i: usize) -> f64 {
    (i as f64 * 0.618_033_988_749_895).fract()
}

/// Whether stdout is a terminal: the progress line refreshes in place only there; into a
/// pipe or a file it is written once a second as plain lines, without escape codes.
fn terminal() -> bool {
    use std::io::IsTerminal as _;
    std::io::stdout().is_terminal()
}

/// Prints a line above the progress line.
fn say(live: bool, line: &str) {
    if live && terminal() {
        println!("\r\x1b[2K{line}");
    } else if live {
        println!("{line}");
    }
}

/// The refreshing progress line: throughput, connected clients, reconnect attempts,
/// errors by kind.
async fn progress(label: String, tally: Arc<Tally>, clients: usize) {
    use std::io::Write as _;
    let start = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_millis(250));
    let mut last = (Instant::now(), 0u64);
    let terminal = terminal();
    for tick in 0u64.. {
        ticks.tick().await;
        // The first tick is at once: nothing to measure yet. Off a terminal, one line a second.
        if tick == 0 || (!terminal && tick % 4 != 0) {
            continue;
        }
        let (now, requests) = (Instant::now(), tally.requests.load(Relaxed));
        let rate = (requests - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        last = (now, requests);
        let errors = crate::cli::errors_line(&tally.errors());
        let line = format!(
            "{label} {:>5.1}s | {:>7.0} req/s | connected {:>4}/{clients} | reconnect attempts {:>6} | errors: {errors}",
            start.elapsed().as_secs_f64(),
            rate,
            tally.connected.load(Relaxed),
            tally.attempts.load(Relaxed),
        );
        if terminal {
            print!("\r\x1b[2K{line}");
            let _ = std::io::stdout().flush();
        } else {
            println!("{line}");
        }
    }
}
