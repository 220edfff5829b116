//! Real sockets on 127.0.0.1: a line server goes away (listener dropped, connections
//! closed) and comes back on the same port, under a `Reconnect<FramedConnection>`.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beamline_reconnect::WasSent;
use beamline_reconnect::{
    BackoffConfig, Connect, FramedConnection, OfflinePolicy, Reconnect, ReconnectConfig,
    ReconnectError, State,
};
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::timeout;
use tokio_util::codec::{Framed, LinesCodec};

/// Generous bound on every wait, so a broken reconnect fails the test instead of hanging it.
const LIMIT: Duration = Duration::from_secs(10);

/// Answers each line `x` with `ok:x`; lines starting with `hold` are answered or not
/// according to [`Holds`]. Every line received goes into `log`, across restarts.
struct LineServer {
    accept: JoinHandle<()>,
}

type Log = Arc<Mutex<Vec<String>>>;

#[derive(Clone, Copy, PartialEq)]
enum Holds {
    /// Read `hold…` lines and never answer them (the request is in flight when we die).
    Ignore,
    Answer,
}

impl LineServer {
    /// Listens on `port` (0: any free port), with SO_REUSEADDR so a restart can rebind
    /// the port its predecessor just left.
    fn start(port: u16, log: Log, holds: Holds) -> (Self, SocketAddr) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket
            .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .unwrap();
        let listener = socket.listen(128).unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move {
            // Dropping this set (when the task is aborted) aborts every connection task,
            // which closes their sockets: the server is gone, not just deaf.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                connections.spawn(async move {
                    let mut lines = Framed::new(stream, LinesCodec::new_with_max_length(8 * 1024));
                    while let Some(Ok(line)) = lines.next().await {
                        log.lock().unwrap().push(line.clone());
                        let hold = holds == Holds::Ignore && line.starts_with("hold");
                        if !hold && lines.send(format!("ok:{line}")).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (Self { accept }, addr)
    }

    /// Goes away: the listener is dropped and every connection closed.
    async fn stop(self) {
        self.accept.abort();
        let _ = self.accept.await;
    }
}

fn connector(addr: SocketAddr) -> impl Connect<Connection = FramedConnection<String, String>> {
    move || async move {
        let stream = TcpStream::connect(addr).await?;
        Ok::<_, io::Error>(FramedConnection::new(Framed::new(
            stream,
            LinesCodec::new_with_max_length(8 * 1024),
        )))
    }
}

fn config(addr: SocketAddr) -> ReconnectConfig {
    ReconnectConfig::new(OfflinePolicy::Queue {
        max: 1_000,
        deadline: Duration::from_secs(10),
    })
    .name(format!("lines {addr}"))
    .backoff(BackoffConfig::exponential(
        Duration::from_millis(10),
        2.0,
        Duration::from_millis(100),
    ))
    .stable_period(Duration::from_millis(200))
}

async fn wait_state(conn: &Reconnect<FramedConnection<String, String>>, want: fn(&State) -> bool) {
    let mut states = conn.state_changes();
    timeout(LIMIT, states.wait_for(want))
        .await
        .expect("state not reached in time")
        .unwrap();
}

#[tokio::test]
async fn queued_requests_flow_after_the_server_comes_back_on_the_same_port() {
    let log: Log = Arc::default();
    let (server, addr) = LineServer::start(0, log.clone(), Holds::Answer);
    let conn = Reconnect::start(connector(addr), config(addr).sync_connect(true))
        .await
        .unwrap();

    // Before: pipelined requests on the first connection.
    let before: Vec<_> = (0..50)
        .map(|i| {
            let conn = conn.clone();
            tokio::spawn(async move { conn.call(format!("before-{i}")).await })
        })
        .collect();
    for (i, call) in before.into_iter().enumerate() {
        assert_eq!(call.await.unwrap().unwrap(), format!("ok:before-{i}"));
    }

    // The server goes away; the client notices and backs off (connects are refused).
    server.stop().await;
    wait_state(&conn, |s| matches!(s, State::BackingOff { .. })).await;

    // Requests made while it is down wait in the queue, in the order they were made.
    let mut queued = Vec::new();
    // More than the connection's pipeline (128): the rest wait for room, still in order.
    for i in 0..300 {
        let c = conn.clone();
        queued.push(tokio::spawn(
            async move { c.call(format!("queued-{i}")).await },
        ));
        timeout(LIMIT, async {
            while conn.queued() < i + 1 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("request never queued");
    }
    assert!(!conn.state().is_connected());

    // Back on the same port.
    let (server, again) = LineServer::start(addr.port(), log.clone(), Holds::Answer);
    assert_eq!(again, addr);
    for (i, call) in queued.into_iter().enumerate() {
        let reply = timeout(LIMIT, call).await.unwrap().unwrap().unwrap();
        assert_eq!(reply, format!("ok:queued-{i}"));
    }
    assert_eq!(conn.queued(), 0);

    // None lost, none answered twice: the server saw each request exactly once, and the
    // queued ones in queue order.
    let log = log.lock().unwrap().clone();
    let mut seen = HashMap::new();
    for line in &log {
        *seen.entry(line.clone()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 350);
    assert!(seen.values().all(|&n| n == 1), "duplicates: {seen:?}");
    let queued_order: Vec<_> = log.iter().filter(|l| l.starts_with("queued")).collect();
    let want: Vec<_> = (0..300).map(|i| format!("queued-{i}")).collect();
    assert_eq!(queued_order, want.iter().collect::<Vec<_>>());
    conn.close();
    server.stop().await;
}

#[tokio::test]
async fn in_flight_requests_end_typed_and_only_idempotent_ones_are_replayed() {
    let log: Log = Arc::default();
    let (server, addr) = LineServer::start(0, log.clone(), Holds::Ignore);
    let conn = Reconnect::start(
        connector(addr),
        config(addr).sync_connect(true).max_replays(1),
    )
    .await
    .unwrap();

    // Both are written and never answered; then the server dies.
    let plain = {
        let c = conn.clone();
        tokio::spawn(async move { c.call("hold-plain".to_string()).await })
    };
    let idempotent = {
        let c = conn.clone();
        tokio::spawn(async move { c.call_idempotent("hold-idempotent".to_string()).await })
    };
    timeout(LIMIT, async {
        while log.lock().unwrap().len() < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("requests never reached the server");
    server.stop().await;

    let err = timeout(LIMIT, plain).await.unwrap().unwrap().unwrap_err();
    assert!(
        matches!(err, ReconnectError::ConnectionLost { .. }),
        "{err}"
    );
    assert!(err.was_sent());
    assert!(err.to_string().contains(&addr.to_string()), "{err}");

    // The idempotent one is replayed on the next connection, which answers it.
    let (server, _) = LineServer::start(addr.port(), log.clone(), Holds::Answer);
    let reply = timeout(LIMIT, idempotent).await.unwrap().unwrap().unwrap();
    assert_eq!(reply, "ok:hold-idempotent");
    assert_eq!(
        *log.lock().unwrap(),
        ["hold-plain", "hold-idempotent", "hold-idempotent"]
    );
    conn.close();
    server.stop().await;
}
