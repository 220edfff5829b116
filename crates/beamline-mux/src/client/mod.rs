//! The tokio client: a cloneable handle over one multiplexed connection, and the driver
//! task that runs it.

mod config;
mod driver;
mod error;
mod proto;

pub use config::ClientConfig;
pub use driver::Driver;
pub use error::{ConnectionError, MuxError, ProtocolViolation};

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, Semaphore, SemaphorePermit, TryAcquireError, oneshot};
use tokio::time::Instant;
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::sync::CancellationToken;

use crate::frame::FrameCodec;
use crate::mux::{Cancelled, ConfigError, Mux, MuxStats, StartError, Ticket};
use crate::tagged::Tagged;
use driver::{Conn, Phase, Shared, State, Waiter};
use proto::{ByTag, CodecProto, InOrder, Proto, WireProto};

/// A handle to one multiplexed connection: many callers, one transport.
///
/// `Client` is cheap to clone (one `Arc`), `Send + Sync + 'static`, and every clone talks
/// to the same connection. Requests go out in batches (one write and one flush for
/// everything queued while the previous batch was being written) and answers come back in
/// any order (by id) or in order (FIFO), each to the caller it belongs to.
///
/// # Guarantees
/// - **Every answer reaches its own caller, or no one.** See [`Mux`].
/// - **At most [`max_in_flight`](Self::max_in_flight) requests are in flight.** A caller
///   beyond waits its turn (first come, first served) before anything is queued; the `try_`
///   form fails at once with [`MuxError::Busy`] instead. Nothing is ever "ready" past the
///   bound.
/// - **A dropped or timed-out call frees its slot at once.** If its request was already
///   written, its id stays quarantined until the late answer arrives (then dropped and
///   counted in [`stats`](Self::stats)) and, with the wire format, a cancel frame is sent.
/// - **Every failure says whether the request was written** ([`MuxError::was_sent`]):
///   when the transport dies, requests not yet written fail with [`MuxError::NotSent`]
///   (safe to retry), written ones with [`MuxError::ConnectionLost`] (maybe delivered).
///   Nothing is retried behind your back.
/// - **Deadlines cover the whole call**: waiting for a slot, being written, the answer.
/// - **Closing**: [`close`](Self::close) fails everything in flight and refuses new calls;
///   [`closed`](Self::closed) resolves when the connection is closed or dead; dropping every
///   handle stops the driver and shuts the transport down.
pub struct Client<Req, Resp> {
    handle: Arc<Handle<Req, Resp>>,
}

/// The last handle to go tells the driver to stop.
struct Handle<Req, Resp> {
    shared: Arc<Shared<Req, Resp>>,
}

impl<Req, Resp> Drop for Handle<Req, Resp> {
    fn drop(&mut self) {
        self.shared.lock().handles_gone = true;
        self.shared.driver.wake();
    }
}

impl<Req, Resp> Clone for Client<Req, Resp> {
    fn clone(&self) -> Self {
        Client {
            handle: Arc::clone(&self.handle),
        }
    }
}

impl<Req, Resp> fmt::Debug for Client<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.peer())
            .field("in_flight", &self.in_flight())
            .field("max_in_flight", &self.max_in_flight())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Client<Bytes, Bytes> {
    /// A client speaking beamline's [wire format](crate::frame) over `io` (TCP, TLS, Unix,
    /// anything `AsyncRead + AsyncWrite`). Spawn the returned [`Driver`].
    ///
    /// Requests and answers are `Bytes` payloads. A server error frame fails the call with
    /// [`MuxError::Remote`]; pings from the server are answered.
    ///
    /// # Errors
    /// When `config` is inconsistent (`max_in_flight` of 0).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use beamline_mux::{Client, ClientConfig};
    /// use bytes::Bytes;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let stream = tokio::net::TcpStream::connect("127.0.0.1:7000").await?;
    /// let (client, driver) = Client::wire(stream, &ClientConfig::new().peer("127.0.0.1:7000"))?;
    /// tokio::spawn(driver);
    /// let answer = client.call(Bytes::from_static(b"ping")).await?;
    /// # let _ = answer;
    /// # Ok(())
    /// # }
    /// ```
    pub fn wire<T>(io: T, config: &ClientConfig) -> Result<(Self, Driver), ConfigError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let proto = WireProto {
            codec: FrameCodec::with_max_frame_len(config.max_frame_len),
        };
        connect(io, proto, config)
    }
}

impl<Req, Resp> Client<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    /// A client for a user protocol whose messages carry ids ([`Tagged`]), framed by
    /// `codec`. Ids are allocated by the client (over `0..=Req::MAX_TAG`) and written into
    /// each request with [`Tagged::set_tag`]; answers are matched by [`Tagged::tag`] and may
    /// come in any order. Spawn the returned [`Driver`].
    ///
    /// # Errors
    /// When `config` is inconsistent, e.g. `max_in_flight` above the protocol's id count.
    pub fn tagged<T, C>(
        io: T,
        codec: C,
        config: &ClientConfig,
    ) -> Result<(Self, Driver), ConfigError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        C: Encoder<Req> + Decoder<Item = Resp> + Send + 'static,
        <C as Encoder<Req>>::Error: StdError + Send + Sync + 'static,
        <C as Decoder>::Error: StdError + Send + Sync + 'static,
        Req: Tagged,
        Resp: Tagged,
    {
        let proto = CodecProto {
            codec,
            order: PhantomData::<ByTag>,
            types: PhantomData,
        };
        connect(io, proto, config)
    }

    /// A client for a user protocol without ids (Redis, memcached, HTTP/1.1 pipelining),
    /// framed by `codec`: answers match requests by order. A cancelled request's answer is
    /// still read and discarded, so later answers never shift onto the wrong caller. Spawn
    /// the returned [`Driver`].
    ///
    /// # Errors
    /// When `config` is inconsistent (`max_in_flight` of 0).
    pub fn fifo<T, C>(io: T, codec: C, config: &ClientConfig) -> Result<(Self, Driver), ConfigError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        C: Encoder<Req> + Decoder<Item = Resp> + Send + 'static,
        <C as Encoder<Req>>::Error: StdError + Send + Sync + 'static,
        <C as Decoder>::Error: StdError + Send + Sync + 'static,
    {
        let proto = CodecProto {
            codec,
            order: PhantomData::<InOrder>,
            types: PhantomData,
        };
        connect(io, proto, config)
    }

    /// Sends `request` and waits for its answer, within the default timeout if one is
    /// configured ([`ClientConfig::timeout`]).
    ///
    /// Waits for an in-flight slot first when `max_in_flight` requests are out. Dropping the
    /// returned future cancels the call and frees its slot.
    ///
    /// # Errors
    /// A [`MuxError`] saying what went wrong and, through [`MuxError::was_sent`], whether the
    /// request may have reached the peer.
    pub async fn call(&self, request: Req) -> Result<Resp, MuxError> {
        let deadline = self.handle.shared.timeout.map(|t| Instant::now() + t);
        self.call_inner(request, deadline, true).await
    }

    /// [`call`](Self::call) with its own timeout, counted from now.
    ///
    /// # Errors
    /// As for [`call`](Self::call); [`MuxError::Timeout`] when `timeout` passes first.
    pub async fn call_timeout(&self, request: Req, timeout: Duration) -> Result<Resp, MuxError> {
        self.call_inner(request, Some(Instant::now() + timeout), true)
            .await
    }

    /// [`call`](Self::call) with its own deadline.
    ///
    /// # Errors
    /// As for [`call`](Self::call); [`MuxError::Timeout`] when `deadline` passes first.
    pub async fn call_deadline(&self, request: Req, deadline: Instant) -> Result<Resp, MuxError> {
        self.call_inner(request, Some(deadline), true).await
    }

    /// [`call`](Self::call), but fails at once with [`MuxError::Busy`] instead of waiting
    /// when no in-flight slot is free (or abandoned requests block new ones).
    ///
    /// # Errors
    /// As for [`call`](Self::call), plus [`MuxError::Busy`].
    pub async fn try_call(&self, request: Req) -> Result<Resp, MuxError> {
        let deadline = self.handle.shared.timeout.map(|t| Instant::now() + t);
        self.call_inner(request, deadline, false).await
    }

    async fn call_inner(
        &self,
        request: Req,
        deadline: Option<Instant>,
        wait: bool,
    ) -> Result<Resp, MuxError> {
        let shared = &*self.handle.shared;
        let permit = self.admit(deadline, wait).await?;
        let (tx, rx) = oneshot::channel();
        let ticket = self.start(request, tx, deadline, wait).await?;
        let mut in_flight = InFlight {
            shared,
            ticket: Some(ticket),
            _permit: permit,
        };
        let outcome = rx.await;
        // The driver took the request out of the mux before it answered.
        in_flight.ticket = None;
        outcome.unwrap_or_else(|_| {
            Err(MuxError::ConnectionLost {
                peer: shared.peer.clone(),
                cause: ConnectionError::DriverDropped,
            })
        })
    }

    /// Takes an in-flight slot.
    async fn admit(
        &self,
        deadline: Option<Instant>,
        wait: bool,
    ) -> Result<SemaphorePermit<'_>, MuxError> {
        let shared = &*self.handle.shared;
        match shared.permits.try_acquire() {
            Ok(permit) => return Ok(permit),
            Err(TryAcquireError::Closed) => return Err(self.closed_error()),
            Err(TryAcquireError::NoPermits) if !wait => {
                return Err(MuxError::Busy {
                    peer: shared.peer.clone(),
                    max_in_flight: shared.max_in_flight,
                });
            }
            Err(TryAcquireError::NoPermits) => {}
        }
        let acquired = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, shared.permits.acquire())
                .await
                .map_err(|_| self.unsent_timeout())?,
            None => shared.permits.acquire().await,
        };
        acquired.map_err(|_| self.closed_error())
    }

    /// Puts the request in the mux, waiting while abandoned requests block new ones.
    async fn start(
        &self,
        mut request: Req,
        mut waiter: Waiter<Resp>,
        deadline: Option<Instant>,
        wait: bool,
    ) -> Result<Ticket, MuxError> {
        let shared = &*self.handle.shared;
        let mut register = false;
        loop {
            let notified = shared.unblocked.notified();
            let mut notified = pin!(notified);
            if register {
                // Registered before the state is checked, so a wake-up in between is kept.
                notified.as_mut().enable();
            }
            let refused = {
                let mut st = shared.lock();
                if st.phase != Phase::Open {
                    return Err(self.closed_error());
                }
                let idle = !st.mux.has_transmit();
                match st
                    .mux
                    .start(request, waiter, deadline.map(Instant::into_std))
                {
                    Ok(ticket) => {
                        drop(st);
                        if idle {
                            shared.driver.wake();
                        }
                        return Ok(ticket);
                    }
                    Err(refused) => {
                        if register {
                            st.blocked = true;
                        }
                        refused
                    }
                }
            };
            if !wait || matches!(refused, StartError::Full { .. }) {
                // Full cannot happen while holding a permit; either way nothing was queued.
                return Err(MuxError::Busy {
                    peer: shared.peer.clone(),
                    max_in_flight: shared.max_in_flight,
                });
            }
            (request, waiter) = refused.into_parts();
            if register {
                match deadline {
                    Some(deadline) => tokio::time::timeout_at(deadline, notified)
                        .await
                        .map_err(|_| self.unsent_timeout())?,
                    None => notified.await,
                }
            }
            register = true;
        }
    }

    fn closed_error(&self) -> MuxError {
        MuxError::Closed {
            peer: self.handle.shared.peer.clone(),
        }
    }

    fn unsent_timeout(&self) -> MuxError {
        MuxError::Timeout {
            peer: self.handle.shared.peer.clone(),
            sent: false,
        }
    }
}

impl<Req, Resp> Client<Req, Resp> {
    /// Requests in flight now: admitted (holding a slot) and not yet finished. The shared
    /// pool picks the least-loaded connection with it.
    pub fn in_flight(&self) -> usize {
        let shared = &self.handle.shared;
        shared
            .max_in_flight
            .saturating_sub(shared.permits.available_permits())
    }

    /// The in-flight bound of this connection.
    pub fn max_in_flight(&self) -> usize {
        self.handle.shared.max_in_flight
    }

    /// Whether the connection is closed or dead: new calls fail with [`MuxError::Closed`].
    pub fn is_closed(&self) -> bool {
        self.handle.shared.closed.is_cancelled()
    }

    /// Resolves when the connection is closed ([`close`](Self::close)) or dead (the transport
    /// failed, the peer closed it, the driver stopped). The future holds no borrow of the
    /// client, so a supervisor can keep it.
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        self.handle.shared.closed.clone().cancelled_owned()
    }

    /// Closes the connection now: new calls fail with [`MuxError::Closed`], requests in
    /// flight fail with [`MuxError::NotSent`] or [`MuxError::ConnectionLost`] (cause
    /// [`ConnectionError::Closed`]), and the driver shuts the transport down and resolves.
    pub fn close(&self) {
        let shared = &self.handle.shared;
        {
            let mut st = shared.lock();
            if st.phase == Phase::Open {
                st.phase = Phase::Closing;
            }
        }
        shared.closed.cancel();
        shared.unblocked.notify_waiters();
        shared.driver.wake();
    }

    /// The multiplexer's counters: load, abandoned requests, late and stray answers.
    pub fn stats(&self) -> MuxStats {
        self.handle.shared.lock().mux.stats()
    }

    /// The connection's label ([`ClientConfig::peer`]).
    pub fn peer(&self) -> &str {
        &self.handle.shared.peer
    }
}

/// A call between admission and its answer. Dropping it early (the caller's future was
/// dropped) cancels the request in the mux, then releases the slot, in that order, so the
/// bound always covers the mux's live requests.
struct InFlight<'a, Req, Resp> {
    shared: &'a Shared<Req, Resp>,
    ticket: Option<Ticket>,
    _permit: SemaphorePermit<'a>,
}

impl<Req, Resp> Drop for InFlight<'_, Req, Resp> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            let now = Instant::now().into_std();
            let outcome = self.shared.lock().mux.cancel(ticket, now);
            if let Cancelled::Abandoned {
                cancel_queued: true,
            } = outcome
            {
                self.shared.driver.wake();
            }
        }
    }
}

fn connect<T, Req, Resp>(
    io: T,
    proto: impl Proto<Req = Req, Resp = Resp>,
    config: &ClientConfig,
) -> Result<(Client<Req, Resp>, Driver), ConfigError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mux = Mux::new(config.mux_config(proto.mode()))?;
    if config.limits.max_in_flight > Semaphore::MAX_PERMITS {
        return Err(ConfigError::InFlightTooLarge {
            max_in_flight: config.limits.max_in_flight,
            limit: Semaphore::MAX_PERMITS,
        });
    }
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            mux,
            phase: Phase::Open,
            handles_gone: false,
            blocked: false,
        }),
        permits: Semaphore::new(config.limits.max_in_flight),
        driver: AtomicWaker::new(),
        unblocked: Notify::new(),
        closed: CancellationToken::new(),
        peer: config.peer.clone(),
        max_in_flight: config.limits.max_in_flight,
        timeout: config.timeout,
    });
    let driver = Driver::new(Conn::new(io, proto, Arc::clone(&shared)));
    let client = Client {
        handle: Arc::new(Handle { shared }),
    };
    Ok((client, driver))
}
