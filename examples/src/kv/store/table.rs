//! [`Table`]: a hash map that also keeps its keys in a vector, for the three things Redis
//! does with a hash table that a plain map cannot do cheaply: pick a random key (RANDOMKEY,
//! SPOP, SRANDMEMBER, HRANDFIELD), and iterate with a cursor that survives changes between
//! calls (SCAN, SSCAN, HSCAN).
//!
//! A lookup is one hash lookup, as in a plain map. Each key is held twice (the map's and the
//! vector's handles share one allocation), and removing one moves the vector's last key into
//! its place (`swap_remove`).
//!
//! The cursor walks the vector from its end to its start. Keys only ever move from the end
//! towards a hole left by a removal, so a key present from the first call to the last is
//! returned at least once: SCAN's guarantee. (While the walk is at position `p`, the keys at
//! `p` and above were returned; a removal below `p` moves the last key — one already returned
//! — down, where it may be returned again; a removal above `p` moves a returned key to
//! another returned place; a key is never moved from below `p` to above it.) Keys added
//! during the walk may or may not be returned, as in Redis.

use std::collections::HashMap;

use bytes::Bytes;

use super::super::rand;

/// A map from byte-string keys to `V` whose keys can also be picked at random and walked
/// with a cursor. See the module docs.
#[derive(Debug, Clone)]
pub(crate) struct Table<V> {
    map: HashMap<Bytes, Slot<V>>,
    order: Vec<Bytes>,
}

#[derive(Debug, Clone)]
struct Slot<V> {
    value: V,
    /// Where the key is in `order`.
    at: usize,
}

impl<V> Default for Table<V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            order: Vec::new(),
        }
    }
}

impl<V> Table<V> {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            map: HashMap::with_capacity(n),
            order: Vec::with_capacity(n),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<&V> {
        self.map.get(key).map(|slot| &slot.value)
    }

    pub(crate) fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        self.map.get_mut(key).map(|slot| &mut slot.value)
    }

    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        self.map.contains_key(key)
    }

    /// Sets `key` to `value`; the value it replaced, if any.
    pub(crate) fn insert(&mut self, key: &[u8], value: V) -> Option<V> {
        if let Some(slot) = self.map.get_mut(key) {
            return Some(std::mem::replace(&mut slot.value, value));
        }
        self.insert_new(Bytes::copy_from_slice(key), value);
        None
    }

    /// Adds `key`, known to be absent.
    pub(crate) fn insert_new(&mut self, key: Bytes, value: V) {
        let at = self.order.len();
        self.order.push(key.clone());
        self.map.insert(key, Slot { value, at });
    }

    /// Removes `key`; its value, if it was there.
    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<V> {
        let slot = self.map.remove(key)?;
        self.order.swap_remove(slot.at);
        if let Some(moved) = self.order.get(slot.at)
            && let Some(moved) = self.map.get_mut(moved)
        {
            moved.at = slot.at;
        }
        Some(slot.value)
    }

    /// The key at position `at` of the walk order, with its value.
    pub(crate) fn at(&self, at: usize) -> Option<(&Bytes, &V)> {
        let key = self.order.get(at)?;
        self.map.get(key).map(|slot| (key, &slot.value))
    }

    /// A key chosen uniformly at random, with its value.
    pub(crate) fn random(&self) -> Option<(&Bytes, &V)> {
        if self.order.is_empty() {
            return None;
        }
        self.at(rand::below(self.order.len()))
    }

    /// Every key with its value, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Bytes, &V)> {
        self.map.iter().map(|(key, slot)| (key, &slot.value))
    }

    /// Every key, in no particular order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &Bytes> {
        self.order.iter()
    }

    /// One step of a cursor walk: the positions to return for `cursor` (0 starts a walk), at
    /// most `count`, and the cursor of the next step (0: the walk is over).
    pub(crate) fn scan(&self, cursor: u64, count: usize) -> (std::ops::Range<usize>, u64) {
        let len = self.order.len();
        // A cursor counts the positions still to walk, from the end: 0 starts at the end.
        let remaining = if cursor == 0 {
            len
        } else {
            usize::try_from(cursor).unwrap_or(usize::MAX).min(len)
        };
        let start = remaining.saturating_sub(count.max(1));
        let next = if start == 0 { 0 } else { start as u64 };
        (start..remaining, next)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn key(i: usize) -> Vec<u8> {
        format!("k{i}").into_bytes()
    }

    #[test]
    fn removals_keep_the_map_and_the_order_in_step() {
        let mut t = Table::default();
        for i in 0..10 {
            assert_eq!(t.insert(&key(i), i), None);
        }
        assert_eq!(t.insert(&key(3), 33), Some(3));
        for i in [0, 9, 4, 4] {
            t.remove(&key(i));
        }
        assert_eq!(t.len(), 7);
        for at in 0..t.len() {
            let (k, v) = t.at(at).unwrap();
            assert_eq!(t.get(k), Some(v));
        }
        assert!(t.contains(&key(3)) && !t.contains(&key(4)));
        assert_eq!(t.keys().count(), 7);
    }

    #[test]
    fn a_walk_returns_every_key_present_throughout_despite_changes() {
        let mut t = Table::default();
        for i in 0..200 {
            t.insert(&key(i), ());
        }
        // Keys 0..100 stay; 100..200 are removed and new keys added as the walk goes.
        let mut seen = BTreeSet::new();
        let mut cursor = 0;
        let mut step = 0;
        loop {
            let (range, next) = t.scan(cursor, 7);
            for at in range {
                seen.insert(t.at(at).unwrap().0.clone());
            }
            step += 1;
            for i in [100 + step * 3, 101 + step * 3, 102 + step * 3] {
                t.remove(&key(i));
            }
            t.insert(&key(1000 + step), ());
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        for i in 0..100 {
            assert!(seen.contains(&key(i)[..]), "k{i} was never returned");
        }
    }

    #[test]
    fn a_walk_of_an_empty_or_shrunk_table_ends() {
        let t: Table<()> = Table::default();
        assert_eq!(t.scan(0, 10), (0..0, 0));
        let mut t = Table::default();
        for i in 0..5 {
            t.insert(&key(i), ());
        }
        // A cursor past the end (the table shrank) walks what is left.
        assert_eq!(t.scan(1000, 2), (3..5, 3));
        assert_eq!(t.scan(3, 10), (0..3, 0));
    }

    #[test]
    fn random_picks_every_key() {
        let mut t = Table::default();
        for i in 0..4 {
            t.insert(&key(i), ());
        }
        let picked: BTreeSet<Bytes> = (0..200).map(|_| t.random().unwrap().0.clone()).collect();
        assert_eq!(picked.len(), 4);
        assert!(Table::<()>::default().random().is_none());
    }
}
