use super::values::{parse_duration, parse_size};
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
