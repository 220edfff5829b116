//! The shared pool's checkout guard.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use super::SharedPool;
use super::store::SharedLease;
use crate::Manager;

/// A share of a multiplexed connection from a [`SharedPool`]: `Deref` to `&Connection`, given
/// back when dropped.
///
/// Other checkouts may use the same connection at the same time; that is the point. Its
/// methods are associated functions, so they never shadow the connection's own.
///
/// # Guarantees
/// When the guard drops, its share goes back to the pool (to the longest waiter first). If its
/// thread is panicking, it was [marked broken](Self::mark_broken), or [`Manager::is_broken`]
/// says so, the connection *drains*: no new user gets it, the users it has finish, and it is
/// closed when the last one leaves.
pub struct SharedGuard<'a, M: Manager>
where
    M::Connection: Sync,
{
    pool: Cow<'a, SharedPool<M>>,
    /// `Some` from checkout until `drop` or `detach`, which both consume the guard.
    lease: Option<SharedLease<M::Connection>>,
    broken: bool,
}

impl<'a, M: Manager> SharedGuard<'a, M>
where
    M::Connection: Sync,
{
    pub(super) fn new(pool: Cow<'a, SharedPool<M>>, lease: SharedLease<M::Connection>) -> Self {
        Self {
            pool,
            lease: Some(lease),
            broken: false,
        }
    }

    /// Marks the connection broken: when this guard drops, the connection drains (no new
    /// users; closed when its last user leaves) and a replacement is opened if needed.
    pub fn mark_broken(this: &mut Self) {
        this.broken = true;
    }

    /// Whether [`mark_broken`](Self::mark_broken) was called.
    pub fn is_marked_broken(this: &Self) -> bool {
        this.broken
    }

    /// Takes the connection out of the pool: the pool stops counting it (and may open another
    /// in its place) and never hands it out again. Its other current users keep their guards;
    /// the connection closes when the last handle to it drops.
    pub fn detach(mut this: Self) -> Arc<M::Connection> {
        match this.lease.take() {
            Some(lease) => this.pool.core.detach(lease),
            None => unreachable!("a live SharedGuard always holds its lease"),
        }
    }

    /// The pool this share came from.
    pub fn pool(this: &Self) -> &SharedPool<M> {
        &this.pool
    }
}

impl<M: Manager> Deref for SharedGuard<'_, M>
where
    M::Connection: Sync,
{
    type Target = M::Connection;

    fn deref(&self) -> &M::Connection {
        match &self.lease {
            Some(lease) => &lease.conn,
            None => unreachable!("a live SharedGuard always holds its lease"),
        }
    }
}

impl<M: Manager> Drop for SharedGuard<'_, M>
where
    M::Connection: Sync,
{
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            self.pool.core.drop_lease(lease, self.broken);
        }
    }
}

impl<M: Manager> fmt::Debug for SharedGuard<'_, M>
where
    M::Connection: Sync + fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedGuard")
            .field("pool", &self.pool.name())
            .field("conn", &**self)
            .field("broken", &self.broken)
            .finish()
    }
}
