//! The examples in a fleet, against the real tools: `kv` behind a real HAProxy
//! (`send-proxy`, `send-proxy-v2`) seeing each client's own address and capping each apart;
//! `echo` started by the real `systemd-socket-activate` on an inherited socket; `kv`
//! upgraded three times in a row under a reconnecting beamline `Client`, `redis-benchmark`
//! (`-c 50 -k 0`) and a connect probe, refusing no connection and leaking no descriptor,
//! its generations alternating between one thread (`--threads 1`) and two.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use beamline::reconnect::OfflinePolicy;
use beamline::resp::{Command as Resp, Value};
use beamline::{Client, ClientError, WasSent};
use beamline_testkit::{Haproxy, free_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const WAIT: Duration = Duration::from_secs(20);

/// An example's binary, built (or found up to date) by cargo in this test's target
/// directory and profile.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // <target>/<profile>/deps/<test binary>
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let target = profile_dir.parent().unwrap();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    // Without the variables cargo sets for this test: build scripts that watch them (ring's
    // watches CARGO_PKG_NAME) would otherwise rebuild for this cargo and again for the next.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        let set_by_cargo = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|prefix| key.starts_with(prefix))
            || [
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
                "OUT_DIR",
            ]
            .contains(&key.as_str());
        if set_by_cargo {
            build.env_remove(key);
        }
    }
    build
        .current_dir(&workspace)
        .args(["build", "--package", "beamline-examples", "--example", name])
        .arg("--target-dir")
        .arg(target);
    if profile_dir.ends_with("release") {
        build.arg("--release");
    }
    assert!(
        build.status().unwrap().success(),
        "building the {name} example failed"
    );
    profile_dir.join("examples").join(name)
}

/// A program under test: its stdout and stderr lines as they come, killed on drop.
struct Program {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Arc<Mutex<Vec<String>>>,
    /// The threads that read stdout and stderr; each ends at its stream's end.
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Program {
    fn start(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let follow = |stream: Box<dyn std::io::Read + Send>| {
            let (tx, seen) = (tx.clone(), seen.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    seen.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            })
        };
        let readers = vec![follow(Box::new(stdout)), follow(Box::new(stderr))];
        Program {
            child,
            lines,
            seen,
            readers,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Blocks until a line containing `needle` comes (bounded).
    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line with {needle:?}; output:\n{}", self.output()),
            }
        }
    }

    fn output(&self) -> String {
        self.seen.lock().unwrap().join("\n")
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (bounded) for the program to exit.
    fn exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The exit can be seen before the reader threads have read the last
                // lines the program wrote (its summary): wait for both streams to end.
                // Bounded, because a process the program started (an upgrade's
                // successor) may hold the same pipes open after it exits.
                let drained = Instant::now() + Duration::from_secs(2);
                while !self.readers.iter().all(|r| r.is_finished()) && Instant::now() < drained {
                    std::thread::sleep(Duration::from_millis(5));
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Blocking work from an async test (the tests run on a multi-thread runtime).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Opens a connection from `source` (any 127.x address) to `to`.
async fn connect_from(source: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// Sends an inline PING; `true` when PONG comes back, `false` when the connection closes.
async fn ping(stream: &mut TcpStream) -> bool {
    if stream.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).await.is_ok() && &reply == b"+PONG\r\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_behind_haproxy_sees_each_client_and_caps_each_apart() {
    let port = free_port();
    let mut kv = Command::new(example("kv"));
    kv.args(["--port", &port.to_string(), "--proxy-protocol"])
        .args([
            "--proxy-from",
            "127.0.0.1/32",
            "--max-connections-per-ip",
            "2",
        ])
        .env("RUST_LOG", "beamline_server=debug")
        .env("NO_COLOR", "1");
    let kv = Program::start(kv);
    blocking(|| kv.wait_for("kv listening"));
    let haproxy = blocking(|| {
        Haproxy::start(
            SocketAddr::from(([127, 0, 0, 1], port)),
            &["send-proxy", "send-proxy-v2"],
        )
    });
    for (version, frontend) in [("v1", haproxy.frontend(0)), ("v2", haproxy.frontend(1))] {
        let mut held = Vec::new();
        for client in ["127.0.0.2", "127.0.0.3"] {
            let ip: IpAddr = client.parse().unwrap();
            for _ in 0..2 {
                let mut stream = connect_from(ip, frontend).await;
                assert!(ping(&mut stream).await, "{client} through {version}");
                // kv saw this very client: its address and port, through HAProxy.
                let me = stream.local_addr().unwrap();
                let line = blocking(|| kv.wait_for(&format!("peer={me} ")));
                assert!(
                    line.contains("proxy header received")
                        && line.contains("via=127.0.0.1:")
                        && line.contains(&format!("version={version}")),
                    "{line}"
                );
                held.push(stream);
            }
            // A third connection from the same client is over its cap of 2; the other
            // client's connections are not counted against it.
            let mut third = connect_from(ip, frontend).await;
            assert!(
                !ping(&mut third).await,
                "{client}'s third connection was served"
            );
        }
        assert!(ping(&mut held[0]).await && ping(&mut held[3]).await);
        // Closed, and seen closed by kv (HAProxy closes its side a moment later), before the
        // next round counts these clients' connections again.
        let mut open: Vec<String> = held
            .iter()
            .map(|s| format!("peer={} ", s.local_addr().unwrap()))
            .collect();
        drop(held);
        while !open.is_empty() {
            let line = blocking(|| kv.wait_for("connection closed"));
            open.retain(|peer| !line.contains(peer.as_str()));
        }
    }
    let rejections = kv
        .output()
        .lines()
        .filter(|l| l.contains("connection closed") && l.contains("reason=per_ip"))
        .count();
    assert_eq!(rejections, 4, "{}", kv.output());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_serves_on_the_socket_systemd_socket_activate_passes() {
    let dir = std::env::temp_dir().join(format!("beamline-fleet-echo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let notify_path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&notify_path);
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(WAIT)).unwrap();
    let port = free_port();
    let mut activate = Command::new("systemd-socket-activate");
    activate
        .args(["-l", &format!("127.0.0.1:{port}")])
        .arg(format!("-ENOTIFY_SOCKET={}", notify_path.display()))
        .arg(example("echo"));
    let mut echo = Program::start(activate);
    // The first connection starts echo, which accepts it from the inherited socket.
    let started = Instant::now();
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(stream) => break stream,
            Err(e) => {
                assert!(
                    started.elapsed() < WAIT,
                    "systemd-socket-activate never listened: {e}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let mut hello = vec![0u8; 256];
    let n = stream.read(&mut hello).await.unwrap();
    let hello = String::from_utf8_lossy(&hello[..n]).into_owned();
    assert!(hello.starts_with("hello 127.0.0.1:"), "{hello}");
    stream.write_all(b"inherited\n").await.unwrap();
    let mut back = [0u8; 10];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"inherited\n");
    let mut datagram = [0u8; 64];
    let n = blocking(|| notify.recv(&mut datagram).unwrap());
    assert_eq!(&datagram[..n], b"READY=1");
    let listening = blocking(|| echo.wait_for("echo listening on"));
    assert!(
        listening.contains(&format!("127.0.0.1:{port}")),
        "{listening}"
    );

    echo.signal("TERM");
    let n = blocking(|| notify.recv(&mut datagram).unwrap());
    assert_eq!(&datagram[..n], b"STOPPING=1");
    assert!(blocking(|| echo.exit()).success(), "{}", echo.output());
    assert!(echo.output().contains("1 drained"), "{}", echo.output());
    let _ = std::fs::remove_dir_all(&dir);
}

/// What one load source saw during the upgrades.
#[derive(Debug, Default)]
struct Tally {
    answered: u64,
    not_sent: u64,
    lost: u64,
    refused: u64,
    other: Vec<String>,
}

/// The reconnecting beamline Client: ECHO of a payload unique to each request, each
/// expected to end with its own reply. `idempotent`: replayed after a lost connection.
fn client_load(
    port: u16,
    idempotent: bool,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Tally> {
    tokio::spawn(async move {
        let client = Client::builder(format!("127.0.0.1:{port}"))
            .resp()
            .timeout(Duration::from_secs(5))
            .offline(OfflinePolicy::Queue {
                max: 64,
                deadline: Duration::from_secs(5),
            })
            .connect()
            .await
            .unwrap();
        let mut tally = Tally::default();
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) && i < 1_000_000 {
            i += 1;
            let payload = format!("request-{idempotent}-{i}");
            loop {
                let request = Resp::new("ECHO").arg(&payload);
                let reply = if idempotent {
                    client.call_idempotent(request).await
                } else {
                    client.call(request).await
                };
                match reply {
                    Ok(value) => {
                        assert_eq!(
                            value,
                            Value::bulk(payload.clone()),
                            "another request's reply"
                        );
                        tally.answered += 1;
                    }
                    // Never written: safe to send again.
                    Err(e) if !e.was_sent() => {
                        tally.not_sent += 1;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        continue;
                    }
                    Err(ClientError::ConnectionLost { .. }) => tally.lost += 1,
                    Err(e) => tally.other.push(e.to_string()),
                }
                break;
            }
        }
        tally
    })
}

/// Connect, PING, close, again and again: when each connection was answered, and any
/// refusal.
fn probe(port: u16, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(Vec<Instant>, Tally)> {
    tokio::spawn(async move {
        let (mut times, mut tally) = (Vec::new(), Tally::default());
        while !stop.load(Ordering::Relaxed) && times.len() < 1_000_000 {
            match TcpStream::connect(("127.0.0.1", port)).await {
                Ok(mut s) => {
                    if ping(&mut s).await {
                        times.push(Instant::now());
                        tally.answered += 1;
                    } else {
                        tally.lost += 1;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => tally.refused += 1,
                Err(e) => tally.other.push(e.to_string()),
            }
        }
        (times, tally)
    })
}

/// `redis-benchmark -c 50 -k 0` (a new connection per request) in rounds until stopped:
/// every round must end well and print no error.
fn benchmark(port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u32, Vec<String>)> {
    std::thread::spawn(move || {
        let (mut rounds, mut errors) = (0, Vec::new());
        while !stop.load(Ordering::Relaxed) && rounds < 1000 {
            let output = Command::new("redis-benchmark")
                .args(["-p", &port.to_string(), "-c", "50", "-k", "0", "-n", "2000"])
                .args(["-t", "ping", "-q"])
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| {
                    panic!("redis-benchmark ({e}): run `apt-get install -y redis-tools`")
                });
            let text =
                String::from_utf8_lossy(&[output.stdout, output.stderr].concat()).into_owned();
            if !output.status.success() || text.to_lowercase().contains("error") {
                errors.push(text);
            }
            rounds += 1;
        }
        (rounds, errors)
    })
}

/// A kv generation's last line: its descriptor counts at start and at exit.
fn assert_fds_flat(kv: &Program) {
    let line = kv.wait_for("open fds at start");
    let counts: Vec<&str> = line
        .rsplit("open fds at start ")
        .next()
        .unwrap()
        .split(", at exit ")
        .collect();
    assert_eq!(counts.len(), 2, "{line}");
    assert_eq!(counts[0], counts[1], "descriptors leaked: {line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_upgraded_three_times_under_load_refuses_no_connection() {
    let binary = example("kv");
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("beamline-fleet-kv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let upgrade = dir.join("kv.upgrade");
    // Generations alternate between one thread (tokio's current-thread runtime: one event
    // loop, as redis-server runs) and two workers: the upgrade, the load and the drain below
    // hold on either runtime, and each runs on the threads it was given.
    let kv = |generation: usize| {
        let threads = if generation % 2 == 1 { 1 } else { 2 };
        let mut command = Command::new(&binary);
        command.args(["--port", &port.to_string()]);
        command.args(["--threads", &threads.to_string()]);
        if generation > 1 {
            command.arg("--upgrade-from").arg(&upgrade);
        }
        command.arg("--upgrade-socket").arg(&upgrade);
        // The threads it should run: only its main thread for one, else the workers beside it.
        let expected = if threads == 1 { 1 } else { threads + 1 };
        (Program::start(command), expected)
    };
    // The threads of process `pid`.
    let threads_of = |pid: u32| {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .count()
    };
    let (mut current, expected) = kv(1);
    blocking(|| current.wait_for("waiting for a successor"));
    assert_eq!(threads_of(current.pid()), expected);

    let stop = Arc::new(AtomicBool::new(false));
    let idempotent = client_load(port, true, stop.clone());
    let plain = client_load(port, false, stop.clone());
    let probing = probe(port, stop.clone());
    let bench = benchmark(port, stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut windows = Vec::new();
    for generation in 2..=4 {
        let began = Instant::now();
        let (next, expected) = kv(generation);
        blocking(|| next.wait_for("took over from the previous process"));
        blocking(|| next.wait_for("waiting for a successor"));
        assert_eq!(threads_of(next.pid()), expected, "generation {generation}");
        windows.push((began, Instant::now()));
        let handed = blocking(|| current.wait_for("listening sockets to pid"));
        assert!(handed.contains(&format!("pid {}", next.pid())), "{handed}");
        assert!(
            blocking(|| current.exit()).success(),
            "generation {}:\n{}",
            generation - 1,
            current.output()
        );
        assert_fds_flat(&current);
        current = next;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let idempotent = idempotent.await.unwrap();
    let plain = plain.await.unwrap();
    let (times, probed) = probing.await.unwrap();
    let (rounds, bench_errors) = blocking(|| bench.join().unwrap());
    current.signal("TERM");
    assert!(
        blocking(|| current.exit()).success(),
        "{}",
        current.output()
    );
    assert_fds_flat(&current);

    // No refusal anywhere; every idempotent request ended with its own reply.
    assert_eq!(probed.refused, 0, "{probed:?}");
    assert!(probed.other.is_empty() && probed.lost == 0, "{probed:?}");
    assert!(bench_errors.is_empty(), "redis-benchmark: {bench_errors:?}");
    assert!(rounds > 0);
    assert!(
        idempotent.answered > 0 && idempotent.lost == 0,
        "{idempotent:?}"
    );
    assert!(idempotent.other.is_empty(), "{idempotent:?}");
    // Plain calls end with their reply, NotSent (then sent again), or a typed
    // ConnectionLost when kv's drain closed a connection under a request in flight.
    assert!(plain.answered > 0 && plain.other.is_empty(), "{plain:?}");

    // The longest stretch without an answered probe connection, and 10 ms windows without
    // one, during the upgrades.
    let (first, last) = (windows[0].0, windows[2].1);
    let during: Vec<Instant> = times
        .iter()
        .copied()
        .filter(|t| *t >= first && *t <= last)
        .collect();
    let gap = during
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    let span = last - first;
    let buckets = (span.as_millis() / 10 + 1) as usize;
    let mut hit = vec![false; buckets];
    for t in &during {
        hit[((*t - first).as_millis() / 10) as usize] = true;
    }
    println!(
        "upgrades: {span:?} in all; probe {} connections answered during them, longest gap \
         {gap:?}, {} of {buckets} 10 ms windows without an answered connection; \
         redis-benchmark {rounds} rounds; client (idempotent) {idempotent:?}; client (plain) \
         {plain:?}",
        during.len(),
        hit.iter().filter(|h| !**h).count(),
    );
    let _ = std::fs::remove_dir_all(&dir);
}
