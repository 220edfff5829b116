//! Listening sockets: what a server listens on ([`ListenAddr`]), binding with the socket
//! options set before `listen()` (socket2), and accepting.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, TcpKeepalive, Type};
use tokio::net::{TcpListener, UnixListener};
use tokio_rustls::TlsAcceptor;

use crate::conn::run::AcceptedIo;
use crate::conn::{Endpoint, Transport};
use crate::proxy::ProxyProtocol;
use crate::stats::Stats;

/// An address a server listens on. Before start it is what you asked for; from
/// [`ServerHandle::local_addrs`](crate::ServerHandle::local_addrs) it is what was bound (a
/// port 0 replaced by the port the OS chose, kept across
/// [`suspend`](crate::ServerHandle::suspend) / [`resume`](crate::ServerHandle::resume)).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
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

/// One address to listen on, with the TLS acceptor for a TLS address, whether its
/// connections start with a PROXY header, and the sockets already listening on it that were
/// handed to this process (socket activation, an upgrade).
#[derive(Clone)]
pub(crate) struct ListenSpec {
    pub(crate) addr: ListenAddr,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) proxy: ProxyProtocol,
    pub(crate) inherited: Option<Inherited>,
}

impl ListenSpec {
    pub(crate) fn new(addr: ListenAddr, tls: Option<TlsAcceptor>) -> Self {
        Self {
            addr,
            tls,
            proxy: ProxyProtocol::Off,
            inherited: None,
        }
    }
}

impl fmt::Debug for ListenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenSpec")
            .field("addr", &self.addr)
            .field("proxy", &self.proxy)
            .field("inherited", &self.inherited.is_some())
            .finish_non_exhaustive()
    }
}

/// Listening sockets handed to this process for one address, taken by the first bind of it
/// (a resume after a suspend binds the address anew). Shared, so that a cloned `Server`
/// stays cloneable; whoever binds first takes them.
#[derive(Clone, Debug)]
pub(crate) struct Inherited {
    sockets: Arc<Mutex<Vec<Socket>>>,
    /// Whether this process may remove a Unix socket's file when it closes the listener:
    /// yes for one handed over by a predecessor (this process owns the address now), no
    /// for systemd's (systemd owns the file).
    owns_path: bool,
}

impl Inherited {
    pub(crate) fn new(sockets: Vec<Socket>, owns_path: bool) -> Self {
        Self {
            sockets: Arc::new(Mutex::new(sockets)),
            owns_path,
        }
    }

    fn take(&self) -> Vec<Socket> {
        std::mem::take(&mut *self.sockets.lock().unwrap_or_else(PoisonError::into_inner))
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
/// what waits in its backlog, counted in `rejected` — unless it was handed over to a
/// successor process, which serves that backlog.
pub(crate) struct Listener {
    kind: ListenerKind,
    tls: Option<TlsAcceptor>,
    proxy: ProxyProtocol,
    options: SocketOptions,
    stats: Arc<Stats>,
    /// Set once a successor process holds this socket too: closing it then touches neither
    /// the backlog nor the socket's file.
    released: AtomicBool,
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
    /// With its path, and whether closing it removes the path's file.
    Unix(UnixListener, PathBuf, bool),
}

impl Drop for Listener {
    fn drop(&mut self) {
        if self.released.load(Relaxed) {
            // A successor listens on the same socket: its backlog and its file are its own.
            return;
        }
        // Connections the kernel completed and nobody accepted would be reset by the close
        // with no trace: accept each (without blocking), close it, and count it.
        let closed = match &self.kind {
            ListenerKind::Tcp(listener, _) => close_backlog(socket2::SockRef::from(listener)),
            ListenerKind::Unix(listener, ..) => close_backlog(socket2::SockRef::from(listener)),
        };
        if closed > 0 {
            self.stats.backlog_closed(closed);
        }
        if let ListenerKind::Unix(_, path, true) = &self.kind {
            // We created it when binding (binding fails if the path exists), or took it over.
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
    /// Whether its connections start with a PROXY header.
    pub(crate) fn proxy(&self) -> ProxyProtocol {
        self.proxy
    }

    /// The listening socket, to hand to a successor process.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        match &self.kind {
            ListenerKind::Tcp(listener, _) => listener.as_fd(),
            ListenerKind::Unix(listener, ..) => listener.as_fd(),
        }
    }

    /// From now on, closing it leaves its backlog and its file to the successor that holds
    /// it too.
    pub(crate) fn release(&self) {
        self.released.store(true, Relaxed);
    }

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
            ListenerKind::Unix(listener, path, _) => {
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

/// Binds `spec` for `acceptors` acceptors, or takes the sockets handed to this process for
/// it. The returned spec has the bound address (port 0 resolved) and no inherited sockets,
/// so binding it again reopens the same port.
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
    let inherited = spec.inherited.as_ref().map(Inherited::take);
    let listener = |kind| {
        Arc::new(Listener {
            kind,
            tls: spec.tls.clone(),
            proxy: spec.proxy,
            options,
            stats: stats.clone(),
            released: AtomicBool::new(false),
        })
    };
    let bound_spec = |addr| ListenSpec {
        addr,
        inherited: None,
        ..spec.clone()
    };
    match &spec.addr {
        ListenAddr::Tcp(addr) | ListenAddr::Tls(addr) => {
            let listeners = match inherited.filter(|sockets| !sockets.is_empty()) {
                Some(sockets) => sockets
                    .into_iter()
                    .map(|socket| adopt_tcp(socket, options))
                    .collect::<io::Result<Vec<_>>>()?,
                None => {
                    let count = if options.reuseport { acceptors } else { 1 };
                    let first = bind_tcp(*addr, options)?;
                    let local = first.local_addr()?;
                    let mut listeners = vec![first];
                    for _ in 1..count {
                        listeners.push(bind_tcp(local, options)?);
                    }
                    listeners
                }
            };
            let local = match listeners.first() {
                Some(first) => first.local_addr()?,
                None => *addr,
            };
            let addr = match spec.addr {
                ListenAddr::Tls(_) => ListenAddr::Tls(local),
                _ => ListenAddr::Tcp(local),
            };
            Ok(Bound {
                spec: bound_spec(addr),
                listeners: listeners
                    .into_iter()
                    .map(|l| listener(ListenerKind::Tcp(l, local)))
                    .collect(),
            })
        }
        ListenAddr::Unix(path) => {
            let owns_path = spec.inherited.as_ref().is_none_or(|i| i.owns_path);
            let listeners = match inherited.filter(|sockets| !sockets.is_empty()) {
                Some(sockets) => sockets
                    .into_iter()
                    .map(|socket| {
                        socket.set_nonblocking(true)?;
                        UnixListener::from_std(socket.into())
                    })
                    .collect::<io::Result<Vec<_>>>()?,
                None => vec![bind_unix(path, options)?],
            };
            Ok(Bound {
                spec: bound_spec(spec.addr.clone()),
                listeners: listeners
                    .into_iter()
                    .map(|l| listener(ListenerKind::Unix(l, path.clone(), owns_path)))
                    .collect(),
            })
        }
    }
}

/// A TCP socket handed to this process, already listening: made non-blocking, given the
/// server's accepted-socket options (inherited by accepted sockets on Linux), and
/// registered with the runtime.
fn adopt_tcp(socket: Socket, options: SocketOptions) -> io::Result<TcpListener> {
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(options.nodelay)?;
    if let Some(time) = options.keepalive {
        socket.set_tcp_keepalive(&TcpKeepalive::new().with_time(time))?;
    }
    TcpListener::from_std(socket.into())
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
