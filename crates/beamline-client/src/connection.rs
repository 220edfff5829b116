//! The seam between the layers: a multiplexed client as a reconnectable [`Connection`]
//! (made by the [`Dialer`](crate::Dialer)).

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use beamline_mux::{Client as MuxClient, MuxError};
use beamline_reconnect::Connection;

/// One multiplexed connection ([`beamline_mux::Client`]) as a [`Connection`], so that a
/// [`Reconnect`](beamline_reconnect::Reconnect) (and a pool of them) can drive it.
///
/// This is the adapter [`Client`](crate::Client) uses; it is public so that you can
/// assemble the stack by hand (see the crate guide). It adds one guarantee to the mux
/// handle's own and no queue: admission (the in-flight bound, first-poll order, deadlines
/// that cover the wait) is the mux client's one ordered gate.
///
/// # Guarantees (the [`Connection`] contract)
/// - **Death is visible before its errors.** When a call fails because the transport died
///   (or the connection was closed, or wedged), [`is_closed`](Connection::is_closed) is
///   already `true` when the error is returned, whichever thread observes it first. (The
///   mux driver fails its callers a moment before it marks itself closed; the adapter
///   closes that gap, so a reconnecting layer never mistakes a dead connection's error for
///   a per-request one.)
/// - **Order is the order of first polls**, also beyond the in-flight bound: a call takes
///   its place in the mux client's line on its first poll (see [`beamline_mux::Client`]).
/// - **Delivery is reported honestly**: its error is [`MuxError`], whose
///   [`WasSent`](crate::WasSent) says which requests the driver wrote.
/// - **Bounded**: at most the mux's `max_in_flight` calls are in flight; the rest wait in
///   the mux client's line, and a waiting call that is dropped leaves it unsent. The mux
///   client's timeout ([`ClientConfig::timeout`](beamline_mux::ClientConfig::timeout))
///   counts from a call's first poll, so it covers the wait.
pub struct MuxConnection<Req, Resp> {
    client: MuxClient<Req, Resp>,
    /// Set by a call that failed because the connection is gone, before it returns.
    dead: AtomicBool,
}

impl<Req, Resp> MuxConnection<Req, Resp> {
    /// Wraps a multiplexed client handle (its driver must be running).
    pub fn new(client: MuxClient<Req, Resp>) -> Self {
        MuxConnection {
            client,
            dead: AtomicBool::new(false),
        }
    }

    /// The multiplexed client handle (for its stats, in-flight and waiting counts).
    pub fn mux(&self) -> &MuxClient<Req, Resp> {
        &self.client
    }
}

impl<Req, Resp> fmt::Debug for MuxConnection<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MuxConnection")
            .field("client", &self.client)
            .field("dead", &self.dead.load(Ordering::Relaxed))
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

    async fn call(&self, request: Req) -> Result<Resp, MuxError> {
        let result = self.client.call(request).await;
        if let Err(e) = &result
            && e.is_connection_error()
        {
            self.dead.store(true, Ordering::Release);
        }
        result
    }

    fn is_closed(&self) -> bool {
        self.dead.load(Ordering::Acquire) || self.client.is_closed()
    }

    fn closed(&self) -> impl Future<Output = ()> + Send {
        self.client.closed()
    }

    fn close(&self) {
        self.client.close();
    }
}
