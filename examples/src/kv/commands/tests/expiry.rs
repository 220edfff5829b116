//! The expiry family against a map of deadlines, on a stopped clock: EXPIRE / PEXPIRE /
//! EXPIREAT with NX, XX, GT, LT (a key without a deadline counts as infinite), a deadline
//! not in the future deletes, TTL / PTTL / EXPIRETIME, PERSIST, and SET clearing it.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::super::super::store::Clock;
use super::{KEYS, Kv, int, ok, replay};
use beamline::resp::Value;

/// The stopped clock's time, Unix milliseconds.
const NOW: i64 = 1_700_000_000_000;

#[derive(Debug, Clone)]
enum Op {
    Set(usize),
    Expire(&'static str, usize, i64, Option<&'static str>),
    Persist(usize),
    Ttl(&'static str, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let k = || 0..KEYS.len();
    let cond = proptest::option::of(prop_oneof![Just("NX"), Just("XX"), Just("GT"), Just("LT")]);
    prop_oneof![
        k().prop_map(Op::Set),
        (
            prop_oneof![Just("EXPIRE"), Just("PEXPIRE"), Just("EXPIREAT")],
            k(),
            -2i64..6,
            cond
        )
            .prop_map(|(c, k, n, o)| Op::Expire(c, k, n, o)),
        (
            prop_oneof![Just("EXPIRE"), Just("PEXPIRE")],
            k(),
            -2i64..6,
            Just(None)
        )
            .prop_map(|(c, k, n, o)| Op::Expire(c, k, n, o)),
        k().prop_map(Op::Persist),
        (
            prop_oneof![Just("TTL"), Just("PTTL"), Just("EXPIRETIME")],
            k()
        )
            .prop_map(|(c, k)| Op::Ttl(c, k)),
    ]
}

/// Keys present, each with its deadline (`None`: none).
type Model = BTreeMap<usize, Option<i64>>;

fn expected(model: &mut Model, op: &Op) -> Value {
    match op {
        Op::Set(k) => {
            model.insert(*k, None);
            ok()
        }
        Op::Expire(cmd, k, n, cond) => {
            let Some(&current) = model.get(k) else {
                return int(0);
            };
            let at = match *cmd {
                "EXPIRE" => NOW + n * 1000,
                "PEXPIRE" => NOW + n,
                // EXPIREAT: `n` seconds after the current second.
                _ => (NOW / 1000 + n) * 1000,
            };
            let allowed = match (*cond, current) {
                (None, _) => true,
                (Some("NX"), c) => c.is_none(),
                (Some("XX"), c) => c.is_some(),
                (Some("GT"), c) => c.is_some_and(|c| at > c),
                (Some(_), c) => c.is_none_or(|c| at < c),
            };
            if !allowed {
                return int(0);
            }
            if at <= NOW {
                model.remove(k);
            } else {
                model.insert(*k, Some(at));
            }
            int(1)
        }
        Op::Persist(k) => match model.get_mut(k) {
            Some(deadline @ Some(_)) => {
                *deadline = None;
                int(1)
            }
            _ => int(0),
        },
        Op::Ttl(cmd, k) => match model.get(k) {
            None => int(-2),
            Some(None) => int(-1),
            Some(Some(at)) => int(match *cmd {
                "PTTL" => at - NOW,
                "TTL" => (at - NOW + 500) / 1000,
                _ => at / 1000,
            }),
        },
    }
}

fn run(kv: &mut Kv, op: &Op) -> Value {
    let key = |k: usize| KEYS[k];
    let mut clock = Clock::at_ms(NOW);
    let n;
    let args: Vec<&str> = match op {
        Op::Set(k) => vec!["SET", key(*k), "v"],
        Op::Expire(cmd, k, amount, cond) => {
            n = if *cmd == "EXPIREAT" {
                NOW / 1000 + amount
            } else {
                *amount
            }
            .to_string();
            let mut args = vec![*cmd, key(*k), &n];
            args.extend(cond.iter());
            args
        }
        Op::Persist(k) => vec!["PERSIST", key(*k)],
        Op::Ttl(cmd, k) => vec![*cmd, key(*k)],
    };
    kv.run_with(&args, &mut clock)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn deadlines_behave_like_their_model(ops in proptest::collection::vec(op(), 1..40)) {
        replay(&ops, &mut Model::new(), |kv, model, op| {
            let want = expected(model, op);
            (run(kv, op), want)
        })?;
    }
}

#[test]
fn incompatible_conditions_are_refused_in_redis_words() {
    let mut kv = Kv::new();
    kv.run(&["SET", "k", "v"]);
    assert_eq!(
        kv.run(&["EXPIRE", "k", "5", "NX", "GT"]),
        Value::error("ERR NX and XX, GT or LT options at the same time are not compatible")
    );
    assert_eq!(
        kv.run(&["EXPIRE", "k", "5", "GT", "LT"]),
        Value::error("ERR GT and LT options at the same time are not compatible")
    );
}
