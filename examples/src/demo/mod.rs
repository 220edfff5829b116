//! `cargo xtask demo`: a thousand clients, a server killed and restarted under them, and
//! the thundering herd their reconnects make — without jitter and with it.
//!
//! The demo runs two phases, identical but for the jitter of every client's reconnect
//! backoff (`Jitter::None`, then `Jitter::Full`). Each phase:
//!
//! 1. starts the [`kv`](crate::kv) server (beamline-server's supervised acceptor, one
//!    process per connection) on a free port;
//! 2. connects [`DemoConfig::clients`] clients, each a [`beamline::Client`] speaking RESP:
//!    a shared pool of one multiplexed, reconnecting connection, pipelining its workers'
//!    requests in FIFO order;
//! 3. runs their load: every worker SETs its own key to a fresh value and GETs it back,
//!    and checks that each answer is its own;
//! 4. kills the server (every connection closed at once), keeps it away for
//!    [`DemoConfig::down_for`], and starts it again on the same port;
//! 5. counts every client's connect attempts per 100 ms window (from each connection's
//!    published state), and how long until every client is connected again.
//!
//! Without jitter, every client lost its connection in the same instant and computes the
//! same delays, so their attempts arrive in waves: the whole population in one window, again
//! and again, and on the restarted server all at once. With full jitter the same attempts
//! spread out. The [`DemoReport`] holds both phases; [`DemoReport::summary`] says it in
//! words and [`DemoReport::csv`] gives the windows to plot.
//!
//! # What the demo checks
//!
//! Every request ends with its own answer or a typed error (counted by kind); a reply that
//! is not the request's own is counted as a wrong reply, and there must be none. A GET that
//! finds no key because the key was stored in the killed server (kv keeps keys in memory)
//! is a right answer, counted apart.

mod phase;
mod tally;

pub use tally::{WINDOW, peak_and_mean};

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use beamline::reconnect::{BackoffConfig, Jitter};
use beamline::server::StartError;

/// How big and how long the demo is.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Clients (each one connection to the server).
    pub clients: usize,
    /// Concurrent workers per client, sharing its connection.
    pub workers_per_client: usize,
    /// Time between the starts of a worker's requests.
    pub pace: Duration,
    /// Load before the kill.
    pub warmup: Duration,
    /// How long the server stays away.
    pub down_for: Duration,
    /// Load after the restart.
    pub recover: Duration,
    /// Every client's reconnect backoff; each phase sets its jitter.
    pub backoff: BackoffConfig,
    /// Seeds each client's jitter (each client draws its own).
    pub seed: u64,
    /// Print a live progress line and the phase's events.
    pub live: bool,
}

impl DemoConfig {
    /// The full demo: 1,000 clients, two phases of about 25 s.
    pub fn full() -> DemoConfig {
        DemoConfig {
            clients: 1000,
            workers_per_client: 2,
            pace: Duration::from_millis(100),
            warmup: Duration::from_secs(5),
            down_for: Duration::from_secs(5),
            recover: Duration::from_secs(12),
            // Waves at 0.5, 1.5, 3.5, 5.5 s... without jitter: the server is back at 5 s.
            backoff: BackoffConfig::exponential(
                Duration::from_millis(500),
                2.0,
                Duration::from_secs(2),
            ),
            seed: 2026,
            live: true,
        }
    }

    /// `--quick`: 1,000 clients too, in phases of about 6 s.
    pub fn quick() -> DemoConfig {
        DemoConfig {
            warmup: Duration::from_secs(1),
            down_for: Duration::from_secs(2),
            recover: Duration::from_secs(3),
            // Waves at 0.5, 1.5, 2.5 s... without jitter: the server is back at 2 s.
            backoff: BackoffConfig::exponential(
                Duration::from_millis(500),
                2.0,
                Duration::from_secs(1),
            ),
            ..DemoConfig::full()
        }
    }

    /// File descriptors the demo needs: one per client connection and one per server
    /// side, plus room for the runtime and the listener.
    pub fn fds_needed(&self) -> u64 {
        2 * self.clients as u64 + 256
    }
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The kv server did not start (or restart).
    #[error("the kv server did not start")]
    Start(#[source] StartError),
    /// Anything else, said in a sentence.
    #[error("{0}")]
    Other(String),
}

/// What one phase saw.
#[derive(Debug, Clone)]
pub struct PhaseReport {
    /// The jitter of every client's backoff.
    pub jitter: Jitter,
    /// Requests started.
    pub requests: u64,
    /// Requests answered (with their own answer).
    pub ok: u64,
    /// GETs answered "no such key" because the key was stored in the killed server.
    pub lost_with_server: u64,
    /// Typed errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Replies that were not their request's own: must be 0.
    pub wrong_replies: u64,
    /// The first few wrong replies, in words.
    pub wrong_examples: Vec<String>,
    /// Median latency of answered requests, in ms.
    pub p50_ms: f64,
    /// 99th percentile latency of answered requests, in ms.
    pub p99_ms: f64,
    /// The phase's load time.
    pub seconds: f64,
    /// Connect attempts made by all clients.
    pub attempts: u64,
    /// Attempts per [`WINDOW`], from the kill on.
    pub attempts_per_window: Vec<u64>,
    /// The busiest window.
    pub peak: u64,
    /// Mean attempts per window over the busy span.
    pub mean: f64,
    /// How long the server was away.
    pub down_for: Duration,
    /// How long after the restart every client was connected again (`None`: not all were
    /// by the end of the phase).
    pub all_back_after: Option<Duration>,
    /// Connections the restarted server accepted.
    pub reconnected: u64,
    /// The most connections the restarted server accepted in one [`WINDOW`]: the herd as
    /// the server feels it.
    pub accepted_peak: u64,
}

/// Both phases.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// How many clients each phase had.
    pub clients: usize,
    /// No jitter, then full jitter.
    pub phases: Vec<PhaseReport>,
}

/// Runs both phases on the current runtime.
///
/// # Errors
/// [`DemoError`] when the server cannot start or a client cannot connect at the start of a
/// phase; faults during the phase are what the demo measures, never an error.
pub async fn run(config: &DemoConfig) -> Result<DemoReport, DemoError> {
    let mut phases = Vec::new();
    for (jitter, label) in [
        (Jitter::None, "phase 1/2, no jitter  "),
        (Jitter::Full, "phase 2/2, full jitter"),
    ] {
        if config.live {
            println!(
                "{label}: {} clients x {} workers, server killed at {:?} for {:?}",
                config.clients, config.workers_per_client, config.warmup, config.down_for
            );
        }
        phases.push(phase::run(config, jitter, label).await?);
    }
    Ok(DemoReport {
        clients: config.clients,
        phases,
    })
}

impl DemoReport {
    /// Reconnect attempts per window from the kill on, one column per phase:
    /// `window_start_ms,none,full`.
    pub fn csv(&self) -> String {
        let mut s = String::from("window_start_ms");
        for phase in &self.phases {
            s.push(',');
            s.push_str(phase.jitter.name());
        }
        s.push('\n');
        let rows = self
            .phases
            .iter()
            .map(|p| p.attempts_per_window.len())
            .max()
            .unwrap_or(0);
        for row in 0..rows {
            let _ = write!(s, "{}", row as u128 * WINDOW.as_millis());
            for phase in &self.phases {
                let n = phase.attempts_per_window.get(row).copied().unwrap_or(0);
                let _ = write!(s, ",{n}");
            }
            s.push('\n');
        }
        s
    }

    /// Wrong replies over both phases (must be 0).
    pub fn wrong_replies(&self) -> u64 {
        self.phases.iter().map(|p| p.wrong_replies).sum()
    }

    /// The summary, a few lines per phase and the comparison.
    pub fn summary(&self) -> String {
        let mut s = String::from("demo summary\n");
        for p in &self.phases {
            let errors = if p.errors.is_empty() {
                "none".to_owned()
            } else {
                p.errors
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let back = p.all_back_after.map_or_else(
                || "NOT all clients were back by the end".to_owned(),
                |d| {
                    format!(
                        "all {} clients back {:.2}s after the restart",
                        self.clients,
                        d.as_secs_f64()
                    )
                },
            );
            let _ = writeln!(
                s,
                "  {} jitter: {} requests served of {} in {:.0}s, p50 {:.2} ms, p99 {:.2} ms; errors: {errors}; wrong replies: {}",
                p.jitter.name(),
                p.ok,
                p.requests,
                p.seconds,
                p.p50_ms,
                p.p99_ms,
                p.wrong_replies
            );
            let ratio = if p.mean > 0.0 {
                p.peak as f64 / p.mean
            } else {
                0.0
            };
            let _ = writeln!(
                s,
                "    server away {:.1}s: {} reconnect attempts, peak {} per 100 ms window, mean {:.1} over the busy span (peak/mean {ratio:.1}x); {back}, the restarted server accepting {} connections, at most {} in 100 ms; {} keys lost with the killed server",
                p.down_for.as_secs_f64(),
                p.attempts,
                p.peak,
                p.mean,
                p.reconnected,
                p.accepted_peak,
                p.lost_with_server
            );
            for example in &p.wrong_examples {
                let _ = writeln!(s, "    WRONG REPLY: {example}");
            }
        }
        if let [none, full] = &self.phases[..]
            && full.peak > 0
            && full.accepted_peak > 0
        {
            let _ = writeln!(
                s,
                "  without jitter the clients retry in waves ({} attempts in the busiest 100 ms) and reconnect all at once \
                 ({} connections in 100 ms); full jitter spreads the same clients out: {} attempts and {} connections \
                 at most ({:.1}x and {:.1}x lower)",
                none.peak,
                none.accepted_peak,
                full.peak,
                full.accepted_peak,
                none.peak as f64 / full.peak as f64,
                none.accepted_peak as f64 / full.accepted_peak as f64
            );
        }
        s
    }
}

/// The soft and hard limits on open files, from `/proc/self/limits` (`None` where it
/// cannot be read; "unlimited" reads as `u64::MAX`).
pub fn open_files_limit() -> Option<(u64, u64)> {
    parse_open_files_limit(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

fn parse_open_files_limit(limits: &str) -> Option<(u64, u64)> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut fields = line["Max open files".len()..].split_whitespace();
    let mut value = || match fields.next()? {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    };
    Some((value()?, value()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_open_files_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max cpu time              unlimited            unlimited            seconds\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_open_files_limit(limits), Some((1024, 524_288)));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(
            parse_open_files_limit(unlimited),
            Some((u64::MAX, u64::MAX))
        );
        assert_eq!(parse_open_files_limit("nothing here"), None);
        assert!(open_files_limit().is_some(), "this is Linux");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_demo_runs_in_process_and_every_reply_is_right() {
        let config = DemoConfig {
            clients: 40,
            workers_per_client: 2,
            pace: Duration::from_millis(20),
            warmup: Duration::from_millis(500),
            down_for: Duration::from_millis(700),
            recover: Duration::from_millis(1500),
            // The first wave 250 ms after the kill: mid-window, whatever the kill's own time.
            backoff: BackoffConfig::exponential(
                Duration::from_millis(250),
                2.0,
                Duration::from_millis(500),
            ),
            seed: 7,
            live: false,
        };
        let report = run(&config).await.unwrap();
        assert_eq!(report.phases.len(), 2);
        assert_eq!(report.wrong_replies(), 0, "{}", report.summary());
        for p in &report.phases {
            assert!(p.ok > 0 && p.requests >= p.ok, "{}", report.summary());
            // Every client lost its connection and came back.
            assert!(p.attempts >= 40, "{}", report.summary());
            assert!(p.all_back_after.is_some(), "{}", report.summary());
            assert!(p.reconnected >= 40, "{}", report.summary());
            assert!(p.errors.keys().all(|k| k != "hung"), "{}", report.summary());
        }
        // Without jitter, every client's first reconnect attempt lands in one window.
        assert!(report.phases[0].peak >= 40, "{}", report.summary());
        let csv = report.csv();
        assert!(csv.starts_with("window_start_ms,none,full\n"), "{csv}");
        let total: u64 = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(
            total,
            report.phases[0].attempts_per_window.iter().sum::<u64>()
        );
        let summary = report.summary();
        assert!(
            summary.contains("none jitter") && summary.contains("full jitter"),
            "{summary}"
        );
    }
}
