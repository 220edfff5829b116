//! A handler's panic or error closes only its own connection, is counted, and is logged with
//! the connection's id; links and messages reach a connection as its process.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use beamline_server::{
    ConnError, Connection, ExitReason, Flow, Handler, HandlerContext, Info, Server,
};
use bytes::BytesMut;
use common::*;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Echoes; panics on "panic", fails on "fail"; tells the test its connection id first.
#[derive(Clone)]
struct Fragile {
    ids: mpsc::UnboundedSender<u64>,
}

impl Handler for Fragile {
    async fn on_connect(&mut self, conn: &mut HandlerContext<'_>) -> Result<Flow, ExitReason> {
        self.ids.send(conn.id().as_u64()).unwrap();
        Ok(Flow::Continue)
    }

    async fn on_data(
        &mut self,
        data: &mut BytesMut,
        conn: &mut HandlerContext<'_>,
    ) -> Result<Flow, ExitReason> {
        match &data[..] {
            b"panic" => panic!("handler bug on purpose"),
            b"fail" => return Err(std::io::Error::other("handler refused").into()),
            _ => {}
        }
        echo_back(data, conn).await
    }
}

async fn fragile_server() -> (beamline_server::ServerHandle, mpsc::UnboundedReceiver<u64>) {
    let (ids, rx) = mpsc::unbounded_channel();
    let server = Server::new()
        .bind(localhost())
        .serve_handler(Fragile { ids })
        .unwrap();
    (server, rx)
}

#[tokio::test]
async fn a_panicking_handler_closes_only_its_connection_and_is_logged_with_its_id() {
    let logs = Logs::default();
    let _capture = logs.capture();
    let (server, mut ids) = fragile_server().await;
    let mut healthy = TcpStream::connect(addr(&server)).await.unwrap();
    let _healthy_id = ids.recv().await.unwrap();
    let mut doomed = TcpStream::connect(addr(&server)).await.unwrap();
    let doomed_id = ids.recv().await.unwrap();

    tokio::io::AsyncWriteExt::write_all(&mut doomed, b"panic")
        .await
        .unwrap();
    assert!(read_until_closed(&mut doomed).await.is_empty());
    let stats = stats_until(&server, |s| s.panicked == 1).await;
    assert_eq!(stats.active, 1);

    // The other connection and the acceptors carry on.
    assert_eq!(round_trip(&mut healthy, b"still here").await, b"still here");
    let mut fresh = TcpStream::connect(addr(&server)).await.unwrap();
    ids.recv().await.unwrap();
    assert_eq!(round_trip(&mut fresh, b"new").await, b"new");

    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("connection closed") && l.contains("reason=panic"))
        .unwrap_or_else(|| panic!("no panic logged:\n{text}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains(&format!("conn_id={doomed_id}")), "{line}");
    assert!(line.contains("handler bug on purpose"), "{line}");
}

#[tokio::test]
async fn a_failing_handler_closes_only_its_connection_and_is_logged_with_its_id() {
    let logs = Logs::default();
    let _capture = logs.capture();
    let (server, mut ids) = fragile_server().await;
    let mut healthy = TcpStream::connect(addr(&server)).await.unwrap();
    ids.recv().await.unwrap();
    let mut failing = TcpStream::connect(addr(&server)).await.unwrap();
    let failing_id = ids.recv().await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut failing, b"fail")
        .await
        .unwrap();
    assert!(read_until_closed(&mut failing).await.is_empty());
    let stats = stats_until(&server, |s| s.errored == 1).await;
    assert_eq!((stats.active, stats.panicked), (1, 0));
    assert_eq!(round_trip(&mut healthy, b"ok").await, b"ok");
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("connection closed") && l.contains("reason=error"))
        .unwrap_or_else(|| panic!("no failure logged:\n{text}"));
    assert!(
        line.contains("WARN") && line.contains(&format!("conn_id={failing_id}")),
        "{line}"
    );
    assert!(line.contains("handler refused"), "{line}");
}

#[tokio::test]
async fn a_panicking_connection_function_closes_only_its_connection() {
    let server = Server::new()
        .bind(localhost())
        .serve_fn(|mut conn: Connection| async move {
            let mut first = [0u8; 1];
            conn.read_exact(&mut first).await?;
            if first[0] == b'!' {
                panic!("function bug on purpose");
            }
            tokio::io::AsyncWriteExt::write_all(&mut conn, &first).await?;
            echo_fn(conn).await
        })
        .unwrap();
    let mut healthy = TcpStream::connect(addr(&server)).await.unwrap();
    assert_eq!(round_trip(&mut healthy, b"h").await, b"h");
    let mut doomed = TcpStream::connect(addr(&server)).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut doomed, b"!")
        .await
        .unwrap();
    assert!(read_until_closed(&mut doomed).await.is_empty());
    assert_eq!(stats_until(&server, |s| s.panicked == 1).await.active, 1);
    assert_eq!(round_trip(&mut healthy, b"alive").await, b"alive");
}

/// A peer's reset is counted as an error, but the connection's process ends normally (it is
/// the peer's business), after `on_error`.
#[derive(Clone)]
struct ResetAware(mpsc::UnboundedSender<std::io::ErrorKind>);

impl Handler for ResetAware {
    async fn on_data(
        &mut self,
        data: &mut BytesMut,
        _conn: &mut HandlerContext<'_>,
    ) -> Result<Flow, ExitReason> {
        data.clear();
        Ok(Flow::Continue)
    }

    fn on_error(
        &mut self,
        error: &ConnError,
        _info: &beamline_server::ConnInfo,
    ) -> Result<(), ExitReason> {
        match error {
            ConnError::Read(error) => self.0.send(error.kind()).unwrap(),
            other => panic!("not a read error: {other}"),
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_peer_reset_reaches_on_error_and_counts_as_errored() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server = Server::new()
        .bind(localhost())
        .serve_handler(ResetAware(tx))
        .unwrap();
    let mut client = TcpStream::connect(addr(&server)).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut client, b"x")
        .await
        .unwrap();
    // SO_LINGER 0: close sends an RST.
    socket2::SockRef::from(&client)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(client);
    assert_eq!(
        rx.recv().await.unwrap(),
        std::io::ErrorKind::ConnectionReset
    );
    let stats = stats_until(&server, |s| s.errored == 1).await;
    assert_balanced(&stats);
}

/// Messages and links: the connection is a process other processes can talk to.
#[derive(Clone)]
struct Chatty(mpsc::UnboundedSender<beamline_process::Addr<String>>);

impl Handler<String> for Chatty {
    async fn on_connect(
        &mut self,
        conn: &mut HandlerContext<'_, String>,
    ) -> Result<Flow, ExitReason> {
        // Watch a short-lived process: its Down notice arrives as `on_info`.
        let worker =
            beamline_process::spawn(|_ctx: beamline_process::Context<()>| async { Ok(()) });
        conn.context().monitor(&worker.pid());
        self.0.send(conn.addr()).unwrap();
        Ok(Flow::Continue)
    }

    async fn on_data(
        &mut self,
        data: &mut BytesMut,
        _conn: &mut HandlerContext<'_, String>,
    ) -> Result<Flow, ExitReason> {
        data.clear();
        Ok(Flow::Continue)
    }

    async fn on_message(
        &mut self,
        message: String,
        conn: &mut HandlerContext<'_, String>,
    ) -> Result<Flow, ExitReason> {
        conn.send(message.as_bytes()).await?;
        Ok(Flow::Continue)
    }

    async fn on_info(
        &mut self,
        info: Info,
        conn: &mut HandlerContext<'_, String>,
    ) -> Result<Flow, ExitReason> {
        if let Info::Down { reason, .. } = info {
            conn.send(format!("down: {reason}\n").as_bytes()).await?;
        }
        Ok(Flow::Continue)
    }
}

#[tokio::test]
async fn connections_get_messages_and_notices_and_can_be_monitored() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server = Server::new()
        .bind(localhost())
        .serve_handler(Chatty(tx))
        .unwrap();
    let mut client = TcpStream::connect(addr(&server)).await.unwrap();
    let conn = rx.recv().await.unwrap();
    let mut down = vec![0u8; 13];
    client.read_exact(&mut down).await.unwrap();
    assert_eq!(down, b"down: normal\n");
    conn.cast("hello from another process\n".to_string())
        .await
        .unwrap();
    let mut buf = vec![0u8; 27];
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(buf, b"hello from another process\n");
    // The connection's process can be watched like any other.
    let watcher = beamline_process::spawn(move |ctx: beamline_process::Context<()>| async move {
        ctx.monitor(&conn.pid());
        let mut ctx = ctx;
        match ctx.recv().await {
            beamline_process::Event::Info(beamline_process::Info::Down { reason, .. }) => {
                Err(reason)
            }
            _ => Ok(()),
        }
    });
    drop(client);
    let reason = watcher.exited().await;
    assert!(matches!(reason, ExitReason::Normal), "{reason:?}");
}
