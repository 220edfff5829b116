//! The commands: arguments in, one reply out, errors worded exactly as Redis words them.
//! Pure: no sockets; the time comes from the batch's [`Clock`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use beamline::resp::Value;
use bytes::Bytes;
use tokio::time::Instant;

use super::store::{Clock, End, ExpireIf, IncrError, SetOptions, Store, Ttl, WrongType, parse_int};

/// What one connection remembers between its commands.
#[derive(Debug)]
pub(crate) struct Session {
    /// CLIENT ID: the connection's process id.
    pub(crate) id: u64,
    /// CLIENT SETNAME.
    name: Option<Bytes>,
    /// QUIT was received: reply, then close.
    pub(crate) quit: bool,
}

impl Session {
    pub(crate) fn new(id: u64) -> Self {
        Self {
            id,
            name: None,
            quit: false,
        }
    }
}

/// What CONFIG GET reports: the settings a client may ask about on connect
/// (redis-benchmark asks for `save` and `appendonly`).
pub(crate) type ConfigTable = Vec<(&'static str, String)>;

/// Everything a command runs against.
struct Call<'a> {
    /// The arguments, slices of the request's frame (the name first).
    args: &'a [&'a [u8]],
    store: &'a Store,
    session: &'a mut Session,
    config: &'a ConfigTable,
    clock: &'a mut Clock,
}

impl<'a> Call<'a> {
    fn key(&self) -> &'a [u8] {
        self.args[1]
    }

    fn int(&self, index: usize) -> Result<i64, Value> {
        parse_int(self.args[index]).ok_or_else(not_an_integer)
    }
}

type Run = fn(&mut Call<'_>) -> Value;

/// Runs one command (`args[0]` is its name, in any case) and returns its reply.
pub(crate) fn execute(
    args: &[&[u8]],
    store: &Store,
    session: &mut Session,
    config: &ConfigTable,
    clock: &mut Clock,
) -> Value {
    let Some(name) = args.first() else {
        return unknown_command(args);
    };
    let Some((full_name, arity, run)) = lookup(name) else {
        return unknown_command(args);
    };
    if !arity_ok(arity, args.len()) {
        return wrong_arity(full_name);
    }
    run(&mut Call {
        args,
        store,
        session,
        config,
        clock,
    })
}

/// Redis's arity rule: positive is exact, negative is a minimum (counting the name).
fn arity_ok(arity: i32, argc: usize) -> bool {
    let needed = arity.unsigned_abs() as usize;
    if arity >= 0 {
        argc == needed
    } else {
        argc >= needed
    }
}

/// The command's lower-case name (as Redis names it in errors), arity and function.
fn lookup(name: &[u8]) -> Option<(&'static str, i32, Run)> {
    let mut buf = [0u8; 8];
    let lower = buf.get_mut(..name.len())?;
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    let found: (&'static str, i32, Run) = match &*lower {
        b"ping" => ("ping", -1, ping),
        b"echo" => ("echo", 2, echo),
        b"get" => ("get", 2, get),
        b"set" => ("set", -3, set),
        b"del" => ("del", -2, del),
        b"exists" => ("exists", -2, exists),
        b"incr" => ("incr", 2, |c| incr_by(c, 1)),
        b"decr" => ("decr", 2, |c| incr_by(c, -1)),
        b"incrby" => ("incrby", 3, incrby),
        b"decrby" => ("decrby", 3, decrby),
        b"mget" => ("mget", -2, mget),
        b"mset" => ("mset", -3, mset),
        b"expire" => ("expire", -3, |c| expire(c, Duration::from_secs, "expire")),
        b"pexpire" => ("pexpire", -3, |c| {
            expire(c, Duration::from_millis, "pexpire")
        }),
        b"ttl" => ("ttl", 2, |c| ttl(c, false)),
        b"pttl" => ("pttl", 2, |c| ttl(c, true)),
        b"persist" => ("persist", 2, persist),
        b"type" => ("type", 2, type_of),
        b"dbsize" => ("dbsize", 1, dbsize),
        b"flushdb" => ("flushdb", -1, flush),
        b"flushall" => ("flushall", -1, flush),
        b"quit" => ("quit", -1, quit),
        b"select" => ("select", 2, select),
        b"config" => ("config", -2, config),
        b"client" => ("client", -2, client),
        b"lpush" => ("lpush", -3, |c| push(c, End::Left)),
        b"rpush" => ("rpush", -3, |c| push(c, End::Right)),
        b"lpop" => ("lpop", -2, |c| pop(c, End::Left, "lpop")),
        b"rpop" => ("rpop", -2, |c| pop(c, End::Right, "rpop")),
        b"llen" => ("llen", 2, llen),
        b"lrange" => ("lrange", 4, lrange),
        _ => return None,
    };
    Some(found)
}

// ----- replies and errors, worded as Redis words them -----

fn error(message: &'static str) -> Value {
    Value::Error(Bytes::from_static(message.as_bytes()))
}

fn wrong_type() -> Value {
    error("WRONGTYPE Operation against a key holding the wrong kind of value")
}

fn not_an_integer() -> Value {
    error("ERR value is not an integer or out of range")
}

fn syntax_error() -> Value {
    error("ERR syntax error")
}

fn wrong_arity(name: &str) -> Value {
    Value::Error(Bytes::from(format!(
        "ERR wrong number of arguments for '{name}' command"
    )))
}

fn unknown_subcommand(sub: &[u8], command: &str) -> Value {
    let mut text = b"ERR unknown subcommand '".to_vec();
    push_sanitized(&mut text, sub, 128);
    text.extend_from_slice(format!("'. Try {command} HELP.").as_bytes());
    Value::Error(Bytes::from(text))
}

/// `ERR unknown command 'foo', with args beginning with: 'a' 'b' `, as Redis 7 writes it:
/// the name cut at 128 bytes, arguments added while the list is under 128 bytes, line
/// breaks turned into spaces (a RESP error is one line).
fn unknown_command(args: &[&[u8]]) -> Value {
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

fn push_sanitized(out: &mut Vec<u8>, bytes: &[u8], max: usize) {
    out.extend(bytes.iter().take(max).map(|&b| match b {
        b'\r' | b'\n' => b' ',
        b => b,
    }));
}

fn bulk_or_null(value: Option<Bytes>) -> Value {
    value.map_or(Value::Null, Value::Bulk)
}

fn integer(n: usize) -> Value {
    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

fn flag(set: bool) -> Value {
    Value::Integer(i64::from(set))
}

/// Whether `arg` is the option `name` (options are case-insensitive).
fn is(arg: &[u8], name: &str) -> bool {
    arg.eq_ignore_ascii_case(name.as_bytes())
}

// ----- the commands -----

fn ping(c: &mut Call<'_>) -> Value {
    match c.args {
        [_] => Value::simple("PONG"),
        [_, message] => Value::Bulk(Bytes::copy_from_slice(message)),
        _ => wrong_arity("ping"),
    }
}

fn echo(c: &mut Call<'_>) -> Value {
    Value::Bulk(Bytes::copy_from_slice(c.args[1]))
}

fn get(c: &mut Call<'_>) -> Value {
    match c.store.get(c.key(), c.clock) {
        Ok(value) => bulk_or_null(value),
        Err(WrongType) => wrong_type(),
    }
}

/// SET key value [NX | XX] [GET] [EX s | PX ms | EXAT unix-s | PXAT unix-ms | KEEPTTL]
fn set(c: &mut Call<'_>) -> Value {
    let mut options = SetOptions::default();
    let mut want_old = false;
    let mut expiry_given = false;
    let mut i = 3;
    while i < c.args.len() {
        let arg = &c.args[i];
        if is(arg, "NX") && !options.only_if_present {
            options.only_if_absent = true;
        } else if is(arg, "XX") && !options.only_if_absent {
            options.only_if_present = true;
        } else if is(arg, "GET") {
            want_old = true;
        } else if is(arg, "KEEPTTL") && !expiry_given {
            options.keep_ttl = true;
            expiry_given = true;
        } else if let Some(unit) = expiry_unit(arg) {
            let Some(amount) = c.args.get(i + 1) else {
                return syntax_error();
            };
            if expiry_given {
                return syntax_error();
            }
            let Some(n) = parse_int(amount) else {
                return not_an_integer();
            };
            match deadline(n, unit, c.clock) {
                Some(at) => options.expire_at = Some(at),
                None => return error("ERR invalid expire time in 'set' command"),
            }
            expiry_given = true;
            i += 1;
        } else {
            return syntax_error();
        }
        i += 1;
    }
    match c.store.set(c.key(), c.args[2], options, want_old, c.clock) {
        Err(WrongType) => wrong_type(),
        Ok(outcome) if want_old => bulk_or_null(outcome.old),
        Ok(outcome) if outcome.written => Value::ok(),
        Ok(_) => Value::Null,
    }
}

/// SET's expiry options: relative (EX, PX) or absolute Unix time (EXAT, PXAT), in seconds or
/// milliseconds.
#[derive(Clone, Copy)]
enum ExpiryUnit {
    Seconds,
    Millis,
    UnixSeconds,
    UnixMillis,
}

fn expiry_unit(arg: &[u8]) -> Option<ExpiryUnit> {
    [
        ("EX", ExpiryUnit::Seconds),
        ("PX", ExpiryUnit::Millis),
        ("EXAT", ExpiryUnit::UnixSeconds),
        ("PXAT", ExpiryUnit::UnixMillis),
    ]
    .into_iter()
    .find_map(|(name, unit)| is(arg, name).then_some(unit))
}

/// The instant SET's expiry option means, or `None` when Redis calls it invalid (not
/// positive, or too far away to represent).
fn deadline(n: i64, unit: ExpiryUnit, clock: &mut Clock) -> Option<Instant> {
    let n = u64::try_from(n).ok().filter(|&n| n > 0)?;
    let now = clock.now();
    match unit {
        ExpiryUnit::Seconds => now.checked_add(Duration::from_secs(n)),
        ExpiryUnit::Millis => now.checked_add(Duration::from_millis(n)),
        ExpiryUnit::UnixSeconds => unix_to_instant(Duration::from_secs(n), now),
        ExpiryUnit::UnixMillis => unix_to_instant(Duration::from_millis(n), now),
    }
}

/// The monotonic instant of a Unix time (a past one becomes `now`: already expired).
fn unix_to_instant(unix: Duration, now: Instant) -> Option<Instant> {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    match unix.checked_sub(since_epoch) {
        Some(ahead) => now.checked_add(ahead),
        None => Some(now),
    }
}

fn del(c: &mut Call<'_>) -> Value {
    let keys = c.args[1..].iter().copied();
    Value::Integer(c.store.del(keys, c.clock))
}

fn exists(c: &mut Call<'_>) -> Value {
    let keys = c.args[1..].iter().copied();
    Value::Integer(c.store.exists(keys, c.clock))
}

fn incrby(c: &mut Call<'_>) -> Value {
    match c.int(2) {
        Ok(delta) => incr_by(c, delta),
        Err(e) => e,
    }
}

fn decrby(c: &mut Call<'_>) -> Value {
    match c.int(2).map(i64::checked_neg) {
        Ok(Some(delta)) => incr_by(c, delta),
        Ok(None) => error("ERR decrement would overflow"),
        Err(e) => e,
    }
}

fn incr_by(c: &mut Call<'_>, delta: i64) -> Value {
    match c.store.incr_by(c.key(), delta, c.clock) {
        Ok(n) => Value::Integer(n),
        Err(IncrError::WrongType) => wrong_type(),
        Err(IncrError::NotAnInteger) => not_an_integer(),
        Err(IncrError::Overflow) => error("ERR increment or decrement would overflow"),
    }
}

fn mget(c: &mut Call<'_>) -> Value {
    let keys = c.args[1..].iter().copied();
    Value::Array(
        c.store
            .mget(keys, c.clock)
            .into_iter()
            .map(bulk_or_null)
            .collect(),
    )
}

fn mset(c: &mut Call<'_>) -> Value {
    let pairs = &c.args[1..];
    if !pairs.len().is_multiple_of(2) {
        return wrong_arity("mset");
    }
    let pairs = pairs.chunks_exact(2).map(|kv| (kv[0], kv[1]));
    c.store.mset(pairs, c.clock);
    Value::ok()
}

/// EXPIRE / PEXPIRE key amount [NX | XX | GT | LT]
fn expire(c: &mut Call<'_>, unit: fn(u64) -> Duration, name: &'static str) -> Value {
    let amount = match c.int(2) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let mut condition = ExpireIf::Always;
    for arg in &c.args[3..] {
        let next = if is(arg, "NX") {
            ExpireIf::NoDeadline
        } else if is(arg, "XX") {
            ExpireIf::HasDeadline
        } else if is(arg, "GT") {
            ExpireIf::Later
        } else if is(arg, "LT") {
            ExpireIf::Earlier
        } else {
            let mut text = b"ERR Unsupported option ".to_vec();
            push_sanitized(&mut text, arg, 128);
            return Value::Error(Bytes::from(text));
        };
        condition = match (condition, next) {
            (ExpireIf::Always, next) => next,
            (a, b) if a == b => a,
            (ExpireIf::Later, ExpireIf::Earlier) | (ExpireIf::Earlier, ExpireIf::Later) => {
                return error("ERR GT and LT options at the same time are not compatible");
            }
            _ => {
                return error(
                    "ERR NX and XX, GT or LT options at the same time are not compatible",
                );
            }
        };
    }
    let now = c.clock.now();
    // Zero or negative: the key is deleted at once (Redis does the same).
    let at = match u64::try_from(amount) {
        Ok(n) => match now.checked_add(unit(n)) {
            Some(at) => at,
            None => {
                return Value::Error(Bytes::from(format!(
                    "ERR invalid expire time in '{name}' command"
                )));
            }
        },
        Err(_) => now,
    };
    flag(c.store.expire(c.key(), at, condition, c.clock))
}

fn ttl(c: &mut Call<'_>, millis: bool) -> Value {
    Value::Integer(match c.store.ttl(c.key(), c.clock) {
        Ttl::Missing => -2,
        Ttl::Persistent => -1,
        Ttl::Remaining(left) if millis => i64::try_from(left.as_millis()).unwrap_or(i64::MAX),
        // Redis rounds to the nearest second.
        Ttl::Remaining(left) => i64::try_from((left.as_millis() + 500) / 1000).unwrap_or(i64::MAX),
    })
}

fn persist(c: &mut Call<'_>) -> Value {
    flag(c.store.persist(c.key(), c.clock))
}

fn type_of(c: &mut Call<'_>) -> Value {
    Value::simple(c.store.type_of(c.key(), c.clock))
}

fn dbsize(c: &mut Call<'_>) -> Value {
    integer(c.store.len())
}

/// FLUSHDB / FLUSHALL [ASYNC | SYNC]
fn flush(c: &mut Call<'_>) -> Value {
    match c.args {
        [_] => {}
        [_, mode] if is(mode, "ASYNC") || is(mode, "SYNC") => {}
        _ => return syntax_error(),
    }
    c.store.clear();
    Value::ok()
}

fn quit(c: &mut Call<'_>) -> Value {
    c.session.quit = true;
    Value::ok()
}

/// One database, number 0 (redis-cli sends `SELECT n` when started with `-n`).
fn select(c: &mut Call<'_>) -> Value {
    match c.int(1) {
        Ok(0) => Value::ok(),
        Ok(_) => error("ERR DB index is out of range"),
        Err(e) => e,
    }
}

/// CONFIG GET pattern [pattern ...]: the settings of [`ConfigTable`] whose names match a
/// glob pattern, as a flat name/value array (RESP2). Other subcommands do not exist here.
fn config(c: &mut Call<'_>) -> Value {
    let sub = &c.args[1];
    if !is(sub, "GET") {
        return unknown_subcommand(sub, "CONFIG");
    }
    if c.args.len() < 3 {
        return wrong_arity("config|get");
    }
    let mut reply = Vec::new();
    for (name, value) in c.config {
        if c.args[2..]
            .iter()
            .any(|pattern| glob_match(pattern, name.as_bytes()))
        {
            reply.push(Value::bulk(*name));
            reply.push(Value::Bulk(Bytes::from(value.clone())));
        }
    }
    Value::Array(reply)
}

/// CLIENT ID | GETNAME | SETNAME name | SETINFO attr value
fn client(c: &mut Call<'_>) -> Value {
    let sub = &c.args[1];
    let argc = c.args.len();
    let (name, arity) = if is(sub, "ID") {
        ("client|id", 2)
    } else if is(sub, "GETNAME") {
        ("client|getname", 2)
    } else if is(sub, "SETNAME") {
        ("client|setname", 3)
    } else if is(sub, "SETINFO") {
        ("client|setinfo", 4)
    } else {
        return unknown_subcommand(sub, "CLIENT");
    };
    if argc != arity {
        return wrong_arity(name);
    }
    match name {
        "client|id" => Value::Integer(i64::try_from(c.session.id).unwrap_or(i64::MAX)),
        "client|getname" => bulk_or_null(c.session.name.clone()),
        "client|setname" => {
            let new = &c.args[2];
            if new.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
                return error(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            c.session.name = (!new.is_empty()).then(|| Bytes::copy_from_slice(new));
            Value::ok()
        }
        _ => Value::ok(),
    }
}

fn push(c: &mut Call<'_>, end: End) -> Value {
    match c.store.push(c.key(), &c.args[2..], end, c.clock) {
        Ok(len) => integer(len),
        Err(WrongType) => wrong_type(),
    }
}

/// LPOP / RPOP key [count]
fn pop(c: &mut Call<'_>, end: End, name: &'static str) -> Value {
    let count = match c.args.len() {
        2 => None,
        3 => match c.int(2).map(usize::try_from) {
            Ok(Ok(n)) => Some(n),
            Ok(Err(_)) => return error("ERR value is out of range, must be positive"),
            Err(e) => return e,
        },
        _ => return wrong_arity(name),
    };
    match (
        c.store.pop(c.key(), end, count.unwrap_or(1), c.clock),
        count,
    ) {
        (Err(WrongType), _) => wrong_type(),
        (Ok(None), None) => Value::Null,
        (Ok(None), Some(_)) => Value::NullArray,
        (Ok(Some(popped)), None) => bulk_or_null(popped.into_iter().next()),
        (Ok(Some(popped)), Some(_)) => Value::Array(popped.into_iter().map(Value::Bulk).collect()),
    }
}

fn llen(c: &mut Call<'_>) -> Value {
    match c.store.llen(c.key(), c.clock) {
        Ok(len) => integer(len),
        Err(WrongType) => wrong_type(),
    }
}

fn lrange(c: &mut Call<'_>) -> Value {
    let (start, stop) = match (c.int(2), c.int(3)) {
        (Ok(start), Ok(stop)) => (start, stop),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    match c.store.lrange(c.key(), start, stop, c.clock) {
        Ok(items) => Value::Array(items.into_iter().map(Value::Bulk).collect()),
        Err(WrongType) => wrong_type(),
    }
}

/// Redis's glob for CONFIG GET: `*`, `?` and literal bytes, case-insensitive.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    // Where to resume after the last `*`: (pattern position after it, name position).
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p + 1, n));
                p += 1;
            }
            Some(&b) if b == b'?' || b.eq_ignore_ascii_case(&name[n]) => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs commands against one store and session, as a connection would.
    struct Bench {
        store: Store,
        session: Session,
        config: ConfigTable,
        now: Instant,
    }

    impl Bench {
        fn new() -> Self {
            Self {
                store: Store::new(),
                session: Session::new(7),
                config: vec![("save", String::new()), ("appendonly", "no".into())],
                now: Instant::now(),
            }
        }

        fn run(&mut self, line: &str) -> Value {
            let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            self.run_args(&args)
        }

        fn run_args(&mut self, args: &[&[u8]]) -> Value {
            execute(
                args,
                &self.store,
                &mut self.session,
                &self.config,
                &mut Clock::at(self.now),
            )
        }
    }

    fn err(text: &str) -> Value {
        Value::Error(Bytes::copy_from_slice(text.as_bytes()))
    }

    fn int(n: i64) -> Value {
        Value::Integer(n)
    }

    #[test]
    fn names_are_case_insensitive_and_arity_is_checked() {
        let mut b = Bench::new();
        assert_eq!(b.run("PiNg"), Value::simple("PONG"));
        assert_eq!(b.run("ping hi"), Value::bulk("hi"));
        assert_eq!(
            b.run("ping a b"),
            err("ERR wrong number of arguments for 'ping' command")
        );
        assert_eq!(
            b.run("get"),
            err("ERR wrong number of arguments for 'get' command")
        );
        assert_eq!(
            b.run("GET a b"),
            err("ERR wrong number of arguments for 'get' command")
        );
        assert_eq!(
            b.run("mset a 1 b"),
            err("ERR wrong number of arguments for 'mset' command")
        );
        assert_eq!(
            b.run("config get"),
            err("ERR wrong number of arguments for 'config|get' command")
        );
        assert_eq!(
            b.run("client setname"),
            err("ERR wrong number of arguments for 'client|setname' command")
        );
        assert_eq!(
            b.run("lpop k 1 2"),
            err("ERR wrong number of arguments for 'lpop' command")
        );
    }

    #[test]
    fn unknown_commands_are_described_on_one_line() {
        let mut b = Bench::new();
        assert_eq!(
            b.run("hello 3"),
            err("ERR unknown command 'hello', with args beginning with: '3' ")
        );
        assert_eq!(
            b.run("averyveryverylongname"),
            err("ERR unknown command 'averyveryverylongname', with args beginning with: ")
        );
        let long = [b'x'; 300];
        let args = [&b"bad\r\nname"[..], b"a\nb", &long, b"never"];
        let Value::Error(text) = b.run_args(&args) else {
            panic!("not an error")
        };
        assert!(!text.contains(&b'\r') && !text.contains(&b'\n'));
        assert!(
            text.starts_with(
                b"ERR unknown command 'bad  name', with args beginning with: 'a b' 'xxx"
            )
        );
        assert!(
            !text.windows(5).any(|w| w == b"never"),
            "arguments are listed up to 128 bytes"
        );
        assert!(text.len() < 300);
    }

    #[test]
    fn type_and_number_errors_are_redis_words() {
        let mut b = Bench::new();
        assert_eq!(b.run("rpush l a b"), int(2));
        let wrongtype = err("WRONGTYPE Operation against a key holding the wrong kind of value");
        assert_eq!(b.run("set s v"), Value::ok());
        for cmd in [
            "get l",
            "incr l",
            "set l v GET",
            "lrange s 0 1",
            "llen s",
            "rpop s",
        ] {
            assert_eq!(b.run(cmd), wrongtype, "{cmd}");
        }
        assert_eq!(b.run("lpush s x"), wrongtype);
        assert_eq!(
            b.run("incr s"),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            b.run("incrby n 1.5"),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            b.run("decrby n -9223372036854775808"),
            err("ERR decrement would overflow")
        );
        assert_eq!(b.run("set n 9223372036854775807"), Value::ok());
        assert_eq!(
            b.run("incr n"),
            err("ERR increment or decrement would overflow")
        );
        assert_eq!(
            b.run("expire n x"),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            b.run("lrange l a 1"),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            b.run("lpop l -1"),
            err("ERR value is out of range, must be positive")
        );
        assert_eq!(
            b.run("select x"),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(b.run("select 1"), err("ERR DB index is out of range"));
        assert_eq!(b.run("select 0"), Value::ok());
    }

    #[test]
    fn set_options_follow_redis_rules() {
        let mut b = Bench::new();
        let syntax = err("ERR syntax error");
        assert_eq!(b.run("set k v NX XX"), syntax);
        assert_eq!(b.run("set k v EX 10 PX 10"), syntax);
        assert_eq!(b.run("set k v EX 10 KEEPTTL"), syntax);
        assert_eq!(b.run("set k v EX"), syntax);
        assert_eq!(b.run("set k v bogus"), syntax);
        assert_eq!(
            b.run("set k v EX 0"),
            err("ERR invalid expire time in 'set' command")
        );
        assert_eq!(
            b.run("set k v PX -5"),
            err("ERR invalid expire time in 'set' command")
        );
        assert_eq!(
            b.run("set k v EX 9223372036854775807"),
            err("ERR invalid expire time in 'set' command")
        );
        assert_eq!(b.run("set k v XX"), Value::Null);
        assert_eq!(b.run("set k v nx px 1500"), Value::ok());
        assert_eq!(b.run("pttl k"), int(1500));
        assert_eq!(b.run("ttl k"), int(2), "TTL rounds to the nearest second");
        assert_eq!(b.run("set k w NX GET"), Value::bulk("v"));
        assert_eq!(b.run("set k w XX GET KEEPTTL"), Value::bulk("v"));
        assert_eq!(b.run("pttl k"), int(1500));
        assert_eq!(b.run("set k x"), Value::ok());
        assert_eq!(b.run("ttl k"), int(-1));
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis()
            + 60_000;
        assert_eq!(b.run(&format!("set k v PXAT {unix_ms}")), Value::ok());
        let Value::Integer(left) = b.run("pttl k") else {
            panic!()
        };
        assert!((59_000..=60_000).contains(&left), "{left}");
        assert_eq!(
            b.run("set k v EXAT 1"),
            Value::ok(),
            "a past time expires the key at once"
        );
        assert_eq!(b.run("get k"), Value::Null);
    }

    #[test]
    fn expire_conditions_and_ttls() {
        let mut b = Bench::new();
        assert_eq!(b.run("expire k 10"), int(0));
        assert_eq!(b.run("ttl k"), int(-2));
        b.run("set k v");
        assert_eq!(b.run("expire k 10 XX"), int(0));
        assert_eq!(b.run("expire k 10 NX"), int(1));
        assert_eq!(b.run("expire k 5 GT"), int(0));
        assert_eq!(b.run("expire k 20 gt"), int(1));
        assert_eq!(b.run("pexpire k 1000 LT"), int(1));
        assert_eq!(b.run("pttl k"), int(1000));
        assert_eq!(
            b.run("expire k 1 NX XX"),
            err("ERR NX and XX, GT or LT options at the same time are not compatible")
        );
        assert_eq!(
            b.run("expire k 1 GT LT"),
            err("ERR GT and LT options at the same time are not compatible")
        );
        assert_eq!(b.run("expire k 1 FOO"), err("ERR Unsupported option FOO"));
        assert_eq!(
            b.run("expire k 9223372036854775807"),
            err("ERR invalid expire time in 'expire' command")
        );
        assert_eq!(b.run("persist k"), int(1));
        assert_eq!(b.run("ttl k"), int(-1));
        assert_eq!(b.run("expire k -1"), int(1));
        assert_eq!(b.run("exists k"), int(0));
    }

    #[test]
    fn lists_reply_as_redis_does() {
        let mut b = Bench::new();
        assert_eq!(b.run("lpop none"), Value::Null);
        assert_eq!(b.run("lpop none 2"), Value::NullArray);
        assert_eq!(b.run("rpush l a b c"), int(3));
        assert_eq!(b.run("lpop l"), Value::bulk("a"));
        assert_eq!(
            b.run("rpop l 5"),
            Value::Array(vec![Value::bulk("c"), Value::bulk("b")])
        );
        assert_eq!(b.run("llen l"), int(0));
        assert_eq!(b.run("type l"), Value::simple("none"));
    }

    #[test]
    fn connection_commands() {
        let mut b = Bench::new();
        assert_eq!(b.run("client id"), int(7));
        assert_eq!(b.run("client getname"), Value::Null);
        assert_eq!(b.run("client setname worker-1"), Value::ok());
        assert_eq!(b.run("client getname"), Value::bulk("worker-1"));
        let bad = [&b"client"[..], b"setname", b"a b"];
        assert_eq!(
            b.run_args(&bad),
            err("ERR Client names cannot contain spaces, newlines or special characters.")
        );
        assert_eq!(b.run("client setinfo lib-name x"), Value::ok());
        assert_eq!(
            b.run("client kill x"),
            err("ERR unknown subcommand 'kill'. Try CLIENT HELP.")
        );
        assert_eq!(
            b.run("config set save x"),
            err("ERR unknown subcommand 'set'. Try CONFIG HELP.")
        );
        assert_eq!(
            b.run("config get save"),
            Value::Array(vec![Value::bulk("save"), Value::bulk("")])
        );
        assert_eq!(
            b.run("config get *"),
            Value::Array(vec![
                Value::bulk("save"),
                Value::bulk(""),
                Value::bulk("appendonly"),
                Value::bulk("no")
            ])
        );
        assert_eq!(b.run("config get nothing"), Value::Array(vec![]));
        assert!(!b.session.quit);
        assert_eq!(b.run("quit"), Value::ok());
        assert!(b.session.quit);
        assert_eq!(b.run("flushdb bad"), err("ERR syntax error"));
        b.run("set a 1");
        assert_eq!(b.run("dbsize"), int(1));
        assert_eq!(b.run("flushall async"), Value::ok());
        assert_eq!(b.run("dbsize"), int(0));
    }

    #[test]
    fn globs_match_like_redis() {
        for (pattern, name, matches) in [
            ("*", "save", true),
            ("sa*", "save", true),
            ("SAVE", "save", true),
            ("s?ve", "save", true),
            ("*ve", "save", true),
            ("*a*e", "save", true),
            ("*x*", "save", false),
            ("sav", "save", false),
            ("save?", "save", false),
            ("", "save", false),
            ("**", "", true),
        ] {
            assert_eq!(
                glob_match(pattern.as_bytes(), name.as_bytes()),
                matches,
                "{pattern} {name}"
            );
        }
    }
}
