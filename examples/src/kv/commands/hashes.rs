//! Hashes: HSET, HMSET, HSETNX, HGET, HMGET, HDEL, HLEN, HEXISTS, HGETALL, HKEYS, HVALS,
//! HINCRBY, HINCRBYFLOAT, HSTRLEN, HRANDFIELD, HSCAN.

use beamline::resp::Value;
use bytes::Bytes;

use super::super::float::{self, FloatError};
use super::super::glob;
use super::super::store::{Table, parse_int};
use super::keys::{cursor, scan_options, scan_reply};
use super::reply::{
    Outcome, bulk_or_null, error, flag, integer, is, not_a_float, syntax_error, wrong_arity,
};
use super::sets::{random_count, random_positions};
use super::{Call, KEY, Spec, plain};

type Hash = Table<Bytes>;

pub(super) const SPECS: &[Spec] = &[
    plain("hset", -4, KEY, |c| hset(c, "hset")),
    plain("hmset", -4, KEY, |c| hset(c, "hmset")),
    plain("hsetnx", 4, KEY, hsetnx),
    plain("hget", 3, KEY, hget),
    plain("hmget", -3, KEY, hmget),
    plain("hdel", -3, KEY, hdel),
    plain("hlen", 2, KEY, hlen),
    plain("hexists", 3, KEY, hexists),
    plain("hgetall", 2, KEY, |c| hall(c, true, true)),
    plain("hkeys", 2, KEY, |c| hall(c, true, false)),
    plain("hvals", 2, KEY, |c| hall(c, false, true)),
    plain("hincrby", 4, KEY, hincrby),
    plain("hincrbyfloat", 4, KEY, hincrbyfloat),
    plain("hstrlen", 3, KEY, hstrlen),
    plain("hrandfield", -2, KEY, hrandfield),
    plain("hscan", -3, KEY, hscan),
];

/// HSET / HMSET key field value [field value ...]: HSET answers how many fields are new.
fn hset(c: &mut Call<'_, '_>, name: &str) -> Outcome {
    let pairs = &c.args[2..];
    if !pairs.len().is_multiple_of(2) {
        return Err(wrong_arity(name));
    }
    let hash = c.db.collection_or_new::<Hash>(c.key(), c.clock)?;
    let added = pairs
        .chunks_exact(2)
        .filter(|fv| hash.insert(fv[0], Bytes::copy_from_slice(fv[1])).is_none())
        .count();
    Ok(if name == "hset" {
        integer(added)
    } else {
        Value::ok()
    })
}

fn hsetnx(c: &mut Call<'_, '_>) -> Outcome {
    let hash = c.db.collection_or_new::<Hash>(c.key(), c.clock)?;
    if hash.contains(c.args[2]) {
        return Ok(flag(false));
    }
    hash.insert(c.args[2], Bytes::copy_from_slice(c.args[3]));
    Ok(flag(true))
}

fn hget(c: &mut Call<'_, '_>) -> Outcome {
    let hash = c.db.collection::<Hash>(c.key(), c.clock)?;
    Ok(bulk_or_null(hash.and_then(|h| h.get(c.args[2]).cloned())))
}

fn hmget(c: &mut Call<'_, '_>) -> Outcome {
    let hash = c.db.collection::<Hash>(c.key(), c.clock)?;
    let values = c.args[2..]
        .iter()
        .map(|f| bulk_or_null(hash.as_ref().and_then(|h| h.get(f).cloned())))
        .collect();
    Ok(Value::Array(values))
}

fn hdel(c: &mut Call<'_, '_>) -> Outcome {
    let key = c.key();
    let Some(hash) = c.db.collection::<Hash>(key, c.clock)? else {
        return Ok(integer(0));
    };
    let removed = c.args[2..]
        .iter()
        .filter(|f| hash.remove(f).is_some())
        .count();
    c.db.drop_if_empty(key);
    Ok(integer(removed))
}

fn hlen(c: &mut Call<'_, '_>) -> Outcome {
    let hash = c.db.collection::<Hash>(c.key(), c.clock)?;
    Ok(integer(hash.map_or(0, |h| h.len())))
}

fn hexists(c: &mut Call<'_, '_>) -> Outcome {
    let hash = c.db.collection::<Hash>(c.key(), c.clock)?;
    Ok(flag(hash.is_some_and(|h| h.contains(c.args[2]))))
}

/// HGETALL (fields and values), HKEYS, HVALS.
fn hall(c: &mut Call<'_, '_>, fields: bool, values: bool) -> Outcome {
    let Some(hash) = c.db.collection::<Hash>(c.key(), c.clock)? else {
        return Ok(Value::Array(Vec::new()));
    };
    let mut out = Vec::with_capacity(hash.len() * (usize::from(fields) + usize::from(values)));
    for (field, value) in hash.iter() {
        if fields {
            out.push(Value::Bulk(field.clone()));
        }
        if values {
            out.push(Value::Bulk(value.clone()));
        }
    }
    Ok(Value::Array(out))
}

fn hincrby(c: &mut Call<'_, '_>) -> Outcome {
    let delta = c.int(3)?;
    let hash = c.db.collection_or_new::<Hash>(c.key(), c.clock)?;
    let current = match hash.get(c.args[2]) {
        None => 0,
        Some(v) => parse_int(v).ok_or_else(|| error("ERR hash value is not an integer"))?,
    };
    let next = current
        .checked_add(delta)
        .ok_or_else(|| error("ERR increment or decrement would overflow"))?;
    hash.insert(c.args[2], Bytes::from(next.to_string()));
    Ok(Value::Integer(next))
}

fn hincrbyfloat(c: &mut Call<'_, '_>) -> Outcome {
    if !float::is_number(c.args[3]) {
        return Err(not_a_float());
    }
    if float::is_infinite(c.args[3]) {
        return Err(error("ERR value is NaN or Infinity"));
    }
    let key = c.key();
    let hash = c.db.collection_or_new::<Hash>(key, c.clock)?;
    let sum = float::add(hash.get(c.args[2]).map(|v| &v[..]), c.args[3]);
    let sum = match sum {
        Ok(sum) => sum,
        Err(e) => {
            c.db.drop_if_empty(key);
            return Err(match e {
                FloatError::NotAFloat => error("ERR hash value is not a float"),
                FloatError::NanOrInfinity => error("ERR increment would produce NaN or Infinity"),
            });
        }
    };
    hash.insert(c.args[2], sum.clone());
    Ok(Value::Bulk(sum))
}

fn hstrlen(c: &mut Call<'_, '_>) -> Outcome {
    let hash = c.db.collection::<Hash>(c.key(), c.clock)?;
    Ok(integer(
        hash.and_then(|h| h.get(c.args[2]).map(Bytes::len))
            .unwrap_or(0),
    ))
}

/// HRANDFIELD key [count [WITHVALUES]]
fn hrandfield(c: &mut Call<'_, '_>) -> Outcome {
    let (wanted, with_values) = match c.args {
        [_, _] => (None, false),
        [_, _, n] => (Some(random_count(n)?), false),
        [_, _, n, opt] if is(opt, "WITHVALUES") => (Some(random_count(n)?), true),
        _ => return Err(syntax_error()),
    };
    let hash = c.db.collection::<Hash>(c.key(), c.clock)?;
    let Some((n, repeats)) = wanted else {
        return Ok(bulk_or_null(
            hash.and_then(|h| h.random().map(|(f, _)| f.clone())),
        ));
    };
    let Some(hash) = hash else {
        return Ok(Value::Array(Vec::new()));
    };
    let mut out = Vec::new();
    for at in random_positions(hash.len(), n, repeats) {
        if let Some((field, value)) = hash.at(at) {
            out.push(Value::Bulk(field.clone()));
            if with_values {
                out.push(Value::Bulk(value.clone()));
            }
        }
    }
    Ok(Value::Array(out))
}

/// HSCAN key cursor [MATCH pattern] [COUNT count]
fn hscan(c: &mut Call<'_, '_>) -> Outcome {
    let start = cursor(c.args[2])?;
    let (filter, count) = scan_options(c.args, 3, false)?;
    let Some(hash) = c.db.collection::<Hash>(c.key(), c.clock)? else {
        return Ok(scan_reply(0, Vec::new()));
    };
    let (range, next) = hash.scan(start, count);
    let mut items = Vec::new();
    for (field, value) in range.filter_map(|at| hash.at(at)) {
        if filter
            .pattern
            .is_none_or(|p| glob::matches(p, field, false))
        {
            items.push(Value::Bulk(field.clone()));
            items.push(Value::Bulk(value.clone()));
        }
    }
    Ok(scan_reply(next, items))
}
