//! The string family against a map of byte strings.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{KEYS, Kv, bulk, int, ok, replay};
use beamline::resp::Value;

#[derive(Debug, Clone)]
enum Op {
    Set(usize, String),
    SetNx(usize, String),
    GetSet(usize, String),
    Append(usize, String),
    Get(usize),
    GetDel(usize),
    Strlen(usize),
    IncrBy(usize, i64),
    SetRange(usize, usize, String),
    GetRange(usize, i64, i64),
    MSetNx(usize, usize, String),
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("1".to_owned()),
        Just("-7".to_owned()),
        Just("x".to_owned()),
        "[a-z0-9]{1,6}",
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0..KEYS.len();
    prop_oneof![
        (k.clone(), value()).prop_map(|(k, v)| Op::Set(k, v)),
        (k.clone(), value()).prop_map(|(k, v)| Op::SetNx(k, v)),
        (k.clone(), value()).prop_map(|(k, v)| Op::GetSet(k, v)),
        (k.clone(), value()).prop_map(|(k, v)| Op::Append(k, v)),
        k.clone().prop_map(Op::Get),
        k.clone().prop_map(Op::GetDel),
        k.clone().prop_map(Op::Strlen),
        (k.clone(), -5i64..5).prop_map(|(k, n)| Op::IncrBy(k, n)),
        (k.clone(), 0usize..8, value()).prop_map(|(k, o, v)| Op::SetRange(k, o, v)),
        (k.clone(), -8i64..8, -8i64..8).prop_map(|(k, s, e)| Op::GetRange(k, s, e)),
        (k.clone(), k, value()).prop_map(|(a, b, v)| Op::MSetNx(a, b, v)),
    ]
}

fn text(bytes: &[u8]) -> Value {
    Value::bulk(bytes.to_vec())
}

fn get_or_null(model: &BTreeMap<usize, Vec<u8>>, k: usize) -> Value {
    model.get(&k).map_or(Value::Null, |v| text(v))
}

/// Redis's GETRANGE arithmetic.
fn range(v: &[u8], start: i64, end: i64) -> Vec<u8> {
    let len = v.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Vec::new();
    }
    let s = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let e = if end < 0 { (len + end).max(0) } else { end }.min(len - 1);
    if s > e || len == 0 {
        return Vec::new();
    }
    v[s as usize..=e as usize].to_vec()
}

fn step(kv: &mut Kv, model: &mut BTreeMap<usize, Vec<u8>>, op: &Op) -> (Value, Value) {
    let key = |k: usize| KEYS[k];
    match op {
        Op::Set(k, v) => {
            model.insert(*k, v.clone().into_bytes());
            (kv.run(&["SET", key(*k), v]), ok())
        }
        Op::SetNx(k, v) => {
            let fresh = !model.contains_key(k);
            if fresh {
                model.insert(*k, v.clone().into_bytes());
            }
            (kv.run(&["SETNX", key(*k), v]), int(i64::from(fresh)))
        }
        Op::GetSet(k, v) => {
            let old = get_or_null(model, *k);
            model.insert(*k, v.clone().into_bytes());
            (kv.run(&["GETSET", key(*k), v]), old)
        }
        Op::Append(k, v) => {
            let entry = model.entry(*k).or_default();
            entry.extend_from_slice(v.as_bytes());
            let len = entry.len() as i64;
            (kv.run(&["APPEND", key(*k), v]), int(len))
        }
        Op::Get(k) => (kv.run(&["GET", key(*k)]), get_or_null(model, *k)),
        Op::GetDel(k) => {
            let old = get_or_null(model, *k);
            model.remove(k);
            (kv.run(&["GETDEL", key(*k)]), old)
        }
        Op::Strlen(k) => {
            let len = model.get(k).map_or(0, Vec::len) as i64;
            (kv.run(&["STRLEN", key(*k)]), int(len))
        }
        Op::IncrBy(k, n) => {
            let current = model
                .get(k)
                .map(|v| String::from_utf8_lossy(v).into_owned());
            let parsed = match current.as_deref() {
                None => Some(0),
                // Redis reads only the canonical form of an integer.
                Some(t) => t.parse::<i64>().ok().filter(|n| n.to_string() == t),
            };
            let want = match parsed {
                Some(old) => {
                    model.insert(*k, (old + n).to_string().into_bytes());
                    int(old + n)
                }
                None => Value::error("ERR value is not an integer or out of range"),
            };
            (kv.run(&["INCRBY", key(*k), &n.to_string()]), want)
        }
        Op::SetRange(k, offset, v) => {
            let want = if v.is_empty() {
                model.get(k).map_or(0, Vec::len)
            } else {
                let entry = model.entry(*k).or_default();
                if entry.len() < offset + v.len() {
                    entry.resize(offset + v.len(), 0);
                }
                entry[*offset..offset + v.len()].copy_from_slice(v.as_bytes());
                entry.len()
            };
            let reply = kv.run(&["SETRANGE", key(*k), &offset.to_string(), v]);
            (reply, int(want as i64))
        }
        Op::GetRange(k, s, e) => {
            let v = model.get(k).cloned().unwrap_or_default();
            let reply = kv.run(&["GETRANGE", key(*k), &s.to_string(), &e.to_string()]);
            (reply, text(&range(&v, *s, *e)))
        }
        Op::MSetNx(a, b, v) => {
            let fresh = !model.contains_key(a) && !model.contains_key(b);
            if fresh {
                model.insert(*a, v.clone().into_bytes());
                model.insert(*b, v.clone().into_bytes());
            }
            let reply = kv.run(&["MSETNX", key(*a), v, key(*b), v]);
            (reply, int(i64::from(fresh)))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn strings_behave_like_a_map_of_byte_strings(ops in proptest::collection::vec(op(), 1..40)) {
        let mut model = BTreeMap::new();
        let mut kv = replay(&ops, &mut model, step)?;
        for (k, key) in KEYS.iter().enumerate() {
            prop_assert_eq!(kv.run(&["GET", key]), get_or_null(&model, k));
        }
    }
}

#[test]
fn incrbyfloat_prints_as_redis_prints() {
    let mut kv = Kv::new();
    assert_eq!(kv.run(&["INCRBYFLOAT", "f", "10.5"]), bulk("10.5"));
    assert_eq!(kv.run(&["INCRBYFLOAT", "f", "0.1"]), bulk("10.6"));
    assert_eq!(kv.run(&["INCRBYFLOAT", "f", "-10.6"]), bulk("0"));
    assert_eq!(kv.run(&["INCRBYFLOAT", "f", "5.0e3"]), bulk("5000"));
    assert_eq!(
        kv.run(&["INCRBYFLOAT", "f", "+inf"]),
        Value::error("ERR increment would produce NaN or Infinity")
    );
}
