//! Each command family against a model (proptest): random sequences of its commands on a
//! few keys, every reply compared with what a plain Rust collection says Redis answers.

mod collections;
mod expiry;
mod lists;
mod strings;

use std::sync::Arc;

use beamline::resp::Value;

use super::super::KvConfig;
use super::super::session::Session;
use super::super::shared::Shared;
use super::super::store::{Clock, Store};
use super::{Reply, execute};

/// One in-process kv (no sockets): its shared state and one connection's session.
pub(super) struct Kv {
    shared: Shared,
    session: Session,
}

impl Kv {
    pub(super) fn new() -> Self {
        Self {
            shared: KvConfig::default().shared(Arc::new(Store::new())),
            session: Session::new(1, None),
        }
    }

    /// Runs one command; its one reply.
    pub(super) fn run(&mut self, args: &[&str]) -> Value {
        self.run_with(args, &mut Clock::new())
    }

    /// Runs one command at the time `clock` reads.
    pub(super) fn run_with(&mut self, args: &[&str], clock: &mut Clock) -> Value {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        match execute(&args, &self.shared, &mut self.session, clock) {
            Reply::Value(value) => value,
            other => panic!("{args:?} answered {other:?}"),
        }
    }
}

/// Runs `ops` on a fresh kv and on `model`: `step` applies one to both and returns kv's
/// reply and the model's, which must be equal. The kv, for the final checks.
pub(super) fn replay<M, O: std::fmt::Debug>(
    ops: &[O],
    model: &mut M,
    mut step: impl FnMut(&mut Kv, &mut M, &O) -> (Value, Value),
) -> Result<Kv, proptest::test_runner::TestCaseError> {
    let mut kv = Kv::new();
    for op in ops {
        let (got, want) = step(&mut kv, model, op);
        proptest::prop_assert_eq!(got, want, "{:?}", op);
    }
    Ok(kv)
}

pub(super) const KEYS: [&str; 3] = ["a", "b", "c"];

pub(super) fn ok() -> Value {
    Value::simple("OK")
}

pub(super) fn int(n: i64) -> Value {
    Value::Integer(n)
}

pub(super) fn bulk(text: &str) -> Value {
    Value::bulk(text.to_owned())
}

pub(super) fn bulks<'a>(items: impl IntoIterator<Item = &'a String>) -> Value {
    Value::Array(items.into_iter().map(|i| bulk(i)).collect())
}

pub(super) fn wrongtype() -> Value {
    Value::error("WRONGTYPE Operation against a key holding the wrong kind of value")
}

/// A reply whose array order Redis leaves open (SMEMBERS, HGETALL's pairs), sorted.
pub(super) fn sorted(value: Value) -> Value {
    match value {
        Value::Array(mut items) => {
            items.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
            Value::Array(items)
        }
        other => other,
    }
}

#[test]
fn wrong_types_and_arity_are_refused_in_redis_words() {
    let mut kv = Kv::new();
    kv.run(&["RPUSH", "l", "x"]);
    kv.run(&["SET", "s", "x"]);
    for cmd in [
        &["GET", "l"][..],
        &["APPEND", "l", "x"],
        &["SADD", "s", "x"],
        &["HSET", "l", "f", "v"],
        &["LPUSH", "s", "x"],
        &["INCRBYFLOAT", "l", "1"],
    ] {
        assert_eq!(kv.run(cmd), wrongtype(), "{cmd:?}");
    }
    assert_eq!(
        kv.run(&["GET"]),
        Value::error("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(
        kv.run(&["SET", "k", "v", "NX", "XX"]),
        Value::error("ERR syntax error")
    );
}
