//! Topology refresh: one task per client, single-flight by construction, rate-limited,
//! periodic, asking several nodes and keeping the view most of them report.

use std::sync::{Arc, Weak};
use std::time::Duration;

use beamline_resp::{Command, RespCodec};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::codec::Framed;

use crate::client::Inner;
use crate::topology::{SlotMap, majority};

/// A node to ask: its announced name, and where to dial it.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub(crate) node: Arc<str>,
    pub(crate) dial: String,
}

/// Asks `candidate` for `CLUSTER SLOTS` on a connection of its own (so a refresh never
/// waits behind requests on the node's FIFO connection, nor on a node client's backoff),
/// within `timeout`.
pub(crate) async fn fetch(candidate: &Candidate, timeout: Duration) -> Result<SlotMap, String> {
    let node = &candidate.node;
    let exchange = async {
        let stream = TcpStream::connect(candidate.dial.as_str())
            .await
            .map_err(|e| format!("{node}: connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let mut framed = Framed::new(stream, RespCodec::new());
        framed
            .send(Command::new("CLUSTER").arg("SLOTS"))
            .await
            .map_err(|e| format!("{node}: write: {e}"))?;
        match framed.next().await {
            Some(Ok(reply)) => SlotMap::from_cluster_slots(&reply, node),
            Some(Err(e)) => Err(format!("{node}: read: {e}")),
            None => Err(format!("{node}: closed the connection")),
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(map)) if map.is_empty() => Err(format!("{node}: serves no slot yet")),
        Ok(result) => result,
        Err(_) => Err(format!("{node}: no answer within {timeout:?}")),
    }
}

/// Asks the candidates, `fanout` at a time in parallel, until a round gets at least one
/// usable answer or `deadline` passes; keeps the view most of that round's answers agree on.
///
/// # Errors
/// Every failure, when no round got an answer.
pub(crate) async fn discover(
    candidates: &[Candidate],
    fanout: usize,
    round_timeout: Duration,
    deadline: Instant,
) -> Result<SlotMap, Vec<String>> {
    let mut errors = Vec::new();
    for round in candidates.chunks(fanout.max(1)) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            errors.push("the refresh's deadline passed".to_owned());
            break;
        }
        let timeout = round_timeout.min(left);
        let answers = futures::future::join_all(round.iter().map(|c| fetch(c, timeout))).await;
        let mut views = Vec::new();
        for answer in answers {
            match answer {
                Ok(view) => views.push(view),
                Err(e) => errors.push(e),
            }
        }
        if let Some(view) = majority(views) {
            return Ok(view);
        }
    }
    Err(errors)
}

/// The refresh task's loop: waits for a trigger (a redirect, a lost node) or the periodic
/// interval, keeps at least `min_interval` between refreshes (triggers meanwhile coalesce
/// into the one stored `Notify` permit), refreshes, repeats. It holds the client only while
/// refreshing, so dropping the last handle ends it (the handle's drop also aborts it).
pub(crate) async fn run(
    inner: Weak<Inner>,
    trigger: Arc<Notify>,
    interval: Duration,
    min_interval: Duration,
) {
    let mut last = Instant::now();
    loop {
        tokio::select! {
            () = trigger.notified() => {}
            () = tokio::time::sleep(interval) => {}
        }
        let wait = min_interval.saturating_sub(last.elapsed());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        last = Instant::now();
        inner.refresh().await;
    }
}
