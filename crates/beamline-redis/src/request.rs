//! One request's life: route by slot, follow redirects, retry what may be retried, all
//! within the request's deadline.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use beamline_backoff::{Backoff, BackoffConfig};
use beamline_client::{ClientError, WasSent};
use beamline_resp::{Command, Value};
use tokio::time::{Instant, timeout_at};

use crate::client::Route;
use crate::codec::NodeRequest;
use crate::commands::{changes_connection_state, fan_out, key_positions, spec_of};
use crate::slot::key_slot;
use crate::{ClusterClient, ClusterError, ReadFrom};

/// The retry pace of `TRYAGAIN`, `CLUSTERDOWN`, `LOADING`, `MASTERDOWN` and unreachable
/// nodes: full jitter, 10 ms doubling to 200 ms. The cap bounds how late a waiting request
/// notices that the cluster is whole again (a failover ends with a promotion nobody
/// announces to the client); 200 ms keeps a caller at no more than about ten tries a second
/// meanwhile.
const RETRY_BACKOFF: BackoffConfig =
    BackoffConfig::exponential(Duration::from_millis(10), 2.0, Duration::from_millis(200));

/// What an error reply asks of the client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// `MOVED slot host:port`: the slot lives there now.
    Moved { slot: u16, node: Arc<str> },
    /// `ASK slot host:port`: this once, ask there (with `ASKING`).
    Ask { node: Arc<str> },
    /// `TRYAGAIN`, `CLUSTERDOWN`, `LOADING`, `MASTERDOWN`: not applied; retry later.
    Retry,
    /// Any other error: the caller's answer.
    Answer,
}

/// Reads an error reply from `from` (a `host:port`). A redirect whose address has an empty
/// host (`MOVED 1 :7000`, a node that does not know its own address) is on `from`'s host.
pub(crate) fn verdict(message: &[u8], from: &str) -> Verdict {
    let text = String::from_utf8_lossy(message);
    let mut words = text.split_ascii_whitespace();
    let code = words.next().unwrap_or_default();
    match code {
        "MOVED" | "ASK" => {
            let slot = words.next().and_then(|s| s.parse::<u16>().ok());
            let node = words.next().and_then(|addr| {
                let (host, port) = addr.rsplit_once(':')?;
                let host = if host.is_empty() {
                    from.rsplit_once(':').map_or(from, |(host, _)| host)
                } else {
                    host
                };
                Some(Arc::from(format!("{host}:{port}")))
            });
            match (code, slot, node) {
                ("MOVED", Some(slot), Some(node)) => Verdict::Moved { slot, node },
                ("ASK", Some(_), Some(node)) => Verdict::Ask { node },
                _ => Verdict::Answer,
            }
        }
        "TRYAGAIN" | "CLUSTERDOWN" | "LOADING" | "MASTERDOWN" => Verdict::Retry,
        _ => Verdict::Answer,
    }
}

/// A replica asked in place of its shard's primary, `down`, whose connection failed the
/// request: it takes the write once promoted, and answers `MOVED` back to `down` before.
struct StandIn {
    slot: u16,
    replica: Arc<str>,
    down: Arc<str>,
}

/// One request's state across its attempts.
struct Attempts<'a> {
    client: &'a ClusterClient,
    command: &'a str,
    deadline: Instant,
    /// Whether it may be sent again after its connection was lost.
    resendable: bool,
    redirects: usize,
    /// Whether an attempt may have been applied (a lost connection of a resent request).
    maybe_applied: bool,
    backoff: Option<Backoff>,
    /// What the last failed attempt ran into, for the timeout's message.
    last: String,
}

impl Attempts<'_> {
    fn timeout(&self) -> ClusterError {
        ClusterError::Timeout {
            command: self.command.to_owned(),
            timeout: self.client.inner.config.timeout,
            last: self.last.clone(),
            maybe_applied: self.maybe_applied,
        }
    }

    /// Waits the next jittered delay (never past the deadline).
    async fn pause(&mut self) {
        if self.backoff.is_none() {
            self.backoff = RETRY_BACKOFF.build_seeded(self.client.inner.seed()).ok();
        }
        let delay = self
            .backoff
            .as_mut()
            .and_then(|backoff| backoff.next_delay(std::time::Instant::now()).ok())
            .unwrap_or(Duration::from_millis(100));
        tokio::time::sleep_until((Instant::now() + delay).min(self.deadline)).await;
    }

    /// One more redirect, or the error when there were too many.
    fn redirect(&mut self, to: &Arc<str>) -> Result<(), ClusterError> {
        self.redirects += 1;
        if self.redirects > self.client.inner.config.max_redirects {
            return Err(ClusterError::TooManyRedirects {
                command: self.command.to_owned(),
                redirects: self.redirects - 1,
                last: to.clone(),
                maybe_applied: self.maybe_applied,
            });
        }
        Ok(())
    }
}

impl ClusterClient {
    /// Routes, splits or refuses `command`, then sends it.
    pub(crate) async fn request(
        &self,
        command: Command,
        idempotent: bool,
    ) -> Result<Value, ClusterError> {
        let Some(name) = command.args().next() else {
            return Err(ClusterError::EmptyCommand);
        };
        let name = String::from_utf8_lossy(name).to_ascii_uppercase();
        if changes_connection_state(&command) {
            return Err(ClusterError::ConnectionState { command: name });
        }
        let deadline = Instant::now() + self.inner.config.timeout;
        let spec = spec_of(&command);
        let positions = key_positions(&command, spec.keys);
        let args: Vec<&[u8]> = command.args().collect();
        let slots: Vec<u16> = positions
            .iter()
            .filter_map(|&i| args.get(i))
            .map(|key| key_slot(key))
            .collect();
        let mut distinct = slots.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let resendable = idempotent || spec.read_only;
        let read = spec.read_only && self.inner.config.read_from != ReadFrom::Primary;
        if distinct.len() > 1 {
            return match spec.split {
                Some(merge) => {
                    let parts = crate::split::split(&command, spec.keys, &positions, &slots);
                    drop(args);
                    crate::split::send_parts(self, &name, parts, merge, resendable, read, deadline)
                        .await
                }
                None => Err(ClusterError::CrossSlot {
                    command: name,
                    slots: distinct.len(),
                }),
            };
        }
        drop(args);
        if let Some(merge) = fan_out(&command) {
            return crate::split::to_every_primary(
                self, &name, command, merge, resendable, deadline,
            )
            .await;
        }
        let route = match distinct.first() {
            Some(&slot) if read => Route::Read(slot),
            Some(&slot) => Route::Slot(slot),
            None => Route::AnyPrimary,
        };
        self.send(&name, route, command, resendable, deadline).await
    }

    /// Sends `command` where `route` says until it is answered, fails for good, or
    /// `deadline` passes.
    pub(crate) async fn send(
        &self,
        name: &str,
        route: Route,
        command: Command,
        resendable: bool,
        deadline: Instant,
    ) -> Result<Value, ClusterError> {
        let inner = &self.inner;
        let mut attempt = Attempts {
            client: self,
            command: name,
            deadline,
            resendable,
            redirects: 0,
            maybe_applied: false,
            backoff: None,
            last: "no attempt yet".to_owned(),
        };
        // Where the next attempt goes when a redirect said so, and whether with ASKING.
        let mut redirected: Option<(Arc<str>, bool)> = None;
        // After the slot's primary failed this request: the replica of its shard that the
        // next attempt asks instead (attempts alternate between the two
        // until one answers): a replica takes the write the moment the cluster promotes it,
        // and answers `MOVED` back to the dead primary before (nothing applied), so writes
        // resume with the failover, not with the next refresh.
        let mut stand_in: Option<StandIn> = None;
        // A replica failed this request: PreferReplica reads go to the primary from now on.
        let mut avoid_replicas = false;
        // Bounded by the deadline (every wait below is), and in count as a safeguard.
        for _ in 0..100_000 {
            if Instant::now() >= deadline {
                return Err(attempt.timeout());
            }
            let (node, asking, replica, standing_in) = match (stand_in.take(), redirected.take()) {
                (Some(standing), _) => (standing.replica.clone(), false, false, Some(standing)),
                (None, Some((node, asking))) => (node, asking, false, None),
                (None, None) => match inner.route(&route, avoid_replicas) {
                    Some((node, replica)) => (node, false, replica, None),
                    None => {
                        attempt.last = format!("no node known for {route:?}");
                        inner.refresh_soon();
                        attempt.pause().await;
                        continue;
                    }
                },
            };
            // After this attempt's failure at the slot's primary: a replica to ask next, at
            // once (`None`: wait out the backoff and route again).
            let next_stand_in = |node: &Arc<str>| {
                if asking || replica || standing_in.is_some() {
                    return None;
                }
                let slot = route.slot()?;
                inner.stand_in(slot, node).map(|replica| StandIn {
                    slot,
                    replica,
                    down: node.clone(),
                })
            };
            let registry = if replica {
                &inner.replicas
            } else {
                &inner.nodes
            };
            let client = match timeout_at(deadline, registry.client(&node)).await {
                Ok(Ok(client)) => client,
                Ok(Err(e)) => {
                    avoid_replicas |= replica;
                    attempt.last = format!("{node}: {e}");
                    inner.refresh_soon();
                    stand_in = next_stand_in(&node);
                    if stand_in.is_none() {
                        attempt.pause().await;
                    }
                    continue;
                }
                Err(_) => {
                    attempt.last = format!("{node}: still connecting");
                    continue;
                }
            };
            let request = if asking {
                NodeRequest::Asking(command.clone())
            } else if replica {
                NodeRequest::ReadOnly(command.clone())
            } else {
                NodeRequest::Plain(command.clone())
            };
            let outcome = match timeout_at(deadline, client.call(request)).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    // In flight at the deadline: it may have been written and applied.
                    attempt.maybe_applied = true;
                    attempt.last = format!("{node} did not answer");
                    return Err(attempt.timeout());
                }
            };
            match outcome {
                Ok(Value::Error(message)) => match verdict(&message, &node) {
                    // A stand-in not promoted yet points back at the primary that failed:
                    // not news (and nothing was applied). Wait, then try the primary again.
                    Verdict::Moved { node: to, .. }
                        if standing_in.as_ref().is_some_and(|s| s.down == to) =>
                    {
                        attempt.last = format!("{to} is down and {node} not promoted yet");
                        attempt.pause().await;
                    }
                    Verdict::Moved {
                        slot: moved,
                        node: to,
                    } => {
                        attempt.redirect(&to)?;
                        inner.counters.moved.fetch_add(1, Ordering::Relaxed);
                        inner.moved(moved, &to);
                        inner.refresh_soon();
                        redirected = Some((to, false));
                    }
                    Verdict::Ask { node: to } => {
                        attempt.redirect(&to)?;
                        inner.counters.asked.fetch_add(1, Ordering::Relaxed);
                        redirected = Some((to, true));
                    }
                    Verdict::Retry => {
                        avoid_replicas |= replica;
                        attempt.last = format!("{node}: {}", String::from_utf8_lossy(&message));
                        inner.refresh_soon();
                        attempt.pause().await;
                    }
                    Verdict::Answer => {
                        self.stood_in(standing_in.as_ref(), &node);
                        return Ok(Value::Error(message));
                    }
                },
                Ok(value) => {
                    self.stood_in(standing_in.as_ref(), &node);
                    return Ok(value);
                }
                Err(e) => {
                    avoid_replicas |= replica;
                    self.failed(&mut attempt, &node, e)?;
                    stand_in = next_stand_in(&node);
                    if stand_in.is_none() {
                        attempt.pause().await;
                    }
                }
            }
        }
        Err(attempt.timeout())
    }

    /// A replica asked in place of its shard's primary answered `slot`'s request: it was
    /// promoted, and the shard moves to it in the map (a refresh confirms it).
    fn stood_in(&self, standing_in: Option<&StandIn>, node: &str) {
        if let Some(&StandIn { slot, .. }) = standing_in {
            self.inner.counters.stood_in.fetch_add(1, Ordering::Relaxed);
            self.inner.moved(slot, node);
            self.inner.refresh_soon();
        }
    }

    /// A node's client failed the attempt: `Ok` to try again (after a refresh, which this
    /// asks for), or the request's error.
    fn failed(
        &self,
        attempt: &mut Attempts<'_>,
        node: &Arc<str>,
        e: ClientError,
    ) -> Result<(), ClusterError> {
        let inner = &self.inner;
        let command = attempt.command.to_owned();
        match e {
            // Refused before it reached the connection: no retry makes it encodable.
            e @ ClientError::Request { .. } => Err(ClusterError::Node {
                command,
                node: node.clone(),
                source: Box::new(e),
            }),
            // Written, and the node did not answer in time: it may still apply it.
            ClientError::Timeout { sent: true, .. } => {
                attempt.maybe_applied = true;
                attempt.last = format!("{node} did not answer");
                Err(attempt.timeout())
            }
            e if !e.was_sent() => {
                // Never written (the connection is down, or died first): safe to re-route.
                attempt.last = format!("{node}: {e}");
                inner.refresh_soon();
                Ok(())
            }
            ClientError::ConnectionLost { .. } if attempt.resendable => {
                attempt.maybe_applied = true;
                attempt.last = format!("{node}: {e}");
                inner.counters.resent.fetch_add(1, Ordering::Relaxed);
                inner.refresh_soon();
                Ok(())
            }
            e @ ClientError::ConnectionLost { .. } => {
                inner.refresh_soon();
                Err(ClusterError::ConnectionLost {
                    command,
                    node: node.clone(),
                    source: Box::new(e),
                })
            }
            e => Err(ClusterError::Node {
                command,
                node: node.clone(),
                source: Box::new(e),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_and_retries_are_read_from_error_replies() {
        assert_eq!(
            verdict(b"MOVED 3999 127.0.0.1:6381", "127.0.0.1:6379"),
            Verdict::Moved {
                slot: 3999,
                node: Arc::from("127.0.0.1:6381")
            }
        );
        assert_eq!(
            verdict(b"ASK 3999 :6381", "10.0.0.1:6379"),
            Verdict::Ask {
                node: Arc::from("10.0.0.1:6381")
            }
        );
        assert_eq!(
            verdict(b"CLUSTERDOWN The cluster is down", "a:1"),
            Verdict::Retry
        );
        assert_eq!(verdict(b"TRYAGAIN Multiple keys", "a:1"), Verdict::Retry);
        assert_eq!(verdict(b"LOADING Redis is loading", "a:1"), Verdict::Retry);
        assert_eq!(verdict(b"MASTERDOWN Link is down", "a:1"), Verdict::Retry);
        assert_eq!(verdict(b"WRONGTYPE Operation", "a:1"), Verdict::Answer);
        assert_eq!(verdict(b"MOVED nonsense", "a:1"), Verdict::Answer);
        assert_eq!(verdict(b"", "a:1"), Verdict::Answer);
    }
}
