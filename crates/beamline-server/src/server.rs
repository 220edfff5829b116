//! [`Server`]: the builder — what to listen on, socket options, limits, timeouts — and the two
//! ways to start it.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use beamline_process::{DynamicSupervisor, DynamicSupervisorConfig, ExitReason};
use tokio_rustls::TlsAcceptor;

use crate::acceptor::{AcceptorPool, Acceptors};
use crate::conn::run::{ConnConfig, ConnHook, FnService, HandlerService, Service, Shared};
use crate::conn::{ConnInfo, Connection, Handler};
use crate::error::StartError;
use crate::handle::ServerHandle;
use crate::limits::{DEFAULT_IP_PREFIX_V6, Limits, Overload};
use crate::listen::{self, ListenAddr, ListenSpec, SocketOptions};
use crate::proxy::{Cidr, ProxyProtocol};
use crate::stats::Stats;

/// The default [`max_connections`](Server::max_connections).
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;
/// The default [`handshake_timeout`](Server::handshake_timeout).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// The default [`read_timeout`](Server::read_timeout).
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// The default [`send_timeout`](Server::send_timeout).
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// The default [`max_read_buffer`](Server::max_read_buffer): 1 MiB.
pub const DEFAULT_MAX_READ_BUFFER: usize = 1 << 20;

/// Builds a server: what to listen on, how, and under which limits; then
/// [`serve_handler`](Self::serve_handler) it with a [`Handler`] or [`serve_fn`](Self::serve_fn) it with an async
/// function that owns each [`Connection`].
///
/// Every setting has a default; only an address is required.
///
/// | setting | default |
/// |---|---|
/// | [`acceptors`](Self::acceptors) | the number of CPU cores |
/// | [`backlog`](Self::backlog) | 1024 |
/// | [`nodelay`](Self::nodelay) | `true` |
/// | [`keepalive`](Self::keepalive) | off |
/// | [`reuseport`](Self::reuseport) | `false` |
/// | [`max_connections`](Self::max_connections) | 16,384, [`Overload::Pause`] |
/// | [`max_connections_per_ip`](Self::max_connections_per_ip) | no cap |
/// | [`ip_prefix_v6`](Self::ip_prefix_v6) | 64 |
/// | [`handshake_timeout`](Self::handshake_timeout) | 5 s |
/// | [`read_timeout`](Self::read_timeout) | 60 s |
/// | [`send_timeout`](Self::send_timeout) | 30 s |
/// | [`lifetime`](Self::lifetime) | none |
/// | [`read_buffer`](Self::read_buffer) | 8 KiB |
/// | [`max_read_buffer`](Self::max_read_buffer) | 1 MiB |
/// | [`on_connection_error`](Self::on_connection_error) | none (failures are `tracing` events only) |
/// | [`proxy_protocol`](Self::proxy_protocol) | [`ProxyProtocol::Off`] on every listener |
/// | [`proxy_protocol_from`](Self::proxy_protocol_from) | any source (for `Required`) |
///
/// # Examples
/// ```no_run
/// use std::time::Duration;
/// use beamline_server::{Overload, Server};
/// use tokio::io::AsyncWriteExt;
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Server::new()
///     .bind("127.0.0.1:7000".parse()?)
///     .max_connections(10_000)
///     .overload(Overload::Reject)
///     .read_timeout(Some(Duration::from_secs(30)))
///     .serve_fn(|mut conn| async move {
///         conn.write_all(b"hello\n").await?;
///         Ok(())
///     })?;
/// println!("listening on {:?}", server.local_addrs());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Server {
    pub(crate) listen: Vec<ListenSpec>,
    acceptors: Option<usize>,
    socket: SocketOptions,
    max_connections: usize,
    overload: Overload,
    per_ip: Option<u32>,
    prefix_v6: u8,
    conn: ConnConfig,
    on_error: Option<ConnHook>,
    /// The sources trusted to send PROXY headers; empty: any.
    proxy_from: Vec<Cidr>,
    /// The listeners the last `bind*` / `listen_fds` call added: what `proxy_protocol`
    /// applies to.
    pub(crate) last_added: Vec<usize>,
    /// A `proxy_protocol` call with no listener before it, reported at start.
    proxy_misplaced: bool,
    /// A socket handed over as TLS that no `bind_tls` stands for, reported at start.
    pub(crate) inherited_error: Option<ListenAddr>,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            listen: Vec::new(),
            acceptors: None,
            socket: SocketOptions {
                backlog: 1024,
                nodelay: true,
                keepalive: None,
                reuseport: false,
            },
            max_connections: DEFAULT_MAX_CONNECTIONS,
            overload: Overload::Pause,
            per_ip: None,
            prefix_v6: DEFAULT_IP_PREFIX_V6,
            conn: ConnConfig {
                handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
                read_timeout: Some(DEFAULT_READ_TIMEOUT),
                send_timeout: Some(DEFAULT_SEND_TIMEOUT),
                lifetime: None,
                read_buffer: 8 * 1024,
                max_read_buffer: DEFAULT_MAX_READ_BUFFER,
            },
            on_error: None,
            proxy_from: Vec::new(),
            last_added: Vec::new(),
            proxy_misplaced: false,
            inherited_error: None,
        }
    }
}

impl Server {
    /// A server with the default settings and no address yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Listens for plain TCP on `addr` (port 0: the OS picks one; read it back from
    /// [`ServerHandle::local_addrs`]). May be called several times.
    pub fn bind(self, addr: SocketAddr) -> Self {
        self.add(ListenSpec::new(ListenAddr::Tcp(addr), None))
    }

    pub(crate) fn add(mut self, spec: ListenSpec) -> Self {
        self.listen.push(spec);
        self.last_added = vec![self.listen.len() - 1];
        self
    }

    /// Listens for TLS on `addr`, with `config` (build it with
    /// `rustls::ServerConfig::builder_with_provider`; set `alpn_protocols` there to offer
    /// ALPN). The handshake runs in the connection's own process, under
    /// [`handshake_timeout`](Self::handshake_timeout).
    pub fn bind_tls(self, addr: SocketAddr, config: Arc<rustls::ServerConfig>) -> Self {
        let tls = Some(TlsAcceptor::from(config));
        self.add(ListenSpec::new(ListenAddr::Tls(addr), tls))
    }

    /// Listens on a Unix domain socket at `path`, which must not exist; it is removed when
    /// the listener closes (suspend, shutdown, or dropping the handle).
    pub fn bind_unix(self, path: impl Into<PathBuf>) -> Self {
        self.add(ListenSpec::new(ListenAddr::Unix(path.into()), None))
    }

    /// Whether the listener(s) added by the call just before — one address for
    /// [`bind`](Self::bind), [`bind_tls`](Self::bind_tls) or [`bind_unix`](Self::bind_unix),
    /// every adopted socket for [`listen_fds`](Self::listen_fds) — read a PROXY protocol
    /// header (v1 or v2) before anything else. Default [`ProxyProtocol::Off`].
    ///
    /// The header is read in the connection's own process under the
    /// [`handshake_timeout`](Self::handshake_timeout), peeked so that nothing after it is
    /// consumed (for TLS, before the handshake). The client address it carries becomes the
    /// connection's [`peer`](crate::ConnInfo::peer): the per-IP cap counts it and the
    /// tracing events show it; the balancer's address is [`via`](crate::ConnInfo::via). A
    /// missing, malformed, late or untrusted header under `Required` closes the connection
    /// (see [`ProxyError`](crate::ProxyError)).
    ///
    /// ```no_run
    /// use beamline_server::{ProxyProtocol, Server};
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = Server::new()
    ///     .bind("0.0.0.0:6380".parse()?)
    ///     .proxy_protocol(ProxyProtocol::Required) // for 0.0.0.0:6380
    ///     .proxy_protocol_from(["10.0.0.0/8".parse()?])
    ///     .bind("127.0.0.1:6381".parse()?) // direct clients, no header
    ///     .serve_fn(|conn| async move {
    ///         println!("{} via {:?}", conn.peer(), conn.info().via());
    ///         Ok(())
    ///     })?;
    /// # Ok(()) }
    /// ```
    ///
    /// Called before any listener was added, it is reported by `start` as
    /// [`StartError::Invalid`].
    pub fn proxy_protocol(mut self, mode: ProxyProtocol) -> Self {
        if self.last_added.is_empty() {
            self.proxy_misplaced = true;
        }
        for &index in &self.last_added {
            if let Some(spec) = self.listen.get_mut(index) {
                spec.proxy = mode;
            }
        }
        self
    }

    /// The only sources that may send PROXY headers: a connection on a PROXY listener from
    /// any other address is refused ([`ProxyError::Untrusted`](crate::ProxyError::Untrusted))
    /// under `Required`, and under `Optional` refused if it sends a header, served as it
    /// is if not. Required with [`ProxyProtocol::Optional`] (anyone could claim any
    /// address otherwise). Default: any source, for `Required` listeners only the balancer
    /// should reach.
    pub fn proxy_protocol_from(mut self, sources: impl IntoIterator<Item = Cidr>) -> Self {
        self.proxy_from.extend(sources);
        self
    }

    /// How many acceptor tasks per address. Default: the number of CPU cores.
    pub fn acceptors(mut self, acceptors: usize) -> Self {
        self.acceptors = Some(acceptors);
        self
    }

    /// The kernel's listen backlog: connections completed by the kernel and not yet
    /// accepted (where [`Overload::Pause`] keeps the excess). The kernel caps it
    /// (`net.core.somaxconn` on Linux). Default 1024.
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.socket.backlog = backlog;
        self
    }

    /// `TCP_NODELAY` on accepted sockets: small writes go out at once instead of waiting to be
    /// coalesced (Nagle). Default `true`, right for request/response protocols.
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.socket.nodelay = nodelay;
        self
    }

    /// TCP keepalive on accepted sockets: the kernel probes a connection idle for `idle`, so a
    /// peer that vanished is noticed even without a read timeout. Default off.
    pub fn keepalive(mut self, idle: Option<Duration>) -> Self {
        self.socket.keepalive = idle;
        self
    }

    /// `SO_REUSEPORT` with one listening socket per acceptor: the kernel spreads new
    /// connections over the acceptors instead of waking them all on one socket. Default
    /// `false`. Applies to TCP and TLS addresses.
    pub fn reuseport(mut self, reuseport: bool) -> Self {
        self.socket.reuseport = reuseport;
        self
    }

    /// The one global limit on live connections (TLS handshakes included), across every
    /// address and acceptor. Default 16,384. What happens beyond it is the
    /// [`overload`](Self::overload) policy.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// What happens beyond [`max_connections`](Self::max_connections). Default
    /// [`Overload::Pause`].
    pub fn overload(mut self, overload: Overload) -> Self {
        self.overload = overload;
        self
    }

    /// At most `max` live connections from one client; beyond it a connection is accepted
    /// and closed at once (counted in `rejected`), whatever the overload policy. A client is
    /// an IPv4 address (also when a dual-stack listener sees it IPv4-mapped, as
    /// `::ffff:a.b.c.d`), or an IPv6 prefix of [`ip_prefix_v6`](Self::ip_prefix_v6) bits, so
    /// that a host rotating addresses inside its /64 counts once. Default: no cap.
    pub fn max_connections_per_ip(mut self, max: u32) -> Self {
        self.per_ip = Some(max);
        self
    }

    /// How many leading bits of an IPv6 address name one client for
    /// [`max_connections_per_ip`](Self::max_connections_per_ip): 64 by default (one site's
    /// subnet), 128 for every address apart, 48 or 56 for a whole allocation. At most 128.
    pub fn ip_prefix_v6(mut self, len: u8) -> Self {
        self.prefix_v6 = len;
        self
    }

    /// How long a TLS handshake may take before the connection is closed (and counted in
    /// `handshake_failures`): a client that opens a connection and stalls holds nothing for
    /// long. Default 5 s.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.conn.handshake_timeout = timeout;
        self
    }

    /// How long a connection may receive nothing before it times out (see
    /// [`Handler::on_timeout`]; a [`Connection`] function is closed). Only bytes from the
    /// peer reset it. `None`: never. Default 60 s.
    pub fn read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.conn.read_timeout = timeout;
        self
    }

    /// How long a write may make no progress — the socket accepts no byte, because the peer
    /// stopped reading — before it fails the connection: in a [`Handler`] the connection gets
    /// [`on_error`](Handler::on_error) with
    /// [`ConnError::SendTimeout`](crate::ConnError::SendTimeout) and closes; a [`Connection`]
    /// function's write fails with [`TimedOut`](io::ErrorKind::TimedOut). Counted in
    /// [`ServerStats::send_timeouts`](crate::ServerStats::send_timeouts). A slow reader that
    /// keeps taking bytes is never cut off. `None`: a write may wait for ever (until the
    /// lifetime or a drain's deadline). Default 30 s.
    pub fn send_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.conn.send_timeout = timeout;
        self
    }

    /// The most a connection may live, however busy. `None` (the default): no limit. In a
    /// [`Handler`], a lifetime that passes while a callback runs kills the connection (see
    /// the [`Handler`] rules).
    pub fn lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.conn.lifetime = lifetime;
        self
    }

    /// How much the callback form reads at a time into `on_data`'s buffer (allocated once
    /// data first arrives, so idle connections hold none). Default 8 KiB.
    pub fn read_buffer(mut self, bytes: usize) -> Self {
        self.conn.read_buffer = bytes;
        self
    }

    /// The most a [`Handler`] may leave unconsumed in `on_data`'s buffer (a partial frame it
    /// waits to complete). Beyond it the connection gets [`on_error`](Handler::on_error)
    /// with [`ConnError::ReadBufferFull`](crate::ConnError::ReadBufferFull) and closes,
    /// counted in `errored`: a peer that never finishes a frame cannot grow memory without
    /// bound. The [`Connection`] form owns its buffering and is not affected. Default 1 MiB.
    pub fn max_read_buffer(mut self, bytes: usize) -> Self {
        self.conn.max_read_buffer = bytes;
        self
    }

    /// Calls `hook` once for each connection that failed, as it ends, with what is known
    /// about it and why: the handler's or function's `Err(reason)` (a linked process's
    /// failure included), a panic ([`ExitReason::Panicked`]), a failed or timed-out TLS
    /// handshake ([`ExitReason::Error`] with the handshake's `io::Error`), or a kill
    /// ([`ExitReason::Killed`]: the lifetime passing during a callback, a drain's deadline,
    /// another process). Not called for connections that end normally, for a peer's fault
    /// that [`Handler::on_error`] accepted (a reset, a send timeout), nor for the
    /// connections killed by dropping the [`ServerHandle`].
    ///
    /// These failures are also `tracing` events (see the crate docs), which only a
    /// subscriber makes visible; the hook works without one, for a counter, a metric or a
    /// line on stderr. It runs in the connection's process as it ends, before the
    /// connection is counted in [`ServerStats`](crate::ServerStats): keep it short and
    /// non-blocking. A panic in it is caught and logged.
    ///
    /// ```no_run
    /// use beamline_server::Server;
    ///
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = Server::new()
    ///     .bind("127.0.0.1:7000".parse()?)
    ///     .on_connection_error(|info, reason| eprintln!("connection from {} failed: {reason}", info.peer()))
    ///     .serve_fn(|conn| async move { drop(conn); Ok(()) })?;
    /// # Ok(()) }
    /// ```
    pub fn on_connection_error(
        mut self,
        hook: impl Fn(&ConnInfo, &ExitReason) + Send + Sync + 'static,
    ) -> Self {
        self.on_error = Some(Arc::new(hook));
        self
    }

    /// Starts the server with a callback [`Handler`], cloned for each connection: its
    /// callbacks act on a [`HandlerContext`](crate::HandlerContext) (the other form,
    /// [`serve_fn`](Self::serve_fn), hands a function the whole [`Connection`]).
    ///
    /// # Errors
    /// [`StartError`]: no address, an invalid setting, no tokio runtime, or an address that
    /// cannot be bound. Nothing is left running.
    pub fn serve_handler<H, M>(self, handler: H) -> Result<ServerHandle, StartError>
    where
        H: Handler<M> + Clone + Sync,
        M: Send + 'static,
    {
        self.launch(HandlerService::new(handler))
    }

    /// The old name of [`serve_handler`](Self::serve_handler).
    ///
    /// # Errors
    /// As [`serve_handler`](Self::serve_handler).
    #[deprecated(
        note = "renamed `serve_handler` (the callback form; `serve_fn` is the function form)"
    )]
    pub fn start<H, M>(self, handler: H) -> Result<ServerHandle, StartError>
    where
        H: Handler<M> + Clone + Sync,
        M: Send + 'static,
    {
        self.serve_handler(handler)
    }

    /// Starts the server with an async function that owns each [`Connection`] (reads and
    /// writes it directly: a `Framed` loop, `tokio::io::copy`, ...). It runs as the
    /// connection's process; returning `Ok(())` closes the connection, `Err(reason)` fails it.
    ///
    /// What ends a connection besides the function:
    /// - **The drain rule.** On a graceful [`shutdown`](ServerHandle::shutdown), a function
    ///   that took its [`shutdown_signal`](Connection::shutdown_signal) is told through it
    ///   and has until the drain's deadline to finish (then it is killed). A function that
    ///   never took the signal is dropped at once, closing its connection, whatever it was
    ///   doing: a request half handled is lost. Take the signal to finish what you started.
    /// - **The read timeout, 60 s by default** ([`read_timeout`](Self::read_timeout)): a
    ///   connection that receives nothing for that long is closed (the function dropped),
    ///   even while the function is busy writing or waiting on something else.
    /// - The send timeout and the lifetime, as for every connection.
    ///
    /// # Errors
    /// As [`serve_handler`](Self::serve_handler).
    pub fn serve_fn<F, Fut>(self, f: F) -> Result<ServerHandle, StartError>
    where
        F: Fn(Connection) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ExitReason>> + Send + 'static,
    {
        self.launch(FnService(f))
    }

    /// The old name of [`serve_fn`](Self::serve_fn).
    ///
    /// # Errors
    /// As [`serve_handler`](Self::serve_handler).
    #[deprecated(
        note = "renamed `serve_fn` (the function form; `serve_handler` is the callback form)"
    )]
    pub fn serve<F, Fut>(self, f: F) -> Result<ServerHandle, StartError>
    where
        F: Fn(Connection) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ExitReason>> + Send + 'static,
    {
        self.serve_fn(f)
    }

    fn validate(&self) -> Result<(), StartError> {
        let invalid = |setting, reason| Err(StartError::Invalid { setting, reason });
        if self.listen.is_empty() {
            return Err(StartError::NoListeners);
        }
        if self.acceptors == Some(0) {
            return invalid("acceptors", "must be at least 1");
        }
        if self.max_connections == 0 {
            return invalid("max_connections", "must be at least 1");
        }
        if self.max_connections > tokio::sync::Semaphore::MAX_PERMITS {
            return invalid("max_connections", "exceeds what the limit can count");
        }
        if self.per_ip == Some(0) {
            return invalid("max_connections_per_ip", "must be at least 1");
        }
        if self.prefix_v6 > 128 {
            return invalid("ip_prefix_v6", "an IPv6 prefix has at most 128 bits");
        }
        if self.conn.handshake_timeout.is_zero() {
            return invalid("handshake_timeout", "must be more than zero");
        }
        if self.conn.read_timeout.is_some_and(|t| t.is_zero()) {
            return invalid("read_timeout", "must be more than zero (None disables it)");
        }
        if self.conn.send_timeout.is_some_and(|t| t.is_zero()) {
            return invalid("send_timeout", "must be more than zero (None disables it)");
        }
        if self.conn.lifetime.is_some_and(|t| t.is_zero()) {
            return invalid("lifetime", "must be more than zero (None disables it)");
        }
        if self.conn.read_buffer == 0 {
            return invalid("read_buffer", "must be at least 1 byte");
        }
        if self.conn.max_read_buffer == 0 {
            return invalid("max_read_buffer", "must be at least 1 byte");
        }
        if let Some(addr) = &self.inherited_error {
            return Err(StartError::Inherited {
                addr: addr.clone(),
                reason: "handed over as TLS, and no bind_tls of this address gives its config",
            });
        }
        if self.proxy_misplaced {
            return invalid(
                "proxy_protocol",
                "applies to the listener added just before it; none was",
            );
        }
        let optional = self
            .listen
            .iter()
            .any(|s| s.proxy == ProxyProtocol::Optional);
        if optional && self.proxy_from.is_empty() {
            return invalid(
                "proxy_protocol",
                "Optional needs proxy_protocol_from: otherwise any client could claim any address",
            );
        }
        Ok(())
    }

    fn launch<S: Service>(self, service: S) -> Result<ServerHandle, StartError> {
        self.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| StartError::NoRuntime)?;
        let _entered = runtime.enter();
        let count = self.acceptors.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        let stats = Arc::new(Stats::default());
        // Bind everything before starting anything: a failure leaves nothing behind.
        let mut bound = Vec::with_capacity(self.listen.len());
        for spec in &self.listen {
            let b = listen::bind(spec, count, self.socket, &stats).map_err(|source| {
                StartError::Bind {
                    addr: spec.addr.clone(),
                    source,
                }
            })?;
            bound.push(b);
        }
        let sup = DynamicSupervisor::start(DynamicSupervisorConfig::new());
        let pool = AcceptorPool {
            shared: Arc::new(Shared {
                service,
                config: self.conn,
                limits: Limits::new(
                    self.max_connections,
                    self.overload,
                    self.per_ip,
                    self.prefix_v6,
                ),
                stats: stats.clone(),
                sup: sup.clone(),
                on_error: self.on_error,
                proxy_from: self.proxy_from.into_boxed_slice(),
            }),
            count,
            options: self.socket,
            runtime,
        };
        let tasks = pool.spawn(&bound);
        tracing::info!(
            addrs = ?bound.iter().map(|b| &b.spec.addr).collect::<Vec<_>>(),
            acceptors = count,
            max_connections = self.max_connections,
            overload = ?self.overload,
            "server started"
        );
        Ok(ServerHandle::new(tasks, bound, Box::new(pool), stats, sup))
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("listen", &self.listen)
            .field("acceptors", &self.acceptors)
            .field("socket", &self.socket)
            .field("max_connections", &self.max_connections)
            .field("overload", &self.overload)
            .field("per_ip", &self.per_ip)
            .field("prefix_v6", &self.prefix_v6)
            .field("conn", &self.conn)
            .field("on_connection_error", &self.on_error.is_some())
            .field("proxy_from", &self.proxy_from)
            .finish()
    }
}

#[cfg(test)]
mod tests;
