//! The key space: sharded maps of strings, integers and lists, with expiry deadlines kept
//! in an index per shard. Pure data structure: no sockets, and the time is passed in.
//!
//! Why sharded: every connection is its own process on a multi-thread runtime, so two cores
//! serve two connections at once; one lock for the whole store would make them take turns.
//! Each key belongs to one shard, each shard has its own lock, and a lock is only ever held
//! for one command's work on that shard: never across an `.await` (nothing here is async).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::time::Instant;

use super::pack::copy_packed;

/// How many shards: a power of two, many more than cores, so two connections rarely want
/// the same lock at the same moment.
const SHARDS: usize = 64;

/// The most expired keys one sweep removes from one shard under one lock acquisition, so a
/// sweep never holds a shard for long; what is left waits for the next sweep (and is already
/// invisible to commands).
pub(crate) const SWEEP_BUDGET: usize = 256;

/// The time of a batch of commands, read from the clock once and only if a command needs it
/// (a key with a deadline, or a command that sets one).
#[derive(Debug, Default)]
pub(crate) struct Clock {
    now: Option<Instant>,
}

impl Clock {
    /// A clock that reads the time when first asked.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A clock stopped at `now` (tests).
    #[cfg(test)]
    pub(crate) fn at(now: Instant) -> Self {
        Self { now: Some(now) }
    }

    pub(crate) fn now(&mut self) -> Instant {
        *self.now.get_or_insert_with(Instant::now)
    }
}

/// What a key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Data {
    /// A string, as given to SET.
    Str(Bytes),
    /// A string that INCR made or last changed, kept as a number so that INCR allocates
    /// nothing; GET renders it in decimal, exactly as Redis shows an integer-encoded string.
    Int(i64),
    /// A list (LPUSH, RPUSH, ...). Never empty: popping the last element removes the key.
    List(VecDeque<Bytes>),
}

impl Data {
    /// The string value, for the string commands.
    pub(crate) fn string(&self) -> Result<Bytes, WrongType> {
        match self {
            Data::Str(s) => Ok(s.clone()),
            Data::Int(n) => Ok(Bytes::from(n.to_string())),
            Data::List(_) => Err(WrongType),
        }
    }

    /// Redis's name for the type (`TYPE`).
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Data::Str(_) | Data::Int(_) => "string",
            Data::List(_) => "list",
        }
    }
}

/// The key holds a value of another type than the command works on (Redis's `WRONGTYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WrongType;

/// Why INCR (INCRBY, DECR, DECRBY) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IncrError {
    /// The key holds a list.
    WrongType,
    /// The string is not a decimal 64-bit integer.
    NotAnInteger,
    /// The result would not fit in 64 bits.
    Overflow,
}

/// A key's deadline: when it expires, and its place in the shard's expiry index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Deadline {
    at: Instant,
    /// Makes index positions unique when deadlines are equal.
    seq: u64,
}

#[derive(Debug)]
struct Entry {
    data: Data,
    deadline: Option<Deadline>,
}

impl Entry {
    fn expired(&self, clock: &mut Clock) -> bool {
        self.deadline.is_some_and(|d| d.at <= clock.now())
    }
}

/// SET's conditions and options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct SetOptions {
    /// Only if the key does not exist (NX).
    pub(crate) only_if_absent: bool,
    /// Only if the key exists (XX).
    pub(crate) only_if_present: bool,
    /// Keep the key's current deadline (KEEPTTL).
    pub(crate) keep_ttl: bool,
    /// The new deadline (EX, PX, EXAT, PXAT); none makes the key persistent unless
    /// `keep_ttl`.
    pub(crate) expire_at: Option<Instant>,
}

/// What SET did: whether it wrote, and the value it replaced (for SET ... GET).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetOutcome {
    pub(crate) written: bool,
    pub(crate) old: Option<Bytes>,
}

/// EXPIRE's condition (NX, XX, GT, LT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum ExpireIf {
    /// Always.
    #[default]
    Always,
    /// Only when the key has no deadline.
    NoDeadline,
    /// Only when the key has a deadline.
    HasDeadline,
    /// Only when the new deadline is later (a key without one counts as infinitely late).
    Later,
    /// Only when the new deadline is earlier (a key without one counts as infinitely late).
    Earlier,
}

/// A key's time to live (TTL, PTTL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ttl {
    /// No such key (-2).
    Missing,
    /// The key never expires (-1).
    Persistent,
    /// It expires after this long.
    Remaining(std::time::Duration),
}

/// Which end of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// LPUSH, LPOP.
    Left,
    /// RPUSH, RPOP.
    Right,
}

/// One shard: its keys, and their deadlines in order.
#[derive(Debug, Default)]
struct Shard {
    map: HashMap<Bytes, Entry>,
    /// Every key with a deadline, earliest first: the sweep pops from the front. Empty
    /// when no key of the shard has one, which lets lookups skip the expiry check.
    expiries: BTreeMap<(Instant, u64), Bytes>,
    next_seq: u64,
}

impl Shard {
    /// `key`'s entry if it is live. An expired entry is removed first (lazy expiry), so
    /// `None` means the key does not exist.
    fn live(&mut self, key: &[u8], clock: &mut Clock) -> Option<&mut Entry> {
        if !self.expiries.is_empty() && self.map.get(key).is_some_and(|e| e.expired(clock)) {
            self.remove(key);
            return None;
        }
        self.map.get_mut(key)
    }

    /// Stores `data` under `key`: in place (keeping the deadline) if the key exists, as a
    /// new persistent key otherwise. Callers have removed an expired entry first (`live`).
    fn put(&mut self, key: &[u8], data: Data) {
        match self.map.get_mut(key) {
            Some(entry) => entry.data = data,
            None => {
                self.map.insert(
                    Bytes::copy_from_slice(key),
                    Entry {
                        data,
                        deadline: None,
                    },
                );
            }
        }
    }

    /// Removes `key` (expired or not) with its index position; whether it was there.
    fn remove(&mut self, key: &[u8]) -> bool {
        let Some(entry) = self.map.remove(key) else {
            return false;
        };
        if let Some(d) = entry.deadline {
            self.expiries.remove(&(d.at, d.seq));
        }
        true
    }

    /// Removes `key` if it is live; whether it was (an expired one is removed too).
    fn remove_live(&mut self, key: &[u8], clock: &mut Clock) -> bool {
        self.live(key, clock).is_some() && self.remove(key)
    }

    /// Gives the existing `key` the deadline `at` (or none), keeping the index in step.
    fn retime(&mut self, key: &[u8], at: Option<Instant>) {
        self.next_seq += 1;
        let seq = self.next_seq;
        let Some(entry) = self.map.get_mut(key) else {
            return;
        };
        let old = entry.deadline;
        if old.map(|d| d.at) == at {
            return;
        }
        entry.deadline = at.map(|at| Deadline { at, seq });
        if let Some(d) = old {
            self.expiries.remove(&(d.at, d.seq));
        }
        if let Some(at) = at {
            self.expiries.insert((at, seq), Bytes::copy_from_slice(key));
        }
    }

    /// Removes up to `budget` keys whose deadline is at or before `now`; how many it removed.
    fn sweep(&mut self, now: Instant, budget: usize) -> usize {
        let mut removed = 0;
        while removed < budget {
            let Some(first) = self.expiries.first_entry() else {
                break;
            };
            if first.key().0 > now {
                break;
            }
            let key = first.remove();
            self.map.remove(&key);
            removed += 1;
        }
        removed
    }

    fn get(&mut self, key: &[u8], clock: &mut Clock) -> Result<Option<Bytes>, WrongType> {
        self.live(key, clock).map(|e| e.data.string()).transpose()
    }

    fn set(
        &mut self,
        key: &[u8],
        value: &[u8],
        options: SetOptions,
        want_old: bool,
        clock: &mut Clock,
    ) -> Result<SetOutcome, WrongType> {
        let (exists, old, deadline) = match self.live(key, clock) {
            Some(entry) => {
                let old = if want_old {
                    Some(entry.data.string()?)
                } else {
                    None
                };
                (true, old, entry.deadline.map(|d| d.at))
            }
            None => (false, None, None),
        };
        if (options.only_if_absent && exists) || (options.only_if_present && !exists) {
            return Ok(SetOutcome {
                written: false,
                old,
            });
        }
        // A copy: a slice of the request would pin the whole read buffer it came in.
        self.put(key, Data::Str(Bytes::copy_from_slice(value)));
        let wanted = if options.keep_ttl {
            deadline
        } else {
            options.expire_at
        };
        if wanted != deadline {
            self.retime(key, wanted);
        }
        Ok(SetOutcome { written: true, old })
    }

    fn incr_by(&mut self, key: &[u8], delta: i64, clock: &mut Clock) -> Result<i64, IncrError> {
        let Some(entry) = self.live(key, clock) else {
            self.put(key, Data::Int(delta));
            return Ok(delta);
        };
        let current = match &entry.data {
            Data::Int(n) => *n,
            Data::Str(s) => parse_int(s).ok_or(IncrError::NotAnInteger)?,
            Data::List(_) => return Err(IncrError::WrongType),
        };
        let next = current.checked_add(delta).ok_or(IncrError::Overflow)?;
        entry.data = Data::Int(next);
        Ok(next)
    }

    /// EXPIRE at `at` under `condition`: whether the deadline was set (or, for a deadline
    /// already passed, the key deleted).
    fn expire(&mut self, key: &[u8], at: Instant, condition: ExpireIf, clock: &mut Clock) -> bool {
        let Some(entry) = self.live(key, clock) else {
            return false;
        };
        let current = entry.deadline.map(|d| d.at);
        let allowed = match condition {
            ExpireIf::Always => true,
            ExpireIf::NoDeadline => current.is_none(),
            ExpireIf::HasDeadline => current.is_some(),
            ExpireIf::Later => current.is_some_and(|c| at > c),
            ExpireIf::Earlier => current.is_none_or(|c| at < c),
        };
        if !allowed {
            return false;
        }
        if at <= clock.now() {
            self.remove(key);
        } else {
            self.retime(key, Some(at));
        }
        true
    }

    fn persist(&mut self, key: &[u8], clock: &mut Clock) -> bool {
        match self.live(key, clock) {
            Some(entry) if entry.deadline.is_some() => {
                self.retime(key, None);
                true
            }
            _ => false,
        }
    }

    fn ttl(&mut self, key: &[u8], clock: &mut Clock) -> Ttl {
        let deadline = match self.live(key, clock) {
            None => return Ttl::Missing,
            Some(entry) => entry.deadline,
        };
        match deadline {
            None => Ttl::Persistent,
            Some(d) => Ttl::Remaining(d.at.saturating_duration_since(clock.now())),
        }
    }

    fn push(
        &mut self,
        key: &[u8],
        values: &[&[u8]],
        end: End,
        clock: &mut Clock,
    ) -> Result<usize, WrongType> {
        // Copies, as in `set`, but packed: one allocation per block of small values.
        let fill = |list: &mut VecDeque<Bytes>| {
            list.reserve(values.len());
            copy_packed(values, |v| match end {
                End::Left => list.push_front(v),
                End::Right => list.push_back(v),
            });
            list.len()
        };
        match self.live(key, clock) {
            Some(Entry {
                data: Data::List(list),
                ..
            }) => Ok(fill(list)),
            Some(_) => Err(WrongType),
            None => {
                let mut list = VecDeque::with_capacity(values.len());
                let len = fill(&mut list);
                self.put(key, Data::List(list));
                Ok(len)
            }
        }
    }

    /// Pops up to `count` elements from `end`; `None` if the key does not exist. Popping
    /// the last element removes the key.
    fn pop(
        &mut self,
        key: &[u8],
        end: End,
        count: usize,
        clock: &mut Clock,
    ) -> Result<Option<Vec<Bytes>>, WrongType> {
        let (popped, now_empty) = match self.live(key, clock) {
            None => return Ok(None),
            Some(Entry {
                data: Data::List(list),
                ..
            }) => {
                let n = count.min(list.len());
                let popped: Vec<Bytes> = match end {
                    End::Left => list.drain(..n).collect(),
                    End::Right => list.drain(list.len() - n..).rev().collect(),
                };
                (popped, list.is_empty())
            }
            Some(_) => return Err(WrongType),
        };
        if now_empty {
            self.remove(key);
        }
        Ok(Some(popped))
    }

    fn list<R>(
        &mut self,
        key: &[u8],
        clock: &mut Clock,
        f: impl FnOnce(&VecDeque<Bytes>) -> R,
    ) -> Result<Option<R>, WrongType> {
        match self.live(key, clock) {
            None => Ok(None),
            Some(Entry {
                data: Data::List(list),
                ..
            }) => Ok(Some(f(list))),
            Some(_) => Err(WrongType),
        }
    }
}

/// A decimal 64-bit integer exactly as Redis reads one (`string2ll`): an optional `-`, no
/// `+`, no spaces, no leading zeros, no overflow.
pub(crate) fn parse_int(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text {
        [b'0'] => return Some(0),
        [b'-', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    match digits.first() {
        Some(b'1'..=b'9') if digits.len() <= 19 => {}
        _ => return None,
    }
    // Accumulated negatively so that i64::MIN parses.
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if negative { Some(n) } else { n.checked_neg() }
}

/// A shard, padded to its own cache lines so that two cores locking neighbouring shards do
/// not contend for one line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(Mutex<Shard>);

/// The whole key space: [`SHARDS`] independently locked shards.
///
/// Multi-key commands (MSET, MGET, DEL, EXISTS) lock every shard they touch in ascending
/// order, so they are atomic like Redis's and cannot deadlock with each other.
#[derive(Debug)]
pub(crate) struct Store {
    shards: Box<[Padded]>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

/// FNV-1a: a cheap, well-spread hash to pick a key's shard. (The maps themselves hash with
/// SipHash and a random key, so a peer choosing keys can unbalance shards, not maps.)
fn shard_of(key: &[u8]) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    ((h ^ (h >> 32)) as usize) & (SHARDS - 1)
}

impl Store {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Padded::default()).collect(),
        }
    }

    fn lock(&self, index: usize) -> MutexGuard<'_, Shard> {
        // A shard's invariants hold between statements that cannot panic, so a poisoned
        // lock's data is still consistent.
        self.shards[index]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn shard(&self, key: &[u8]) -> MutexGuard<'_, Shard> {
        self.lock(shard_of(key))
    }

    /// Locks the shards of `keys` in ascending order, for one atomic multi-key command.
    fn lock_many<'k>(&self, keys: impl Iterator<Item = &'k [u8]>) -> Locked<'_> {
        let mut indices: Vec<usize> = keys.map(shard_of).collect();
        indices.sort_unstable();
        indices.dedup();
        let guards = indices.iter().map(|&i| self.lock(i)).collect();
        Locked { indices, guards }
    }

    pub(crate) fn get(&self, key: &[u8], clock: &mut Clock) -> Result<Option<Bytes>, WrongType> {
        self.shard(key).get(key, clock)
    }

    pub(crate) fn set(
        &self,
        key: &[u8],
        value: &[u8],
        options: SetOptions,
        want_old: bool,
        clock: &mut Clock,
    ) -> Result<SetOutcome, WrongType> {
        self.shard(key).set(key, value, options, want_old, clock)
    }

    /// How many of `keys` existed and were removed (a key named twice counts once).
    pub(crate) fn del<'k>(
        &self,
        keys: impl Iterator<Item = &'k [u8]> + Clone,
        clock: &mut Clock,
    ) -> i64 {
        let mut locked = self.lock_many(keys.clone());
        keys.filter(|k| locked.shard(k).remove_live(k, clock))
            .count() as i64
    }

    /// How many of `keys` exist (a key named twice counts twice, as in Redis).
    pub(crate) fn exists<'k>(
        &self,
        keys: impl Iterator<Item = &'k [u8]> + Clone,
        clock: &mut Clock,
    ) -> i64 {
        let mut locked = self.lock_many(keys.clone());
        keys.filter(|k| locked.shard(k).live(k, clock).is_some())
            .count() as i64
    }

    /// The values of `keys`, `None` for a missing key or one that is not a string.
    pub(crate) fn mget<'k>(
        &self,
        keys: impl Iterator<Item = &'k [u8]> + Clone,
        clock: &mut Clock,
    ) -> Vec<Option<Bytes>> {
        let mut locked = self.lock_many(keys.clone());
        keys.map(|k| locked.shard(k).get(k, clock).ok().flatten())
            .collect()
    }

    /// Sets every `(key, value)`, atomically: no reader sees some set and others not.
    pub(crate) fn mset<'k>(
        &self,
        pairs: impl Iterator<Item = (&'k [u8], &'k [u8])> + Clone,
        clock: &mut Clock,
    ) {
        let mut locked = self.lock_many(pairs.clone().map(|(k, _)| k));
        for (key, value) in pairs {
            let shard = locked.shard(key);
            let _ = shard.set(key, value, SetOptions::default(), false, clock);
        }
    }

    pub(crate) fn type_of(&self, key: &[u8], clock: &mut Clock) -> &'static str {
        self.shard(key)
            .live(key, clock)
            .map_or("none", |e| e.data.type_name())
    }

    pub(crate) fn incr_by(
        &self,
        key: &[u8],
        delta: i64,
        clock: &mut Clock,
    ) -> Result<i64, IncrError> {
        self.shard(key).incr_by(key, delta, clock)
    }

    pub(crate) fn expire(
        &self,
        key: &[u8],
        at: Instant,
        condition: ExpireIf,
        clock: &mut Clock,
    ) -> bool {
        self.shard(key).expire(key, at, condition, clock)
    }

    pub(crate) fn persist(&self, key: &[u8], clock: &mut Clock) -> bool {
        self.shard(key).persist(key, clock)
    }

    pub(crate) fn ttl(&self, key: &[u8], clock: &mut Clock) -> Ttl {
        self.shard(key).ttl(key, clock)
    }

    pub(crate) fn push(
        &self,
        key: &[u8],
        values: &[&[u8]],
        end: End,
        clock: &mut Clock,
    ) -> Result<usize, WrongType> {
        self.shard(key).push(key, values, end, clock)
    }

    pub(crate) fn pop(
        &self,
        key: &[u8],
        end: End,
        count: usize,
        clock: &mut Clock,
    ) -> Result<Option<Vec<Bytes>>, WrongType> {
        self.shard(key).pop(key, end, count, clock)
    }

    pub(crate) fn llen(&self, key: &[u8], clock: &mut Clock) -> Result<usize, WrongType> {
        Ok(self
            .shard(key)
            .list(key, clock, VecDeque::len)?
            .unwrap_or(0))
    }

    /// LRANGE's elements `start..=stop`, negative indices counting from the end.
    pub(crate) fn lrange(
        &self,
        key: &[u8],
        start: i64,
        stop: i64,
        clock: &mut Clock,
    ) -> Result<Vec<Bytes>, WrongType> {
        let range = self.shard(key).list(key, clock, |list| {
            let len = list.len() as i64;
            let start = if start < 0 {
                (len + start).max(0)
            } else {
                start
            };
            let stop = if stop < 0 {
                len + stop
            } else {
                stop.min(len - 1)
            };
            if start > stop || start >= len {
                return Vec::new();
            }
            // 0 <= start <= stop < len here.
            list.range(start as usize..=stop as usize)
                .cloned()
                .collect()
        })?;
        Ok(range.unwrap_or_default())
    }

    /// How many keys are stored, counting expired ones the sweep has not removed yet
    /// (as Redis's DBSIZE does).
    pub(crate) fn len(&self) -> usize {
        (0..SHARDS).map(|i| self.lock(i).map.len()).sum()
    }

    /// Removes every key (FLUSHDB), one shard at a time.
    pub(crate) fn clear(&self) {
        for i in 0..SHARDS {
            let old = std::mem::take(&mut *self.lock(i));
            // Freed outside the lock.
            drop(old);
        }
    }

    /// Removes keys whose deadline passed, up to [`SWEEP_BUDGET`] per shard; how many.
    pub(crate) fn sweep(&self, now: Instant) -> usize {
        (0..SHARDS)
            .map(|i| self.lock(i).sweep(now, SWEEP_BUDGET))
            .sum()
    }
}

/// The shards one multi-key command holds, in ascending order.
struct Locked<'a> {
    indices: Vec<usize>,
    guards: Vec<MutexGuard<'a, Shard>>,
}

impl Locked<'_> {
    fn shard(&mut self, key: &[u8]) -> &mut Shard {
        let index = shard_of(key);
        let pos = self
            .indices
            .binary_search(&index)
            .expect("lock_many locked the shard of every key the command touches");
        &mut self.guards[pos]
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn store_at() -> (Store, Instant) {
        (Store::new(), Instant::now())
    }

    fn set(store: &Store, key: &str, value: &str, expire_at: Option<Instant>, now: Instant) {
        let options = SetOptions {
            expire_at,
            ..SetOptions::default()
        };
        let outcome = store.set(
            key.as_bytes(),
            value.as_bytes(),
            options,
            false,
            &mut Clock::at(now),
        );
        assert_eq!(
            outcome,
            Ok(SetOutcome {
                written: true,
                old: None
            })
        );
    }

    fn get(store: &Store, key: &str, now: Instant) -> Option<Bytes> {
        store.get(key.as_bytes(), &mut Clock::at(now)).unwrap()
    }

    #[test]
    fn set_conditions_and_the_old_value() {
        let (store, t0) = store_at();
        let mut clock = Clock::at(t0);
        let nx = SetOptions {
            only_if_absent: true,
            ..SetOptions::default()
        };
        let xx = SetOptions {
            only_if_present: true,
            ..SetOptions::default()
        };
        let first = store.set(b"k", b"a", xx, true, &mut clock).unwrap();
        assert_eq!(
            first,
            SetOutcome {
                written: false,
                old: None
            }
        );
        let second = store.set(b"k", b"b", nx, true, &mut clock).unwrap();
        assert_eq!(
            second,
            SetOutcome {
                written: true,
                old: None
            }
        );
        let third = store.set(b"k", b"c", nx, true, &mut clock).unwrap();
        assert_eq!(
            third,
            SetOutcome {
                written: false,
                old: Some(Bytes::from("b"))
            }
        );
        let fourth = store.set(b"k", b"d", xx, true, &mut clock).unwrap();
        assert_eq!(
            fourth,
            SetOutcome {
                written: true,
                old: Some(Bytes::from("b"))
            }
        );
        assert_eq!(get(&store, "k", t0), Some(Bytes::from("d")));
        store.push(b"l", &[b"x"], End::Left, &mut clock).unwrap();
        assert_eq!(
            store.set(b"l", b"v", SetOptions::default(), true, &mut clock),
            Err(WrongType)
        );
        // Without GET, SET overwrites a key of any type.
        assert!(
            store
                .set(b"l", b"v", SetOptions::default(), false, &mut clock)
                .is_ok()
        );
        assert_eq!(store.type_of(b"l", &mut clock), "string");
    }

    #[test]
    fn an_expired_key_is_gone_on_access_and_freed() {
        let (store, t0) = store_at();
        set(&store, "k", "v", Some(t0 + 100 * MS), t0);
        assert_eq!(get(&store, "k", t0 + 99 * MS), Some(Bytes::from("v")));
        assert_eq!(
            store.ttl(b"k", &mut Clock::at(t0 + 40 * MS)),
            Ttl::Remaining(60 * MS)
        );
        assert_eq!(store.len(), 1);
        assert_eq!(get(&store, "k", t0 + 100 * MS), None);
        assert_eq!(store.len(), 0, "lazy expiry frees the key on access");
        assert_eq!(store.ttl(b"k", &mut Clock::at(t0 + 100 * MS)), Ttl::Missing);
    }

    #[test]
    fn the_sweep_frees_only_what_expired_and_stays_within_its_budget() {
        let (store, t0) = store_at();
        let n = SHARDS * SWEEP_BUDGET + 10;
        for i in 0..n {
            set(&store, &format!("old{i}"), "v", Some(t0 + MS), t0);
        }
        set(&store, "later", "v", Some(t0 + 10 * MS), t0);
        set(&store, "forever", "v", None, t0);
        assert_eq!(store.len(), n + 2);
        // Each shard gives up after its budget: the rest waits for the next round.
        let first = store.sweep(t0 + 5 * MS);
        assert!(first <= SHARDS * SWEEP_BUDGET && first > 0, "{first}");
        let second = store.sweep(t0 + 5 * MS);
        assert_eq!(first + second, n);
        assert_eq!(store.len(), 2);
        assert_eq!(store.sweep(t0 + 20 * MS), 1);
        assert_eq!(get(&store, "forever", t0 + 20 * MS), Some(Bytes::from("v")));
    }

    #[test]
    fn a_new_deadline_replaces_the_old_one_in_the_index() {
        let (store, t0) = store_at();
        let mut clock = Clock::at(t0);
        set(&store, "k", "v", Some(t0 + MS), t0);
        // SET without an expiry makes the key persistent: the old deadline must not fire.
        set(&store, "k", "w", None, t0);
        assert_eq!(store.sweep(t0 + 10 * MS), 0);
        assert!(store.expire(b"k", t0 + 5 * MS, ExpireIf::Always, &mut clock));
        assert!(!store.expire(b"k", t0 + 9 * MS, ExpireIf::NoDeadline, &mut clock));
        assert!(!store.expire(b"k", t0 + 9 * MS, ExpireIf::Earlier, &mut clock));
        assert!(store.expire(b"k", t0 + 9 * MS, ExpireIf::Later, &mut clock));
        assert_eq!(store.sweep(t0 + 6 * MS), 0, "the replaced deadline fired");
        assert!(store.persist(b"k", &mut clock));
        assert!(!store.persist(b"k", &mut clock));
        assert_eq!(store.sweep(t0 + 100 * MS), 0);
        // KEEPTTL keeps it; an EXPIRE in the past deletes at once.
        assert!(!store.expire(b"k", t0 + 5 * MS, ExpireIf::HasDeadline, &mut clock));
        assert!(store.expire(b"k", t0 + 5 * MS, ExpireIf::Always, &mut clock));
        let keep = SetOptions {
            keep_ttl: true,
            ..SetOptions::default()
        };
        store.set(b"k", b"x", keep, false, &mut clock).unwrap();
        assert_eq!(store.ttl(b"k", &mut clock), Ttl::Remaining(5 * MS));
        assert!(store.expire(b"k", t0, ExpireIf::Always, &mut clock));
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn incr_counts_in_place_and_refuses_what_redis_refuses() {
        let (store, t0) = store_at();
        let mut clock = Clock::at(t0);
        assert_eq!(store.incr_by(b"n", 1, &mut clock), Ok(1));
        assert_eq!(store.incr_by(b"n", 41, &mut clock), Ok(42));
        assert_eq!(get(&store, "n", t0), Some(Bytes::from("42")));
        set(&store, "s", "-17", None, t0);
        assert_eq!(store.incr_by(b"s", -1, &mut clock), Ok(-18));
        set(&store, "text", "12a", None, t0);
        assert_eq!(
            store.incr_by(b"text", 1, &mut clock),
            Err(IncrError::NotAnInteger)
        );
        set(&store, "max", &i64::MAX.to_string(), None, t0);
        assert_eq!(
            store.incr_by(b"max", 1, &mut clock),
            Err(IncrError::Overflow)
        );
        store.push(b"l", &[b"x"], End::Left, &mut clock).unwrap();
        assert_eq!(
            store.incr_by(b"l", 1, &mut clock),
            Err(IncrError::WrongType)
        );
        // INCR keeps a deadline.
        set(&store, "t", "1", Some(t0 + MS), t0);
        assert_eq!(store.incr_by(b"t", 1, &mut clock), Ok(2));
        assert_eq!(store.ttl(b"t", &mut clock), Ttl::Remaining(MS));
    }

    #[test]
    fn lists_push_pop_and_range_like_redis() {
        let (store, t0) = store_at();
        let mut clock = Clock::at(t0);
        let items: [&[u8]; 3] = [b"a", b"b", b"c"];
        assert_eq!(store.push(b"l", &items, End::Left, &mut clock), Ok(3));
        assert_eq!(store.push(b"l", &items[..1], End::Right, &mut clock), Ok(4));
        let all = store.lrange(b"l", 0, -1, &mut clock).unwrap();
        assert_eq!(all, ["c", "b", "a", "a"].map(Bytes::from));
        assert_eq!(
            store.lrange(b"l", -2, 10, &mut clock).unwrap(),
            ["a", "a"].map(Bytes::from)
        );
        assert_eq!(
            store.lrange(b"l", 3, 1, &mut clock).unwrap(),
            Vec::<Bytes>::new()
        );
        assert_eq!(
            store.lrange(b"l", 9, 12, &mut clock).unwrap(),
            Vec::<Bytes>::new()
        );
        assert_eq!(
            store.lrange(b"l", -100, 0, &mut clock).unwrap(),
            ["c"].map(Bytes::from)
        );
        assert_eq!(
            store.lrange(b"none", 0, -1, &mut clock).unwrap(),
            Vec::<Bytes>::new()
        );
        let right = store.pop(b"l", End::Right, 2, &mut clock).unwrap();
        assert_eq!(right, Some(vec![Bytes::from("a"), Bytes::from("a")]));
        assert_eq!(store.llen(b"l", &mut clock), Ok(2));
        let rest = store.pop(b"l", End::Left, 10, &mut clock).unwrap();
        assert_eq!(rest, Some(vec![Bytes::from("c"), Bytes::from("b")]));
        assert_eq!(
            store.type_of(b"l", &mut clock),
            "none",
            "an emptied list is removed"
        );
        assert_eq!(store.pop(b"l", End::Left, 1, &mut clock), Ok(None));
        set(&store, "s", "v", None, t0);
        assert_eq!(
            store.push(b"s", &items, End::Left, &mut clock),
            Err(WrongType)
        );
        assert_eq!(store.pop(b"s", End::Left, 1, &mut clock), Err(WrongType));
        assert_eq!(store.llen(b"s", &mut clock), Err(WrongType));
    }

    #[test]
    fn multi_key_commands_count_like_redis() {
        let (store, t0) = store_at();
        let mut clock = Clock::at(t0);
        let keys: Vec<String> = (0..40).map(|i| format!("key{i}")).collect();
        let pairs: Vec<(&[u8], &[u8])> = keys
            .iter()
            .map(|k| (k.as_bytes(), b"v".as_slice()))
            .collect();
        store.mset(pairs.iter().copied(), &mut clock);
        assert_eq!(store.len(), 40);
        store.push(b"list", &[b"x"], End::Left, &mut clock).unwrap();
        let got = store.mget(
            [b"key1".as_slice(), b"list", b"nope"].into_iter(),
            &mut clock,
        );
        assert_eq!(got, vec![Some(Bytes::from("v")), None, None]);
        let twice = [b"key1".as_slice(), b"key1", b"nope"];
        assert_eq!(store.exists(twice.into_iter(), &mut clock), 2);
        assert_eq!(store.del(twice.into_iter(), &mut clock), 1);
        assert_eq!(store.del(keys.iter().map(|k| k.as_bytes()), &mut clock), 39);
        store.clear();
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn integers_parse_exactly_as_redis_parses_them() {
        for (text, parsed) in [
            ("0", Some(0)),
            ("42", Some(42)),
            ("-42", Some(-42)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("007", None),
            ("-0", None),
            ("+1", None),
            (" 1", None),
            ("1 ", None),
            ("", None),
            ("-", None),
            ("1e3", None),
            ("12345678901234567890123", None),
        ] {
            assert_eq!(parse_int(text.as_bytes()), parsed, "{text:?}");
        }
    }

    /// One step of the model-checked property below.
    #[derive(Debug, Clone)]
    enum Op {
        Set { key: u8, ttl_ms: Option<u64> },
        Del(u8),
        Incr(u8),
        Expire { key: u8, ttl_ms: u64 },
        Persist(u8),
        Advance(u64),
        Sweep,
    }

    fn op() -> impl Strategy<Value = Op> {
        let key = 0u8..6;
        prop_oneof![
            (key.clone(), proptest::option::of(1u64..50))
                .prop_map(|(key, ttl_ms)| Op::Set { key, ttl_ms }),
            key.clone().prop_map(Op::Del),
            key.clone().prop_map(Op::Incr),
            (key.clone(), 0u64..50).prop_map(|(key, ttl_ms)| Op::Expire { key, ttl_ms }),
            key.prop_map(Op::Persist),
            (1u64..30).prop_map(Op::Advance),
            Just(Op::Sweep),
        ]
    }

    proptest! {
        /// Against a plain map of (value, deadline): every key reads the same after any
        /// sequence of writes, deadline changes, time passing and sweeps, and the sweep
        /// never frees a live key nor leaves an expired one behind for long.
        #[test]
        fn the_store_behaves_like_a_map_with_deadlines(ops in proptest::collection::vec(op(), 1..60)) {
            let (store, t0) = store_at();
            let mut now = t0;
            let mut model: BTreeMap<u8, (i64, Option<Instant>)> = BTreeMap::new();
            let live = |model: &BTreeMap<u8, (i64, Option<Instant>)>, k: u8, now: Instant| {
                model.get(&k).filter(|(_, d)| d.is_none_or(|d| d > now)).map(|(v, _)| *v)
            };
            for op in ops {
                let mut clock = Clock::at(now);
                match op {
                    Op::Set { key, ttl_ms } => {
                        let at = ttl_ms.map(|ms| now + Duration::from_millis(ms));
                        let options = SetOptions { expire_at: at, ..SetOptions::default() };
                        store.set(&[key], b"7", options, false, &mut clock).unwrap();
                        model.insert(key, (7, at));
                    }
                    Op::Del(key) => {
                        let existed = live(&model, key, now).is_some();
                        prop_assert_eq!(store.del([&[key][..]].into_iter(), &mut clock), i64::from(existed));
                        model.remove(&key);
                    }
                    Op::Incr(key) => {
                        let next = live(&model, key, now).unwrap_or(0) + 1;
                        prop_assert_eq!(store.incr_by(&[key], 1, &mut clock), Ok(next));
                        let deadline = model.get(&key).filter(|_| next > 1).and_then(|(_, d)| *d);
                        model.insert(key, (next, deadline));
                    }
                    Op::Expire { key, ttl_ms } => {
                        let exists = live(&model, key, now).is_some();
                        prop_assert_eq!(store.expire(&[key], now + Duration::from_millis(ttl_ms), ExpireIf::Always, &mut clock), exists);
                        if exists {
                            if ttl_ms == 0 { model.remove(&key); } else if let Some(e) = model.get_mut(&key) { e.1 = Some(now + Duration::from_millis(ttl_ms)); }
                        }
                    }
                    Op::Persist(key) => {
                        let had = live(&model, key, now).is_some() && model.get(&key).is_some_and(|(_, d)| d.is_some());
                        prop_assert_eq!(store.persist(&[key], &mut clock), had);
                        if let Some(e) = model.get_mut(&key).filter(|_| had) { e.1 = None; }
                    }
                    Op::Advance(ms) => now += Duration::from_millis(ms),
                    Op::Sweep => {
                        store.sweep(now);
                        model.retain(|_, (_, d)| d.is_none_or(|d| d > now));
                        prop_assert_eq!(store.len(), model.len());
                    }
                }
                for key in 0u8..6 {
                    let expected = live(&model, key, now).map(|v| Bytes::from(v.to_string()));
                    prop_assert_eq!(store.get(&[key], &mut Clock::at(now)).unwrap(), expected);
                }
            }
        }
    }
}
