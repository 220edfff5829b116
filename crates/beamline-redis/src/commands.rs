//! The command table: where a command's keys are, whether it only reads, and whether the
//! client may split it by slot.

use beamline_resp::Command;

/// Where a command's keys are among its arguments (0 is the command's name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keys {
    /// No key: the command goes to any primary.
    None,
    /// One key, argument 1.
    First,
    /// Arguments 1 and 2 (`RENAME src dst`, `LMOVE src dst ...`).
    Two,
    /// Every argument from 1 on (`DEL k1 k2 ...`).
    All,
    /// Every argument from 1 on but the last (`BLPOP k1 k2 timeout`).
    AllButLast,
    /// Every other argument from 1 on: keys and values alternate (`MSET k1 v1 k2 v2`).
    Pairs,
    /// `numkeys` at argument 2, then that many keys (`EVAL script numkeys k1 ... args`).
    NumKeysAt2,
}

/// How a multi-key command split by slot is put back together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Merge {
    /// An array with one element per key, in the caller's order (`MGET`).
    Array,
    /// The integers added up (`DEL`, `EXISTS`, `UNLINK`, `TOUCH`).
    Sum,
    /// `+OK` when every part answered `+OK` (`MSET`, `FLUSHALL`).
    Ok,
    /// The first part's answer, every part answering the same (`SCRIPT LOAD`'s SHA).
    First,
}

/// What the client knows about one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spec {
    pub(crate) keys: Keys,
    /// Only reads: safe to send again after its connection was lost.
    pub(crate) read_only: bool,
    /// Split by slot and merged this way when its keys span slots.
    pub(crate) split: Option<Merge>,
}

const fn spec(keys: Keys, read_only: bool) -> Spec {
    Spec {
        keys,
        read_only,
        split: None,
    }
}

const fn split(keys: Keys, read_only: bool, merge: Merge) -> Spec {
    Spec {
        keys,
        read_only,
        split: Some(merge),
    }
}

/// The table. A command not in it is taken to be a write whose key (if it has any
/// argument) is argument 1, the position of the key in almost every Redis data command;
/// a command without arguments goes to any primary.
const TABLE: &[(&str, Spec)] = &[
    // keyless
    ("PING", spec(Keys::None, true)),
    ("ECHO", spec(Keys::None, true)),
    ("INFO", spec(Keys::None, true)),
    ("TIME", spec(Keys::None, true)),
    ("DBSIZE", spec(Keys::None, true)),
    ("LASTSAVE", spec(Keys::None, true)),
    ("CLUSTER", spec(Keys::None, true)),
    ("COMMAND", spec(Keys::None, true)),
    ("CONFIG", spec(Keys::None, false)),
    ("CLIENT", spec(Keys::None, false)),
    ("SCRIPT", spec(Keys::None, false)),
    ("FUNCTION", spec(Keys::None, false)),
    ("FLUSHALL", spec(Keys::None, false)),
    ("FLUSHDB", spec(Keys::None, false)),
    ("RANDOMKEY", spec(Keys::None, true)),
    ("PUBLISH", spec(Keys::None, false)),
    // split by slot
    ("MGET", split(Keys::All, true, Merge::Array)),
    ("EXISTS", split(Keys::All, true, Merge::Sum)),
    ("DEL", split(Keys::All, false, Merge::Sum)),
    ("UNLINK", split(Keys::All, false, Merge::Sum)),
    ("TOUCH", split(Keys::All, false, Merge::Sum)),
    ("MSET", split(Keys::Pairs, false, Merge::Ok)),
    // every key in one slot
    ("MSETNX", spec(Keys::Pairs, false)),
    ("RENAME", spec(Keys::Two, false)),
    ("RENAMENX", spec(Keys::Two, false)),
    ("COPY", spec(Keys::Two, false)),
    ("SMOVE", spec(Keys::Two, false)),
    ("RPOPLPUSH", spec(Keys::Two, false)),
    ("LMOVE", spec(Keys::Two, false)),
    ("BLMOVE", spec(Keys::Two, false)),
    ("SINTER", spec(Keys::All, true)),
    ("SUNION", spec(Keys::All, true)),
    ("SDIFF", spec(Keys::All, true)),
    ("PFCOUNT", spec(Keys::All, true)),
    ("SINTERSTORE", spec(Keys::All, false)),
    ("SUNIONSTORE", spec(Keys::All, false)),
    ("SDIFFSTORE", spec(Keys::All, false)),
    ("PFMERGE", spec(Keys::All, false)),
    ("BLPOP", spec(Keys::AllButLast, false)),
    ("BRPOP", spec(Keys::AllButLast, false)),
    ("BZPOPMIN", spec(Keys::AllButLast, false)),
    ("BZPOPMAX", spec(Keys::AllButLast, false)),
    ("EVAL", spec(Keys::NumKeysAt2, false)),
    ("EVALSHA", spec(Keys::NumKeysAt2, false)),
    ("EVAL_RO", spec(Keys::NumKeysAt2, true)),
    ("EVALSHA_RO", spec(Keys::NumKeysAt2, true)),
    ("FCALL", spec(Keys::NumKeysAt2, false)),
    ("FCALL_RO", spec(Keys::NumKeysAt2, true)),
    // reads of one key
    ("GET", spec(Keys::First, true)),
    ("STRLEN", spec(Keys::First, true)),
    ("GETRANGE", spec(Keys::First, true)),
    ("SUBSTR", spec(Keys::First, true)),
    ("GETBIT", spec(Keys::First, true)),
    ("BITCOUNT", spec(Keys::First, true)),
    ("BITPOS", spec(Keys::First, true)),
    ("TYPE", spec(Keys::First, true)),
    ("TTL", spec(Keys::First, true)),
    ("PTTL", spec(Keys::First, true)),
    ("EXPIRETIME", spec(Keys::First, true)),
    ("PEXPIRETIME", spec(Keys::First, true)),
    ("DUMP", spec(Keys::First, true)),
    ("HGET", spec(Keys::First, true)),
    ("HMGET", spec(Keys::First, true)),
    ("HGETALL", spec(Keys::First, true)),
    ("HKEYS", spec(Keys::First, true)),
    ("HVALS", spec(Keys::First, true)),
    ("HLEN", spec(Keys::First, true)),
    ("HEXISTS", spec(Keys::First, true)),
    ("HSTRLEN", spec(Keys::First, true)),
    ("HRANDFIELD", spec(Keys::First, true)),
    ("HSCAN", spec(Keys::First, true)),
    ("LRANGE", spec(Keys::First, true)),
    ("LLEN", spec(Keys::First, true)),
    ("LINDEX", spec(Keys::First, true)),
    ("LPOS", spec(Keys::First, true)),
    ("SMEMBERS", spec(Keys::First, true)),
    ("SISMEMBER", spec(Keys::First, true)),
    ("SMISMEMBER", spec(Keys::First, true)),
    ("SCARD", spec(Keys::First, true)),
    ("SRANDMEMBER", spec(Keys::First, true)),
    ("SSCAN", spec(Keys::First, true)),
    ("ZRANGE", spec(Keys::First, true)),
    ("ZRANGEBYSCORE", spec(Keys::First, true)),
    ("ZRANGEBYLEX", spec(Keys::First, true)),
    ("ZREVRANGE", spec(Keys::First, true)),
    ("ZREVRANGEBYSCORE", spec(Keys::First, true)),
    ("ZREVRANGEBYLEX", spec(Keys::First, true)),
    ("ZSCORE", spec(Keys::First, true)),
    ("ZMSCORE", spec(Keys::First, true)),
    ("ZCARD", spec(Keys::First, true)),
    ("ZCOUNT", spec(Keys::First, true)),
    ("ZLEXCOUNT", spec(Keys::First, true)),
    ("ZRANK", spec(Keys::First, true)),
    ("ZREVRANK", spec(Keys::First, true)),
    ("ZRANDMEMBER", spec(Keys::First, true)),
    ("ZSCAN", spec(Keys::First, true)),
    ("XRANGE", spec(Keys::First, true)),
    ("XREVRANGE", spec(Keys::First, true)),
    ("XLEN", spec(Keys::First, true)),
    ("GEOPOS", spec(Keys::First, true)),
    ("GEODIST", spec(Keys::First, true)),
    ("GEOHASH", spec(Keys::First, true)),
    ("GEOSEARCH", spec(Keys::First, true)),
];

/// Commands that change the state of the connection they are sent on (a transaction, a
/// database, a subscription, the reply mode, `ASKING`). A node's connection is shared by
/// every request to that node, so such a command would change what other callers' requests
/// do, or wedge the FIFO order of replies: the client refuses them before sending.
const CONNECTION_STATE: &[&str] = &[
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "UNWATCH",
    "SELECT",
    "ASKING",
    "READONLY",
    "READWRITE",
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "SSUBSCRIBE",
    "UNSUBSCRIBE",
    "PUNSUBSCRIBE",
    "SUNSUBSCRIBE",
    "MONITOR",
    "QUIT",
    "RESET",
    "HELLO",
    "AUTH",
];

/// Whether `command` changes its connection's state ([`CONNECTION_STATE`], and
/// `CLIENT REPLY`, which would stop the replies the FIFO order counts on).
pub(crate) fn changes_connection_state(command: &Command) -> bool {
    let mut args = command.args();
    let Some(name) = args.next() else {
        return false;
    };
    if name.eq_ignore_ascii_case(b"CLIENT") {
        return args
            .next()
            .is_some_and(|sub| sub.eq_ignore_ascii_case(b"REPLY"));
    }
    CONNECTION_STATE
        .iter()
        .any(|known| known.as_bytes().eq_ignore_ascii_case(name))
}

/// Whether `command` goes to every primary, and how the answers merge: `DBSIZE` (added
/// up), `FLUSHALL` and `FLUSHDB` (`+OK` from all), `SCRIPT LOAD` (the SHA, so that
/// `EVALSHA` finds the script on whichever node its keys live) and `SCRIPT FLUSH`. Every
/// other keyless command goes to one primary.
pub(crate) fn fan_out(command: &Command) -> Option<Merge> {
    let mut args = command.args();
    let name = args.next()?;
    let is = |word: &[u8], known: &str| word.eq_ignore_ascii_case(known.as_bytes());
    if is(name, "DBSIZE") {
        Some(Merge::Sum)
    } else if is(name, "FLUSHALL") || is(name, "FLUSHDB") {
        Some(Merge::Ok)
    } else if is(name, "SCRIPT") {
        match args.next() {
            Some(sub) if is(sub, "LOAD") => Some(Merge::First),
            Some(sub) if is(sub, "FLUSH") => Some(Merge::Ok),
            _ => None,
        }
    } else {
        None
    }
}

/// What the client knows about `command`: from the table, or the default for a command
/// it does not know (a write keyed by argument 1).
pub(crate) fn spec_of(command: &Command) -> Spec {
    let mut args = command.args();
    let Some(name) = args.next() else {
        return spec(Keys::None, false);
    };
    let known = TABLE
        .iter()
        .find(|(known, _)| known.as_bytes().eq_ignore_ascii_case(name))
        .map(|(_, spec)| *spec);
    known.unwrap_or(if command.len() > 1 {
        spec(Keys::First, false)
    } else {
        spec(Keys::None, false)
    })
}

/// The positions of `command`'s keys among its arguments, by `keys`. A malformed command
/// (a `numkeys` that is not a number, or more keys than arguments) yields the keys it can
/// find: the server will answer it with an error.
pub(crate) fn key_positions(command: &Command, keys: Keys) -> Vec<usize> {
    let argc = command.len();
    match keys {
        Keys::None => Vec::new(),
        Keys::First => (argc > 1).then_some(1).into_iter().collect(),
        Keys::Two => (1..argc.min(3)).collect(),
        Keys::All => (1..argc).collect(),
        Keys::AllButLast => (1..argc.saturating_sub(1)).collect(),
        Keys::Pairs => (1..argc).step_by(2).collect(),
        Keys::NumKeysAt2 => {
            let numkeys = command
                .args()
                .nth(2)
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            (3..argc.min(3 + numkeys)).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(args: &[&str]) -> Command {
        Command::from_args(args.iter().copied())
    }

    #[test]
    fn names_are_case_insensitive_and_unknown_commands_are_writes_keyed_by_argument_1() {
        assert_eq!(spec_of(&cmd(&["get", "k"])), spec_of(&cmd(&["GET", "k"])));
        assert!(spec_of(&cmd(&["GET", "k"])).read_only);
        let unknown = spec_of(&cmd(&["XYZZY", "k", "v"]));
        assert_eq!((unknown.keys, unknown.read_only), (Keys::First, false));
        assert_eq!(spec_of(&cmd(&["XYZZY"])).keys, Keys::None);
        assert_eq!(spec_of(&cmd(&["mget", "a", "b"])).split, Some(Merge::Array));
    }

    #[test]
    fn connection_state_commands_are_recognized() {
        for refused in [
            &["multi"][..],
            &["SELECT", "1"],
            &["client", "reply", "off"],
            &["ASKING"],
        ] {
            assert!(changes_connection_state(&cmd(refused)), "{refused:?}");
        }
        for allowed in [&["GET", "k"][..], &["CLIENT", "LIST"], &["PING"]] {
            assert!(!changes_connection_state(&cmd(allowed)), "{allowed:?}");
        }
    }

    #[test]
    fn only_a_few_keyless_commands_go_to_every_primary() {
        assert_eq!(fan_out(&cmd(&["dbsize"])), Some(Merge::Sum));
        assert_eq!(fan_out(&cmd(&["FLUSHALL", "ASYNC"])), Some(Merge::Ok));
        assert_eq!(
            fan_out(&cmd(&["SCRIPT", "load", "return 1"])),
            Some(Merge::First)
        );
        assert_eq!(fan_out(&cmd(&["SCRIPT", "EXISTS", "abc"])), None);
        assert_eq!(fan_out(&cmd(&["PING"])), None);
        assert_eq!(fan_out(&cmd(&["GET", "k"])), None);
    }

    #[test]
    fn key_positions_follow_each_shape() {
        let at = |args: &[&str]| {
            let c = cmd(args);
            key_positions(&c, spec_of(&c).keys)
        };
        assert_eq!(at(&["GET", "k"]), [1]);
        assert_eq!(at(&["SET", "k", "v", "EX", "10"]), [1]);
        assert_eq!(at(&["DEL", "a", "b", "c"]), [1, 2, 3]);
        assert_eq!(at(&["MSET", "a", "1", "b", "2"]), [1, 3]);
        assert_eq!(at(&["BLPOP", "a", "b", "0"]), [1, 2]);
        assert_eq!(at(&["RENAME", "a", "b"]), [1, 2]);
        assert_eq!(at(&["LMOVE", "a", "b", "LEFT", "RIGHT"]), [1, 2]);
        assert_eq!(at(&["EVAL", "return 1", "2", "a", "b", "x"]), [3, 4]);
        assert_eq!(at(&["EVAL", "return 1", "9", "a"]), [3]);
        assert_eq!(at(&["EVAL", "return 1", "x", "a"]), Vec::<usize>::new());
        assert_eq!(at(&["PING"]), Vec::<usize>::new());
        assert_eq!(at(&["GET"]), Vec::<usize>::new());
    }
}
