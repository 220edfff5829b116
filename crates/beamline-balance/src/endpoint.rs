//! The seam between the balancer and the client of one endpoint: what it needs to know of a
//! call ([`Endpoint`]) and of its failure ([`EndpointError`]).
//!
//! Anything that sends a request to one server and says honestly whether a failed request
//! was written can sit under a [`Balanced`](crate::Balanced) client: beamline's composed
//! `Client` (the facade's `balance` feature implements both traits for it), a
//! [`Reconnect`] connection (implemented here), or your own.

use std::future::Future;

use beamline_failure::WasSent;
use beamline_reconnect::{Connection, Reconnect, ReconnectError};

/// How a call to one endpoint failed, as the balancer's health model and retry rule see it.
///
/// | kind | counts against the endpoint? | retried elsewhere? |
/// |---|---|---|
/// | [`Unreachable`](Self::Unreachable) | yes | yes (it was never written) |
/// | [`ConnectionLost`](Self::ConnectionLost) | yes | only an idempotent request |
/// | [`Timeout`](Self::Timeout) | yes | only if it was never written |
/// | [`Rejected`](Self::Rejected) | no: the endpoint answered | never |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Failure {
    /// The request never reached a connection: connecting failed, no connection was up (and
    /// the endpoint's offline policy refused or timed it out), no pooled connection came free,
    /// or the connection died before any byte of it was written.
    Unreachable,
    /// The connection died after the request was written, before its answer: it may have
    /// been delivered.
    ConnectionLost,
    /// The request's own deadline at the endpoint passed (a slow or silent server).
    Timeout,
    /// The endpoint answered with a typed error of its protocol, or refused this one request
    /// (too large, not encodable): the server is alive and spoke. Never counted against its
    /// health, never retried.
    Rejected,
}

impl Failure {
    /// Whether this failure says something about the endpoint's health (everything but
    /// [`Rejected`](Self::Rejected)).
    pub const fn counts_against_endpoint(self) -> bool {
        !matches!(self, Failure::Rejected)
    }
}

/// Whether an endpoint can take a request now (see [`Endpoint::readiness`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::exhaustive_enums)] // closed on purpose: the balancer must handle every readiness an endpoint reports
pub enum Readiness {
    /// A request sent now goes out on a live connection (or waits in a queue the endpoint
    /// owns, bounded by its own deadline).
    Ready,
    /// The endpoint is connecting or reconnecting: a request sent now would most likely fail
    /// at once. It is picked only when no endpoint is [`Ready`](Self::Ready).
    Connecting,
    /// The endpoint will not take requests (closed for good, or its client is still being
    /// made). Never picked.
    Unavailable,
}

/// The error of one endpoint's call: was it written, and what kind of failure is it.
///
/// # Contract
/// Whether it was written is [`WasSent`], beamline's one answer to that question on every
/// client layer's error: [`was_sent`](WasSent::was_sent) is `false` only when the request's
/// bytes were certainly not written; when in doubt, `true`. The balancer retries a request
/// that was not sent on another endpoint, so a wrong `false` can deliver a request twice.
pub trait EndpointError: std::error::Error + WasSent + Send + Sync + 'static {
    /// What kind of failure this is, for the health model and the retry rule.
    fn failure(&self) -> Failure;
}

/// The client of one endpoint, as the balancer uses it.
///
/// Implemented by the facade's `Client` (feature `balance`) and, here, by
/// [`Reconnect`]. Calls take `&self` and run concurrently.
///
/// # Contract
/// - **Every call ends**: with an answer or an [`EndpointError`]. The balancer bounds each
///   call by its own deadline too, dropping the call's future when it passes, so dropping a
///   call must cancel it cleanly (free its slot; a written request's answer discarded).
/// - **Readiness is current**: [`readiness`](Self::readiness) is read at every pick, never
///   cached, so an endpoint that finishes connecting takes requests from that moment on.
/// - **`close` ends it**: after [`close`](Self::close) calls fail and the connections shut
///   down. The balancer closes an endpoint once it was removed and its last call ended.
pub trait Endpoint: Send + Sync + 'static {
    /// What a call sends.
    type Request: Send + 'static;
    /// What a call returns.
    type Response: Send + 'static;
    /// Why a call failed.
    type Error: EndpointError;

    /// Sends `request` and waits for its answer.
    fn call(
        &self,
        request: Self::Request,
    ) -> impl Future<Output = Result<Self::Response, Self::Error>> + Send;

    /// Whether the endpoint can take a request now (default: always).
    fn readiness(&self) -> Readiness {
        Readiness::Ready
    }

    /// Closes the endpoint's client for good.
    fn close(&self);
}

/// A reconnecting connection's failures: a connection that died after the request was
/// written is [`Failure::ConnectionLost`]; one that was never written (offline, lost before
/// the write, closed) is [`Failure::Unreachable`]; a request the live connection failed by
/// itself ([`ReconnectError::Request`]: a codec error, or the connection's own request
/// timeout, which it cannot tell apart) is [`Failure::Rejected`]. A panic in the
/// connection's code is a lost connection.
impl<E> EndpointError for ReconnectError<E>
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn failure(&self) -> Failure {
        match self {
            ReconnectError::ConnectionLost { .. } | ReconnectError::Panicked { .. } => {
                Failure::ConnectionLost
            }
            ReconnectError::Request { .. } => Failure::Rejected,
            // Disconnected, QueueFull, Timeout (offline), NotSent, Closed, and variants
            // added later: never written.
            _ if !self.was_sent() => Failure::Unreachable,
            _ => Failure::ConnectionLost,
        }
    }
}

/// A reconnecting connection as an endpoint: ready while connected, connecting while it
/// reconnects (its offline policy decides what a request sent then meets), unavailable once
/// closed for good.
impl<C> Endpoint for Reconnect<C>
where
    C: Connection,
{
    type Request = C::Request;
    type Response = C::Response;
    type Error = ReconnectError<C::Error>;

    fn call(
        &self,
        request: C::Request,
    ) -> impl Future<Output = Result<C::Response, Self::Error>> + Send {
        Reconnect::call(self, request)
    }

    fn readiness(&self) -> Readiness {
        let state = self.state();
        if state.is_connected() {
            Readiness::Ready
        } else if Reconnect::is_closed(self) {
            Readiness::Unavailable
        } else {
            Readiness::Connecting
        }
    }

    fn close(&self) {
        Reconnect::close(self);
    }
}
