//! The `kv` example as a user runs it, beside a real `redis-server`, measured by the real
//! `redis-benchmark` running its default test list (`-t ping,set,get,incr,lpush,rpush,lpop,
//! rpop,sadd,hset,spop,lrange_100,lrange_300,mset -c 50 -P <1|16> -q --csv`, one `-t` test
//! per run), the same number of requests against each server.
//!
//! Equal work:
//!
//! | | beamline-kv | redis-server |
//! |---|---|---|
//! | process | the `kv` example's release binary (built here by cargo), default flags but `--port` | `redis-server`, persistence off |
//! | cores | one, the server core (`taskset`); kv sizes itself to the cores it may use, so it runs one event loop on one thread (tokio's current-thread runtime) | the same core (`taskset -a`: every thread); one main thread |
//! | load | redis-benchmark on the other core, 50 connections, pipelines of 1 and of 16 | the same |
//! | timeouts | none on an idle client (kv's default) | none (`timeout 0`, Redis's default) |
//! | buffers | a 16 KiB read buffer per connection, replies flushed once per batch | a 16 KiB query buffer per client (`PROTO_IOBUF_LEN`), replies written once per event-loop turn |
//! | checks | each test's command answered without an error before measuring (below) | the same |
//!
//! Each server gets one core to itself and the load generator (one thread) the other, so
//! neither server competes with its load: on this 2-core machine a server with a thread per
//! core shares the load generator's core, and what is measured is that contention, not the
//! server (kv with a worker per core and no pinning last measured 0.97× at `-P 1` and 0.98×
//! at `-P 16`, geometric means of 10 rounds at `5252ef9`, while kv on one worker was 1.01×
//! and 1.07×).
//! On a machine with one CPU nothing is pinned, and the bench says so.
//!
//! One test at a time, the two servers run it back to back, in an order that alternates
//! with the test and the round, for 8 rounds (`BEAMLINE_KV_BENCH_ROUNDS`): a noisy moment
//! on this shared machine hurts both runs of one test alike. Each run is sized from a
//! calibration run (which also warms every server up) to take about 0.6 s on the slowest
//! server (`BEAMLINE_KV_BENCH_N` fixes the requests per run instead): long enough that
//! redis-benchmark's millisecond clock is not the noise (runs of all 14 tests at once gave
//! the fast tests ~100 ms each, and their rates moved in 2% steps). Each round's requests/s
//! per test go to `target/beamline-bench/kv.json` as samples, and `cargo xtask bench`
//! reports each test's geometric mean over the rounds and the ratio round by round, with
//! its 95% t-interval:
//!
//! | group | what |
//! |---|---|
//! | `kv/<test>-p1`, `kv/<test>-p16` | kv as a user starts it against redis-server, `<test>` one of `ping` (`PING_MBULK`), `set`, `get`, `incr`, `lpush`, `rpush`, `lpop`, `rpop`, `sadd`, `hset`, `spop`, `lrange_100`, `lrange_300`, `mset` (10 keys) |
//! | `kv/geomean-p1`, `kv/geomean-p16` | per round, the geometric mean over the tests |
//! | `kv/cpu-geomean-p1`, `kv/cpu-geomean-p16` | per round, the geometric mean over the tests of the server's CPU time per request (µs, lower is better) |
//!
//! With a pipeline of 1 a request is one read and one write on either server, and the
//! server's core is the limit: requests/s follows the server's cost per request. With 16,
//! redis-benchmark keeps its own core busy, so when both servers keep up their requests/s
//! are the load generator's and the ratio sits at 1.00× within the noise. The server's own
//! cost is its CPU time per request, read for every run from `/proc/<pid>/task/*/schedstat`
//! (all the server's threads, nanoseconds): the `cpu-` groups, and per test in a section.
//! redis-benchmark does not look at the replies, so before measuring, each test's command
//! is sent once to every server and the reply checked: a test kv answers with an error is
//! left out (and said so) rather than measured as fast errors. Memory: each server's peak
//! resident set (`VmHWM`) after all rounds, written as a section.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use beamline_benches::{
    Sampled, Summary, median, results_dir, selected, write_sampled, write_section,
};
use beamline_testkit::{RedisServer, free_port};

/// redis-benchmark's default test list: its test names (up to the first space), our names
/// (also what `-t` selects), and the command that checks the server supports it.
const TESTS: [(&str, &str, &[&str]); 14] = [
    ("PING_MBULK", "ping", &["PING"]),
    ("SET", "set", &["SET", "key:probe", "xxx"]),
    ("GET", "get", &["GET", "key:probe"]),
    ("INCR", "incr", &["INCR", "counter:probe"]),
    ("LPUSH", "lpush", &["LPUSH", "list:probe", "xxx"]),
    ("RPUSH", "rpush", &["RPUSH", "list:probe", "xxx"]),
    ("LPOP", "lpop", &["LPOP", "list:probe"]),
    ("RPOP", "rpop", &["RPOP", "list:probe"]),
    ("SADD", "sadd", &["SADD", "set:probe", "xxx"]),
    ("HSET", "hset", &["HSET", "hash:probe", "field", "xxx"]),
    ("SPOP", "spop", &["SPOP", "set:probe"]),
    (
        "LRANGE_100",
        "lrange_100",
        &["LRANGE", "list:probe", "0", "99"],
    ),
    (
        "LRANGE_300",
        "lrange_300",
        &["LRANGE", "list:probe", "0", "299"],
    ),
    (
        "MSET",
        "mset",
        &["MSET", "key:probe", "xxx", "key:probe2", "yyy"],
    ),
];
const PIPELINES: [u32; 2] = [1, 16];

const KV: &str = "beamline-kv";
const REDIS: &str = "redis-server";

/// The time one run (one test against one server) should take, for the slowest server.
const RUN_TARGET: Duration = Duration::from_millis(600);
/// A run that takes longer than this is stopped: the bench fails rather than hang.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Requests/s per test name (up to the first space), from one `redis-benchmark --csv` run of
/// the tests `names` (our names, comma-separated).
fn redis_benchmark(
    cores: &Cores,
    port: u16,
    names: &str,
    pipeline: u32,
    requests: u64,
) -> BTreeMap<String, f64> {
    let mut child = match cores
        .client("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-t", names, "-c", "50", "-q", "--csv"])
        .args(["-P", &pipeline.to_string(), "-n", &requests.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("redis-benchmark not found: run `apt-get install -y redis-tools`")
        }
        Err(e) => panic!("cannot start redis-benchmark: {e}"),
    };
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            panic!("redis-benchmark against port {port} ran over {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(status.success(), "redis-benchmark failed: {out}");
    let rates: BTreeMap<String, f64> = out
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(',').map(|f| f.trim_matches('"'));
            let (name, rps) = (fields.next()?, fields.next()?);
            // The fill-up runs before the LRANGE tests ("LPUSH (needed to benchmark
            // LRANGE)") are not tests of their own.
            if name.contains("(needed") {
                return None;
            }
            let name = name.split(' ').next()?;
            Some((name.to_owned(), rps.parse().ok()?))
        })
        .collect();
    for (test, name, _) in TESTS {
        let asked = names.split(',').any(|n| n == name);
        assert!(!asked || rates.contains_key(test), "no {test} in: {out}");
    }
    rates
}

/// Time process `pid` has spent on a CPU so far, all its threads, in seconds (the first
/// field of each thread's `/proc/<pid>/task/<tid>/schedstat`, in nanoseconds).
fn cpu_seconds(pid: u32) -> f64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    let nanos: u64 = tasks
        .filter_map(|task| {
            let path = task.ok()?.path().join("schedstat");
            // A thread that ended between the listing and the read is not counted.
            let text = std::fs::read_to_string(path).ok()?;
            text.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum();
    nanos as f64 / 1e9
}

/// Sends `args` as one RESP command on `stream` and reads the reply's first line.
fn command(stream: &mut BufReader<TcpStream>, args: &[&str]) -> String {
    let mut request = format!("*{}\r\n", args.len());
    for a in args {
        request.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream.get_mut().write_all(request.as_bytes()).unwrap();
    let mut line = String::new();
    stream.read_line(&mut line).unwrap();
    line.trim_end().to_owned()
}

fn connect(port: u16) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    BufReader::new(stream)
}

/// Reads what follows a reply's first line: a bulk's body, an array's elements.
fn skip_body(stream: &mut BufReader<TcpStream>, first: &str) {
    let count = |prefix| {
        first
            .strip_prefix(prefix)
            .and_then(|l: &str| l.parse::<usize>().ok())
    };
    if let Some(len) = count('$') {
        let mut body = vec![0u8; len + 2];
        stream.read_exact(&mut body).unwrap();
    }
    for _ in 0..count('*').unwrap_or(0) {
        let mut line = String::new();
        stream.read_line(&mut line).unwrap();
        skip_body(stream, line.trim_end());
    }
}

/// The tests whose command `port` answers without an error.
fn supported(port: u16) -> Vec<&'static str> {
    let mut stream = connect(port);
    TESTS
        .iter()
        .filter(|(_, _, probe)| {
            let reply = command(&mut stream, probe);
            skip_body(&mut stream, &reply);
            !reply.starts_with('-')
        })
        .map(|(test, _, _)| *test)
        .collect()
}

/// redis-server's pid, from `INFO server`.
fn redis_pid(port: u16) -> u32 {
    let mut stream = connect(port);
    let header = command(&mut stream, &["INFO", "server"]);
    let len: usize = header.trim_start_matches('$').parse().unwrap();
    let mut body = vec![0u8; len + 2];
    stream.read_exact(&mut body).unwrap();
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
        .unwrap()
}

/// Peak resident set of process `pid`, in bytes (`VmHWM` of /proc/<pid>/status).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024
}

/// The CPUs the bench pins to: the load generator on one, both servers on another.
struct Cores {
    /// `(client, server)`, or `None` when this process may run on one CPU only.
    pinned: Option<(usize, usize)>,
}

impl Cores {
    /// The first two CPUs this process may run on (`Cpus_allowed_list` in /proc/self/status).
    fn pick() -> Cores {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap_or_else(|| panic!("no Cpus_allowed_list in /proc/self/status"))
            .trim();
        let mut cpus = Vec::new();
        for part in list.split(',') {
            let bad = || panic!("Cpus_allowed_list {list:?}: cannot read {part:?}");
            let (from, to) = part.split_once('-').unwrap_or((part, part));
            let (from, to): (usize, usize) = match (from.parse(), to.parse()) {
                (Ok(from), Ok(to)) => (from, to),
                _ => bad(),
            };
            cpus.extend(from..=to);
            if cpus.len() >= 2 {
                break;
            }
        }
        Cores {
            pinned: match cpus[..] {
                [client, server, ..] => Some((client, server)),
                _ => None,
            },
        }
    }

    /// `program`, to run on `cpu` (anywhere when `None`).
    fn on(cpu: Option<usize>, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let Some(cpu) = cpu else {
            return Command::new(program);
        };
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", &cpu.to_string()]).arg(program);
        cmd
    }

    /// `program`, to run on the load generator's CPU.
    fn client(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        Self::on(self.pinned.map(|(client, _)| client), program)
    }

    /// `program`, to run on the servers' CPU.
    fn server(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        Self::on(self.pinned.map(|(_, server)| server), program)
    }

    /// Moves every thread of the running process `pid` to the servers' CPU.
    fn pin(&self, pid: u32) {
        let Some((_, server)) = self.pinned else {
            return;
        };
        let status = Command::new("taskset")
            .args(["-a", "-p", "-c", &server.to_string(), &pid.to_string()])
            .stdout(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("taskset (util-linux) cannot run: {e}"));
        assert!(status.success(), "taskset could not pin pid {pid}");
    }

    fn describe(&self) -> String {
        match self.pinned {
            Some((client, server)) => {
                format!("redis-benchmark on CPU {client}, each server on CPU {server}")
            }
            None => "one CPU: the servers and redis-benchmark share it, unpinned".to_owned(),
        }
    }
}

/// The kv example's release binary, built (or found up to date) by cargo.
fn kv_binary() -> PathBuf {
    let target = results_dir().parent().unwrap().to_path_buf();
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&workspace)
        .args(["build", "--release", "--package", "beamline-examples"])
        .args(["--example", "kv", "--target-dir"])
        .arg(&target)
        .status()
        .unwrap();
    assert!(status.success(), "building the kv example failed");
    target.join("release").join("examples").join("kv")
}

/// A kv process, killed on drop.
struct Kv {
    child: Child,
    port: u16,
}

impl Kv {
    /// Starts kv on the servers' CPU: it sizes its runtime to the CPUs it may use.
    fn start(binary: &PathBuf, cores: &Cores) -> Kv {
        let port = free_port();
        let child = cores
            .server(binary)
            .args(["--port", &port.to_string()])
            .env_remove("TOKIO_WORKER_THREADS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start kv (taskset is util-linux's): {e}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "kv did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Kv { child, port }
    }
}

impl Drop for Kv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
    )
}

/// The group of `test` (or `geomean`, `cpu-geomean`) at `pipeline`.
fn group(test: &str, pipeline: u32) -> String {
    format!("kv/{test}-p{pipeline}")
}

fn main() {
    let names: Vec<&str> = TESTS
        .iter()
        .map(|(_, name, _)| *name)
        .chain(["geomean"])
        .collect();
    let any_selected = names.iter().any(|name| {
        PIPELINES
            .iter()
            .any(|&p| selected(&group(name, p), &[KV, REDIS]))
    });
    if !any_selected {
        return;
    }
    let rounds = env_number("BEAMLINE_KV_BENCH_ROUNDS").unwrap_or(8).max(1) as usize;
    let binary = kv_binary();
    let cores = Cores::pick();
    let kv = Kv::start(&binary, &cores);
    let redis = RedisServer::start();
    let redis_pid = redis_pid(redis.port());
    cores.pin(redis_pid);
    let servers = [
        (KV, kv.port, kv.child.id()),
        (REDIS, redis.port(), redis_pid),
    ];
    println!("kv: {}", cores.describe());

    // Tests every server answers (redis-benchmark would count error replies as answers).
    let mut tests: Vec<(&str, &str)> = TESTS.iter().map(|(t, n, _)| (*t, *n)).collect();
    let mut left_out = Vec::new();
    for (function, port, _) in servers {
        let ok = supported(port);
        tests.retain(|(test, name)| {
            let keep = ok.contains(test);
            if !keep {
                left_out.push(format!(
                    "`{name}` ({function} answers its command with an error)"
                ));
            }
            keep
        });
    }

    let all = tests
        .iter()
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(",");
    // rates[(function, pipeline, test)]: requests/s, one per round; cpu[..]: the server's
    // CPU time per request, in µs, from the same runs.
    let mut rates: BTreeMap<(&str, u32, &str), Vec<f64>> = BTreeMap::new();
    let mut cpu: BTreeMap<(&str, u32, &str), Vec<f64>> = BTreeMap::new();
    for pipeline in PIPELINES {
        // Requests per test: fixed, or sized from a calibration run of every test against
        // every server (which warms them all up) so that the slowest takes RUN_TARGET.
        let fixed = env_number("BEAMLINE_KV_BENCH_N");
        let mut slowest: BTreeMap<&str, f64> = BTreeMap::new();
        if fixed.is_none() {
            let probe = if pipeline == 1 { 20_000 } else { 100_000 };
            for (_, port, _) in servers {
                let measured = redis_benchmark(&cores, port, &all, pipeline, probe);
                for (test, _) in &tests {
                    let rate = slowest.entry(test).or_insert(f64::INFINITY);
                    *rate = rate.min(measured[*test]);
                }
            }
        }
        let requests = |test: &str| {
            fixed.unwrap_or_else(|| {
                let n = slowest[test] * RUN_TARGET.as_secs_f64();
                ((n / 1000.0).round() as u64 * 1000).clamp(1000, 5_000_000)
            })
        };
        println!("kv: redis-benchmark -c 50 -P {pipeline}, one test at a time, {rounds} rounds");
        for round in 0..rounds {
            let mut lines: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for (i, (test, name)) in tests.iter().enumerate() {
                let n = requests(test);
                // The two servers run this test back to back, in an order that alternates.
                for k in 0..servers.len() {
                    let (function, port, pid) = servers[(round + i + k) % servers.len()];
                    let before = cpu_seconds(pid);
                    let measured = redis_benchmark(&cores, port, name, pipeline, n);
                    let rate = measured[*test];
                    // `-t ping` runs PING_INLINE and PING_MBULK, n requests each.
                    let sent = n as f64 * measured.len() as f64;
                    let per_request = (cpu_seconds(pid) - before) * 1e6 / sent;
                    let key = (function, pipeline, *test);
                    rates.entry(key).or_default().push(rate);
                    cpu.entry(key).or_default().push(per_request);
                    lines
                        .entry(function)
                        .or_default()
                        .push(format!("{test} {rate:.0} ({per_request:.2} µs)"));
                }
            }
            for (function, line) in lines {
                println!("  round {} {function:<20} {}", round + 1, line.join(", "));
            }
        }
    }

    let peaks: Vec<(&str, u64)> = vec![(KV, peak_rss(kv.child.id())), (REDIS, peak_rss(redis_pid))];
    drop((kv, redis));

    let mut results = Vec::new();
    let sampled = |group: String, function: &str, samples: Vec<f64>, rate: bool| Sampled {
        group,
        function: function.to_owned(),
        metric: if rate { "requests/s" } else { "µs/request" },
        samples,
        summary: Summary::Mean,
        higher_is_better: rate,
    };
    // Per round, the geometric mean over the tests of `figures`.
    let geomean = |figures: &BTreeMap<(&str, u32, &str), Vec<f64>>, function, pipeline| {
        (0..rounds)
            .map(|r| {
                let logs: f64 = tests
                    .iter()
                    .map(|(test, _)| figures[&(function, pipeline, *test)][r].ln())
                    .sum();
                (logs / tests.len() as f64).exp()
            })
            .collect::<Vec<f64>>()
    };
    for pipeline in PIPELINES {
        for function in [KV, REDIS] {
            for (test, name) in &tests {
                let s = rates[&(function, pipeline, *test)].clone();
                results.push(sampled(group(name, pipeline), function, s, true));
            }
            let g = group("geomean", pipeline);
            results.push(sampled(
                g,
                function,
                geomean(&rates, function, pipeline),
                true,
            ));
            let g = group("cpu-geomean", pipeline);
            results.push(sampled(
                g,
                function,
                geomean(&cpu, function, pipeline),
                false,
            ));
        }
    }
    let mut cpu_section = String::from(
        "### kv: server CPU per request\n\n\
         The CPU time each server spent per request (all its threads, from \
         `/proc/<pid>/task/*/schedstat`), the median of the rounds, in the same runs as the \
         rates. With `-P 16` redis-benchmark saturates its own core, so requests/s is \
         capped by the load generator when both servers keep up; CPU per request is the \
         server's own cost. `ping` is PING_INLINE and PING_MBULK (redis-benchmark runs both for \
         `-t ping`), counted together; an LRANGE run's time includes redis-benchmark's \
         LPUSH fill-up before it (as many LPUSHes as LRANGEs), the same on every server.\n\n\
         | test | beamline-kv | redis-server | redis ÷ kv |\n\
         |---|---|---|---|\n",
    );
    for pipeline in PIPELINES {
        for (test, name) in &tests {
            let at = |function| median(&cpu[&(function, pipeline, *test)]);
            let (kv_cpu, peer) = (at(KV), at(REDIS));
            cpu_section.push_str(&format!(
                "| {name}-p{pipeline} | {kv_cpu:.2} µs | {peer:.2} µs | {:.2}× |\n",
                peer / kv_cpu
            ));
        }
    }
    print!("\n{cpu_section}");
    write_section("kv-cpu", &cpu_section).unwrap();
    let path = write_sampled("kv", &results).unwrap();

    let mut section = format!(
        "### kv: memory beside speed\n\n\
         Each server's peak resident set (`VmHWM`) after every round of `benches/kv.rs` \
         ({}).\n\n\
         | server | peak RSS |\n|---|---|\n",
        cores.describe()
    );
    for (function, bytes) in &peaks {
        section.push_str(&format!(
            "| {function} | {:.1} MiB |\n",
            *bytes as f64 / 1048576.0
        ));
    }
    if !left_out.is_empty() {
        section.push_str(&format!("\nLeft out: {}.\n", left_out.join("; ")));
    }
    print!("\n{section}");
    write_section("kv", &section).unwrap();
    println!("\nwritten to {}", path.display());
}
