use super::*;
use crate::{ConnInfo, ServerStats, ShutdownSignal, Stream};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}

#[test]
fn handles_cross_tasks_and_threads() {
    // The facade and users keep the handle in an Arc, move connections into tasks.
    send_sync::<ServerHandle>();
    send_sync::<Server>();
    send_sync::<ShutdownSignal>();
    send_sync::<ConnInfo>();
    send_sync::<ServerStats>();
    send::<Connection>();
    send::<Stream>();
}

#[test]
fn defaults_are_the_documented_ones() {
    let s = Server::new();
    assert_eq!(s.max_connections, DEFAULT_MAX_CONNECTIONS);
    assert_eq!(s.overload, Overload::Pause);
    assert_eq!(s.per_ip, None);
    assert_eq!(s.conn.handshake_timeout, DEFAULT_HANDSHAKE_TIMEOUT);
    assert_eq!(s.conn.read_timeout, Some(DEFAULT_READ_TIMEOUT));
    assert_eq!(s.conn.send_timeout, Some(DEFAULT_SEND_TIMEOUT));
    assert_eq!(s.conn.lifetime, None);
    assert_eq!(s.conn.read_buffer, 8 * 1024);
    assert_eq!(s.conn.max_read_buffer, 1 << 20);
    assert_eq!(s.prefix_v6, 64);
    assert_eq!(s.socket.backlog, 1024);
    assert!(s.socket.nodelay && !s.socket.reuseport && s.socket.keepalive.is_none());
    assert_eq!(s.acceptors, None);
}
