//! A [`Client`] as a supervised process (features `client` and `process`): the way an Elixir
//! application starts Redix, in its supervision tree.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use beamline_process::{ChildId, ChildSpec, Current, ExitReason, Pid, Resource};
use beamline_reconnect::{CloseReason, OfflinePolicy};
use tokio::sync::Notify;

use super::{Client, ClientBuilder, ClientError, Stack};

/// One incarnation of a supervised client: its layers, and the signal that a pooled one was
/// closed (a single connection's close is its own state). One `Arc`, so each call's read of
/// the running incarnation is one reference count, shared by nothing else.
pub(crate) struct Incarnation<Req: Send + 'static, Resp: Send + 'static>(Arc<Layers<Req, Resp>>);

struct Layers<Req: Send + 'static, Resp: Send + 'static> {
    stack: Stack<Req, Resp>,
    closed: Notify,
}

impl<Req: Send + 'static, Resp: Send + 'static> Clone for Incarnation<Req, Resp> {
    fn clone(&self) -> Self {
        Incarnation(self.0.clone())
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> Incarnation<Req, Resp> {
    /// The incarnation's layers.
    pub(crate) fn stack(&self) -> &Stack<Req, Resp> {
        &self.0.stack
    }

    fn close(&self) {
        match &self.0.stack {
            Stack::Single(reconnect) => reconnect.close(),
            Stack::Exclusive(pool) => pool.close(),
            Stack::Shared(pool) => pool.close(),
            Stack::Supervised(_) => {}
        }
        self.0.closed.notify_one();
    }
}

/// A client's process lives as long as its layers: a single reconnecting connection ends
/// when it closes for good ([`CloseReason::exit_reason`]: `exit_on_disconnection`, the
/// backoff's limit, a panic in its task); a pool replaces its broken connections itself and
/// ends only when closed.
impl<Req: Send + 'static, Resp: Send + 'static> Resource for Incarnation<Req, Resp> {
    fn ended(&self) -> impl Future<Output = ExitReason> + Send {
        let this = self.clone();
        async move {
            match this.stack() {
                Stack::Single(reconnect) => reconnect.ended().await,
                _ => {
                    this.0.closed.notified().await;
                    ExitReason::Normal
                }
            }
        }
    }

    fn end(&self) {
        self.close();
    }
}

/// The layers of a client run by a supervisor ([`Client::child_spec`]): whichever
/// incarnation is running. Found in [`Stack::Supervised`].
pub struct Supervised<Req: Send + 'static, Resp: Send + 'static> {
    current: Current<Incarnation<Req, Resp>>,
    offline: OfflinePolicy,
}

impl<Req: Send + 'static, Resp: Send + 'static> Clone for Supervised<Req, Resp> {
    fn clone(&self) -> Self {
        Supervised {
            current: self.current.clone(),
            offline: self.offline,
        }
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> fmt::Debug for Supervised<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervised")
            .field("current", &self.current)
            .field("offline", &self.offline)
            .finish()
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> Supervised<Req, Resp> {
    /// The running incarnation's layers; `None` between incarnations.
    pub fn current(&self) -> Option<Stack<Req, Resp>> {
        self.current.get().ok().map(|inc| inc.stack().clone())
    }

    /// The running incarnation's process, to link to or monitor; `None` between
    /// incarnations.
    pub fn pid(&self) -> Option<Pid> {
        self.current.pid()
    }

    /// The running incarnation, held for one call; between incarnations, the offline policy:
    /// fail at once, or wait for the next one up to the queue's deadline.
    pub(crate) async fn incarnation(
        &self,
        name: &Arc<str>,
    ) -> Result<Incarnation<Req, Resp>, ClientError> {
        Ok(match self.offline {
            OfflinePolicy::Queue { deadline, .. } => {
                self.current
                    .wait(deadline)
                    .await
                    .map_err(|_| ClientError::OfflineTimeout {
                        name: name.clone(),
                        deadline,
                    })?
            }
            _ => self
                .current
                .get()
                .map_err(|_| ClientError::Disconnected { name: name.clone() })?,
        })
    }

    pub(crate) fn close(&self) {
        if let Ok(incarnation) = self.current.get() {
            incarnation.close();
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        self.current.pid().is_some()
    }

    /// Why no incarnation runs, in the client's terms; `None` while one runs.
    pub(crate) fn close_reason(&self) -> Option<CloseReason> {
        match self.current.get() {
            Ok(_) => None,
            Err(ExitReason::Panicked(message)) => Some(CloseReason::Panicked(message)),
            Err(reason) => Some(
                reason
                    .downcast_error::<CloseReason>()
                    .cloned()
                    .unwrap_or(CloseReason::Stopped),
            ),
        }
    }
}

impl<Req, Resp> ClientBuilder<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    /// This client as a supervised process: the child spec to give a
    /// [`Supervisor`](beamline_process::Supervisor) or
    /// [`DynamicSupervisor`](beamline_process::DynamicSupervisor), and the [`Client`] handle
    /// the rest of the application uses, valid across restarts. See [`Client::child_spec`].
    pub fn child_spec(self, id: impl Into<ChildId>) -> (ChildSpec<Infallible>, Client<Req, Resp>) {
        let name = self.client_name();
        let current = Current::new();
        let client = Client {
            name,
            stack: Stack::Supervised(Supervised {
                current: current.clone(),
                offline: self.reconnect.offline_policy(),
            }),
        };
        let spec = ChildSpec::resource(id, &current, move || {
            let build = self.clone().build();
            async move {
                let stack = build.await.map_err(ExitReason::error)?;
                Ok(Incarnation(Arc::new(Layers {
                    stack,
                    closed: Notify::new(),
                })))
            }
        });
        (spec, client)
    }
}

impl<Req, Resp> Client<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    /// A client that lives in a supervision tree, as an Elixir application starts Redix: the
    /// child spec for a [`Supervisor`](beamline_process::Supervisor) or
    /// [`DynamicSupervisor`](beamline_process::DynamicSupervisor), and the handle, which
    /// follows the client across restarts (clone it into the workers that use it). Same as
    /// [`builder.child_spec(id)`](ClientBuilder::child_spec).
    ///
    /// Each incarnation is a permanent process that builds the client from `builder`
    /// ([`connect`](ClientBuilder::connect): with `sync_connect` the first connection is
    /// made there) and acknowledges its start once built, so a supervisor starts the
    /// children after it (the workers that use it) only then, and a failed build fails the
    /// start. It then lives as long as the client:
    ///
    /// - **It exits with a typed reason** when the client gives up, which its links,
    ///   monitors and supervisor see: [`ExitReason::Error`] holding the [`CloseReason`] for
    ///   a connection lost with [`exit_on_disconnection`](beamline_reconnect::ReconnectConfig::exit_on_disconnection)
    ///   or a backoff that reached its `max_attempts`; [`ExitReason::Panicked`] with the
    ///   message when code its background task ran panicked. (A pooled client replaces its
    ///   broken connections itself and exits only when stopped.)
    /// - **The supervisor's restart intensity applies**: a server that stays down makes the
    ///   client's supervisor give up and escalate rather than retry for ever in silence.
    ///   Prefer `sync_connect(false)` for a server that may be down a while: then a
    ///   restart reconnects with the backoff instead of failing (and counting) at once.
    /// - **Callers holding the handle during a restart never hang and never get another
    ///   incarnation's answer**: calls in flight end as their connection reports them
    ///   (`NotSent`, `ConnectionLost`); calls made while no incarnation runs follow the
    ///   offline policy: [`ClientError::Disconnected`] at once, or a wait for the next
    ///   incarnation up to the queue's deadline ([`ClientError::OfflineTimeout`] after it).
    /// - **Stopping the process closes the client**; [`close`](Client::close) on the handle
    ///   closes the running incarnation, whose process then exits normally (and, being
    ///   permanent, is restarted: the supervisor owns the client's life).
    ///
    /// [`Client::pid`] gives the running incarnation's pid, to link to or monitor.
    ///
    /// # Examples
    /// ```no_run
    /// # #[cfg(feature = "resp")]
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use beamline_client::Client;
    /// use beamline_process::{Strategy, Supervisor, SupervisorSpec};
    /// use beamline_reconnect::{OfflinePolicy, ReconnectConfig};
    /// use beamline_resp::Command;
    ///
    /// let builder = Client::builder("127.0.0.1:6379")
    ///     .resp()
    ///     .reconnect(ReconnectConfig::new(OfflinePolicy::FailFast).exit_on_disconnection(true));
    /// let (spec, redis) = Client::child_spec("redis", builder);
    /// let sup = Supervisor::start(SupervisorSpec::new(Strategy::OneForOne).child(spec)).await?;
    /// redis.call(Command::new("PING")).await?;
    /// # let _ = sup;
    /// # Ok(())
    /// # }
    /// ```
    pub fn child_spec(
        id: impl Into<ChildId>,
        builder: ClientBuilder<Req, Resp>,
    ) -> (ChildSpec<Infallible>, Client<Req, Resp>) {
        builder.child_spec(id)
    }

    /// The process of the running incarnation of a supervised client
    /// ([`child_spec`](Self::child_spec)), to link to or monitor; `None` between
    /// incarnations, and for a client built with [`connect`](ClientBuilder::connect) (it is
    /// no process).
    pub fn pid(&self) -> Option<Pid> {
        match &self.stack {
            Stack::Supervised(supervised) => supervised.pid(),
            _ => None,
        }
    }
}
