//! The composed [`Client`] as one endpoint of a [`Balanced`](beamline_balance::Balanced)
//! client (feature `balance`, the facade's `balance`): the two seam traits of
//! `beamline-balance`, implemented for this crate's types, so a balanced client over many servers is
//! `Balanced::builder(discovery, |addr| Client::builder(addr).connect())`.

use std::future::Future;

use beamline_balance::{Endpoint, EndpointError, Failure, Readiness};
use beamline_reconnect::State;

use crate::{Client, ClientError, Stack};

/// Every variant's answer to "was it written?" is its [`WasSent`](crate::WasSent). The kinds:
/// never written (offline, connect or checkout failures, closed) is
/// [`Failure::Unreachable`]; `ConnectionLost` is [`Failure::ConnectionLost`]; the request's
/// own `Timeout` is [`Failure::Timeout`]; what the server answered (`Remote`, `Cancelled`)
/// or refused alone (`Request`) is [`Failure::Rejected`] and never counts against it.
impl EndpointError for ClientError {
    fn failure(&self) -> Failure {
        match self {
            ClientError::Disconnected { .. }
            | ClientError::QueueFull { .. }
            | ClientError::OfflineTimeout { .. }
            | ClientError::NotSent { .. }
            | ClientError::Checkout { .. }
            | ClientError::Closed { .. } => Failure::Unreachable,
            ClientError::ConnectionLost { .. } => Failure::ConnectionLost,
            ClientError::Timeout { .. } => Failure::Timeout,
            ClientError::Remote { .. }
            | ClientError::Cancelled { .. }
            | ClientError::Request { .. } => Failure::Rejected,
        }
    }
}

/// One server's `Client` under a balancer. Readiness: a single connection is ready while
/// connected and connecting while it reconnects (its offline policy decides what a request
/// sent then meets); a pool is ready while open (it connects on demand, bounded by its
/// checkout timeout); a supervised client is what its running incarnation is, and
/// connecting while its supervisor restarts it. Closed for good is unavailable.
impl<Req, Resp> Endpoint for Client<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    type Request = Req;
    type Response = Resp;
    type Error = ClientError;

    fn call(&self, request: Req) -> impl Future<Output = Result<Resp, ClientError>> + Send {
        Client::call(self, request)
    }

    fn readiness(&self) -> Readiness {
        if self.is_closed() {
            return Readiness::Unavailable;
        }
        readiness(self.stack())
    }

    fn close(&self) {
        Client::close(self);
    }
}

fn readiness<Req: Send + 'static, Resp: Send + 'static>(stack: &Stack<Req, Resp>) -> Readiness {
    match stack {
        Stack::Single(reconnect) => match reconnect.state() {
            State::Connected => Readiness::Ready,
            _ => Readiness::Connecting,
        },
        Stack::Exclusive(_) | Stack::Shared(_) => Readiness::Ready,
        #[cfg(feature = "process")]
        Stack::Supervised(supervised) => supervised
            .current()
            .map_or(Readiness::Connecting, |stack| readiness(&stack)),
    }
}
