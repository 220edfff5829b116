//! A TCP echo server: every connection is its own supervised process (the `Handler` form).
//!
//! Try it:
//!
//! ```sh
//! cargo run --release --example echo            # listens on 127.0.0.1:7000
//! cargo run --release --example echo -- --port 7001
//! cargo run --release --example echo -- --addr [::1]:7000
//! nc 127.0.0.1 7000                             # type lines; they come back
//!
//! # socket activation: systemd (or its test tool) listens, and starts echo on the first
//! # connection with the listening socket as descriptor 3
//! systemd-socket-activate -l 127.0.0.1:7002 target/release/examples/echo
//! ```
//!
//! Started with sockets passed by systemd (`LISTEN_FDS`), it serves on those instead of
//! binding, and with `NOTIFY_SOCKET` set it says `READY=1` once serving and `STOPPING=1` when
//! it drains (a `Type=notify` unit).
//!
//! Open a few `nc` sessions, then press Ctrl-C in the server: it stops accepting, tells every
//! connection "server shutting down" and closes it, and prints how many connections drained
//! (and how many had to be aborted at the 5 s deadline). A client that sends without ever
//! reading the echoes (`yes | nc 127.0.0.1 7000 | sleep 1000`) is closed by the 10 s send
//! timeout.

use std::net::SocketAddr;
use std::time::Duration;

use beamline::server::{
    ActivationError, ExitReason, Flow, Handler, HandlerContext, ListenFds, Notifier, Server,
    TimeoutKind,
};
use bytes::BytesMut;

/// One per connection (cloned from the prototype given to `start`).
#[derive(Clone, Default)]
struct Echo {
    lines: u64,
}

impl Handler for Echo {
    async fn on_connect(&mut self, conn: &mut HandlerContext<'_>) -> Result<Flow, ExitReason> {
        let hello = format!("hello {}, you are connection {}\n", conn.peer(), conn.id());
        conn.send(hello.as_bytes()).await?;
        Ok(Flow::Continue)
    }

    async fn on_data(
        &mut self,
        data: &mut BytesMut,
        conn: &mut HandlerContext<'_>,
    ) -> Result<Flow, ExitReason> {
        self.lines += data.iter().filter(|&&b| b == b'\n').count() as u64;
        conn.send(data).await?;
        data.clear();
        Ok(Flow::Continue)
    }

    async fn on_timeout(
        &mut self,
        _kind: TimeoutKind,
        conn: &mut HandlerContext<'_>,
    ) -> Result<Flow, ExitReason> {
        let _ = conn.send(b"idle for too long, bye\n").await;
        Ok(Flow::Close)
    }

    async fn on_shutdown(&mut self, conn: &mut HandlerContext<'_>) -> Result<Flow, ExitReason> {
        let bye = format!(
            "server shutting down after {} lines from you, bye\n",
            self.lines
        );
        let _ = conn.send(bye.as_bytes()).await;
        Ok(Flow::Close)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    beamline_examples::cli::init_tracing();
    let addr: SocketAddr = beamline_examples::cli::listen_addr("127.0.0.1:7000")?;
    let server = match ListenFds::from_env() {
        Ok(fds) => Server::new().listen_fds(fds),
        Err(ActivationError::NotActivated) => Server::new().bind(addr),
        Err(e) => return Err(e.into()),
    };
    let server = server
        .read_timeout(Some(Duration::from_secs(300)))
        // A client that sends but never reads its echoes is closed once its window has been
        // full for 10 s: it holds no connection slot for longer.
        .send_timeout(Some(Duration::from_secs(10)))
        .serve_handler(Echo::default())?;
    println!(
        "echo listening on {:?}; Ctrl-C stops it gracefully",
        server.local_addrs()
    );
    if let Some(local) = server.local_addr() {
        println!("try: nc {} {}", local.ip(), local.port());
    }

    let notifier = Notifier::from_env()?;
    if let Some(n) = &notifier {
        n.ready()?;
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        stop = tokio::signal::ctrl_c() => stop?,
        _ = terminate.recv() => {}
    }
    println!("draining (at most 5 s)...");
    if let Some(n) = &notifier {
        n.stopping()?;
    }
    let report = server.shutdown(Duration::from_secs(5)).await?;
    let stats = server.stats();
    println!(
        "stopped: {} drained, {} aborted; {} connections served, {} bytes echoed",
        report.drained, report.aborted, stats.accepted, stats.bytes_out
    );
    Ok(())
}
