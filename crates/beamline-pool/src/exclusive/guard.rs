//! The exclusive pool's checkout guard.

use std::borrow::Cow;
use std::fmt;
use std::ops::{Deref, DerefMut};

use super::Pool;
use crate::Manager;
use crate::core::Conn;

/// A connection checked out of a [`Pool`]: `Deref`/`DerefMut` to it, returned when dropped.
///
/// Its methods are associated functions (`PoolGuard::mark_broken(&mut guard)`), so they never
/// shadow the connection's own.
///
/// # Guarantees
/// When the guard drops, the connection goes back to the pool — to the longest waiter first —
/// unless it must not be reused, in which case it is closed and the pool opens a replacement
/// if a waiter or `min_idle` needs one. It is closed when:
/// - the guard is dropped while its thread panics (the connection may be half-way through a
///   request: its state is unknown, so it is never handed to someone else);
/// - it was [marked broken](Self::mark_broken), or [`Manager::is_broken`] says so;
/// - it is past its max lifetime, or the pool was closed.
///
/// [`detach`](Self::detach) takes the connection out of the pool for good.
pub struct PoolGuard<'a, M: Manager> {
    pool: Cow<'a, Pool<M>>,
    /// `Some` from checkout until `drop` or `detach`, which both consume the guard.
    conn: Option<Conn<M::Connection>>,
    broken: bool,
}

impl<'a, M: Manager> PoolGuard<'a, M> {
    pub(super) fn new(pool: Cow<'a, Pool<M>>, conn: Conn<M::Connection>) -> Self {
        Self {
            pool,
            conn: Some(conn),
            broken: false,
        }
    }

    fn conn(&self) -> &Conn<M::Connection> {
        match &self.conn {
            Some(conn) => conn,
            None => unreachable!("a live PoolGuard always holds its connection"),
        }
    }

    fn conn_mut(&mut self) -> &mut Conn<M::Connection> {
        match &mut self.conn {
            Some(conn) => conn,
            None => unreachable!("a live PoolGuard always holds its connection"),
        }
    }

    /// Marks the connection broken: when the guard drops it is closed, not returned, and a
    /// replacement is opened if needed. Use it after an I/O error, a protocol error, or a
    /// request cancelled half-way.
    pub fn mark_broken(this: &mut Self) {
        this.broken = true;
    }

    /// Whether [`mark_broken`](Self::mark_broken) was called.
    pub fn is_marked_broken(this: &Self) -> bool {
        this.broken
    }

    /// Takes the connection out of the pool: the caller owns it, the pool no longer counts it
    /// (so it may open another in its place) and never sees it again.
    pub fn detach(mut this: Self) -> M::Connection {
        match this.conn.take() {
            Some(conn) => this.pool.core.detach(conn),
            None => unreachable!("a live PoolGuard always holds its connection"),
        }
    }

    /// The pool this connection came from.
    pub fn pool(this: &Self) -> &Pool<M> {
        &this.pool
    }
}

impl<M: Manager> Deref for PoolGuard<'_, M> {
    type Target = M::Connection;

    fn deref(&self) -> &M::Connection {
        &self.conn().conn
    }
}

impl<M: Manager> DerefMut for PoolGuard<'_, M> {
    fn deref_mut(&mut self) -> &mut M::Connection {
        &mut self.conn_mut().conn
    }
}

impl<M: Manager> Drop for PoolGuard<'_, M> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.core.drop_lease(conn, self.broken);
        }
    }
}

impl<M: Manager> fmt::Debug for PoolGuard<'_, M>
where
    M::Connection: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolGuard")
            .field("pool", &self.pool.name())
            .field("conn", &self.conn().conn)
            .field("broken", &self.broken)
            .finish()
    }
}
