//! Expiry: EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT (with NX, XX, GT, LT), TTL, PTTL,
//! EXPIRETIME, PEXPIRETIME, PERSIST. Deadlines are Unix milliseconds, as in Redis.

use beamline::resp::Value;
use bytes::Bytes;

use super::reply::{Outcome, error, error_text, flag, push_sanitized};
use super::{Call, KEY, Spec, plain};

pub(super) const SPECS: &[Spec] = &[
    plain("expire", -3, KEY, |c| expire(c, 1000, false, "expire")),
    plain("pexpire", -3, KEY, |c| expire(c, 1, false, "pexpire")),
    plain("expireat", -3, KEY, |c| expire(c, 1000, true, "expireat")),
    plain("pexpireat", -3, KEY, |c| expire(c, 1, true, "pexpireat")),
    plain("ttl", 2, KEY, |c| ttl(c, false, false)),
    plain("pttl", 2, KEY, |c| ttl(c, true, false)),
    plain("expiretime", 2, KEY, |c| ttl(c, false, true)),
    plain("pexpiretime", 2, KEY, |c| ttl(c, true, true)),
    plain("persist", 2, KEY, persist),
];

/// EXPIRE's conditions.
#[derive(Debug, Default)]
struct Conditions {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

fn conditions(args: &[&[u8]]) -> Result<Conditions, Value> {
    let mut c = Conditions::default();
    for arg in args {
        let upper = arg.to_ascii_uppercase();
        match &upper[..] {
            b"NX" => c.nx = true,
            b"XX" => c.xx = true,
            b"GT" => c.gt = true,
            b"LT" => c.lt = true,
            _ => {
                let mut text = b"ERR Unsupported option ".to_vec();
                push_sanitized(&mut text, arg, 128);
                return Err(Value::Error(Bytes::from(text)));
            }
        }
    }
    if c.nx && (c.xx || c.gt || c.lt) {
        return Err(error(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if c.gt && c.lt {
        return Err(error(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    Ok(c)
}

/// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT key amount [NX | XX | GT | LT]: `scale` ms per
/// unit; `absolute` for the AT forms. A deadline already passed deletes the key.
fn expire(c: &mut Call<'_, '_>, scale: i64, absolute: bool, name: &str) -> Outcome {
    let when = conditions(&c.args[3..]).and_then(|cond| Ok((cond, c.int(2)?)));
    let (cond, amount) = when?;
    let invalid = || error_text(format!("ERR invalid expire time in '{name}' command"));
    let ms = amount.checked_mul(scale).ok_or_else(invalid)?;
    let base = if absolute { 0 } else { c.clock.now_ms() };
    let at = ms.checked_add(base).ok_or_else(invalid)?;
    let key = c.key();
    let Some(entry) = c.db.get(key, c.clock) else {
        return Ok(flag(false));
    };
    let current = entry.deadline();
    let refused = (cond.nx && current.is_some())
        || (cond.xx && current.is_none())
        || (cond.gt && current.is_none_or(|cur| at <= cur))
        || (cond.lt && current.is_some_and(|cur| at >= cur));
    if refused {
        return Ok(flag(false));
    }
    if at <= c.clock.now_ms() {
        c.db.remove(key, c.clock);
    } else {
        c.db.set_deadline(key, Some(at));
    }
    Ok(flag(true))
}

/// TTL / PTTL (time left) and EXPIRETIME / PEXPIRETIME (the deadline): -2 for no key, -1
/// for no deadline; seconds are rounded to the nearest, as Redis does.
fn ttl(c: &mut Call<'_, '_>, millis: bool, absolute: bool) -> Outcome {
    let Some(entry) = c.db.get(c.key(), c.clock) else {
        return Ok(Value::Integer(-2));
    };
    let Some(at) = entry.deadline() else {
        return Ok(Value::Integer(-1));
    };
    let left = if absolute {
        at
    } else {
        at.saturating_sub(c.clock.now_ms())
    }
    .max(0);
    Ok(Value::Integer(if millis {
        left
    } else {
        left.saturating_add(500) / 1000
    }))
}

fn persist(c: &mut Call<'_, '_>) -> Outcome {
    let key = c.key();
    let had =
        c.db.get(key, c.clock)
            .is_some_and(|e| e.deadline().is_some());
    if had {
        c.db.set_deadline(key, None);
    }
    Ok(flag(had))
}
