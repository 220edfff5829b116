//! The proxy handle, its builder and its statistics.

mod conn;
mod error;
mod listener;

pub use error::ReopenError;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::action::Action;
use crate::fault::{Direction, Fault, FaultKind, PartitionMode, Side, SideFaults};

/// A fault-injecting TCP proxy between clients and one upstream server.
///
/// Every connection accepted on [`Proxy::local_addr`] is forwarded to the upstream through
/// the faults in force ([`Proxy::apply`]); faults, partitions, refusals and resets can be
/// changed at any time through `&self`, and reach live connections as well as new ones.
///
/// # On failure
/// - The upstream refuses or fails to connect: the accepted client is reset (RST).
/// - A peer resets or fails mid-stream: the proxy resets the other peer, so the failure is
///   seen at both ends as it would be without a proxy.
/// - One side half-closes (FIN): the proxy forwards the FIN and keeps the other direction
///   open until it ends too.
///
/// # Stopping
/// Dropping the proxy closes the listener at once and aborts every connection task; each
/// socket is then closed by the kernel as when a process exits (a FIN, or an RST if unread
/// data remained). [`Proxy::shutdown`] does the same and returns once every task has ended.
/// No task outlives either.
///
/// # Examples
/// ```no_run
/// use std::time::Duration;
/// use beamline_chaos::{Direction, Fault, Proxy};
///
/// # async fn demo(server: std::net::SocketAddr) -> std::io::Result<()> {
/// let proxy = Proxy::start("127.0.0.1:0".parse().unwrap(), server).await?;
/// let client_connects_to = proxy.local_addr();
/// proxy.apply(Direction::Downstream, Fault::latency(Duration::from_millis(50)));
/// proxy.partition();
/// proxy.heal().expect("a blackhole partition never closes the listener");
/// proxy.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Proxy {
    shared: Arc<Shared>,
    /// The accept loop; `None` once [`Proxy::shutdown`] has awaited it.
    accept_task: Option<JoinHandle<()>>,
    /// Asks the accept loop to stop and wait for its connections ([`Proxy::shutdown`]).
    stop: Option<oneshot::Sender<()>>,
}

/// Builds a [`Proxy`] with a listen address, a jitter seed, or faults in force from its first
/// connection. Made by [`Proxy::builder`].
#[derive(Debug, Clone)]
pub struct ProxyBuilder {
    listen: SocketAddr,
    upstream: SocketAddr,
    seed: Option<u64>,
    faults: Vec<(Direction, Fault)>,
}

impl ProxyBuilder {
    /// Where to listen; `127.0.0.1:0` (a free loopback port) by default.
    pub fn listen(mut self, addr: SocketAddr) -> ProxyBuilder {
        self.listen = addr;
        self
    }

    /// The seed of every connection's jitter (see [`Fault::Latency`]): the same seed gives
    /// the same delays in every run. Without it the proxy picks a random seed, which
    /// [`Proxy::seed`] reports so a failing run can be replayed.
    pub fn seed(mut self, seed: u64) -> ProxyBuilder {
        self.seed = Some(seed);
        self
    }

    /// A fault in force from the first connection on, as if [`Proxy::apply`]ed right after
    /// the start.
    pub fn fault(mut self, direction: Direction, fault: Fault) -> ProxyBuilder {
        self.faults.push((direction, fault));
        self
    }

    /// Binds the listener and starts accepting, on the current tokio runtime.
    ///
    /// # Errors
    /// If the listen address cannot be bound (the message names it), or this is not called
    /// inside a tokio runtime. The upstream is not contacted until a client connects.
    pub async fn start(self) -> io::Result<Proxy> {
        let runtime = Handle::try_current().map_err(|_| {
            io::Error::other("the chaos proxy must be started inside a tokio runtime")
        })?;
        let listener = listener::Slot::bind(self.listen, runtime.clone())?;
        let mut conditions = Conditions::new(self.upstream);
        for (direction, fault) in self.faults {
            conditions.apply(direction, fault);
        }
        let shared = Arc::new(Shared {
            conditions: watch::Sender::new(conditions),
            counters: Counters::default(),
            listener,
            seed: self.seed.unwrap_or_else(crate::jitter::random_seed),
        });
        let (stop, stopped) = oneshot::channel();
        let accept_task = runtime.spawn(listener::accept_loop(Arc::clone(&shared), stopped));
        Ok(Proxy {
            shared,
            accept_task: Some(accept_task),
            stop: Some(stop),
        })
    }
}

/// A snapshot of a proxy's counters ([`Proxy::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ProxyStats {
    /// Connections accepted and not yet closed (including ones waiting out a partition).
    pub live: usize,
    /// Connections accepted since the start.
    pub accepted: u64,
    /// Bytes written to the upstream (client → server).
    pub upstream_bytes: u64,
    /// Bytes written to clients (server → client).
    pub downstream_bytes: u64,
    /// Connections the proxy ended with an RST: a reset fault, [`Proxy::reset_all`], an
    /// upstream that refused, or a peer that failed mid-stream.
    pub resets: u64,
    /// Connection tasks that panicked (a bug in the proxy: no user code runs there). The
    /// panic stays in its task, which closes that connection; it is counted here so a test
    /// can assert it never happened.
    pub panicked: u64,
}

impl Proxy {
    /// Starts a proxy listening on `listen` (usually `127.0.0.1:0`) that forwards every
    /// connection to `upstream`, with no fault in force and a random jitter seed.
    ///
    /// # Errors
    /// As [`ProxyBuilder::start`].
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> io::Result<Proxy> {
        Proxy::builder(upstream).listen(listen).start().await
    }

    /// A builder for a proxy to `upstream`, listening on `127.0.0.1:0` unless told otherwise.
    pub fn builder(upstream: SocketAddr) -> ProxyBuilder {
        ProxyBuilder {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            upstream,
            seed: None,
            faults: Vec::new(),
        }
    }

    /// The address clients connect to (the port the OS picked for `:0`). It stays the same
    /// across [`Proxy::refuse_new`] and partitions.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.listener.addr()
    }

    /// Where new connections are forwarded.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.conditions.borrow().upstream
    }

    /// Forwards connections accepted from now on to `addr` (a restarted server may come back
    /// on another port). Live connections keep the upstream they have.
    pub fn set_upstream(&self, addr: SocketAddr) {
        self.shared.conditions.send_modify(|c| c.upstream = addr);
    }

    /// The seed of every connection's jitter.
    pub fn seed(&self) -> u64 {
        self.shared.seed
    }

    /// The counters now.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        ProxyStats {
            live: c.live.load(Ordering::Relaxed),
            accepted: c.accepted.load(Ordering::Relaxed),
            upstream_bytes: c.upstream_bytes.load(Ordering::Relaxed),
            downstream_bytes: c.downstream_bytes.load(Ordering::Relaxed),
            resets: c.resets.load(Ordering::Relaxed),
            panicked: c.panicked.load(Ordering::Relaxed),
        }
    }

    /// Puts `fault` in force in `direction` for every live and future connection, replacing
    /// a fault of the same [`FaultKind`] there. See each [`Fault`] for what peers observe.
    ///
    /// It takes effect for every byte the proxy reads or writes after this returns (a write
    /// already under way may complete).
    pub fn apply(&self, direction: Direction, fault: Fault) {
        self.shared
            .conditions
            .send_modify(|c| c.apply(direction, fault));
    }

    /// Removes the fault of `kind` from `direction`. Bytes held by a cleared latency keep
    /// their release time; held by a cleared blackhole, they flow at once.
    pub fn clear(&self, direction: Direction, kind: FaultKind) {
        self.shared.conditions.send_modify(|c| {
            for side in direction.sides() {
                c.side_mut(*side).clear(kind);
            }
        });
    }

    /// Removes every fault from both directions. A partition and a refusal stay: end them
    /// with [`Proxy::heal`] and [`Proxy::refuse_new`].
    pub fn clear_all(&self) {
        self.shared.conditions.send_modify(|c| {
            c.up = SideFaults::default();
            c.down = SideFaults::default();
        });
    }

    /// Partitions the network, with [`PartitionMode::Blackhole`]: every live connection is
    /// blackholed both ways (see [`Fault::Blackhole`]), and new connections are accepted and
    /// held without contacting the upstream, until [`Proxy::heal`].
    pub fn partition(&self) {
        self.partition_with(PartitionMode::Blackhole);
    }

    /// Partitions the network: live connections are blackholed both ways, and new ones are
    /// treated as `mode` says, until [`Proxy::heal`]. Faults applied meanwhile are kept.
    pub fn partition_with(&self, mode: PartitionMode) {
        self.shared
            .conditions
            .send_modify(|c| c.partition = Some(mode));
        // Closing never fails; only reopening can.
        let _ = self.sync_listener();
    }

    /// Ends a partition: held bytes flow, in order, and held connections connect upstream.
    /// Other faults stay.
    ///
    /// # Errors
    /// After a [`PartitionMode::Refuse`] partition, if the address cannot be bound again
    /// (see [`ReopenError`]); the partition is over for live connections either way.
    pub fn heal(&self) -> Result<(), ReopenError> {
        self.shared.conditions.send_modify(|c| c.partition = None);
        self.sync_listener()
    }

    /// Refuses new connections (`true`) or accepts them again (`false`).
    ///
    /// Refusing closes the listening socket, so a client's connect fails with
    /// [`std::io::ErrorKind::ConnectionRefused`]. Live connections are untouched, and so is
    /// every connection whose handshake completed before the call (a client whose connect
    /// returned): the proxy accepts those from the queue before it closes the socket.
    /// Accepting again binds the same address.
    ///
    /// # Errors
    /// When accepting again, if the address cannot be bound (see [`ReopenError`]).
    pub fn refuse_new(&self, refuse: bool) -> Result<(), ReopenError> {
        self.shared.conditions.send_modify(|c| c.refuse = refuse);
        self.sync_listener()
    }

    /// Resets every live connection now, including ones waiting out a partition: both peers
    /// of each receive an RST. Connections accepted afterwards are not affected.
    pub fn reset_all(&self) {
        self.shared
            .conditions
            .send_modify(|c| c.reset_epoch = c.reset_epoch.wrapping_add(1));
    }

    /// Performs one [`Action`] (what a [`crate::Schedule`] step does).
    ///
    /// # Errors
    /// As [`Proxy::heal`] and [`Proxy::refuse_new`].
    pub fn perform(&self, action: &Action) -> Result<(), ReopenError> {
        match *action {
            Action::Apply { direction, fault } => self.apply(direction, fault),
            Action::Clear { direction, kind } => self.clear(direction, kind),
            Action::ClearAll => self.clear_all(),
            Action::Partition(mode) => self.partition_with(mode),
            Action::Heal => return self.heal(),
            Action::RefuseNew(refuse) => return self.refuse_new(refuse),
            Action::ResetAll => self.reset_all(),
            Action::SetUpstream(addr) => self.set_upstream(addr),
        }
        Ok(())
    }

    /// Stops the proxy: closes the listener, closes every connection (as on drop) and
    /// returns once the accept task and every connection task have ended.
    ///
    /// # Panics
    /// With the accept task's own panic, if it panicked (a bug in the proxy): that is where
    /// a test that used the proxy learns of it.
    pub async fn shutdown(mut self) {
        self.shared.listener.close();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.accept_task.take()
            && let Err(ended) = task.await
            && ended.is_panic()
        {
            std::panic::resume_unwind(ended.into_panic());
        }
    }

    fn sync_listener(&self) -> Result<(), ReopenError> {
        self.shared
            .listener
            .set_open(|| self.shared.conditions.borrow().listening())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.listener.close();
        if let Some(task) = self.accept_task.take() {
            // Aborting the accept loop drops its JoinSet, which aborts every connection task.
            task.abort();
        }
    }
}

/// What the handle shares with its tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Everything a connection obeys; every change wakes every connection to re-read it.
    conditions: watch::Sender<Conditions>,
    counters: Counters,
    listener: listener::Slot,
    seed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    live: AtomicUsize,
    accepted: AtomicU64,
    upstream_bytes: AtomicU64,
    downstream_bytes: AtomicU64,
    resets: AtomicU64,
    panicked: AtomicU64,
}

/// The faults and commands in force, as every connection sees them.
#[derive(Debug, Clone)]
pub(crate) struct Conditions {
    upstream: SocketAddr,
    up: SideFaults,
    down: SideFaults,
    partition: Option<PartitionMode>,
    refuse: bool,
    /// Bumped by `reset_all`; a connection accepted under an older epoch resets.
    reset_epoch: u64,
    /// Numbers each apply call, so a byte budget restarts when its fault is applied again.
    applied: u64,
}

impl Conditions {
    fn new(upstream: SocketAddr) -> Conditions {
        Conditions {
            upstream,
            up: SideFaults::default(),
            down: SideFaults::default(),
            partition: None,
            refuse: false,
            reset_epoch: 0,
            applied: 0,
        }
    }

    fn apply(&mut self, direction: Direction, fault: Fault) {
        self.applied += 1;
        let generation = self.applied;
        for side in direction.sides() {
            self.side_mut(*side).set(fault, generation);
        }
    }

    pub(crate) fn side(&self, side: Side) -> &SideFaults {
        match side {
            Side::Up => &self.up,
            Side::Down => &self.down,
        }
    }

    fn side_mut(&mut self, side: Side) -> &mut SideFaults {
        match side {
            Side::Up => &mut self.up,
            Side::Down => &mut self.down,
        }
    }

    /// Whether a reset-at-once fault ([`Fault::reset`]) is in force in either direction.
    pub(crate) fn resets_at_once(&self) -> bool {
        [&self.up, &self.down]
            .iter()
            .any(|f| f.reset_after.is_some_and(|b| b.bytes == 0))
    }

    /// Whether the listening socket should be open.
    fn listening(&self) -> bool {
        !self.refuse && self.partition != Some(PartitionMode::Refuse)
    }
}
