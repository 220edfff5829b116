//! Command-line parsing. Hand-written so xtask builds in seconds with one dependency.

use std::fmt;

/// What the user asked xtask to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    /// `cargo xtask test [--quick | --only <filter>]`
    Test(TestArgs),
    /// `cargo xtask bench [--report-only] [<filter>]`
    Bench(BenchArgs),
    /// `cargo xtask demo [cluster] [--quick]`
    Demo(DemoArgs),
    /// `cargo xtask help`, `-h`, `--help`
    Help,
}

/// Options of `cargo xtask test`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TestArgs {
    /// Skip clippy and the integration matrix (the inner development loop).
    pub(crate) quick: bool,
    /// Run only the matrix cells whose name contains this text (no fmt, clippy or unit tests).
    pub(crate) only: Option<String>,
}

/// Options of `cargo xtask bench`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct BenchArgs {
    /// Passed to criterion: run only benchmarks whose id matches.
    pub(crate) filter: Option<String>,
    /// Do not run anything; rewrite BENCHMARKS.md from the estimates already saved.
    pub(crate) report_only: bool,
}

/// Options of `cargo xtask demo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DemoArgs {
    /// Which demo.
    pub(crate) kind: DemoKind,
    /// A shorter run (shorter phases), for CI and impatient people.
    pub(crate) quick: bool,
}

/// The demos `cargo xtask demo` can run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum DemoKind {
    /// `demo`: the kv server restarted under 1,000 clients, with and without jitter.
    #[default]
    Reconnect,
    /// `demo cluster`: a real Redis Cluster losing a primary to kill -9 under 64 callers.
    Cluster,
}

/// Why the command line was not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParseError {
    NoCommand,
    UnknownCommand(String),
    UnknownFlag {
        command: &'static str,
        flag: String,
    },
    MissingValue {
        flag: &'static str,
    },
    Conflict {
        first: &'static str,
        second: &'static str,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::NoCommand => write!(f, "no command given"),
            ParseError::UnknownCommand(c) => write!(f, "unknown command `{c}`"),
            ParseError::UnknownFlag { command, flag } => {
                write!(f, "`cargo xtask {command}` does not take `{flag}`")
            }
            ParseError::MissingValue { flag } => write!(f, "`{flag}` needs a value"),
            ParseError::Conflict { first, second } => {
                write!(f, "`{first}` and `{second}` cannot be used together")
            }
        }
    }
}

pub(crate) const HELP: &str = "\
cargo xtask <command> [options]

commands:
  test [--quick | --only <filter>]
        Check prerequisites (installing redis-server, redis-tools and openssl when
        missing and possible), then run in order: cargo fmt --check, clippy -D warnings,
        the workspace tests (unit, integration, doc), `cargo check -p beamline` with
        each facade feature alone, none and all, and the integration matrix.
        Prints one line per step and ends with `N passed, N failed`.
          --quick          skip clippy, the facade feature checks and the matrix
          --only <filter>  run only the matrix cells whose name contains <filter>
  bench [--report-only] [<filter>]
        Run the criterion benches in benches/ (and the external comparisons), then
        write the ratio tables, with intervals and verdicts, into BENCHMARKS.md. With a
        <filter>, only the groups it ran are rewritten; every other row keeps its stamp.
          --report-only    only rewrite BENCHMARKS.md from the results saved in target/
  demo [--quick]
        Run the demo: a supervised key-value server, many reconnecting clients, a
        server restart midway, live progress and a plot of the reconnect herd.
  demo cluster [--quick]
        Run the cluster demo: a real Redis Cluster (3 primaries, 3 replicas; needs
        redis-server and redis-cli), 64 callers through beamline-redis's ClusterClient,
        kill -9 of a primary midway, live per-node throughput, a plot with the kill
        and the takeover marked (about 20 s; --quick about 8 s).
  help  Print this text.
";

/// Parses the arguments after `cargo xtask`.
pub(crate) fn parse<I, S>(args: I) -> Result<Command, ParseError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut args = args.into_iter().map(Into::into);
    let Some(command) = args.next() else {
        return Err(ParseError::NoCommand);
    };
    match command.as_str() {
        "test" => parse_test(args).map(Command::Test),
        "bench" => parse_bench(args).map(Command::Bench),
        "demo" => parse_demo(args).map(Command::Demo),
        "help" | "-h" | "--help" => Ok(Command::Help),
        _ => Err(ParseError::UnknownCommand(command)),
    }
}

fn parse_test(mut args: impl Iterator<Item = String>) -> Result<TestArgs, ParseError> {
    let mut out = TestArgs::default();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => out.quick = true,
            "--only" => {
                let value = args
                    .next()
                    .ok_or(ParseError::MissingValue { flag: "--only" })?;
                out.only = Some(value);
            }
            other => match other.strip_prefix("--only=") {
                Some(value) => out.only = Some(value.to_owned()),
                None => {
                    return Err(ParseError::UnknownFlag {
                        command: "test",
                        flag: arg,
                    });
                }
            },
        }
    }
    if out.quick && out.only.is_some() {
        // --quick skips the matrix and --only runs nothing but the matrix: together they
        // would run nothing, which is never what was meant.
        return Err(ParseError::Conflict {
            first: "--quick",
            second: "--only",
        });
    }
    Ok(out)
}

fn parse_bench(args: impl Iterator<Item = String>) -> Result<BenchArgs, ParseError> {
    let mut out = BenchArgs::default();
    for arg in args {
        match arg.as_str() {
            "--report-only" => out.report_only = true,
            flag if flag.starts_with('-') => {
                return Err(ParseError::UnknownFlag {
                    command: "bench",
                    flag: arg,
                });
            }
            _ if out.filter.is_none() => out.filter = Some(arg),
            _ => {
                return Err(ParseError::UnknownFlag {
                    command: "bench",
                    flag: arg,
                });
            }
        }
    }
    Ok(out)
}

fn parse_demo(args: impl Iterator<Item = String>) -> Result<DemoArgs, ParseError> {
    let mut out = DemoArgs::default();
    for (i, arg) in args.enumerate() {
        match arg.as_str() {
            "--quick" => out.quick = true,
            // The demo's name comes first: `demo cluster --quick`.
            "cluster" if i == 0 => out.kind = DemoKind::Cluster,
            _ => {
                return Err(ParseError::UnknownFlag {
                    command: "demo",
                    flag: arg,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_defaults_to_the_full_run() {
        assert_eq!(parse(["test"]), Ok(Command::Test(TestArgs::default())));
    }

    #[test]
    fn test_quick() {
        let want = TestArgs {
            quick: true,
            only: None,
        };
        assert_eq!(parse(["test", "--quick"]), Ok(Command::Test(want)));
    }

    #[test]
    fn test_only_takes_a_value_in_either_spelling() {
        let want = Command::Test(TestArgs {
            quick: false,
            only: Some("tls".into()),
        });
        assert_eq!(parse(["test", "--only", "tls"]), Ok(want.clone()));
        assert_eq!(parse(["test", "--only=tls"]), Ok(want));
    }

    #[test]
    fn test_only_without_value_is_an_error() {
        assert_eq!(
            parse(["test", "--only"]),
            Err(ParseError::MissingValue { flag: "--only" })
        );
    }

    #[test]
    fn quick_and_only_conflict() {
        assert_eq!(
            parse(["test", "--quick", "--only", "tcp"]),
            Err(ParseError::Conflict {
                first: "--quick",
                second: "--only"
            })
        );
    }

    #[test]
    fn unknown_flags_and_commands_are_named() {
        assert_eq!(
            parse(["test", "--fast"]),
            Err(ParseError::UnknownFlag {
                command: "test",
                flag: "--fast".into()
            })
        );
        assert_eq!(
            parse(["deploy"]),
            Err(ParseError::UnknownCommand("deploy".into()))
        );
        assert_eq!(parse(Vec::<String>::new()), Err(ParseError::NoCommand));
        let msg = parse(["test", "--fast"]).unwrap_err().to_string();
        assert!(msg.contains("--fast") && msg.contains("test"), "{msg}");
    }

    #[test]
    fn bench_filter_and_report_only() {
        assert_eq!(
            parse(["bench", "--report-only", "mux"]),
            Ok(Command::Bench(BenchArgs {
                filter: Some("mux".into()),
                report_only: true
            }))
        );
        assert!(parse(["bench", "a", "b"]).is_err());
        assert!(parse(["bench", "--nope"]).is_err());
    }

    #[test]
    fn demo_and_help() {
        assert_eq!(
            parse(["demo", "--quick"]),
            Ok(Command::Demo(DemoArgs {
                kind: DemoKind::Reconnect,
                quick: true
            }))
        );
        assert_eq!(parse(["demo"]), Ok(Command::Demo(DemoArgs::default())));
        assert_eq!(parse(["--help"]), Ok(Command::Help));
        assert_eq!(parse(["help"]), Ok(Command::Help));
    }

    #[test]
    fn demo_cluster_with_and_without_quick() {
        let cluster = |quick| {
            Ok(Command::Demo(DemoArgs {
                kind: DemoKind::Cluster,
                quick,
            }))
        };
        assert_eq!(parse(["demo", "cluster"]), cluster(false));
        assert_eq!(parse(["demo", "cluster", "--quick"]), cluster(true));
    }

    #[test]
    fn demo_names_come_first_and_only_once() {
        let unknown = |flag: &str| {
            Err(ParseError::UnknownFlag {
                command: "demo",
                flag: flag.into(),
            })
        };
        assert_eq!(parse(["demo", "--quick", "cluster"]), unknown("cluster"));
        assert_eq!(parse(["demo", "cluster", "cluster"]), unknown("cluster"));
        assert_eq!(parse(["demo", "herd"]), unknown("herd"));
        assert!(HELP.contains("demo cluster [--quick]"));
    }
}
