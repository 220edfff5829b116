//! Listening sockets: what a server listens on ([`ListenAddr`]), binding with the socket
//! options set before `listen()` (socket2), and accepting.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, TcpKeepalive, Type};
use tokio::net::{TcpListener, UnixListener};
use tokio_rustls::TlsAcceptor;

use crate::conn::run::AcceptedIo;
use crate::conn::{Endpoint, Transport};
use crate::stats::Stats;

/// An address a server listens on. Before start it is what you asked for; from
/// [`ServerHandle::local_addrs`](crate::ServerHandle::local_addrs) it is what was bound (a
/// port 0 replaced by the port the OS chose, kept across
/// [`suspend`](crate::ServerHandle::suspend) / [`resume`](crate::ServerHandle::resume)).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    /// Plain TCP.
    Tcp(SocketAddr),
    /// TLS over TCP.
    Tls(SocketAddr),
    /// A Unix domain socket at this path (created at bind, removed when the listener closes).
    Unix(PathBuf),
}

impl ListenAddr {
    /// The IP socket address, for TCP and TLS.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(addr) | Self::Tls(addr) => Some(*addr),
            Self::Unix(_) => None,
        }
    }

    /// The transport clients use to reach it.
    pub fn transport(&self) -> Transport {
        match self {
            Self::Tcp(_) => Transport::Tcp,
            Self::Tls(_) => Transport::Tls,
            Self::Unix(_) => Transport::Unix,
        }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "tcp://{addr}"),
            Self::Tls(addr) => write!(f, "tls://{addr}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Socket options applied to listening sockets before `listen()`. On Linux, accepted
/// sockets inherit `TCP_NODELAY` and keepalive from their listener, so nothing is set per
/// connection; elsewhere they are set on each accepted socket.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SocketOptions {
    pub(crate) backlog: u32,
    pub(crate) nodelay: bool,
    pub(crate) keepalive: Option<Duration>,
    pub(crate) reuseport: bool,
}

/// One address to listen on, with the TLS acceptor for a TLS address.
#[derive(Clone)]
pub(crate) struct ListenSpec {
    pub(crate) addr: ListenAddr,
    pub(crate) tls: Option<TlsAcceptor>,
}

impl fmt::Debug for ListenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenSpec")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// The listeners bound for one address: one shared by every acceptor, or with `SO_REUSEPORT`
/// one per acceptor (the kernel spreads connections over them).
#[derive(Debug)]
pub(crate) struct Bound {
    pub(crate) spec: ListenSpec,
    pub(crate) listeners: Vec<Arc<Listener>>,
}

/// A listening socket. Closing it (the last acceptor holding it stops) accepts and closes
/// what waits in its backlog, counted in `rejected`.
pub(crate) struct Listener {
    kind: ListenerKind,
    tls: Option<TlsAcceptor>,
    options: SocketOptions,
    stats: Arc<Stats>,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("kind", &self.kind)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum ListenerKind {
    /// With its bound address: the local address of every accepted socket when it is one IP
    /// (no `getsockname` per connection); for a wildcard address each socket is asked.
    Tcp(TcpListener, SocketAddr),
    Unix(UnixListener, PathBuf),
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Connections the kernel completed and nobody accepted would be reset by the close
        // with no trace: accept each (without blocking), close it, and count it.
        let closed = match &self.kind {
            ListenerKind::Tcp(listener, _) => close_backlog(socket2::SockRef::from(listener)),
            ListenerKind::Unix(listener, _) => close_backlog(socket2::SockRef::from(listener)),
        };
        if closed > 0 {
            self.stats.backlog_closed(closed);
        }
        if let ListenerKind::Unix(_, path) = &self.kind {
            // We created it when binding (binding fails if the path exists).
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Accepts and closes every connection waiting in `listener`'s backlog, without blocking (the
/// socket is non-blocking); returns how many. Stops at the first error: an empty backlog, or
/// no descriptor left to accept with (those few are then reset by the close).
fn close_backlog(listener: socket2::SockRef<'_>) -> u64 {
    let mut closed = 0;
    while let Ok((socket, _)) = listener.accept() {
        drop(socket);
        closed += 1;
    }
    closed
}

impl Listener {
    /// Accepts one connection: the socket, the peer's address and the local one.
    pub(crate) async fn accept(&self) -> io::Result<(AcceptedIo, Endpoint, Endpoint)> {
        match &self.kind {
            ListenerKind::Tcp(listener, bound) => {
                let (tcp, peer) = listener.accept().await?;
                self.configure_accepted(&tcp);
                let local = if bound.ip().is_unspecified() {
                    tcp.local_addr().unwrap_or(*bound)
                } else {
                    *bound
                };
                let io = match &self.tls {
                    Some(acceptor) => AcceptedIo::Tls(tcp, acceptor.clone()),
                    None => AcceptedIo::Tcp(tcp),
                };
                Ok((io, Endpoint::Ip(peer), Endpoint::Ip(local)))
            }
            ListenerKind::Unix(listener, path) => {
                let (unix, peer) = listener.accept().await?;
                let peer = Endpoint::Unix(peer.as_pathname().map(PathBuf::from));
                Ok((
                    AcceptedIo::Unix(unix),
                    peer,
                    Endpoint::Unix(Some(path.clone())),
                ))
            }
        }
    }

    #[cfg(target_os = "linux")]
    fn configure_accepted(&self, _tcp: &tokio::net::TcpStream) {
        // Inherited from the listener.
        let _ = self.options;
    }

    #[cfg(not(target_os = "linux"))]
    fn configure_accepted(&self, tcp: &tokio::net::TcpStream) {
        let sock = socket2::SockRef::from(tcp);
        let _ = sock.set_tcp_nodelay(self.options.nodelay);
        if let Some(time) = self.options.keepalive {
            let _ = sock.set_tcp_keepalive(&TcpKeepalive::new().with_time(time));
        }
    }
}

/// Binds `spec` for `acceptors` acceptors. The returned spec has the bound address (port 0
/// resolved), so binding it again reopens the same port.
///
/// # Errors
/// The OS's error for the first socket that could not be created, configured or bound.
///
/// # Panics
/// Outside a tokio runtime (the sockets are registered with its reactor).
pub(crate) fn bind(
    spec: &ListenSpec,
    acceptors: usize,
    options: SocketOptions,
    stats: &Arc<Stats>,
) -> io::Result<Bound> {
    match &spec.addr {
        ListenAddr::Tcp(addr) | ListenAddr::Tls(addr) => {
            let count = if options.reuseport { acceptors } else { 1 };
            let first = bind_tcp(*addr, options)?;
            let local = first.local_addr()?;
            let mut listeners = vec![first];
            for _ in 1..count {
                listeners.push(bind_tcp(local, options)?);
            }
            let addr = match spec.addr {
                ListenAddr::Tls(_) => ListenAddr::Tls(local),
                _ => ListenAddr::Tcp(local),
            };
            Ok(Bound {
                spec: ListenSpec {
                    addr,
                    tls: spec.tls.clone(),
                },
                listeners: listeners
                    .into_iter()
                    .map(|l| {
                        Arc::new(Listener {
                            kind: ListenerKind::Tcp(l, local),
                            tls: spec.tls.clone(),
                            options,
                            stats: stats.clone(),
                        })
                    })
                    .collect(),
            })
        }
        ListenAddr::Unix(path) => {
            let listener = bind_unix(path, options)?;
            Ok(Bound {
                spec: spec.clone(),
                listeners: vec![Arc::new(Listener {
                    kind: ListenerKind::Unix(listener, path.clone()),
                    tls: None,
                    options,
                    stats: stats.clone(),
                })],
            })
        }
    }
}

fn backlog(options: SocketOptions) -> i32 {
    i32::try_from(options.backlog).unwrap_or(i32::MAX)
}

fn bind_tcp(addr: SocketAddr, options: SocketOptions) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Reopening the port after `suspend` must work while accepted connections still use it.
    socket.set_reuse_address(true)?;
    if options.reuseport {
        socket.set_reuse_port(true)?;
    }
    socket.set_tcp_nodelay(options.nodelay)?;
    if let Some(time) = options.keepalive {
        socket.set_tcp_keepalive(&TcpKeepalive::new().with_time(time))?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog(options))?;
    TcpListener::from_std(socket.into())
}

fn bind_unix(path: &std::path::Path, options: SocketOptions) -> io::Result<UnixListener> {
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SockAddr::unix(path)?)?;
    if let Err(error) = socket.listen(backlog(options)) {
        let _ = std::fs::remove_file(path);
        return Err(error);
    }
    UnixListener::from_std(socket.into())
}
