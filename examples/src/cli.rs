//! What the example programs share on the command line: the listen address flags, the demos'
//! flags, and the tracing set-up.

use std::collections::BTreeMap;
use std::error::Error;
use std::net::SocketAddr;
use std::path::PathBuf;

/// What a demo program (`demo`, `cluster_demo`) is asked: `--quick` (a shorter run) and
/// `--out DIR` (where its CSV and summary go; `None` when not given).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DemoArgs {
    /// `--quick` was given.
    pub quick: bool,
    /// `--out DIR`.
    pub out: Option<PathBuf>,
}

/// Reads a demo's flags from `args` (the program's arguments, without its name).
///
/// # Errors
/// The usage line for `program`, naming the argument that is not one of the flags.
pub fn demo_args(
    program: &str,
    args: impl IntoIterator<Item = String>,
) -> Result<DemoArgs, String> {
    let mut parsed = DemoArgs::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => parsed.quick = true,
            "--out" => parsed.out = args.next().map(PathBuf::from),
            other => {
                return Err(format!(
                    "unknown argument `{other}`; usage: {program} [--quick] [--out DIR]"
                ));
            }
        }
    }
    Ok(parsed)
}

/// A demo's errors by kind on one line: `timeout 3, not_sent 1`, or `none`.
pub fn errors_line(errors: &BTreeMap<String, u64>) -> String {
    if errors.is_empty() {
        return "none".to_owned();
    }
    errors
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The address to listen on: `default`, changed by `--port PORT` or replaced by
/// `--addr IP:PORT` from the program's arguments. An unknown flag or a bad value is an error
/// that says so.
pub fn listen_addr(default: &str) -> Result<SocketAddr, Box<dyn Error>> {
    parse_listen_addr(default, std::env::args().skip(1))
}

/// [`listen_addr`], and whether the switch `switch` (a flag without a value, such as
/// `--tls`) was given.
pub fn listen_addr_and(default: &str, switch: &str) -> Result<(SocketAddr, bool), Box<dyn Error>> {
    let mut on = false;
    let args = std::env::args().skip(1).filter(|a| {
        let is_switch = a == switch;
        on |= is_switch;
        !is_switch
    });
    let addr = parse_listen_addr(default, args.collect::<Vec<_>>())?;
    Ok((addr, on))
}

/// The address to listen on and the values of a program's own flags, in the order it
/// named them.
pub type Flags = (SocketAddr, Vec<Option<String>>);

/// [`listen_addr`], and the values of the program's own flags `names` (each `--name VALUE`),
/// in the order of `names`: `None` for a flag not given.
pub fn listen_addr_with(default: &str, names: &[&str]) -> Result<Flags, Box<dyn Error>> {
    parse_flags(default, names, std::env::args().skip(1))
}

fn parse_listen_addr(
    default: &str,
    args: impl IntoIterator<Item = String>,
) -> Result<SocketAddr, Box<dyn Error>> {
    parse_flags(default, &[], args).map(|(addr, _)| addr)
}

fn parse_flags(
    default: &str,
    names: &[&str],
    args: impl IntoIterator<Item = String>,
) -> Result<Flags, Box<dyn Error>> {
    let mut addr: SocketAddr = default.parse()?;
    let mut values = vec![None; names.len()];
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => addr.set_port(value.parse()?),
            "--addr" => addr = value.parse()?,
            other => match names.iter().position(|name| *name == other) {
                Some(at) => values[at] = Some(value),
                None => {
                    let known: Vec<&str> = ["--port", "--addr"]
                        .into_iter()
                        .chain(names.iter().copied())
                        .collect();
                    return Err(format!("unknown flag {other} (use {})", known.join(", ")).into());
                }
            },
        }
    }
    Ok((addr, values))
}

/// An error and its sources on one line (`a: b: c`), for a program's last words: beamline's
/// errors keep their causes in their sources, not in their own message.
pub fn report(error: &(dyn Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

/// Logs to stderr at `info`, or as `RUST_LOG` says.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
}

#[cfg(test)]
mod tests {
    use super::{BTreeMap, DemoArgs, PathBuf, demo_args, errors_line, parse_listen_addr};

    #[test]
    fn demo_flags_and_the_error_line() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(demo_args("demo", args(&[])), Ok(DemoArgs::default()));
        assert_eq!(
            demo_args("demo", args(&["--out", "x", "--quick"])),
            Ok(DemoArgs {
                quick: true,
                out: Some(PathBuf::from("x"))
            })
        );
        let refused = demo_args("cluster_demo", args(&["--fast"])).unwrap_err();
        assert!(refused.contains("`--fast`") && refused.contains("cluster_demo [--quick]"));
        let mut errors = BTreeMap::new();
        assert_eq!(errors_line(&errors), "none");
        errors.insert("timeout".to_owned(), 3);
        errors.insert("not_sent".to_owned(), 1);
        assert_eq!(errors_line(&errors), "not_sent 1, timeout 3");
    }

    fn parse(args: &[&str]) -> Result<String, String> {
        parse_listen_addr("127.0.0.1:6380", args.iter().map(|a| a.to_string()))
            .map(|a| a.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn flags_change_the_default_address() {
        assert_eq!(parse(&[]).unwrap(), "127.0.0.1:6380");
        assert_eq!(parse(&["--port", "7001"]).unwrap(), "127.0.0.1:7001");
        assert_eq!(parse(&["--addr", "[::1]:9"]).unwrap(), "[::1]:9");
    }

    #[test]
    fn a_report_names_every_cause() {
        let io = std::io::Error::other("port taken");
        let start = beamline::server::StartError::Bind {
            addr: beamline::server::ListenAddr::Unix("/tmp/x".into()),
            source: io,
        };
        assert_eq!(
            super::report(&start),
            "cannot listen on unix:/tmp/x: port taken"
        );
    }

    #[test]
    fn bad_arguments_are_errors_that_say_why() {
        assert_eq!(parse(&["--port"]).unwrap_err(), "--port needs a value");
        assert!(
            parse(&["--verbose", "1"])
                .unwrap_err()
                .contains("unknown flag --verbose")
        );
        assert!(parse(&["--port", "http"]).is_err());
    }

    #[test]
    fn a_program_s_own_flags_come_back_in_the_order_it_named_them() {
        let parse = |args: &[&str]| {
            super::parse_flags(
                "127.0.0.1:7443",
                &["--cert", "--key"],
                args.iter().map(|a| a.to_string()),
            )
            .map(|(addr, values)| (addr.to_string(), values))
            .map_err(|e| e.to_string())
        };
        assert_eq!(
            parse(&["--key", "k.pem", "--port", "8443", "--cert", "c.pem"]).unwrap(),
            (
                "127.0.0.1:8443".to_owned(),
                vec![Some("c.pem".to_owned()), Some("k.pem".to_owned())]
            )
        );
        assert_eq!(parse(&[]).unwrap().1, vec![None, None]);
        assert_eq!(
            parse(&["--ca", "x"]).unwrap_err(),
            "unknown flag --ca (use --port, --addr, --cert, --key)"
        );
    }
}
