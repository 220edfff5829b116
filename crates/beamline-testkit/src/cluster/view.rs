//! The slot map as the nodes report it, and the waits until they all agree.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use super::{CHANGE_TIMEOUT, COMMAND_TIMEOUT, POLL, RedisCluster, addr};
use crate::resp::{self, RedisReply};

/// One range of slots and who serves it, as every node must agree on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Range {
    pub(super) start: u16,
    pub(super) end: u16,
    pub(super) primary: SocketAddr,
    /// Sorted.
    pub(super) replicas: Vec<SocketAddr>,
}

impl RedisCluster {
    /// Waits (at most 30 s) until every live replica has applied everything its primary
    /// wrote (equal `master_repl_offset`), so that a failover loses no write made before.
    ///
    /// # Panics
    /// If the replicas do not catch up in time.
    pub fn wait_for_replication(&self) {
        let offset = |node: SocketAddr| -> Result<i64, String> {
            let info = self.info(node, &["INFO", "replication"])?;
            info.lines()
                .find_map(|l| l.strip_prefix("master_repl_offset:"))
                .and_then(|n| n.trim().parse().ok())
                .ok_or_else(|| format!("{node}: no master_repl_offset"))
        };
        let live = self.live_addrs();
        self.wait_until("the replicas to catch up with their primaries", |view| {
            view.iter().all(|range| {
                let Ok(primary) = offset(range.primary) else {
                    return false;
                };
                range
                    .replicas
                    .iter()
                    .filter(|r| live.contains(r))
                    .all(|&r| offset(r).is_ok_and(|o| o == primary))
            })
        });
    }

    /// The slot map as a live node sees it (the first that answers).
    pub(super) fn view(&self) -> Vec<Range> {
        let mut last = None;
        for node in self.live_addrs() {
            match view_of(node) {
                Ok(view) => return view,
                Err(e) => last = Some(e),
            }
        }
        panic!(
            "no live node answered CLUSTER SLOTS ({last:?})\n{}",
            self.logs()
        )
    }

    /// Waits until every live node reports `cluster_state:ok`, every replica's link to its
    /// primary is up, every live node reports the same slot map covering all 16,384 slots,
    /// and `done` holds of it.
    pub(super) fn wait_until(&self, what: &str, done: impl Fn(&[Range]) -> bool) {
        let deadline = Instant::now() + CHANGE_TIMEOUT;
        loop {
            let last = match self.agreed_view() {
                Ok(view) if done(&view) => return,
                Ok(view) => format!("agreed on {view:?}"),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                panic!(
                    "timed out waiting for {what}; last: {last}\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// The slot map every live node agrees on, or what is not settled yet.
    fn agreed_view(&self) -> Result<Vec<Range>, String> {
        let mut agreed: Option<Vec<Range>> = None;
        for node in self.live_addrs() {
            let info = self.info(node, &["CLUSTER", "INFO"])?;
            if !info.contains("cluster_state:ok") {
                return Err(format!("{node}: cluster_state is not ok"));
            }
            let replication = self.info(node, &["INFO", "replication"])?;
            if replication.contains("role:slave") && !replication.contains("master_link_status:up")
            {
                return Err(format!("{node}: replica not in sync with its primary"));
            }
            let view = view_of(node).map_err(|e| format!("{node}: CLUSTER SLOTS: {e}"))?;
            let covered: usize = view
                .iter()
                .map(|r| usize::from(r.end) - usize::from(r.start) + 1)
                .sum();
            if covered != 16_384 {
                return Err(format!("{node}: covers {covered} slots"));
            }
            match &agreed {
                Some(first) if *first != view => {
                    return Err(format!("{node} disagrees: {view:?} vs {first:?}"));
                }
                Some(_) => {}
                None => agreed = Some(view),
            }
        }
        agreed.ok_or_else(|| "no live node".to_owned())
    }

    fn info(&self, node: SocketAddr, args: &[&str]) -> Result<String, String> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        resp::command(node, &args, COMMAND_TIMEOUT)
            .map_err(|e| format!("{node}: {e}"))?
            .text()
            .ok_or_else(|| format!("{node}: {args:?} is not text"))
    }
}

pub(super) fn owner(view: &[Range], slot: u16) -> Option<SocketAddr> {
    view.iter()
        .find(|r| (r.start..=r.end).contains(&slot))
        .map(|r| r.primary)
}

/// `CLUSTER SLOTS` of one node, sorted by range, replicas sorted.
pub(super) fn view_of(node: SocketAddr) -> io::Result<Vec<Range>> {
    let reply = resp::command(node, &[b"CLUSTER", b"SLOTS"], COMMAND_TIMEOUT)?;
    let bad = |what: &str| io::Error::other(format!("CLUSTER SLOTS: {what} in {reply:?}"));
    let mut view = Vec::new();
    for entry in reply.items() {
        let items = entry.items();
        let slot = |i: usize| {
            items
                .get(i)
                .and_then(RedisReply::integer)
                .and_then(|n| u16::try_from(n).ok())
        };
        let (Some(start), Some(end)) = (slot(0), slot(1)) else {
            return Err(bad("a range without bounds"));
        };
        let mut nodes = items[2..].iter().map(|node| {
            let port = node.items().get(1).and_then(RedisReply::integer);
            port.and_then(|p| u16::try_from(p).ok()).map(addr)
        });
        let Some(Some(primary)) = nodes.next() else {
            return Err(bad("a range without a primary"));
        };
        let mut replicas: Vec<SocketAddr> = nodes
            .collect::<Option<_>>()
            .ok_or_else(|| bad("a node without a port"))?;
        replicas.sort();
        view.push(Range {
            start,
            end,
            primary,
            replicas,
        });
    }
    view.sort_by_key(|r| r.start);
    Ok(view)
}
