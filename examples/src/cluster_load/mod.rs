//! Checked load on a Redis Cluster through beamline-redis's `ClusterClient`: what the
//! matrix's `cluster/*` cells and the cluster demo both drive and judge.
//!
//! Each caller sends, in turn, three kinds of request on keys of its own (spread over every
//! slot, or all in one slot with a hash tag):
//!
//! - `SET k v`, with `call_idempotent` (resent after a lost connection), `v` unique to the
//!   request;
//! - `GET k` of the key its previous `SET` wrote (read-only: resent too), whose answer must
//!   be that `v`: a reply meant for another caller cannot pass;
//! - `INCRBY k n` on a key only this request uses, `n` unique to the request, with `call`
//!   (never resent): its answer must be `n`, and the key read back afterwards must hold `n`
//!   (applied once) or nothing, as its result says.
//!
//! Every request ends within its deadline with its own reply or a typed `ClusterError`,
//! counted by kind ([`error_kind`]). What depends on the fault (a write acknowledged by a
//! primary killed before it replicated may be lost: Redis replicates asynchronously) is
//! decided after the run, by [`verify_reads`] and [`verify_incrs`] with the cell's `lossy`
//! rule.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use beamline::resp::{Command, Value};
use beamline_redis::{ClusterClient, ClusterError, key_slot};
use tokio::time::{Instant, MissedTickBehavior};

/// The three requests a caller cycles through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OpKind {
    /// `SET k v` (declared idempotent).
    Set,
    /// `GET k` of the caller's previous `SET`.
    Get,
    /// `INCRBY k n` on a key of its own (not idempotent).
    Incr,
}

impl OpKind {
    /// Whether the request writes (what "writes resume" counts).
    pub fn writes(self) -> bool {
        matches!(self, OpKind::Set | OpKind::Incr)
    }
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Its own reply.
    Ok,
    /// A typed error of this kind ([`error_kind`]).
    Failed {
        /// The error's kind.
        kind: &'static str,
        /// [`ClusterError::may_have_been_applied`].
        maybe_applied: bool,
    },
    /// A reply that is not its own, a Redis error reply, or no end within the deadline: a
    /// broken invariant (the caller's violations say which).
    Broken,
}

/// One request, in a few bytes (a demo makes a million of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Which request.
    pub kind: OpKind,
    /// Its key's slot.
    pub slot: u16,
    /// When it started, from the run's epoch.
    pub started: Duration,
    /// How long it took to end.
    pub took: Duration,
    /// How it ended.
    pub end: End,
}

impl Outcome {
    /// When it ended, from the run's epoch.
    pub fn ended(&self) -> Duration {
        self.started + self.took
    }
}

/// What an earlier request left behind, for a later check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// It answered: it was applied (unless a failover lost it).
    Ok,
    /// It failed and may have been applied.
    Maybe,
    /// It failed and certainly was not applied.
    No,
}

impl Applied {
    fn of(result: &Result<Value, ClusterError>) -> Applied {
        match result {
            Ok(_) => Applied::Ok,
            Err(e) if e.may_have_been_applied() => Applied::Maybe,
            Err(_) => Applied::No,
        }
    }
}

/// An `INCRBY` to read back: its key ([`key`]) must hold [`amount`] or nothing, as
/// `applied` allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncrRecord {
    /// The caller's hash tag, if it has one.
    pub tag: Option<Arc<str>>,
    /// The caller.
    pub caller: u16,
    /// Its sequence number.
    pub seq: u32,
    /// The key's slot.
    pub slot: u16,
    /// When it started, from the epoch.
    pub started: Duration,
    /// What its result said.
    pub applied: Applied,
}

/// A `GET` that found nothing although its `SET` had been acknowledged: right only if that
/// write may have been lost in a failover (decided by [`verify_reads`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingRead {
    /// The caller.
    pub caller: u16,
    /// The `SET`'s sequence number.
    pub seq: u32,
    /// The key's slot.
    pub slot: u16,
    /// When the `SET` started, from the epoch.
    pub set_started: Duration,
}

/// Everything one caller (or, merged, all of them) saw.
#[derive(Debug, Default)]
pub struct LoadLog {
    /// Every request, in order per caller.
    pub outcomes: Vec<Outcome>,
    /// Every `INCRBY`, for the read-back.
    pub incrs: Vec<IncrRecord>,
    /// `GET`s that found nothing after an acknowledged `SET`.
    pub missing_reads: Vec<MissingRead>,
    /// Broken invariants, each in a sentence.
    pub violations: Vec<String>,
}

impl LoadLog {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: LoadLog) {
        self.outcomes.extend(other.outcomes);
        self.incrs.extend(other.incrs);
        self.missing_reads.extend(other.missing_reads);
        self.violations.extend(other.violations);
    }

    /// Requests that ended with their own reply.
    pub fn ok(&self) -> u64 {
        self.outcomes.iter().filter(|o| o.end == End::Ok).count() as u64
    }

    /// Typed errors by kind.
    pub fn errors(&self) -> BTreeMap<&'static str, u64> {
        let mut errors = BTreeMap::new();
        for o in &self.outcomes {
            if let End::Failed { kind, .. } = o.end {
                *errors.entry(kind).or_default() += 1;
            }
        }
        errors
    }

    /// The first write on a slot where `affected` holds that started at `at` or later and
    /// succeeded: how long after `at` it ended.
    pub fn writes_resumed(&self, at: Duration, affected: impl Fn(u16) -> bool) -> Option<Duration> {
        self.outcomes
            .iter()
            .filter(|o| o.kind.writes() && o.end == End::Ok && o.started >= at && affected(o.slot))
            .map(|o| o.ended() - at)
            .min()
    }
}

/// When a caller stops starting requests.
#[derive(Debug, Clone)]
pub enum Until {
    /// At this instant.
    Time(Instant),
    /// After this many requests.
    Count(u32),
    /// When the flag is set.
    Flag(Arc<AtomicBool>),
}

/// A function told of every request as it ends (the demo's live counters).
pub type Observer = Arc<dyn Fn(&Outcome) + Send + Sync>;

/// One caller's plan.
#[derive(Clone)]
pub struct CallerPlan {
    /// The caller's number (part of every key and value).
    pub caller: u16,
    /// Part of every key and value, so two runs never read each other's.
    pub seed: u64,
    /// The first sequence number (phases use disjoint ranges).
    pub first_seq: u32,
    /// `Some(tag)`: every key carries the hash tag `{tag}`, so all are in one slot.
    pub tag: Option<Arc<str>>,
    /// When to stop.
    pub until: Until,
    /// The time between the starts of two requests; `None`: back to back.
    pub pace: Option<Duration>,
    /// The client's own deadline plus slack: a request not ended by then is a hang.
    pub deadline: Duration,
    /// Whether typed errors a fault explains are allowed (`Timeout`; `ConnectionLost` of an
    /// `INCRBY`); otherwise any error is a broken invariant.
    pub errors_allowed: bool,
    /// What durations are measured from.
    pub epoch: Instant,
    /// Told of every request as it ends.
    pub observer: Option<Observer>,
}

impl std::fmt::Debug for CallerPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallerPlan")
            .field("caller", &self.caller)
            .field("first_seq", &self.first_seq)
            .field("tag", &self.tag)
            .field("until", &self.until)
            .finish_non_exhaustive()
    }
}

/// The key of request `seq` of `caller`.
pub fn key(tag: Option<&str>, seed: u64, caller: u16, seq: u32) -> String {
    match tag {
        Some(tag) => format!("{{{tag}}}:{seed:x}:{caller}:{seq}"),
        None => format!("k:{seed:x}:{caller}:{seq}"),
    }
}

/// The value `SET` by request `seq` of `caller`.
fn set_value(seed: u64, caller: u16, seq: u32) -> String {
    format!("v:{seed:x}:{caller}:{seq}")
}

/// The amount `INCRBY` adds in request `seq` of `caller`: unique to the request.
pub fn amount(caller: u16, seq: u32) -> i64 {
    i64::from(caller) * 10_000_000_000 + i64::from(seq) + 1
}

/// The `SET` a caller made last, for its next `GET`.
#[derive(Debug, Clone, Copy)]
struct LastSet {
    seq: u32,
    started: Duration,
    applied: Applied,
}

/// Runs one caller until its plan says stop; checks every reply as it comes.
pub async fn caller(client: ClusterClient, plan: CallerPlan) -> LoadLog {
    let mut log = LoadLog::default();
    let mut ticks = plan.pace.map(|pace| {
        let mut ticks = tokio::time::interval(pace);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticks
    });
    let tag = plan.tag.as_deref();
    let mut last_set: Option<LastSet> = None;
    let mut seq = plan.first_seq;
    loop {
        if let Some(ticks) = ticks.as_mut() {
            ticks.tick().await;
        }
        let more = match &plan.until {
            Until::Time(end) => Instant::now() < *end,
            Until::Count(n) => seq - plan.first_seq < *n,
            Until::Flag(stop) => !stop.load(Ordering::Relaxed),
        };
        if !more {
            return log;
        }
        // SET, then GET of that SET's key, then INCRBY; a GET without a SET before it in
        // this run (the first request of a phase) is a SET.
        let kind = match (seq % 3, last_set) {
            (1, Some(set)) if set.seq + 1 == seq => OpKind::Get,
            (2, _) => OpKind::Incr,
            _ => OpKind::Set,
        };
        let (command, key_seq) = match kind {
            OpKind::Set => (
                Command::new("SET")
                    .arg(key(tag, plan.seed, plan.caller, seq))
                    .arg(set_value(plan.seed, plan.caller, seq)),
                seq,
            ),
            OpKind::Get => (
                Command::new("GET").arg(key(tag, plan.seed, plan.caller, seq - 1)),
                seq - 1,
            ),
            OpKind::Incr => (
                Command::new("INCRBY")
                    .arg(key(tag, plan.seed, plan.caller, seq))
                    .arg(amount(plan.caller, seq)),
                seq,
            ),
        };
        let slot = key_slot(key(tag, plan.seed, plan.caller, key_seq).as_bytes());
        let started = Instant::now();
        let call = async {
            match kind {
                OpKind::Set => client.call_idempotent(command).await,
                OpKind::Get | OpKind::Incr => client.call(command).await,
            }
        };
        let result = tokio::time::timeout(plan.deadline, call).await;
        let took = started.elapsed();
        let start = started.duration_since(plan.epoch);
        let who = || {
            format!(
                "caller {} request {seq} ({kind:?}, slot {slot})",
                plan.caller
            )
        };
        let end = match result {
            Err(_) => {
                log.violations.push(format!(
                    "{} neither answered nor failed within {:?}",
                    who(),
                    plan.deadline
                ));
                End::Broken
            }
            Ok(result) => {
                let end = judge(&plan, kind, seq, last_set, &result, &mut log, &who);
                match kind {
                    OpKind::Set => {
                        last_set = Some(LastSet {
                            seq,
                            started: start,
                            applied: Applied::of(&result),
                        });
                    }
                    OpKind::Incr => log.incrs.push(IncrRecord {
                        tag: plan.tag.clone(),
                        caller: plan.caller,
                        seq,
                        slot,
                        started: start,
                        applied: Applied::of(&result),
                    }),
                    OpKind::Get => {
                        if result.as_ref().is_ok_and(|v| *v == Value::Null)
                            && let Some(set) = last_set
                            && set.applied == Applied::Ok
                        {
                            log.missing_reads.push(MissingRead {
                                caller: plan.caller,
                                seq: set.seq,
                                slot,
                                set_started: set.started,
                            });
                        }
                    }
                }
                end
            }
        };
        let outcome = Outcome {
            kind,
            slot,
            started: start,
            took,
            end,
        };
        if let Some(observe) = &plan.observer {
            observe(&outcome);
        }
        log.outcomes.push(outcome);
        seq += 1;
    }
}

/// Whether a reply is the request's own, and whether an error is one the plan allows.
fn judge(
    plan: &CallerPlan,
    kind: OpKind,
    seq: u32,
    last_set: Option<LastSet>,
    result: &Result<Value, ClusterError>,
    log: &mut LoadLog,
    who: &dyn Fn() -> String,
) -> End {
    match result {
        Ok(Value::Error(e)) => {
            log.violations.push(format!(
                "{} got an error reply: {}",
                who(),
                String::from_utf8_lossy(e)
            ));
            End::Broken
        }
        Ok(reply) => {
            let own = match kind {
                OpKind::Set => *reply == Value::ok(),
                OpKind::Incr => *reply == Value::Integer(amount(plan.caller, seq)),
                OpKind::Get => {
                    let set = last_set.map_or(Applied::No, |s| s.applied);
                    let value = Value::bulk(set_value(plan.seed, plan.caller, seq - 1));
                    match set {
                        // Acknowledged: the value, or nothing if a failover lost it
                        // (decided later, by verify_reads).
                        Applied::Ok | Applied::Maybe => *reply == value || *reply == Value::Null,
                        Applied::No if *reply == value => {
                            log.violations.push(format!(
                                "{}: its SET failed saying it was not applied, but it was",
                                who()
                            ));
                            return End::Broken;
                        }
                        Applied::No => *reply == Value::Null,
                    }
                }
            };
            if own {
                End::Ok
            } else {
                log.violations
                    .push(format!("{} got a reply not its own: {reply:?}", who()));
                End::Broken
            }
        }
        Err(e) => {
            let kind_name = error_kind(e);
            let explained = match e {
                ClusterError::Timeout { .. } => true,
                // A read or a declared-idempotent write is resent, never lost.
                ClusterError::ConnectionLost { .. } => kind == OpKind::Incr,
                _ => false,
            };
            if !plan.errors_allowed {
                log.violations
                    .push(format!("{} failed with no fault in force: {e}", who()));
            } else if !explained {
                log.violations
                    .push(format!("{} failed in a way no fault explains: {e}", who()));
            }
            End::Failed {
                kind: kind_name,
                maybe_applied: e.may_have_been_applied(),
            }
        }
    }
}

/// A short name for each way a cluster request can fail, to count errors by kind.
pub fn error_kind(e: &ClusterError) -> &'static str {
    match e {
        ClusterError::Timeout { .. } => "timeout",
        ClusterError::ConnectionLost { .. } => "connection_lost",
        ClusterError::TooManyRedirects { .. } => "too_many_redirects",
        ClusterError::Node { .. } => "node",
        ClusterError::Split { .. } => "split",
        ClusterError::CrossSlot { .. } => "cross_slot",
        ClusterError::ConnectionState { .. } => "connection_state",
        ClusterError::EmptyCommand => "empty_command",
        ClusterError::NoSeed { .. } => "no_seed",
        _ => "other",
    }
}

/// Reads every `INCRBY`'s key back (`MGET`, which the client splits by slot), 500 at a time.
///
/// # Errors
/// The first `MGET` that failed, or answered something else than one value per key.
pub async fn read_back(
    client: &ClusterClient,
    incrs: &[IncrRecord],
    seed: u64,
) -> Result<Vec<Value>, String> {
    let mut values = Vec::with_capacity(incrs.len());
    for chunk in incrs.chunks(500) {
        let mut mget = Command::new("MGET");
        for r in chunk {
            mget.push(key(r.tag.as_deref(), seed, r.caller, r.seq));
        }
        match client.call(mget).await {
            Ok(Value::Array(items)) if items.len() == chunk.len() => values.extend(items),
            Ok(other) => return Err(format!("MGET answered {other:?}")),
            Err(e) => return Err(format!("MGET failed: {e}")),
        }
    }
    Ok(values)
}

/// What the read-back says about the `INCRBY`s, for a report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IncrVerdict {
    /// Acknowledged and stored.
    pub stored: u64,
    /// Acknowledged, then lost (only where `lossy` allows it).
    pub lost: u64,
    /// Failed saying "may have been applied", and applied.
    pub maybe_applied: u64,
    /// Broken invariants.
    pub violations: Vec<String>,
}

/// Checks each `INCRBY` against its key's value: `n` (applied once) or nothing; never `2n`
/// or anything else; `n` when it answered (unless `lossy(slot, started)`: acknowledged by a
/// primary that died before replicating it); nothing when its error said it was not
/// applied.
pub fn verify_incrs(
    incrs: &[IncrRecord],
    values: &[Value],
    lossy: impl Fn(u16, Duration) -> bool,
) -> IncrVerdict {
    let mut v = IncrVerdict::default();
    for (r, value) in incrs.iter().zip(values) {
        let once = Value::bulk(amount(r.caller, r.seq).to_string());
        let who = format!(
            "INCRBY of caller {} request {} (slot {}, {:?})",
            r.caller, r.seq, r.slot, r.applied
        );
        if *value != Value::Null && *value != once {
            v.violations.push(format!(
                "{who}: its key holds {value:?}, not {once:?}: applied twice, or another's write"
            ));
            continue;
        }
        let stored = *value == once;
        match r.applied {
            Applied::Ok if stored => v.stored += 1,
            Applied::Ok if lossy(r.slot, r.started) => v.lost += 1,
            Applied::Ok => v
                .violations
                .push(format!("{who}: acknowledged, but not stored")),
            Applied::Maybe => v.maybe_applied += u64::from(stored),
            Applied::No if stored => v
                .violations
                .push(format!("{who}: said it was not applied, but it was")),
            Applied::No => {}
        }
    }
    if values.len() != incrs.len() {
        v.violations.push(format!(
            "{} INCRBYs, {} values read back",
            incrs.len(),
            values.len()
        ));
    }
    v
}

/// Checks the `GET`s that found nothing after an acknowledged `SET`: each is right only if
/// `lossy(slot, set_started)`. Returns the broken invariants.
pub fn verify_reads(missing: &[MissingRead], lossy: impl Fn(u16, Duration) -> bool) -> Vec<String> {
    missing
        .iter()
        .filter(|m| !lossy(m.slot, m.set_started))
        .map(|m| {
            format!(
                "caller {} read nothing after its acknowledged SET {} (slot {})",
                m.caller, m.seq, m.slot
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;
