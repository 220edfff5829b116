//! `chat`: a line-based chat room on beamline-server where every member is a process and
//! the room is a process that broadcasts by message passing.
//!
//! ```text
//!                 Supervisor ── room (permanent)
//!                                 ▲ cast (waits for room)     │ try_cast (never waits)
//! server ─► one process per connection = member ──────────────┘
//! ```
//!
//! - A **member** is a connection's own process (beamline-server's callback form). Lines
//!   its user types become messages to the room (`cast`: a member that talks faster than
//!   the room listens is slowed down); lines the room sends it arrive in its mailbox and are
//!   written to its socket.
//! - The **room** is one process under a supervisor (restarted if it ever crashes). It
//!   broadcasts with `try_cast`, which never waits. A member whose mailbox is full — it is
//!   stuck writing to a socket whose peer does not read — is dropped at once (its process is
//!   killed, its connection closed) and the others are told: one slow member never stalls
//!   the room.
//! - The room **monitors** members and nobody links to it, so a member that quits, loses its
//!   connection or panics is a `Down` notice for the room ("* guest12 left"), never a crash.
//!
//! Commands: `/nick NAME`, `/who`, `/quit`; anything else is said to the room.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use beamline_examples::chat::{self, ChatConfig};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = chat::start(ChatConfig::new().addr("127.0.0.1:0".parse()?)).await?;
//! println!("nc 127.0.0.1 {}", server.local_addr().port());
//! server.shutdown(Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```

mod member;
mod room;

use std::net::SocketAddr;
use std::time::Duration;

use beamline::process::{ChildSpec, Strategy, Supervisor, SupervisorSpec};
use beamline::server::{DrainReport, Server, ServerHandle, ShutdownError};

use self::member::Member;

/// The address `chat` listens on by default.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7007";

/// How a chat server is set up.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    addr: SocketAddr,
    max_line_len: usize,
    idle_timeout: Option<Duration>,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 7007)),
            max_line_len: 1024,
            idle_timeout: None,
        }
    }
}

impl ChatConfig {
    /// The defaults: [`DEFAULT_ADDR`], lines up to 1 KiB, no idle timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where to listen (`127.0.0.1:0` picks a free port: see [`ChatServer::local_addr`]).
    #[must_use]
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// The longest line a member may send; a longer one is dropped with a notice to its
    /// sender.
    #[must_use]
    pub fn max_line_len(mut self, bytes: usize) -> Self {
        self.max_line_len = bytes;
        self
    }

    /// Close a member's connection after this long without input (`None`: never).
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }
}

/// Why [`start`] failed. Nothing is left running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChatStartError {
    /// The room's supervisor refused its spec.
    #[error("the chat room could not start")]
    Room(#[from] beamline::process::StartError),
    /// The server could not start (the address is taken, no tokio runtime, ...).
    #[error("the chat server could not start")]
    Server(#[from] beamline::server::StartError),
}

/// A running chat server: the room's supervisor and the server whose connections are the
/// members.
///
/// Dropping it kills the room and every member; [`shutdown`](Self::shutdown) says goodbye
/// first.
#[derive(Debug)]
pub struct ChatServer {
    server: ServerHandle,
    local_addr: SocketAddr,
    supervisor: Supervisor,
}

/// Starts the room (under a supervisor) and the server, on the current tokio runtime.
///
/// # Errors
/// [`ChatStartError`]: the server could not bind or start. Nothing is left running.
pub async fn start(config: ChatConfig) -> Result<ChatServer, ChatStartError> {
    let room = ChildSpec::permanent("room", room::run);
    let handle = room.handle();
    let supervisor =
        Supervisor::start(SupervisorSpec::new(Strategy::OneForOne).child(room)).await?;
    let server = Server::new()
        .bind(config.addr)
        .read_timeout(config.idle_timeout)
        .serve_handler(Member::new(handle, config.max_line_len));
    let server = match server {
        Ok(server) => server,
        Err(e) => {
            let _ = supervisor.shutdown().await;
            return Err(e.into());
        }
    };
    // One TCP address was bound, so there is one to report.
    let local_addr = server.local_addr().unwrap_or(config.addr);
    Ok(ChatServer {
        server,
        local_addr,
        supervisor,
    })
}

impl ChatServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The server underneath: stats (`killed` counts members dropped as too slow).
    pub fn server(&self) -> &ServerHandle {
        &self.server
    }

    /// Stops accepting, tells every member the server is going away and closes them
    /// (killing what is left at `drain_timeout`), then stops the room.
    ///
    /// # Errors
    /// [`ShutdownError`] from beamline-server (a shutdown already under way).
    pub async fn shutdown(&self, drain_timeout: Duration) -> Result<DrainReport, ShutdownError> {
        let report = self.server.shutdown(drain_timeout).await?;
        // The room's supervisor answers or is already gone; either way the room is stopped.
        let _ = self.supervisor.shutdown().await;
        Ok(report)
    }
}

impl Drop for ChatServer {
    fn drop(&mut self) {
        // Members are killed with the server handle; the room goes with its supervisor.
        self.supervisor.pid().kill();
    }
}
