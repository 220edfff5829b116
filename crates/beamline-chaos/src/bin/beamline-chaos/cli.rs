//! Command-line and stdin parsing, by hand and without I/O.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

use beamline_chaos::{Action, Direction, Fault, FaultKind, PartitionMode};

pub(crate) const USAGE: &str = "\
beamline-chaos: a fault-injecting TCP proxy for trying a server or client by hand

USAGE:
    beamline-chaos --upstream ADDR [--listen ADDR] [--seed N] [FAULTS...]

OPTIONS:
    --upstream ADDR      where connections are forwarded, e.g. 127.0.0.1:6379 (required)
    --listen ADDR        where clients connect (default 127.0.0.1:0: a free port, printed)
    --seed N             seed of the latency jitter, to replay a run (default: random, printed)
    --refuse             start refusing new connections
    --partition [MODE]   start partitioned; MODE is `blackhole` (default) or `refuse`
    -h, --help           print this help

FAULTS (each applies to the direction named by the last --direction before it):
    --direction DIR      up (client->server), down (server->client) or both (the default)
    --latency DUR        delay every chunk by DUR, e.g. 50ms
    --jitter DUR         add a random extra delay in [0, DUR] on top of the latency
    --bandwidth RATE     at most RATE bytes per second; k and m suffixes are KiB and MiB
    --slice BYTES        write at most BYTES at once
    --slice-delay DUR    pause DUR between slices (after --slice)
    --blackhole          forward nothing and keep the connection open
    --reset-after BYTES  reset (RST) the connection after BYTES forwarded; 0 = at once
    --close-after BYTES  close (FIN) the connection after BYTES forwarded

Durations take a unit: us, ms, s or m (250us, 50ms, 2s). Sizes are bytes, or with k / m.

Once running, each line on stdin is a command (see `help` there), e.g.
    --direction down --latency 200ms     partition     heal     reset     stats
";

pub(crate) const COMMANDS: &str = "\
commands (one per line):
    --FAULT ...          apply faults, with the flags of --help (e.g. --latency 100ms)
    clear [DIR]          remove every fault, or every fault in DIR (up, down, both)
    partition [refuse]   partition; new connections held (default) or refused
    heal                 end the partition
    refuse | accept      refuse new connections, or accept them again
    reset                reset every live connection
    upstream ADDR        forward new connections to ADDR
    stats                print the counters
    quit                 stop the proxy and exit
";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Help,
    Run(Config),
}

/// A proxy to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    pub(crate) listen: SocketAddr,
    pub(crate) upstream: SocketAddr,
    pub(crate) seed: Option<u64>,
    pub(crate) faults: Vec<(Direction, Fault)>,
    pub(crate) refuse: bool,
    pub(crate) partition: Option<PartitionMode>,
}

/// What a stdin line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LineCommand {
    Perform(Vec<Action>),
    Stats,
    Help,
    Quit,
    Nothing,
}

/// A command line or stdin line that cannot be obeyed, naming the flag at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CliError {
    UnknownFlag(String),
    UnknownCommand(String),
    MissingValue {
        flag: &'static str,
    },
    BadValue {
        flag: &'static str,
        value: String,
        expected: &'static str,
    },
    /// A flag that modifies an earlier one came without it.
    NeedsBefore {
        flag: &'static str,
        needs: &'static str,
    },
    MissingUpstream,
    UnexpectedArgument {
        after: &'static str,
        value: String,
    },
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::UnknownFlag(flag) => write!(f, "unknown option `{flag}`"),
            CliError::UnknownCommand(word) => write!(f, "unknown command `{word}`"),
            CliError::MissingValue { flag } => write!(f, "`{flag}` needs a value"),
            CliError::BadValue {
                flag,
                value,
                expected,
            } => write!(f, "`{flag} {value}`: expected {expected}"),
            CliError::NeedsBefore { flag, needs } => {
                write!(
                    f,
                    "`{flag}` needs `{needs}` before it, for the same direction"
                )
            }
            CliError::MissingUpstream => write!(f, "`--upstream ADDR` is required"),
            CliError::UnexpectedArgument { after, value } => {
                write!(f, "unexpected `{value}` after `{after}`")
            }
        }
    }
}

impl std::error::Error for CliError {}

/// Parses the process arguments (without the program name).
pub(crate) fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<Command, CliError> {
    let mut tokens = Tokens::new(args);
    let mut listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut upstream = None;
    let mut seed = None;
    let mut refuse = false;
    let mut partition = None;
    let mut faults = FaultFlags::default();
    while let Some(token) = tokens.next() {
        match token {
            "-h" | "--help" => return Ok(Command::Help),
            "--listen" => listen = tokens.value("--listen", parse_addr)?,
            "--upstream" => upstream = Some(tokens.value("--upstream", parse_addr)?),
            "--seed" => seed = Some(tokens.value("--seed", parse_seed)?),
            "--refuse" => refuse = true,
            "--partition" => {
                partition = Some(match tokens.peek() {
                    Some("blackhole") | Some("refuse") => {
                        tokens.value("--partition", parse_partition_mode)?
                    }
                    _ => PartitionMode::Blackhole,
                })
            }
            flag => faults.parse(flag, &mut tokens)?,
        }
    }
    Ok(Command::Run(Config {
        listen,
        upstream: upstream.ok_or(CliError::MissingUpstream)?,
        seed,
        faults: faults.list,
        refuse,
        partition,
    }))
}

/// Parses one stdin line.
pub(crate) fn parse_line(line: &str) -> Result<LineCommand, CliError> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some(first) = words.first() else {
        return Ok(LineCommand::Nothing);
    };
    if first.starts_with('-') {
        let mut tokens = Tokens::new(&words);
        let mut faults = FaultFlags::default();
        while let Some(flag) = tokens.next() {
            faults.parse(flag, &mut tokens)?;
        }
        let actions = faults
            .list
            .into_iter()
            .map(|(direction, fault)| Action::Apply { direction, fault })
            .collect();
        return Ok(LineCommand::Perform(actions));
    }
    let rest = &words[1..];
    let command = match (*first, rest) {
        ("clear", []) => LineCommand::Perform(vec![Action::ClearAll]),
        ("clear", [dir]) => {
            let direction = parsed("clear", dir, parse_direction)?;
            let actions = ALL_KINDS
                .iter()
                .map(|&kind| Action::Clear { direction, kind })
                .collect();
            LineCommand::Perform(actions)
        }
        ("partition", []) => {
            LineCommand::Perform(vec![Action::Partition(PartitionMode::Blackhole)])
        }
        ("partition", [mode]) => {
            let mode = parsed("partition", mode, parse_partition_mode)?;
            LineCommand::Perform(vec![Action::Partition(mode)])
        }
        ("heal", []) => LineCommand::Perform(vec![Action::Heal]),
        ("refuse", []) => LineCommand::Perform(vec![Action::RefuseNew(true)]),
        ("accept", []) => LineCommand::Perform(vec![Action::RefuseNew(false)]),
        ("reset", []) => LineCommand::Perform(vec![Action::ResetAll]),
        ("upstream", [addr]) => {
            let addr = parsed("upstream", addr, parse_addr)?;
            LineCommand::Perform(vec![Action::SetUpstream(addr)])
        }
        ("upstream", []) => return Err(CliError::MissingValue { flag: "upstream" }),
        ("stats", []) => LineCommand::Stats,
        ("help", []) => LineCommand::Help,
        ("quit" | "exit", []) => LineCommand::Quit,
        (
            word @ ("clear" | "partition" | "heal" | "refuse" | "accept" | "reset" | "upstream"
            | "stats" | "help" | "quit" | "exit"),
            [.., extra],
        ) => {
            return Err(CliError::UnexpectedArgument {
                after: static_word(word),
                value: (*extra).to_owned(),
            });
        }
        (word, _) => return Err(CliError::UnknownCommand(word.to_owned())),
    };
    Ok(command)
}

/// `value` (given to `flag`) parsed by `parse`, which names what it expected on failure.
fn parsed<T>(
    flag: &'static str,
    value: &str,
    parse: impl FnOnce(&str) -> Result<T, &'static str>,
) -> Result<T, CliError> {
    parse(value).map_err(|expected| CliError::BadValue {
        flag,
        value: value.to_owned(),
        expected,
    })
}

/// The command words as `'static` names for errors.
fn static_word(word: &str) -> &'static str {
    [
        "clear",
        "partition",
        "heal",
        "refuse",
        "accept",
        "reset",
        "upstream",
        "stats",
        "help",
        "quit",
        "exit",
    ]
    .into_iter()
    .find(|w| *w == word)
    .unwrap_or("command")
}

const ALL_KINDS: [FaultKind; 6] = [
    FaultKind::Latency,
    FaultKind::Bandwidth,
    FaultKind::Slice,
    FaultKind::Blackhole,
    FaultKind::ResetAfter,
    FaultKind::CloseAfter,
];

/// A cursor over the words of a command line.
struct Tokens<'a, S> {
    words: &'a [S],
    at: usize,
}

impl<'a, S: AsRef<str>> Tokens<'a, S> {
    fn new(words: &'a [S]) -> Self {
        Tokens { words, at: 0 }
    }

    fn next(&mut self) -> Option<&'a str> {
        let word = self.words.get(self.at)?;
        self.at += 1;
        Some(word.as_ref())
    }

    fn peek(&self) -> Option<&'a str> {
        self.words.get(self.at).map(AsRef::as_ref)
    }

    /// The value after `flag`, parsed by `parse` (which names what it expected on failure).
    fn value<T>(
        &mut self,
        flag: &'static str,
        parse: impl FnOnce(&str) -> Result<T, &'static str>,
    ) -> Result<T, CliError> {
        let value = self
            .next()
            .filter(|v| !v.starts_with("--"))
            .ok_or(CliError::MissingValue { flag })?;
        parsed(flag, value, parse)
    }
}

/// The fault flags seen so far, each under the direction in force when it appeared.
#[derive(Debug, Default)]
struct FaultFlags {
    direction: Option<Direction>,
    list: Vec<(Direction, Fault)>,
}

impl FaultFlags {
    fn direction(&self) -> Direction {
        self.direction.unwrap_or(Direction::Both)
    }

    /// The fault of `kind` already given for the current direction.
    fn existing(&mut self, kind: FaultKind) -> Option<&mut Fault> {
        let direction = self.direction();
        self.list
            .iter_mut()
            .rev()
            .find(|(d, f)| *d == direction && f.kind() == kind)
            .map(|(_, f)| f)
    }

    fn push(&mut self, fault: Fault) {
        let direction = self.direction();
        self.list.push((direction, fault));
    }

    fn parse<S: AsRef<str>>(
        &mut self,
        flag: &str,
        tokens: &mut Tokens<'_, S>,
    ) -> Result<(), CliError> {
        match flag {
            "--direction" => self.direction = Some(tokens.value("--direction", parse_direction)?),
            "--latency" => {
                let delay = tokens.value("--latency", parse_duration)?;
                match self.existing(FaultKind::Latency) {
                    Some(Fault::Latency { delay: d, .. }) => *d = delay,
                    _ => self.push(Fault::latency(delay)),
                }
            }
            "--jitter" => {
                let jitter = tokens.value("--jitter", parse_duration)?;
                match self.existing(FaultKind::Latency) {
                    Some(Fault::Latency { jitter: j, .. }) => *j = jitter,
                    _ => self.push(Fault::Latency {
                        delay: Duration::ZERO,
                        jitter,
                    }),
                }
            }
            "--bandwidth" => {
                let bytes_per_sec = tokens.value("--bandwidth", |v| {
                    NonZeroU64::new(parse_size(v)?).ok_or("a rate above 0")
                })?;
                self.push(Fault::Bandwidth { bytes_per_sec });
            }
            "--slice" => {
                let max_bytes = tokens.value("--slice", |v| {
                    let n = usize::try_from(parse_size(v)?).map_err(|_| "a smaller size")?;
                    NonZeroUsize::new(n).ok_or("a size above 0")
                })?;
                self.push(Fault::Slice {
                    max_bytes,
                    delay: Duration::ZERO,
                });
            }
            "--slice-delay" => {
                let pause = tokens.value("--slice-delay", parse_duration)?;
                match self.existing(FaultKind::Slice) {
                    Some(Fault::Slice { delay, .. }) => *delay = pause,
                    _ => {
                        return Err(CliError::NeedsBefore {
                            flag: "--slice-delay",
                            needs: "--slice",
                        });
                    }
                }
            }
            "--blackhole" => self.push(Fault::Blackhole),
            "--reset-after" => {
                let bytes = tokens.value("--reset-after", parse_size)?;
                self.push(Fault::ResetAfter { bytes });
            }
            "--close-after" => {
                let bytes = tokens.value("--close-after", parse_size)?;
                self.push(Fault::CloseAfter { bytes });
            }
            other => return Err(CliError::UnknownFlag(other.to_owned())),
        }
        Ok(())
    }
}

fn parse_addr(v: &str) -> Result<SocketAddr, &'static str> {
    v.parse()
        .map_err(|_| "an IP:port address such as 127.0.0.1:6379")
}

fn parse_seed(v: &str) -> Result<u64, &'static str> {
    v.parse().map_err(|_| "an unsigned 64-bit integer")
}

fn parse_direction(v: &str) -> Result<Direction, &'static str> {
    match v {
        "up" | "upstream" => Ok(Direction::Upstream),
        "down" | "downstream" => Ok(Direction::Downstream),
        "both" => Ok(Direction::Both),
        _ => Err("up, down or both"),
    }
}

fn parse_partition_mode(v: &str) -> Result<PartitionMode, &'static str> {
    match v {
        "blackhole" => Ok(PartitionMode::Blackhole),
        "refuse" => Ok(PartitionMode::Refuse),
        _ => Err("blackhole or refuse"),
    }
}

/// `250us`, `50ms`, `2s`, `1m`.
fn parse_duration(v: &str) -> Result<Duration, &'static str> {
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
fn parse_size(v: &str) -> Result<u64, &'static str> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn run(args: &[&str]) -> Config {
        match parse_args(args).unwrap() {
            Command::Run(config) => config,
            Command::Help => panic!("expected a run"),
        }
    }

    #[test]
    fn the_issue_example_parses() {
        let c = run(&[
            "--listen",
            "127.0.0.1:7000",
            "--upstream",
            "127.0.0.1:6379",
            "--latency",
            "50ms",
            "--reset-after",
            "4096",
        ]);
        assert_eq!(c.listen, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(c.upstream, "127.0.0.1:6379".parse().unwrap());
        assert_eq!(
            c.faults,
            [
                (Direction::Both, Fault::latency(ms(50))),
                (Direction::Both, Fault::ResetAfter { bytes: 4096 }),
            ]
        );
        assert_eq!((c.seed, c.refuse, c.partition), (None, false, None));
    }

    #[test]
    fn defaults_and_help() {
        let c = run(&["--upstream", "127.0.0.1:1"]);
        assert_eq!(c.listen, "127.0.0.1:0".parse().unwrap());
        assert!(c.faults.is_empty());
        assert_eq!(parse_args(&["--help"]).unwrap(), Command::Help);
        assert_eq!(parse_args(&["--upstream", "x", "-h"]).unwrap_err(), {
            CliError::BadValue {
                flag: "--upstream",
                value: "x".into(),
                expected: "an IP:port address such as 127.0.0.1:6379",
            }
        });
    }

    #[test]
    fn directions_apply_to_the_flags_after_them_and_modifiers_merge() {
        let c = run(&[
            "--upstream",
            "127.0.0.1:1",
            "--jitter",
            "5ms",
            "--latency",
            "20ms",
            "--direction",
            "down",
            "--slice",
            "2k",
            "--slice-delay",
            "250us",
            "--bandwidth",
            "1m",
            "--direction",
            "up",
            "--blackhole",
            "--close-after",
            "10",
            "--seed",
            "42",
            "--refuse",
            "--partition",
            "refuse",
        ]);
        assert_eq!(
            c.faults,
            [
                (
                    Direction::Both,
                    Fault::Latency {
                        delay: ms(20),
                        jitter: ms(5)
                    }
                ),
                (
                    Direction::Downstream,
                    Fault::Slice {
                        max_bytes: NonZeroUsize::new(2048).unwrap(),
                        delay: Duration::from_micros(250)
                    }
                ),
                (
                    Direction::Downstream,
                    Fault::Bandwidth {
                        bytes_per_sec: NonZeroU64::new(1 << 20).unwrap()
                    }
                ),
                (Direction::Upstream, Fault::Blackhole),
                (Direction::Upstream, Fault::CloseAfter { bytes: 10 }),
            ]
        );
        assert_eq!(c.seed, Some(42));
        assert!(c.refuse);
        assert_eq!(c.partition, Some(PartitionMode::Refuse));
        let c = run(&["--partition", "--upstream", "127.0.0.1:1"]);
        assert_eq!(c.partition, Some(PartitionMode::Blackhole));
    }

    #[test]
    fn bad_input_is_named() {
        let err = |args: &[&str]| parse_args(args).unwrap_err();
        assert_eq!(err(&[]), CliError::MissingUpstream);
        assert_eq!(err(&["--bogus"]), CliError::UnknownFlag("--bogus".into()));
        assert_eq!(
            err(&["--upstream"]),
            CliError::MissingValue { flag: "--upstream" }
        );
        assert_eq!(
            err(&["--latency", "--upstream", "127.0.0.1:1"]),
            CliError::MissingValue { flag: "--latency" }
        );
        let bad = |args: &[&str], flag: &'static str, value: &str| match err(args) {
            CliError::BadValue {
                flag: f, value: v, ..
            } => assert_eq!((f, v.as_str()), (flag, value)),
            other => panic!("{args:?} gave {other:?}"),
        };
        bad(&["--latency", "50"], "--latency", "50");
        bad(&["--latency", "50 ms"], "--latency", "50 ms");
        bad(&["--jitter", "1h"], "--jitter", "1h");
        bad(&["--bandwidth", "0"], "--bandwidth", "0");
        bad(&["--slice", "0"], "--slice", "0");
        bad(&["--reset-after", "-1"], "--reset-after", "-1");
        bad(&["--close-after", "12q"], "--close-after", "12q");
        bad(&["--direction", "sideways"], "--direction", "sideways");
        bad(&["--seed", "x"], "--seed", "x");
        bad(&["--listen", "localhost:80"], "--listen", "localhost:80");
        bad(
            &["--bandwidth", "99999999999999999999"],
            "--bandwidth",
            "99999999999999999999",
        );
        assert_eq!(
            err(&["--slice-delay", "1ms"]),
            CliError::NeedsBefore {
                flag: "--slice-delay",
                needs: "--slice"
            }
        );
        // A --slice for another direction does not count.
        assert!(matches!(
            err(&["--slice", "9", "--direction", "up", "--slice-delay", "1ms"]),
            CliError::NeedsBefore { .. }
        ));
        // Every error reads as a sentence naming the flag.
        assert!(err(&["--latency", "5"]).to_string().contains("--latency 5"));
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("3m"), Ok(Duration::from_secs(180)));
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("2M"), Ok(2 << 20));
        assert!(parse_size("k").is_err());
        assert!(parse_size("1g").is_err());
    }

    #[test]
    fn stdin_lines() {
        let line = |s: &str| parse_line(s).unwrap();
        assert_eq!(line("  "), LineCommand::Nothing);
        assert_eq!(
            line("--direction down --latency 200ms"),
            LineCommand::Perform(vec![Action::Apply {
                direction: Direction::Downstream,
                fault: Fault::latency(ms(200))
            }])
        );
        assert_eq!(
            line("partition"),
            LineCommand::Perform(vec![Action::Partition(PartitionMode::Blackhole)])
        );
        assert_eq!(
            line("partition refuse"),
            LineCommand::Perform(vec![Action::Partition(PartitionMode::Refuse)])
        );
        assert_eq!(line("heal"), LineCommand::Perform(vec![Action::Heal]));
        assert_eq!(
            line("refuse"),
            LineCommand::Perform(vec![Action::RefuseNew(true)])
        );
        assert_eq!(
            line("accept"),
            LineCommand::Perform(vec![Action::RefuseNew(false)])
        );
        assert_eq!(line("reset"), LineCommand::Perform(vec![Action::ResetAll]));
        assert_eq!(line("clear"), LineCommand::Perform(vec![Action::ClearAll]));
        match line("clear up") {
            LineCommand::Perform(actions) => {
                assert_eq!(actions.len(), ALL_KINDS.len());
                assert!(actions.iter().all(|a| matches!(
                    a,
                    Action::Clear {
                        direction: Direction::Upstream,
                        ..
                    }
                )));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            line("upstream 127.0.0.1:7"),
            LineCommand::Perform(vec![Action::SetUpstream("127.0.0.1:7".parse().unwrap())])
        );
        assert_eq!(line("stats"), LineCommand::Stats);
        assert_eq!(line("help"), LineCommand::Help);
        assert_eq!(line("quit"), LineCommand::Quit);

        let err = |s: &str| parse_line(s).unwrap_err();
        assert_eq!(err("explode"), CliError::UnknownCommand("explode".into()));
        assert_eq!(
            err("heal now"),
            CliError::UnexpectedArgument {
                after: "heal",
                value: "now".into()
            }
        );
        assert_eq!(err("upstream"), CliError::MissingValue { flag: "upstream" });
        assert!(matches!(
            err("upstream nowhere"),
            CliError::BadValue {
                flag: "upstream",
                ..
            }
        ));
        assert!(matches!(
            err("clear left"),
            CliError::BadValue { flag: "clear", .. }
        ));
        assert!(matches!(
            err("partition maybe"),
            CliError::BadValue {
                flag: "partition",
                ..
            }
        ));
        assert_eq!(
            err("--upstream 127.0.0.1:1"),
            CliError::UnknownFlag("--upstream".into())
        );
    }
}
