//! A map keyed by `u64` that costs nothing while empty and stays O(1) when large.
//!
//! Most processes have zero or one link (their supervisor) and no monitors, but a supervisor of
//! 10,000 connections has 10,000 links, and removing one must not scan them all. So: nothing
//! allocated while empty or holding one entry, a linear `Vec` while small, a boxed `HashMap`
//! past [`SMALL`] entries.

use std::collections::HashMap;

/// Entries kept in a linear `Vec` before switching to a `HashMap`.
const SMALL: usize = 16;

#[derive(Default)]
pub(crate) enum IdMap<V> {
    #[default]
    Empty,
    One(u64, V),
    Small(Vec<(u64, V)>),
    // Boxed on purpose: a `HashMap` inline would make every process's record 16 bytes larger
    // for the sake of the rare process with more than `SMALL` links or monitors.
    #[allow(clippy::box_collection)]
    Large(Box<HashMap<u64, V>>),
}

impl<V> IdMap<V> {
    /// Inserts or replaces the entry for `key`.
    pub(crate) fn insert(&mut self, key: u64, value: V) {
        match self {
            Self::Empty => *self = Self::One(key, value),
            Self::One(k, v) if *k == key => *v = value,
            Self::One(..) => {
                let Self::One(k, v) = std::mem::take(self) else {
                    return;
                };
                *self = Self::Small(vec![(k, v), (key, value)]);
            }
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
            Self::Empty => None,
            Self::One(k, _) if *k == key => match std::mem::take(self) {
                Self::One(_, v) => Some(v),
                _ => None,
            },
            Self::One(..) => None,
            Self::Small(entries) => {
                let at = entries.iter().position(|(k, _)| *k == key)?;
                let value = entries.swap_remove(at).1;
                if entries.is_empty() {
                    *self = Self::Empty;
                }
                Some(value)
            }
            Self::Large(map) => map.remove(&key),
        }
    }

    pub(crate) fn get_mut(&mut self, key: u64) -> Option<&mut V> {
        match self {
            Self::Empty => None,
            Self::One(k, v) => (*k == key).then_some(v),
            Self::Small(entries) => entries.iter_mut().find(|(k, _)| *k == key).map(|(_, v)| v),
            Self::Large(map) => map.get_mut(&key),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Empty => 0,
            Self::One(..) => 1,
            Self::Small(entries) => entries.len(),
            Self::Large(map) => map.len(),
        }
    }

    /// Takes every entry out, leaving the map empty and unallocated.
    pub(crate) fn take_all(&mut self) -> Vec<(u64, V)> {
        match std::mem::take(self) {
            Self::Empty => Vec::new(),
            Self::One(k, v) => vec![(k, v)],
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
    fn insert_replaces_and_one_entry_is_held_inline() {
        let mut map = IdMap::default();
        map.insert(1, "a");
        map.insert(1, "b");
        assert!(matches!(map, IdMap::One(1, "b")));
        assert_eq!(map.remove(2), None);
        map.insert(2, "c");
        assert_eq!(map.len(), 2);
        assert_eq!(map.get_mut(1).copied(), Some("b"));
        assert_eq!(map.remove(1), Some("b"));
        assert_eq!(map.remove(2), Some("c"));
        assert_eq!(map.len(), 0);
        map.insert(3, "d");
        assert_eq!(map.remove(3), Some("d"));
        assert!(matches!(map, IdMap::Empty));
    }
}
