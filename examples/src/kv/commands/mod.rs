//! The commands: arguments in, a reply out, errors worded exactly as Redis words them.
//! No sockets here; the time comes from the batch's [`Clock`].
//!
//! Each family is a module with its table of [`Spec`]s: name, arity, which arguments are
//! keys, flags, and the function. [`execute`] looks a command up, checks its arity and the
//! connection's state (subscribed, inside MULTI), locks the shards of its keys (and, for a
//! blocking command, the waiters' registry first), runs it, and once the locks are released
//! serves the clients blocked on keys it pushed to.

pub(crate) mod blocking;
mod expire;
mod hashes;
mod keys;
pub(crate) mod lists;
mod multi;
mod pubsub;
mod ranges;
pub(crate) mod reply;
mod server;
mod sets;
mod strings;

use std::collections::HashMap;
use std::sync::OnceLock;

use beamline::resp::Value;
use bytes::Bytes;

pub(crate) use self::pubsub::leave as pubsub_leave;
pub(crate) use self::reply::Reply;
use self::reply::{Outcome, error_text, unknown_command, wrong_arity};
use super::blocking::Waiters;
use super::session::Session;
use super::shared::Shared;
use super::store::{Clock, Db, parse_int};

/// Which arguments are keys (Redis's key specs): the shards the dispatcher locks.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Keys {
    /// None: the command touches no key, or the whole key space a shard at a time.
    None,
    /// The first argument only.
    One,
    /// The first two arguments (RENAME, LMOVE, SMOVE, COPY).
    Two,
    /// Arguments from `first` to the one `from_end` before the last, every `step`.
    Range {
        first: usize,
        from_end: usize,
        step: usize,
    },
    /// A count at `at`, then that many keys (LMPOP, SINTERCARD).
    Counted { at: usize },
}

/// The first argument is the only key.
pub(crate) const KEY: Keys = Keys::One;

/// Every argument from the first is a key.
pub(crate) const ALL_KEYS: Keys = Keys::Range {
    first: 1,
    from_end: 0,
    step: 1,
};

/// The first two arguments are keys.
pub(crate) const TWO_KEYS: Keys = Keys::Two;

/// Flags: takes the waiters' registry before its shards (it may block).
pub(crate) const BLOCKS: u8 = 1;
/// Flags: allowed while subscribed.
pub(crate) const PUBSUB: u8 = 2;
/// Flags: runs at once inside MULTI instead of being queued.
pub(crate) const TX: u8 = 4;
/// No flag.
pub(crate) const NONE: u8 = 0;

/// A command's function: most answer one reply or an error; a few answer something else.
#[derive(Clone, Copy)]
pub(crate) enum Run {
    Plain(fn(&mut Call<'_, '_>) -> Outcome),
    Rich(fn(&mut Call<'_, '_>) -> Reply),
}

/// One command of the table.
#[derive(Clone, Copy)]
pub(crate) struct Spec {
    /// Its lower-case name, as Redis names it in errors.
    pub(crate) name: &'static str,
    /// Redis's arity: positive is exact, negative a minimum (counting the name).
    pub(crate) arity: i32,
    pub(crate) keys: Keys,
    pub(crate) flags: u8,
    pub(crate) run: Run,
}

impl std::fmt::Debug for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spec").field("name", &self.name).finish()
    }
}

/// A row of a family's table.
pub(crate) const fn plain(
    name: &'static str,
    arity: i32,
    keys: Keys,
    run: fn(&mut Call<'_, '_>) -> Outcome,
) -> Spec {
    Spec {
        name,
        arity,
        keys,
        flags: NONE,
        run: Run::Plain(run),
    }
}

/// A row whose function answers a [`Reply`], with flags.
pub(crate) const fn rich(
    name: &'static str,
    arity: i32,
    keys: Keys,
    flags: u8,
    run: fn(&mut Call<'_, '_>) -> Reply,
) -> Spec {
    Spec {
        name,
        arity,
        keys,
        flags,
        run: Run::Rich(run),
    }
}

/// Everything a command runs against.
pub(crate) struct Call<'c, 's> {
    /// The arguments, slices of the request's frame (the name first).
    pub(crate) args: &'c [&'c [u8]],
    /// The shards of its keys, locked.
    pub(crate) db: &'c mut Db<'s>,
    pub(crate) shared: &'s Shared,
    pub(crate) session: &'c mut Session,
    pub(crate) clock: &'c mut Clock,
    /// Keys it pushed list elements to: the clients blocked on them are served after it.
    pub(crate) ready: &'c mut Vec<Bytes>,
    /// The waiters' registry, locked: for blocking commands, and for every command of a
    /// transaction (EXEC takes it before the shards, the one lock order).
    pub(crate) waiters: Option<&'c mut Waiters<'s>>,
    /// Run by EXEC: a blocking command answers at once, as in Redis.
    pub(crate) exec: bool,
}

impl<'c> Call<'c, '_> {
    /// The first argument after the name (the key, for most commands).
    pub(crate) fn key(&self) -> &'c [u8] {
        self.args[1]
    }

    pub(crate) fn int(&self, index: usize) -> Result<i64, Value> {
        reply::int(self.args[index])
    }

    /// Reports that `key` got list elements, for the clients blocked on it (nothing to do,
    /// and nothing allocated, while nobody waits).
    pub(crate) fn signal_ready(&mut self, key: &[u8]) {
        if self.shared.blocking.waiting() > 0 && !self.ready.iter().any(|k| k == key) {
            self.ready.push(Bytes::copy_from_slice(key));
        }
    }
}

/// Every family's table.
fn families() -> [&'static [Spec]; 11] {
    [
        strings::SPECS,
        ranges::SPECS,
        keys::SPECS,
        expire::SPECS,
        lists::SPECS,
        blocking::SPECS,
        sets::SPECS,
        hashes::SPECS,
        pubsub::SPECS,
        multi::SPECS,
        server::SPECS,
    ]
}

/// The command named `name`, in any case.
pub(crate) fn lookup(name: &[u8]) -> Option<&'static Spec> {
    static TABLE: OnceLock<HashMap<&'static [u8], &'static Spec>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        families()
            .into_iter()
            .flatten()
            .map(|spec| (spec.name.as_bytes(), spec))
            .collect()
    });
    let mut buf = [0u8; 24];
    let lower = buf.get_mut(..name.len())?;
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    table.get(&*lower).copied()
}

/// Redis's arity rule: positive is exact, negative a minimum (counting the name).
fn arity_ok(arity: i32, argc: usize) -> bool {
    let needed = arity.unsigned_abs() as usize;
    if arity >= 0 {
        argc == needed
    } else {
        argc >= needed
    }
}

/// The key arguments of a call of `spec`.
fn keys_of<'a>(spec: &Spec, args: &'a [&'a [u8]]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let range = match spec.keys {
        Keys::None => 0..0,
        Keys::One => 1..2.min(args.len()).max(1),
        Keys::Two => 1..3.min(args.len()).max(1),
        Keys::Range {
            first, from_end, ..
        } => first..args.len().saturating_sub(from_end).max(first),
        Keys::Counted { at } => {
            let n = args
                .get(at)
                .and_then(|n| parse_int(n))
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(0);
            at + 1..(at + 1).saturating_add(n).min(args.len()).max(at + 1)
        }
    };
    let step = match spec.keys {
        Keys::Range { step, .. } => step.max(1),
        _ => 1,
    };
    args.get(range)
        .unwrap_or_default()
        .iter()
        .step_by(step)
        .copied()
}

/// Runs one command (`args[0]` is its name, in any case) and returns its reply.
pub(crate) fn execute(
    args: &[&[u8]],
    shared: &Shared,
    session: &mut Session,
    clock: &mut Clock,
) -> Reply {
    let spec = match check(args, session) {
        Ok(spec) => spec,
        Err(reply) => {
            session.refuse_in_multi();
            return reply.into();
        }
    };
    if session.multi.is_some() && spec.flags & TX == 0 {
        return multi::queue(args, session, shared).into();
    }
    let mut ready = Vec::new();
    let reply = {
        // The registry before the shards (see `blocking`'s lock order).
        let mut waiters = (spec.flags & BLOCKS != 0).then(|| shared.blocking.lock());
        let mut db = shared.store.lock(keys_of(spec, args));
        let mut call = Call {
            args,
            db: &mut db,
            shared,
            session,
            clock,
            ready: &mut ready,
            waiters: waiters.as_mut(),
            exec: false,
        };
        run(spec, &mut call)
    };
    if !ready.is_empty() {
        shared.blocking.serve(&shared.store, &ready, clock);
    }
    reply
}

/// The command `args` names, if it exists, is called with a valid number of arguments and
/// may run in the connection's state; otherwise the error to answer.
fn check(args: &[&[u8]], session: &Session) -> Result<&'static Spec, Value> {
    let spec = args
        .first()
        .and_then(|name| lookup(name))
        .ok_or_else(|| unknown_command(args))?;
    if !arity_ok(spec.arity, args.len()) {
        return Err(wrong_arity(spec.name));
    }
    if session.subscriptions.count() > 0 && spec.flags & PUBSUB == 0 {
        return Err(error_text(format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            spec.name
        )));
    }
    Ok(spec)
}

pub(crate) fn run(spec: &Spec, call: &mut Call<'_, '_>) -> Reply {
    match spec.run {
        Run::Plain(f) => match f(call) {
            Ok(value) | Err(value) => Reply::Value(value),
        },
        Run::Rich(f) => f(call),
    }
}

#[cfg(test)]
mod tests;
