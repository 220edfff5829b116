//! beamline-http beside `axum::serve`, the same axum Router on both, measured by the real
//! load generators: `wrk` (HTTP/1.1 keep-alive) and `h2load` (HTTP/2); then what each server
//! does under attack and at shutdown — measured, not asserted.
//!
//! Equal work:
//!
//! | | beamline-http | axum::serve |
//! |---|---|---|
//! | app | `Router`: `GET /` → `Hello, World!` (13 bytes, text/plain) | the same Router |
//! | runtime | this process's tokio runtime, 2 workers (the machine's cores), shared with nothing but the other server, idle meanwhile | the same runtime |
//! | sockets | `TCP_NODELAY` on, backlog 1024 | `TCP_NODELAY` on (`tap_io`), tokio's backlog (1024) |
//! | limits | every one on: 16,384 connections (Pause), 1,024 per IP, read timeout 60 s, send timeout 30 s, lifetime 1 h, header read timeout 10 s, keep-alive 30 s, 32 KiB heads, 100 HTTP/2 streams, rapid-reset bound 20 | axum's defaults: none of these (hyper's HTTP/2 defaults: 200 streams, rapid-reset bound 20) |
//! | HTTP/2 streams | run inside their connection's process | one tokio task each |
//! | load | `wrk -t2 -c64 -d<s>s --latency`; `h2load -t2 -c8 -m8 -D <s>` (64 streams over 8 connections) | the same |
//!
//! The two servers take turns, in an order that alternates every round, for 5 rounds
//! (`BEAMLINE_HTTP_BENCH_ROUNDS`) of 5 s each (`BEAMLINE_HTTP_BENCH_SECS`); each round's
//! requests/s and p99 latency go to `target/beamline-bench/http.json` as samples, and
//! `cargo xtask bench` reports each median with its min–max and the ratio round by round:
//!
//! | group | what |
//! |---|---|
//! | `http/wrk-64conn` | requests/s, HTTP/1.1 keep-alive, 64 connections |
//! | `http/wrk-64conn-p99` | wrk's p99 latency (ms) |
//! | `http/h2load-8x8` | requests/s, HTTP/2, 8 connections x 8 streams |
//! | `http/h2load-8x8-p99` | p99 latency (ms) from h2load's per-request log |
//!
//! wrk and h2load share the machine's two cores with the servers: the ratio is the honest
//! part, the absolute numbers are this machine's. Then the behaviour table
//! (`target/beamline-bench/sections/http.md`): a slowloris on headers, an HTTP/2
//! rapid-reset burst, descriptor exhaustion (each server alone in a child process under
//! `prlimit --nofile=64`), and a drain with requests in flight.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use beamline_benches::{Sampled, Summary, runtime, selected, write_sampled, write_section};
use beamline_http::{Http, HttpHandle};
use beamline_server::{Overload, Server};

#[path = "http/behaviour.rs"]
mod behaviour;

const BEAMLINE: &str = "beamline-http";
const AXUM: &str = "axum-serve";

/// Counts the requests that reached a handler (the rapid-reset row reads it).
#[derive(Default)]
pub(crate) struct Hits(AtomicU64);

/// The app both servers run: `/` says hello, `/wait/{ms}` answers after that long, `/hang`
/// never answers.
pub(crate) fn router(hits: Arc<Hits>) -> Router {
    Router::new()
        .route(
            "/",
            get(|State(h): State<Arc<Hits>>| async move {
                h.0.fetch_add(1, Ordering::Relaxed);
                "Hello, World!"
            }),
        )
        .route(
            "/wait/{ms}",
            get(
                |axum::extract::Path(ms): axum::extract::Path<u64>| async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    "done"
                },
            ),
        )
        .route("/hang", get(std::future::pending::<&'static str>))
        .with_state(hits)
}

/// beamline-http with every limit on.
pub(crate) fn start_beamline(app: Router) -> HttpHandle {
    let server = Server::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .max_connections(16_384)
        .overload(Overload::Pause)
        .max_connections_per_ip(1024)
        .read_timeout(Some(Duration::from_secs(60)))
        .send_timeout(Some(Duration::from_secs(30)))
        .lifetime(Some(Duration::from_secs(3600)));
    Http::new().serve(server, app).unwrap()
}

/// `axum::serve` as its users start it (with TCP_NODELAY, as beamline sets it); the address
/// and a sender that starts its graceful shutdown, and the task that ends when it is done.
pub(crate) async fn start_axum(
    app: Router,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    use axum::serve::ListenerExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (addr, stop, task)
}

/// A command for `program` from Debian's `package`, which must be installed.
pub(crate) fn program(program: &str, package: &str) -> Command {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    assert!(
        found,
        "{program} not found: run `apt-get install -y {package}` (`cargo xtask test` installs it)"
    );
    Command::new(program)
}

/// wrk's requests/s and p99 latency (ms).
fn wrk(addr: SocketAddr, secs: u64) -> (f64, f64) {
    let out = program("wrk", "wrk")
        .args(["-t2", "-c64", &format!("-d{secs}s"), "--latency"])
        .arg(format!("http://{addr}/"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed: {text}");
    assert!(
        !text.contains("Non-2xx") && !text.contains("Socket errors"),
        "wrk: {text}"
    );
    let rate = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in: {text}"));
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| duration_ms(v.trim()))
        .unwrap_or_else(|| panic!("no 99% in: {text}"));
    (rate, p99)
}

/// wrk's latency as milliseconds (`812.00us`, `1.20ms`, `2.00s`).
fn duration_ms(text: &str) -> f64 {
    let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap();
    let (n, unit) = text.split_at(split);
    let n: f64 = n.parse().unwrap();
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        other => panic!("unknown unit {other} in {text}"),
    }
}

/// h2load's requests/s and p99 latency (ms, from its per-request log).
fn h2load(addr: SocketAddr, secs: u64) -> (f64, f64) {
    let log = std::env::temp_dir().join(format!("beamline-h2load-{}.log", std::process::id()));
    let out = program("h2load", "nghttp2-client")
        .args(["-t2", "-c8", "-m8", "-D", &secs.to_string(), "--log-file"])
        .arg(&log)
        .arg(format!("http://{addr}/"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "h2load failed: {text}");
    assert!(text.contains(" 0 failed, 0 errored"), "h2load: {text}");
    let rate = text
        .lines()
        .find_map(|l| l.strip_prefix("finished in "))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|v| v.trim_end_matches(" req/s").parse().ok())
        .unwrap_or_else(|| panic!("no req/s in: {text}"));
    let mut latencies: Vec<f64> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter_map(|l| l.split('\t').nth(2)?.parse::<f64>().ok())
        .collect();
    let _ = std::fs::remove_file(&log);
    assert!(!latencies.is_empty(), "h2load wrote no log");
    latencies.sort_by(f64::total_cmp);
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)] / 1000.0;
    (rate, p99)
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
    })
}

const GROUPS: [(&str, &str, bool); 4] = [
    ("http/wrk-64conn", "requests/s", true),
    ("http/wrk-64conn-p99", "ms", false),
    ("http/h2load-8x8", "requests/s", true),
    ("http/h2load-8x8-p99", "ms", false),
];

fn main() {
    if behaviour::is_fd_child() {
        return behaviour::fd_child();
    }
    let load = GROUPS
        .iter()
        .any(|(g, _, _)| selected(g, &[BEAMLINE, AXUM]));
    let table = selected("http/behaviour", &[BEAMLINE, AXUM]);
    if !load && !table {
        return;
    }
    let rt = runtime();
    if load {
        measure_load(&rt);
    }
    if table {
        let section = behaviour::table(&rt);
        print!("\n{section}");
        write_section("http", &section).unwrap();
    }
}

fn measure_load(rt: &tokio::runtime::Runtime) {
    let rounds = env_number("BEAMLINE_HTTP_BENCH_ROUNDS", 5).max(1) as usize;
    let secs = env_number("BEAMLINE_HTTP_BENCH_SECS", 5).max(1);
    let _guard = rt.enter();
    let beamline = start_beamline(router(Arc::default()));
    let (axum_addr, axum_stop, axum_task) = rt.block_on(start_axum(router(Arc::default())));
    let servers = [
        (BEAMLINE, beamline.local_addr().unwrap()),
        (AXUM, axum_addr),
    ];
    // Warm both up (connections, allocator, caches), unmeasured.
    for (_, addr) in servers {
        wrk(addr, 1);
        h2load(addr, 1);
    }
    // samples[group][server] = one figure per round
    let mut samples = vec![vec![Vec::new(); 2]; GROUPS.len()];
    println!("http: wrk -t2 -c64 and h2load -t2 -c8 -m8, {secs} s each, {rounds} rounds");
    for round in 0..rounds {
        for k in 0..2 {
            let side = (round + k) % 2;
            let (name, addr) = servers[side];
            let (w_rate, w_p99) = wrk(addr, secs);
            let (h_rate, h_p99) = h2load(addr, secs);
            println!(
                "  round {} {name:<14} wrk {w_rate:>9.0} req/s p99 {w_p99:.2} ms | h2load {h_rate:>9.0} req/s p99 {h_p99:.2} ms",
                round + 1
            );
            for (g, figure) in [w_rate, w_p99, h_rate, h_p99].into_iter().enumerate() {
                samples[g][side].push(figure);
            }
        }
    }
    let mut results = Vec::new();
    for (g, (group, metric, higher)) in GROUPS.iter().enumerate() {
        for (side, (name, _)) in servers.iter().enumerate() {
            results.push(Sampled {
                group: (*group).to_owned(),
                function: (*name).to_owned(),
                metric,
                samples: samples[g][side].clone(),
                summary: Summary::Median,
                higher_is_better: *higher,
            });
        }
    }
    write_sampled("http", &results).unwrap();
    rt.block_on(async {
        let _ = axum_stop.send(());
        let _ = axum_task.await;
        beamline.shutdown(Duration::from_secs(5)).await.unwrap();
    });
}
