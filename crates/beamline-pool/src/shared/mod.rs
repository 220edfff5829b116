//! The shared pool: multiplexed connections, each used by up to `max_users` tasks at once.

mod guard;
mod store;

pub use guard::SharedGuard;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::core::{Core, Deadline, Leased, Prepare, Prepared};
use crate::metrics::CloseReason;
use crate::{CheckoutError, ConfigError, Manager, PoolConfig, StartError};
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
/// - **Least-loaded first**: a checkout joins the open connection with the fewest users (as
///   its scan of the counts saw them; a compare-and-swap makes sure the one it joins had not
///   changed since).
/// - **Strictly FIFO when full**: when every connection is at `max_users` and `max_size` are
///   open, checkouts queue and are served in arrival order as users leave or connections open.
/// - **Honest errors, no loss on give-up, backoff, `close()`**: as for [`Pool`](crate::Pool).
/// - **A broken connection takes no new user**: once a user marks it broken, its user panics,
///   or [`Manager::is_broken`] says so, it *drains*: its current users finish, it is closed
///   when the last one leaves, and new checkouts go elsewhere (or to a replacement). Past its
///   max lifetime it drains the same way, at the latest at the next maintenance tick.
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
        let lease = self.core.get().await?;
        Ok(SharedGuard::new(Cow::Borrowed(self), lease))
    }

    /// [`get`](Self::get), with a guard that owns a handle to the pool, for spawned tasks.
    ///
    /// # Errors
    /// As for [`Pool::get`](crate::Pool::get).
    pub async fn get_owned(&self) -> Result<SharedGuard<'static, M>, CheckoutError<M::Error>> {
        let lease = self.core.get().await?;
        Ok(SharedGuard::new(Cow::Owned(self.clone()), lease))
    }

    crate::core::handle_methods!();
}

/// A share is ready unless [`Manager::is_broken`] says its connection is broken; then the
/// connection drains and the checkout goes on. If `is_broken` panics, the connection drains
/// too, and the panic goes on to the caller of `get` once the pool's books are right.
impl<M: Manager> Prepare<M> for Shared<M::Connection>
where
    M::Connection: Sync,
{
    fn prepare<'a>(
        core: &'a Arc<SharedCore<M>>,
        leased: Leased<SharedLease<M::Connection>>,
        _: &'a mut Deadline,
    ) -> impl Future<Output = Prepared<SharedLease<M::Connection>>> + Send + 'a {
        let prepared = match core.is_broken(&leased.lease) {
            Ok(false) => Prepared::Ready(leased.lease),
            Ok(true) => {
                core.reject(leased, CloseReason::Broken);
                Prepared::Discarded
            }
            Err(panic) => {
                core.reject(leased, CloseReason::Broken);
                std::panic::resume_unwind(panic);
            }
        };
        std::future::ready(prepared)
    }
}
