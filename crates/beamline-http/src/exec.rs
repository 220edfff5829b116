//! [`LocalExec`]: hyper's executor for HTTP/2 streams, which runs them inside the
//! connection's own process instead of spawning tokio tasks, so a stream's handler is
//! supervised, bounded and killed with its connection like everything else of it.

use std::future::Future;
use std::sync::Arc;

use crate::ctx::ConnCtx;

/// Queues each HTTP/2 stream for the connection's driver, which polls it beside the
/// connection. hyper calls it from inside the connection's poll (when it accepts a stream),
/// that is, from the driver's own task.
#[derive(Clone, Debug)]
pub(crate) struct LocalExec(pub(crate) Arc<ConnCtx>);

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        self.0.spawn(Box::pin(fut));
    }
}
