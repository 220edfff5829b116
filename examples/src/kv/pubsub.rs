//! Pub/Sub: every subscriber is its connection's process, and a publish is a message to each.
//!
//! The hub maps channels and patterns to subscribers' addresses. PUBLISH encodes the
//! message's frame once and offers it to each subscriber's mailbox without waiting
//! (`try_cast`). Each subscriber has a backlog: the bytes published to it that its socket
//! has not taken yet (in its mailbox, or written and not flushed). A publish that would take
//! a backlog past the limit (Redis's `client-output-buffer-limit pubsub`, 32 MiB by default)
//! disconnects that subscriber instead — its process is killed, its connection closes — and
//! the others keep receiving: one subscriber that stops reading never grows the server's
//! memory, the rule the chat example's room applies to slow members.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use beamline::process::{Addr, ProcessId, TryCastError};
use bytes::{BufMut, Bytes, BytesMut};

use super::glob;
use super::session::KvMsg;

/// What a message costs a backlog beyond its frame: the mailbox slot and its handle.
pub(crate) const MESSAGE_OVERHEAD: usize = 64;

/// Redis's default hard limit for a subscriber's output: 32 MiB.
pub(crate) const DEFAULT_OUTPUT_LIMIT: usize = 32 * 1024 * 1024;

/// One connection's subscriptions.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    pub(crate) channels: BTreeSet<Bytes>,
    pub(crate) patterns: BTreeSet<Bytes>,
    /// Bytes published to it that its socket has not taken yet.
    pub(crate) backlog: Arc<AtomicUsize>,
}

impl Subscriptions {
    /// How many channels and patterns (the count SUBSCRIBE's replies carry).
    pub(crate) fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }
}

#[derive(Debug, Clone)]
struct Subscriber {
    addr: Addr<KvMsg>,
    backlog: Arc<AtomicUsize>,
}

type Subscribers = HashMap<Bytes, HashMap<ProcessId, Subscriber>>;

/// Every channel's and pattern's subscribers, shared by the connections of one server.
#[derive(Debug)]
pub(crate) struct Hub {
    channels: RwLock<Subscribers>,
    patterns: RwLock<Subscribers>,
    /// The most bytes a subscriber may be behind.
    limit: AtomicUsize,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new(DEFAULT_OUTPUT_LIMIT)
    }
}

/// Which table: channels or patterns.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Channel,
    Pattern,
}

impl Hub {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            channels: RwLock::default(),
            patterns: RwLock::default(),
            limit: AtomicUsize::new(limit),
        }
    }

    /// The output limit in force (CONFIG GET client-output-buffer-limit).
    pub(crate) fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Changes the output limit (0: none, as in Redis).
    pub(crate) fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    fn table(&self, kind: Kind) -> &RwLock<Subscribers> {
        match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
        }
    }

    /// Adds `addr` as a subscriber of `name`.
    pub(crate) fn subscribe(
        &self,
        kind: Kind,
        name: &Bytes,
        addr: &Addr<KvMsg>,
        backlog: &Arc<AtomicUsize>,
    ) {
        let mut table = self
            .table(kind)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        table.entry(name.clone()).or_default().insert(
            addr.id(),
            Subscriber {
                addr: addr.clone(),
                backlog: backlog.clone(),
            },
        );
    }

    /// Removes subscriber `id` from `name`.
    pub(crate) fn unsubscribe(&self, kind: Kind, name: &[u8], id: ProcessId) {
        let mut table = self
            .table(kind)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(subscribers) = table.get_mut(name) {
            subscribers.remove(&id);
            if subscribers.is_empty() {
                table.remove(name);
            }
        }
    }

    /// Sends `message` to the subscribers of `channel` and of the patterns it matches; how
    /// many received it. A subscriber too far behind is disconnected instead.
    pub(crate) fn publish(&self, channel: &[u8], message: &[u8]) -> usize {
        let limit = self.limit();
        let mut received = 0;
        {
            let channels = self.channels.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(subscribers) = channels.get(channel) {
                let frame = encode(&[b"message", channel, message]);
                received += subscribers
                    .values()
                    .filter(|s| deliver(s, &frame, limit))
                    .count();
            }
        }
        let patterns = self.patterns.read().unwrap_or_else(PoisonError::into_inner);
        for (pattern, subscribers) in patterns.iter() {
            if glob::matches(pattern, channel, false) {
                let frame = encode(&[b"pmessage", pattern, channel, message]);
                received += subscribers
                    .values()
                    .filter(|s| deliver(s, &frame, limit))
                    .count();
            }
        }
        received
    }

    /// The channels with at least one subscriber, matching `pattern` if given (PUBSUB
    /// CHANNELS).
    pub(crate) fn channels(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let channels = self.channels.read().unwrap_or_else(PoisonError::into_inner);
        channels
            .keys()
            .filter(|c| pattern.is_none_or(|p| glob::matches(p, c, false)))
            .cloned()
            .collect()
    }

    /// How many subscribe to `channel` (PUBSUB NUMSUB).
    pub(crate) fn numsub(&self, channel: &[u8]) -> usize {
        let channels = self.channels.read().unwrap_or_else(PoisonError::into_inner);
        channels.get(channel).map_or(0, HashMap::len)
    }

    /// How many patterns have subscribers (PUBSUB NUMPAT).
    pub(crate) fn numpat(&self) -> usize {
        self.patterns
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Offers `frame` to one subscriber; whether it took it. One that would fall more than
/// `limit` bytes behind is killed instead (0: no limit).
fn deliver(subscriber: &Subscriber, frame: &Bytes, limit: usize) -> bool {
    let cost = frame.len() + MESSAGE_OVERHEAD;
    let behind = subscriber.backlog.fetch_add(cost, Ordering::Relaxed) + cost;
    if limit != 0 && behind > limit {
        subscriber.backlog.fetch_sub(cost, Ordering::Relaxed);
        tracing::debug!(
            pid = %subscriber.addr.id(),
            behind,
            limit,
            "subscriber disconnected: too far behind"
        );
        subscriber.addr.kill();
        return false;
    }
    match subscriber.addr.try_cast(KvMsg::Published(frame.clone())) {
        Ok(()) => true,
        Err(TryCastError::Full { .. }) => {
            // As many messages as the mailbox holds are waiting: as good as too far behind.
            subscriber.backlog.fetch_sub(cost, Ordering::Relaxed);
            subscriber.addr.kill();
            false
        }
        Err(_) => {
            subscriber.backlog.fetch_sub(cost, Ordering::Relaxed);
            false
        }
    }
}

/// The RESP frame of an array of bulk strings.
pub(crate) fn encode(items: &[&[u8]]) -> Bytes {
    let len = items.iter().map(|i| i.len() + 16).sum::<usize>() + 16;
    let mut out = BytesMut::with_capacity(len);
    out.put_slice(format!("*{}\r\n", items.len()).as_bytes());
    for item in items {
        out.put_slice(format!("${}\r\n", item.len()).as_bytes());
        out.put_slice(item);
        out.put_slice(b"\r\n");
    }
    out.freeze()
}
