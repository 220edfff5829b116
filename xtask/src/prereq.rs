//! Real prerequisites, checked up front.
//!
//! Tests run against real peers (redis-server, redis-cli, redis-benchmark, openssl, curl,
//! h2load, wrk, haproxy, systemd-socket-activate). A
//! missing peer is never a silent skip: when it is missing xtask installs it if it can
//! (root, with apt-get), and otherwise stops with the exact command to run.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A program some test needs, and the Debian package that provides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Prereq {
    pub(crate) program: &'static str,
    pub(crate) package: &'static str,
    pub(crate) needed_for: &'static str,
}

/// The system programs `cargo xtask test` needs.
pub(crate) const SYSTEM: &[Prereq] = &[
    Prereq {
        program: "redis-server",
        package: "redis-server",
        needed_for: "real-Redis tests (mux FIFO mode, pool, facade Client)",
    },
    Prereq {
        program: "redis-cli",
        package: "redis-tools",
        needed_for: "the kv example checked with the real redis-cli, and the Redis Cluster tests (redis-cli --cluster create)",
    },
    Prereq {
        program: "redis-benchmark",
        package: "redis-tools",
        needed_for: "the kv example checked with the real redis-benchmark",
    },
    Prereq {
        program: "openssl",
        package: "openssl",
        needed_for: "TLS tests that cross-check certificates with a real TLS peer",
    },
    Prereq {
        program: "curl",
        package: "curl",
        needed_for: "beamline-http checked with curl (HTTP/1.1, h2c, HTTPS with ALPN h2)",
    },
    Prereq {
        program: "h2load",
        package: "nghttp2-client",
        needed_for: "beamline-http under HTTP/2 load (tests and benches/http.rs)",
    },
    Prereq {
        program: "wrk",
        package: "wrk",
        needed_for: "beamline-http under HTTP/1.1 keep-alive load (tests and benches/http.rs)",
    },
    Prereq {
        program: "haproxy",
        package: "haproxy",
        needed_for: "the kv example behind a real balancer sending PROXY protocol headers",
    },
    Prereq {
        program: "systemd-socket-activate",
        package: "systemd",
        needed_for: "socket activation: the server and the echo example on inherited sockets",
    },
];

/// What `cargo xtask demo cluster` needs: a real Redis Cluster is `redis-server` processes
/// joined by `redis-cli --cluster create`.
pub(crate) fn cluster_demo() -> Vec<Prereq> {
    SYSTEM
        .iter()
        .filter(|p| matches!(p.program, "redis-server" | "redis-cli"))
        .copied()
        .collect()
}

/// Looks `program` up on `PATH`, like a shell would.
pub(crate) fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The prerequisites in `list` that `present` says are missing.
pub(crate) fn missing(list: &[Prereq], present: impl Fn(&str) -> bool) -> Vec<&Prereq> {
    list.iter().filter(|p| !present(p.program)).collect()
}

/// The Debian packages that provide `missing`, each once, in first-seen order.
pub(crate) fn packages(missing: &[&Prereq]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for p in missing {
        if !out.contains(&p.package) {
            out.push(p.package);
        }
    }
    out
}

/// The command a person runs to install `packages` by hand.
pub(crate) fn install_hint(packages: &[&str]) -> String {
    format!(
        "sudo apt-get update && sudo apt-get install -y {}",
        packages.join(" ")
    )
}

/// Makes sure every system prerequisite is present, installing what is missing when this
/// process is root on a machine with apt-get.
///
/// # Errors
/// A message naming what is missing and the exact command that installs it.
pub(crate) fn ensure_system() -> Result<(), String> {
    ensure(SYSTEM)
}

/// Makes sure every program of `list` is present, installing what is missing when this
/// process is root on a machine with apt-get.
///
/// # Errors
/// A message naming what is missing and the exact command that installs it.
pub(crate) fn ensure(list: &[Prereq]) -> Result<(), String> {
    let absent = missing(list, |p| find_on_path(p).is_some());
    if absent.is_empty() {
        return Ok(());
    }
    let pkgs = packages(&absent);
    for p in &absent {
        println!(
            "prerequisite {} not found (package {}; needed for {})",
            p.program, p.package, p.needed_for
        );
    }
    if !(is_root() && find_on_path("apt-get").is_some()) {
        return Err(format!(
            "{} not found: run `{}`",
            absent
                .iter()
                .map(|p| p.program)
                .collect::<Vec<_>>()
                .join(", "),
            install_hint(&pkgs)
        ));
    }
    println!("installing {} with apt-get", pkgs.join(" "));
    apt_get(&["update", "-q"])?;
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend(pkgs.iter().copied());
    apt_get(&install)?;
    let still = missing(list, |p| find_on_path(p).is_some());
    if still.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "apt-get finished but {} is still missing: run `{}` and check its output",
            still
                .iter()
                .map(|p| p.program)
                .collect::<Vec<_>>()
                .join(", "),
            install_hint(&packages(&still))
        ))
    }
}

fn apt_get(args: &[&str]) -> Result<(), String> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("could not run apt-get: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`apt-get {}` failed ({status})", args.join(" ")))
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Makes sure the cargo subcommands the run uses exist (they come with rustup components,
/// which this machine cannot download on its own).
///
/// # Errors
/// A message with the `rustup component add` command for what is missing.
pub(crate) fn ensure_cargo_tools(cargo: &Path, need_clippy: bool) -> Result<(), String> {
    let mut absent = Vec::new();
    let mut tools = vec![("fmt", "rustfmt")];
    if need_clippy {
        tools.push(("clippy", "clippy"));
    }
    for (sub, component) in tools {
        let ok = Command::new(cargo)
            .args([sub, "--version"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            absent.push(component);
        }
    }
    if absent.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "cargo {} not available: run `rustup component add {}`",
            absent.join(", "),
            absent.join(" ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_lists_only_absent_programs() {
        let absent = missing(SYSTEM, |p| p != "redis-cli" && p != "h2load");
        let names: Vec<_> = absent.iter().map(|p| p.program).collect();
        assert_eq!(names, ["redis-cli", "h2load"]);
    }

    #[test]
    fn packages_are_deduplicated_in_order() {
        let absent = missing(SYSTEM, |_| false);
        assert_eq!(
            packages(&absent),
            [
                "redis-server",
                "redis-tools",
                "openssl",
                "curl",
                "nghttp2-client",
                "wrk",
                "haproxy",
                "systemd"
            ]
        );
    }

    #[test]
    fn the_cluster_demo_needs_redis_server_and_redis_cli_only() {
        let needed = cluster_demo();
        let names: Vec<_> = needed.iter().map(|p| p.program).collect();
        assert_eq!(names, ["redis-server", "redis-cli"]);
        let absent = missing(&needed, |_| false);
        assert_eq!(
            install_hint(&packages(&absent)),
            "sudo apt-get update && sudo apt-get install -y redis-server redis-tools"
        );
    }

    #[test]
    fn hint_is_a_command_a_person_can_paste() {
        assert_eq!(
            install_hint(&["redis-server", "redis-tools"]),
            "sudo apt-get update && sudo apt-get install -y redis-server redis-tools"
        );
    }

    #[test]
    fn path_lookup_finds_sh_and_not_nonsense() {
        assert!(find_on_path("sh").is_some());
        assert!(find_on_path("beamline-no-such-program").is_none());
    }
}
