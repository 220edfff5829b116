//! The shared pool: multiplexed connections, each used by up to `max_users` tasks at once.

mod guard;
mod store;

pub use guard::SharedGuard;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::core::{Core, Deadline};
use crate::metrics::CloseReason;
use crate::{CheckoutError, ConfigError, Manager, PoolConfig, PoolMetrics, StartError};
use store::{Shared, SharedLease};

type SharedCore<M> = Core<M, Shared<<M as Manager>::Connection>>;

/// A pool of multiplexed connections, each shared by up to `max_users` checkouts at once.
///
/// A multiplexed connection (requests tagged with ids, or pipelined in order) serves many
/// requests in flight; `max_users` is how many it takes (its in-flight capacity). A checkout
/// gets a [`SharedGuard`] (`Deref` to `&Connection`) on the least-loaded open connection, and
/// when every connection is at `max_users`, the pool **opens another, up to `max_size`** —
/// where a pool of one connection per host would leave callers queued behind a saturated one.
///
/// Configured with the same [`PoolConfig`] as [`Pool`](crate::Pool); `min_idle` counts
/// connections with no user, and [`CheckPolicy`](crate::CheckPolicy) does not apply (there is
/// no moment when the pool alone holds a shared connection; see [`Manager`]).
///
/// # Guarantees
/// - **At most `max_size` connections, at most `max_users` users on each.**
/// - **Least-loaded first**: a checkout joins the open connection with the fewest users.
/// - **Strictly FIFO when full**: when every connection is at `max_users` and `max_size` are
///   open, checkouts queue and are served in arrival order as users leave or connections open.
/// - **Honest errors, no loss on give-up, backoff, `close()`**: as for [`Pool`](crate::Pool).
/// - **A broken connection takes no new user**: once a user marks it broken, its user panics,
///   [`Manager::is_broken`] says so, or it passes its max lifetime, it *drains*: its current
///   users finish, it is closed when the last one leaves, and new checkouts go elsewhere (or to
///   a replacement).
///
/// # Examples
/// ```no_run
/// use std::io;
/// use beamline_pool::{Manager, PoolConfig, SharedPool};
///
/// /// A multiplexed client: `&self` methods, many requests in flight.
/// struct Client;
/// impl Client { async fn call(&self, _req: &str) -> io::Result<String> { Ok(String::new()) } }
///
/// struct Clients;
/// impl Manager for Clients {
///     type Connection = Client;
///     type Error = io::Error;
///     async fn create(&self) -> io::Result<Client> { Ok(Client) }
///     fn target(&self) -> String { "127.0.0.1:7000".into() }
/// }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// // Up to 4 connections, 64 requests in flight on each.
/// let pool = SharedPool::start(Clients, PoolConfig::new(4), 64).await?;
/// let client = pool.get().await?;
/// let reply = client.call("GET k").await?;
/// # let _ = reply;
/// # Ok(()) }
/// ```
pub struct SharedPool<M: Manager>
where
    M::Connection: Sync,
{
    core: Arc<SharedCore<M>>,
}

impl<M: Manager> Clone for SharedPool<M>
where
    M::Connection: Sync,
{
    fn clone(&self) -> Self {
        Self {
            core: Arc::clone(&self.core),
        }
    }
}

impl<M: Manager> fmt::Debug for SharedPool<M>
where
    M::Connection: Sync,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt(f)
    }
}

impl<M: Manager> SharedPool<M>
where
    M::Connection: Sync,
{
    /// Starts a shared pool whose connections each take up to `max_users` users at once.
    ///
    /// # Errors
    /// As for [`Pool::start`](crate::Pool::start), and
    /// [`ConfigError::ZeroMaxUsers`] when `max_users` is 0.
    pub async fn start(
        manager: M,
        config: PoolConfig,
        max_users: usize,
    ) -> Result<Self, StartError<M::Error>> {
        if max_users == 0 {
            return Err(ConfigError::ZeroMaxUsers.into());
        }
        let store = Shared::new(config.max_size, max_users);
        Ok(Self {
            core: Core::start(manager, config, store).await?,
        })
    }

    /// A share of the least-loaded connection with room for one more user; opens another
    /// connection when all are full, and waits in FIFO order when `max_size` are open and
    /// full. A connection [`Manager::is_broken`] flags is drained and the checkout goes on.
    ///
    /// Cancel-safe: dropping the future gives up the checkout without losing a share.
    ///
    /// # Errors
    /// As for [`Pool::get`](crate::Pool::get).
    pub async fn get(&self) -> Result<SharedGuard<'_, M>, CheckoutError<M::Error>> {
        let lease = self.checkout().await?;
        Ok(SharedGuard::new(Cow::Borrowed(self), lease))
    }

    /// [`get`](Self::get), with a guard that owns a handle to the pool, for spawned tasks.
    ///
    /// # Errors
    /// As for [`Pool::get`](crate::Pool::get).
    pub async fn get_owned(&self) -> Result<SharedGuard<'static, M>, CheckoutError<M::Error>> {
        let lease = self.checkout().await?;
        Ok(SharedGuard::new(Cow::Owned(self.clone()), lease))
    }

    async fn checkout(&self) -> Result<SharedLease<M::Connection>, CheckoutError<M::Error>> {
        let mut deadline = Deadline::new(self.core.config.checkout_timeout);
        let mut front = false;
        loop {
            let leased = self.core.lease(front, &mut deadline).await?;
            if !self.core.manager.is_broken(&leased.lease.conn) {
                return Ok(leased.lease);
            }
            self.core.reject(leased, CloseReason::Broken);
            front = true;
        }
    }

    /// A snapshot of the pool's gauges and counters (`users` counts shares).
    pub fn metrics(&self) -> PoolMetrics {
        self.core.metrics()
    }

    /// Closes the pool: queued checkouts fail with [`CheckoutError::Closed`], connections
    /// without users close now, the others close when their last user leaves, later checkouts
    /// fail with `Closed`. Idempotent.
    pub fn close(&self) {
        self.core.close();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.core.is_closed()
    }

    /// The pool's name, as errors and traces show it.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// The manager.
    pub fn manager(&self) -> &M {
        &self.core.manager
    }
}
