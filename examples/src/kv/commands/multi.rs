//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH. Queued commands run under every
//! shard's lock (and the waiters' registry, taken first), so no other connection sees the
//! transaction half done: Redis's isolation.
//!
//! WATCH takes a digest of each key (value and deadline); EXEC, holding every shard, aborts
//! if any digest changed. Unlike Redis, a key written and then put back exactly as it was
//! does not abort the transaction: kv compares values, Redis counts writes.

use beamline::resp::Value;
use bytes::Bytes;

use super::super::session::{Multi, Session};
use super::super::shared::Shared;
use super::reply::error;
use super::{ALL_KEYS, Call, Keys, Reply, Spec, TX, lookup, rich, run};

pub(super) const SPECS: &[Spec] = &[
    rich("multi", 1, Keys::None, TX, multi),
    rich("exec", 1, Keys::None, TX, exec),
    rich("discard", 1, Keys::None, TX, discard),
    rich("watch", -2, ALL_KEYS, TX, watch),
    rich("unwatch", 1, Keys::None, TX, unwatch),
];

fn watch(c: &mut Call<'_, '_>) -> Reply {
    if c.session.multi.is_some() {
        return error("ERR WATCH inside MULTI is not allowed").into();
    }
    for key in &c.args[1..] {
        if c.session.watched.iter().any(|(k, _)| k == key) {
            continue;
        }
        let digest = c.db.fingerprint(key, c.clock);
        c.session
            .watched
            .push((Bytes::copy_from_slice(key), digest));
    }
    Value::ok().into()
}

fn unwatch(c: &mut Call<'_, '_>) -> Reply {
    c.session.watched.clear();
    Value::ok().into()
}

fn multi(c: &mut Call<'_, '_>) -> Reply {
    if c.session.multi.is_some() {
        return error("ERR MULTI calls can not be nested").into();
    }
    c.session.multi = Some(Multi::default());
    Value::ok().into()
}

fn discard(c: &mut Call<'_, '_>) -> Reply {
    c.session.watched.clear();
    match c.session.multi.take() {
        Some(_) => Value::ok().into(),
        None => error("ERR DISCARD without MULTI").into(),
    }
}

/// Queues a command for EXEC (it was checked: it exists, its arity is right).
pub(super) fn queue(args: &[&[u8]], session: &mut Session, shared: &Shared) -> Value {
    let Some(multi) = &mut session.multi else {
        return error("ERR EXEC without MULTI");
    };
    let size: usize = args.iter().map(|a| a.len() + 16).sum();
    if multi.bytes.saturating_add(size) > shared.max_request() {
        multi.refused = true;
        return error("ERR the commands queued by MULTI are over the request size limit");
    }
    multi.bytes += size;
    multi
        .queued
        .push(args.iter().map(|a| Bytes::copy_from_slice(a)).collect());
    Value::simple("QUEUED")
}

fn exec(c: &mut Call<'_, '_>) -> Reply {
    let Some(multi) = c.session.multi.take() else {
        return error("ERR EXEC without MULTI").into();
    };
    let watched = std::mem::take(&mut c.session.watched);
    if multi.refused {
        return error("EXECABORT Transaction discarded because of previous errors.").into();
    }
    let mut waiters = c.shared.blocking.lock();
    let mut db = c.shared.store.lock_all();
    if watched
        .iter()
        .any(|(key, digest)| db.fingerprint(key, c.clock) != *digest)
    {
        return Value::NullArray.into();
    }
    let mut replies = Vec::with_capacity(multi.queued.len());
    for queued in &multi.queued {
        let args: Vec<&[u8]> = queued.iter().map(|a| &a[..]).collect();
        let Some(spec) = args.first().and_then(|name| lookup(name)) else {
            continue;
        };
        let mut call = Call {
            args: &args,
            db: &mut db,
            shared: c.shared,
            session: c.session,
            clock: c.clock,
            ready: c.ready,
            waiters: Some(&mut waiters),
            exec: true,
        };
        match run(spec, &mut call) {
            Reply::Value(value) => replies.push(value),
            Reply::Many(values) => replies.extend(values),
            // A blocking command answers at once in a transaction.
            Reply::Block(blocked) => replies.push(blocked.on_timeout),
        }
    }
    Value::Array(replies).into()
}
