//! [`ClusterClient`]: the handle, the shared state, and the topology it routes by.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use beamline_backoff::SplitMix64;
use beamline_resp::{Command, Value};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::nodes::Nodes;
use crate::refresh::{self, Candidate};
use crate::topology::SlotMap;
use crate::{ClusterBuilder, ClusterError, ReadFrom};

/// A Redis Cluster client: routes each command to the primary of its key's slot over one
/// reconnecting, FIFO-multiplexed beamline `Client` per node, follows `MOVED` and `ASK`,
/// retries what the cluster asks to retry, and keeps its slot map fresh.
///
/// Cheap to clone: every clone is the same client. When the last one is dropped, the
/// refresh task stops and the node connections close.
///
/// See the [crate docs](crate) for the guarantees and the tests that hold them.
///
/// # Examples
/// ```no_run
/// use beamline_redis::ClusterClient;
/// use beamline_resp::{Command, Value};
///
/// # async fn run() -> Result<(), beamline_redis::ClusterError> {
/// let cluster = ClusterClient::builder(["10.0.0.1:7000", "10.0.0.2:7000"])
///     .connect()
///     .await?;
/// cluster.call(Command::new("SET").arg("user:1").arg("ada")).await?;
/// let name = cluster.call(Command::new("GET").arg("user:1")).await?;
/// assert_eq!(name, Value::bulk("ada"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ClusterClient {
    pub(crate) inner: Arc<Inner>,
}

/// What a client has done, for tests and dashboards ([`ClusterClient::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterStats {
    /// Topology refreshes that installed a new view.
    pub refreshes: u64,
    /// Refreshes that found no node to answer.
    pub failed_refreshes: u64,
    /// `MOVED` redirects followed.
    pub moved: u64,
    /// `ASK` redirects followed (each sent as `ASKING` + the command).
    pub asked: u64,
    /// Requests sent again after their connection was lost (idempotent ones only).
    pub resent: u64,
    /// Requests answered by a replica asked in place of its unreachable primary: the
    /// cluster had promoted it (each moves the shard to it in the client's map).
    pub stood_in: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) refreshes: AtomicU64,
    pub(crate) failed_refreshes: AtomicU64,
    pub(crate) moved: AtomicU64,
    pub(crate) asked: AtomicU64,
    pub(crate) resent: AtomicU64,
    pub(crate) stood_in: AtomicU64,
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// The primary of the slot, by the current map.
    Slot(u16),
    /// A read of the slot: where [`ReadFrom`] says.
    Read(u16),
    /// Any primary (a keyless command).
    AnyPrimary,
    /// This node (one part of a command sent to every primary).
    Node(Arc<str>),
}

impl Route {
    /// The slot the route is about, if any.
    pub(crate) fn slot(&self) -> Option<u16> {
        match self {
            Route::Slot(slot) | Route::Read(slot) => Some(*slot),
            Route::AnyPrimary | Route::Node(_) => None,
        }
    }
}

/// Everything the handles share.
pub(crate) struct Inner {
    pub(crate) config: ClusterBuilder,
    /// The current slot map, swapped whole.
    map: Mutex<Arc<SlotMap>>,
    pub(crate) nodes: Nodes,
    /// The replicas' clients, for reads ([`ReadFrom`]): separate from `nodes`, because
    /// their connections are in `READONLY` mode.
    pub(crate) replicas: Nodes,
    /// Wakes the refresh task (one stored permit: triggers coalesce).
    trigger: Arc<Notify>,
    refresher: Mutex<Option<AbortHandle>>,
    rng: Mutex<SplitMix64>,
    pub(crate) counters: Counters,
}

impl fmt::Debug for ClusterClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterClient")
            .field("name", &self.inner.config.name)
            .field("nodes", &self.inner.nodes.known())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner")
            .field("name", &self.config.name)
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let refresher = self
            .refresher
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = refresher.take() {
            task.abort();
        }
    }
}

impl ClusterClient {
    /// A builder for a client that first asks `seeds` (`host:port` of any nodes of the
    /// cluster, primaries or replicas) for the slot map.
    pub fn builder<I>(seeds: I) -> ClusterBuilder
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        ClusterBuilder::new(seeds.into_iter().map(Into::into).collect())
    }

    pub(crate) async fn start(config: ClusterBuilder) -> Result<ClusterClient, ClusterError> {
        let mut errors = Vec::new();
        let mut pending: FuturesUnordered<_> = config
            .seeds
            .iter()
            .map(|seed| {
                let candidate = Candidate {
                    node: Arc::from(seed.as_str()),
                    dial: seed.clone(),
                };
                let timeout = config.refresh_timeout.max(config.connect_timeout);
                async move { refresh::fetch(&candidate, timeout).await }
            })
            .collect();
        let mut first = None;
        while let Some(answer) = pending.next().await {
            match answer {
                Ok(map) => {
                    first = Some(map);
                    break;
                }
                Err(e) => errors.push(e),
            }
        }
        drop(pending);
        let Some(map) = first else {
            if errors.is_empty() {
                errors.push("no seed was given".to_owned());
            }
            return Err(ClusterError::NoSeed { errors });
        };
        let registry = || {
            Nodes::new(
                config.name.clone(),
                config.address_map.clone(),
                config.timeout,
                config.connect_timeout,
                config.max_in_flight,
                config.connections_per_node,
            )
        };
        let (nodes, replicas) = (registry(), registry());
        let (interval, min_interval) = (config.refresh_interval, config.refresh_min_interval);
        let inner = Arc::new(Inner {
            config,
            map: Mutex::new(Arc::new(map)),
            nodes,
            replicas,
            trigger: Arc::new(Notify::new()),
            refresher: Mutex::new(None),
            rng: Mutex::new(SplitMix64::from_entropy()),
            counters: Counters::default(),
        });
        let task = tokio::spawn(refresh::run(
            Arc::downgrade(&inner),
            inner.trigger.clone(),
            interval,
            min_interval,
        ));
        *inner
            .refresher
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(task.abort_handle());
        let client = ClusterClient { inner };
        if client.inner.config.sync_connect {
            client.until_whole().await?;
        }
        tracing::debug!(name = %client.inner.config.name, "redis cluster: started");
        Ok(client)
    }

    /// `sync_connect`: refreshes until every slot is served and every primary connected,
    /// within the request timeout.
    async fn until_whole(&self) -> Result<(), ClusterError> {
        let inner = &self.inner;
        let timeout = inner.config.timeout;
        let deadline = Instant::now() + timeout;
        let mut pause = std::time::Duration::from_millis(100);
        loop {
            let map = inner.map();
            let unreachable: Vec<String> = inner
                .connect_primaries(&map)
                .await
                .into_iter()
                .map(|(node, e)| format!("{node}: {e}"))
                .collect();
            let served = map.served();
            if served == usize::from(crate::SLOTS) && unreachable.is_empty() {
                return Ok(());
            }
            if Instant::now() + pause >= deadline {
                return Err(ClusterError::NotReady {
                    timeout,
                    served,
                    unreachable,
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_secs(1));
            inner.refresh().await;
        }
    }

    /// Sends `command` to the node serving its key's slot and waits for its answer. A
    /// command that only reads (by the command table) is sent again after a lost
    /// connection; any other is not (see [`call_idempotent`](Self::call_idempotent)).
    ///
    /// A Redis error reply (`-WRONGTYPE ...`) is an `Ok(Value::Error(..))`, as with the
    /// plain client: the command was delivered and answered. `MOVED`, `ASK`, `TRYAGAIN`,
    /// `CLUSTERDOWN`, `LOADING` and `MASTERDOWN` are handled here, never returned.
    ///
    /// # Errors
    /// A [`ClusterError`];
    /// [`may_have_been_applied`](ClusterError::may_have_been_applied) says whether
    /// sending it again is safe.
    pub async fn call(&self, command: Command) -> Result<Value, ClusterError> {
        self.request(command, false).await
    }

    /// As [`call`](Self::call), for a command you declare safe to apply twice (`SET k v`,
    /// `HSET`, `DEL`): after a lost connection it is sent again, to the slot's owner after
    /// a refresh, within the deadline.
    ///
    /// # Errors
    /// As [`call`](Self::call).
    pub async fn call_idempotent(&self, command: Command) -> Result<Value, ClusterError> {
        self.request(command, true).await
    }

    /// The counters of redirects, refreshes and resends so far.
    pub fn stats(&self) -> ClusterStats {
        let c = &self.inner.counters;
        ClusterStats {
            refreshes: c.refreshes.load(Ordering::Relaxed),
            failed_refreshes: c.failed_refreshes.load(Ordering::Relaxed),
            moved: c.moved.load(Ordering::Relaxed),
            asked: c.asked.load(Ordering::Relaxed),
            resent: c.resent.load(Ordering::Relaxed),
            stood_in: c.stood_in.load(Ordering::Relaxed),
        }
    }

    /// The nodes this client holds a connection to (or is connecting to), by announced
    /// address, sorted.
    pub fn connected_nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = self
            .inner
            .nodes
            .known()
            .iter()
            .chain(&self.inner.replicas.known())
            .map(|n| n.to_string())
            .collect();
        nodes.sort();
        nodes.dedup();
        nodes
    }

    /// The primary serving `slot` in the client's current slot map.
    pub fn primary_of(&self, slot: u16) -> Option<String> {
        self.inner.map().primary(slot).map(|p| p.to_string())
    }

    /// Asks the refresh task for a refresh now (it still keeps its minimum interval).
    pub fn refresh_soon(&self) {
        self.inner.refresh_soon();
    }
}

impl Inner {
    /// The current slot map.
    pub(crate) fn map(&self) -> Arc<SlotMap> {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Which node `route` names now, and whether it is a replica (read with `READONLY`).
    /// `avoid_replicas`: a replica failed this request, so [`ReadFrom::PreferReplica`]
    /// falls back to the primary.
    pub(crate) fn route(&self, route: &Route, avoid_replicas: bool) -> Option<(Arc<str>, bool)> {
        let map = self.map();
        let primary = |slot: u16| map.primary(slot).cloned().map(|node| (node, false));
        match route {
            Route::Slot(slot) => primary(*slot),
            Route::Read(slot) => {
                let replicas = map.replicas(*slot);
                let replica = || {
                    replicas
                        .get(self.random(replicas.len()))
                        .cloned()
                        .map(|node| (node, true))
                };
                match self.config.read_from {
                    ReadFrom::Primary => primary(*slot),
                    ReadFrom::PreferReplica if avoid_replicas || replicas.is_empty() => {
                        primary(*slot)
                    }
                    ReadFrom::PreferReplica | ReadFrom::Replica => replica(),
                }
            }
            Route::AnyPrimary => {
                let primaries: Vec<&Arc<str>> = map.primaries().collect();
                let pick = self.random(primaries.len());
                primaries
                    .get(pick)
                    .copied()
                    .cloned()
                    .map(|node| (node, false))
            }
            Route::Node(node) => Some((node.clone(), false)),
        }
    }

    /// Makes sure every primary of `map` has a connection (each made at most once, all at
    /// once); the primaries that could not be reached, with why.
    pub(crate) async fn connect_primaries(
        &self,
        map: &SlotMap,
    ) -> Vec<(Arc<str>, beamline_client::BuildError)> {
        let primaries: Vec<&Arc<str>> = map.primaries().collect();
        let connected =
            futures::future::join_all(primaries.iter().map(|p| self.nodes.client(p))).await;
        primaries
            .into_iter()
            .zip(connected)
            .filter_map(|(node, client)| client.err().map(|e| (node.clone(), e)))
            .collect()
    }

    /// A `MOVED` answer (or a write a replica took): `slot` is served by `node` from now
    /// on. When `node` is a replica of the slot's shard, the shard failed over: the whole
    /// shard moves (its other slots would answer `MOVED` one by one until the next refresh
    /// otherwise).
    pub(crate) fn moved(&self, slot: u16, node: &str) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.primary(slot).is_some_and(|owner| &**owner == node) {
            return;
        }
        let next = map
            .promoted(slot, node)
            .unwrap_or_else(|| map.moved(slot, node));
        *map = Arc::new(next);
    }

    /// A replica of `slot`'s shard to ask in place of its primary, `down` (whose connection
    /// failed the request): it takes the write the moment it is promoted, and answers
    /// `MOVED` back to `down` before. `None` when the map's primary is not `down` any more,
    /// or the shard has no replica.
    pub(crate) fn stand_in(&self, slot: u16, down: &str) -> Option<Arc<str>> {
        let map = self.map();
        if map.primary(slot).is_none_or(|primary| &**primary != down) {
            return None;
        }
        let replicas = map.replicas(slot);
        replicas.get(self.random(replicas.len())).cloned()
    }

    /// Asks the refresh task for a refresh (coalesced, rate-limited).
    pub(crate) fn refresh_soon(&self) {
        self.trigger.notify_one();
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub(crate) fn random(&self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        (rng.next() % n as u64) as usize
    }

    /// A seed for a request's retry jitter.
    pub(crate) fn seed(&self) -> u64 {
        self.rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next()
    }

    /// One refresh: asks the known nodes and the seeds (shuffled, a few at a time) for
    /// `CLUSTER SLOTS`, installs the majority view and drops the clients of nodes that
    /// left it. Bounded by twice the refresh timeout.
    pub(crate) async fn refresh(&self) {
        let mut candidates: Vec<Candidate> = Vec::new();
        let mut seen = HashSet::new();
        let map = self.map();
        let known = map.nodes().cloned().map(|node| Candidate {
            dial: self.nodes.dial_addr(&node).to_owned(),
            node,
        });
        let seeds = self.config.seeds.iter().map(|seed| Candidate {
            node: Arc::from(seed.as_str()),
            dial: seed.clone(),
        });
        for candidate in known.chain(seeds) {
            if seen.insert(candidate.dial.clone()) {
                candidates.push(candidate);
            }
        }
        // Fisher-Yates: spread the refreshes of many clients over the nodes.
        for i in (1..candidates.len()).rev() {
            let j = self.random(i + 1);
            candidates.swap(i, j);
        }
        let deadline = Instant::now() + self.config.refresh_timeout * 2;
        match refresh::discover(
            &candidates,
            self.config.refresh_fanout,
            self.config.refresh_timeout,
            deadline,
        )
        .await
        {
            Ok(view) => {
                let keep: HashSet<&str> = view.nodes().map(|n| &**n).collect();
                self.nodes.retain(&keep);
                self.replicas.retain(&keep);
                drop(keep);
                *self.map.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(view);
                self.counters.refreshes.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(name = %self.config.name, "redis cluster: slot map refreshed");
            }
            Err(errors) => {
                self.counters
                    .failed_refreshes
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    name = %self.config.name,
                    errors = %errors.join("; "),
                    "redis cluster: no node answered the topology refresh",
                );
            }
        }
    }
}
