//! The list family against a map of deques.

use std::collections::{BTreeMap, VecDeque};

use proptest::prelude::*;

use super::{KEYS, Kv, bulk, bulks, int, ok, replay};
use beamline::resp::Value;

#[derive(Debug, Clone)]
enum Op {
    Push(bool, usize, Vec<String>),
    Pop(bool, usize, Option<usize>),
    Index(usize, i64),
    Set(usize, i64, String),
    Rem(usize, i64, String),
    Trim(usize, i64, i64),
    Range(usize, i64, i64),
    Insert(usize, bool, String, String),
    Len(usize),
    Move(usize, usize, bool, bool),
}

fn elem() -> impl Strategy<Value = String> {
    prop_oneof![Just("x".to_owned()), Just("y".to_owned()), "[a-c]{1,2}"]
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0..KEYS.len();
    let i = -6i64..6;
    prop_oneof![
        (
            any::<bool>(),
            k.clone(),
            proptest::collection::vec(elem(), 1..4)
        )
            .prop_map(|(l, k, v)| Op::Push(l, k, v)),
        (any::<bool>(), k.clone(), proptest::option::of(1usize..4))
            .prop_map(|(l, k, n)| Op::Pop(l, k, n)),
        (k.clone(), i.clone()).prop_map(|(k, i)| Op::Index(k, i)),
        (k.clone(), i.clone(), elem()).prop_map(|(k, i, v)| Op::Set(k, i, v)),
        (k.clone(), -3i64..3, elem()).prop_map(|(k, n, v)| Op::Rem(k, n, v)),
        (k.clone(), i.clone(), i.clone()).prop_map(|(k, s, e)| Op::Trim(k, s, e)),
        (k.clone(), i.clone(), i).prop_map(|(k, s, e)| Op::Range(k, s, e)),
        (k.clone(), any::<bool>(), elem(), elem()).prop_map(|(k, b, p, v)| Op::Insert(k, b, p, v)),
        k.clone().prop_map(Op::Len),
        (k.clone(), k, any::<bool>(), any::<bool>()).prop_map(|(a, b, l, r)| Op::Move(a, b, l, r)),
    ]
}

type Model = BTreeMap<usize, VecDeque<String>>;

fn side(left: bool) -> &'static str {
    if left { "LEFT" } else { "RIGHT" }
}

/// Redis's index rule: negative counts from the end.
fn at(len: usize, i: i64) -> Option<usize> {
    let i = if i < 0 { len as i64 + i } else { i };
    (0..len as i64).contains(&i).then_some(i as usize)
}

/// LRANGE's and LTRIM's span: the positions between the two indexes (negative ones count
/// from the end), if any.
fn span(len: usize, start: i64, stop: i64) -> Option<(usize, usize)> {
    let from_end = |i: i64| if i < 0 { len as i64 + i } else { i };
    let kept: Vec<usize> = (0..len)
        .filter(|&i| (from_end(start)..=from_end(stop)).contains(&(i as i64)))
        .collect();
    Some((*kept.first()?, *kept.last()?))
}

fn step(kv: &mut Kv, model: &mut Model, op: &Op) -> (Value, Value) {
    let key = |k: usize| KEYS[k];
    let (got, want) = match op {
        Op::Push(left, k, items) => {
            let list = model.entry(*k).or_default();
            for item in items {
                if *left {
                    list.push_front(item.clone())
                } else {
                    list.push_back(item.clone())
                }
            }
            let mut args = vec![if *left { "LPUSH" } else { "RPUSH" }, key(*k)];
            args.extend(items.iter().map(String::as_str));
            (kv.run(&args), int(list.len() as i64))
        }
        Op::Pop(left, k, count) => {
            let cmd = if *left { "LPOP" } else { "RPOP" };
            let n = count.unwrap_or(1).to_string();
            let reply = match count {
                Some(_) => kv.run(&[cmd, key(*k), &n]),
                None => kv.run(&[cmd, key(*k)]),
            };
            let want = match (model.get_mut(k), count) {
                (None, Some(_)) => Value::NullArray,
                (None, None) => Value::Null,
                (Some(list), n) => {
                    let taken: Vec<String> = (0..n.unwrap_or(1))
                        .map_while(|_| {
                            if *left {
                                list.pop_front()
                            } else {
                                list.pop_back()
                            }
                        })
                        .collect();
                    if n.is_some() {
                        bulks(&taken)
                    } else {
                        bulk(&taken[0])
                    }
                }
            };
            (reply, want)
        }
        Op::Index(k, i) => {
            let list = model.get(k).cloned().unwrap_or_default();
            let want = at(list.len(), *i).map_or(Value::Null, |i| bulk(&list[i]));
            (kv.run(&["LINDEX", key(*k), &i.to_string()]), want)
        }
        Op::Set(k, i, v) => {
            let want = match model.get_mut(k) {
                None => Value::error("ERR no such key"),
                Some(list) => match at(list.len(), *i) {
                    None => Value::error("ERR index out of range"),
                    Some(i) => {
                        list[i] = v.clone();
                        ok()
                    }
                },
            };
            (kv.run(&["LSET", key(*k), &i.to_string(), v]), want)
        }
        Op::Rem(k, n, v) => {
            let list = model.entry(*k).or_default();
            let limit = if *n == 0 {
                usize::MAX
            } else {
                n.unsigned_abs() as usize
            };
            let mut removed = 0;
            let mut kept: Vec<String> = list.iter().cloned().collect();
            if *n < 0 {
                kept.reverse();
            }
            kept.retain(|e| {
                let drop = e == v && removed < limit;
                removed += usize::from(drop);
                !drop
            });
            if *n < 0 {
                kept.reverse();
            }
            *list = kept.into();
            (
                kv.run(&["LREM", key(*k), &n.to_string(), v]),
                int(removed as i64),
            )
        }
        Op::Trim(k, s, e) => {
            let list = model.entry(*k).or_default();
            *list = match span(list.len(), *s, *e) {
                Some((a, b)) => list.range(a..=b).cloned().collect(),
                None => VecDeque::new(),
            };
            (
                kv.run(&["LTRIM", key(*k), &s.to_string(), &e.to_string()]),
                ok(),
            )
        }
        Op::Range(k, s, e) => {
            let list = model.get(k).cloned().unwrap_or_default();
            let items: Vec<String> = span(list.len(), *s, *e)
                .map(|(a, b)| list.range(a..=b).cloned().collect())
                .unwrap_or_default();
            (
                kv.run(&["LRANGE", key(*k), &s.to_string(), &e.to_string()]),
                bulks(&items),
            )
        }
        Op::Insert(k, before, pivot, v) => {
            let where_ = if *before { "BEFORE" } else { "AFTER" };
            let want = match model.get_mut(k) {
                None => int(0),
                Some(list) => match list.iter().position(|e| e == pivot) {
                    None => int(-1),
                    Some(p) => {
                        list.insert(if *before { p } else { p + 1 }, v.clone());
                        int(list.len() as i64)
                    }
                },
            };
            (kv.run(&["LINSERT", key(*k), where_, pivot, v]), want)
        }
        Op::Len(k) => {
            let len = model.get(k).map_or(0, VecDeque::len);
            (kv.run(&["LLEN", key(*k)]), int(len as i64))
        }
        Op::Move(a, b, from_left, to_left) => {
            let taken = model.get_mut(a).and_then(|l| {
                if *from_left {
                    l.pop_front()
                } else {
                    l.pop_back()
                }
            });
            let want = match taken {
                None => Value::Null,
                Some(item) => {
                    let dst = model.entry(*b).or_default();
                    if *to_left {
                        dst.push_front(item.clone())
                    } else {
                        dst.push_back(item.clone())
                    }
                    bulk(&item)
                }
            };
            let reply = kv.run(&["LMOVE", key(*a), key(*b), side(*from_left), side(*to_left)]);
            (reply, want)
        }
    };
    // An emptied list is no key at all.
    model.retain(|_, list| !list.is_empty());
    (got, want)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn lists_behave_like_deques(ops in proptest::collection::vec(op(), 1..40)) {
        let mut model = Model::new();
        let mut kv = replay(&ops, &mut model, step)?;
        for (k, key) in KEYS.iter().enumerate() {
            let exists = i64::from(model.contains_key(&k));
            prop_assert_eq!(kv.run(&["EXISTS", key]), int(exists));
            let all: Vec<String> = model.get(&k).map(|l| l.iter().cloned().collect()).unwrap_or_default();
            prop_assert_eq!(kv.run(&["LRANGE", key, "0", "-1"]), bulks(&all));
        }
    }
}
