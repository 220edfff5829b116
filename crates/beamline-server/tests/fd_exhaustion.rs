//! Running out of file descriptors: a server in a child process with `RLIMIT_NOFILE` = 64 is
//! flooded with connections. It must stay up, back off instead of spinning (its CPU time and
//! its count of accept errors stay small), log once per episode, and serve new clients once
//! descriptors are free.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use beamline_server::Server;
use common::*;

const TEST: &str = "the_server_survives_descriptor_exhaustion_without_spinning";
const ACCEPTORS: u64 = 2;

#[test]
fn the_server_survives_descriptor_exhaustion_without_spinning() {
    if is_child(TEST) {
        child_server();
    } else {
        flood_the_child();
    }
}

/// The child: an echo server on a current-thread runtime, its port on stdout, its stats on
/// request (a line on stdin), its logs on stderr; exits when stdin closes.
fn child_server() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(async {
        Server::new()
            .bind(localhost())
            .acceptors(ACCEPTORS as usize)
            .read_timeout(None)
            .serve_fn(echo_fn)
            .unwrap()
    });
    let server = Arc::new(server);
    println!("PORT {}", server.local_addr().unwrap().port());
    std::io::stdout().flush().unwrap();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let watcher = server.clone();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if line.is_err() {
                break;
            }
            let s = watcher.stats();
            println!("STATS {} {} {}", s.accepted, s.active, s.accept_errors);
            std::io::stdout().flush().unwrap();
        }
        let _ = done_tx.send(());
    });
    rt.block_on(async {
        let _ = done_rx.await;
    });
}

/// User + system CPU time of `pid`, in clock ticks (fields 14 and 15 of /proc/pid/stat).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name (field 2) may hold spaces; count fields after its closing paren.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

struct Child {
    process: std::process::Child,
    stdout: BufReader<std::process::ChildStdout>,
    stdin: std::process::ChildStdin,
}

impl Child {
    /// What follows `prefix` on the next line that has it (the harness prints other text,
    /// even on the same line: "test name ... PORT 4242").
    fn line(&mut self, prefix: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                self.stdout.read_line(&mut line).unwrap() > 0,
                "the child server died"
            );
            if let Some(at) = line.find(prefix) {
                return line[at + prefix.len()..].trim().to_owned();
            }
        }
    }

    /// (accepted, active, accept_errors).
    fn stats(&mut self) -> (u64, u64, u64) {
        writeln!(self.stdin, "stats").unwrap();
        self.stdin.flush().unwrap();
        let line = self.line("STATS ");
        let n: Vec<u64> = line.split(' ').map(|x| x.parse().unwrap()).collect();
        (n[0], n[1], n[2])
    }
}

fn flood_the_child() {
    let mut cmd = child_command(TEST, 64);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut process = cmd.spawn().unwrap();
    let mut child = Child {
        stdout: BufReader::new(process.stdout.take().unwrap()),
        stdin: process.stdin.take().unwrap(),
        process,
    };
    let pid = child.process.id();
    let port: u16 = child.line("PORT ").parse().unwrap();
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));

    // Flood: far more connections than the child has descriptors. The kernel completes them
    // (listen backlog); the child accepts until EMFILE.
    let mut flood = Vec::new();
    for _ in 0..200 {
        let mut c = TcpStream::connect(target).unwrap();
        c.write_all(b"x").unwrap();
        flood.push(c);
    }
    let exhausted = Instant::now();
    let (accepted, active, errors) = loop {
        let stats = child.stats();
        if stats.2 > 0 || exhausted.elapsed() > Duration::from_secs(10) {
            break stats;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(errors > 0, "the child never ran out of descriptors");
    assert!(
        accepted < 64 && active == accepted,
        "accepted {accepted}, active {active}"
    );

    // While exhausted: no spinning. Over one second, an acceptor that backs off 100 ms per
    // error makes about 10 attempts; one that spins makes millions and burns the CPU.
    let window = Duration::from_secs(1);
    let (ticks_before, errors_before) = (cpu_ticks(pid), child.stats().2);
    std::thread::sleep(window);
    let (ticks_after, (_, _, errors_after)) = (cpu_ticks(pid), child.stats());
    let attempts = errors_after - errors_before;
    assert!(
        attempts <= ACCEPTORS * 12 + 4,
        "{attempts} failed accepts in {window:?}: the acceptors spin"
    );
    // Clock ticks are 1/100 s on Linux: at most 0.25 s of CPU in a 1 s window.
    let cpu = ticks_after - ticks_before;
    assert!(cpu <= 25, "the child used {cpu} ticks of CPU in {window:?}");

    // Free the descriptors: the server's connections see EOF and close, the acceptors get
    // going again, and a new client is served.
    drop(flood);
    let mut fresh = TcpStream::connect(target).unwrap();
    fresh
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    fresh.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    fresh.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping");
    let (accepted_after, _, _) = child.stats();
    assert!(accepted_after > accepted, "nothing accepted after recovery");

    // Stop the child: closing stdin ends it; it must exit cleanly (it never crashed).
    drop(fresh);
    let Child {
        mut process, stdin, ..
    } = child;
    drop(stdin);
    let mut logs = String::new();
    process
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    let status = process.wait().unwrap();
    assert!(
        status.success(),
        "the child server failed: {status}\n{logs}"
    );
    // Logged once per episode per acceptor, not once per error.
    let warnings = logs.matches("accept failed; backing off").count() as u64;
    let recoveries = logs.matches("accepting again").count() as u64;
    assert!(warnings >= 1, "no back-off was logged:\n{logs}");
    assert!(
        warnings <= recoveries + ACCEPTORS,
        "{warnings} warnings for {recoveries} recoveries:\n{logs}"
    );
    assert!(logs.contains("Too many open files"), "{logs}");
}
