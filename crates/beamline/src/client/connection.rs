//! The seam between the layers: a multiplexed client as a reconnectable [`Connection`],
//! and the [`Connect`] that makes one over the configured transport.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use beamline_mux::{Client as MuxClient, ClientConfig as MuxConfig, ConfigError, Driver, MuxError};
use beamline_reconnect::{Connect, Connection};

use super::TransportError;
use super::transport::{Stream, Target};

/// One multiplexed connection ([`beamline_mux::Client`]) as a [`Connection`], so that a
/// [`Reconnect`](beamline_reconnect::Reconnect) (and a pool of them) can drive it.
///
/// This is the adapter [`Client`](crate::Client) uses; it is public so that you can
/// assemble the stack by hand (see the crate guide).
///
/// # Guarantees (the [`Connection`] contract)
/// - **Death is visible before its errors.** When a call fails because the transport died
///   (or the connection was closed), [`is_closed`](Connection::is_closed) is already `true`
///   when the error is returned, whichever thread observes it first. (The mux driver fails
///   its callers a moment before it marks itself closed; the adapter closes that gap, so a
///   reconnecting layer never mistakes a dead connection's error for a per-request one.)
/// - **Order is the order of first polls.** A call that finds a free in-flight slot enters
///   the mux during its first poll; one that finds every slot taken joins the adapter's
///   queue and is started, in queue order, by the call that frees a slot (the mux alone
///   would let waiting calls enter in whatever order their tasks run next). Calls whose
///   first polls overlap on different threads have no order to keep. The one exception is
///   the mux holding new requests back while too many abandoned requests await their late
///   answers ([`max_abandoned`](beamline_mux::MuxConfig::max_abandoned)).
/// - **Delivery is reported honestly**: `was_sent` is [`MuxError::was_sent`].
/// - **Bounded**: at most the mux's `max_in_flight` calls are started; the rest wait here,
///   and a waiting call that is dropped leaves the queue without being sent.
/// - **Deadlines cover the wait** when the adapter knows the timeout
///   ([`timeout`](Self::timeout)): a call's deadline runs from its first poll, and a call
///   still waiting here when it passes fails with [`MuxError::Timeout`] (`sent: false`).
pub struct MuxConnection<Req, Resp> {
    shared: Arc<Shared<Req, Resp>>,
    /// Each call's deadline, counted from its first poll.
    timeout: Option<Duration>,
}

struct Shared<Req, Resp> {
    client: MuxClient<Req, Resp>,
    /// [`begin`] for these types (a function pointer, so that giving a slot back needs no
    /// bounds on the types).
    begin: fn(MuxClient<Req, Resp>, Req, Option<Instant>) -> BoxedCall<Resp>,
    /// Set by a call that failed because the connection is gone, before it returns.
    dead: AtomicBool,
    admission: Mutex<Admission<Req, Resp>>,
}

struct Admission<Req, Resp> {
    /// Calls holding an in-flight slot (started, or being handed their start).
    admitted: usize,
    /// Calls that found every slot taken, in the order of their first polls.
    waiting: VecDeque<Waiter<Req, Resp>>,
    next_ticket: u64,
}

/// A queued call: its request and deadline, and where its started call is handed.
struct Waiter<Req, Resp> {
    ticket: u64,
    request: Req,
    deadline: Option<Instant>,
    start: oneshot::Sender<Started<Req, Resp>>,
}

type BoxedCall<Resp> = Pin<Box<dyn Future<Output = Result<Resp, MuxError>> + Send>>;

/// A queued call that was started in the mux on its caller's behalf. Its fields drop in
/// order: the mux call first (freeing the mux's slot), then the adapter's slot (which
/// starts the next waiter).
struct Started<Req, Resp> {
    call: BoxedCall<Resp>,
    _slot: Slot<Req, Resp>,
}

impl<Req, Resp> Future for Started<Req, Resp> {
    type Output = Result<Resp, MuxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.call.as_mut().poll(cx)
    }
}

/// One in-flight slot; giving it back starts the next waiting call.
struct Slot<Req, Resp> {
    shared: Arc<Shared<Req, Resp>>,
    /// Cleared when the slot was handed on by other means.
    armed: bool,
}

impl<Req, Resp> Slot<Req, Resp> {
    fn new(shared: &Arc<Shared<Req, Resp>>) -> Self {
        Slot {
            shared: Arc::clone(shared),
            armed: true,
        }
    }
}

impl<Req, Resp> Drop for Slot<Req, Resp> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.release();
        }
    }
}

/// Where a call goes on its first poll.
enum Admitted<Req, Resp> {
    Now(Slot<Req, Resp>, Req),
    Queued {
        ticket: u64,
        started: oneshot::Receiver<Started<Req, Resp>>,
    },
}

impl<Req, Resp> Shared<Req, Resp> {
    fn admission(&self) -> MutexGuard<'_, Admission<Req, Resp>> {
        // Nothing panics under this lock but the mux's first poll of a user codec's
        // request, which leaves the counts consistent.
        self.admission
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn admit(self: &Arc<Self>, request: Req, deadline: Option<Instant>) -> Admitted<Req, Resp> {
        let mut admission = self.admission();
        if admission.waiting.is_empty() && admission.admitted < self.client.max_in_flight() {
            admission.admitted += 1;
            return Admitted::Now(Slot::new(self), request);
        }
        let (start, started) = oneshot::channel();
        let ticket = admission.next_ticket;
        admission.next_ticket += 1;
        admission.waiting.push_back(Waiter {
            ticket,
            request,
            deadline,
            start,
        });
        Admitted::Queued { ticket, started }
    }

    /// Takes a waiting call out of the queue; `false` if it was already started.
    fn withdraw(&self, ticket: u64) -> bool {
        let mut admission = self.admission();
        match admission.waiting.iter().position(|w| w.ticket == ticket) {
            Some(i) => {
                admission.waiting.remove(i);
                true
            }
            None => false,
        }
    }

    /// A slot came free: start waiting calls, oldest first, while slots last.
    fn release(self: &Arc<Self>) {
        let mut freed = 1;
        while freed > 0 {
            let mut handed = Vec::new();
            {
                let mut admission = self.admission();
                admission.admitted -= freed;
                freed = 0;
                while admission.admitted < self.client.max_in_flight() {
                    let Some(waiter) = admission.waiting.pop_front() else {
                        break;
                    };
                    if waiter.start.is_closed() {
                        continue; // its caller left: never sent
                    }
                    admission.admitted += 1;
                    // Started under the lock, so the queue order is the mux's order.
                    let call = (self.begin)(self.client.clone(), waiter.request, waiter.deadline);
                    handed.push((waiter.start, call));
                }
            }
            for (start, call) in handed {
                let started = Started {
                    call,
                    _slot: Slot::new(self),
                };
                if let Err(started) = start.send(started) {
                    // The caller left in between: cancel its call (the mux frees its own
                    // slot now) and give this slot to the next waiter in this loop.
                    let Started {
                        call,
                        _slot: mut slot,
                    } = started;
                    drop(call);
                    slot.armed = false;
                    freed += 1;
                }
            }
        }
    }
}

/// Starts `request` in the mux now: its first poll takes the slot the caller was given and
/// queues the request. The caller polls it from then on with its own waker.
fn begin<Req, Resp>(
    client: MuxClient<Req, Resp>,
    request: Req,
    deadline: Option<Instant>,
) -> BoxedCall<Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    let mut call: BoxedCall<Resp> =
        Box::pin(async move { mux_call(&client, request, deadline).await });
    let mut cx = Context::from_waker(Waker::noop());
    match call.as_mut().poll(&mut cx) {
        Poll::Ready(result) => Box::pin(std::future::ready(result)),
        Poll::Pending => call,
    }
}

/// One call in the mux, under `deadline` if there is one (else the mux's own timeout).
async fn mux_call<Req, Resp>(
    client: &MuxClient<Req, Resp>,
    request: Req,
    deadline: Option<Instant>,
) -> Result<Resp, MuxError>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    match deadline {
        Some(deadline) => client.call_deadline(request, deadline).await,
        None => client.call(request).await,
    }
}

impl<Req, Resp> MuxConnection<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    /// Wraps a multiplexed client handle (its driver must be running).
    ///
    /// Without [`timeout`](Self::timeout), a call waiting here for a slot waits as long as
    /// it takes; the mux's own timeout starts when the call enters the mux.
    pub fn new(client: MuxClient<Req, Resp>) -> Self {
        MuxConnection {
            timeout: None,
            shared: Arc::new(Shared {
                client,
                begin: begin::<Req, Resp>,
                dead: AtomicBool::new(false),
                admission: Mutex::new(Admission {
                    admitted: 0,
                    waiting: VecDeque::new(),
                    next_ticket: 0,
                }),
            }),
        }
    }

    /// Every call's deadline, counted from its first poll: give the mux client's own
    /// [`ClientConfig::timeout`](beamline_mux::ClientConfig::timeout), so that waiting here
    /// for a slot counts against it as waiting in the mux would.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

impl<Req, Resp> MuxConnection<Req, Resp> {
    /// The multiplexed client handle (for its stats and in-flight count).
    pub fn mux(&self) -> &MuxClient<Req, Resp> {
        &self.shared.client
    }

    /// Calls waiting here for an in-flight slot.
    pub fn waiting(&self) -> usize {
        self.shared.admission().waiting.len()
    }
}

impl<Req, Resp> fmt::Debug for MuxConnection<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MuxConnection")
            .field("client", &self.shared.client)
            .field("waiting", &self.waiting())
            .field("dead", &self.shared.dead.load(Ordering::Relaxed))
            .finish()
    }
}

impl<Req, Resp> Connection for MuxConnection<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    type Request = Req;
    type Response = Resp;
    type Error = MuxError;

    fn call(&self, request: Req) -> impl Future<Output = Result<Resp, MuxError>> + Send {
        let (shared, timeout) = (&self.shared, self.timeout);
        async move {
            let deadline = timeout.map(|t| Instant::now() + t);
            let result = match shared.admit(request, deadline) {
                Admitted::Now(slot, request) => {
                    let result = mux_call(&shared.client, request, deadline).await;
                    drop(slot);
                    result
                }
                Admitted::Queued { ticket, started } => {
                    wait_started(shared, ticket, started, deadline).await
                }
            };
            if let Err(e) = &result
                && e.is_connection_error()
            {
                shared.dead.store(true, Ordering::Release);
            }
            result
        }
    }

    fn was_sent(error: &MuxError) -> bool {
        error.was_sent()
    }

    fn is_closed(&self) -> bool {
        self.shared.dead.load(Ordering::Acquire) || self.shared.client.is_closed()
    }

    fn closed(&self) -> impl Future<Output = ()> + Send {
        self.shared.client.closed()
    }

    fn close(&self) {
        self.shared.client.close();
    }
}

/// Waits for a queued call to be started, then for its answer. At the deadline, a call
/// still in the queue is taken out (never sent); one started in the same instant is
/// awaited, and the mux, holding the same deadline, says whether it was written.
async fn wait_started<Req, Resp>(
    shared: &Shared<Req, Resp>,
    ticket: u64,
    mut started: oneshot::Receiver<Started<Req, Resp>>,
    deadline: Option<Instant>,
) -> Result<Resp, MuxError> {
    let handed = match deadline {
        Some(deadline) => match tokio::time::timeout_at(deadline, &mut started).await {
            Ok(handed) => handed,
            Err(_) if shared.withdraw(ticket) => {
                return Err(MuxError::Timeout {
                    peer: Arc::from(shared.client.peer()),
                    sent: false,
                });
            }
            Err(_) => started.await,
        },
        None => started.await,
    };
    match handed {
        Ok(call) => call.await,
        // The queue went away with the connection.
        Err(_) => Err(MuxError::Closed {
            peer: Arc::from(shared.client.peer()),
        }),
    }
}

/// Builds the mux client of one protocol over a connected stream.
pub(crate) type Framer<Req, Resp> =
    dyn Fn(Stream, &MuxConfig) -> Result<(MuxClient<Req, Resp>, Driver), ConfigError> + Send + Sync;

/// How to reach the target and speak to it: everything one connection attempt needs.
pub(crate) struct Dialer<Req, Resp> {
    pub(crate) target: Target,
    /// `target` as errors name it.
    pub(crate) target_name: Arc<str>,
    pub(crate) nodelay: bool,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<super::builder::TlsSettings>,
    pub(crate) framer: Arc<Framer<Req, Resp>>,
    pub(crate) mux: MuxConfig,
    /// The timeout in `mux`, which the adapter applies to waiting for a slot too.
    pub(crate) timeout: Option<Duration>,
}

impl<Req, Resp> Dialer<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    /// One attempt: the socket, the TLS handshake if configured, the mux driver (spawned).
    pub(crate) async fn dial(&self) -> Result<MuxConnection<Req, Resp>, TransportError> {
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
        let connection = MuxConnection::new(client);
        Ok(match self.timeout {
            Some(timeout) => connection.timeout(timeout),
            None => connection,
        })
    }
}

/// The [`Connect`] of a [`Client`](crate::Client): dials the target on every attempt.
pub(crate) struct Connector<Req, Resp> {
    pub(crate) dialer: Arc<Dialer<Req, Resp>>,
}

impl<Req, Resp> Clone for Connector<Req, Resp> {
    fn clone(&self) -> Self {
        Connector {
            dialer: Arc::clone(&self.dialer),
        }
    }
}

impl<Req, Resp> Connect for Connector<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    type Connection = MuxConnection<Req, Resp>;
    type Error = TransportError;

    fn connect(
        &mut self,
    ) -> impl Future<Output = Result<MuxConnection<Req, Resp>, TransportError>> + Send {
        let dialer = Arc::clone(&self.dialer);
        async move { dialer.dial().await }
    }
}
