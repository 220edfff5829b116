//! The value parsers behind the flags: each names what it expected, and that text reaches
//! the user through clap's error ([`Expected`]).

use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

use beamline_chaos::{Direction, PartitionMode};

/// What a value parser expected, carried through clap's error back to [`CliError::BadValue`].
#[derive(Debug)]
pub(super) struct Expected(pub(super) &'static str);

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected {}", self.0)
    }
}

impl std::error::Error for Expected {}

/// The value parsers clap calls: the parsers below, their expectation kept for the error.
pub(super) fn addr_value(v: &str) -> Result<SocketAddr, Expected> {
    parse_addr(v).map_err(Expected)
}

pub(super) fn seed_value(v: &str) -> Result<u64, Expected> {
    parse_seed(v).map_err(Expected)
}

pub(super) fn direction_value(v: &str) -> Result<Direction, Expected> {
    parse_direction(v).map_err(Expected)
}

pub(super) fn partition_value(v: &str) -> Result<PartitionMode, Expected> {
    parse_partition_mode(v).map_err(Expected)
}

pub(super) fn duration_value(v: &str) -> Result<Duration, Expected> {
    parse_duration(v).map_err(Expected)
}

pub(super) fn size_value(v: &str) -> Result<u64, Expected> {
    parse_size(v).map_err(Expected)
}

pub(super) fn rate_value(v: &str) -> Result<NonZeroU64, Expected> {
    NonZeroU64::new(parse_size(v).map_err(Expected)?).ok_or(Expected("a rate above 0"))
}

pub(super) fn slice_value(v: &str) -> Result<NonZeroUsize, Expected> {
    let n = usize::try_from(parse_size(v).map_err(Expected)?)
        .map_err(|_| Expected("a smaller size"))?;
    NonZeroUsize::new(n).ok_or(Expected("a size above 0"))
}

pub(super) fn parse_addr(v: &str) -> Result<SocketAddr, &'static str> {
    v.parse()
        .map_err(|_| "an IP:port address such as 127.0.0.1:6379")
}

pub(super) fn parse_seed(v: &str) -> Result<u64, &'static str> {
    v.parse().map_err(|_| "an unsigned 64-bit integer")
}

pub(super) fn parse_direction(v: &str) -> Result<Direction, &'static str> {
    match v {
        "up" | "upstream" => Ok(Direction::Upstream),
        "down" | "downstream" => Ok(Direction::Downstream),
        "both" => Ok(Direction::Both),
        _ => Err("up, down or both"),
    }
}

pub(super) fn parse_partition_mode(v: &str) -> Result<PartitionMode, &'static str> {
    match v {
        "blackhole" => Ok(PartitionMode::Blackhole),
        "refuse" => Ok(PartitionMode::Refuse),
        _ => Err("blackhole or refuse"),
    }
}

/// `250us`, `50ms`, `2s`, `1m`.
pub(super) fn parse_duration(v: &str) -> Result<Duration, &'static str> {
    const EXPECTED: &str = "a whole number with a unit: us, ms, s or m (e.g. 50ms)";
    let split = v.find(|c: char| !c.is_ascii_digit()).ok_or(EXPECTED)?;
    let (digits, unit) = v.split_at(split);
    let n: u64 = digits.parse().map_err(|_| EXPECTED)?;
    match unit {
        "us" => Ok(Duration::from_micros(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs).ok_or(EXPECTED),
        _ => Err(EXPECTED),
    }
}

/// `4096`, `64k` (KiB), `2m` (MiB).
pub(super) fn parse_size(v: &str) -> Result<u64, &'static str> {
    const EXPECTED: &str = "a whole number of bytes, optionally with k or m (e.g. 4096, 64k)";
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let n: u64 = digits.parse().map_err(|_| EXPECTED)?;
    let scale: u64 = match unit {
        "" => 1,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        _ => return Err(EXPECTED),
    };
    n.checked_mul(scale).ok_or(EXPECTED)
}
