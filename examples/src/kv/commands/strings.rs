//! Strings: GET, SET and its options, SETNX, SETEX, PSETEX, GETSET, GETDEL, GETEX, MGET,
//! MSET, MSETNX, APPEND, STRLEN, INCR, DECR, INCRBY, DECRBY, INCRBYFLOAT (ranges and bits are
//! in [`ranges`](super::ranges)).

use beamline::resp::Value;
use bytes::Bytes;

use super::super::float::{self, FloatError};
use super::super::store::{Data, WrongType, parse_int};
use super::reply::{
    Outcome, bulk_or_null, error, error_text, flag, integer, is, not_a_float, not_an_integer,
    syntax_error, wrong_arity,
};
use super::{ALL_KEYS, Call, KEY, Keys, Spec, plain};

pub(super) const SPECS: &[Spec] = &[
    plain("get", 2, KEY, get),
    plain("set", -3, KEY, set),
    plain("setnx", 3, KEY, setnx),
    plain("setex", 4, KEY, |c| set_with_ttl(c, Unit::Seconds, "setex")),
    plain("psetex", 4, KEY, |c| {
        set_with_ttl(c, Unit::Millis, "psetex")
    }),
    plain("getset", 3, KEY, getset),
    plain("getdel", 2, KEY, getdel),
    plain("getex", -2, KEY, getex),
    plain("mget", -2, ALL_KEYS, mget),
    plain("mset", -3, PAIRS, |c| mset(c, false)),
    plain("msetnx", -3, PAIRS, |c| mset(c, true)),
    plain("append", 3, KEY, append),
    plain("strlen", 2, KEY, strlen),
    plain("incr", 2, KEY, |c| incr_by(c, 1)),
    plain("decr", 2, KEY, |c| incr_by(c, -1)),
    plain("incrby", 3, KEY, incrby),
    plain("decrby", 3, KEY, decrby),
    plain("incrbyfloat", 3, KEY, incrbyfloat),
];

/// MSET's keys: every other argument from the first.
const PAIRS: Keys = Keys::Range {
    first: 1,
    from_end: 0,
    step: 2,
};

/// The unit of an expiry argument: relative (EX, PX) or absolute Unix time (EXAT, PXAT),
/// in seconds or milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Seconds,
    Millis,
    UnixSeconds,
    UnixMillis,
}

/// The deadline (Unix ms) an expiry argument means, as SET, SETEX and GETEX read it:
/// positive, not overflowing. `None` is Redis's "invalid expire time".
pub(crate) fn set_deadline(amount: i64, unit: Unit, now_ms: i64) -> Option<i64> {
    if amount <= 0 {
        return None;
    }
    let ms = match unit {
        Unit::Seconds | Unit::UnixSeconds => amount.checked_mul(1000)?,
        Unit::Millis | Unit::UnixMillis => amount,
    };
    let at = match unit {
        Unit::Seconds | Unit::Millis => ms.checked_add(now_ms)?,
        Unit::UnixSeconds | Unit::UnixMillis => ms,
    };
    (at > 0).then_some(at)
}

fn invalid_expire(command: &str) -> Value {
    error_text(format!("ERR invalid expire time in '{command}' command"))
}

/// SET's and GETEX's options, as Redis's `parseExtendedStringArgumentsOrReply` reads them.
#[derive(Debug, Default)]
struct Options<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    expire: Option<(Unit, &'a [u8])>,
}

/// Reads the options from `from` on; `set` for SET's (NX, XX, GET, KEEPTTL), else GETEX's
/// (PERSIST). Returns the deadline too, checked.
fn options<'a>(
    c: &mut Call<'a, '_>,
    from: usize,
    set: bool,
    name: &str,
) -> Result<(Options<'a>, Option<i64>), Value> {
    let args = c.args;
    let mut o = Options::default();
    let mut i = from;
    while i < args.len() {
        let arg = args[i];
        let next = args.get(i + 1);
        let timed = o.expire.is_some();
        if set && is(arg, "NX") && !o.xx {
            o.nx = true;
        } else if set && is(arg, "XX") && !o.nx {
            o.xx = true;
        } else if set && is(arg, "GET") {
            o.get = true;
        } else if set && is(arg, "KEEPTTL") && !o.persist && !timed {
            o.keepttl = true;
        } else if !set && is(arg, "PERSIST") && !timed && !o.keepttl {
            o.persist = true;
        } else if let Some(unit) = unit_of(arg)
            && !o.keepttl
            && !o.persist
            && o.expire.is_none_or(|(u, _)| u == unit)
            && let Some(amount) = next
        {
            o.expire = Some((unit, *amount));
            i += 1;
        } else {
            return Err(syntax_error());
        }
        i += 1;
    }
    let deadline = match o.expire {
        Some((unit, amount)) => {
            let amount = parse_int(amount).ok_or_else(not_an_integer)?;
            let at = set_deadline(amount, unit, c.clock.now_ms());
            Some(at.ok_or_else(|| invalid_expire(name))?)
        }
        None => None,
    };
    Ok((o, deadline))
}

fn unit_of(arg: &[u8]) -> Option<Unit> {
    [
        ("EX", Unit::Seconds),
        ("PX", Unit::Millis),
        ("EXAT", Unit::UnixSeconds),
        ("PXAT", Unit::UnixMillis),
    ]
    .into_iter()
    .find_map(|(name, unit)| is(arg, name).then_some(unit))
}

fn get(c: &mut Call<'_, '_>) -> Outcome {
    Ok(bulk_or_null(c.db.string(c.key(), c.clock)?))
}

/// SET key value [NX | XX] [GET] [EX s | PX ms | EXAT unix-s | PXAT unix-ms | KEEPTTL]
fn set(c: &mut Call<'_, '_>) -> Outcome {
    let (o, deadline) = options(c, 3, true, "set")?;
    let key = c.key();
    let old = if o.get {
        c.db.string(key, c.clock)?
    } else {
        None
    };
    let existing = c.db.get(key, c.clock).map(|e| e.deadline());
    if (o.nx && existing.is_some()) || (o.xx && existing.is_none()) {
        return Ok(if o.get {
            bulk_or_null(old)
        } else {
            Value::Null
        });
    }
    // A copy: a slice of the request would pin the whole read buffer it came in.
    let value = Data::Str(Bytes::copy_from_slice(c.args[2]));
    if o.keepttl {
        c.db.put(key, value);
    } else {
        c.db.set(key, value);
        if deadline.is_some() {
            c.db.set_deadline(key, deadline);
        }
    }
    Ok(if o.get {
        bulk_or_null(old)
    } else {
        Value::ok()
    })
}

fn setnx(c: &mut Call<'_, '_>) -> Outcome {
    let key = c.key();
    if c.db.exists(key, c.clock) {
        return Ok(flag(false));
    }
    c.db.set(key, Data::Str(Bytes::copy_from_slice(c.args[2])));
    Ok(flag(true))
}

/// SETEX key seconds value, PSETEX key ms value
fn set_with_ttl(c: &mut Call<'_, '_>, unit: Unit, name: &str) -> Outcome {
    let amount = c.int(2)?;
    let at = set_deadline(amount, unit, c.clock.now_ms()).ok_or_else(|| invalid_expire(name))?;
    let key = c.key();
    c.db.set(key, Data::Str(Bytes::copy_from_slice(c.args[3])));
    c.db.set_deadline(key, Some(at));
    Ok(Value::ok())
}

fn getset(c: &mut Call<'_, '_>) -> Outcome {
    let key = c.key();
    let old = c.db.string(key, c.clock)?;
    c.db.set(key, Data::Str(Bytes::copy_from_slice(c.args[2])));
    Ok(bulk_or_null(old))
}

fn getdel(c: &mut Call<'_, '_>) -> Outcome {
    let key = c.key();
    let value = c.db.string(key, c.clock)?;
    if value.is_some() {
        c.db.remove(key, c.clock);
    }
    Ok(bulk_or_null(value))
}

/// GETEX key [EX s | PX ms | EXAT unix-s | PXAT unix-ms | PERSIST]
fn getex(c: &mut Call<'_, '_>) -> Outcome {
    let (o, deadline) = options(c, 2, false, "getex")?;
    let key = c.key();
    let Some(value) = c.db.string(key, c.clock)? else {
        return Ok(Value::Null);
    };
    if let Some(at) = deadline {
        if at <= c.clock.now_ms() {
            c.db.remove(key, c.clock);
        } else {
            c.db.set_deadline(key, Some(at));
        }
    } else if o.persist {
        c.db.set_deadline(key, None);
    }
    Ok(Value::Bulk(value))
}

fn mget(c: &mut Call<'_, '_>) -> Outcome {
    let values = c.args[1..]
        .iter()
        .map(|key| bulk_or_null(c.db.string(key, c.clock).ok().flatten()))
        .collect();
    Ok(Value::Array(values))
}

/// MSET / MSETNX key value [key value ...]: atomic (every key's shard is held).
fn mset(c: &mut Call<'_, '_>, only_new: bool) -> Outcome {
    let pairs = &c.args[1..];
    if !pairs.len().is_multiple_of(2) {
        return Err(wrong_arity(if only_new { "msetnx" } else { "mset" }));
    }
    if only_new && pairs.chunks_exact(2).any(|kv| c.db.exists(kv[0], c.clock)) {
        return Ok(flag(false));
    }
    for kv in pairs.chunks_exact(2) {
        c.db.set(kv[0], Data::Str(Bytes::copy_from_slice(kv[1])));
    }
    Ok(if only_new { flag(true) } else { Value::ok() })
}

/// The longest string a command may make (Redis's `proto-max-bulk-len`), or its error.
pub(super) fn check_length(c: &Call<'_, '_>, len: Option<usize>) -> Result<usize, Value> {
    len.filter(|&n| n <= c.shared.max_string())
        .ok_or_else(|| error("ERR string exceeds maximum allowed size (proto-max-bulk-len)"))
}

fn append(c: &mut Call<'_, '_>) -> Outcome {
    let key = c.key();
    let old = c.db.string(key, c.clock)?;
    let add = c.args[2];
    let old = old.unwrap_or_default();
    let len = check_length(c, old.len().checked_add(add.len()))?;
    let mut joined = Vec::with_capacity(len);
    joined.extend_from_slice(&old);
    joined.extend_from_slice(add);
    c.db.put(key, Data::Str(Bytes::from(joined)));
    Ok(integer(len))
}

fn strlen(c: &mut Call<'_, '_>) -> Outcome {
    let len = match c.db.get(c.key(), c.clock) {
        None => 0,
        Some(entry) => match &entry.data {
            Data::Str(s) => s.len(),
            Data::Int(n) => n.to_string().len(),
            _ => return Err(WrongType.into()),
        },
    };
    Ok(integer(len))
}

fn incrby(c: &mut Call<'_, '_>) -> Outcome {
    let delta = c.int(2)?;
    incr_by(c, delta)
}

fn decrby(c: &mut Call<'_, '_>) -> Outcome {
    let delta = c
        .int(2)?
        .checked_neg()
        .ok_or_else(|| error("ERR decrement would overflow"))?;
    incr_by(c, delta)
}

fn incr_by(c: &mut Call<'_, '_>, delta: i64) -> Outcome {
    let key = c.key();
    let current = match c.db.get(key, c.clock) {
        None => 0,
        Some(entry) => match &entry.data {
            Data::Int(n) => *n,
            Data::Str(s) => parse_int(s).ok_or_else(not_an_integer)?,
            _ => return Err(WrongType.into()),
        },
    };
    let next = current
        .checked_add(delta)
        .ok_or_else(|| error("ERR increment or decrement would overflow"))?;
    // Kept as a number: the next INCR allocates nothing.
    c.db.put(key, Data::Int(next));
    Ok(Value::Integer(next))
}

fn incrbyfloat(c: &mut Call<'_, '_>) -> Outcome {
    let key = c.key();
    let current = c.db.string(key, c.clock)?;
    let sum = float::add(current.as_deref(), c.args[2]).map_err(|e| match e {
        FloatError::NotAFloat => not_a_float(),
        FloatError::NanOrInfinity => error("ERR increment would produce NaN or Infinity"),
    })?;
    c.db.put(key, Data::Str(sum.clone()));
    Ok(Value::Bulk(sum))
}
