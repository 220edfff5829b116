//! Where a request goes (straight to the live connection, into the offline queue, or refused)
//! and how its one send went.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::OfflinePolicy;
use super::ReconnectError;
use super::progress::{Live, Started};
use super::{Refusal, Shared, Waiter};
use crate::Connection;

/// Where a request goes.
pub(super) enum Route<C: Connection> {
    Direct(Arc<Live<C>>, C::Request),
    Queued {
        ticket: u64,
        reply: oneshot::Receiver<Result<Started<C>, Refusal>>,
        deadline: Duration,
    },
    Refused(ReconnectError<C::Error>),
}

/// How one send went.
pub(super) enum Outcome<C: Connection> {
    Response(C::Response),
    /// Never reached a connection.
    Refused(ReconnectError<C::Error>),
    /// The connection died under it.
    Lost {
        error: C::Error,
        sent: bool,
    },
    /// The connection failed it and stayed up.
    Failed {
        error: C::Error,
        sent: bool,
    },
}

/// Takes a queued request out of the queue if its caller goes away before it is handed over.
pub(super) struct TicketGuard<'a, C: Connection> {
    pub(super) shared: &'a Shared<C>,
    pub(super) ticket: Option<u64>,
}

impl<C: Connection> Drop for TicketGuard<'_, C> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket {
            self.shared.remove_queued(ticket);
        }
    }
}

pub(super) fn lost<E>(name: Arc<str>, source: E, sent: bool) -> ReconnectError<E> {
    if sent {
        ReconnectError::ConnectionLost { name, source }
    } else {
        ReconnectError::NotSent { name, source }
    }
}

/// Decides, under the lock, where a request goes.
pub(super) fn route<C: Connection>(shared: &Shared<C>, request: C::Request) -> Route<C> {
    let name = || shared.name.clone();
    let mut inner = shared.inner();
    if let Some(reason) = &inner.closed {
        return Route::Refused(ReconnectError::Closed {
            name: name(),
            reason: reason.clone(),
        });
    }
    // Straight to the connection only when nothing queued is waiting to go first (nor
    // being started by the driver).
    let live = inner
        .live
        .as_ref()
        .filter(|l| !inner.installing && inner.queue.is_empty() && !l.conn.is_closed());
    if let Some(live) = live {
        return Route::Direct(live.clone(), request);
    }
    match shared.offline {
        OfflinePolicy::FailFast => Route::Refused(ReconnectError::Disconnected { name: name() }),
        OfflinePolicy::Queue { max, deadline } => {
            if inner.queue.len() >= max {
                return Route::Refused(ReconnectError::QueueFull { name: name(), max });
            }
            let ticket = inner.next_ticket;
            inner.next_ticket += 1;
            let (reply, rx) = oneshot::channel();
            inner.queue.push_back(Waiter {
                ticket,
                request,
                reply,
            });
            Route::Queued {
                ticket,
                reply: rx,
                deadline,
            }
        }
    }
}

/// Waits for the driver to start a queued request, up to its deadline.
pub(super) async fn wait_queued<C: Connection>(
    shared: &Shared<C>,
    ticket: u64,
    mut reply: oneshot::Receiver<Result<Started<C>, Refusal>>,
    deadline: Duration,
) -> Result<Started<C>, ReconnectError<C::Error>> {
    let mut guard = TicketGuard {
        shared,
        ticket: Some(ticket),
    };
    let handed = match tokio::time::timeout(deadline, &mut reply).await {
        Ok(handed) => handed,
        Err(_) => {
            if shared.remove_queued(ticket) {
                guard.ticket = None;
                return Err(ReconnectError::Timeout {
                    name: shared.name.clone(),
                    deadline,
                });
            }
            // The driver took it in the same instant and is handing it over: its call has
            // started, so waiting for it is the only honest answer.
            (&mut reply).await
        }
    };
    guard.ticket = None;
    match handed {
        Ok(Ok(started)) => Ok(started),
        Ok(Err(Refusal::Closed(reason))) => Err(ReconnectError::Closed {
            name: shared.name.clone(),
            reason,
        }),
        Ok(Err(Refusal::Panicked(message))) => Err(ReconnectError::Panicked {
            name: shared.name.clone(),
            message,
        }),
        // The driver went away without answering (runtime shutdown).
        Err(_) => Err(ReconnectError::Closed {
            name: shared.name.clone(),
            reason: shared.close_reason(),
        }),
    }
}
