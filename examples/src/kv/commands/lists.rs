//! Lists: LPUSH, RPUSH, LPUSHX, RPUSHX, LPOP, RPOP, LLEN, LRANGE, LINDEX, LSET, LINSERT,
//! LREM, LTRIM, LPOS, LMOVE, RPOPLPUSH, LMPOP (the blocking forms are in
//! [`blocking`](super::blocking)).

use std::collections::VecDeque;

use beamline::resp::Value;
use bytes::Bytes;

use super::super::pack::copy_packed;
use super::super::store::{Clock, Db, WrongType};
use super::reply::{Outcome, at_least, count, error, integer, is, syntax_error};
use super::{Call, KEY, Keys, Spec, TWO_KEYS, plain};

pub(super) const SPECS: &[Spec] = &[
    plain("lpush", -3, KEY, |c| push_args(c, End::Left, false)),
    plain("rpush", -3, KEY, |c| push_args(c, End::Right, false)),
    plain("lpushx", -3, KEY, |c| push_args(c, End::Left, true)),
    plain("rpushx", -3, KEY, |c| push_args(c, End::Right, true)),
    plain("lpop", -2, KEY, |c| pop(c, End::Left)),
    plain("rpop", -2, KEY, |c| pop(c, End::Right)),
    plain("llen", 2, KEY, llen),
    plain("lrange", 4, KEY, lrange),
    plain("lindex", 3, KEY, lindex),
    plain("lset", 4, KEY, lset),
    plain("linsert", 5, KEY, linsert),
    plain("lrem", 4, KEY, lrem),
    plain("ltrim", 4, KEY, ltrim),
    plain("lpos", -3, KEY, lpos),
    plain("lmove", 5, TWO_KEYS, lmove),
    plain("rpoplpush", 3, TWO_KEYS, rpoplpush),
    plain("lmpop", -4, Keys::Counted { at: 1 }, lmpop),
];

/// Which end of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Left,
    Right,
}

/// `LEFT` or `RIGHT`, or a syntax error.
pub(crate) fn end(arg: &[u8]) -> Result<End, Value> {
    if is(arg, "LEFT") {
        Ok(End::Left)
    } else if is(arg, "RIGHT") {
        Ok(End::Right)
    } else {
        Err(syntax_error())
    }
}

/// Pops up to `count` elements from `end`, in pop order.
pub(crate) fn pop_some(list: &mut VecDeque<Bytes>, end: End, count: usize) -> Vec<Bytes> {
    let n = count.min(list.len());
    match end {
        End::Left => list.drain(..n).collect(),
        End::Right => list.drain(list.len() - n..).rev().collect(),
    }
}

/// Pushes `items` to `end` of the list at `key` (made if absent); its new length.
pub(crate) fn push(
    db: &mut Db<'_>,
    key: &[u8],
    items: &[Bytes],
    end: End,
    clock: &mut Clock,
) -> Result<usize, WrongType> {
    let list = db.collection_or_new::<VecDeque<Bytes>>(key, clock)?;
    list.reserve(items.len());
    for item in items {
        match end {
            End::Left => list.push_front(item.clone()),
            End::Right => list.push_back(item.clone()),
        }
    }
    Ok(list.len())
}

/// LPUSH / RPUSH (and the X forms, only onto an existing list) key element [element ...]
fn push_args(c: &mut Call<'_, '_>, end: End, only_existing: bool) -> Outcome {
    let key = c.key();
    if only_existing && c.db.collection::<VecDeque<Bytes>>(key, c.clock)?.is_none() {
        return Ok(integer(0));
    }
    let list = c.db.collection_or_new::<VecDeque<Bytes>>(key, c.clock)?;
    let values = &c.args[2..];
    list.reserve(values.len());
    // Copies (a slice of the request would pin its whole read buffer), packed: one
    // allocation per block of small values.
    copy_packed(values, |v| match end {
        End::Left => list.push_front(v),
        End::Right => list.push_back(v),
    });
    let len = list.len();
    c.signal_ready(key);
    Ok(integer(len))
}

/// LPOP / RPOP key [count]
fn pop(c: &mut Call<'_, '_>, end: End) -> Outcome {
    let count = match c.args.len() {
        2 => None,
        3 => Some(count(c.args[2])?),
        _ => {
            return Err(super::reply::wrong_arity(if end == End::Left {
                "lpop"
            } else {
                "rpop"
            }));
        }
    };
    let key = c.key();
    let Some(list) = c.db.collection::<VecDeque<Bytes>>(key, c.clock)? else {
        return Ok(if count.is_some() {
            Value::NullArray
        } else {
            Value::Null
        });
    };
    let popped = pop_some(list, end, count.unwrap_or(1));
    c.db.drop_if_empty(key);
    Ok(match count {
        None => popped.into_iter().next().map_or(Value::Null, Value::Bulk),
        Some(_) => Value::Array(popped.into_iter().map(Value::Bulk).collect()),
    })
}

fn llen(c: &mut Call<'_, '_>) -> Outcome {
    let list = c.db.collection::<VecDeque<Bytes>>(c.key(), c.clock)?;
    Ok(integer(list.map_or(0, |l| l.len())))
}

/// The positions `start..=stop` of a list of `len` (negative counting from the end),
/// clamped; `None` when empty.
pub(crate) fn range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        len + stop
    } else {
        stop.min(len - 1)
    };
    (start <= stop && start < len).then_some((start as usize, stop as usize))
}

fn lrange(c: &mut Call<'_, '_>) -> Outcome {
    let (start, stop) = (c.int(2)?, c.int(3)?);
    let Some(list) = c.db.collection::<VecDeque<Bytes>>(c.key(), c.clock)? else {
        return Ok(Value::Array(Vec::new()));
    };
    let items = range(start, stop, list.len())
        .map(|(a, b)| list.range(a..=b).cloned().map(Value::Bulk).collect())
        .unwrap_or_default();
    Ok(Value::Array(items))
}

/// A list index (negative from the end) as a position, if within `len`.
fn position(index: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let at = if index < 0 { len + index } else { index };
    (0..len).contains(&at).then_some(at as usize)
}

fn lindex(c: &mut Call<'_, '_>) -> Outcome {
    let index = c.int(2)?;
    let list = c.db.collection::<VecDeque<Bytes>>(c.key(), c.clock)?;
    let item = list.and_then(|l| position(index, l.len()).and_then(|at| l.get(at).cloned()));
    Ok(item.map_or(Value::Null, Value::Bulk))
}

fn lset(c: &mut Call<'_, '_>) -> Outcome {
    let index = c.int(2)?;
    let Some(list) = c.db.collection::<VecDeque<Bytes>>(c.key(), c.clock)? else {
        return Err(error("ERR no such key"));
    };
    let at = position(index, list.len()).ok_or_else(|| error("ERR index out of range"))?;
    list[at] = Bytes::copy_from_slice(c.args[3]);
    Ok(Value::ok())
}

/// LINSERT key BEFORE | AFTER pivot element
fn linsert(c: &mut Call<'_, '_>) -> Outcome {
    let after = if is(c.args[2], "AFTER") {
        true
    } else if is(c.args[2], "BEFORE") {
        false
    } else {
        return Err(syntax_error());
    };
    let key = c.key();
    let Some(list) = c.db.collection::<VecDeque<Bytes>>(key, c.clock)? else {
        return Ok(integer(0));
    };
    let Some(at) = list.iter().position(|item| item == c.args[3]) else {
        return Ok(Value::Integer(-1));
    };
    list.insert(at + usize::from(after), Bytes::copy_from_slice(c.args[4]));
    let len = list.len();
    c.signal_ready(key);
    Ok(integer(len))
}

/// LREM key count element: `count` > 0 from the head, < 0 from the tail, 0 all.
fn lrem(c: &mut Call<'_, '_>) -> Outcome {
    let count = c.int(2)?;
    let key = c.key();
    let Some(list) = c.db.collection::<VecDeque<Bytes>>(key, c.clock)? else {
        return Ok(integer(0));
    };
    let target = c.args[3];
    let limit = if count == 0 {
        usize::MAX
    } else {
        usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX)
    };
    let mut removed = 0;
    if count >= 0 {
        list.retain(|item| {
            let drop = removed < limit && item == target;
            removed += usize::from(drop);
            !drop
        });
    } else {
        let mut kept: VecDeque<Bytes> = VecDeque::with_capacity(list.len());
        while let Some(item) = list.pop_back() {
            if removed < limit && item == target {
                removed += 1;
            } else {
                kept.push_front(item);
            }
        }
        *list = kept;
    }
    c.db.drop_if_empty(key);
    Ok(integer(removed))
}

fn ltrim(c: &mut Call<'_, '_>) -> Outcome {
    let (start, stop) = (c.int(2)?, c.int(3)?);
    let key = c.key();
    let Some(list) = c.db.collection::<VecDeque<Bytes>>(key, c.clock)? else {
        return Ok(Value::ok());
    };
    match range(start, stop, list.len()) {
        Some((a, b)) => {
            list.truncate(b + 1);
            list.drain(..a);
        }
        None => list.clear(),
    }
    c.db.drop_if_empty(key);
    Ok(Value::ok())
}

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]
fn lpos(c: &mut Call<'_, '_>) -> Outcome {
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0usize);
    let mut i = 3;
    while i < c.args.len() {
        let Some(&value) = c.args.get(i + 1) else {
            return Err(syntax_error());
        };
        let opt = c.args[i];
        if is(opt, "RANK") {
            rank = c.int(i + 1)?;
            if rank == i64::MIN {
                return Err(error(
                    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
                ));
            }
            if rank == 0 {
                return Err(error(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
        } else if is(opt, "COUNT") {
            count = Some(at_least(value, 0, "ERR COUNT can't be negative")?);
        } else if is(opt, "MAXLEN") {
            maxlen = at_least(value, 0, "ERR MAXLEN can't be negative")?;
        } else {
            return Err(syntax_error());
        }
        i += 2;
    }
    let Some(list) = c.db.collection::<VecDeque<Bytes>>(c.key(), c.clock)? else {
        return Ok(if count.is_some() {
            Value::Array(Vec::new())
        } else {
            Value::Null
        });
    };
    let target = c.args[2];
    let len = list.len();
    let from_tail = rank < 0;
    let skip = rank.unsigned_abs() - 1;
    let scanned = if maxlen == 0 { len } else { maxlen.min(len) };
    let positions = (0..scanned).map(|i| if from_tail { len - 1 - i } else { i });
    let mut found = positions
        .filter(|&at| list[at] == target)
        .skip(usize::try_from(skip).unwrap_or(usize::MAX));
    match count {
        None => Ok(found.next().map_or(Value::Null, integer)),
        Some(n) => {
            let take = if n == 0 { usize::MAX } else { n };
            Ok(Value::Array(found.take(take).map(integer).collect()))
        }
    }
}

/// Moves one element from `from`'s `from_end` to `to`'s `to_end` (LMOVE, RPOPLPUSH, and a
/// BLMOVE that need not wait): the element, or `None` if the source is empty.
pub(crate) fn move_one(
    c: &mut Call<'_, '_>,
    from_end: End,
    to_end: End,
) -> Result<Option<Bytes>, Value> {
    let (from, to) = (c.args[1], c.args[2]);
    match c.db.collection::<VecDeque<Bytes>>(from, c.clock)? {
        Some(list) if !list.is_empty() => {}
        _ => return Ok(None),
    }
    c.db.collection::<VecDeque<Bytes>>(to, c.clock)?;
    let list = c.db.collection::<VecDeque<Bytes>>(from, c.clock)?;
    let Some(item) = list.and_then(|l| pop_some(l, from_end, 1).pop()) else {
        return Ok(None);
    };
    c.db.drop_if_empty(from);
    push(c.db, to, std::slice::from_ref(&item), to_end, c.clock)?;
    c.signal_ready(to);
    Ok(Some(item))
}

/// LMOVE source destination LEFT | RIGHT LEFT | RIGHT
fn lmove(c: &mut Call<'_, '_>) -> Outcome {
    let (from_end, to_end) = (end(c.args[3])?, end(c.args[4])?);
    Ok(move_one(c, from_end, to_end)?.map_or(Value::Null, Value::Bulk))
}

fn rpoplpush(c: &mut Call<'_, '_>) -> Outcome {
    Ok(move_one(c, End::Right, End::Left)?.map_or(Value::Null, Value::Bulk))
}

/// LMPOP's and BLMPOP's arguments after the count: the keys, the end, the count.
pub(crate) fn mpop_args<'a>(
    args: &[&'a [u8]],
    at: usize,
) -> Result<(Vec<&'a [u8]>, End, usize), Value> {
    let numkeys = at_least(args[at], 1, "ERR numkeys should be greater than 0")?;
    let where_at = at.saturating_add(numkeys).saturating_add(1);
    let Some(&side) = args.get(where_at) else {
        return Err(syntax_error());
    };
    let side = end(side)?;
    let mut count = None;
    let mut i = where_at + 1;
    while i < args.len() {
        match args.get(i + 1) {
            Some(&n) if count.is_none() && is(args[i], "COUNT") => {
                count = Some(at_least(n, 1, "ERR count should be greater than 0")?);
            }
            _ => return Err(syntax_error()),
        }
        i += 2;
    }
    Ok((args[at + 1..where_at].to_vec(), side, count.unwrap_or(1)))
}

/// Pops up to `count` from the first non-empty list of `keys`: `[key, [elements]]`.
pub(crate) fn mpop_first(
    c: &mut Call<'_, '_>,
    keys: &[&[u8]],
    side: End,
    count: usize,
) -> Result<Option<Value>, Value> {
    for key in keys {
        let Some(list) = c.db.collection::<VecDeque<Bytes>>(key, c.clock)? else {
            continue;
        };
        let popped = pop_some(list, side, count);
        c.db.drop_if_empty(key);
        return Ok(Some(Value::Array(vec![
            Value::Bulk(Bytes::copy_from_slice(key)),
            Value::Array(popped.into_iter().map(Value::Bulk).collect()),
        ])));
    }
    Ok(None)
}

/// LMPOP numkeys key [key ...] LEFT | RIGHT [COUNT count]
fn lmpop(c: &mut Call<'_, '_>) -> Outcome {
    let (keys, side, count) = mpop_args(c.args, 1)?;
    Ok(mpop_first(c, &keys, side, count)?.unwrap_or(Value::NullArray))
}
