//! [`Db`]: the shards one command (or one transaction) holds, and what commands do with
//! keys through it.

use std::collections::VecDeque;
use std::sync::MutexGuard;

use bytes::Bytes;

use super::super::glob;
use super::super::rand;
use super::{Clock, Data, Entry, SHARDS, Shard, Store, Table, WrongType, shard_of};

/// The shards a command holds, taken in ascending order.
enum Held<'a> {
    /// None: the command works on the whole key space, a shard at a time.
    Nothing,
    /// The one shard of a single-key command (no allocation).
    One(usize, MutexGuard<'a, Shard>),
    /// Several, by ascending index (every shard for a transaction).
    Many(Vec<(usize, MutexGuard<'a, Shard>)>),
}

/// The key space as one command sees it: the shards of the keys it names, locked for its
/// whole run, so what it does is atomic, like a Redis command.
///
/// Reading a key that expired removes it (lazy expiry). A collection a command empties
/// must be removed by it ([`drop_if_empty`](Self::drop_if_empty)): Redis never keeps an
/// empty list, set or hash.
pub(crate) struct Db<'a> {
    store: &'a Store,
    held: Held<'a>,
}

impl std::fmt::Debug for Db<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shards: Vec<usize> = match &self.held {
            Held::Nothing => Vec::new(),
            Held::One(i, _) => vec![*i],
            Held::Many(held) => held.iter().map(|(i, _)| *i).collect(),
        };
        f.debug_struct("Db").field("shards", &shards).finish()
    }
}

/// Which type a command wants, to get it out of an entry.
pub(crate) trait Kind: Sized {
    fn of(data: &mut Data) -> Option<&mut Self>;
    fn of_ref(data: &Data) -> Option<&Self>;
    fn empty() -> Data;
}

impl Kind for VecDeque<Bytes> {
    fn of(data: &mut Data) -> Option<&mut Self> {
        match data {
            Data::List(list) => Some(list),
            _ => None,
        }
    }
    fn of_ref(data: &Data) -> Option<&Self> {
        match data {
            Data::List(list) => Some(list),
            _ => None,
        }
    }
    fn empty() -> Data {
        Data::List(VecDeque::new())
    }
}

impl Kind for Table<()> {
    fn of(data: &mut Data) -> Option<&mut Self> {
        match data {
            Data::Set(set) => Some(set),
            _ => None,
        }
    }
    fn of_ref(data: &Data) -> Option<&Self> {
        match data {
            Data::Set(set) => Some(set),
            _ => None,
        }
    }
    fn empty() -> Data {
        Data::Set(Table::default())
    }
}

impl Kind for Table<Bytes> {
    fn of(data: &mut Data) -> Option<&mut Self> {
        match data {
            Data::Hash(hash) => Some(hash),
            _ => None,
        }
    }
    fn of_ref(data: &Data) -> Option<&Self> {
        match data {
            Data::Hash(hash) => Some(hash),
            _ => None,
        }
    }
    fn empty() -> Data {
        Data::Hash(Table::default())
    }
}

/// A SCAN filter: keys matching a glob, of a type.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Filter<'p> {
    pub(crate) pattern: Option<&'p [u8]>,
    pub(crate) type_name: Option<&'p [u8]>,
}

impl<'a> Db<'a> {
    pub(super) fn lock(store: &'a Store, indices: impl Iterator<Item = usize>) -> Self {
        let mut indices = indices;
        let Some(first) = indices.next() else {
            return Db {
                store,
                held: Held::Nothing,
            };
        };
        // Only a command naming keys of several shards allocates.
        let mut others: Vec<usize> = indices.filter(|&i| i != first).collect();
        let held = if others.is_empty() {
            Held::One(first, store.guard(first))
        } else {
            others.push(first);
            others.sort_unstable();
            others.dedup();
            Held::Many(others.into_iter().map(|i| (i, store.guard(i))).collect())
        };
        Db { store, held }
    }

    fn shard(&mut self, key: &[u8]) -> &mut Shard {
        let index = shard_of(key);
        let found = match &mut self.held {
            Held::One(i, guard) if *i == index => Some(&mut **guard),
            Held::Many(held) => match held.binary_search_by_key(&index, |(i, _)| *i) {
                Ok(pos) => Some(&mut *held[pos].1),
                Err(_) => None,
            },
            _ => None,
        };
        found.expect("the command table names every key a command touches, and those are locked")
    }

    fn shard_ref(&self, key: &[u8]) -> Option<&Shard> {
        let index = shard_of(key);
        match &self.held {
            Held::One(i, guard) if *i == index => Some(&**guard),
            Held::Many(held) => held
                .binary_search_by_key(&index, |(i, _)| *i)
                .ok()
                .map(|pos| &*held[pos].1),
            _ => None,
        }
    }

    /// `key`'s entry, if it exists (an expired one is removed first).
    pub(crate) fn get(&mut self, key: &[u8], clock: &mut Clock) -> Option<&mut Entry> {
        self.shard(key).live(key, clock)
    }

    /// `key`'s entry without expiring it: for commands reading several keys at once, after
    /// [`expire`](Self::expire) on each.
    pub(crate) fn peek(&self, key: &[u8]) -> Option<&Entry> {
        self.shard_ref(key).and_then(|shard| shard.keys.get(key))
    }

    /// A digest of `key`'s value and deadline (0 if it does not exist), for WATCH: two
    /// digests differ when anything of the key changed in between (but for a change undone
    /// before the second digest).
    pub(crate) fn fingerprint(&mut self, key: &[u8], clock: &mut Clock) -> u64 {
        use std::hash::{BuildHasher, Hash, Hasher};
        // Fixed keys: a digest compares with one taken earlier in the same process.
        let state =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
        let one = |item: &dyn Fn(&mut std::collections::hash_map::DefaultHasher)| {
            let mut h = state.build_hasher();
            item(&mut h);
            h.finish()
        };
        let Some(entry) = self.get(key, clock) else {
            return 0;
        };
        let mut h = state.build_hasher();
        entry.deadline().hash(&mut h);
        entry.data.type_name().hash(&mut h);
        match &entry.data {
            Data::Str(s) => s.hash(&mut h),
            Data::Int(n) => n.to_string().as_bytes().hash(&mut h),
            Data::List(list) => list.hash(&mut h),
            // Sets and hashes have no order: a sum of each element's digest.
            Data::Set(set) => set
                .keys()
                .map(|m| one(&|h| m.hash(h)))
                .fold(0u64, u64::wrapping_add)
                .hash(&mut h),
            Data::Hash(hash) => hash
                .iter()
                .map(|(f, v)| one(&|h| (f, v).hash(h)))
                .fold(0u64, u64::wrapping_add)
                .hash(&mut h),
        }
        h.finish() | 1
    }

    /// Removes `key` if it expired.
    pub(crate) fn expire(&mut self, key: &[u8], clock: &mut Clock) {
        let _ = self.get(key, clock);
    }

    pub(crate) fn exists(&mut self, key: &[u8], clock: &mut Clock) -> bool {
        self.get(key, clock).is_some()
    }

    /// Sets `key` to a new value with no deadline (SET, MSET, GETSET).
    pub(crate) fn set(&mut self, key: &[u8], data: Data) {
        let shard = self.shard(key);
        shard.put(key, data);
        shard.retime(key, None);
    }

    /// Changes `key`'s value, keeping its deadline; creates it persistent if absent (APPEND,
    /// INCR, SETRANGE). Callers have read the key first, so an expired one is gone.
    pub(crate) fn put(&mut self, key: &[u8], data: Data) {
        self.shard(key).put(key, data);
    }

    /// Removes `key`; its entry if it existed (an expired one counts as absent).
    pub(crate) fn remove(&mut self, key: &[u8], clock: &mut Clock) -> Option<Entry> {
        let shard = self.shard(key);
        shard.live(key, clock)?;
        shard.remove(key)
    }

    /// Stores `entry` under `key`, deadline included, replacing what was there (RENAME,
    /// COPY).
    pub(crate) fn insert(&mut self, key: &[u8], entry: Entry) {
        let at = entry.deadline();
        let shard = self.shard(key);
        shard.remove(key);
        shard.put(key, entry.data);
        shard.retime(key, at);
    }

    /// Gives the existing `key` the deadline `at` (Unix ms), or none.
    pub(crate) fn set_deadline(&mut self, key: &[u8], at: Option<i64>) {
        self.shard(key).retime(key, at);
    }

    /// Removes `key` if it holds an emptied collection.
    pub(crate) fn drop_if_empty(&mut self, key: &[u8]) {
        let shard = self.shard(key);
        if shard
            .keys
            .get(key)
            .is_some_and(|e| e.data.is_empty_collection())
        {
            shard.remove(key);
        }
    }

    /// `key`'s string (SET's, or an integer's text); `None` if absent.
    pub(crate) fn string(
        &mut self,
        key: &[u8],
        clock: &mut Clock,
    ) -> Result<Option<Bytes>, WrongType> {
        self.get(key, clock).map(|e| e.data.string()).transpose()
    }

    /// `key`'s collection of kind `T` (a list, a set or a hash); `None` if absent.
    pub(crate) fn collection<T: Kind>(
        &mut self,
        key: &[u8],
        clock: &mut Clock,
    ) -> Result<Option<&mut T>, WrongType> {
        match self.get(key, clock) {
            None => Ok(None),
            Some(entry) => T::of(&mut entry.data).map(Some).ok_or(WrongType),
        }
    }

    /// `key`'s collection of kind `T`, created empty if absent: the caller adds to it.
    pub(crate) fn collection_or_new<T: Kind>(
        &mut self,
        key: &[u8],
        clock: &mut Clock,
    ) -> Result<&mut T, WrongType> {
        let shard = self.shard(key);
        if shard.live(key, clock).is_none() {
            shard.put(key, T::empty());
        }
        let entry = shard.keys.get_mut(key).ok_or(WrongType)?;
        T::of(&mut entry.data).ok_or(WrongType)
    }

    /// [`collection`](Self::collection), shared, after [`expire`](Self::expire): for reading
    /// several at once.
    pub(crate) fn peek_collection<T: Kind>(&self, key: &[u8]) -> Result<Option<&T>, WrongType> {
        match self.peek(key) {
            None => Ok(None),
            Some(entry) => T::of_ref(&entry.data).map(Some).ok_or(WrongType),
        }
    }

    /// Runs `f` on shard `index`: held already (a transaction holds them all), or under its
    /// own lock for the call.
    fn with_shard<R>(&mut self, index: usize, f: impl FnOnce(&mut Shard) -> R) -> R {
        match &mut self.held {
            Held::Many(held) if held.len() == SHARDS => f(&mut held[index].1),
            _ => f(&mut self.store.guard(index)),
        }
    }

    /// Runs `f` on every shard in turn.
    fn each_shard(&mut self, mut f: impl FnMut(&mut Shard)) {
        for index in 0..SHARDS {
            self.with_shard(index, &mut f);
        }
    }

    /// How many keys there are, counting expired ones not swept yet (Redis's DBSIZE).
    pub(crate) fn len(&mut self) -> usize {
        let mut n = 0;
        self.each_shard(|shard| n += shard.keys.len());
        n
    }

    /// How many keys have a deadline (INFO's keyspace line).
    pub(crate) fn expiring(&mut self) -> usize {
        let mut n = 0;
        self.each_shard(|shard| n += shard.expiries.len());
        n
    }

    /// Removes every key (FLUSHDB), a shard at a time; what was removed is freed outside the
    /// locks when the store is not held whole.
    pub(crate) fn clear(&mut self) {
        let mut old = Vec::new();
        self.each_shard(|shard| old.push(std::mem::take(shard)));
        drop(old);
    }

    /// The live keys matching `pattern` (KEYS).
    pub(crate) fn keys(&mut self, pattern: &[u8], clock: &mut Clock) -> Vec<Bytes> {
        let now = clock.now_ms();
        let all = pattern == b"*";
        let mut out = Vec::new();
        self.each_shard(|shard| {
            out.extend(
                shard
                    .keys
                    .iter()
                    .filter(|(key, entry)| {
                        entry.deadline().is_none_or(|at| at >= now)
                            && (all || glob::matches(pattern, key, false))
                    })
                    .map(|(key, _)| key.clone()),
            );
        });
        out
    }

    /// One step of SCAN: the live keys of the next `count` or so positions that pass
    /// `filter`, and the next cursor (0 when the walk is over). A cursor is a shard's index
    /// (bits 40 and up) and a position in its walk ([`Table::scan`]); a key present for the
    /// whole walk is returned at least once.
    pub(crate) fn scan(
        &mut self,
        cursor: u64,
        count: usize,
        filter: Filter<'_>,
        clock: &mut Clock,
    ) -> (u64, Vec<Bytes>) {
        const SHIFT: u32 = 40;
        let now = clock.now_ms();
        let mut shard = usize::try_from(cursor >> SHIFT).unwrap_or(SHARDS);
        let mut within = cursor & ((1 << SHIFT) - 1);
        let mut out = Vec::new();
        let mut looked = 0;
        while shard < SHARDS && looked < count {
            let next = self.with_shard(shard, |held| {
                let (range, next) = held.keys.scan(within, count - looked);
                looked += range.len();
                for at in range {
                    let Some((key, entry)) = held.keys.at(at) else {
                        continue;
                    };
                    let live = entry.deadline().is_none_or(|d| d >= now);
                    let typed = filter
                        .type_name
                        .is_none_or(|t| t.eq_ignore_ascii_case(entry.data.type_name().as_bytes()));
                    let matched = filter.pattern.is_none_or(|p| glob::matches(p, key, false));
                    if live && typed && matched {
                        out.push(key.clone());
                    }
                }
                next
            });
            if next == 0 {
                shard += 1;
                within = 0;
            } else {
                within = next;
            }
        }
        if shard >= SHARDS {
            return (0, out);
        }
        ((shard as u64) << SHIFT | within, out)
    }

    /// A live key chosen at random (RANDOMKEY); expired keys it meets are removed.
    pub(crate) fn random_key(&mut self, clock: &mut Clock) -> Option<Bytes> {
        // A few tries: each expired pick is removed, so a store full of expired keys empties.
        for _ in 0..100 {
            let mut sizes = [0usize; SHARDS];
            let mut total = 0;
            let mut index = 0;
            self.each_shard(|shard| {
                sizes[index] = shard.keys.len();
                total += sizes[index];
                index += 1;
            });
            if total == 0 {
                return None;
            }
            let mut pick = rand::below(total);
            let shard = sizes
                .iter()
                .position(|&n| {
                    if pick < n {
                        return true;
                    }
                    pick -= n;
                    false
                })
                .unwrap_or(0);
            let found = self.with_shard(shard, |held| {
                let key = held.keys.at(pick).map(|(key, _)| key.clone())?;
                held.live(&key, clock).is_some().then_some(key)
            });
            if found.is_some() {
                return found;
            }
        }
        None
    }
}
