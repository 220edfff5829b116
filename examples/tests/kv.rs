//! The `kv` example against the real tools: `redis-cli` (one-shot commands, a scripted
//! session, `--pipe` mass insertion) and `redis-benchmark`, started on a free loopback port;
//! beamline's own FIFO `Client` pipelining through it; bad input over a real socket; and
//! the graceful drain.
#![allow(clippy::unwrap_used)]

mod kv_support;

use std::io::Write;
use std::time::Duration;

use beamline::Client;
use beamline::resp::{Command, Value};
use beamline_examples::kv::{self, KvConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use kv_support::{cli, exchange, run_tool, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_one_shot_commands() {
    let kv = start();
    let addr = kv.local_addr();
    assert_eq!(cli(addr, &["PING"]).await, "PONG");
    assert_eq!(cli(addr, &["ECHO", "hello world"]).await, "hello world");
    assert_eq!(cli(addr, &["SET", "greeting", "hi"]).await, "OK");
    assert_eq!(cli(addr, &["GET", "greeting"]).await, "hi");
    assert_eq!(cli(addr, &["INCR", "visits"]).await, "1");
    assert_eq!(cli(addr, &["INCR", "visits"]).await, "2");
    assert_eq!(cli(addr, &["MSET", "a", "1", "b", "2"]).await, "OK");
    assert_eq!(cli(addr, &["MGET", "a", "b", "nope"]).await, "1\n2");
    assert_eq!(cli(addr, &["EXISTS", "a", "b", "nope"]).await, "2");
    assert_eq!(cli(addr, &["DEL", "a", "nope"]).await, "1");
    assert_eq!(cli(addr, &["DBSIZE"]).await, "3");
    assert_eq!(
        cli(addr, &["GET"]).await,
        "ERR wrong number of arguments for 'get' command"
    );
    assert_eq!(
        cli(addr, &["INCR", "greeting"]).await,
        "ERR value is not an integer or out of range"
    );
    assert_eq!(cli(addr, &["RPUSH", "list", "x"]).await, "1");
    assert_eq!(
        cli(addr, &["GET", "list"]).await,
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    assert_eq!(
        cli(addr, &["NOSUCH", "x"]).await,
        "ERR unknown command 'NOSUCH', with args beginning with: 'x'"
    );
    assert_eq!(cli(addr, &["FLUSHDB"]).await, "OK");
    assert_eq!(cli(addr, &["DBSIZE"]).await, "0");
    assert_eq!(kv.server().stats().panicked, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_sees_a_key_expire() {
    let kv = start();
    let addr = kv.local_addr();
    // Long enough for the checks below to run before it, on a loaded machine too.
    let set_at = std::time::Instant::now();
    assert_eq!(cli(addr, &["SET", "k", "v", "PX", "1000"]).await, "OK");
    assert_eq!(cli(addr, &["SET", "stays", "v", "EX", "100"]).await, "OK");
    assert_eq!(cli(addr, &["GET", "k"]).await, "v");
    let pttl: i64 = cli(addr, &["PTTL", "k"]).await.parse().unwrap();
    assert!((1..=1000).contains(&pttl), "{pttl}");
    assert_eq!(cli(addr, &["TTL", "stays"]).await, "100");
    // redis-cli is a separate process on the wall clock: this wait is the tool's.
    tokio::time::sleep_until((set_at + Duration::from_millis(1050)).into()).await;
    assert_eq!(cli(addr, &["GET", "k"]).await, "", "nil after the deadline");
    assert_eq!(cli(addr, &["TTL", "k"]).await, "-2");
    assert_eq!(cli(addr, &["EXISTS", "k", "stays"]).await, "1");
    assert_eq!(cli(addr, &["PERSIST", "stays"]).await, "1");
    assert_eq!(cli(addr, &["TTL", "stays"]).await, "-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_session_and_pipe_mode() {
    let kv = start();
    let port = kv.local_addr().port().to_string();
    // A scripted session on one connection: the connection's name lives as long as it does.
    let script = b"CLIENT SETNAME tester\nCLIENT GETNAME\nSET n 10\nINCRBY n 5\nGET n\nLPUSH l a b c\nLRANGE l 0 -1\nSELECT 0\nCONFIG GET appendonly\n";
    let output = run_tool(
        "redis-cli",
        vec!["-p".into(), port.clone()],
        script.to_vec(),
    )
    .await;
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            "OK",
            "tester",
            "OK",
            "15",
            "15",
            "3",
            "c",
            "b",
            "a",
            "OK",
            "appendonly",
            "no"
        ]
    );

    // Mass insertion: redis-cli writes everything, then waits for every reply.
    let mut pipe = Vec::new();
    for i in 0..2_000 {
        let (k, v) = (format!("key:{i}"), format!("value:{i}"));
        write!(
            pipe,
            "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n",
            k.len(),
            v.len()
        )
        .unwrap();
    }
    let output = run_tool("redis-cli", vec!["-p".into(), port, "--pipe".into()], pipe).await;
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("errors: 0, replies: 2000"), "{text}");
    assert_eq!(kv.keys(), 2_000 + 2);
}

/// The `NAME: 12345.67 requests per second, ...` lines of `redis-benchmark -q`.
fn rates(output: &[u8]) -> Vec<(String, f64)> {
    String::from_utf8_lossy(output)
        .split(['\r', '\n'])
        .filter_map(|line| {
            let (name, rest) = line.split_once(": ")?;
            let rate = rest
                .strip_suffix(" requests per second")
                .or_else(|| rest.split_once(" requests per second,").map(|(r, _)| r))?;
            Some((name.trim().to_owned(), rate.trim().parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_benchmark_runs_every_supported_default_test() {
    let kv = start();
    let addr = kv.local_addr();
    let n = 10_000;
    let args = |tests: &str, n: u32| {
        vec![
            "-p".into(),
            addr.port().to_string(),
            "-q".into(),
            "-n".into(),
            n.to_string(),
            "-t".into(),
            tests.into(),
        ]
    };
    let output = run_tool(
        "redis-benchmark",
        args("ping,set,get,incr,lpush,rpush,lpop,rpop,mset", n),
        Vec::new(),
    )
    .await;
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !all.contains("ERR") && !all.to_lowercase().contains("error"),
        "{all}"
    );
    assert!(!all.contains("WARNING"), "CONFIG GET answered: {all}");
    let found = rates(&output.stdout);
    let names: Vec<&str> = found.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "PING_INLINE",
            "PING_MBULK",
            "SET",
            "GET",
            "INCR",
            "LPUSH",
            "RPUSH",
            "LPOP",
            "RPOP",
            "MSET (10 keys)"
        ],
        "{all}"
    );
    for (name, rate) in &found {
        assert!(
            *rate > 100.0,
            "{name}: {rate} requests/s is not plausible\n{all}"
        );
    }
    // Every request was applied exactly once: the INCR test's counter went up by n, the
    // pushes and pops cancel out.
    assert_eq!(
        cli(addr, &["GET", "counter:__rand_int__"]).await,
        n.to_string()
    );
    assert_eq!(cli(addr, &["LLEN", "mylist"]).await, "0");
    assert_eq!(cli(addr, &["GET", "key:__rand_int__"]).await, "VXK");

    // LRANGE replies are large: a shorter run keeps the debug test fast.
    let output = run_tool("redis-benchmark", args("lrange", 1_000), Vec::new()).await;
    let found = rates(&output.stdout);
    let names: Vec<&str> = found.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "LPUSH (needed to benchmark LRANGE)",
            "LRANGE_100 (first 100 elements)",
            "LRANGE_300 (first 300 elements)",
            "LRANGE_500 (first 500 elements)",
            "LRANGE_600 (first 600 elements)"
        ]
    );
    assert_eq!(cli(addr, &["LLEN", "mylist"]).await, "1000");
    let stats = kv.server().stats();
    assert_eq!((stats.panicked, stats.errored), (0, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beamline_client_pipelines_through_kv_in_order() {
    let kv = start();
    let client = Client::builder(kv.local_addr().to_string())
        .resp()
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    // 32 callers share one connection; the mux pipelines their requests and matches each
    // reply to its caller by order alone.
    let callers: Vec<_> = (0..32)
        .map(|caller| {
            let client = client.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    let (key, value) = (format!("c{caller}"), format!("{caller}-{i}"));
                    let set = client.call(Command::new("SET").arg(&key).arg(&value)).await;
                    assert_eq!(set.unwrap(), Value::ok());
                    let echo = client.call(Command::new("ECHO").arg(&value)).await;
                    assert_eq!(echo.unwrap(), Value::bulk(value.clone()));
                    let n = client
                        .call(Command::new("INCR").arg(format!("n{caller}")))
                        .await;
                    assert_eq!(n.unwrap(), Value::Integer(i + 1));
                    let get = client.call(Command::new("GET").arg(&key)).await;
                    assert_eq!(get.unwrap(), Value::bulk(value));
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    assert_eq!(kv.keys(), 64);
    assert_eq!(
        kv.server().stats().accepted,
        1,
        "one connection carried every caller"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_over_a_socket_is_answered_and_closes_only_that_connection() {
    let kv = kv::start(
        KvConfig::new()
            .addr("127.0.0.1:0".parse().unwrap())
            .max_bulk_len(1024),
    )
    .unwrap();
    let addr = kv.local_addr();
    let mut bystander = TcpStream::connect(addr).await.unwrap();
    // An oversized bulk is refused from its header, before its body is sent.
    assert_eq!(
        exchange(addr, b"PING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048576\r\n").await,
        b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"
    );
    assert_eq!(
        exchange(addr, b"*2\r\n+GET\r\n+k\r\n").await,
        b"-ERR Protocol error: expected '$', got '+'\r\n"
    );
    assert_eq!(
        exchange(addr, b"*1x\r\n").await,
        b"-ERR Protocol error: invalid multibulk length\r\n"
    );
    // A line that never ends is refused once it passes the inline limit (64 KiB).
    let endless: Vec<u8> = (0..=255u8)
        .filter(|&b| b != b'\n')
        .cycle()
        .take(100_000)
        .collect();
    assert_eq!(
        exchange(addr, &endless).await,
        b"-ERR Protocol error: too big inline request\r\n"
    );
    // Binary lines are inline commands, as in Redis: each gets its unknown-command error
    // and the connection goes on, up to the QUIT. (A quote would start a quoted argument,
    // and an unbalanced one closes the connection, as below.)
    let mut lines: Vec<u8> = (0..=255u8)
        .cycle()
        .take(256 * 20)
        .filter(|b| !matches!(b, b'"' | b'\''))
        .collect();
    lines.extend_from_slice(b"\r\nQUIT\r\n");
    let reply = exchange(addr, &lines).await;
    let errors = reply
        .windows(20)
        .filter(|w| w == b"-ERR unknown command")
        .count();
    // 21 lines; the first starts with a NUL, where Redis's `sdssplitargs` stops reading, so
    // it is an empty line and gets no reply.
    assert_eq!(errors, 20, "{:?}", String::from_utf8_lossy(&reply));
    assert!(reply.ends_with(b"+OK\r\n"));
    assert_eq!(
        exchange(addr, b"SET \"k v\r\n").await,
        b"-ERR Protocol error: unbalanced quotes in request\r\n"
    );
    // The bystander connection and the server are untouched.
    bystander.write_all(b"PING\r\n").await.unwrap();
    let mut pong = [0u8; 7];
    bystander.read_exact(&mut pong).await.unwrap();
    assert_eq!(&pong, b"+PONG\r\n");
    let stats = kv.server().stats();
    assert_eq!((stats.panicked, stats.errored), (0, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_drains_connections() {
    let kv = start();
    let mut conn = TcpStream::connect(kv.local_addr()).await.unwrap();
    conn.write_all(b"SET k v\r\n").await.unwrap();
    let mut ok = [0u8; 5];
    conn.read_exact(&mut ok).await.unwrap();
    assert_eq!(&ok, b"+OK\r\n");
    let report = kv.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!((report.drained, report.aborted), (1, 0));
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    assert!(TcpStream::connect(kv.local_addr()).await.is_err());
}
