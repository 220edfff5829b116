//! A map keyed by `u64` that costs nothing while empty and stays O(1) when large.
//!
//! Most processes have zero or one link (their supervisor) and no monitors, but a supervisor of
//! 10,000 connections has 10,000 links, and removing one must not scan them all. So: an
//! unallocated `Vec` while empty, a linear `Vec` while small, a boxed `HashMap` past
//! [`SMALL`] entries.

use std::collections::HashMap;

/// Entries kept in a linear `Vec` before switching to a `HashMap`.
const SMALL: usize = 16;

pub(crate) enum IdMap<V> {
    Small(Vec<(u64, V)>),
    Large(Box<HashMap<u64, V>>),
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        Self::Small(Vec::new())
    }
}

impl<V> IdMap<V> {
    /// Inserts or replaces the entry for `key`.
    pub(crate) fn insert(&mut self, key: u64, value: V) {
        match self {
            Self::Small(entries) => {
                if let Some(slot) = entries.iter_mut().find(|(k, _)| *k == key) {
                    slot.1 = value;
                } else if entries.len() < SMALL {
                    entries.push((key, value));
                } else {
                    let mut map: HashMap<u64, V> = std::mem::take(entries).into_iter().collect();
                    map.insert(key, value);
                    *self = Self::Large(Box::new(map));
                }
            }
            Self::Large(map) => {
                map.insert(key, value);
            }
        }
    }

    pub(crate) fn remove(&mut self, key: u64) -> Option<V> {
        match self {
            Self::Small(entries) => {
                let at = entries.iter().position(|(k, _)| *k == key)?;
                Some(entries.swap_remove(at).1)
            }
            Self::Large(map) => map.remove(&key),
        }
    }

    pub(crate) fn get_mut(&mut self, key: u64) -> Option<&mut V> {
        match self {
            Self::Small(entries) => entries.iter_mut().find(|(k, _)| *k == key).map(|(_, v)| v),
            Self::Large(map) => map.get_mut(&key),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Small(entries) => entries.len(),
            Self::Large(map) => map.len(),
        }
    }

    /// Takes every entry out, leaving the map empty and unallocated.
    pub(crate) fn take_all(&mut self) -> Vec<(u64, V)> {
        match std::mem::take(self) {
            Self::Small(entries) => entries,
            Self::Large(map) => map.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_past_small_and_keeps_every_entry() {
        let mut map = IdMap::default();
        for k in 0..100_u64 {
            map.insert(k, k * 10);
        }
        assert!(matches!(map, IdMap::Large(_)));
        assert_eq!(map.len(), 100);
        assert_eq!(map.remove(42), Some(420));
        assert_eq!(map.remove(42), None);
        *map.get_mut(7).unwrap() = 1;
        let mut all = map.take_all();
        all.sort_unstable();
        assert_eq!(all.len(), 99);
        assert_eq!(all[7], (7, 1));
        assert_eq!(map.len(), 0);
    }

    #[test]
    fn insert_replaces_and_empty_map_does_not_allocate() {
        let mut map = IdMap::default();
        if let IdMap::Small(v) = &map {
            assert_eq!(v.capacity(), 0);
        }
        map.insert(1, "a");
        map.insert(1, "b");
        assert_eq!(map.len(), 1);
        assert_eq!(map.remove(1), Some("b"));
    }
}
