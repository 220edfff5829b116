//! Sets: SADD, SREM, SMEMBERS, SISMEMBER, SMISMEMBER, SCARD, SPOP, SRANDMEMBER, SINTER,
//! SUNION, SDIFF and their STORE forms, SINTERCARD, SMOVE, SSCAN.

use beamline::resp::Value;
use bytes::Bytes;

use super::super::rand;
use super::super::store::{Data, Table, WrongType};
use super::keys::{cursor, scan_options, scan_reply};
use super::reply::{Outcome, at_least, count, error, flag, integer, is, syntax_error};
use super::{ALL_KEYS, Call, KEY, Keys, Spec, TWO_KEYS, plain};

type Set = Table<()>;

pub(super) const SPECS: &[Spec] = &[
    plain("sadd", -3, KEY, sadd),
    plain("srem", -3, KEY, srem),
    plain("smembers", 2, KEY, smembers),
    plain("sismember", 3, KEY, sismember),
    plain("smismember", -3, KEY, smismember),
    plain("scard", 2, KEY, scard),
    plain("spop", -2, KEY, spop),
    plain("srandmember", -2, KEY, srandmember),
    plain("sinter", -2, ALL_KEYS, |c| combine(c, Op::Inter, 1, false)),
    plain("sunion", -2, ALL_KEYS, |c| combine(c, Op::Union, 1, false)),
    plain("sdiff", -2, ALL_KEYS, |c| combine(c, Op::Diff, 1, false)),
    plain("sinterstore", -3, ALL_KEYS, |c| {
        combine(c, Op::Inter, 2, true)
    }),
    plain("sunionstore", -3, ALL_KEYS, |c| {
        combine(c, Op::Union, 2, true)
    }),
    plain("sdiffstore", -3, ALL_KEYS, |c| {
        combine(c, Op::Diff, 2, true)
    }),
    plain("sintercard", -3, Keys::Counted { at: 1 }, sintercard),
    plain("smove", 4, TWO_KEYS, smove),
    plain("sscan", -3, KEY, sscan),
];

/// The most elements SRANDMEMBER or HRANDFIELD answers for a negative count (Redis has no
/// limit; kv refuses a reply it would have to build in memory beyond this).
pub(super) const MAX_RANDOM_REPLY: usize = 1 << 24;

fn sadd(c: &mut Call<'_, '_>) -> Outcome {
    let set = c.db.collection_or_new::<Set>(c.key(), c.clock)?;
    let added = c.args[2..]
        .iter()
        .filter(|m| set.insert(m, ()).is_none())
        .count();
    Ok(integer(added))
}

fn srem(c: &mut Call<'_, '_>) -> Outcome {
    let key = c.key();
    let Some(set) = c.db.collection::<Set>(key, c.clock)? else {
        return Ok(integer(0));
    };
    let removed = c.args[2..]
        .iter()
        .filter(|m| set.remove(m).is_some())
        .count();
    c.db.drop_if_empty(key);
    Ok(integer(removed))
}

fn members(set: &Set) -> Value {
    Value::Array(set.keys().cloned().map(Value::Bulk).collect())
}

fn smembers(c: &mut Call<'_, '_>) -> Outcome {
    let set = c.db.collection::<Set>(c.key(), c.clock)?;
    Ok(set.map_or(Value::Array(Vec::new()), |s| members(s)))
}

fn sismember(c: &mut Call<'_, '_>) -> Outcome {
    let set = c.db.collection::<Set>(c.key(), c.clock)?;
    Ok(flag(set.is_some_and(|s| s.contains(c.args[2]))))
}

fn smismember(c: &mut Call<'_, '_>) -> Outcome {
    let set = c.db.collection::<Set>(c.key(), c.clock)?;
    let flags = c.args[2..]
        .iter()
        .map(|m| flag(set.as_ref().is_some_and(|s| s.contains(m))))
        .collect();
    Ok(Value::Array(flags))
}

fn scard(c: &mut Call<'_, '_>) -> Outcome {
    let set = c.db.collection::<Set>(c.key(), c.clock)?;
    Ok(integer(set.map_or(0, |s| s.len())))
}

/// Removes and returns a random member.
fn pop_random(set: &mut Set) -> Option<Bytes> {
    let member = set.random()?.0.clone();
    set.remove(&member);
    Some(member)
}

/// SPOP key [count]
fn spop(c: &mut Call<'_, '_>) -> Outcome {
    let wanted = match c.args.len() {
        2 => None,
        3 => Some(count(c.args[2])?),
        _ => return Err(syntax_error()),
    };
    let key = c.key();
    let Some(set) = c.db.collection::<Set>(key, c.clock)? else {
        return Ok(wanted.map_or(Value::Null, |_| Value::Array(Vec::new())));
    };
    let reply = match wanted {
        None => pop_random(set).map_or(Value::Null, Value::Bulk),
        Some(n) => Value::Array(
            std::iter::from_fn(|| pop_random(set))
                .take(n)
                .map(Value::Bulk)
                .collect(),
        ),
    };
    c.db.drop_if_empty(key);
    Ok(reply)
}

/// A count for SRANDMEMBER or HRANDFIELD: how many, and whether they may repeat
/// (negative).
pub(super) fn random_count(arg: &[u8]) -> Result<(usize, bool), Value> {
    let n = c_int(arg)?;
    if n == i64::MIN {
        return Err(error(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    let wanted = usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX);
    if n < 0 && wanted > MAX_RANDOM_REPLY {
        return Err(error("ERR value is out of range"));
    }
    Ok((wanted, n < 0))
}

fn c_int(arg: &[u8]) -> Result<i64, Value> {
    super::reply::int(arg)
}

/// `wanted` positions of a table of `len`: distinct (in random order), or drawn with
/// repeats.
pub(super) fn random_positions(len: usize, wanted: usize, repeats: bool) -> Vec<usize> {
    if repeats {
        return (0..wanted).map(|_| rand::below(len)).collect();
    }
    let take = wanted.min(len);
    if take * 2 <= len {
        // Few of many: draw and skip repeats (each draw is new with probability >= 1/2).
        let mut seen = std::collections::HashSet::with_capacity(take);
        let mut picked = Vec::with_capacity(take);
        while picked.len() < take {
            let at = rand::below(len);
            if seen.insert(at) {
                picked.push(at);
            }
        }
        return picked;
    }
    let mut all: Vec<usize> = (0..len).collect();
    // A partial Fisher-Yates shuffle: the first `take` are a uniform sample.
    for i in 0..take {
        let j = i + rand::below(len - i);
        all.swap(i, j);
    }
    all.truncate(take);
    all
}

/// SRANDMEMBER key [count]
fn srandmember(c: &mut Call<'_, '_>) -> Outcome {
    let wanted = match c.args.len() {
        2 => None,
        3 => Some(random_count(c.args[2])?),
        _ => return Err(syntax_error()),
    };
    let set = c.db.collection::<Set>(c.key(), c.clock)?;
    let Some((n, repeats)) = wanted else {
        return Ok(set
            .and_then(|s| s.random().map(|(m, _)| m.clone()))
            .map_or(Value::Null, Value::Bulk));
    };
    let Some(set) = set else {
        return Ok(Value::Array(Vec::new()));
    };
    let picked = random_positions(set.len(), n, repeats)
        .into_iter()
        .filter_map(|at| set.at(at).map(|(m, _)| Value::Bulk(m.clone())))
        .collect();
    Ok(Value::Array(picked))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Inter,
    Union,
    Diff,
}

/// The members of `op` over the sets at `keys` (a missing key is an empty set).
fn compute(c: &mut Call<'_, '_>, op: Op, keys: &[&[u8]]) -> Result<Vec<Bytes>, WrongType> {
    for key in keys {
        c.db.expire(key, c.clock);
    }
    let sets: Vec<Option<&Set>> = keys
        .iter()
        .map(|k| c.db.peek_collection::<Set>(k))
        .collect::<Result<_, _>>()?;
    Ok(match op {
        Op::Inter => {
            if sets.iter().any(Option::is_none) {
                return Ok(Vec::new());
            }
            let sets: Vec<&Set> = sets.into_iter().flatten().collect();
            let Some(smallest) = sets.iter().min_by_key(|s| s.len()) else {
                return Ok(Vec::new());
            };
            smallest
                .keys()
                .filter(|m| sets.iter().all(|s| s.contains(m)))
                .cloned()
                .collect()
        }
        Op::Union => {
            let mut out: Set = Table::default();
            for set in sets.into_iter().flatten() {
                for m in set.keys() {
                    if !out.contains(m) {
                        out.insert_new(m.clone(), ());
                    }
                }
            }
            out.keys().cloned().collect()
        }
        Op::Diff => {
            let Some(Some(first)) = sets.first() else {
                return Ok(Vec::new());
            };
            first
                .keys()
                .filter(|m| !sets[1..].iter().flatten().any(|s| s.contains(m)))
                .cloned()
                .collect()
        }
    })
}

/// SINTER / SUNION / SDIFF key [key ...], and their STORE forms with a destination first.
fn combine(c: &mut Call<'_, '_>, op: Op, first: usize, store: bool) -> Outcome {
    let keys = &c.args[first..];
    let result = compute(c, op, keys)?;
    if !store {
        return Ok(Value::Array(result.into_iter().map(Value::Bulk).collect()));
    }
    let dest = c.args[1];
    let len = result.len();
    c.db.remove(dest, c.clock);
    if len > 0 {
        let mut set = Table::with_capacity(len);
        for m in result {
            set.insert_new(m, ());
        }
        c.db.set(dest, Data::Set(set));
    }
    Ok(integer(len))
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]
fn sintercard(c: &mut Call<'_, '_>) -> Outcome {
    let numkeys = at_least(c.args[1], 1, "ERR numkeys should be greater than 0")?;
    if numkeys > c.args.len() - 2 {
        return Err(error(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    let keys_end = 2 + numkeys;
    let mut limit = 0;
    let mut i = keys_end;
    while i < c.args.len() {
        match c.args.get(i + 1) {
            Some(&n) if is(c.args[i], "LIMIT") => {
                limit = at_least(n, 0, "ERR LIMIT can't be negative")?;
            }
            _ => return Err(syntax_error()),
        }
        i += 2;
    }
    let keys = &c.args[2..keys_end];
    let found = compute(c, Op::Inter, keys)?.len();
    Ok(integer(if limit == 0 { found } else { found.min(limit) }))
}

fn smove(c: &mut Call<'_, '_>) -> Outcome {
    let (from, to, member) = (c.args[1], c.args[2], c.args[3]);
    let exists = c.db.collection::<Set>(from, c.clock)?.is_some();
    c.db.collection::<Set>(to, c.clock)?;
    if !exists {
        return Ok(flag(false));
    }
    if from == to {
        let set = c.db.collection::<Set>(from, c.clock)?;
        return Ok(flag(set.is_some_and(|s| s.contains(member))));
    }
    let removed =
        c.db.collection::<Set>(from, c.clock)?
            .is_some_and(|s| s.remove(member).is_some());
    if !removed {
        return Ok(flag(false));
    }
    c.db.drop_if_empty(from);
    c.db.collection_or_new::<Set>(to, c.clock)?
        .insert(member, ());
    Ok(flag(true))
}

/// SSCAN key cursor [MATCH pattern] [COUNT count]
fn sscan(c: &mut Call<'_, '_>) -> Outcome {
    let start = cursor(c.args[2])?;
    let (filter, count) = scan_options(c.args, 3, false)?;
    let Some(set) = c.db.collection::<Set>(c.key(), c.clock)? else {
        return Ok(scan_reply(0, Vec::new()));
    };
    let (range, next) = set.scan(start, count);
    let items = range
        .filter_map(|at| set.at(at))
        .filter(|(m, _)| {
            filter
                .pattern
                .is_none_or(|p| super::super::glob::matches(p, m, false))
        })
        .map(|(m, _)| Value::Bulk(m.clone()))
        .collect();
    Ok(scan_reply(next, items))
}
