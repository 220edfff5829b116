//! The key space: 64 independently locked shards of keys (strings, lists, sets, hashes), each
//! with its keys' deadlines in an index. Pure data structure: no sockets, and the time is
//! passed in ([`Clock`]).
//!
//! Why sharded: every connection is its own process on a multi-thread runtime, so two cores
//! serve two connections at once; one lock for the whole store would make them take turns.
//! A command locks the shards of the keys it names ([`Store::lock`], in ascending order, so
//! two commands never deadlock) and works on them through a [`Db`]; a transaction locks every
//! shard ([`Store::lock_all`]). A lock is held for one command's work and never across an
//! `.await` (nothing here is async). Commands on the whole key space (KEYS, SCAN, DBSIZE,
//! FLUSHALL) take the shards one at a time.

mod db;
mod table;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::time::Instant;

pub(crate) use self::db::{Db, Filter};
pub(crate) use self::table::Table;

/// How many shards: a power of two, many more than cores, so two connections rarely want
/// the same lock at the same moment.
pub(crate) const SHARDS: usize = 64;

/// The most expired keys one sweep removes from one shard under one lock acquisition, so a
/// sweep never holds a shard for long; what is left waits for the next sweep (and is already
/// invisible to commands).
pub(crate) const SWEEP_BUDGET: usize = 256;

/// Unix time in milliseconds at `at`, a monotonic instant: the wall clock is read once, when
/// first needed, and the monotonic clock measures from there (so tokio's paused time moves
/// it in tests, and a wall-clock step does not).
pub(crate) fn unix_ms(at: Instant) -> i64 {
    unix_micros(at).div_euclid(1000)
}

/// [`unix_ms`] in microseconds (TIME).
pub(crate) fn unix_micros(at: Instant) -> i64 {
    static BASE: OnceLock<(Instant, i64)> = OnceLock::new();
    let (base, base_us) = *BASE.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        (Instant::now(), wall)
    });
    let micros = |d: std::time::Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    base_us
        .saturating_add(micros(at.saturating_duration_since(base)))
        .saturating_sub(micros(base.saturating_duration_since(at)))
}

/// The time of a batch of commands, in Unix milliseconds, read from the clock once and only
/// if a command needs it (a key with a deadline, or a command that sets one).
#[derive(Debug, Default)]
pub(crate) struct Clock {
    now: Option<i64>,
}

impl Clock {
    /// A clock that reads the time when first asked.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A clock stopped at `now_ms` (the command models).
    #[cfg(test)]
    pub(crate) fn at_ms(now_ms: i64) -> Self {
        Self { now: Some(now_ms) }
    }

    /// Now, in Unix milliseconds.
    pub(crate) fn now_ms(&mut self) -> i64 {
        *self.now.get_or_insert_with(|| unix_ms(Instant::now()))
    }
}

/// What a key holds.
#[derive(Debug, Clone)]
pub(crate) enum Data {
    /// A string, as given to SET.
    Str(Bytes),
    /// A string that INCR made or last changed, kept as a number so that INCR allocates
    /// nothing; it reads as its decimal text, exactly as Redis shows an integer string.
    Int(i64),
    /// A list. Never empty: popping the last element removes the key.
    List(VecDeque<Bytes>),
    /// A set. Never empty.
    Set(Table<()>),
    /// A hash: field to value. Never empty.
    Hash(Table<Bytes>),
}

impl Data {
    /// The string value, for the string commands.
    pub(crate) fn string(&self) -> Result<Bytes, WrongType> {
        match self {
            Data::Str(s) => Ok(s.clone()),
            Data::Int(n) => Ok(Bytes::from(n.to_string())),
            _ => Err(WrongType),
        }
    }

    /// Redis's name for the type (`TYPE`).
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Data::Str(_) | Data::Int(_) => "string",
            Data::List(_) => "list",
            Data::Set(_) => "set",
            Data::Hash(_) => "hash",
        }
    }

    /// Whether a collection has no element left (the key must then go).
    fn is_empty_collection(&self) -> bool {
        match self {
            Data::List(list) => list.is_empty(),
            Data::Set(set) => set.is_empty(),
            Data::Hash(hash) => hash.is_empty(),
            Data::Str(_) | Data::Int(_) => false,
        }
    }
}

/// The key holds a value of another type than the command works on (Redis's `WRONGTYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WrongType;

/// A key's deadline: when it expires (Unix ms; expired once the time is past it), and its
/// place in the shard's expiry index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Deadline {
    at: i64,
    /// Makes index positions unique when deadlines are equal.
    seq: u64,
}

/// One key's value and deadline.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) data: Data,
    deadline: Option<Deadline>,
}

impl Entry {
    /// When the key expires (Unix ms), if it does.
    pub(crate) fn deadline(&self) -> Option<i64> {
        self.deadline.map(|d| d.at)
    }

    fn expired(&self, clock: &mut Clock) -> bool {
        self.deadline.is_some_and(|d| d.at < clock.now_ms())
    }
}

/// One shard: its keys, and their deadlines in order.
#[derive(Debug, Default)]
pub(crate) struct Shard {
    keys: Table<Entry>,
    /// Every key with a deadline, earliest first: the sweep pops from the front. Empty
    /// when no key of the shard has one, which lets lookups skip the expiry check.
    expiries: BTreeMap<(i64, u64), Bytes>,
    next_seq: u64,
}

impl Shard {
    /// `key`'s entry if it is live. An expired entry is removed first (lazy expiry), so
    /// `None` means the key does not exist.
    fn live(&mut self, key: &[u8], clock: &mut Clock) -> Option<&mut Entry> {
        if !self.expiries.is_empty() && self.keys.get(key).is_some_and(|e| e.expired(clock)) {
            self.remove(key);
            return None;
        }
        self.keys.get_mut(key)
    }

    /// Stores `data` under `key`: in place (keeping the deadline) if the key exists, as a
    /// new persistent key otherwise. Callers have removed an expired entry first (`live`).
    fn put(&mut self, key: &[u8], data: Data) {
        match self.keys.get_mut(key) {
            Some(entry) => entry.data = data,
            None => self.keys.insert_new(
                Bytes::copy_from_slice(key),
                Entry {
                    data,
                    deadline: None,
                },
            ),
        }
    }

    /// Removes `key` (expired or not) with its index position; its entry, if it was there.
    fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let entry = self.keys.remove(key)?;
        if let Some(d) = entry.deadline {
            self.expiries.remove(&(d.at, d.seq));
        }
        Some(entry)
    }

    /// Gives the existing `key` the deadline `at` (or none), keeping the index in step.
    fn retime(&mut self, key: &[u8], at: Option<i64>) {
        let Some(entry) = self.keys.get_mut(key) else {
            return;
        };
        let old = entry.deadline;
        if old.map(|d| d.at) == at {
            return;
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        entry.deadline = at.map(|at| Deadline { at, seq });
        if let Some(d) = old {
            self.expiries.remove(&(d.at, d.seq));
        }
        if let Some(at) = at {
            self.expiries.insert((at, seq), Bytes::copy_from_slice(key));
        }
    }

    /// Removes up to `budget` keys whose deadline is before `now_ms`; how many it removed.
    fn sweep(&mut self, now_ms: i64, budget: usize) -> usize {
        let mut removed = 0;
        while removed < budget {
            let Some(first) = self.expiries.first_entry() else {
                break;
            };
            if first.key().0 >= now_ms {
                break;
            }
            let key = first.remove();
            self.keys.remove(&key);
            removed += 1;
        }
        removed
    }
}

/// A shard, padded to its own cache lines so that two cores locking neighbouring shards do
/// not contend for one line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(Mutex<Shard>);

/// The whole key space: [`SHARDS`] independently locked shards.
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
pub(crate) fn shard_of(key: &[u8]) -> usize {
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

    fn guard(&self, index: usize) -> MutexGuard<'_, Shard> {
        // A shard's invariants hold between statements that cannot panic, so a poisoned
        // lock's data is still consistent.
        self.shards[index]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Locks the shards of `keys`, in ascending order, for one command.
    pub(crate) fn lock<'k>(&self, keys: impl Iterator<Item = &'k [u8]>) -> Db<'_> {
        Db::lock(self, keys.map(shard_of))
    }

    /// Locks every shard, for a transaction (EXEC).
    pub(crate) fn lock_all(&self) -> Db<'_> {
        Db::lock(self, 0..SHARDS)
    }

    /// How many keys are stored, counting expired ones the sweep has not removed yet
    /// (as Redis's DBSIZE does).
    pub(crate) fn len(&self) -> usize {
        (0..SHARDS).map(|i| self.guard(i).keys.len()).sum()
    }

    /// Removes keys whose deadline passed, up to [`SWEEP_BUDGET`] per shard; how many.
    pub(crate) fn sweep(&self, now_ms: i64) -> usize {
        (0..SHARDS)
            .map(|i| self.guard(i).sweep(now_ms, SWEEP_BUDGET))
            .sum()
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
