//! A line-based chat room on beamline-server: every member is its own process, the room is
//! a supervised process that broadcasts by message passing, and a member too slow to keep
//! up is dropped rather than allowed to stall the room.
//!
//! Try it:
//!
//! ```sh
//! cargo run --release --example chat                 # listens on 127.0.0.1:7007
//! cargo run --release --example chat -- --port 7100  # or --addr 127.0.0.1:7100
//!
//! nc 127.0.0.1 7007        # in two or three terminals (or `telnet 127.0.0.1 7007`)
//! /nick ada                # then type lines: the others see `<ada> hello`
//! /who                     # who is here
//! /quit
//! ```
//!
//! A member that never reads, to watch it being dropped (the others keep chatting):
//!
//! ```sh
//! python3 -c 'import socket,time; s=socket.create_connection(("127.0.0.1",7007)); time.sleep(3600)'
//! yes "$(head -c 900 /dev/zero | tr "\0" x)" | nc 127.0.0.1 7007 > /dev/null
//! ```
//!
//! Ctrl-C stops it gracefully: every member is told the server is shutting down.

use std::net::SocketAddr;
use std::time::Duration;

use beamline_examples::chat::{self, ChatConfig, DEFAULT_ADDR};

/// `--port` / `--addr`, or the default address.
fn addr() -> Result<SocketAddr, Box<dyn std::error::Error>> {
    let mut addr: SocketAddr = DEFAULT_ADDR.parse()?;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => addr.set_port(value.parse()?),
            "--addr" => addr = value.parse()?,
            other => return Err(format!("unknown flag {other} (use --port or --addr)").into()),
        }
    }
    Ok(addr)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let server = chat::start(ChatConfig::new().addr(addr()?)).await?;
    println!(
        "chat listening on {}; try `nc {} {}`; Ctrl-C stops it gracefully",
        server.local_addr(),
        server.local_addr().ip(),
        server.local_addr().port()
    );

    tokio::signal::ctrl_c().await?;
    println!("draining (at most 5 s)...");
    let report = server.shutdown(Duration::from_secs(5)).await?;
    let stats = server.server().stats();
    println!(
        "stopped: {} drained, {} aborted; {} members served, {} dropped as too slow",
        report.drained, report.aborted, stats.accepted, stats.killed
    );
    Ok(())
}
