//! A reconnecting connection as a supervised process (feature `process`): Redix's
//! `exit_on_disconnection` with the supervisor it was made for.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use beamline_process::{ChildId, ChildSpec, Current, ExitReason, Pid, Resource};

use super::{CloseReason, OfflinePolicy, Reconnect, ReconnectConfig, ReconnectError, State};
use crate::{Connect, Connection};

impl CloseReason {
    /// The exit reason of the process that owned a connection which closed for this reason:
    /// [`ExitReason::Normal`] when it was closed on purpose ([`Requested`](Self::Requested),
    /// [`Dropped`](Self::Dropped)), [`ExitReason::Shutdown`] when its runtime stopped
    /// ([`Stopped`](Self::Stopped)), [`ExitReason::Panicked`] with the message for
    /// [`Panicked`](Self::Panicked), and [`ExitReason::Error`] holding this `CloseReason`
    /// (get it back with [`ExitReason::downcast_error`]) when it gave up:
    /// [`Disconnected`](Self::Disconnected) (`exit_on_disconnection`),
    /// [`GaveUp`](Self::GaveUp) (the backoff's limit).
    pub fn exit_reason(&self) -> ExitReason {
        match self {
            CloseReason::Requested | CloseReason::Dropped => ExitReason::Normal,
            CloseReason::Stopped => ExitReason::Shutdown,
            CloseReason::Panicked(message) => ExitReason::Panicked(message.clone()),
            gave_up => ExitReason::error(gave_up.clone()),
        }
    }
}

/// A reconnecting connection is a [`Resource`]: it ends when it closes for good, with
/// [`CloseReason::exit_reason`], and is closed when its process exits.
impl<C: Connection> Resource for Reconnect<C> {
    fn ended(&self) -> impl Future<Output = ExitReason> + Send {
        let mut states = self.state_changes();
        async move {
            match states.wait_for(State::is_closed).await {
                Ok(state) => match &*state {
                    State::Closed(reason) => reason.exit_reason(),
                    _ => ExitReason::Normal,
                },
                // Every sender gone: the connection is gone with them.
                Err(_) => ExitReason::Normal,
            }
        }
    }

    fn end(&self) {
        self.close();
    }
}

impl<C: Connection> Reconnect<C> {
    /// A reconnecting connection that lives in a supervision tree, as an Elixir application
    /// starts a Redix connection: the child spec for a [`Supervisor`] or
    /// [`DynamicSupervisor`], and a handle that follows it across restarts.
    ///
    /// Each incarnation is a process that runs [`start`](Self::start) with `connect` (a
    /// clone) and `config`, acknowledges its start once that returns (so with `sync_connect`
    /// a supervisor starts the children after it only once the first connection is up, and
    /// a failed first connection fails the start), then lives as long as the connection:
    /// when it closes for good (lost with `exit_on_disconnection`, the backoff's
    /// `max_attempts` reached, a panic in the driver) the process exits with
    /// [`CloseReason::exit_reason`], which its links and monitors see, and the supervisor
    /// restarts it within its restart intensity: a peer that stays down makes the
    /// supervisor give up and escalate instead of retrying for ever in silence. When the
    /// supervisor stops it, the connection closes.
    ///
    /// Between incarnations (during a restart, or for good once the supervisor gave up) a
    /// call on the handle follows the offline policy: fail fast with
    /// [`ReconnectError::Disconnected`], or wait up to the queue's deadline for the next
    /// incarnation ([`ReconnectError::Timeout`] after it). A call never reaches another
    /// incarnation's connection once it started on one.
    ///
    /// Prefer `sync_connect(false)` for a peer that may be down for a while: a restart whose
    /// first connect fails counts as one more crash at once, while without `sync_connect`
    /// the incarnation reconnects with its backoff.
    ///
    /// [`Supervisor`]: beamline_process::Supervisor
    /// [`DynamicSupervisor`]: beamline_process::DynamicSupervisor
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::Duration;
    /// use beamline_process::{Strategy, Supervisor, SupervisorSpec};
    /// use beamline_reconnect::{FramedConnection, OfflinePolicy, Reconnect, ReconnectConfig};
    /// use tokio::net::TcpStream;
    /// use tokio_util::codec::{Framed, LinesCodec};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let connect = || async {
    ///     let stream = TcpStream::connect("127.0.0.1:7000").await?;
    ///     Ok::<_, std::io::Error>(FramedConnection::new(Framed::new(stream, LinesCodec::new())))
    /// };
    /// let config = ReconnectConfig::new(OfflinePolicy::FailFast).exit_on_disconnection(true);
    /// let (spec, conn) = Reconnect::child_spec("echo", connect, config);
    /// let sup = Supervisor::start(SupervisorSpec::new(Strategy::OneForOne).child(spec)).await?;
    /// let reply = conn.call("hello".to_string()).await?;
    /// # let _ = (reply, sup);
    /// # Ok(())
    /// # }
    /// ```
    pub fn child_spec<K>(
        id: impl Into<ChildId>,
        connect: K,
        config: ReconnectConfig,
    ) -> (ChildSpec<Infallible>, SupervisedReconnect<C>)
    where
        K: Connect<Connection = C> + Clone + Sync,
    {
        let current = Current::new();
        let handle = SupervisedReconnect {
            current: current.clone(),
            name: config.name.clone(),
            offline: config.offline,
        };
        let spec = ChildSpec::resource(id, &current, move || {
            let start = Reconnect::start(connect.clone(), config.clone());
            async move { start.await.map_err(ExitReason::error) }
        });
        (spec, handle)
    }
}

/// The handle to a [`Reconnect`] run by a supervisor ([`Reconnect::child_spec`]): it
/// reaches whichever incarnation is running, across restarts. Cheap to clone.
///
/// Failure guarantees: as [`Reconnect`] while an incarnation runs; between incarnations,
/// calls follow the offline policy (`Disconnected` at once, or a wait for the next
/// incarnation up to the queue's deadline, then `Timeout`): never a hang, never sent.
pub struct SupervisedReconnect<C: Connection> {
    current: Current<Reconnect<C>>,
    name: Arc<str>,
    offline: OfflinePolicy,
}

impl<C: Connection> Clone for SupervisedReconnect<C> {
    fn clone(&self) -> Self {
        Self {
            current: self.current.clone(),
            name: self.name.clone(),
            offline: self.offline,
        }
    }
}

impl<C: Connection> fmt::Debug for SupervisedReconnect<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisedReconnect")
            .field("name", &self.name)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl<C: Connection> SupervisedReconnect<C> {
    /// [`Reconnect::call`] on the running incarnation.
    ///
    /// # Errors
    /// As [`Reconnect::call`]; between incarnations `Disconnected` (fail fast) or `Timeout`
    /// (no incarnation within the offline queue's deadline), both not sent.
    pub async fn call(&self, request: C::Request) -> Result<C::Response, ReconnectError<C::Error>> {
        self.incarnation().await?.call(request).await
    }

    /// [`Reconnect::call_idempotent`] on the running incarnation (replays stay on it).
    ///
    /// # Errors
    /// As [`call`](Self::call) and [`Reconnect::call_idempotent`].
    pub async fn call_idempotent(
        &self,
        request: C::Request,
    ) -> Result<C::Response, ReconnectError<C::Error>>
    where
        C::Request: Clone,
    {
        self.incarnation().await?.call_idempotent(request).await
    }

    /// The running incarnation's connection, if one runs.
    pub fn current(&self) -> Option<Reconnect<C>> {
        self.current.get().ok()
    }

    /// The running incarnation's process, to link to or monitor; `None` between
    /// incarnations.
    pub fn pid(&self) -> Option<Pid> {
        self.current.pid()
    }

    /// The connection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn incarnation(&self) -> Result<Reconnect<C>, ReconnectError<C::Error>> {
        let name = || self.name.clone();
        match self.offline {
            OfflinePolicy::FailFast => self
                .current
                .get()
                .map_err(|_| ReconnectError::Disconnected { name: name() }),
            OfflinePolicy::Queue { deadline, .. } => {
                self.current
                    .wait(deadline)
                    .await
                    .map_err(|_| ReconnectError::Timeout {
                        name: name(),
                        deadline,
                    })
            }
        }
    }
}
