//! The key space: DEL, UNLINK, EXISTS, TOUCH, TYPE, KEYS, SCAN, RANDOMKEY, RENAME, RENAMENX,
//! COPY, DBSIZE, FLUSHDB, FLUSHALL, and what a key costs: OBJECT ENCODING | REFCOUNT,
//! MEMORY USAGE.

use beamline::resp::Value;
use bytes::Bytes;

use super::super::store::{Data, Filter};
use super::reply::{
    Outcome, array, bulk_or_null, error, flag, int, integer, is, syntax_error, unknown_subcommand,
};
use super::{ALL_KEYS, Call, Keys, Spec, TWO_KEYS, plain};

pub(super) const SPECS: &[Spec] = &[
    plain("del", -2, ALL_KEYS, del),
    plain("unlink", -2, ALL_KEYS, del),
    plain("exists", -2, ALL_KEYS, exists),
    plain("touch", -2, ALL_KEYS, exists),
    plain("type", 2, super::KEY, type_of),
    plain("keys", 2, Keys::None, keys),
    plain("scan", -2, Keys::None, scan),
    plain("randomkey", 1, Keys::None, randomkey),
    plain("rename", 3, TWO_KEYS, |c| rename(c, false)),
    plain("renamenx", 3, TWO_KEYS, |c| rename(c, true)),
    plain("copy", -3, TWO_KEYS, copy),
    plain("dbsize", 1, Keys::None, dbsize),
    plain("flushdb", -1, Keys::None, flush),
    plain("flushall", -1, Keys::None, flush),
    plain(
        "object",
        3,
        Keys::Range {
            first: 2,
            from_end: 0,
            step: 1,
        },
        object,
    ),
    plain(
        "memory",
        -3,
        Keys::Range {
            first: 2,
            from_end: 0,
            step: 1,
        },
        memory,
    ),
];

fn del(c: &mut Call<'_, '_>) -> Outcome {
    let mut removed = 0;
    for key in &c.args[1..] {
        removed += usize::from(c.db.remove(key, c.clock).is_some());
    }
    Ok(integer(removed))
}

/// EXISTS (and TOUCH): how many of the keys exist, a key named twice counting twice.
fn exists(c: &mut Call<'_, '_>) -> Outcome {
    let found = c.args[1..]
        .iter()
        .filter(|key| c.db.exists(key, c.clock))
        .count();
    Ok(integer(found))
}

fn type_of(c: &mut Call<'_, '_>) -> Outcome {
    let name =
        c.db.get(c.key(), c.clock)
            .map_or("none", |e| e.data.type_name());
    Ok(Value::simple(name))
}

fn keys(c: &mut Call<'_, '_>) -> Outcome {
    Ok(array(c.db.keys(c.args[1], c.clock)))
}

/// A SCAN-family cursor: a decimal unsigned number.
pub(super) fn cursor(arg: &[u8]) -> Result<u64, Value> {
    std::str::from_utf8(arg)
        .ok()
        .filter(|t| !t.starts_with('+'))
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| error("ERR invalid cursor"))
}

/// SCAN's and HSCAN's options from `from` on: MATCH, COUNT and (SCAN only) TYPE.
pub(super) fn scan_options<'a>(
    args: &[&'a [u8]],
    from: usize,
    with_type: bool,
) -> Result<(Filter<'a>, usize), Value> {
    let mut filter = Filter::default();
    let mut count = 10;
    let mut i = from;
    while i < args.len() {
        let Some(&value) = args.get(i + 1) else {
            return Err(syntax_error());
        };
        let opt = args[i];
        if is(opt, "COUNT") {
            count = usize::try_from(int(value)?)
                .ok()
                .filter(|&n| n >= 1)
                .ok_or_else(syntax_error)?;
        } else if is(opt, "MATCH") {
            filter.pattern = Some(value).filter(|p| *p != b"*");
        } else if with_type && is(opt, "TYPE") {
            filter.type_name = Some(value);
        } else {
            return Err(syntax_error());
        }
        i += 2;
    }
    Ok((filter, count))
}

/// The `[cursor, [items]]` reply of the SCAN family.
pub(super) fn scan_reply(next: u64, items: Vec<Value>) -> Value {
    Value::Array(vec![
        Value::Bulk(Bytes::from(next.to_string())),
        Value::Array(items),
    ])
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]
fn scan(c: &mut Call<'_, '_>) -> Outcome {
    let start = cursor(c.args[1])?;
    let (filter, count) = scan_options(c.args, 2, true)?;
    let (next, keys) = c.db.scan(start, count, filter, c.clock);
    Ok(scan_reply(
        next,
        keys.into_iter().map(Value::Bulk).collect(),
    ))
}

fn randomkey(c: &mut Call<'_, '_>) -> Outcome {
    Ok(bulk_or_null(c.db.random_key(c.clock)))
}

/// RENAME / RENAMENX source destination: the value and its deadline move; the
/// destination's own deadline goes with its old value.
fn rename(c: &mut Call<'_, '_>, only_new: bool) -> Outcome {
    let (from, to) = (c.args[1], c.args[2]);
    if !c.db.exists(from, c.clock) {
        return Err(error("ERR no such key"));
    }
    if from == to {
        return Ok(if only_new { flag(false) } else { Value::ok() });
    }
    if only_new && c.db.exists(to, c.clock) {
        return Ok(flag(false));
    }
    let Some(entry) = c.db.remove(from, c.clock) else {
        return Err(error("ERR no such key"));
    };
    let list = matches!(entry.data, Data::List(_));
    c.db.insert(to, entry);
    if list {
        c.signal_ready(to);
    }
    Ok(if only_new { flag(true) } else { Value::ok() })
}

/// COPY source destination [DB index] [REPLACE]: one database, so DB takes 0 only.
fn copy(c: &mut Call<'_, '_>) -> Outcome {
    let (from, to) = (c.args[1], c.args[2]);
    let mut replace = false;
    let mut i = 3;
    while i < c.args.len() {
        if is(c.args[i], "REPLACE") {
            replace = true;
        } else if is(c.args[i], "DB") && i + 1 < c.args.len() {
            if c.int(i + 1)? != 0 {
                return Err(error("ERR DB index is out of range"));
            }
            i += 1;
        } else {
            return Err(syntax_error());
        }
        i += 1;
    }
    if from == to {
        return Err(error("ERR source and destination objects are the same"));
    }
    let Some(entry) = c.db.get(from, c.clock).map(|e| e.clone()) else {
        return Ok(flag(false));
    };
    if c.db.exists(to, c.clock) && !replace {
        return Ok(flag(false));
    }
    let list = matches!(entry.data, Data::List(_));
    c.db.insert(to, entry);
    if list {
        c.signal_ready(to);
    }
    Ok(flag(true))
}

fn dbsize(c: &mut Call<'_, '_>) -> Outcome {
    Ok(integer(c.db.len()))
}

/// FLUSHDB / FLUSHALL [ASYNC | SYNC]
fn flush(c: &mut Call<'_, '_>) -> Outcome {
    match c.args {
        [_] => {}
        [_, mode] if is(mode, "ASYNC") || is(mode, "SYNC") => {}
        _ => return Err(syntax_error()),
    }
    c.db.clear();
    Ok(Value::ok())
}

/// OBJECT ENCODING | REFCOUNT key: kv's own structures (a string is `int` or `raw`, a list a
/// `deque`, a set or hash a `hashtable`), and 1 reference (kv never shares a value between
/// keys).
fn object(c: &mut Call<'_, '_>) -> Outcome {
    let sub = c.args[1].to_ascii_lowercase();
    let key = c.args[2];
    let Some(entry) = c.db.get(key, c.clock) else {
        return match &sub[..] {
            b"encoding" | b"refcount" => Ok(Value::Null),
            _ => Err(unknown_subcommand(c.args[1], "OBJECT")),
        };
    };
    match &sub[..] {
        b"encoding" => Ok(Value::bulk(match &entry.data {
            Data::Int(_) => "int",
            Data::Str(_) => "raw",
            Data::List(_) => "deque",
            Data::Set(_) | Data::Hash(_) => "hashtable",
        })),
        b"refcount" => Ok(Value::Integer(1)),
        _ => Err(unknown_subcommand(c.args[1], "OBJECT")),
    }
}

/// MEMORY USAGE key [SAMPLES count]: an estimate of the bytes the key takes (its key, its
/// values, and a fixed overhead per entry and per element).
fn memory(c: &mut Call<'_, '_>) -> Outcome {
    const ENTRY: usize = 96;
    const ELEMENT: usize = 48;
    if !is(c.args[1], "USAGE") {
        return Err(unknown_subcommand(c.args[1], "MEMORY"));
    }
    match c.args.len() {
        3 => {}
        5 if is(c.args[3], "SAMPLES") => {
            int(c.args[4])?;
        }
        _ => return Err(syntax_error()),
    }
    let key = c.args[2];
    let Some(entry) = c.db.get(key, c.clock) else {
        return Ok(Value::Null);
    };
    let values = match &entry.data {
        Data::Int(_) => 8,
        Data::Str(s) => s.len(),
        Data::List(list) => list.iter().map(|v| v.len() + ELEMENT).sum(),
        Data::Set(set) => set.keys().map(|m| m.len() + ELEMENT).sum(),
        Data::Hash(hash) => hash.iter().map(|(f, v)| f.len() + v.len() + ELEMENT).sum(),
    };
    Ok(integer(ENTRY + key.len() + values))
}
