//! `Client` as a `tower::Service`, so tower middleware stacks on it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower_service::Service;

use super::{Client, ClientError};

/// The future of a [`Client`] call made through [`tower::Service`](tower_service::Service).
///
/// It owns a clone of the client, so it is `'static`. Dropping it cancels the call exactly
/// as dropping [`Client::call`]'s future does: the in-flight slot is freed at once and a
/// written request's answer is discarded when it comes. That is what makes tower's
/// `Timeout` layer safe on a FIFO connection.
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture<Resp> {
    inner: Pin<Box<dyn Future<Output = Result<Resp, ClientError>> + Send>>,
}

impl<Resp> fmt::Debug for ResponseFuture<Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<Resp> Future for ResponseFuture<Resp> {
    type Output = Result<Resp, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

/// Tower's view of [`Client::call`].
///
/// `poll_ready` is ready at once while the client is open, and fails with
/// [`ClientError::Closed`] once it is closed for good: admission is not decided here but
/// inside the call (the in-flight bound makes callers wait their turn, the offline policy
/// queues or refuses). To shed load instead of queueing, stack tower's `ConcurrencyLimit`
/// and `LoadShed` on top; to bound the whole call, stack `Timeout`.
impl<Req, Resp> Service<Req> for Client<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    type Response = Resp;
    type Error = ClientError;
    type Future = ResponseFuture<Resp>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
        match self.close_reason() {
            Some(reason) => Poll::Ready(Err(ClientError::Closed {
                name: self.name.clone(),
                reason,
            })),
            None => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, request: Req) -> ResponseFuture<Resp> {
        let client = self.clone();
        ResponseFuture {
            inner: Box::pin(async move { client.call(request).await }),
        }
    }
}
