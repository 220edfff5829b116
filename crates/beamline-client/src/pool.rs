//! Pools of reconnecting connections: the pool's [`Manager`] for the Client, over any
//! [`Connect`].

use std::fmt;
use std::sync::Arc;

use beamline_pool::{Manager, PoolConfig};
use beamline_reconnect::{Connect, Connection, Reconnect, ReconnectConfig, ReconnectConfigError};

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

/// The pool's [`Manager`] whose every pooled connection is a [`Reconnect`] over the
/// connections `C` makes: for a [`Client`](crate::Client), `C` is its
/// [`Dialer`](crate::Dialer) and each pooled connection a reconnecting, multiplexed one.
///
/// `create` makes the first connection with the connector itself, so a pool whose target is
/// down reports the connector's own error (for a [`Dialer`](crate::Dialer), the real
/// [`TransportError`](crate::TransportError): refused, TLS handshake...) to its waiters,
/// under the pool's connect timeout. It then starts the [`Reconnect`] from that connection
/// ([`Reconnect::start_connected`]) and a clone of the connector, so after that the pooled
/// connection reconnects by itself, with the settings' backoff and offline policy. A pooled
/// connection is broken only when it is closed for good (its backoff gave up, or it was
/// closed).
///
/// # Examples
/// A pool of reconnecting line-protocol connections:
/// ```no_run
/// use beamline_client::ClientManager;
/// use beamline_pool::{Pool, PoolConfig};
/// use beamline_reconnect::{FramedConnection, OfflinePolicy, ReconnectConfig};
/// use tokio::net::TcpStream;
/// use tokio_util::codec::{Framed, LinesCodec};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let addr = "127.0.0.1:7000";
/// let connect = move || async move {
///     let stream = TcpStream::connect(addr).await?;
///     let lines = LinesCodec::new_with_max_length(8 * 1024);
///     Ok::<_, std::io::Error>(FramedConnection::<String, String>::new(Framed::new(stream, lines)))
/// };
/// let manager = ClientManager::new(addr, connect, ReconnectConfig::new(OfflinePolicy::FailFast))?;
/// let pool = Pool::start(manager, PoolConfig::new(4)).await?;
/// let reply = pool.get().await?.call("PING".to_string()).await?;
/// # let _ = reply;
/// # Ok(())
/// # }
/// ```
pub struct ClientManager<C> {
    /// Where the connector connects, named in the pool's connect errors.
    target: Arc<str>,
    /// Makes each pooled connection's first connection, and (cloned) every reconnect.
    connector: C,
    /// Checked in [`new`](Self::new), so starting a pooled connection cannot fail.
    config: ReconnectConfig,
}

impl<C: Connect + Clone> ClientManager<C> {
    /// A manager whose connections reconnect with `config`, made by `connector`, which
    /// connects to `target` (named in the pool's connect errors).
    ///
    /// # Errors
    /// [`ReconnectConfigError`] for reconnect settings that cannot work: checked here, once,
    /// so that a pooled connection never fails to start for them.
    pub fn new(
        target: impl Into<Arc<str>>,
        connector: C,
        config: ReconnectConfig,
    ) -> Result<Self, ReconnectConfigError> {
        config.validate()?;
        Ok(ClientManager {
            target: target.into(),
            connector,
            config,
        })
    }
}

impl<C> fmt::Debug for ClientManager<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientManager")
            .field("target", &self.target)
            .field("reconnect", &self.config)
            .finish_non_exhaustive()
    }
}

impl<C> Manager for ClientManager<C>
where
    C: Connect + Clone + Sync,
{
    type Connection = Reconnect<C::Connection>;
    type Error = C::Error;

    /// The connector's own error when the first connection fails. A panic here is a bug:
    /// the settings were checked in [`new`](ClientManager::new) and cannot change since.
    async fn create(&self) -> Result<Self::Connection, C::Error> {
        let mut connector = self.connector.clone();
        // The first connection is made here, so its error is the pool's to report.
        let first = connector.connect().await?;
        match Reconnect::start_connected(first, connector, self.config.clone()) {
            Ok(connection) => Ok(connection),
            Err(e) => panic!("ClientManager: reconnect settings checked in `new` are invalid: {e}"),
        }
    }

    fn target(&self) -> String {
        self.target.to_string()
    }

    fn is_broken(&self, conn: &Self::Connection) -> bool {
        Connection::is_closed(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use beamline_reconnect::{FramedConnection, OfflinePolicy};
    use futures::{SinkExt, StreamExt};
    use tokio_util::codec::{Framed, LinesCodec};

    /// A connector to an in-memory line echo server that refuses while `up` is false.
    fn echo_connector(
        up: Arc<AtomicBool>,
        attempts: Arc<AtomicUsize>,
    ) -> impl Connect<Connection = FramedConnection<String, String>, Error = io::Error> + Clone + Sync
    {
        move || {
            let (up, attempts) = (up.clone(), attempts.clone());
            async move {
                attempts.fetch_add(1, Ordering::SeqCst);
                if !up.load(Ordering::SeqCst) {
                    return Err(io::Error::from(io::ErrorKind::ConnectionRefused));
                }
                let (ours, theirs) = tokio::io::duplex(1024);
                tokio::spawn(async move {
                    let mut lines = Framed::new(theirs, LinesCodec::new());
                    while let Some(Ok(line)) = lines.next().await {
                        if lines.send(line).await.is_err() {
                            break;
                        }
                    }
                });
                Ok(FramedConnection::new(Framed::new(ours, LinesCodec::new())))
            }
        }
    }

    #[tokio::test]
    async fn create_reports_the_connectors_own_error_then_starts_from_its_connection() {
        let (up, attempts) = (Arc::new(AtomicBool::new(false)), Arc::default());
        let connector = echo_connector(up.clone(), Arc::clone(&attempts));
        let config = ReconnectConfig::new(OfflinePolicy::FailFast);
        let manager = ClientManager::new("echo", connector, config).unwrap();
        assert_eq!(manager.target(), "echo");

        // The connector's error, as it made it: no wrapping, no text.
        let refused = manager.create().await.unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);

        up.store(true, Ordering::SeqCst);
        let conn = manager.create().await.unwrap();
        assert!(conn.state().is_connected());
        assert!(!manager.is_broken(&conn));
        assert_eq!(conn.call("hi".to_owned()).await.unwrap(), "hi");
        // The first connection was the manager's own attempt; the Reconnect made none.
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
        conn.close();
        assert!(manager.is_broken(&conn));
    }

    #[test]
    fn settings_that_cannot_work_are_refused_up_front() {
        let connector = echo_connector(Arc::default(), Arc::default());
        let config = ReconnectConfig::new(OfflinePolicy::Queue {
            max: 0,
            deadline: std::time::Duration::from_secs(1),
        });
        assert_eq!(
            ClientManager::new("echo", connector, config).unwrap_err(),
            ReconnectConfigError::ZeroQueueMax
        );
    }
}
