//! The one builder: transport × identification × reconnect × offline policy × pool.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use beamline_mux::{
    Client as MuxClient, ClientConfig as MuxConfig, ConfigError, DEFAULT_MAX_ABANDONED,
    DEFAULT_MAX_FRAME_LEN, DEFAULT_MAX_IN_FLIGHT, DEFAULT_QUARANTINE, Mode, MuxConfig as Limits,
    Tagged,
};
use beamline_pool::{Pool, SharedPool};
use beamline_reconnect::{BackoffConfig, OfflinePolicy, Reconnect, ReconnectConfig};
use bytes::Bytes;
use tokio_util::codec::{Decoder, Encoder};

use super::dial::{Dialer, Framer};
use super::pool::{ClientManager, Pooling};
use super::{BuildError, Client, Stack, Target};

/// The request timeout a [`ClientBuilder`] starts with: 30 s.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds a [`Client`]: where to connect, how requests are identified, how to reconnect,
/// what to do while offline.
///
/// Start with [`Client::builder`] (beamline's wire format, request ids), switch the
/// protocol with [`fifo`](Self::fifo), [`tagged`](Self::tagged) or
/// [`resp`](Self::resp), then set what differs from the defaults:
///
/// | setting | default |
/// |---|---|
/// | transport | TCP with `TCP_NODELAY`; [`tls`](Self::tls) for TLS, [`Target::unix`] for a Unix socket |
/// | identification | request ids (beamline's wire format) |
/// | in flight per connection | 256 ([`max_in_flight`](Self::max_in_flight)); callers beyond wait their turn |
/// | request timeout | 30 s ([`timeout`](Self::timeout); [`no_timeout`](Self::no_timeout) turns it off) |
/// | FIFO abandon timeout | twice the request timeout (60 s), or 30 s without one ([`abandon_timeout`](Self::abandon_timeout)) |
/// | reconnect | 100 ms doubling to 30 s, full jitter; connect timeout 10 s ([`backoff`](Self::backoff), [`reconnect`](Self::reconnect)) |
/// | offline policy | fail fast ([`offline`](Self::offline)) |
/// | first connect | awaited by [`connect`](Self::connect), its error returned |
/// | pool | none: one multiplexed connection ([`pool`](Self::pool)) |
///
/// The request timeout is on by default because it is what keeps the client's first
/// promise — every call ends in its answer or a typed error — against a server that never
/// answers (a wrong protocol, a stuck peer): such a call ends with
/// [`ClientError::Timeout`](crate::ClientError::Timeout) after 30 s instead of waiting for
/// ever. Turning it off ([`no_timeout`](Self::no_timeout)) is explicit, for calls that
/// block on purpose (`BLPOP k 0`) and are bounded some other way.
///
/// # Examples
/// ```no_run
/// use std::time::Duration;
/// use beamline_reconnect::{BackoffConfig, OfflinePolicy};
/// use beamline_client::Client;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::builder("127.0.0.1:6379")
///     .resp()
///     .name("cache")
///     .timeout(Duration::from_secs(1))
///     .backoff(BackoffConfig::grpc())
///     .offline(OfflinePolicy::Queue { max: 1_000, deadline: Duration::from_secs(2) })
///     .connect()
///     .await?;
/// # let _ = client;
/// # Ok(())
/// # }
/// ```
pub struct ClientBuilder<Req, Resp> {
    target: Target,
    name: Option<String>,
    nodelay: bool,
    framer: Arc<Framer<Req, Resp>>,
    /// The protocol's identification, for checking the limits before any connection.
    mode: Mode,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ClientConfig>>,
    #[cfg(feature = "tls")]
    tls_server_name: Option<rustls::pki_types::ServerName<'static>>,
    max_in_flight: usize,
    max_abandoned: usize,
    quarantine: Duration,
    timeout: Option<Duration>,
    abandon_timeout: Option<Duration>,
    max_frame_len: usize,
    pub(super) reconnect: ReconnectConfig,
    pooling: Pooling,
}

/// The TLS side of a connection attempt.
#[cfg(feature = "tls")]
pub(crate) struct TlsSettings {
    pub(crate) connector: tokio_rustls::TlsConnector,
    pub(crate) server_name: rustls::pki_types::ServerName<'static>,
}

/// Clones share the protocol's framer (and TLS config); everything else is copied. A
/// supervised client builds each incarnation from a clone.
impl<Req, Resp> Clone for ClientBuilder<Req, Resp> {
    fn clone(&self) -> Self {
        self.with_framer_of(self.framer.clone(), self.mode)
    }
}

impl<Req, Resp> fmt::Debug for ClientBuilder<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ClientBuilder");
        d.field("target", &self.target)
            .field("name", &self.name)
            .field("mode", &self.mode);
        #[cfg(feature = "tls")]
        d.field("tls", &self.tls.is_some());
        d.field("max_in_flight", &self.max_in_flight)
            .field("timeout", &self.timeout)
            .field("abandon_timeout", &self.abandon_timeout)
            .field("reconnect", &self.reconnect)
            .field("pooling", &self.pooling)
            .finish_non_exhaustive()
    }
}

impl<Req, Resp> ClientBuilder<Req, Resp> {
    /// The same settings with another protocol (`framer`, `mode`): how the protocol methods
    /// switch types, and how a clone is made.
    fn with_framer_of<Q, R>(&self, framer: Arc<Framer<Q, R>>, mode: Mode) -> ClientBuilder<Q, R> {
        ClientBuilder {
            target: self.target.clone(),
            name: self.name.clone(),
            nodelay: self.nodelay,
            framer,
            mode,
            #[cfg(feature = "tls")]
            tls: self.tls.clone(),
            #[cfg(feature = "tls")]
            tls_server_name: self.tls_server_name.clone(),
            max_in_flight: self.max_in_flight,
            max_abandoned: self.max_abandoned,
            quarantine: self.quarantine,
            timeout: self.timeout,
            abandon_timeout: self.abandon_timeout,
            max_frame_len: self.max_frame_len,
            reconnect: self.reconnect.clone(),
            pooling: self.pooling.clone(),
        }
    }
}

impl ClientBuilder<Bytes, Bytes> {
    pub(crate) fn new(target: Target) -> Self {
        let framer: Arc<Framer<Bytes, Bytes>> = Arc::new(MuxClient::wire);
        ClientBuilder {
            target,
            name: None,
            nodelay: true,
            framer,
            mode: Limits::ids().mode(),
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "tls")]
            tls_server_name: None,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_abandoned: DEFAULT_MAX_ABANDONED,
            quarantine: DEFAULT_QUARANTINE,
            timeout: Some(DEFAULT_REQUEST_TIMEOUT),
            abandon_timeout: None,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            reconnect: ReconnectConfig::new(OfflinePolicy::FailFast).sync_connect(true),
            pooling: Pooling::Single,
        }
    }
}

impl<Req, Resp> ClientBuilder<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    fn with_framer<Q, R>(self, framer: Arc<Framer<Q, R>>, mode: Mode) -> ClientBuilder<Q, R> {
        self.with_framer_of(framer, mode)
    }

    /// Beamline's own wire format ([`beamline_mux::frame`]): `Bytes` requests and answers,
    /// matched by request id, answered in any order; a server error frame is
    /// [`ClientError::Remote`](crate::ClientError::Remote). The server side is
    /// [`beamline_mux::serve_wire`]. This is the default.
    pub fn wire(self) -> ClientBuilder<Bytes, Bytes> {
        let framer: Arc<Framer<Bytes, Bytes>> = Arc::new(MuxClient::wire);
        self.with_framer(framer, Limits::ids().mode())
    }

    /// Your own protocol whose messages carry request ids ([`Tagged`]), framed by `codec`
    /// (cloned for each connection). Ids are allocated by the client and answers may come
    /// in any order.
    pub fn tagged<Q, C>(self, codec: C) -> ClientBuilder<Q, C::Item>
    where
        Q: Tagged + Send + 'static,
        C: Encoder<Q> + Decoder + Clone + Send + Sync + 'static,
        C::Item: Tagged + Send + 'static,
        <C as Encoder<Q>>::Error: StdError + Send + Sync + 'static,
        <C as Decoder>::Error: StdError + Send + Sync + 'static,
    {
        let mode = Mode::Ids {
            max_tag: Q::MAX_TAG,
            cancel: Q::cancel(0).is_some(),
        };
        let framer: Arc<Framer<Q, C::Item>> =
            Arc::new(move |io, config| MuxClient::tagged(io, codec.clone(), config));
        self.with_framer(framer, mode)
    }

    /// Your own protocol without ids (Redis, memcached, HTTP/1.1 pipelining), framed by
    /// `codec` (cloned for each connection): answers match requests by order. A request
    /// whose caller gave up still has its answer read and discarded, so no caller ever gets
    /// another's answer; if that answer has not come within the
    /// [`abandon_timeout`](Self::abandon_timeout), the connection is replaced instead of
    /// every later answer waiting behind it for ever.
    ///
    /// When the codec encodes several request types, name the one you send:
    /// `.fifo::<MyRequest, _>(codec)`.
    pub fn fifo<Q, C>(self, codec: C) -> ClientBuilder<Q, C::Item>
    where
        Q: Send + 'static,
        C: Encoder<Q> + Decoder + Clone + Send + Sync + 'static,
        C::Item: Send + 'static,
        <C as Encoder<Q>>::Error: StdError + Send + Sync + 'static,
        <C as Decoder>::Error: StdError + Send + Sync + 'static,
    {
        let framer: Arc<Framer<Q, C::Item>> =
            Arc::new(move |io, config| MuxClient::fifo(io, codec.clone(), config));
        self.with_framer(framer, Mode::Fifo)
    }

    /// Redis: [`fifo`](Self::fifo) with the [`RespCodec`](crate::resp::RespCodec), sending
    /// [`Command`](crate::resp::Command)s and receiving [`Value`](crate::resp::Value)s. A
    /// Redis error reply is an `Ok(Value::Error(..))`: the request was delivered and
    /// answered.
    #[cfg(feature = "resp")]
    pub fn resp(self) -> ClientBuilder<crate::resp::Command, crate::resp::Value> {
        self.fifo::<crate::resp::Command, _>(crate::resp::RespCodec::new())
    }

    /// What this client is called in errors and traces (default: the target). Say which
    /// peer: `"sessions redis 10.0.0.7:6379"`.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Whether TCP connections set `TCP_NODELAY` (default `true`: the mux batches writes
    /// itself, so Nagle's algorithm only adds latency).
    #[must_use]
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.nodelay = nodelay;
        self
    }

    /// TLS over the transport, with `config` (build it with
    /// `rustls::ClientConfig::builder_with_provider`). The server name checked against the
    /// certificate is the target's host unless [`tls_server_name`](Self::tls_server_name)
    /// gives one. The handshake counts against the connect timeout; its failure is a
    /// [`TransportError::Tls`](crate::TransportError::Tls) with the rustls error inside.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// The name the server's certificate must carry, when it is not the target's host (or
    /// the target is a Unix socket). Only used with [`tls`](Self::tls).
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls_server_name(mut self, name: rustls::pki_types::ServerName<'static>) -> Self {
        self.tls_server_name = Some(name);
        self
    }

    /// At most `n` requests in flight on one connection (default 256). Callers beyond wait
    /// their turn, first come first served, inside the request's timeout.
    #[must_use]
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }

    /// The bound on abandoned requests (timed out or dropped after being written) whose
    /// answers are still awaited, per connection; see
    /// [`MuxConfig::max_abandoned`](beamline_mux::MuxConfig::max_abandoned).
    #[must_use]
    pub fn max_abandoned(mut self, n: usize) -> Self {
        self.max_abandoned = n;
        self
    }

    /// How long an abandoned request's id stays quarantined (id modes); see
    /// [`MuxConfig::quarantine`](beamline_mux::MuxConfig::quarantine).
    #[must_use]
    pub fn quarantine(mut self, age: Duration) -> Self {
        self.quarantine = age;
        self
    }

    /// Every request's deadline once it reaches a connection: waiting for an in-flight
    /// slot, being written, and its answer (default 30 s, [`DEFAULT_REQUEST_TIMEOUT`]). Passing it
    /// fails the call with [`ClientError::Timeout`](crate::ClientError::Timeout), saying
    /// whether it was sent; the connection stays up. Time spent in the offline queue is
    /// bounded by the queue's own deadline instead. For one deadline over everything, use
    /// tower's `Timeout` (feature `tower`).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// No request timeout: a call waits for its answer as long as the connection lives.
    /// Only for requests that block on purpose (`BLPOP k 0`, a long poll), bounded some
    /// other way: dropping the call's future, tower's `Timeout`, or a health check
    /// ([`ReconnectConfig`]) that fails a connection whose peer stopped answering. Without
    /// one of these, a server that never answers holds the call for ever. In FIFO mode the
    /// [`abandon_timeout`](Self::abandon_timeout) still defaults to 30 s.
    #[must_use]
    pub fn no_timeout(mut self) -> Self {
        self.timeout = None;
        self
    }

    /// FIFO protocols ([`fifo`](Self::fifo), [`resp`](Self::resp)): how long a request
    /// abandoned after it was written (its caller timed out, or dropped the call) may go
    /// unanswered. Answers come in order, so a missing one (a `BLPOP k 0` whose caller gave
    /// up) holds every later answer behind it; past this timeout the connection fails, each
    /// request on it ending [`NotSent`](crate::ClientError::NotSent) or
    /// [`ConnectionLost`](crate::ClientError::ConnectionLost), and the reconnecting layer
    /// (or the pool) replaces it. Default: twice the request [`timeout`](Self::timeout), or
    /// 30 s after [`no_timeout`](Self::no_timeout). Counted from the moment the request was abandoned; ignored by the
    /// id-carrying protocols. See
    /// [`MuxConfig::abandon_timeout`](beamline_mux::MuxConfig::abandon_timeout).
    #[must_use]
    pub fn abandon_timeout(mut self, age: Duration) -> Self {
        self.abandon_timeout = Some(age);
        self
    }

    /// The wire format's maximum frame payload, both ways (default 16 MiB). User codecs
    /// enforce their own limits.
    #[must_use]
    pub fn max_frame_len(mut self, len: usize) -> Self {
        self.max_frame_len = len;
        self
    }

    /// The backoff between reconnect attempts (see [`BackoffConfig`]).
    #[must_use]
    pub fn backoff(mut self, backoff: BackoffConfig) -> Self {
        self.reconnect = self.reconnect.backoff(backoff);
        self
    }

    /// What happens to a request made while no connection is up: fail at once
    /// ([`OfflinePolicy::FailFast`], the default) or wait in a bounded queue until a
    /// deadline, then go out in order when a connection comes up.
    #[must_use]
    pub fn offline(mut self, policy: OfflinePolicy) -> Self {
        self.reconnect = self.reconnect.offline(policy);
        self
    }

    /// Whether [`connect`](Self::connect) waits for the first connection and returns its
    /// error (`true`, the default), or returns at once and connects in the background,
    /// requests meanwhile following the offline policy.
    #[must_use]
    pub fn sync_connect(mut self, sync: bool) -> Self {
        self.reconnect = self.reconnect.sync_connect(sync);
        self
    }

    /// Every reconnect setting at once (stable period, connect timeout, replays of
    /// idempotent requests, progress timeout, seed...), replacing what
    /// [`backoff`](Self::backoff), [`offline`](Self::offline) and
    /// [`sync_connect`](Self::sync_connect) set before; its name is replaced by the
    /// client's.
    #[must_use]
    pub fn reconnect(mut self, config: ReconnectConfig) -> Self {
        self.reconnect = config;
        self
    }

    /// How many connections, and who may use one: one multiplexed connection
    /// ([`Pooling::Single`], the default), an exclusive pool or a shared (multiplexed) pool.
    /// A call on a pooled client first checks a connection out; a checkout that fails is a
    /// [`ClientError::Checkout`](crate::ClientError::Checkout) carrying the pool's error (and
    /// the real connect error when connecting is what fails).
    #[must_use]
    pub fn pool(mut self, pooling: Pooling) -> Self {
        self.pooling = pooling;
        self
    }

    /// Checks the settings and starts the client.
    ///
    /// One connection: with `sync_connect` (the default) the first connection is made
    /// here, under the connect timeout, and its failure returned, so a service learns at
    /// start-up that its peer is unreachable; otherwise this returns at once and the client
    /// connects in the background. A pool opens its connections as its
    /// [`Start`](beamline_pool::Start) setting says (lazily by default).
    ///
    /// # Errors
    /// [`BuildError::Mux`], [`BuildError::Reconnect`] or [`BuildError::Pool`] for settings
    /// that cannot work, [`BuildError::ServerName`] for TLS without a usable server name,
    /// [`BuildError::Connect`] when the first connection fails.
    ///
    /// # Panics
    /// Outside a tokio runtime (the client spawns its tasks on the current one).
    pub async fn connect(self) -> Result<Client<Req, Resp>, BuildError> {
        let name = self.client_name();
        Ok(Client {
            name,
            stack: self.build().await?,
        })
    }

    /// What the client is called: the name set, or the target.
    pub(crate) fn client_name(&self) -> Arc<str> {
        match &self.name {
            Some(name) => Arc::from(name.as_str()),
            None => Arc::from(self.target.to_string()),
        }
    }

    /// Checks the settings and builds the layers (see [`connect`](Self::connect)).
    pub(crate) async fn build(self) -> Result<Stack<Req, Resp>, BuildError> {
        let mut limits = Limits::with_mode(self.mode)
            .max_in_flight(self.max_in_flight)
            .max_abandoned(self.max_abandoned)
            .quarantine(self.quarantine);
        if let Some(age) = self.abandon_timeout {
            limits = limits.abandon_timeout(age);
        }
        limits.validate()?;
        if self.max_in_flight > tokio::sync::Semaphore::MAX_PERMITS {
            return Err(ConfigError::InFlightTooLarge {
                max_in_flight: self.max_in_flight,
                limit: tokio::sync::Semaphore::MAX_PERMITS,
            }
            .into());
        }
        let name = self.client_name();
        let mut mux = MuxConfig::new()
            .peer(name.clone())
            .max_in_flight(self.max_in_flight)
            .max_abandoned(self.max_abandoned)
            .quarantine(self.quarantine)
            .max_frame_len(self.max_frame_len);
        if let Some(timeout) = self.timeout {
            mux = mux.timeout(timeout);
        }
        if let Some(age) = self.abandon_timeout {
            mux = mux.abandon_timeout(age);
        }
        #[cfg(feature = "tls")]
        let tls = match self.tls {
            Some(config) => Some(tls_settings(config, self.tls_server_name, &self.target)?),
            None => None,
        };
        let dialer = Dialer::new(
            self.target,
            self.nodelay,
            #[cfg(feature = "tls")]
            tls,
            self.framer,
            mux,
        );
        let config = self.reconnect.name(name.clone());
        config.validate()?;
        let stack = match self.pooling {
            Pooling::Single => {
                let target = dialer.target().clone();
                Stack::Single(
                    Reconnect::start(dialer, config)
                        .await
                        .map_err(|e| BuildError::from_start(e, &name, &target))?,
                )
            }
            Pooling::Exclusive(pool) => {
                let manager = ClientManager::new(dialer.target().clone(), dialer, config)?;
                Stack::Exclusive(
                    Pool::start(manager, pool.name(&*name))
                        .await
                        .map_err(|e| BuildError::from_pool(e, &name))?,
                )
            }
            Pooling::Shared(pool) => {
                let manager = ClientManager::new(dialer.target().clone(), dialer, config)?;
                Stack::Shared(
                    SharedPool::start(manager, pool.name(&*name), self.max_in_flight)
                        .await
                        .map_err(|e| BuildError::from_pool(e, &name))?,
                )
            }
        };
        Ok(stack)
    }
}

#[cfg(feature = "tls")]
fn tls_settings(
    config: Arc<rustls::ClientConfig>,
    server_name: Option<rustls::pki_types::ServerName<'static>>,
    target: &Target,
) -> Result<TlsSettings, BuildError> {
    let server_name = match server_name {
        Some(name) => name,
        None => target
            .host()
            .and_then(|host| rustls::pki_types::ServerName::try_from(host.to_owned()).ok())
            .ok_or_else(|| BuildError::ServerName {
                target: target.to_string(),
            })?,
    };
    Ok(TlsSettings {
        connector: tokio_rustls::TlsConnector::from(config),
        server_name,
    })
}
