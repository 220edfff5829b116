//! The slot map: which primary (and which replicas) serve each of the 16,384 slots, read
//! from `CLUSTER SLOTS`, and the view most nodes agree on.

use std::sync::Arc;

use beamline_resp::Value;

use crate::slot::SLOTS;

/// No shard serves the slot.
const UNASSIGNED: u16 = u16::MAX;

/// One primary and its replicas, by announced address (`host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shard {
    pub(crate) primary: Arc<str>,
    /// Sorted, so that two nodes' views compare equal whatever order they list them in.
    pub(crate) replicas: Vec<Arc<str>>,
}

/// Who serves each slot. Immutable once built: the client swaps a whole new map in (a
/// `MOVED` copies it and changes one slot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlotMap {
    /// For each slot, an index into `shards`, or [`UNASSIGNED`].
    owners: Vec<u16>,
    shards: Vec<Shard>,
}

impl SlotMap {
    /// A map with no slot assigned (before the first refresh).
    pub(crate) fn empty() -> Self {
        SlotMap {
            owners: vec![UNASSIGNED; usize::from(SLOTS)],
            shards: Vec::new(),
        }
    }

    /// The primary serving `slot`, if the map knows one.
    pub(crate) fn primary(&self, slot: u16) -> Option<&Arc<str>> {
        let owner = *self.owners.get(usize::from(slot))?;
        self.shards.get(usize::from(owner)).map(|s| &s.primary)
    }

    /// The replicas of the shard serving `slot` (empty if none, or no shard).
    pub(crate) fn replicas(&self, slot: u16) -> &[Arc<str>] {
        self.owners
            .get(usize::from(slot))
            .and_then(|&owner| self.shards.get(usize::from(owner)))
            .map_or(&[], |shard| &shard.replicas)
    }

    /// Every primary, in the map's order.
    pub(crate) fn primaries(&self) -> impl Iterator<Item = &Arc<str>> {
        self.shards.iter().map(|s| &s.primary)
    }

    /// Every node the map names, primaries and replicas.
    pub(crate) fn nodes(&self) -> impl Iterator<Item = &Arc<str>> {
        self.shards
            .iter()
            .flat_map(|s| std::iter::once(&s.primary).chain(&s.replicas))
    }

    /// Whether no slot is assigned.
    pub(crate) fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// How many of the 16,384 slots have a primary in the map.
    pub(crate) fn served(&self) -> usize {
        self.owners.iter().filter(|&&o| o != UNASSIGNED).count()
    }

    /// A copy where `slot` is served by `primary` (a `MOVED` answer): a shard of that
    /// primary if the map has one, a new one otherwise.
    pub(crate) fn moved(&self, slot: u16, primary: &str) -> SlotMap {
        let mut map = self.clone();
        let index = match map.shards.iter().position(|s| &*s.primary == primary) {
            Some(index) => index,
            None => {
                map.shards.push(Shard {
                    primary: Arc::from(primary),
                    replicas: Vec::new(),
                });
                map.shards.len() - 1
            }
        };
        if let (Some(owner), Ok(index)) =
            (map.owners.get_mut(usize::from(slot)), u16::try_from(index))
        {
            *owner = index;
        }
        map
    }

    /// A copy where `replica`, a replica of the shard serving `slot`, is that shard's
    /// primary and the old primary one of its replicas (a failover: the roles swapped, and
    /// every slot of the shard moved with them); `None` when `replica` is not one of the
    /// shard's replicas.
    pub(crate) fn promoted(&self, slot: u16, replica: &str) -> Option<SlotMap> {
        let owner = usize::from(*self.owners.get(usize::from(slot))?);
        let shard = self.shards.get(owner)?;
        let at = shard.replicas.iter().position(|r| &**r == replica)?;
        let mut map = self.clone();
        let shard = &mut map.shards[owner];
        let new = shard.replicas.remove(at);
        let old = std::mem::replace(&mut shard.primary, new);
        shard.replicas.push(old);
        shard.replicas.sort();
        Some(map)
    }

    /// Reads a `CLUSTER SLOTS` reply. `asked` is the `host:port` of the node that gave it:
    /// a node listed with an empty or `?` host is on that host (the node does not know its
    /// own address).
    ///
    /// # Errors
    /// A description of what is malformed.
    pub(crate) fn from_cluster_slots(reply: &Value, asked: &str) -> Result<SlotMap, String> {
        let Value::Array(ranges) = reply else {
            return Err(format!("CLUSTER SLOTS answered {reply:?}"));
        };
        let asked_host = asked.rsplit_once(':').map_or(asked, |(host, _)| host);
        let mut map = SlotMap::empty();
        for range in ranges {
            let Value::Array(items) = range else {
                return Err(format!("a range that is not an array: {range:?}"));
            };
            let bound = |i: usize| match items.get(i) {
                Some(Value::Integer(n)) => u16::try_from(*n).ok().filter(|n| *n < SLOTS),
                _ => None,
            };
            let (Some(start), Some(end)) = (bound(0), bound(1)) else {
                return Err(format!("a range without valid bounds: {items:?}"));
            };
            let mut nodes = items.iter().skip(2).map(|node| node_addr(node, asked_host));
            let primary = match nodes.next() {
                Some(Ok(primary)) => primary,
                Some(Err(e)) => return Err(e),
                None => return Err(format!("slots {start}-{end} without a primary")),
            };
            let mut replicas = nodes.collect::<Result<Vec<_>, _>>()?;
            replicas.sort();
            let shard = Shard { primary, replicas };
            let index = match map.shards.iter().position(|s| *s == shard) {
                Some(index) => index,
                None => {
                    map.shards.push(shard);
                    map.shards.len() - 1
                }
            };
            let index = u16::try_from(index).map_err(|_| "too many shards".to_owned())?;
            for slot in start..=end {
                map.owners[usize::from(slot)] = index;
            }
        }
        Ok(map)
    }
}

/// `host:port` of one node entry (`[host, port, id, ...]`) of `CLUSTER SLOTS`.
fn node_addr(node: &Value, asked_host: &str) -> Result<Arc<str>, String> {
    let Value::Array(fields) = node else {
        return Err(format!("a node that is not an array: {node:?}"));
    };
    let host = match fields.first() {
        Some(v) => v.as_str().unwrap_or_default(),
        None => "",
    };
    let host = if host.is_empty() || host == "?" {
        asked_host
    } else {
        host
    };
    let Some(Value::Integer(port)) = fields.get(1) else {
        return Err(format!("a node without a port: {fields:?}"));
    };
    Ok(Arc::from(format!("{host}:{port}")))
}

/// The view most of `views` agree on (equal maps), the earliest among ties; `None` when
/// there is none.
pub(crate) fn majority(views: Vec<SlotMap>) -> Option<SlotMap> {
    let mut counted: Vec<(SlotMap, usize)> = Vec::new();
    for view in views {
        match counted.iter_mut().find(|(seen, _)| *seen == view) {
            Some((_, votes)) => *votes += 1,
            None => counted.push((view, 1)),
        }
    }
    let best = counted.iter().map(|(_, votes)| *votes).max()?;
    counted
        .into_iter()
        .find(|(_, votes)| *votes == best)
        .map(|(view, _)| view)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::bulk(host.to_owned()),
            Value::Integer(port),
            Value::bulk("id"),
        ])
    }

    fn range(start: i64, end: i64, nodes: Vec<Value>) -> Value {
        let mut items = vec![Value::Integer(start), Value::Integer(end)];
        items.extend(nodes);
        Value::Array(items)
    }

    fn three_shards() -> Value {
        Value::Array(vec![
            range(
                0,
                5460,
                vec![node("127.0.0.1", 7000), node("127.0.0.1", 7003)],
            ),
            range(5461, 10922, vec![node("127.0.0.1", 7001), node("", 7004)]),
            range(10923, 16383, vec![node("127.0.0.1", 7002)]),
        ])
    }

    #[test]
    fn reads_cluster_slots() {
        let map = SlotMap::from_cluster_slots(&three_shards(), "127.0.0.9:7001").unwrap();
        assert_eq!(map.primary(0).map(|p| &**p), Some("127.0.0.1:7000"));
        assert_eq!(map.primary(5461).map(|p| &**p), Some("127.0.0.1:7001"));
        assert_eq!(map.primary(16383).map(|p| &**p), Some("127.0.0.1:7002"));
        assert_eq!(map.primary(16384), None);
        let nodes: Vec<&str> = map.nodes().map(|n| &**n).collect();
        // An empty host is the host of the node asked.
        assert!(nodes.contains(&"127.0.0.9:7004"), "{nodes:?}");
        assert_eq!(map.primaries().count(), 3);
        let replicas: Vec<&str> = map.replicas(0).iter().map(|r| &**r).collect();
        assert_eq!(replicas, ["127.0.0.1:7003"]);
        assert!(map.replicas(16383).is_empty());
        assert!(SlotMap::empty().replicas(0).is_empty());
        assert!(SlotMap::from_cluster_slots(&Value::Integer(1), "x:1").is_err());
        assert!(
            SlotMap::from_cluster_slots(&Value::Array(vec![range(0, 99_999, vec![])]), "x:1")
                .is_err()
        );
    }

    #[test]
    fn moved_changes_one_slot() {
        let map = SlotMap::from_cluster_slots(&three_shards(), "127.0.0.1:7000").unwrap();
        let moved = map.moved(42, "127.0.0.1:7002");
        assert_eq!(moved.primary(42).map(|p| &**p), Some("127.0.0.1:7002"));
        assert_eq!(moved.primary(43).map(|p| &**p), Some("127.0.0.1:7000"));
        let new = map.moved(42, "127.0.0.1:7777");
        assert_eq!(new.primary(42).map(|p| &**p), Some("127.0.0.1:7777"));
        assert_eq!(new.primaries().count(), 4);
        assert!(SlotMap::empty().primary(42).is_none());
        assert!(SlotMap::empty().is_empty());
        assert_eq!(map.served(), usize::from(SLOTS));
        assert_eq!(SlotMap::empty().served(), 0);
    }

    #[test]
    fn a_promoted_replica_takes_its_whole_shard() {
        let map = SlotMap::from_cluster_slots(&three_shards(), "127.0.0.1:7000").unwrap();
        let swapped = map.promoted(42, "127.0.0.1:7003").unwrap();
        for slot in [0, 42, 5460] {
            assert_eq!(swapped.primary(slot).map(|p| &**p), Some("127.0.0.1:7003"));
            let replicas: Vec<&str> = swapped.replicas(slot).iter().map(|r| &**r).collect();
            assert_eq!(replicas, ["127.0.0.1:7000"]);
        }
        assert_eq!(swapped.primary(5461), map.primary(5461));
        assert_eq!(swapped.primaries().count(), 3);
        // Not a replica of that slot's shard (another shard's, or unknown): no change.
        assert!(map.promoted(42, "127.0.0.1:7004").is_none());
        assert!(map.promoted(42, "127.0.0.1:7000").is_none());
        assert!(SlotMap::empty().promoted(42, "127.0.0.1:7003").is_none());
    }

    #[test]
    fn the_majority_view_wins() {
        let a = SlotMap::from_cluster_slots(&three_shards(), "127.0.0.1:7000").unwrap();
        let b = a.moved(1, "127.0.0.1:7002");
        assert_eq!(
            majority(vec![b.clone(), a.clone(), a.clone()]),
            Some(a.clone())
        );
        assert_eq!(majority(vec![b.clone(), a.clone()]), Some(b));
        assert_eq!(majority(Vec::new()), None);
    }
}
