//! The blocking list commands: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP. Each first tries
//! what its non-blocking form does; with nothing to take, it registers the connection as a
//! waiter on its keys and answers [`Reply::Block`]: the connection's process then waits for
//! a push to serve it, its timeout, CLIENT UNBLOCK or a drain. Inside a transaction it
//! answers at once, as if it had timed out (Redis's rule).

use std::collections::VecDeque;

use beamline::resp::Value;
use bytes::Bytes;
use tokio::time::{Duration, Instant};

use super::super::blocking::{Blocked, Op};
use super::lists::{End, end, move_one, mpop_args, mpop_first, pop_some};
use super::reply::timeout_ms;
use super::{BLOCKS, Call, Keys, Reply, Spec, rich};

/// BLPOP's keys: every argument but the timeout.
const ALL_BUT_LAST: Keys = Keys::Range {
    first: 1,
    from_end: 1,
    step: 1,
};

/// BLMOVE's keys: the source and the destination.
const MOVE_KEYS: Keys = Keys::Two;

pub(super) const SPECS: &[Spec] = &[
    rich("blpop", -3, ALL_BUT_LAST, BLOCKS, |c| bpop(c, End::Left)),
    rich("brpop", -3, ALL_BUT_LAST, BLOCKS, |c| bpop(c, End::Right)),
    rich("blmove", 6, MOVE_KEYS, BLOCKS, blmove),
    rich("brpoplpush", 4, MOVE_KEYS, BLOCKS, brpoplpush),
    rich("blmpop", -5, Keys::Counted { at: 2 }, BLOCKS, blmpop),
];

/// Waits for `keys` (registering the wait), or answers `op`'s empty reply at once inside a
/// transaction.
fn block(c: &mut Call<'_, '_>, keys: &[&[u8]], op: Op, timeout_ms: u64) -> Reply {
    let on_timeout = op.nothing();
    let (false, Some(waiters), Some(addr)) =
        (c.exec, c.waiters.as_deref_mut(), c.session.addr.as_ref())
    else {
        return on_timeout.into();
    };
    let ticket = waiters.register(c.session.id, addr.clone(), keys, op);
    let deadline = (timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(timeout_ms));
    Reply::Block(Blocked {
        ticket,
        deadline,
        on_timeout,
    })
}

/// Turns an error into the reply.
fn answer(result: Result<Reply, Value>) -> Reply {
    result.unwrap_or_else(Reply::Value)
}

/// BLPOP / BRPOP key [key ...] timeout
fn bpop(c: &mut Call<'_, '_>, side: End) -> Reply {
    answer((|| {
        let last = c.args.len() - 1;
        let timeout = timeout_ms(c.args[last])?;
        let keys = &c.args[1..last];
        for key in keys {
            let Some(list) = c.db.collection::<VecDeque<Bytes>>(key, c.clock)? else {
                continue;
            };
            let item = pop_some(list, side, 1);
            c.db.drop_if_empty(key);
            let mut reply = vec![Value::Bulk(Bytes::copy_from_slice(key))];
            reply.extend(item.into_iter().map(Value::Bulk));
            return Ok(Value::Array(reply).into());
        }
        Ok(block(c, keys, Op::Pop { end: side }, timeout))
    })())
}

fn blmove_with(c: &mut Call<'_, '_>, from: End, to: End, timeout_arg: usize) -> Reply {
    answer((|| {
        let timeout = timeout_ms(c.args[timeout_arg])?;
        if let Some(item) = move_one(c, from, to)? {
            return Ok(Value::Bulk(item).into());
        }
        let dest = Bytes::copy_from_slice(c.args[2]);
        let source = [c.args[1]];
        Ok(block(c, &source, Op::Move { from, to, dest }, timeout))
    })())
}

/// BLMOVE source destination LEFT | RIGHT LEFT | RIGHT timeout
fn blmove(c: &mut Call<'_, '_>) -> Reply {
    match (end(c.args[3]), end(c.args[4])) {
        (Ok(from), Ok(to)) => blmove_with(c, from, to, 5),
        (Err(e), _) | (_, Err(e)) => e.into(),
    }
}

/// BRPOPLPUSH source destination timeout
fn brpoplpush(c: &mut Call<'_, '_>) -> Reply {
    blmove_with(c, End::Right, End::Left, 3)
}

/// BLMPOP timeout numkeys key [key ...] LEFT | RIGHT [COUNT count]
fn blmpop(c: &mut Call<'_, '_>) -> Reply {
    answer((|| {
        let (keys, side, count) = mpop_args(c.args, 2)?;
        let timeout = timeout_ms(c.args[1])?;
        if let Some(reply) = mpop_first(c, &keys, side, count)? {
            return Ok(reply.into());
        }
        Ok(block(c, &keys, Op::Pops { end: side, count }, timeout))
    })())
}
