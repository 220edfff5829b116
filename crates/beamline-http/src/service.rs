//! [`ConnService`]: the user's `tower::Service` as hyper calls it on one connection — each
//! request counted, marked busy for the read timeout while it is answered, its panics turned
//! into a `500` — and [`ResponseBody`], which carries those marks until the response's last
//! byte and catches a panicking body.

use std::error::Error as StdError;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use beamline_failure::panic_message;
use beamline_server::Busy;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, Version, header};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project::pin_project;
use tower_service::Service;

use crate::ctx::ConnCtx;

/// The error type hyper takes from services and bodies.
pub(crate) type BoxError = Box<dyn StdError + Send + Sync>;

/// The user's service on one connection.
#[derive(Debug)]
pub(crate) struct ConnService<S> {
    inner: S,
    ctx: Arc<ConnCtx>,
}

impl<S> ConnService<S> {
    pub(crate) fn new(inner: S, ctx: Arc<ConnCtx>) -> Self {
        Self { inner, ctx }
    }
}

impl<S, B> hyper::service::Service<Request<Incoming>> for ConnService<S>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone,
    B: Body,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<B>>;
    type Error = S::Error;
    type Future = RequestFuture<S, B>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        self.ctx.request_started();
        // A request received whole waits on the server from now on; one with a body still
        // coming waits on its peer until the service answers (the read timeout keeps running
        // while the body arrives).
        let busy = req.body().is_end_stream().then(|| self.ctx.activity.busy());
        let http1 = req.version() < Version::HTTP_2;
        if !http1 && self.ctx.requests().0 == 1 {
            self.ctx.http2();
        }
        let (method, uri) = (req.method().clone(), req.uri().clone());
        req.extensions_mut().insert(self.ctx.conn.clone());
        RequestFuture {
            state: State::Ready {
                service: self.inner.clone(),
                req,
            },
            in_flight: Some(InFlight(self.ctx.clone())),
            busy,
            http1,
            method,
            uri,
            _body: PhantomData,
        }
    }
}

/// A request in flight: ends it (for the keep-alive timer) when dropped, with the response's
/// last byte or when the request is given up.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<ConnCtx>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

// The request waits inline until the service is ready: boxing it would cost an allocation per
// request, and the future is pinned in place (never moved), so its size costs nothing more.
#[allow(clippy::large_enum_variant)]
#[pin_project(project = StateProj, project_replace = StateOwned)]
enum State<S: Service<Request<Incoming>>> {
    /// Waiting for the service to be ready (tower's `poll_ready` before `call`).
    Ready {
        service: S,
        req: Request<Incoming>,
    },
    Called {
        #[pin]
        fut: S::Future,
    },
    Done,
}

/// One request's answer: the service's future, with its panics caught.
#[pin_project]
pub(crate) struct RequestFuture<S: Service<Request<Incoming>>, B> {
    #[pin]
    state: State<S>,
    in_flight: Option<InFlight>,
    busy: Option<Busy>,
    http1: bool,
    method: Method,
    uri: Uri,
    _body: PhantomData<fn() -> B>,
}

fn poll_state<S: Service<Request<Incoming>>>(
    mut state: Pin<&mut State<S>>,
    cx: &mut Context<'_>,
) -> Poll<Result<S::Response, S::Error>> {
    loop {
        match state.as_mut().project() {
            StateProj::Ready { service, .. } => {
                if let Err(e) = ready!(service.poll_ready(cx)) {
                    return Poll::Ready(Err(e));
                }
                if let StateOwned::Ready { mut service, req } =
                    state.as_mut().project_replace(State::Done)
                {
                    let fut = service.call(req);
                    state.set(State::Called { fut });
                }
            }
            StateProj::Called { fut } => return fut.poll(cx),
            // hyper does not poll a finished request again.
            StateProj::Done => return Poll::Pending,
        }
    }
}

impl<S, B> Future for RequestFuture<S, B>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
    B: Body,
{
    type Output = Result<Response<ResponseBody<B>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let polled = catch_unwind(AssertUnwindSafe(|| poll_state(this.state.as_mut(), cx)));
        let response = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(Err(e))) => {
                this.state.set(State::Done);
                return Poll::Ready(Err(e));
            }
            Ok(Poll::Ready(Ok(response))) => {
                this.state.set(State::Done);
                Some(response)
            }
            Err(payload) => {
                // Dropping what panicked may panic again: that one is caught too.
                let _ = catch_unwind(AssertUnwindSafe(|| this.state.set(State::Done)));
                if let Some(InFlight(ctx)) = this.in_flight.as_ref() {
                    ctx.stats.panic();
                    tracing::error!(
                        conn_id = ctx.conn.id().as_u64(),
                        method = %this.method,
                        uri = %this.uri,
                        error = %panic_message(&*payload),
                        "request handler panicked; answered 500"
                    );
                }
                None
            }
        };
        let Some(in_flight) = this.in_flight.take() else {
            return Poll::Pending;
        };
        let ctx = &in_flight.0;
        let busy = this.busy.take().or_else(|| Some(ctx.activity.busy()));
        Poll::Ready(Ok(match response {
            Some(response) => {
                if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                    ctx.upgrading();
                    ctx.stats.upgrade();
                }
                response.map(|body| ResponseBody::new(Some(body), in_flight, busy))
            }
            None => {
                let mut response = Response::new(ResponseBody::new(None, in_flight, busy));
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                if *this.http1 {
                    // What panicked may have left anything half-done: no next request here.
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                response
            }
        }))
    }
}

/// A response body that ends its request when dropped (after its last byte, or when hyper
/// gives it up) and turns a panic while producing a frame into an error that cuts the
/// response. No inner body: the empty body of a `500` for a panic.
#[pin_project]
#[derive(Debug)]
pub(crate) struct ResponseBody<B> {
    #[pin]
    inner: Option<B>,
    in_flight: InFlight,
    _busy: Option<Busy>,
}

impl<B> ResponseBody<B> {
    fn new(inner: Option<B>, in_flight: InFlight, busy: Option<Busy>) -> Self {
        Self {
            inner,
            in_flight,
            _busy: busy,
        }
    }
}

/// The error a response body that panicked ends with.
#[derive(Debug, thiserror::Error)]
#[error("the response body panicked: {0}")]
struct BodyPanicked(Arc<str>);

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, BoxError>>> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        match catch_unwind(AssertUnwindSafe(|| inner.poll_frame(cx))) {
            Ok(polled) => polled.map(|frame| frame.map(|r| r.map_err(Into::into))),
            Err(payload) => {
                let _ = catch_unwind(AssertUnwindSafe(|| this.inner.set(None)));
                let ctx = &this.in_flight.0;
                let message = panic_message(&*payload);
                ctx.stats.panic();
                tracing::error!(
                    conn_id = ctx.conn.id().as_u64(),
                    error = %message,
                    "response body panicked; response cut"
                );
                Poll::Ready(Some(Err(Box::new(BodyPanicked(message)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}
