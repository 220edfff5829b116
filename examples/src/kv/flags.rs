//! The `kv` program's command line: where to listen, and how it runs in a fleet (behind a
//! balancer that sends PROXY headers, upgraded in place by a successor process).

use std::error::Error;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;

use beamline::server::Cidr;

use super::{DEFAULT_ADDR, KvConfig};

/// What the flags asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvFlags {
    /// `--addr IP:PORT` or `--port PORT` (default [`DEFAULT_ADDR`]).
    pub addr: SocketAddr,
    /// `--proxy-protocol`: every connection starts with a PROXY header.
    pub proxy_protocol: bool,
    /// `--proxy-from CIDR` (repeatable): the balancers trusted to send one.
    pub proxy_from: Vec<Cidr>,
    /// `--max-connections-per-ip N`.
    pub max_connections_per_ip: Option<u32>,
    /// `--upgrade-from PATH`: take the listening sockets of the kv process waiting at PATH.
    pub upgrade_from: Option<PathBuf>,
    /// `--upgrade-socket PATH`: wait at PATH for a successor to hand the sockets to.
    pub upgrade_socket: Option<PathBuf>,
    /// `--threads N`: how many threads serve connections. `None` leaves it to
    /// [`threads`](Self::threads): `TOKIO_WORKER_THREADS` if set, else the cores this process
    /// may run on.
    pub threads: Option<NonZeroUsize>,
}

/// The usage line an error ends with.
pub const USAGE: &str = "usage: kv [--port PORT | --addr IP:PORT] [--proxy-protocol] \
[--proxy-from CIDR]... [--max-connections-per-ip N] [--upgrade-from PATH] [--upgrade-socket PATH] \
[--threads N]";

/// The flags that take a value.
const WITH_VALUE: [&str; 7] = [
    "--port",
    "--addr",
    "--proxy-from",
    "--max-connections-per-ip",
    "--upgrade-from",
    "--upgrade-socket",
    "--threads",
];

impl KvFlags {
    /// The program's own arguments.
    ///
    /// # Errors
    /// An unknown flag, a missing or bad value: a message that says which, and the usage.
    pub fn from_args() -> Result<Self, Box<dyn Error>> {
        Self::parse(std::env::args().skip(1))
    }

    /// Parses `args` (without the program's name).
    ///
    /// # Errors
    /// As [`from_args`](Self::from_args).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, Box<dyn Error>> {
        let mut flags = Self {
            addr: DEFAULT_ADDR.parse()?,
            proxy_protocol: false,
            proxy_from: Vec::new(),
            max_connections_per_ip: None,
            upgrade_from: None,
            upgrade_socket: None,
            threads: None,
        };
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            if flag == "--proxy-protocol" {
                flags.proxy_protocol = true;
                continue;
            }
            if !WITH_VALUE.contains(&flag.as_str()) {
                return Err(format!("unknown flag {flag}\n{USAGE}").into());
            }
            let value = args
                .next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
            let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}\n{USAGE}");
            match flag.as_str() {
                "--port" => flags.addr.set_port(value.parse().map_err(|e| bad(&e))?),
                "--addr" => flags.addr = value.parse().map_err(|e| bad(&e))?,
                "--proxy-from" => flags.proxy_from.push(value.parse().map_err(|e| bad(&e))?),
                "--max-connections-per-ip" => {
                    flags.max_connections_per_ip = Some(value.parse().map_err(|e| bad(&e))?);
                }
                "--upgrade-from" => flags.upgrade_from = Some(value.into()),
                "--threads" => flags.threads = Some(value.parse().map_err(|e| bad(&e))?),
                _ => flags.upgrade_socket = Some(value.into()),
            }
        }
        Ok(flags)
    }

    /// How many threads serve connections: `--threads`, else a positive
    /// `TOKIO_WORKER_THREADS` (tokio's own knob), else the cores this process may run on (its
    /// CPU affinity and cgroup quota, as [`std::thread::available_parallelism`] reads them).
    ///
    /// One thread means one event loop, as redis-server runs: kv then builds tokio's
    /// current-thread runtime, which serves every connection on the main thread without the
    /// work-stealing scheduler's bookkeeping. More means tokio's multi-thread runtime with that
    /// many workers.
    pub fn threads(&self) -> NonZeroUsize {
        self.threads
            .or_else(|| {
                std::env::var("TOKIO_WORKER_THREADS")
                    .ok()
                    .and_then(|n| n.trim().parse().ok())
            })
            .or_else(|| std::thread::available_parallelism().ok())
            .unwrap_or(NonZeroUsize::MIN)
    }

    /// The server's configuration these flags describe (the upgrade flags are the
    /// program's business).
    pub fn config(&self) -> KvConfig {
        let mut config = KvConfig::new()
            .addr(self.addr)
            .proxy_protocol(self.proxy_protocol)
            .proxy_from(self.proxy_from.iter().copied());
        if let Some(max) = self.max_connections_per_ip {
            config = config.max_connections_per_ip(max);
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<KvFlags, String> {
        KvFlags::parse(args.iter().map(|a| (*a).to_owned())).map_err(|e| e.to_string())
    }

    #[test]
    fn fleet_flags_are_read() {
        let flags = parse(&[
            "--port",
            "7001",
            "--proxy-protocol",
            "--proxy-from",
            "10.0.0.0/8",
            "--max-connections-per-ip",
            "3",
            "--upgrade-from",
            "/run/kv.sock",
            "--upgrade-socket",
            "/run/kv.sock",
            "--threads",
            "1",
        ])
        .unwrap();
        assert_eq!(flags.addr.to_string(), "127.0.0.1:7001");
        assert!(flags.proxy_protocol);
        assert_eq!(flags.proxy_from, ["10.0.0.0/8".parse::<Cidr>().unwrap()]);
        assert_eq!(flags.max_connections_per_ip, Some(3));
        assert_eq!(flags.upgrade_from.as_deref(), Some("/run/kv.sock".as_ref()));
        assert_eq!(flags.upgrade_socket, flags.upgrade_from);
        assert_eq!(flags.threads(), NonZeroUsize::MIN);
        let plain = parse(&[]).unwrap();
        assert_eq!(plain.addr.to_string(), DEFAULT_ADDR);
        assert!(!plain.proxy_protocol && plain.upgrade_from.is_none());
        assert_eq!(plain.threads, None);
    }

    #[test]
    fn bad_flags_say_which_and_show_the_usage() {
        for (args, says) in [
            (&["--upgrade-from"][..], "--upgrade-from needs a value"),
            (&["--proxy-from", "ten"], "--proxy-from ten"),
            (
                &["--max-connections-per-ip", "-1"],
                "--max-connections-per-ip -1",
            ),
            (&["--reload"], "unknown flag --reload"),
            (&["--threads", "0"], "--threads 0"),
        ] {
            let error = parse(args).unwrap_err();
            assert!(
                error.contains(says) && error.contains("usage: kv"),
                "{error}"
            );
        }
    }
}
