//! The connection and the server: PING, ECHO, QUIT, RESET, SELECT, HELLO, CLIENT, CONFIG,
//! INFO, TIME, FUNCTION FLUSH.

use std::sync::atomic::Ordering;

use beamline::resp::Value;
use bytes::Bytes;
use tokio::time::Instant;

use super::super::session::{ReplyMode, Session};
use super::super::store::unix_micros;
use super::pubsub::leave;
use super::reply::{
    Outcome, bulk, bulk_or_null, error, error_text, integer, is, unknown_subcommand, wrong_arity,
};
use super::{Call, Keys, PUBSUB, Reply, Spec, TX, plain, rich};

pub(super) const SPECS: &[Spec] = &[
    rich("ping", -1, Keys::None, PUBSUB, ping),
    plain("echo", 2, Keys::None, |c| Ok(bulk(c.args[1]))),
    rich("quit", -1, Keys::None, PUBSUB | TX, quit),
    rich("reset", 1, Keys::None, PUBSUB | TX, reset),
    plain("select", 2, Keys::None, select),
    plain("hello", -1, Keys::None, hello),
    rich("client", -2, Keys::None, TX, client),
    plain("config", -2, Keys::None, config),
    plain("info", -1, Keys::None, info),
    plain("time", 1, Keys::None, time),
    plain("function", -2, Keys::None, function),
];

/// PING [message]; while subscribed, Redis answers `["pong", message]`.
fn ping(c: &mut Call<'_, '_>) -> Reply {
    let message = match c.args {
        [_] => None,
        [_, message] => Some(*message),
        _ => return wrong_arity("ping").into(),
    };
    if c.session.subscriptions.count() > 0 {
        return Value::Array(vec![Value::bulk("pong"), bulk(message.unwrap_or_default())]).into();
    }
    message.map_or_else(|| Value::simple("PONG"), bulk).into()
}

fn quit(c: &mut Call<'_, '_>) -> Reply {
    c.session.quit = true;
    Value::ok().into()
}

/// RESET: back to a fresh connection (out of MULTI and Pub/Sub, replies on, no name).
fn reset(c: &mut Call<'_, '_>) -> Reply {
    leave(&c.shared.hub, c.session);
    let session = &mut *c.session;
    session.multi = None;
    session.name = None;
    session.reply_mode = ReplyMode::default();
    Value::simple("RESET").into()
}

/// One database, number 0 (redis-cli sends `SELECT n` when started with `-n`).
fn select(c: &mut Call<'_, '_>) -> Outcome {
    match c.int(1)? {
        0 => Ok(Value::ok()),
        _ => Err(error("ERR DB index is out of range")),
    }
}

/// HELLO [protover [AUTH user pass] [SETNAME name]]: RESP2 only (kv has no RESP3 encoder).
fn hello(c: &mut Call<'_, '_>) -> Outcome {
    if let Some(version) = c.args.get(1) {
        match super::reply::int(version) {
            Ok(2) => {}
            Ok(3) => return Err(error("NOPROTO unsupported protocol version")),
            _ => {
                return Err(error(
                    "ERR Protocol version is not an integer or out of range",
                ));
            }
        }
    }
    let mut i = 2;
    while i < c.args.len() {
        if is(c.args[i], "AUTH") && i + 2 < c.args.len() {
            i += 3;
        } else if is(c.args[i], "SETNAME") && i + 1 < c.args.len() {
            set_name(c.session, c.args[i + 1])?;
            i += 2;
        } else {
            return Err(error_text(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(c.args[i])
            )));
        }
    }
    let pair = |k: &'static str, v: Value| [Value::bulk(k), v];
    let fields = [
        pair("server", Value::bulk("redis")),
        pair("version", Value::bulk("7.0.0")),
        pair("proto", Value::Integer(2)),
        pair("id", integer(c.session.id as usize)),
        pair("mode", Value::bulk("standalone")),
        pair("role", Value::bulk("master")),
        pair("modules", Value::Array(Vec::new())),
    ];
    Ok(Value::Array(fields.into_iter().flatten().collect()))
}

fn set_name(session: &mut Session, name: &[u8]) -> Result<(), Value> {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(error(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    session.name = (!name.is_empty()).then(|| Bytes::copy_from_slice(name));
    Ok(())
}

/// CLIENT ID | GETNAME | SETNAME name | SETINFO attr value | REPLY ON|OFF|SKIP |
/// UNBLOCK id [TIMEOUT|ERROR]
fn client(c: &mut Call<'_, '_>) -> Reply {
    let sub = c.args[1].to_ascii_lowercase();
    let arity: &[usize] = match &sub[..] {
        b"id" | b"getname" => &[2],
        b"setname" | b"reply" => &[3],
        b"setinfo" => &[4],
        b"unblock" => &[3, 4],
        _ => return unknown_subcommand(c.args[1], "CLIENT").into(),
    };
    if !arity.contains(&c.args.len()) {
        return wrong_arity(&format!("client|{}", String::from_utf8_lossy(&sub))).into();
    }
    let reply = match &sub[..] {
        b"id" => integer(c.session.id as usize),
        b"getname" => bulk_or_null(c.session.name.clone()),
        b"setname" => match set_name(c.session, c.args[2]) {
            Ok(()) => Value::ok(),
            Err(e) => e,
        },
        b"reply" => return client_reply(c),
        b"unblock" => client_unblock(c),
        _ => Value::ok(),
    };
    reply.into()
}

fn client_reply(c: &mut Call<'_, '_>) -> Reply {
    let mode = &mut c.session.reply_mode;
    let arg = c.args[2];
    if is(arg, "ON") {
        *mode = ReplyMode::default();
        Value::ok().into()
    } else if is(arg, "OFF") {
        mode.off = true;
        Reply::Many(Vec::new())
    } else if is(arg, "SKIP") {
        mode.skip_next = !mode.off;
        Reply::Many(Vec::new())
    } else {
        super::reply::syntax_error().into()
    }
}

/// CLIENT UNBLOCK id [TIMEOUT | ERROR]: 1 if the client was blocked (and now is not).
fn client_unblock(c: &mut Call<'_, '_>) -> Value {
    let id = match c.int(2) {
        Ok(id) => u64::try_from(id).unwrap_or(u64::MAX),
        Err(e) => return e,
    };
    let reply = match c.args.get(3) {
        None => None,
        Some(how) if is(how, "TIMEOUT") => None,
        Some(how) if is(how, "ERROR") => {
            Some(error("UNBLOCKED client unblocked via CLIENT UNBLOCK"))
        }
        Some(_) => return error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"),
    };
    let unblocked = match c.waiters.as_deref_mut() {
        Some(waiters) => waiters.unblock(id, reply),
        None => c.shared.blocking.lock().unblock(id, reply),
    };
    Value::Integer(i64::from(unblocked))
}

/// CONFIG GET pattern [pattern ...] | SET name value [name value ...] | RESETSTAT | REWRITE
fn config(c: &mut Call<'_, '_>) -> Outcome {
    let sub = c.args[1].to_ascii_lowercase();
    let settings = &c.shared.settings;
    match &sub[..] {
        b"get" if c.args.len() >= 3 => Ok(settings.get(&c.args[2..])),
        b"set" if c.args.len() >= 4 && c.args.len().is_multiple_of(2) => {
            let applied = settings.set(&c.args[2..])?;
            c.shared.apply(&applied);
            Ok(Value::ok())
        }
        b"resetstat" if c.args.len() == 2 => Ok(Value::ok()),
        b"rewrite" if c.args.len() == 2 => {
            Err(error("ERR The server is running without a config file"))
        }
        b"get" | b"set" | b"resetstat" | b"rewrite" => Err(wrong_arity(&format!(
            "config|{}",
            String::from_utf8_lossy(&sub)
        ))),
        _ => Err(unknown_subcommand(c.args[1], "CONFIG")),
    }
}

/// INFO [section ...]: the fields clients and Redis's test suite read.
fn info(c: &mut Call<'_, '_>) -> Outcome {
    let shared = c.shared;
    let keys = c.db.len();
    let expiring = c.db.expiring();
    let uptime = Instant::now()
        .duration_since(shared.stats.started)
        .as_secs();
    let sections: [(&str, String); 7] = [
        (
            "server",
            format!(
                "redis_version:7.0.0\r\nredis_mode:standalone\r\nkv:beamline\r\nprocess_id:{}\r\nuptime_in_seconds:{uptime}\r\n",
                std::process::id()
            ),
        ),
        (
            "clients",
            format!(
                "connected_clients:{}\r\nblocked_clients:{}\r\n",
                shared.stats.connected.load(Ordering::Relaxed),
                shared.blocking.waiting()
            ),
        ),
        ("memory", "mem_allocator:libc\r\n".to_owned()),
        ("persistence", "loading:0\r\naof_enabled:0\r\n".to_owned()),
        (
            "stats",
            format!("pubsub_patterns:{}\r\n", shared.hub.numpat()),
        ),
        (
            "replication",
            "role:master\r\nconnected_slaves:0\r\n".to_owned(),
        ),
        (
            "keyspace",
            if keys > 0 {
                format!("db0:keys={keys},expires={expiring},avg_ttl=0\r\n")
            } else {
                String::new()
            },
        ),
    ];
    let wanted: Vec<String> = c.args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let all = wanted.is_empty() || wanted.iter().any(|w| w == "all" || w == "everything");
    let mut text = String::new();
    for (name, body) in sections {
        if all
            || wanted
                .iter()
                .any(|w| w == name || (w == "default" && !name.is_empty()))
        {
            if !text.is_empty() {
                text.push_str("\r\n");
            }
            let mut title = name.to_owned();
            title[..1].make_ascii_uppercase();
            text.push_str(&format!("# {title}\r\n{body}"));
        }
    }
    Ok(Value::Bulk(Bytes::from(text)))
}

/// TIME: Unix seconds and microseconds, from the clock the deadlines use.
fn time(_c: &mut Call<'_, '_>) -> Outcome {
    let now = unix_micros(Instant::now());
    Ok(Value::Array(vec![
        Value::Bulk(Bytes::from(now.div_euclid(1_000_000).to_string())),
        Value::Bulk(Bytes::from(now.rem_euclid(1_000_000).to_string())),
    ]))
}

/// FUNCTION FLUSH [ASYNC | SYNC] (there are no functions: scripting is left out) and
/// FUNCTION LIST (none).
fn function(c: &mut Call<'_, '_>) -> Outcome {
    let sub = c.args[1].to_ascii_lowercase();
    match &sub[..] {
        b"flush" if c.args.len() <= 3 => Ok(Value::ok()),
        b"list" => Ok(Value::Array(Vec::new())),
        _ => Err(unknown_subcommand(c.args[1], "FUNCTION")),
    }
}
