//! Test support for beamline's own tests and benches (a dev-dependency; never published).
//!
//! - [`RedisServer`]: a real `redis-server` on a free loopback port, killed on drop, that
//!   can be stopped and restarted on the same port to test reconnects.
//! - [`RedisCluster`]: a real Redis Cluster (3 primaries and 3 replicas by default) of
//!   `redis-server` processes on free loopback ports, with kill -9 of a primary, manual
//!   failover and slot migration in steps (so a test can stand in the middle of one).
//! - [`Haproxy`]: a real HAProxy in TCP mode in front of a server under test, one frontend
//!   per `server` line option (`send-proxy`, `send-proxy-v2`), killed on drop.
//! - [`free_port`]: a loopback port nothing listens on right now.
//! - [`open_fds`]: how many file descriptors this process holds, to prove nothing leaked.
//! - [`Rng`]: a small seeded generator, so a randomized test replays from its seed.
//! - [`quiet_panics`]: a panic hook that keeps a test's deliberate panics out of its output.
//! - [`ExplosiveLines`]: a line codec whose decoder panics on `boom`, for the tests of what a
//!   panic in user code a connection's driver runs becomes.
//! - [`replay_inputs`]: what the fuzz targets' replay binaries share (corpus files and
//!   directories through a check, without libFuzzer).
//! - [`TestPki`]: a CA made at test time, leaf certificates it signs, and
//!   rustls client/server configs built on the ring provider.
//! - [`Witness`]: a timer that fires only if the task under test yields (cooperative
//!   scheduling tests).
//! - [`TraceCapture`]: a `tracing` subscriber that records every event as text.
//! - [`h2`]: raw HTTP/2 frames for attack tests (the rapid-reset burst, reading `GOAWAY`).
//! - [`assert_printed_once`]: an error's chain, as a reporter prints it, names each cause
//!   once.
//!
//! A missing `redis-server` or `haproxy` is a test failure whose message is the command
//! that installs it: a real-peer test is never skipped silently.

#![forbid(unsafe_code)]

mod cluster;
mod codec;
mod coop;
mod errors;
pub mod h2;
mod haproxy;
mod redis;
mod resp;
mod tls;
mod trace;

pub use cluster::{CLUSTER_NODE_TIMEOUT, Failover, RedisCluster, SlotMigration};
pub use codec::ExplosiveLines;
pub use coop::{WITNESS_DELAY, Witness};
pub use errors::{assert_printed_once, error_chain};
pub use haproxy::Haproxy;
pub use redis::RedisServer;
pub use resp::RedisReply;
pub use tls::TestPki;
pub use trace::TraceCapture;

use std::net::{Ipv4Addr, TcpListener};

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// The OS picks it (bind to port 0) and the listener is dropped before returning, so
/// another process could take it in between: callers that start an external server on it
/// retry with a new port when the bind fails (as [`RedisServer::start`] does).
///
/// # Panics
/// If the loopback interface cannot be bound at all (the test environment is broken).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("bound socket has no address: {e}"))
        .port()
}

/// How many file descriptors this process has open (entries of `/proc/self/fd`).
///
/// # Panics
/// If `/proc/self/fd` cannot be read (not Linux, or no procfs).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap_or_else(|e| panic!("cannot read /proc/self/fd: {e}"))
        .count()
}

/// Installs, once per test binary, a panic hook that keeps deliberate panics (those whose
/// message `is_deliberate` recognizes) out of the test output; every other panic, a real
/// failure, still prints. Later calls keep the first hook.
pub fn quiet_panics(is_deliberate: fn(&str) -> bool) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or_default();
            if !is_deliberate(message) {
                default(info);
            }
        }));
    });
}

/// Runs `check` on every file under `paths` (directories are walked in name order), or,
/// when `paths` is empty, under `default` if it exists; returns how many inputs were
/// checked. What a fuzz target's replay binary does with its arguments: a corpus, or the
/// crashes libFuzzer saved.
///
/// # Panics
/// If a named file or directory cannot be read.
pub fn replay_inputs(
    paths: impl IntoIterator<Item = std::path::PathBuf>,
    default: &std::path::Path,
    mut check: impl FnMut(&[u8]),
) -> usize {
    fn replay(path: &std::path::Path, check: &mut dyn FnMut(&[u8]), count: &mut usize) {
        if path.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .collect();
            entries.sort();
            for entry in entries {
                replay(&entry, check, count);
            }
        } else {
            let data = std::fs::read(path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            check(&data);
            *count += 1;
        }
    }
    let mut paths: Vec<std::path::PathBuf> = paths.into_iter().collect();
    if paths.is_empty() && default.exists() {
        paths.push(default.to_path_buf());
    }
    let mut count = 0;
    for path in &paths {
        replay(path, &mut check, &mut count);
    }
    count
}

/// A number no other call in this process returns: for private file names.
pub(crate) fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The deterministic generator of randomized tests: the workspace's one generator,
/// [`SplitMix64`](beamline_backoff::SplitMix64) (the one backoff jitter, the chaos proxy's
/// latency jitter and the balancer use), with the two draws tests want. The same seed gives
/// the same sequence, so a failing run can be replayed.
#[derive(Debug, Clone)]
pub struct Rng(beamline_backoff::SplitMix64);

impl Rng {
    /// A generator for `seed` (any value, zero included).
    pub fn new(seed: u64) -> Self {
        Rng(beamline_backoff::SplitMix64::new(seed))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next()
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_replays_from_its_seed_and_stays_in_range() {
        let (mut a, mut b, mut c) = (Rng::new(0), Rng::new(0), Rng::new(1));
        let first: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        assert_eq!(first, (0..8).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert_ne!(first, (0..8).map(|_| c.next_u64()).collect::<Vec<_>>());
        assert!(first.iter().all(|&x| x != 0));
        assert!((0..1000).all(|_| a.below(7) < 7));
    }

    #[test]
    fn replay_walks_directories_in_order_and_falls_back_to_the_default() {
        let dir = std::env::temp_dir().join(format!("beamline-replay-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("b"), b"2").unwrap();
        std::fs::write(dir.join("a"), b"1").unwrap();
        std::fs::write(dir.join("sub").join("c"), b"3").unwrap();
        let mut seen = Vec::new();
        let n = replay_inputs(Vec::new(), &dir, |data| seen.push(data.to_vec()));
        assert_eq!(
            (n, seen),
            (3, vec![b"1".to_vec(), b"2".to_vec(), b"3".to_vec()])
        );
        let mut one = 0;
        replay_inputs([dir.join("b")], &dir, |_| one += 1);
        assert_eq!(one, 1);
        assert_eq!(replay_inputs(Vec::new(), &dir.join("none"), |_| {}), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn free_port_is_bindable() {
        let port = free_port();
        assert_ne!(port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }

    #[test]
    fn open_fds_sees_a_new_descriptor() {
        let before = open_fds();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        assert!(open_fds() > before);
        drop(listener);
    }
}
