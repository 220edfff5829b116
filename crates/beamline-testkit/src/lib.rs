//! Test support for beamline's own tests and benches (a dev-dependency; never published).
//!
//! - [`RedisServer`]: a real `redis-server` on a free loopback port, killed on drop, that
//!   can be stopped and restarted on the same port to test reconnects.
//! - [`free_port`]: a loopback port nothing listens on right now.
//! - [`open_fds`]: how many file descriptors this process holds, to prove nothing leaked.
//! - [`Rng`]: a small seeded generator, so a randomized test replays from its seed.
//! - [`TestPki`]: a CA made at test time, leaf certificates it signs, and
//!   rustls client/server configs built on the ring provider.
//! - [`Witness`]: a timer that fires only if the task under test yields (cooperative
//!   scheduling tests).
//! - [`TraceCapture`]: a `tracing` subscriber that records every event as text.
//! - [`h2`]: raw HTTP/2 frames for attack tests (the rapid-reset burst, reading `GOAWAY`).
//!
//! A missing `redis-server` is a test failure whose message is the command that installs
//! it: a real-peer test is never skipped silently.

#![forbid(unsafe_code)]

mod coop;
pub mod h2;
mod redis;
mod tls;
mod trace;

pub use coop::{WITNESS_DELAY, Witness};
pub use redis::RedisServer;
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

/// A small deterministic generator (xorshift64) for randomized tests: the same seed gives
/// the same sequence, so a failing run can be replayed. Not for anything but tests.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, zero included: it is spread and made non-zero).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
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
