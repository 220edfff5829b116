//! The tokio client: a cloneable handle over one multiplexed connection, and the driver
//! task that runs it.

mod config;
mod driver;
mod error;
mod gate;
mod proto;

pub use config::ClientConfig;
pub use driver::Driver;
pub use error::{ConnectionError, MuxError, ProtocolViolation};

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, oneshot};
use tokio::time::Instant;
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::sync::CancellationToken;

use crate::frame::FrameCodec;
use crate::mux::{Cancelled, ConfigError, Mux, MuxStats, Ticket};
use crate::tagged::Tagged;
use driver::{Conn, Phase, Shared, State, Waiter};
use gate::{Gate, Left};
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
/// - **One ordered admission gate.** Requests are written in the order their calls were
///   first polled, at most [`max_in_flight`](Self::max_in_flight) in flight at a time. A
///   call that finds no room (the in-flight bound, too many abandoned requests, no free
///   id) waits in line and is admitted, in line order, as soon as room appears for any
///   reason: an answer, a cancelled or timed-out call, a quarantine ageing out. A waiting
///   call that is dropped leaves the line and is never written; the `try_` form never
///   waits: it fails at once with [`MuxError::Busy`] when it would. Nothing is ever
///   "ready" past the bound.
/// - **A dropped or timed-out call frees its slot at once.** If its request was already
///   written, its id stays quarantined until the late answer arrives (then dropped and
///   counted in [`stats`](Self::stats)) and, with the wire format, a cancel frame is sent.
/// - **Every failure says whether the request was written** ([`WasSent::was_sent`](crate::WasSent::was_sent)):
///   when the transport dies, requests not yet written fail with [`MuxError::NotSent`]
///   (safe to retry), written ones with [`MuxError::ConnectionLost`] (maybe delivered).
///   Nothing is retried behind your back.
/// - **Deadlines cover the whole call**: waiting for a slot, being written, the answer.
/// - **FIFO mode never wedges for ever** ([`Client::fifo`]): a request abandoned after it was
///   written (its caller timed out or gave up) whose answer has not come within the abandon
///   timeout ([`ClientConfig::abandon_timeout`]) fails the connection, since every later
///   answer would queue behind it: each request on it ends [`MuxError::NotSent`] or
///   [`MuxError::ConnectionLost`] with cause [`ConnectionError::Wedged`], and a layer above
///   (reconnect, a pool) replaces the connection.
/// - **Cooperative**: a call that is admitted or refused at once consumes tokio's task budget
///   ([`tokio::task::coop`]) after taking its place, so a loop of calls that never wait
///   still lets the other tasks of its worker run.
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
    /// still read and discarded, so later answers never shift onto the wrong caller; if it
    /// has not come within the abandon timeout ([`ClientConfig::abandon_timeout`]: twice
    /// the request timeout, or 30 s) the connection fails instead of wedging every later
    /// answer behind it. Spawn the returned [`Driver`].
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
    /// Takes its place in line on its first poll, and waits there while the mux has no room
    /// (see the type's guarantees). Dropping the returned future cancels the call: out of
    /// the line if it was waiting, or freeing its slot if it was admitted.
    ///
    /// # Errors
    /// A [`MuxError`] saying what went wrong and, through [`WasSent::was_sent`](crate::WasSent::was_sent), whether the
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

    /// [`call`](Self::call), but never waits in line: fails at once with [`MuxError::Busy`]
    /// when the call could not be admitted now (no in-flight slot free, abandoned requests
    /// block new ones, or earlier calls are waiting).
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
        let (tx, mut rx) = oneshot::channel();
        let mut call = Call {
            shared,
            place: None,
        };
        let entered = self.enter(request, tx, deadline, wait, &mut call);
        // The call has its place (or its refusal) already, so yielding here reorders
        // nothing; a loop of calls that are admitted or refused at once yields like a tokio
        // channel does.
        tokio::task::coop::consume_budget().await;
        entered?;
        let outcome = match (call.place, deadline) {
            (Some(Place::Waiting(place)), Some(deadline)) => {
                match tokio::time::timeout_at(deadline, &mut rx).await {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        let left = shared.lock().gate.leave(place);
                        if left == Left::Waiting {
                            // Never admitted: certainly never written.
                            call.place = None;
                            return Err(self.unsent_timeout());
                        }
                        // Admitted in the same instant: the mux holds the same deadline
                        // and says whether it was written.
                        call.place = match left {
                            Left::Admitted(ticket) => Some(Place::Admitted(ticket)),
                            _ => None,
                        };
                        (&mut rx).await
                    }
                }
            }
            _ => (&mut rx).await,
        };
        if let Some(Place::Waiting(place)) = call.place.take() {
            // The driver answered it; the gate forgets its place.
            shared.lock().gate.leave(place);
        }
        call.place = None;
        outcome.unwrap_or_else(|_| {
            Err(MuxError::ConnectionLost {
                peer: shared.peer.clone(),
                cause: ConnectionError::DriverDropped,
            })
        })
    }

    /// Takes the call's place, under the lock: straight into the mux when nobody waits and
    /// there is room, else in line (or refused, for `try_` calls).
    fn enter(
        &self,
        request: Req,
        waiter: Waiter<Resp>,
        deadline: Option<Instant>,
        wait: bool,
        call: &mut Call<'_, Req, Resp>,
    ) -> Result<(), MuxError> {
        let shared = &*self.handle.shared;
        let deadline = deadline.map(Instant::into_std);
        let mut st = shared.lock();
        if st.phase != Phase::Open {
            return Err(self.closed_error());
        }
        let (request, waiter) = if st.gate.is_empty() {
            let idle = !st.mux.has_transmit();
            match st.mux.admit(request, waiter, deadline) {
                Ok(ticket) => {
                    call.place = Some(Place::Admitted(ticket));
                    drop(st);
                    if idle {
                        shared.driver.wake();
                    }
                    return Ok(());
                }
                Err(refused) => refused.into_parts(),
            }
        } else {
            (request, waiter)
        };
        if !wait {
            return Err(MuxError::Busy {
                peer: shared.peer.clone(),
                max_in_flight: shared.max_in_flight,
            });
        }
        call.place = Some(Place::Waiting(st.gate.park(request, waiter, deadline)));
        Ok(())
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
    /// Requests in flight now: admitted and neither answered, failed nor given up.
    pub fn in_flight(&self) -> usize {
        self.handle.shared.lock().mux.in_flight()
    }

    /// Calls waiting in line for room (see the type's guarantees).
    pub fn waiting(&self) -> usize {
        self.handle.shared.lock().gate.len()
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

/// Where a call stands in the gate.
#[derive(Debug, Clone, Copy)]
enum Place {
    /// In the mux.
    Admitted(Ticket),
    /// In line, at this place (it may have been admitted since, on its behalf).
    Waiting(u64),
}

/// A call between its first poll and its answer. Dropping it early (the caller's future was
/// dropped) takes it out of the line or cancels it in the mux, then admits whoever waits
/// for the room it leaves.
struct Call<'a, Req, Resp> {
    shared: &'a Shared<Req, Resp>,
    place: Option<Place>,
}

impl<Req, Resp> Drop for Call<'_, Req, Resp> {
    fn drop(&mut self) {
        let Some(place) = self.place.take() else {
            return;
        };
        let mut st = self.shared.lock();
        let ticket = match place {
            Place::Admitted(ticket) => ticket,
            Place::Waiting(place) => match st.gate.leave(place) {
                Left::Admitted(ticket) => ticket,
                Left::Waiting | Left::Gone => return,
            },
        };
        let now = Instant::now().into_std();
        let cancelled = st.mux.cancel(ticket, now);
        let admitted = st.admit_waiting(now);
        drop(st);
        let cancel_queued = matches!(
            cancelled,
            Cancelled::Abandoned {
                cancel_queued: true
            }
        );
        if cancel_queued || admitted {
            self.shared.driver.wake();
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
            gate: Gate::new(),
            phase: Phase::Open,
            handles_gone: false,
        }),
        driver: AtomicWaker::new(),
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
