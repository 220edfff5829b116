//! The seam a user implements: how to make, test and reuse one connection.

use std::future::{Future, ready};

/// How the pool makes, tests and reuses connections of one kind, to one target.
///
/// Both pools ([`Pool`](crate::Pool) and [`SharedPool`](crate::SharedPool)) drive the same
/// trait. Only [`create`](Self::create) and [`target`](Self::target) are required; the rest
/// default to "always fine".
///
/// | method | when the pool calls it | what a failure does |
/// |---|---|---|
/// | [`create`](Self::create) | a connection is needed (a waiter, `min_idle`), under the connect timeout, with backoff between failures | the error goes to the longest waiter, wrapped in a [`ConnectError`](crate::ConnectError); a panic is caught and goes to it as [`CreatePanicked`](crate::CheckoutError::CreatePanicked) |
/// | [`recycle`](Self::recycle) | exclusive pool: before a *used* connection is handed out again | the connection is discarded; the checkout goes on with another (a panic: discarded, and the panic goes on to the caller of `get`) |
/// | [`check`](Self::check) | exclusive pool: before a connection is handed out, as [`CheckPolicy`](crate::CheckPolicy) says | the connection is discarded; the checkout goes on with another (a panic: as for `recycle`) |
/// | [`is_broken`](Self::is_broken) | every time a user gives a connection back (and, in the shared pool, before adding a user) | `true` discards it (a panic too, and the panic goes on to the caller) |
///
/// The shared pool never calls `recycle` or `check`: its connections always have users in
/// flight, so there is no moment when the pool alone holds one. A multiplexed connection
/// watches its own health (a reconnecting connection's ping, for instance) and reports it
/// through [`is_broken`](Self::is_broken).
///
/// # Examples
/// ```
/// use std::io;
/// use beamline_pool::Manager;
/// use tokio::net::TcpStream;
///
/// struct Tcp { addr: std::net::SocketAddr }
///
/// impl Manager for Tcp {
///     type Connection = TcpStream;
///     type Error = io::Error;
///
///     async fn create(&self) -> io::Result<TcpStream> {
///         TcpStream::connect(self.addr).await
///     }
///
///     fn target(&self) -> String {
///         self.addr.to_string()
///     }
/// }
/// ```
pub trait Manager: Send + Sync + 'static {
    /// The pooled connection.
    type Connection: Send + 'static;
    /// Why making or checking a connection failed. The pool hands it to the caller
    /// unchanged (inside a [`ConnectError`](crate::ConnectError)), never a string of it.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Opens one new connection.
    ///
    /// The pool runs it on its own task, under the connect timeout, so a caller that stops
    /// waiting does not cancel it: the connection goes to the next waiter or stays idle. A
    /// panic here is caught and counted as a failed attempt (see
    /// [`CheckoutError::CreatePanicked`](crate::CheckoutError::CreatePanicked)).
    fn create(&self) -> impl Future<Output = Result<Self::Connection, Self::Error>> + Send;

    /// What this manager connects to (`127.0.0.1:6379`, `redis://cache`), named in every
    /// connect error so a failure says where it happened. Called once per failed attempt.
    fn target(&self) -> String;

    /// A health check (a `PING`), run on checkout when the pool's
    /// [`CheckPolicy`](crate::CheckPolicy) asks for one. An error discards the connection.
    fn check(
        &self,
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = conn;
        ready(Ok(()))
    }

    /// Cheap and synchronous: whether a connection can no longer be used (its socket
    /// closed, its protocol state lost). Called on every return, so keep it to a flag read.
    fn is_broken(&self, conn: &Self::Connection) -> bool {
        let _ = conn;
        false
    }

    /// Makes a used connection ready for its next user (roll back, reset session state).
    /// Runs on checkout, before [`check`](Self::check), only for connections that had a user
    /// before. An error discards the connection.
    fn recycle(
        &self,
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = conn;
        ready(Ok(()))
    }
}
