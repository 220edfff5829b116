//! Sets, hashes and the keyspace commands against models: sets of strings, maps of fields,
//! and a key space of typed values (TYPE, EXISTS with repeats, RENAME, RENAMENX, COPY,
//! WRONGTYPE across families).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::{KEYS, Kv, bulk, bulks, int, ok, replay, sorted, wrongtype};
use beamline::resp::Value;

fn member() -> impl Strategy<Value = String> {
    prop_oneof![Just("m".to_owned()), Just("7".to_owned()), "[a-d]"]
}

#[derive(Debug, Clone, PartialEq)]
enum Data {
    Str(String),
    Set(BTreeSet<String>),
    Hash(BTreeMap<String, String>),
}

impl Data {
    fn type_name(&self) -> &'static str {
        match self {
            Data::Str(_) => "string",
            Data::Set(_) => "set",
            Data::Hash(_) => "hash",
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Set(usize, String),
    SAdd(usize, Vec<String>),
    SRem(usize, String),
    SIsMember(usize, String),
    SCard(usize),
    Combine(&'static str, usize, usize),
    InterStore(usize, usize, usize),
    SMove(usize, usize, String),
    HSet(usize, String, String),
    HSetNx(usize, String, String),
    HDel(usize, String),
    HGet(usize, String),
    HIncrBy(usize, String, i64),
    HStrlen(usize, String),
    Type(usize),
    Exists(usize, usize),
    Del(usize),
    Rename(bool, usize, usize),
    Copy(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let k = || 0..KEYS.len();
    prop_oneof![
        (k(), member()).prop_map(|(k, v)| Op::Set(k, v)),
        (k(), proptest::collection::vec(member(), 1..4)).prop_map(|(k, m)| Op::SAdd(k, m)),
        (k(), member()).prop_map(|(k, m)| Op::SRem(k, m)),
        (k(), member()).prop_map(|(k, m)| Op::SIsMember(k, m)),
        k().prop_map(Op::SCard),
        (
            prop_oneof![Just("SINTER"), Just("SUNION"), Just("SDIFF")],
            k(),
            k()
        )
            .prop_map(|(c, a, b)| Op::Combine(c, a, b)),
        (k(), k(), k()).prop_map(|(d, a, b)| Op::InterStore(d, a, b)),
        (k(), k(), member()).prop_map(|(a, b, m)| Op::SMove(a, b, m)),
        (k(), member(), member()).prop_map(|(k, f, v)| Op::HSet(k, f, v)),
        (k(), member(), member()).prop_map(|(k, f, v)| Op::HSetNx(k, f, v)),
        (k(), member()).prop_map(|(k, f)| Op::HDel(k, f)),
        (k(), member()).prop_map(|(k, f)| Op::HGet(k, f)),
        (k(), member(), -3i64..3).prop_map(|(k, f, n)| Op::HIncrBy(k, f, n)),
        (k(), member()).prop_map(|(k, f)| Op::HStrlen(k, f)),
        k().prop_map(Op::Type),
        (k(), k()).prop_map(|(a, b)| Op::Exists(a, b)),
        k().prop_map(Op::Del),
        (any::<bool>(), k(), k()).prop_map(|(nx, a, b)| Op::Rename(nx, a, b)),
        (k(), k()).prop_map(|(a, b)| Op::Copy(a, b)),
    ]
}

type Model = BTreeMap<usize, Data>;

/// The set at `k` (empty if none); `Err` if another type is there.
fn set_of(model: &Model, k: usize) -> Result<BTreeSet<String>, Value> {
    match model.get(&k) {
        None => Ok(BTreeSet::new()),
        Some(Data::Set(s)) => Ok(s.clone()),
        Some(_) => Err(wrongtype()),
    }
}

fn hash_of(model: &Model, k: usize) -> Result<BTreeMap<String, String>, Value> {
    match model.get(&k) {
        None => Ok(BTreeMap::new()),
        Some(Data::Hash(h)) => Ok(h.clone()),
        Some(_) => Err(wrongtype()),
    }
}

/// Stores `data` at `k`, or removes `k` if it is an empty collection.
fn put(model: &mut Model, k: usize, data: Data) {
    let empty = match &data {
        Data::Set(s) => s.is_empty(),
        Data::Hash(h) => h.is_empty(),
        Data::Str(_) => false,
    };
    if empty {
        model.remove(&k);
    } else {
        model.insert(k, data);
    }
}

fn combine(cmd: &str, a: &BTreeSet<String>, b: &BTreeSet<String>) -> BTreeSet<String> {
    match cmd {
        "SINTER" => a.intersection(b).cloned().collect(),
        "SUNION" => a.union(b).cloned().collect(),
        _ => a.difference(b).cloned().collect(),
    }
}

/// One step: the model's answer (changing the model), and kv's.
fn step(kv: &mut Kv, model: &mut Model, op: &Op) -> (Value, Value) {
    let key = |k: usize| KEYS[k];
    let want = expected(model, op);
    let got = match op {
        Op::Set(k, v) => kv.run(&["SET", key(*k), v]),
        Op::SAdd(k, m) => {
            let mut args = vec!["SADD", key(*k)];
            args.extend(m.iter().map(String::as_str));
            kv.run(&args)
        }
        Op::SRem(k, m) => kv.run(&["SREM", key(*k), m]),
        Op::SIsMember(k, m) => kv.run(&["SISMEMBER", key(*k), m]),
        Op::SCard(k) => kv.run(&["SCARD", key(*k)]),
        Op::Combine(cmd, a, b) => sorted(kv.run(&[cmd, key(*a), key(*b)])),
        Op::InterStore(d, a, b) => kv.run(&["SINTERSTORE", key(*d), key(*a), key(*b)]),
        Op::SMove(a, b, m) => kv.run(&["SMOVE", key(*a), key(*b), m]),
        Op::HSet(k, f, v) => kv.run(&["HSET", key(*k), f, v]),
        Op::HSetNx(k, f, v) => kv.run(&["HSETNX", key(*k), f, v]),
        Op::HDel(k, f) => kv.run(&["HDEL", key(*k), f]),
        Op::HGet(k, f) => kv.run(&["HGET", key(*k), f]),
        Op::HIncrBy(k, f, n) => kv.run(&["HINCRBY", key(*k), f, &n.to_string()]),
        Op::HStrlen(k, f) => kv.run(&["HSTRLEN", key(*k), f]),
        Op::Type(k) => kv.run(&["TYPE", key(*k)]),
        Op::Exists(a, b) => kv.run(&["EXISTS", key(*a), key(*b), key(*a)]),
        Op::Del(k) => kv.run(&["DEL", key(*k)]),
        Op::Rename(nx, a, b) => {
            kv.run(&[if *nx { "RENAMENX" } else { "RENAME" }, key(*a), key(*b)])
        }
        Op::Copy(a, b) => kv.run(&["COPY", key(*a), key(*b)]),
    };
    (got, want)
}

fn expected(model: &mut Model, op: &Op) -> Value {
    let answer = |r: Result<Value, Value>| r.unwrap_or_else(|e| e);
    match op {
        Op::Set(k, v) => {
            model.insert(*k, Data::Str(v.clone()));
            ok()
        }
        Op::SAdd(k, members) => answer(set_of(model, *k).map(|mut s| {
            let added = members.iter().filter(|m| s.insert((*m).clone())).count();
            put(model, *k, Data::Set(s));
            int(added as i64)
        })),
        Op::SRem(k, m) => answer(set_of(model, *k).map(|mut s| {
            let removed = s.remove(m);
            put(model, *k, Data::Set(s));
            int(i64::from(removed))
        })),
        Op::SIsMember(k, m) => answer(set_of(model, *k).map(|s| int(i64::from(s.contains(m))))),
        Op::SCard(k) => answer(set_of(model, *k).map(|s| int(s.len() as i64))),
        Op::Combine(cmd, a, b) => answer(
            set_of(model, *a).and_then(|x| set_of(model, *b).map(|y| bulks(&combine(cmd, &x, &y)))),
        ),
        Op::InterStore(d, a, b) => answer(set_of(model, *a).and_then(|x| {
            let inter = combine("SINTER", &x, &set_of(model, *b)?);
            let n = inter.len() as i64;
            put(model, *d, Data::Set(inter));
            Ok(int(n))
        })),
        Op::SMove(a, b, m) => answer(set_of(model, *a).and_then(|mut src| {
            let mut dst = set_of(model, *b)?;
            if !src.remove(m) {
                return Ok(int(0));
            }
            dst.insert(m.clone());
            put(model, *a, Data::Set(src));
            put(model, *b, Data::Set(dst));
            Ok(int(1))
        })),
        Op::HSet(k, f, v) | Op::HSetNx(k, f, v) => answer(hash_of(model, *k).map(|mut h| {
            let nx = matches!(op, Op::HSetNx(..));
            let fresh = !h.contains_key(f);
            if fresh || !nx {
                h.insert(f.clone(), v.clone());
            }
            put(model, *k, Data::Hash(h));
            int(i64::from(fresh))
        })),
        Op::HDel(k, f) => answer(hash_of(model, *k).map(|mut h| {
            let removed = h.remove(f).is_some();
            put(model, *k, Data::Hash(h));
            int(i64::from(removed))
        })),
        Op::HGet(k, f) => {
            answer(hash_of(model, *k).map(|h| h.get(f).map_or(Value::Null, |v| bulk(v))))
        }
        Op::HIncrBy(k, f, n) => answer(hash_of(model, *k).and_then(|mut h| {
            let old = match h.get(f) {
                None => 0,
                Some(v) => v
                    .parse::<i64>()
                    .ok()
                    .filter(|i| i.to_string() == *v)
                    .ok_or_else(|| Value::error("ERR hash value is not an integer"))?,
            };
            h.insert(f.clone(), (old + n).to_string());
            put(model, *k, Data::Hash(h));
            Ok(int(old + n))
        })),
        Op::HStrlen(k, f) => {
            answer(hash_of(model, *k).map(|h| int(h.get(f).map_or(0, String::len) as i64)))
        }
        Op::Type(k) => Value::simple(model.get(k).map_or("none", Data::type_name)),
        Op::Exists(a, b) => {
            int(2 * i64::from(model.contains_key(a)) + i64::from(model.contains_key(b)))
        }
        Op::Del(k) => int(i64::from(model.remove(k).is_some())),
        Op::Rename(nx, a, b) => match model.get(a).cloned() {
            None => Value::error("ERR no such key"),
            Some(_) if *nx && model.contains_key(b) => int(0),
            Some(data) => {
                model.remove(a);
                model.insert(*b, data);
                if *nx { int(1) } else { ok() }
            }
        },
        Op::Copy(a, b) => match model.get(a).cloned() {
            _ if a == b => Value::error("ERR source and destination objects are the same"),
            Some(data) if !model.contains_key(b) => {
                model.insert(*b, data);
                int(1)
            }
            _ => int(0),
        },
    }
}

/// HGETALL's flat reply as a map (the order of its pairs is the server's).
fn pairs(reply: Value) -> BTreeMap<String, String> {
    let Value::Array(items) = reply else {
        panic!("HGETALL answered {reply:?}")
    };
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    items
        .chunks(2)
        .map(|p| (text(&p[0]), text(&p[1])))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn sets_hashes_and_the_keyspace_behave_like_their_models(
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        let mut model = Model::new();
        let mut kv = replay(&ops, &mut model, step)?;
        for (k, key) in KEYS.iter().enumerate() {
            let (members, fields) = match model.get(&k) {
                Some(Data::Set(s)) => (bulks(s), None),
                Some(Data::Hash(h)) => (wrongtype(), Some(h.clone())),
                Some(Data::Str(_)) => (wrongtype(), None),
                None => (Value::Array(vec![]), Some(BTreeMap::new())),
            };
            prop_assert_eq!(sorted(kv.run(&["SMEMBERS", key])), members);
            if let Some(h) = fields {
                prop_assert_eq!(pairs(kv.run(&["HGETALL", key])), h);
            }
        }
    }
}
