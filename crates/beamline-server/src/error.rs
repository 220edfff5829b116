//! Errors of the server's operations, one enum per operation.

use std::io;

use crate::handle::ServerState;
use crate::listen::ListenAddr;

/// Why [`Server::serve_handler`](crate::Server::serve_handler) / [`Server::serve_fn`](crate::Server::serve_fn) did
/// not start a server. Nothing was left running: listeners bound before the failure are
/// closed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// No address to listen on was given.
    #[error("the server has no address to listen on (call bind, bind_tls or bind_unix)")]
    NoListeners,
    /// A setting has a value the server cannot work with.
    #[error("invalid server setting `{setting}`: {reason}")]
    Invalid {
        /// The builder method.
        setting: &'static str,
        /// What is wrong with the value.
        reason: &'static str,
    },
    /// Called outside a tokio runtime.
    #[error("a server must be started inside a tokio runtime")]
    NoRuntime,
    /// An address could not be bound (in use, no permission, a Unix path that exists).
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address as requested.
        addr: ListenAddr,
        /// The OS error.
        source: io::Error,
    },
    /// A socket handed to this process ([`Server::listen_fds`](crate::Server::listen_fds))
    /// cannot be served as given.
    #[error("cannot serve the socket handed over for {addr}: {reason}")]
    Inherited {
        /// Its address.
        addr: ListenAddr,
        /// Why.
        reason: &'static str,
    },
}

/// Why [`ServerHandle::suspend`](crate::ServerHandle::suspend) did nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SuspendError {
    /// The server is not running (already suspended, draining or stopped).
    #[error("cannot suspend a server that is {state}")]
    NotRunning {
        /// Its state.
        state: ServerState,
    },
}

/// Why [`ServerHandle::resume`](crate::ServerHandle::resume) did not reopen the listeners.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    /// The server is not suspended.
    #[error("cannot resume a server that is {state}")]
    NotSuspended {
        /// Its state.
        state: ServerState,
    },
    /// An address could not be bound again: another listener took the port meanwhile, or,
    /// for a port in the ephemeral range (a port 0 resolved), an outgoing connection was
    /// given it as its local port. The server stays suspended, with none of its listeners
    /// open; resuming may be retried.
    #[error("cannot listen on {addr} again")]
    Bind {
        /// The address.
        addr: ListenAddr,
        /// The OS error.
        source: io::Error,
    },
}

/// Why [`ServerHandle::shutdown`](crate::ServerHandle::shutdown) did not drain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShutdownError {
    /// A shutdown already finished. (A cancelled one is taken up, not refused.)
    #[error("the server is already {state}")]
    AlreadyShutDown {
        /// Its state.
        state: ServerState,
    },
}
