//! Command-line and stdin parsing, without I/O: clap (derive) reads the flags, and the fault
//! flags are then replayed in the order they were given, because order is meaning here (a
//! fault applies to the last `--direction` before it; `--jitter` and `--slice-delay` modify
//! the `--latency` and `--slice` of that direction).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

use beamline_chaos::{Action, Direction, Fault, FaultKind, PartitionMode};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgAction, ArgMatches, Args, CommandFactory, Parser};

use self::values::{
    Expected, addr_value, direction_value, duration_value, parse_addr, parse_direction,
    parse_partition_mode, partition_value, rate_value, seed_value, size_value, slice_value,
};

/// What `--help` shows after the generated option list.
const AFTER_HELP: &str = "\
Each fault applies to the direction named by the last --direction before it (both by
default); --jitter and --slice-delay modify the --latency and --slice of that direction.
Durations take a unit: us, ms, s or m (250us, 50ms, 2s). Sizes are bytes, or with k / m.

Once running, each line on stdin is a command (see `help` there), e.g.
    --direction down --latency 200ms     partition     heal     reset     stats";

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "beamline-chaos",
    about = "a fault-injecting TCP proxy for trying a server or client by hand",
    after_help = AFTER_HELP,
    disable_version_flag = true,
    // A flag given twice keeps its last value, as the hand-written parser did.
    args_override_self = true,
    // `--reset-after -1` is a bad size, not a missing one.
    allow_negative_numbers = true
)]
struct Cli {
    /// Where connections are forwarded, e.g. 127.0.0.1:6379 (required)
    #[arg(long, value_name = "ADDR", value_parser = addr_value)]
    upstream: Option<SocketAddr>,
    /// Where clients connect [default: 127.0.0.1:0, a free port, printed]
    #[arg(long, value_name = "ADDR", value_parser = addr_value)]
    listen: Option<SocketAddr>,
    /// Seed of the latency jitter, to replay a run [default: random, printed]
    #[arg(long, value_name = "N", value_parser = seed_value)]
    seed: Option<u64>,
    /// Start refusing new connections
    #[arg(long)]
    refuse: bool,
    /// Start partitioned; MODE is `blackhole` (the default) or `refuse`
    #[arg(
        long,
        value_name = "MODE",
        num_args = 0..=1,
        default_missing_value = "blackhole",
        value_parser = partition_value
    )]
    partition: Option<PartitionMode>,
    #[command(flatten)]
    faults: FaultArgs,
}

/// A stdin line of fault flags (the same flags as the command line's faults).
#[derive(Debug, Parser)]
#[command(
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true,
    allow_negative_numbers = true
)]
struct LineFlags {
    #[command(flatten)]
    faults: FaultArgs,
}

/// The fault flags. Every one may repeat; their order is read back from the matches.
#[derive(Debug, Args)]
#[command(next_help_heading = "Faults")]
struct FaultArgs {
    /// The direction of the faults after it: up (client->server), down (server->client) or both
    #[arg(long, value_name = "DIR", action = ArgAction::Append, value_parser = direction_value)]
    direction: Vec<Direction>,
    /// Delay every chunk by DUR, e.g. 50ms
    #[arg(long, value_name = "DUR", action = ArgAction::Append, value_parser = duration_value)]
    latency: Vec<Duration>,
    /// Add a random extra delay in [0, DUR] on top of the latency
    #[arg(long, value_name = "DUR", action = ArgAction::Append, value_parser = duration_value)]
    jitter: Vec<Duration>,
    /// At most RATE bytes per second; k and m suffixes are KiB and MiB
    #[arg(long, value_name = "RATE", action = ArgAction::Append, value_parser = rate_value)]
    bandwidth: Vec<NonZeroU64>,
    /// Write at most BYTES at once
    #[arg(long, value_name = "BYTES", action = ArgAction::Append, value_parser = slice_value)]
    slice: Vec<NonZeroUsize>,
    /// Pause DUR between slices (after --slice)
    #[arg(long, value_name = "DUR", action = ArgAction::Append, value_parser = duration_value)]
    slice_delay: Vec<Duration>,
    /// Forward nothing and keep the connection open
    #[arg(
        long,
        action = ArgAction::Append,
        num_args = 0,
        default_missing_value = "true",
        value_parser = clap::value_parser!(bool)
    )]
    blackhole: Vec<bool>,
    /// Reset (RST) the connection after BYTES forwarded; 0 = at once
    #[arg(long, value_name = "BYTES", action = ArgAction::Append, value_parser = size_value)]
    reset_after: Vec<u64>,
    /// Close (FIN) the connection after BYTES forwarded
    #[arg(long, value_name = "BYTES", action = ArgAction::Append, value_parser = size_value)]
    close_after: Vec<u64>,
}

/// The help text of the command line (clap's, from the definitions above).
pub(crate) fn usage() -> String {
    Cli::command().render_help().to_string()
}

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
    /// Anything else the argument parser refused, in its own words.
    Other(String),
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
            CliError::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for CliError {}

/// Parses the process arguments (without the program name).
pub(crate) fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<Command, CliError> {
    let argv = std::iter::once("beamline-chaos").chain(args.iter().map(AsRef::as_ref));
    let matches = match Cli::command().try_get_matches_from(argv) {
        Ok(matches) => matches,
        Err(e) if e.kind() == ErrorKind::DisplayHelp => return Ok(Command::Help),
        Err(e) => return Err(from_clap(&e)),
    };
    let cli =
        <Cli as clap::FromArgMatches>::from_arg_matches(&matches).map_err(|e| from_clap(&e))?;
    let faults = FaultFlags::replay(&matches)?;
    Ok(Command::Run(Config {
        listen: cli
            .listen
            .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
        upstream: cli.upstream.ok_or(CliError::MissingUpstream)?,
        seed: cli.seed,
        faults: faults.list,
        refuse: cli.refuse,
        partition: cli.partition,
    }))
}

/// Parses one stdin line.
pub(crate) fn parse_line(line: &str) -> Result<LineCommand, CliError> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some(first) = words.first() else {
        return Ok(LineCommand::Nothing);
    };
    if first.starts_with('-') {
        let matches = LineFlags::command()
            .try_get_matches_from(&words)
            .map_err(|e| from_clap(&e))?;
        let actions = FaultFlags::replay(&matches)?
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

/// Every flag's name, so that errors can name it as a `&'static str`.
const FLAGS: [&str; 14] = [
    "--upstream",
    "--listen",
    "--seed",
    "--refuse",
    "--partition",
    "--direction",
    "--latency",
    "--jitter",
    "--bandwidth",
    "--slice",
    "--slice-delay",
    "--blackhole",
    "--reset-after",
    "--close-after",
];

/// clap's error as ours, naming the flag and the value as the hand-written parser did.
fn from_clap(error: &clap::Error) -> CliError {
    let context = |kind| match error.get(kind) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    let arg = context(ContextKind::InvalidArg);
    let value = context(ContextKind::InvalidValue);
    // clap names an option with its value placeholder: `--latency <DUR>`.
    let name = arg.split([' ', '=']).next().unwrap_or_default();
    let flag = FLAGS.into_iter().find(|f| *f == name);
    match (error.kind(), flag) {
        (ErrorKind::UnknownArgument, _) => CliError::UnknownFlag(arg),
        (ErrorKind::InvalidValue, Some(flag)) if value.is_empty() => {
            CliError::MissingValue { flag }
        }
        (ErrorKind::InvalidValue | ErrorKind::ValueValidation, Some(flag)) => {
            let expected = std::error::Error::source(error)
                .and_then(|source| source.downcast_ref::<Expected>())
                .map_or("a valid value", |e| e.0);
            CliError::BadValue {
                flag,
                value,
                expected,
            }
        }
        _ => CliError::Other(error.to_string().trim_end().to_owned()),
    }
}

/// One fault flag, as given.
#[derive(Debug, Clone)]
enum FaultFlag {
    Direction(Direction),
    Latency(Duration),
    Jitter(Duration),
    Bandwidth(NonZeroU64),
    Slice(NonZeroUsize),
    SliceDelay(Duration),
    Blackhole,
    ResetAfter(u64),
    CloseAfter(u64),
}

/// The fault flags of `matches` in command-line order.
fn in_order(matches: &ArgMatches) -> Vec<FaultFlag> {
    fn take<T: Clone + Send + Sync + 'static>(
        matches: &ArgMatches,
        id: &str,
        flag: impl Fn(T) -> FaultFlag,
        out: &mut Vec<(usize, FaultFlag)>,
    ) {
        if let (Some(indices), Some(values)) = (matches.indices_of(id), matches.get_many::<T>(id)) {
            out.extend(indices.zip(values).map(|(i, v)| (i, flag(v.clone()))));
        }
    }
    let mut flags = Vec::new();
    take(matches, "direction", FaultFlag::Direction, &mut flags);
    take(matches, "latency", FaultFlag::Latency, &mut flags);
    take(matches, "jitter", FaultFlag::Jitter, &mut flags);
    take(matches, "bandwidth", FaultFlag::Bandwidth, &mut flags);
    take(matches, "slice", FaultFlag::Slice, &mut flags);
    take(matches, "slice_delay", FaultFlag::SliceDelay, &mut flags);
    take(
        matches,
        "blackhole",
        |_: bool| FaultFlag::Blackhole,
        &mut flags,
    );
    take(matches, "reset_after", FaultFlag::ResetAfter, &mut flags);
    take(matches, "close_after", FaultFlag::CloseAfter, &mut flags);
    flags.sort_by_key(|(i, _)| *i);
    flags.into_iter().map(|(_, flag)| flag).collect()
}

/// The fault flags seen so far, each under the direction in force when it appeared.
#[derive(Debug, Default)]
struct FaultFlags {
    direction: Option<Direction>,
    list: Vec<(Direction, Fault)>,
}

impl FaultFlags {
    /// Replays the fault flags of `matches` in the order they were given.
    fn replay(matches: &ArgMatches) -> Result<FaultFlags, CliError> {
        let mut faults = FaultFlags::default();
        for flag in in_order(matches) {
            faults.apply(flag)?;
        }
        Ok(faults)
    }

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

    fn apply(&mut self, flag: FaultFlag) -> Result<(), CliError> {
        match flag {
            FaultFlag::Direction(direction) => self.direction = Some(direction),
            FaultFlag::Latency(delay) => match self.existing(FaultKind::Latency) {
                Some(Fault::Latency { delay: d, .. }) => *d = delay,
                _ => self.push(Fault::latency(delay)),
            },
            FaultFlag::Jitter(jitter) => match self.existing(FaultKind::Latency) {
                Some(Fault::Latency { jitter: j, .. }) => *j = jitter,
                _ => self.push(Fault::Latency {
                    delay: Duration::ZERO,
                    jitter,
                }),
            },
            FaultFlag::Bandwidth(bytes_per_sec) => self.push(Fault::Bandwidth { bytes_per_sec }),
            FaultFlag::Slice(max_bytes) => self.push(Fault::Slice {
                max_bytes,
                delay: Duration::ZERO,
            }),
            FaultFlag::SliceDelay(pause) => match self.existing(FaultKind::Slice) {
                Some(Fault::Slice { delay, .. }) => *delay = pause,
                _ => {
                    return Err(CliError::NeedsBefore {
                        flag: "--slice-delay",
                        needs: "--slice",
                    });
                }
            },
            FaultFlag::Blackhole => self.push(Fault::Blackhole),
            FaultFlag::ResetAfter(bytes) => self.push(Fault::ResetAfter { bytes }),
            FaultFlag::CloseAfter(bytes) => self.push(Fault::CloseAfter { bytes }),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
mod values;
