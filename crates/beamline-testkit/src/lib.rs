//! Test support for beamline's own tests and benches (a dev-dependency; never published).
//!
//! - [`RedisServer`]: a real `redis-server` on a free loopback port, killed on drop, that
//!   can be stopped and restarted on the same port to test reconnects.
//! - [`free_port`]: a loopback port nothing listens on right now.
//! - [`open_fds`]: how many file descriptors this process holds, to prove nothing leaked.
//! - [`TestPki`]: a CA made at test time, leaf certificates it signs, and
//!   rustls client/server configs built on the ring provider.
//!
//! A missing `redis-server` is a test failure whose message is the command that installs
//! it: a real-peer test is never skipped silently.

#![forbid(unsafe_code)]

mod redis;
mod tls;

pub use redis::RedisServer;
pub use tls::TestPki;

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

#[cfg(test)]
mod tests {
    use super::*;

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
