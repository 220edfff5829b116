//! [`ClusterBuilder`]: seeds, the address map, deadlines and the refresh's pace.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::{ClusterClient, ClusterError};

/// The deadline a request starts with: 30 s, across every redirect and retry.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// At most this many `MOVED` / `ASK` redirects per request by default (as Redix and
/// redis-rs).
pub const DEFAULT_MAX_REDIRECTS: usize = 5;

/// Where read-only commands (by the command table) go. Writes always go to the primary.
///
/// A replica is behind its primary by its replication lag: a read from a replica may miss
/// a write the same client just made. Replica connections are separate from primary ones
/// and every read on them is sent after `READONLY`, adjacent on the connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadFrom {
    /// Every command goes to the slot's primary (the default).
    #[default]
    Primary,
    /// Reads go to a replica of the slot's primary, chosen at random; to the primary when
    /// the shard has no replica or the replica cannot be reached.
    PreferReplica,
    /// Reads go only to a replica of the slot's primary; without one they wait (for a
    /// refresh that finds one) until their deadline.
    Replica,
}

/// Builds a [`ClusterClient`] (from [`ClusterClient::builder`]).
///
/// | setting | default |
/// |---|---|
/// | request deadline, over redirects and retries | 30 s ([`timeout`](Self::timeout)) |
/// | connect timeout per node | 1 s ([`connect_timeout`](Self::connect_timeout)) |
/// | redirects per request | 5 ([`max_redirects`](Self::max_redirects)) |
/// | periodic topology refresh | every 30 s ([`refresh_interval`](Self::refresh_interval)) |
/// | topology refreshes at most | once a second ([`refresh_min_interval`](Self::refresh_min_interval)) |
/// | one refresh's bound | 1 s per round of nodes asked ([`refresh_timeout`](Self::refresh_timeout)) |
/// | nodes asked per refresh round | 3, majority view kept ([`refresh_fanout`](Self::refresh_fanout)) |
/// | connections per node | 1, multiplexed ([`connections_per_node`](Self::connections_per_node)) |
/// | address map | none: announced addresses are dialled as they are ([`map_address`](Self::map_address)) |
/// | reads | from the primary ([`read_from`](Self::read_from)) |
/// | `connect` returns | when a seed answers with a slot map ([`sync_connect`](Self::sync_connect): when every slot is served and every primary connected) |
/// | retries of `TRYAGAIN`, `CLUSTERDOWN`, `LOADING`, `MASTERDOWN`, unreachable nodes | full-jitter exponential, 10 ms doubling to 200 ms, until the deadline |
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    pub(crate) seeds: Vec<String>,
    pub(crate) name: Arc<str>,
    pub(crate) address_map: HashMap<String, String>,
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) max_redirects: usize,
    pub(crate) refresh_interval: Duration,
    pub(crate) refresh_min_interval: Duration,
    pub(crate) refresh_timeout: Duration,
    pub(crate) refresh_fanout: usize,
    pub(crate) max_in_flight: usize,
    pub(crate) read_from: ReadFrom,
    pub(crate) sync_connect: bool,
    pub(crate) connections_per_node: usize,
}

impl ClusterBuilder {
    pub(crate) fn new(seeds: Vec<String>) -> Self {
        ClusterBuilder {
            seeds,
            name: Arc::from("redis-cluster"),
            address_map: HashMap::new(),
            timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: Duration::from_secs(1),
            max_redirects: DEFAULT_MAX_REDIRECTS,
            refresh_interval: Duration::from_secs(30),
            refresh_min_interval: Duration::from_secs(1),
            refresh_timeout: Duration::from_secs(1),
            refresh_fanout: 3,
            max_in_flight: 256,
            read_from: ReadFrom::Primary,
            sync_connect: false,
            connections_per_node: 1,
        }
    }

    /// What the client is called in errors and traces; each node's connection is named
    /// `"<name> <node address>"`.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Arc::from(name.into());
        self
    }

    /// Every request's deadline, from the call to its answer, across redirects, retries
    /// and refreshes (default 30 s). Past it the request ends with
    /// [`ClusterError::Timeout`], which says whether it may have been applied.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long connecting to one node may take (default 1 s). A node that does not
    /// answer in time is retried after a refresh, within the request's deadline.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// At most `n` `MOVED` / `ASK` redirects per request (default 5); one more is
    /// [`ClusterError::TooManyRedirects`].
    #[must_use]
    pub fn max_redirects(mut self, n: usize) -> Self {
        self.max_redirects = n;
        self
    }

    /// How often the slot map is refreshed when nothing asks for it (default 30 s), so a
    /// change nobody has tripped over yet (a new replica, a resharding) is seen anyway.
    #[must_use]
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// The least time between two refreshes (default 1 s): a storm of redirects or lost
    /// connections costs the cluster one `CLUSTER SLOTS` round per interval, not one per
    /// request.
    #[must_use]
    pub fn refresh_min_interval(mut self, interval: Duration) -> Self {
        self.refresh_min_interval = interval;
        self
    }

    /// How long one round of a refresh (the nodes asked in parallel) may take (default
    /// 1 s); a refresh tries further rounds of other nodes within twice this.
    #[must_use]
    pub fn refresh_timeout(mut self, timeout: Duration) -> Self {
        self.refresh_timeout = timeout;
        self
    }

    /// How many nodes a refresh asks at once (default 3, at least 1); the view most of
    /// them report wins.
    #[must_use]
    pub fn refresh_fanout(mut self, nodes: usize) -> Self {
        self.refresh_fanout = nodes.max(1);
        self
    }

    /// At most `n` requests in flight on one node's connection (default 256); callers
    /// beyond wait their turn within their deadline.
    #[must_use]
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }

    /// Up to `n` connections to each node (default 1, at least 1), each FIFO-multiplexed:
    /// a shared pool per node (`beamline_pool::SharedPool`) in which a request takes the
    /// least-loaded connection, and another is opened, up to `n`, only when every open one
    /// has [`max_in_flight`](Self::max_in_flight) requests on it. Worth it when one
    /// connection's in-flight bound is the limit (blocking commands, large values); one
    /// connection is what Redis serves fastest otherwise.
    ///
    /// Every guarantee holds per connection: an `ASK` or `READONLY` pair is one request on
    /// one connection, a lost connection fails only what was on it, and a request waits for
    /// a free place in the pool within its own deadline.
    #[must_use]
    pub fn connections_per_node(mut self, n: usize) -> Self {
        self.connections_per_node = n.max(1);
        self
    }

    /// Where read-only commands go (default [`ReadFrom::Primary`]).
    #[must_use]
    pub fn read_from(mut self, read_from: ReadFrom) -> Self {
        self.read_from = read_from;
        self
    }

    /// Dial `dial` wherever the cluster announces `announced` (both `host:port`): for a
    /// cluster behind NAT, in containers, or behind a proxy in tests. Announced addresses
    /// stay the nodes' names (in the slot map, in errors).
    #[must_use]
    pub fn map_address(mut self, announced: impl Into<String>, dial: impl Into<String>) -> Self {
        self.address_map.insert(announced.into(), dial.into());
        self
    }

    /// Whether [`connect`](Self::connect) waits for a whole cluster (default `false`): a
    /// slot map in which every one of the 16,384 slots is served, and a connection up to
    /// every primary in it. It asks again (a refresh every 100 ms, then up to every 1 s)
    /// until both hold or the request [`timeout`](Self::timeout) has passed, then fails
    /// with [`ClusterError::NotReady`], saying which slots or primaries were missing.
    ///
    /// Without it the client starts as soon as one seed answers, and a request to a slot
    /// nobody serves yet (or to a primary that cannot be reached yet) waits for a refresh
    /// within its own deadline.
    #[must_use]
    pub fn sync_connect(mut self, wait: bool) -> Self {
        self.sync_connect = wait;
        self
    }

    /// Asks the seeds for the slot map, all at once, and starts as soon as one answers
    /// with a usable map (a seed that is down only costs its own attempt, bounded by the
    /// refresh timeout). Connections to the nodes are made when a request first needs
    /// them.
    ///
    /// # Errors
    /// [`ClusterError::NoSeed`] when no seed answered, each seed's failure inside;
    /// [`ClusterError::NotReady`] with [`sync_connect`](Self::sync_connect), when the
    /// cluster was not whole within the timeout.
    ///
    /// # Panics
    /// Outside a tokio runtime (the refresh task is spawned on the current one).
    pub async fn connect(self) -> Result<ClusterClient, ClusterError> {
        ClusterClient::start(self).await
    }
}
