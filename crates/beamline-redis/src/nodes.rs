//! One composed beamline `Client` per node: made when a request first needs the node,
//! shared by every request to it, dropped when the node leaves the slot map.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use beamline_backoff::BackoffConfig;
use beamline_client::{BuildError, Client, Pooling};
use beamline_pool::PoolConfig;
use beamline_reconnect::{OfflinePolicy, ReconnectConfig};
use beamline_resp::Value;
use tokio::sync::OnceCell;

use crate::codec::{ClusterCodec, NodeRequest};

/// A node's client: FIFO RESP (with `ASKING` pairs), reconnecting.
pub(crate) type NodeClient = Client<NodeRequest, Value>;

/// The per-node clients, by announced address.
#[derive(Debug)]
pub(crate) struct Nodes {
    /// A cell per node: concurrent first requests to a node share one connect.
    clients: Mutex<HashMap<Arc<str>, Arc<OnceCell<NodeClient>>>>,
    name: Arc<str>,
    address_map: HashMap<String, String>,
    timeout: Duration,
    connect_timeout: Duration,
    max_in_flight: usize,
    connections: usize,
}

impl Nodes {
    pub(crate) fn new(
        name: Arc<str>,
        address_map: HashMap<String, String>,
        timeout: Duration,
        connect_timeout: Duration,
        max_in_flight: usize,
        connections: usize,
    ) -> Self {
        Nodes {
            clients: Mutex::new(HashMap::new()),
            name,
            address_map,
            timeout,
            connect_timeout,
            max_in_flight,
            connections,
        }
    }

    /// Where to dial the node announced as `node`.
    pub(crate) fn dial_addr<'a>(&'a self, node: &'a str) -> &'a str {
        self.address_map.get(node).map_or(node, String::as_str)
    }

    /// The client of `node`, connecting it first if needed (once, whoever asks).
    ///
    /// # Errors
    /// The connect attempt's error; the next call tries again.
    pub(crate) async fn client(&self, node: &Arc<str>) -> Result<NodeClient, BuildError> {
        let cell = {
            let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
            let cell = clients.entry(node.clone()).or_default();
            // A client that closed for good is replaced by a fresh cell.
            if cell.get().is_some_and(NodeClient::is_closed) {
                *cell = Arc::new(OnceCell::new());
            }
            cell.clone()
        };
        cell.get_or_try_init(|| self.connect(node)).await.cloned()
    }

    async fn connect(&self, node: &Arc<str>) -> Result<NodeClient, BuildError> {
        let reconnect = ReconnectConfig::new(OfflinePolicy::FailFast)
            .sync_connect(true)
            .connect_timeout(self.connect_timeout)
            .backoff(BackoffConfig::exponential(
                Duration::from_millis(50),
                2.0,
                Duration::from_secs(2),
            ));
        let pooling = if self.connections > 1 {
            // A place in the pool is waited for within the request's deadline; the pool
            // keeps its connections (they reconnect by themselves) for the client's life.
            Pooling::Shared(
                PoolConfig::new(self.connections)
                    .connect_timeout(Some(self.connect_timeout))
                    .checkout_timeout(Some(self.timeout))
                    .idle_timeout(None)
                    .max_lifetime(None),
            )
        } else {
            Pooling::Single
        };
        Client::builder(self.dial_addr(node))
            .fifo::<NodeRequest, _>(ClusterCodec::new())
            .name(format!("{} {node}", self.name))
            .timeout(self.timeout)
            .max_in_flight(self.max_in_flight)
            .reconnect(reconnect)
            .pool(pooling)
            .connect()
            .await
    }

    /// Drops the clients of nodes not in `keep` (their connections close when the last
    /// request using them ends).
    pub(crate) fn retain(&self, keep: &HashSet<&str>) {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        clients.retain(|node, _| keep.contains(&**node));
    }

    /// The nodes that have a client (connected, or being connected).
    pub(crate) fn known(&self) -> Vec<Arc<str>> {
        let clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let mut known: Vec<Arc<str>> = clients.keys().cloned().collect();
        known.sort();
        known
    }
}
