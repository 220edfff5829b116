//! One connection: what a handler knows about it ([`ConnInfo`]), its byte stream ([`Stream`]),
//! the two ways to handle it ([`Handler`] callbacks, or a function that owns a
//! [`Connection`]), and the process body that runs either.

mod callbacks;
mod connection;
mod deadline;
mod error;
mod handler;
mod proxied;
pub(crate) mod run;
mod send;
mod service;
mod stream;
mod tls;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use beamline_process::ProcessId;

use crate::proxy::ProxyHeader;

pub use connection::{Activity, Busy, Connection, ShutdownSignal};
pub use error::ConnError;
#[allow(deprecated)]
pub use handler::Conn;
pub use handler::{Flow, Handler, HandlerContext};
pub use stream::Stream;

pub(crate) use stream::{ConnState, Io};

/// How a connection reached the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// Plain TCP.
    Tcp,
    /// TLS over TCP (rustls).
    Tls,
    /// A Unix domain stream socket.
    Unix,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Unix => "unix",
        })
    }
}

/// One end of a connection: an IP socket address, or a Unix socket path (peers of a Unix
/// listener are usually unnamed: `Unix(None)`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// TCP or TLS.
    Ip(SocketAddr),
    /// A Unix domain socket, with its path when it has one.
    Unix(Option<PathBuf>),
}

impl Endpoint {
    /// The IP socket address, for TCP and TLS.
    pub fn ip(&self) -> Option<SocketAddr> {
        match self {
            Self::Ip(addr) => Some(*addr),
            Self::Unix(_) => None,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(addr) => write!(f, "{addr}"),
            Self::Unix(Some(path)) => write!(f, "unix:{}", path.display()),
            Self::Unix(None) => f.write_str("unix:(unnamed)"),
        }
    }
}

/// What a handler knows about its connection. Fixed for the connection's life.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub(crate) id: ProcessId,
    pub(crate) transport: Transport,
    pub(crate) peer: Endpoint,
    pub(crate) local: Endpoint,
    /// Boxed: only TLS connections have it, and every connection carries this struct.
    pub(crate) tls: Option<Box<TlsInfo>>,
    /// Boxed likewise: only connections that came with a PROXY header have it.
    pub(crate) proxy: Option<Box<ProxyInfo>>,
}

/// What a PROXY header said, and who said it.
#[derive(Clone, Debug)]
pub(crate) struct ProxyInfo {
    /// The balancer: the connection's real peer.
    pub(crate) via: Endpoint,
    pub(crate) header: ProxyHeader,
}

/// What the TLS handshake negotiated.
#[derive(Clone, Debug)]
pub(crate) struct TlsInfo {
    pub(crate) sni: Option<Box<str>>,
    pub(crate) alpn: Option<Box<[u8]>>,
}

impl ConnInfo {
    /// The connection's id: the id of the process that serves it, as it appears in the
    /// server's and beamline-process's `tracing` events (`conn_id` / `pid` fields).
    pub fn id(&self) -> ProcessId {
        self.id
    }

    /// TCP, TLS or Unix.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The peer's address: the client's. Behind a balancer that sent a PROXY header
    /// ([`Server::proxy_protocol`](crate::Server::proxy_protocol)) it is the address the
    /// header carried (unless it carried none: a v1 `UNKNOWN`, a v2 `LOCAL` health check),
    /// and the balancer's is [`via`](Self::via).
    pub fn peer(&self) -> &Endpoint {
        &self.peer
    }

    /// The address of the balancer the connection came through, when a PROXY header
    /// replaced [`peer`](Self::peer) with the client's address; `None` otherwise.
    pub fn via(&self) -> Option<&Endpoint> {
        let proxy = self.proxy.as_ref()?;
        (proxy.via != self.peer).then_some(&proxy.via)
    }

    /// The PROXY header the connection started with, if its listener reads one and it
    /// sent one: its version, addresses and v2 TLVs (ALPN, authority, unique id, ...).
    pub fn proxy_header(&self) -> Option<&ProxyHeader> {
        self.proxy.as_ref().map(|p| &p.header)
    }

    /// The server's address for this connection (the listener's).
    pub fn local(&self) -> &Endpoint {
        &self.local
    }

    /// For TLS, the server name the client asked for (SNI), if it sent one.
    pub fn sni(&self) -> Option<&str> {
        self.tls.as_ref()?.sni.as_deref()
    }

    /// For TLS, the application protocol negotiated through ALPN, if any.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.tls.as_ref()?.alpn.as_deref()
    }
}

/// Which timer ended a wait, as passed to [`Handler::on_timeout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// Nothing was received for the read timeout
    /// ([`Server::read_timeout`](crate::Server::read_timeout)). Only bytes from the peer reset
    /// it: not writes, not messages.
    ReadIdle,
    /// The connection reached its maximum lifetime
    /// ([`Server::lifetime`](crate::Server::lifetime)). It is closed after the callback
    /// whatever the callback returns. (A lifetime that passes during a callback kills the
    /// connection instead: see [`Handler`](crate::Handler).)
    Lifetime,
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ReadIdle => "read timeout",
            Self::Lifetime => "lifetime",
        })
    }
}
