//! One call: pick, send, and on a retryable failure pick another endpoint within the budget;
//! all of it under the call's deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{BalanceError, Balanced, Member, Shared, now, readiness};
use crate::WasSent;
use crate::core::{EndpointId, Pick};
use crate::endpoint::{Endpoint, EndpointError, Failure};
use crate::health::Outcome;

/// How often a call waiting for an endpoint looks again, besides being woken by a change
/// (an ejection that ends, a client that reconnects on its own, wake no one).
const LOOK_AGAIN: Duration = Duration::from_millis(50);

/// What a call has done so far, read after its deadline cut it short.
#[derive(Debug, Default)]
struct Progress {
    attempts: u32,
    sent: bool,
}

/// A request in flight on one endpoint: completed exactly once. Dropped before it ends: a
/// [`Failure::Timeout`] of the endpoint if the call's deadline has passed (a silent endpoint
/// must look slow and be ejected, not be picked again as if nothing happened), otherwise
/// `Cancelled` (its caller gave up: nothing is known about the endpoint).
struct InFlight<'a, E: Endpoint> {
    shared: &'a Shared<E>,
    pick: Option<Pick>,
    deadline: Option<Instant>,
}

impl<E: Endpoint> InFlight<'_, E> {
    fn complete(mut self, outcome: Outcome) {
        if let Some(pick) = self.pick.take() {
            finish(self.shared, pick, outcome);
        }
    }
}

impl<E: Endpoint> Drop for InFlight<'_, E> {
    fn drop(&mut self) {
        if let Some(pick) = self.pick.take() {
            let outcome = match self.deadline {
                Some(deadline) if Instant::now() >= deadline => Outcome::Failed(Failure::Timeout),
                _ => Outcome::Cancelled,
            };
            finish(self.shared, pick, outcome);
        }
    }
}

/// Completes `pick` in the core; a drained endpoint whose last request this was is closed
/// (outside the lock).
fn finish<E: Endpoint>(shared: &Shared<E>, pick: Pick, outcome: Outcome) {
    let drained = shared.table().core.complete(pick, outcome, now());
    if let Some(member) = drained {
        tracing::info!(
            target: "beamline_balance",
            balancer = %shared.name, endpoint = %member.addr, "endpoint drained: closing it"
        );
        member.close();
    }
}

impl<E> Balanced<E>
where
    E: Endpoint,
    E::Request: Clone,
{
    /// Sends `request` to the less loaded of two endpoints and waits for its answer. If the
    /// attempt fails without the request having been written (connecting failed, the
    /// connection died first), it is retried on an endpoint not tried yet, within the
    /// retry budget. Never sent twice.
    ///
    /// Dropping the returned future cancels the call (the attempt under way is dropped,
    /// which cancels it at its endpoint).
    ///
    /// # Errors
    /// A [`BalanceError`]: the last attempt's own error when it is not retried, no endpoint
    /// within the deadline, the deadline, or a closed client. [`WasSent::was_sent`]
    /// says whether any attempt may have been delivered.
    pub async fn call(&self, request: E::Request) -> Result<E::Response, BalanceError<E::Error>> {
        self.send(request, false).await
    }

    /// As [`call`](Self::call), and a request whose connection was lost after it was written
    /// is retried too (on another endpoint, within the budget): use it only for requests
    /// that are safe to apply twice.
    ///
    /// # Errors
    /// As [`call`](Self::call); `was_sent` is `true` if any attempt may have been delivered.
    pub async fn call_idempotent(
        &self,
        request: E::Request,
    ) -> Result<E::Response, BalanceError<E::Error>> {
        self.send(request, true).await
    }

    async fn send(
        &self,
        request: E::Request,
        idempotent: bool,
    ) -> Result<E::Response, BalanceError<E::Error>> {
        let shared = &*self.shared;
        if shared.is_closed() {
            return Err(BalanceError::Closed {
                name: shared.name.clone(),
            });
        }
        let mut progress = Progress::default();
        let Some(timeout) = shared.timeout else {
            return attempts(shared, request, idempotent, None, &mut progress).await;
        };
        let deadline = Instant::now() + timeout;
        let run = attempts(shared, request, idempotent, Some(deadline), &mut progress);
        match tokio::time::timeout_at(deadline, run).await {
            Ok(result) => result,
            Err(_) => Err(BalanceError::Timeout {
                name: shared.name.clone(),
                timeout,
                attempts: progress.attempts,
                sent: progress.sent,
            }),
        }
    }
}

/// The attempts of one call. `progress` is kept up to date so the deadline's error can say
/// what happened; an attempt under way counts as maybe sent until it ends.
async fn attempts<E>(
    shared: &Shared<E>,
    request: E::Request,
    idempotent: bool,
    deadline: Option<Instant>,
    progress: &mut Progress,
) -> Result<E::Response, BalanceError<E::Error>>
where
    E: Endpoint,
    E::Request: Clone,
{
    let mut tried: Vec<EndpointId> = Vec::new();
    let mut sent_before = false;
    let (mut pick, mut member) = first_pick(shared, deadline).await?;
    loop {
        progress.attempts += 1;
        // The attempt under way may be cut by the deadline: maybe sent until it ends.
        progress.sent = true;
        let in_flight = InFlight {
            shared,
            pick: Some(pick),
            deadline,
        };
        let Some(client) = member.client.get() else {
            // Readiness said it had a client, and a made client is never taken back.
            in_flight.complete(Outcome::Cancelled);
            progress.sent = sent_before;
            return Err(no_endpoint(shared));
        };
        let error = match client.call(request.clone()).await {
            Ok(response) => {
                in_flight.complete(Outcome::Success);
                return Ok(response);
            }
            Err(error) => error,
        };
        let failure = error.failure();
        let sent = error.was_sent();
        in_flight.complete(Outcome::Failed(failure));
        sent_before |= sent;
        progress.sent = sent_before;
        let retryable = match failure {
            Failure::Rejected => false,
            Failure::ConnectionLost => !sent || idempotent,
            _ => !sent,
        };
        if !retryable {
            return Err(endpoint_error(shared, member.addr, progress, error));
        }
        tried.push(pick.id());
        match retry_pick(shared, &tried) {
            Some(next) => {
                tracing::debug!(
                    target: "beamline_balance",
                    balancer = %shared.name, endpoint = %member.addr, ?failure,
                    "attempt failed: retrying on another endpoint"
                );
                (pick, member) = next;
            }
            None => return Err(endpoint_error(shared, member.addr, progress, error)),
        }
    }
}

/// The endpoint of a retry: one not in `tried`, if the budget holds a retry.
fn retry_pick<E: Endpoint>(
    shared: &Shared<E>,
    tried: &[EndpointId],
) -> Option<(Pick, Arc<Member<E>>)> {
    let mut table = shared.table();
    let now = now();
    match table.core.retry(now, tried, readiness) {
        Ok(pick) => match table.core.get(pick.id()).cloned() {
            Some(member) => Some((pick, member)),
            None => {
                let _ = table.core.complete(pick, Outcome::Cancelled, now);
                None
            }
        },
        Err(why) => {
            tracing::debug!(
                target: "beamline_balance",
                balancer = %shared.name, reason = ?why,
                "not retried: the caller gets the original error"
            );
            None
        }
    }
}

fn endpoint_error<E: Endpoint>(
    shared: &Shared<E>,
    endpoint: SocketAddr,
    progress: &Progress,
    source: E::Error,
) -> BalanceError<E::Error> {
    BalanceError::Endpoint {
        name: shared.name.clone(),
        endpoint,
        attempts: progress.attempts,
        sent: progress.sent,
        source,
    }
}

fn no_endpoint<E: Endpoint>(shared: &Shared<E>) -> BalanceError<E::Error> {
    BalanceError::NoEndpoint {
        name: shared.name.clone(),
        known: shared.table().core.len(),
    }
}

/// A first attempt's endpoint, if one can take it now.
fn try_pick<E: Endpoint>(shared: &Shared<E>) -> Option<(Pick, Arc<Member<E>>)> {
    let mut table = shared.table();
    let now = now();
    let pick = table.core.pick(now, readiness)?;
    if let Some(member) = table.core.get(pick.id()).cloned() {
        return Some((pick, member));
    }
    let _ = table.core.complete(pick, Outcome::Cancelled, now);
    None
}

/// The first attempt's endpoint: picked at once if any can take it, otherwise waited for
/// (woken by discovery and by clients being made, looking again every [`LOOK_AGAIN`])
/// until the deadline; at once [`BalanceError::NoEndpoint`] without one.
async fn first_pick<E: Endpoint>(
    shared: &Shared<E>,
    deadline: Option<Instant>,
) -> Result<(Pick, Arc<Member<E>>), BalanceError<E::Error>> {
    loop {
        if shared.is_closed() {
            return Err(BalanceError::Closed {
                name: shared.name.clone(),
            });
        }
        // The common case picks at once, without registering as a waiter (a lock of its
        // own, taken twice, on every call).
        if let Some(picked) = try_pick(shared) {
            return Ok(picked);
        }
        let changed = shared.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        // A change between the first look and `enable` would be missed: look again.
        if let Some(picked) = try_pick(shared) {
            return Ok(picked);
        }
        let gave_up = match deadline {
            None => true,
            Some(deadline) => {
                let look_again = (Instant::now() + LOOK_AGAIN).min(deadline);
                let _ = tokio::time::timeout_at(look_again, changed).await;
                Instant::now() >= deadline
            }
        };
        if gave_up {
            // A request that found no endpoint still earns the budget its share.
            shared.table().core.unpicked(now());
            return Err(no_endpoint(shared));
        }
    }
}
