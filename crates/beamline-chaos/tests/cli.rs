//! The `beamline-chaos` binary, run as a user would: flags, the printed address, stdin
//! commands, and exit codes.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;

const BIN: &str = env!("CARGO_BIN_EXE_beamline-chaos");

fn chaos(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    cmd
}

/// Kills the child if the test fails before it quits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read_line(out: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    line
}

#[test]
fn help_prints_usage_and_exits_zero() {
    let out = chaos(&["--help"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--upstream",
        "--latency",
        "--reset-after",
        "--blackhole",
        "--partition",
    ] {
        assert!(text.contains(flag), "--help does not mention {flag}");
    }
}

#[test]
fn bad_flags_exit_two_naming_the_flag() {
    let out = chaos(&["--upstream", "127.0.0.1:1", "--latency", "fast"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--latency fast"), "{err}");
    let out = chaos(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("--upstream")
    );
}

#[test]
fn a_running_proxy_injects_its_flags_and_obeys_stdin() {
    let server = Server::echo();
    let upstream = server.addr().to_string();
    let child = chaos(&[
        "--upstream",
        &upstream,
        "--seed",
        "5",
        "--direction",
        "down",
        "--latency",
        "50ms",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut child = Running(child);
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let mut stdin = child.0.stdin.take().unwrap();

    let banner = read_line(&mut out);
    assert!(banner.contains("(seed 5)"), "{banner}");
    let addr: SocketAddr = banner
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap()
        .parse()
        .unwrap();

    let mut client = TcpStream::connect(addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let start = Instant::now();
    client.write_all(b"ping").unwrap();
    let mut reply = [0u8; 4];
    client.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"ping");
    assert!(start.elapsed() >= Duration::from_millis(50));

    writeln!(stdin, "stats").unwrap();
    let stats = read_line(&mut out);
    assert!(stats.contains("live: 1"), "{stats}");

    writeln!(stdin, "reset").unwrap();
    assert_eq!(read_line(&mut out).trim(), "ok");
    let err = client.read(&mut reply).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);

    writeln!(stdin, "quit").unwrap();
    let status = child.0.wait().unwrap();
    assert!(status.success());
}
