//! Blocked clients (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP), as processes waiting on keys.
//!
//! A blocked connection is its own process waiting in its mailbox: the registry remembers,
//! per key, the waiters in the order they blocked. A command that pushes to a list
//! reports the key as ready; once its locks are released, the registry serves the key's
//! waiters, longest waiting first (Redis's order), while the list has elements: it pops for
//! the waiter under the key's shard lock, and sends the reply to the waiter's process as a
//! message. A waiter whose process has exited is skipped and what was popped for it is put
//! back, so no element is lost to a client that went away. A BLMOVE's destination becomes
//! ready in turn (chains of BLMOVEs move an element along, as in Redis).
//!
//! Lock order: the registry, then shards. A blocking command takes the registry before its
//! shards (so a push cannot slip between its look at the list and its registration); a
//! pushing command reports ready keys only after releasing its shards.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use beamline::process::Addr;
use beamline::resp::Value;
use bytes::Bytes;
use tokio::time::Instant;

use super::commands::lists::{End, pop_some, push};
use super::commands::reply::wrong_type;
use super::session::KvMsg;
use super::store::{Clock, Db, Store};

/// What a blocked command does when its key gets elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// BLPOP, BRPOP: one element, answered `[key, element]`.
    Pop { end: End },
    /// BLMPOP: up to `count` elements, answered `[key, [elements]]`.
    Pops { end: End, count: usize },
    /// BLMOVE, BRPOPLPUSH: one element, pushed to `to` of `dest`, answered with it.
    Move { from: End, to: End, dest: Bytes },
}

impl Op {
    /// The reply when the wait ends with nothing (timeout, CLIENT UNBLOCK).
    pub(crate) fn nothing(&self) -> Value {
        match self {
            Op::Pop { .. } | Op::Pops { .. } => Value::NullArray,
            Op::Move { .. } => Value::Null,
        }
    }

    /// Runs the operation on `key` if it holds elements; `None` leaves the waiter waiting.
    /// `deliver` sends the reply and says whether the waiter took it; if not, what was
    /// popped goes back where it was. The key a move pushed to, when delivered.
    fn serve(
        &self,
        key: &[u8],
        db: &mut Db<'_>,
        clock: &mut Clock,
        deliver: impl FnOnce(Value) -> bool,
    ) -> Option<Served> {
        let list = db.collection::<VecDeque<Bytes>>(key, clock).ok()??;
        if list.is_empty() {
            return None;
        }
        let (end, count) = match self {
            Op::Pop { end } => (*end, 1),
            Op::Pops { end, count } => (*end, *count),
            Op::Move { from, dest, .. } => {
                // A destination of another type: the waiter gets WRONGTYPE, the element stays.
                if db.collection::<VecDeque<Bytes>>(dest, clock).is_err() {
                    let _ = deliver(wrong_type());
                    return Some(Served::Refused);
                }
                (*from, 1)
            }
        };
        let list = db.collection::<VecDeque<Bytes>>(key, clock).ok()??;
        let popped = pop_some(list, end, count);
        let key_bytes = Bytes::copy_from_slice(key);
        let reply = match self {
            Op::Pop { .. } => Value::Array(
                std::iter::once(Value::Bulk(key_bytes))
                    .chain(popped.iter().cloned().map(Value::Bulk))
                    .collect(),
            ),
            Op::Pops { .. } => Value::Array(vec![
                Value::Bulk(key_bytes),
                Value::Array(popped.iter().cloned().map(Value::Bulk).collect()),
            ]),
            Op::Move { .. } => Value::Bulk(popped[0].clone()),
        };
        if !deliver(reply) {
            // Back where they were, in their order.
            for item in popped.into_iter().rev() {
                match end {
                    End::Left => list.push_front(item),
                    End::Right => list.push_back(item),
                }
            }
            return Some(Served::Undelivered);
        }
        db.drop_if_empty(key);
        if let Op::Move { to, dest, .. } = self {
            // Checked above: the destination is a list or absent.
            let _ = push(db, dest, &popped, *to, clock);
            return Some(Served::Delivered(Some(dest.clone())));
        }
        Some(Served::Delivered(None))
    }
}

/// How serving one waiter went.
enum Served {
    /// Answered; a move made this key ready in turn.
    Delivered(Option<Bytes>),
    /// The waiter's process was gone: nothing changed, next waiter.
    Undelivered,
    /// Answered with an error; nothing changed.
    Refused,
}

/// A command that waits: what its connection needs to wait for it.
#[derive(Debug)]
pub(crate) struct Blocked {
    /// The wait's name in the registry (and in the reply that ends it).
    pub(crate) ticket: u64,
    /// When it times out (none: never).
    pub(crate) deadline: Option<Instant>,
    /// The reply if it times out.
    pub(crate) on_timeout: Value,
}

#[derive(Debug)]
struct Waiter {
    client: u64,
    addr: Addr<KvMsg>,
    keys: Vec<Bytes>,
    op: Op,
}

/// The waiters, by key in blocking order, by ticket, and by client.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    by_key: HashMap<Bytes, VecDeque<u64>>,
    waiters: HashMap<u64, Waiter>,
    by_client: HashMap<u64, u64>,
    next_ticket: u64,
}

/// The registry of blocked clients, shared by every connection of a server.
#[derive(Debug, Default)]
pub(crate) struct Blocking {
    registry: Mutex<Registry>,
    /// How many clients wait (INFO's `blocked_clients`); a push checks it before taking the
    /// registry's lock, so pushes cost nothing while nobody waits.
    waiting: AtomicUsize,
}

impl Blocking {
    pub(crate) fn lock(&self) -> Waiters<'_> {
        Waiters {
            registry: self.registry.lock().unwrap_or_else(PoisonError::into_inner),
            waiting: &self.waiting,
        }
    }

    /// How many clients wait.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Serves the waiters of `ready` keys (and of the keys moves push to in turn). Called
    /// with no shard locked.
    pub(crate) fn serve(&self, store: &Store, ready: &[Bytes], clock: &mut Clock) {
        // The count was raised under the shard lock a pushing command took after the waiter
        // registered, so a push that could matter sees it.
        if self.waiting() == 0 {
            return;
        }
        let mut waiters = self.lock();
        let mut queue: VecDeque<Bytes> = VecDeque::new();
        for key in ready {
            if !queue.contains(key) {
                queue.push_back(key.clone());
            }
        }
        while let Some(key) = queue.pop_front() {
            while let Some(ticket) = waiters.first(&key) {
                let Some(waiter) = waiters.registry.waiters.get(&ticket) else {
                    break;
                };
                if !waiter.addr.is_alive() {
                    waiters.cancel(ticket);
                    continue;
                }
                let dest = match &waiter.op {
                    Op::Move { dest, .. } => Some(dest.clone()),
                    _ => None,
                };
                let mut db = store.lock(std::iter::once(&key[..]).chain(dest.as_deref()));
                let addr = waiter.addr.clone();
                let served = waiter.op.serve(&key, &mut db, clock, |reply| {
                    addr.try_cast(KvMsg::Served { ticket, reply }).is_ok()
                });
                drop(db);
                match served {
                    None => break,
                    Some(Served::Delivered(pushed)) => {
                        waiters.cancel(ticket);
                        if let Some(dest) = pushed
                            && !queue.contains(&dest)
                        {
                            queue.push_back(dest);
                        }
                    }
                    Some(Served::Undelivered | Served::Refused) => {
                        waiters.cancel(ticket);
                    }
                }
            }
        }
    }
}

/// The registry, locked.
#[derive(Debug)]
pub(crate) struct Waiters<'a> {
    registry: MutexGuard<'a, Registry>,
    waiting: &'a AtomicUsize,
}

impl Waiters<'_> {
    /// Registers a wait of `client` (its process `addr`) on `keys`; its ticket.
    pub(crate) fn register(
        &mut self,
        client: u64,
        addr: Addr<KvMsg>,
        keys: &[&[u8]],
        op: Op,
    ) -> u64 {
        let registry = &mut *self.registry;
        registry.next_ticket += 1;
        let ticket = registry.next_ticket;
        let mut unique: Vec<Bytes> = Vec::with_capacity(keys.len());
        for key in keys {
            if !unique.iter().any(|k| k == key) {
                unique.push(Bytes::copy_from_slice(key));
            }
        }
        for key in &unique {
            registry
                .by_key
                .entry(key.clone())
                .or_default()
                .push_back(ticket);
        }
        registry.by_client.insert(client, ticket);
        registry.waiters.insert(
            ticket,
            Waiter {
                client,
                addr,
                keys: unique,
                op,
            },
        );
        self.waiting.fetch_add(1, Ordering::Relaxed);
        ticket
    }

    /// The longest waiting ticket on `key`.
    fn first(&self, key: &[u8]) -> Option<u64> {
        self.registry
            .by_key
            .get(key)
            .and_then(|q| q.front().copied())
    }

    /// Ends the wait `ticket`; whether it was still waiting (not served or cancelled).
    pub(crate) fn cancel(&mut self, ticket: u64) -> bool {
        let registry = &mut *self.registry;
        let Some(waiter) = registry.waiters.remove(&ticket) else {
            return false;
        };
        for key in &waiter.keys {
            if let Some(queue) = registry.by_key.get_mut(key) {
                queue.retain(|&t| t != ticket);
                if queue.is_empty() {
                    registry.by_key.remove(key);
                }
            }
        }
        if registry.by_client.get(&waiter.client) == Some(&ticket) {
            registry.by_client.remove(&waiter.client);
        }
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        true
    }

    /// CLIENT UNBLOCK: ends `client`'s wait with `reply` (or, for `None`, what a timeout
    /// answers); whether it was waiting.
    pub(crate) fn unblock(&mut self, client: u64, reply: Option<Value>) -> bool {
        let Some(&ticket) = self.registry.by_client.get(&client) else {
            return false;
        };
        let Some(waiter) = self.registry.waiters.get(&ticket) else {
            return false;
        };
        let reply = reply.unwrap_or_else(|| waiter.op.nothing());
        let addr = waiter.addr.clone();
        self.cancel(ticket);
        addr.try_cast(KvMsg::Served { ticket, reply }).is_ok()
    }
}
