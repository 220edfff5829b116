//! CONFIG GET and CONFIG SET: the parameters clients and Redis's test suite ask about, each
//! with what it means here.
//!
//! - Parameters kv applies: `proto-max-bulk-len` and `client-query-buffer-limit` (the
//!   request limits of connections opened after the change), `client-output-buffer-limit`
//!   (its `pubsub` hard limit: how far a subscriber may fall behind).
//! - Parameters about Redis's internal encodings (`list-max-listpack-size`,
//!   `hash-max-listpack-entries`, ... and their `ziplist` aliases): accepted and reported,
//!   and they change nothing — kv's structures have no small encodings to tune.
//! - Parameters about features kv leaves out take only the value that means "off":
//!   `save ""`, `appendonly no`, `notify-keyspace-events ""`, `maxmemory 0`,
//!   `maxmemory-policy noeviction`; any other value is refused with the reason.
//! - Parameters fixed at start (`port`, `bind`, `databases`, `maxclients`, `timeout`) are
//!   reported and cannot be set, as Redis refuses immutable ones.
//!
//! Anything else is refused as Redis refuses an unknown parameter.

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};

use beamline::resp::Value;
use bytes::Bytes;

use super::glob;

/// How a parameter's value is checked, and what setting it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// A memory size (`512mb`, `1gb`, plain bytes).
    Memory,
    /// An integer.
    Integer,
    /// `yes` or `no`.
    YesNo,
    /// Only this value (the feature is absent); the reason another is refused.
    Only(&'static str, &'static str),
    /// Redis's `client-output-buffer-limit` classes.
    OutputLimit,
    /// Fixed at start.
    Immutable,
}

/// Every parameter: its name (aliases are separate rows sharing the value), its rule.
const PARAMETERS: &[(&str, Rule)] = &[
    (
        "appendonly",
        Rule::Only("no", "kv keeps no append-only file"),
    ),
    ("bind", Rule::Immutable),
    ("client-output-buffer-limit", Rule::OutputLimit),
    ("client-query-buffer-limit", Rule::Memory),
    ("databases", Rule::Immutable),
    ("hash-max-listpack-entries", Rule::Integer),
    ("hash-max-listpack-value", Rule::Integer),
    ("hash-max-ziplist-entries", Rule::Integer),
    ("hash-max-ziplist-value", Rule::Integer),
    ("hz", Rule::Integer),
    ("lazyfree-lazy-user-del", Rule::YesNo),
    ("lazyfree-lazy-user-flush", Rule::YesNo),
    ("list-compress-depth", Rule::Integer),
    ("list-max-listpack-size", Rule::Integer),
    ("list-max-ziplist-size", Rule::Integer),
    ("maxclients", Rule::Immutable),
    (
        "maxmemory",
        Rule::Only("0", "kv has no memory limit or eviction"),
    ),
    (
        "maxmemory-policy",
        Rule::Only("noeviction", "kv has no memory limit or eviction"),
    ),
    (
        "notify-keyspace-events",
        Rule::Only("", "kv sends no keyspace notifications"),
    ),
    ("port", Rule::Immutable),
    ("proto-max-bulk-len", Rule::Memory),
    ("rdb-key-save-delay", Rule::Integer),
    ("replica-read-only", Rule::YesNo),
    ("save", Rule::Only("", "kv has no persistence")),
    ("set-max-intset-entries", Rule::Integer),
    ("set-max-listpack-entries", Rule::Integer),
    ("timeout", Rule::Immutable),
    ("zset-max-listpack-entries", Rule::Integer),
    ("zset-max-listpack-value", Rule::Integer),
    ("zset-max-ziplist-entries", Rule::Integer),
    ("zset-max-ziplist-value", Rule::Integer),
];

/// Names that share one value.
const ALIASES: &[(&str, &str)] = &[
    ("hash-max-ziplist-entries", "hash-max-listpack-entries"),
    ("hash-max-ziplist-value", "hash-max-listpack-value"),
    ("list-max-ziplist-size", "list-max-listpack-size"),
    ("zset-max-ziplist-entries", "zset-max-listpack-entries"),
    ("zset-max-ziplist-value", "zset-max-listpack-value"),
];

fn canonical(name: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, to)| to)
}

/// The values in force, by canonical name.
#[derive(Debug)]
pub(crate) struct Settings {
    values: RwLock<BTreeMap<&'static str, String>>,
}

/// What a successful CONFIG SET changed that the server applies.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Applied {
    pub(crate) max_bulk_len: Option<u64>,
    pub(crate) max_request_len: Option<u64>,
    pub(crate) pubsub_limit: Option<u64>,
}

impl Settings {
    /// The values a server starts with: Redis's defaults, and what `fixed` says about this
    /// server (port, bind, limits).
    pub(crate) fn new(fixed: &[(&'static str, String)]) -> Self {
        let defaults: [(&str, &str); 24] = [
            ("appendonly", "no"),
            (
                "client-output-buffer-limit",
                "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
            ),
            ("client-query-buffer-limit", "1073741824"),
            ("databases", "1"),
            ("hash-max-listpack-entries", "128"),
            ("hash-max-listpack-value", "64"),
            ("hz", "10"),
            ("lazyfree-lazy-user-del", "no"),
            ("lazyfree-lazy-user-flush", "no"),
            ("list-compress-depth", "0"),
            ("list-max-listpack-size", "-2"),
            ("maxmemory", "0"),
            ("maxmemory-policy", "noeviction"),
            ("notify-keyspace-events", ""),
            ("proto-max-bulk-len", "536870912"),
            ("rdb-key-save-delay", "0"),
            ("replica-read-only", "yes"),
            ("save", ""),
            ("set-max-intset-entries", "512"),
            ("set-max-listpack-entries", "128"),
            ("timeout", "0"),
            ("zset-max-listpack-entries", "128"),
            ("zset-max-listpack-value", "64"),
            ("maxclients", "10000"),
        ];
        let mut values: BTreeMap<&'static str, String> = defaults
            .iter()
            .map(|(k, v)| (*k, (*v).to_owned()))
            .collect();
        for (name, value) in fixed {
            values.insert(name, value.clone());
        }
        Self {
            values: RwLock::new(values),
        }
    }

    /// CONFIG GET pattern...: every parameter matching a pattern, as a flat name/value array.
    pub(crate) fn get(&self, patterns: &[&[u8]]) -> Value {
        let values = self.values.read().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::new();
        for (name, _) in PARAMETERS {
            if !patterns
                .iter()
                .any(|p| glob::matches(p, name.as_bytes(), true))
            {
                continue;
            }
            let value = values.get(canonical(name)).cloned().unwrap_or_default();
            out.push(Value::Bulk(Bytes::from_static(name.as_bytes())));
            out.push(Value::Bulk(Bytes::from(value)));
        }
        Value::Array(out)
    }

    /// CONFIG SET name value [name value ...]: all or nothing.
    ///
    /// # Errors
    /// Redis's error text for an unknown parameter or a value refused.
    pub(crate) fn set(&self, pairs: &[&[u8]]) -> Result<Applied, Value> {
        let mut checked = Vec::new();
        let mut applied = Applied::default();
        for pair in pairs.chunks(2) {
            let [name, value] = pair else {
                return Err(unknown(pair.first().copied().unwrap_or_default()));
            };
            let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
            let Some(&(known, rule)) = PARAMETERS.iter().find(|(n, _)| *n == lower) else {
                return Err(unknown(name));
            };
            let value = String::from_utf8_lossy(value).into_owned();
            let refuse = |why: &str| {
                Value::Error(Bytes::from(format!(
                    "ERR CONFIG SET failed (possibly related to argument '{known}') - {why}"
                )))
            };
            let stored = match rule {
                Rule::Memory => {
                    let bytes =
                        memory(&value).ok_or_else(|| refuse("argument must be a memory value"))?;
                    match known {
                        "proto-max-bulk-len" => applied.max_bulk_len = Some(bytes),
                        "client-query-buffer-limit" => applied.max_request_len = Some(bytes),
                        _ => {}
                    }
                    bytes.to_string()
                }
                Rule::Integer => {
                    value
                        .parse::<i64>()
                        .map_err(|_| refuse("argument couldn't be parsed into an integer"))?;
                    value
                }
                Rule::YesNo => {
                    let lower = value.to_ascii_lowercase();
                    if lower != "yes" && lower != "no" {
                        return Err(refuse("argument must be 'yes' or 'no'"));
                    }
                    lower
                }
                Rule::Only(only, why) => {
                    if !value.eq_ignore_ascii_case(only) {
                        return Err(refuse(why));
                    }
                    only.to_owned()
                }
                Rule::OutputLimit => {
                    let (text, pubsub) = output_limit(&value, &self.current(known))
                        .ok_or_else(|| refuse("argument(s) must be a memory value"))?;
                    applied.pubsub_limit = Some(pubsub);
                    text
                }
                Rule::Immutable => return Err(refuse("can't set immutable config")),
            };
            checked.push((canonical(known), stored));
        }
        let mut values = self.values.write().unwrap_or_else(PoisonError::into_inner);
        for (name, value) in checked {
            if let Some((stored, _)) = values.get_key_value(name) {
                let stored: &'static str = stored;
                values.insert(stored, value);
            }
        }
        Ok(applied)
    }

    fn current(&self, name: &str) -> String {
        let values = self.values.read().unwrap_or_else(PoisonError::into_inner);
        values.get(name).cloned().unwrap_or_default()
    }
}

fn unknown(name: &[u8]) -> Value {
    Value::Error(Bytes::from(format!(
        "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
        String::from_utf8_lossy(name)
    )))
}

/// A memory value as Redis reads one: bytes, or a number with `k`, `kb`, `m`, `mb`, `g`,
/// `gb` (`k` is 1000, `kb` 1024, ...).
fn memory(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let split = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let scale = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1_000_000,
        "mb" => 1024 * 1024,
        "g" => 1_000_000_000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// `client-output-buffer-limit`'s new text, from `current` changed by `update` (triples of
/// class, hard, soft, seconds), and the pubsub hard limit in it.
fn output_limit(update: &str, current: &str) -> Option<(String, u64)> {
    let mut classes: Vec<(String, u64, u64, u64)> = Vec::new();
    for text in [current, update] {
        let words: Vec<&str> = text.split_whitespace().collect();
        if !words.len().is_multiple_of(4) {
            return None;
        }
        for class in words.chunks(4) {
            let name = class[0].to_ascii_lowercase();
            let name = if name == "replica" {
                "slave".to_owned()
            } else {
                name
            };
            if !["normal", "slave", "pubsub"].contains(&name.as_str()) {
                return None;
            }
            let (hard, soft) = (memory(class[1])?, memory(class[2])?);
            let seconds: u64 = class[3].parse().ok()?;
            match classes.iter_mut().find(|c| c.0 == name) {
                Some(c) => *c = (name, hard, soft, seconds),
                None => classes.push((name, hard, soft, seconds)),
            }
        }
    }
    let pubsub = classes.iter().find(|c| c.0 == "pubsub").map_or(0, |c| c.1);
    let text = classes
        .iter()
        .map(|(n, h, s, t)| format!("{n} {h} {s} {t}"))
        .collect::<Vec<_>>()
        .join(" ");
    Some((text, pubsub))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::new(&[("port", "6380".to_owned())])
    }

    #[test]
    fn get_matches_globs_and_reports_aliases() {
        let s = settings();
        assert_eq!(
            s.get(&[b"port"]),
            Value::Array(vec![Value::bulk("port"), Value::bulk("6380")])
        );
        let Value::Array(all) = s.get(&[b"*"]) else {
            panic!()
        };
        assert_eq!(all.len(), PARAMETERS.len() * 2);
        assert!(s.set(&[b"hash-max-ziplist-entries", b"7"]).is_ok());
        assert_eq!(
            s.get(&[b"hash-max-listpack-entries"]),
            Value::Array(vec![
                Value::bulk("hash-max-listpack-entries"),
                Value::bulk("7")
            ])
        );
        assert_eq!(s.get(&[b"nothing"]), Value::Array(vec![]));
    }

    #[test]
    fn set_checks_every_value_before_changing_any() {
        let s = settings();
        assert_eq!(
            s.set(&[b"foo", b"bar"]),
            Err(Value::error(
                "ERR Unknown option or number of arguments for CONFIG SET - 'foo'"
            ))
        );
        let refused = s.set(&[b"list-max-ziplist-size", b"5", b"maxmemory", b"10mb"]);
        assert!(refused.is_err());
        assert_eq!(
            s.get(&[b"list-max-listpack-size"]),
            Value::Array(vec![
                Value::bulk("list-max-listpack-size"),
                Value::bulk("-2")
            ])
        );
        assert!(s.set(&[b"port", b"1"]).is_err());
        assert!(s.set(&[b"notify-keyspace-events", b"KEA"]).is_err());
        assert!(s.set(&[b"notify-keyspace-events", b""]).is_ok());
        let applied = s
            .set(&[
                b"proto-max-bulk-len",
                b"1mb",
                b"client-output-buffer-limit",
                b"pubsub 1kb 0 0",
            ])
            .unwrap();
        assert_eq!(applied.max_bulk_len, Some(1024 * 1024));
        assert_eq!(applied.pubsub_limit, Some(1024));
        assert_eq!(
            s.get(&[b"client-output-buffer-limit"]),
            Value::Array(vec![
                Value::bulk("client-output-buffer-limit"),
                Value::bulk("normal 0 0 0 slave 268435456 67108864 60 pubsub 1024 0 0")
            ])
        );
    }

    #[test]
    fn memory_values_read_as_redis_reads_them() {
        assert_eq!(memory("10000000000"), Some(10_000_000_000));
        assert_eq!(memory("1gb"), Some(1 << 30));
        assert_eq!(memory("2K"), Some(2000));
        assert_eq!(memory("x"), None);
        assert_eq!(memory("1tb"), None);
    }
}
