//! Replies and errors, worded exactly as Redis 7 words them, and the argument readers every
//! command shares.

use beamline::resp::Value;
use bytes::Bytes;

use super::super::blocking::Blocked;
use super::super::store::{WrongType, parse_int};

/// What one command answers.
#[derive(Debug)]
pub(crate) enum Reply {
    /// One reply, the usual case.
    Value(Value),
    /// Several replies in a row (SUBSCRIBE answers once per channel).
    Many(Vec<Value>),
    /// Nothing yet: the connection waits for a key (BLPOP and company).
    Block(Blocked),
}

impl From<Value> for Reply {
    fn from(value: Value) -> Self {
        Reply::Value(value)
    }
}

/// A plain command's answer: its reply, or the error it answers.
pub(crate) type Outcome = Result<Value, Value>;

impl From<WrongType> for Value {
    fn from(_: WrongType) -> Value {
        wrong_type()
    }
}

pub(crate) fn error(message: &'static str) -> Value {
    Value::Error(Bytes::from_static(message.as_bytes()))
}

pub(crate) fn error_text(message: String) -> Value {
    Value::Error(Bytes::from(message))
}

pub(crate) fn wrong_type() -> Value {
    error("WRONGTYPE Operation against a key holding the wrong kind of value")
}

pub(crate) fn not_an_integer() -> Value {
    error("ERR value is not an integer or out of range")
}

pub(crate) fn not_a_float() -> Value {
    error("ERR value is not a valid float")
}

pub(crate) fn syntax_error() -> Value {
    error("ERR syntax error")
}

pub(crate) fn wrong_arity(name: &str) -> Value {
    error_text(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

pub(crate) fn unknown_subcommand(sub: &[u8], command: &str) -> Value {
    let mut text = b"ERR unknown subcommand '".to_vec();
    push_sanitized(&mut text, sub, 128);
    text.extend_from_slice(format!("'. Try {command} HELP.").as_bytes());
    Value::Error(Bytes::from(text))
}

/// `ERR unknown command 'foo', with args beginning with: 'a' 'b' `, as Redis 7 writes it:
/// the name cut at 128 bytes, arguments added while the list is under 128 bytes, line
/// breaks turned into spaces (a RESP error is one line).
pub(crate) fn unknown_command(args: &[&[u8]]) -> Value {
    let mut text = b"ERR unknown command '".to_vec();
    if let Some(name) = args.first() {
        push_sanitized(&mut text, name, 128);
    }
    text.extend_from_slice(b"', with args beginning with: ");
    let mut listed = 0;
    for arg in args.iter().skip(1) {
        if listed >= 128 {
            break;
        }
        let before = text.len();
        text.push(b'\'');
        push_sanitized(&mut text, arg, 128 - listed);
        text.extend_from_slice(b"' ");
        listed += text.len() - before;
    }
    Value::Error(Bytes::from(text))
}

/// Appends up to `max` bytes, line breaks as spaces.
pub(crate) fn push_sanitized(out: &mut Vec<u8>, bytes: &[u8], max: usize) {
    out.extend(bytes.iter().take(max).map(|&b| match b {
        b'\r' | b'\n' => b' ',
        b => b,
    }));
}

pub(crate) fn bulk(bytes: &[u8]) -> Value {
    Value::Bulk(Bytes::copy_from_slice(bytes))
}

pub(crate) fn bulk_or_null(value: Option<Bytes>) -> Value {
    value.map_or(Value::Null, Value::Bulk)
}

pub(crate) fn integer(n: usize) -> Value {
    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

pub(crate) fn flag(set: bool) -> Value {
    Value::Integer(i64::from(set))
}

pub(crate) fn array(items: impl IntoIterator<Item = Bytes>) -> Value {
    Value::Array(items.into_iter().map(Value::Bulk).collect())
}

/// Whether `arg` is the option `name` (options are case-insensitive).
pub(crate) fn is(arg: &[u8], name: &str) -> bool {
    arg.eq_ignore_ascii_case(name.as_bytes())
}

/// An integer argument, or Redis's error for one that is not.
pub(crate) fn int(arg: &[u8]) -> Result<i64, Value> {
    parse_int(arg).ok_or_else(not_an_integer)
}

/// An argument that must be an integer of at least `min`, with Redis's one error `message`
/// for anything else (`getRangeLongFromObjectOrReply` with a message).
pub(crate) fn at_least(arg: &[u8], min: i64, message: &'static str) -> Result<usize, Value> {
    parse_int(arg)
        .filter(|&n| n >= min)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| error(message))
}

/// A count argument that must not be negative (`ERR value is out of range, must be
/// positive`, also for one that is not a number, as in Redis).
pub(crate) fn count(arg: &[u8]) -> Result<usize, Value> {
    at_least(arg, 0, "ERR value is out of range, must be positive")
}

/// A timeout in seconds, as the blocking commands read it (a float, not negative), in
/// milliseconds; 0 waits for ever.
pub(crate) fn timeout_ms(arg: &[u8]) -> Result<u64, Value> {
    let text = std::str::from_utf8(arg).ok();
    let seconds: f64 = text
        .filter(|t| !t.is_empty() && !t.starts_with(char::is_whitespace))
        .and_then(|t| t.parse().ok())
        .filter(|s: &f64| s.is_finite())
        .ok_or_else(|| error("ERR timeout is not a float or out of range"))?;
    if seconds < 0.0 {
        return Err(error("ERR timeout is negative"));
    }
    let ms = seconds * 1000.0;
    if ms > i64::MAX as f64 / 2.0 {
        return Err(error("ERR timeout is out of range"));
    }
    // Redis rounds up to the millisecond.
    Ok(ms.ceil() as u64)
}
