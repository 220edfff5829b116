//! The one way a [`Client`](crate::Client) makes a connection: [`Dialer`], its [`Connect`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use beamline_mux::{Client as MuxClient, ClientConfig as MuxConfig, ConfigError, Driver};
use beamline_reconnect::Connect;

use super::TransportError;
use super::connection::MuxConnection;
use super::transport::{Stream, Target};

/// Builds the mux client of one protocol over a connected stream: what
/// [`ClientBuilder`](crate::ClientBuilder)'s protocol methods choose.
pub(crate) type Framer<Req, Resp> =
    dyn Fn(Stream, &MuxConfig) -> Result<(MuxClient<Req, Resp>, Driver), ConfigError> + Send + Sync;

/// How a [`Client`](crate::Client) makes each connection: it opens the transport (TCP or a
/// Unix socket), shakes hands if TLS is configured, and starts the protocol's mux driver
/// over it. Its [`Connect`] is what the reconnecting layer calls on every attempt, and what
/// a [`ClientManager`](crate::ClientManager) makes each pooled connection's first
/// connection with.
///
/// Made by [`ClientBuilder`](crate::ClientBuilder) from its settings; cheap to clone (the
/// settings are shared), so every reconnecting connection of a pool holds its own.
///
/// # Errors
/// An attempt fails with the [`TransportError`] of the step that failed, naming the target:
/// [`Connect`](TransportError::Connect) (the socket: refused, unreachable, not resolved),
/// [`Tls`](TransportError::Tls) (the handshake) or [`Mux`](TransportError::Mux) (settings
/// the builder already checked). It sets no timeout of its own: the reconnecting layer's
/// connect timeout, or the pool's, bounds each attempt, and dropping the attempt drops its
/// half-open socket. A connection it returns has its mux driver running on the current
/// runtime.
pub struct Dialer<Req, Resp> {
    settings: Arc<Settings<Req, Resp>>,
}

/// Everything one connection attempt needs.
struct Settings<Req, Resp> {
    target: Target,
    /// `target` as errors name it.
    target_name: Arc<str>,
    nodelay: bool,
    #[cfg(feature = "tls")]
    tls: Option<super::builder::TlsSettings>,
    framer: Arc<Framer<Req, Resp>>,
    mux: MuxConfig,
}

impl<Req, Resp> Dialer<Req, Resp> {
    pub(crate) fn new(
        target: Target,
        nodelay: bool,
        #[cfg(feature = "tls")] tls: Option<super::builder::TlsSettings>,
        framer: Arc<Framer<Req, Resp>>,
        mux: MuxConfig,
    ) -> Self {
        Dialer {
            settings: Arc::new(Settings {
                target_name: Arc::from(target.to_string()),
                target,
                nodelay,
                #[cfg(feature = "tls")]
                tls,
                framer,
                mux,
            }),
        }
    }

    /// Where it connects, as its errors name it.
    pub fn target(&self) -> &Arc<str> {
        &self.settings.target_name
    }
}

impl<Req, Resp> Clone for Dialer<Req, Resp> {
    fn clone(&self) -> Self {
        Dialer {
            settings: Arc::clone(&self.settings),
        }
    }
}

impl<Req, Resp> fmt::Debug for Dialer<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Dialer");
        d.field("target", &self.settings.target)
            .field("nodelay", &self.settings.nodelay);
        #[cfg(feature = "tls")]
        d.field("tls", &self.settings.tls.is_some());
        d.field("mux", &self.settings.mux).finish_non_exhaustive()
    }
}

impl<Req, Resp> Settings<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    /// One attempt: the socket, the TLS handshake if configured, the mux driver (spawned).
    async fn dial(&self) -> Result<MuxConnection<Req, Resp>, TransportError> {
        let stream = self.target.open(self.nodelay).await?;
        #[cfg(feature = "tls")]
        let stream = match &self.tls {
            Some(tls) => Stream::Tls(Box::new(
                tls.connector
                    .connect(tls.server_name.clone(), stream)
                    .await
                    .map_err(|source| TransportError::Tls {
                        target: self.target_name.clone(),
                        source: Arc::new(source),
                    })?,
            )),
            None => stream,
        };
        let (client, driver) =
            (self.framer)(stream, &self.mux).map_err(|source| TransportError::Mux {
                target: self.target_name.clone(),
                source,
            })?;
        tokio::spawn(driver);
        Ok(MuxConnection::new(client))
    }
}

impl<Req, Resp> Connect for Dialer<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    type Connection = MuxConnection<Req, Resp>;
    type Error = TransportError;

    fn connect(
        &mut self,
    ) -> impl Future<Output = Result<MuxConnection<Req, Resp>, TransportError>> + Send {
        let settings = Arc::clone(&self.settings);
        async move { settings.dial().await }
    }
}
