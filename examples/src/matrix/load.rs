//! The cell's load: callers that each send paced requests with their own payload and
//! deadline, and record how every request ended.

use std::collections::BTreeMap;
use std::time::Duration;

use beamline::pool::CheckoutError;
use beamline::reconnect::SplitMix64;
use beamline::{Client, ClientError};
use bytes::{BufMut, Bytes, BytesMut};
use tokio::time::{Instant, MissedTickBehavior};

/// A request's bytes: `caller (u16) | seq (u32) | body`, the body seeded by both, so every
/// request of a cell is unique and an answer names the caller it belongs to.
#[derive(Debug)]
pub(crate) struct Payload;

impl Payload {
    const HEADER: usize = 6;

    /// The payload of request `seq` of `caller`: 16 to 1,024 bytes of body.
    pub(crate) fn make(caller: u16, seq: u32, rng: &mut SplitMix64) -> Bytes {
        let len = 16 + (rng.next() % 1009) as usize;
        let mut buf = BytesMut::with_capacity(Self::HEADER + len);
        buf.put_u16(caller);
        buf.put_u32(seq);
        while buf.len() < Self::HEADER + len {
            let word = rng.next().to_le_bytes();
            let take = (Self::HEADER + len - buf.len()).min(word.len());
            buf.put_slice(&word[..take]);
        }
        buf.freeze()
    }

    /// The caller a payload belongs to.
    pub(crate) fn caller_of(payload: &[u8]) -> Option<u16> {
        Some(u16::from_be_bytes(payload.get(..2)?.try_into().ok()?))
    }

    /// The payload's sequence number.
    pub(crate) fn seq_of(payload: &[u8]) -> Option<u32> {
        Some(u32::from_be_bytes(payload.get(2..6)?.try_into().ok()?))
    }
}

/// One successful request: when it started (from the cell's epoch) and how long it took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    pub(crate) start: Duration,
    pub(crate) latency: Duration,
}

/// What one caller (or, merged, all of them) saw.
#[derive(Debug, Default)]
pub(crate) struct Log {
    pub(crate) requests: u64,
    pub(crate) ok: u64,
    /// Typed errors by kind ([`kind`]).
    pub(crate) errors: BTreeMap<&'static str, u64>,
    /// Failed requests (any kind) with when they started, for the fault's evidence.
    pub(crate) failed_at: Vec<Duration>,
    pub(crate) samples: Vec<Sample>,
    /// Broken invariants, each said in a sentence.
    pub(crate) violations: Vec<String>,
    /// The cluster cells: from the fault to the end of the first successful write on the
    /// slots it affected (the report's `recovery_ms`); `None` elsewhere.
    pub(crate) recovery: Option<Duration>,
}

impl Log {
    /// Adds `other` into `self`.
    pub(crate) fn merge(&mut self, other: Log) {
        self.requests += other.requests;
        self.ok += other.ok;
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
        self.failed_at.extend(other.failed_at);
        self.samples.extend(other.samples);
        self.violations.extend(other.violations);
        self.recovery = match (self.recovery, other.recovery) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// How long one caller sends, and how strictly its requests are judged.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Phase {
    /// Until `end`, while the fault comes and goes: a typed error a fault can cause is
    /// counted, not a failure.
    UnderFault {
        /// When the caller stops starting requests.
        end: Instant,
    },
    /// `count` requests after the fault healed, every one of which must succeed.
    AfterHeal {
        /// How many requests.
        count: u32,
    },
}

/// Everything a caller needs besides its client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallerPlan {
    pub(crate) caller: u16,
    pub(crate) seed: u64,
    /// The first sequence number (phases use disjoint ranges).
    pub(crate) first_seq: u32,
    pub(crate) phase: Phase,
    /// The time between the starts of two requests (a request slower than this delays the
    /// next one; nothing bursts to catch up).
    pub(crate) pace: Duration,
    /// Each request must resolve within this, answer or error.
    pub(crate) deadline: Duration,
    /// Whether any error at all is a failure (no fault in this cell).
    pub(crate) errors_forbidden: bool,
    /// What the durations in the log are measured from.
    pub(crate) epoch: Instant,
}

/// Runs one caller's requests, one at a time, and returns what it saw.
pub(crate) async fn caller(client: Client<Bytes, Bytes>, plan: CallerPlan) -> Log {
    let mut rng = SplitMix64::new(plan.seed ^ (u64::from(plan.caller) << 32));
    let mut log = Log::default();
    let mut ticks = tokio::time::interval(plan.pace);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut seq = plan.first_seq;
    loop {
        ticks.tick().await;
        let more = match plan.phase {
            Phase::UnderFault { end } => Instant::now() < end,
            Phase::AfterHeal { count } => seq - plan.first_seq < count,
        };
        if !more {
            return log;
        }
        let payload = Payload::make(plan.caller, seq, &mut rng);
        let started = Instant::now();
        let outcome = tokio::time::timeout(plan.deadline, client.call(payload.clone())).await;
        let latency = started.elapsed();
        let start = started.duration_since(plan.epoch);
        log.requests += 1;
        let who = format!("caller {} request {seq}", plan.caller);
        match outcome {
            Err(_) => {
                log.failed_at.push(start);
                log.violations.push(format!(
                    "{who} neither answered nor failed within its {:?} deadline",
                    plan.deadline
                ));
            }
            Ok(Ok(reply)) if reply == payload => {
                log.ok += 1;
                log.samples.push(Sample { start, latency });
            }
            Ok(Ok(reply)) => {
                log.failed_at.push(start);
                log.violations.push(format!(
                    "{who} got a reply that is not its own ({} bytes, caller {:?} request {:?})",
                    reply.len(),
                    Payload::caller_of(&reply),
                    Payload::seq_of(&reply)
                ));
            }
            Ok(Err(e)) => {
                let kind = kind(&e);
                *log.errors.entry(kind).or_default() += 1;
                log.failed_at.push(start);
                if matches!(plan.phase, Phase::AfterHeal { .. }) {
                    log.violations
                        .push(format!("{who} failed after the fault healed: {e}"));
                } else if plan.errors_forbidden {
                    log.violations
                        .push(format!("{who} failed with no fault in force: {e}"));
                } else if !a_fault_can_cause(kind) {
                    log.violations
                        .push(format!("{who} failed in a way no fault explains: {e}"));
                }
            }
        }
        seq += 1;
    }
}

/// A short name for each way a call can fail, used to count errors by kind.
pub(crate) fn kind(e: &ClientError) -> &'static str {
    match e {
        ClientError::Disconnected { .. } => "disconnected",
        ClientError::QueueFull { .. } => "queue_full",
        ClientError::OfflineTimeout { .. } => "offline_timeout",
        ClientError::NotSent { .. } => "not_sent",
        ClientError::ConnectionLost { .. } => "connection_lost",
        ClientError::Timeout { .. } => "timeout",
        ClientError::Remote { .. } => "remote",
        ClientError::Cancelled { .. } => "cancelled",
        ClientError::Request { .. } => "request",
        ClientError::Checkout {
            source: CheckoutError::Connect(_),
            ..
        } => "checkout_connect",
        ClientError::Checkout {
            source: CheckoutError::Timeout { .. },
            ..
        } => "checkout_timeout",
        ClientError::Checkout { .. } => "checkout",
        ClientError::Closed { .. } => "closed",
        _ => "other",
    }
}

/// Whether a network fault explains an error of this kind. An echo server never answers
/// with an error frame nor cancels, payloads are far below the frame limit, and a client
/// whose backoff has no limit never closes by itself: those kinds mean a bug.
pub(crate) fn a_fault_can_cause(kind: &str) -> bool {
    matches!(
        kind,
        "disconnected"
            | "queue_full"
            | "offline_timeout"
            | "not_sent"
            | "connection_lost"
            | "timeout"
            | "checkout_connect"
            | "checkout_timeout"
    )
}

/// The `p`-th percentile (nearest rank) of `sorted`, in milliseconds; 0 when empty.
pub(crate) fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn payloads_are_unique_and_name_their_caller() {
        let mut rng = SplitMix64::new(7);
        let a = Payload::make(3, 41, &mut rng);
        let b = Payload::make(3, 42, &mut rng);
        assert_ne!(a, b);
        assert!((6 + 16..=6 + 1024).contains(&a.len()), "{}", a.len());
        assert_eq!(Payload::caller_of(&a), Some(3));
        assert_eq!(Payload::seq_of(&b), Some(42));
        assert_eq!(Payload::seq_of(b"abc"), None);
        assert_eq!(Payload::caller_of(b"a"), None);
        // The same seed makes the same bytes: a cell replays.
        assert_eq!(Payload::make(3, 41, &mut SplitMix64::new(7)), a);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let ms = |n: u64| Duration::from_millis(n);
        let sorted: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile_ms(&sorted, 50.0), 50.0);
        assert_eq!(percentile_ms(&sorted, 99.0), 99.0);
        assert_eq!(percentile_ms(&sorted, 100.0), 100.0);
        assert_eq!(percentile_ms(&[ms(5)], 99.0), 5.0);
        assert_eq!(percentile_ms(&[], 50.0), 0.0);
    }

    #[test]
    fn error_kinds_split_faults_from_bugs() {
        let name: Arc<str> = Arc::from("c");
        let cases = [
            (
                ClientError::Disconnected { name: name.clone() },
                "disconnected",
                true,
            ),
            (
                ClientError::Timeout {
                    name: name.clone(),
                    sent: true,
                },
                "timeout",
                true,
            ),
            (
                ClientError::Remote {
                    name: name.clone(),
                    payload: Bytes::new(),
                },
                "remote",
                false,
            ),
            (
                ClientError::Cancelled { name: name.clone() },
                "cancelled",
                false,
            ),
            (
                ClientError::Closed {
                    name,
                    reason: beamline::reconnect::CloseReason::Requested,
                },
                "closed",
                false,
            ),
        ];
        for (e, want, fault) in cases {
            assert_eq!(kind(&e), want);
            assert_eq!(a_fault_can_cause(want), fault, "{want}");
        }
    }

    #[test]
    fn logs_merge_counts_and_evidence() {
        let mut a = Log {
            requests: 2,
            ok: 1,
            ..Log::default()
        };
        a.errors.insert("timeout", 1);
        let mut b = Log {
            requests: 3,
            ok: 2,
            ..Log::default()
        };
        b.errors.insert("timeout", 1);
        b.errors.insert("not_sent", 1);
        b.violations.push("x".into());
        a.merge(b);
        assert_eq!((a.requests, a.ok), (5, 3));
        assert_eq!(a.errors["timeout"], 2);
        assert_eq!(a.errors["not_sent"], 1);
        assert_eq!(a.violations, ["x"]);
    }
}
