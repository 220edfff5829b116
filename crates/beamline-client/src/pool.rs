//! Pools of reconnecting, multiplexed connections: the pool's [`Manager`] for the Client.

use std::fmt;
use std::sync::Arc;

use beamline_pool::{Manager, PoolConfig};
use beamline_reconnect::{Connection, Reconnect, ReconnectConfig, StartError};

use super::TransportError;
use super::connection::{Dialer, MuxConnection};

/// How many connections a [`Client`](crate::Client) keeps, and who may use one
/// ([`ClientBuilder::pool`](crate::ClientBuilder::pool)).
///
/// Every pooled connection is itself reconnecting and multiplexed, with the client's
/// backoff and offline policy; the pool decides how many there are and who uses which.
/// The pool's name is replaced by the client's.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use beamline_client::Pooling;
/// use beamline_pool::PoolConfig;
///
/// // Up to 4 connections; a call waits at most 1 s for one.
/// let pooling = Pooling::Shared(PoolConfig::new(4).checkout_timeout(Some(Duration::from_secs(1))));
/// # let _ = pooling;
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum Pooling {
    /// One reconnecting connection shared by every caller, multiplexed. The default: a
    /// multiplexed connection serves many callers at once, so one is often enough.
    #[default]
    Single,
    /// A pool of connections, each lent to one call at a time ([`beamline_pool::Pool`]):
    /// for servers that work on one request per connection at a time.
    Exclusive(PoolConfig),
    /// A pool of connections, each shared by up to `max_in_flight` calls at once
    /// ([`beamline_pool::SharedPool`]): the least-loaded one takes the call, and another is
    /// opened (up to `max_size`) when all are full.
    Shared(PoolConfig),
}

/// The pool's [`Manager`] for a [`Client`](crate::Client): each pooled connection is a
/// reconnecting, multiplexed connection ([`Reconnect`] of [`MuxConnection`]).
///
/// `create` makes the first physical connection itself, so a pool whose target is down
/// reports the real [`TransportError`] (refused, TLS handshake...) to its waiters; after
/// that the connection reconnects by itself, with the client's backoff and offline policy.
/// A pooled connection is broken only when it is closed for good (its backoff gave up).
pub struct ClientManager<Req, Resp> {
    dialer: Arc<Dialer<Req, Resp>>,
    config: ReconnectConfig,
}

impl<Req, Resp> ClientManager<Req, Resp> {
    pub(crate) fn new(dialer: Arc<Dialer<Req, Resp>>, config: ReconnectConfig) -> Self {
        ClientManager { dialer, config }
    }
}

impl<Req, Resp> fmt::Debug for ClientManager<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientManager")
            .field("target", &self.dialer.target_name)
            .field("reconnect", &self.config)
            .finish_non_exhaustive()
    }
}

impl<Req, Resp> Manager for ClientManager<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    type Connection = Reconnect<MuxConnection<Req, Resp>>;
    type Error = TransportError;

    async fn create(&self) -> Result<Self::Connection, TransportError> {
        // The first connection is made here, so its error is the pool's to report.
        let mut first = Some(self.dialer.dial().await?);
        let dialer = Arc::clone(&self.dialer);
        let connect = move || {
            let first = first.take();
            let dialer = Arc::clone(&dialer);
            async move {
                match first {
                    Some(connection) => Ok(connection),
                    None => dialer.dial().await,
                }
            }
        };
        let config = self.config.clone().sync_connect(true);
        Reconnect::start(connect, config)
            .await
            .map_err(|e| match e {
                StartError::Connect(e) => {
                    TransportError::from_connect(&e, &self.dialer.target_name)
                }
                other => TransportError::Connect {
                    target: self.dialer.target_name.clone(),
                    source: Arc::new(std::io::Error::other(other.to_string())),
                },
            })
    }

    fn target(&self) -> String {
        self.dialer.target_name.to_string()
    }

    fn is_broken(&self, conn: &Self::Connection) -> bool {
        Connection::is_closed(conn)
    }
}
