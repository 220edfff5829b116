//! One huge `RPUSH`, trickled: what it costs `kv` and a real `redis-server` in CPU time.
//!
//! For each size (default 4 and 10 million elements of 4 bytes: a 40 and a 100 MB request),
//! the request is sent to each server in 32 KiB pieces 1 ms apart, like a slow client or a
//! congested link, then the reply is read. The number reported is the server process's CPU
//! time (user + system, from `/proc/<pid>/stat`) spent between the first byte and the reply:
//! the cost of reading, decoding and storing the request, which is what a decoder that
//! rescans a partial frame on every read makes quadratic.
//!
//! ```sh
//! cargo run --release --example rpush_trickle                     # 4M and 10M elements
//! cargo run --release --example rpush_trickle -- 1000000 4000000  # other sizes
//! ```
//!
//! `kv` runs in a child process (this program, started again with `--serve-kv`, on a
//! two-worker runtime as `cargo run --example kv` would have), `redis-server` as
//! `beamline_testkit::RedisServer` starts it. Needs `redis-server` on the PATH. A measurement
//! program, not a test: nothing is asserted beyond the replies being right.

use std::error::Error;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use beamline_examples::kv::{self, KvConfig};
use beamline_testkit::RedisServer;

const PIECE: usize = 32 * 1024;
const GAP: Duration = Duration::from_millis(1);
/// `/proc/<pid>/stat` counts CPU time in USER_HZ ticks, 100 per second on Linux.
const TICKS_PER_SECOND: f64 = 100.0;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve-kv") {
        return serve_kv();
    }
    let sizes: Vec<usize> = if args.is_empty() {
        vec![4_000_000, 10_000_000]
    } else {
        args.iter().map(|a| a.parse()).collect::<Result<_, _>>()?
    };

    let mut kv = Command::new(std::env::current_exe()?)
        .arg("--serve-kv")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut port = String::new();
    BufReader::new(kv.stdout.take().ok_or("kv's stdout")?).read_line(&mut port)?;
    let kv_addr = SocketAddr::from(([127, 0, 0, 1], port.trim().parse::<u16>()?));
    let redis = RedisServer::start();
    let redis_pid = redis.pid().ok_or("redis-server is not running")?;

    println!("server        elements    request MB   wall s   cpu s (user+sys)");
    for &n in &sizes {
        let request = rpush(n);
        for (name, addr, pid) in [
            ("kv", kv_addr, kv.id()),
            ("redis-server", redis.addr(), redis_pid),
        ] {
            let (wall, cpu) = trickle(addr, pid, &request, n)?;
            println!(
                "{name:<12} {n:>10} {:>12.1} {:>8.2} {:>10.2}",
                request.len() as f64 / 1e6,
                wall.as_secs_f64(),
                cpu
            );
        }
    }
    drop(kv.stdin.take()); // EOF: the kv child exits
    kv.wait()?;
    Ok(())
}

/// `RPUSH list e0 e1 ...`: `n` elements of 4 bytes each (10 bytes on the wire apiece).
fn rpush(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 10 + 64);
    out.extend_from_slice(format!("*{}\r\n$5\r\nRPUSH\r\n$4\r\nlist\r\n", n + 2).as_bytes());
    for i in 0..n {
        out.extend_from_slice(format!("$4\r\n{:04}\r\n", i % 10_000).as_bytes());
    }
    out
}

/// Sends `request` to `addr` in pieces, reads the reply (`:n`), deletes the list again, and
/// returns the wall time and the server's CPU seconds spent from first byte to reply.
fn trickle(
    addr: SocketAddr,
    pid: u32,
    request: &[u8],
    n: usize,
) -> Result<(Duration, f64), Box<dyn Error>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let before = cpu_seconds(pid)?;
    let start = Instant::now();
    for piece in request.chunks(PIECE) {
        stream.write_all(piece)?;
        std::thread::sleep(GAP);
    }
    let reply = read_line(&mut stream)?;
    let wall = start.elapsed();
    let cpu = cpu_seconds(pid)? - before;
    if reply != format!(":{n}") {
        return Err(format!("{addr} answered {reply:?} to RPUSH of {n}").into());
    }
    stream.write_all(b"DEL list\r\n")?;
    read_line(&mut stream)?;
    Ok((wall, cpu))
}

/// One reply line (at most 1 KiB: both replies expected here are short).
fn read_line(stream: &mut TcpStream) -> Result<String, Box<dyn Error>> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if line.len() > 1024 {
            return Err("a reply line longer than 1 KiB".into());
        }
        if stream.read(&mut byte)? == 0 {
            return Err("the server closed the connection".into());
        }
        line.push(byte[0]);
    }
    line.truncate(line.len() - 2);
    Ok(String::from_utf8(line)?)
}

/// User + system CPU time of process `pid` (all its threads), in seconds.
fn cpu_seconds(pid: u32) -> Result<f64, Box<dyn Error>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which is in parentheses and may hold spaces): state is
    // field 3, utime 14 and stime 15.
    let after_name = stat.rsplit_once(')').ok_or("unexpected /proc stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64, Box<dyn Error>> {
        Ok(fields.get(i).ok_or("short /proc stat")?.parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / TICKS_PER_SECOND)
}

/// The child: a kv server on a free loopback port (printed on stdout) until stdin closes.
fn serve_kv() -> Result<(), Box<dyn Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let server = kv::start(KvConfig::new().addr(SocketAddr::from(([127, 0, 0, 1], 0))))?;
        println!("{}", server.local_addr().port());
        // Blocks this thread only; the server runs on the workers.
        tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await??;
        drop(server);
        Ok(())
    })
}
