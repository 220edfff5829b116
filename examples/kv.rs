//! A RESP2 key-value server on beamline-server: every connection is its own supervised
//! process, the key space is sharded across locks, and the real Redis tools talk to it.
//!
//! Try it:
//!
//! ```sh
//! cargo run --release --example kv                  # listens on 127.0.0.1:6380
//! cargo run --release --example kv -- --port 7379   # or --addr 127.0.0.1:7379
//!
//! redis-cli -p 6380 ping
//! redis-cli -p 6380 set greeting hello EX 10
//! redis-cli -p 6380 get greeting
//! redis-cli -p 6380 ttl greeting
//! redis-cli -p 6380 incr visits
//! redis-cli -p 6380                                  # interactive
//! redis-benchmark -p 6380 -q -t ping,set,get,incr,lpush,rpush,lpop,rpop,mset -P 16
//! printf 'PING\r\nECHO hi\r\n' | nc 127.0.0.1 6380    # inline commands work too
//! ```
//!
//! Commands: PING, ECHO, GET, SET (NX/XX, GET, EX/PX/EXAT/PXAT/KEEPTTL), MGET, MSET, INCR,
//! DECR, INCRBY, DECRBY, DEL, EXISTS, TYPE, EXPIRE, PEXPIRE, TTL, PTTL, PERSIST, DBSIZE,
//! FLUSHDB, FLUSHALL, LPUSH, RPUSH, LPOP, RPOP, LLEN, LRANGE, SELECT 0, CLIENT, CONFIG GET,
//! QUIT. Ctrl-C stops it gracefully: no new connections, every connection finishes the
//! requests it is answering, then closes.

use std::net::SocketAddr;
use std::time::Duration;

use beamline_examples::kv::{self, DEFAULT_ADDR, KvConfig};

/// `--port` / `--addr`, or the default address.
fn addr() -> Result<SocketAddr, Box<dyn std::error::Error>> {
    let mut addr: SocketAddr = DEFAULT_ADDR.parse()?;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => addr.set_port(value.parse()?),
            "--addr" => addr = value.parse()?,
            other => return Err(format!("unknown flag {other} (use --port or --addr)").into()),
        }
    }
    Ok(addr)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let server = kv::start(KvConfig::new().addr(addr()?))?;
    println!(
        "kv listening on {}; try `redis-cli -p {}`; Ctrl-C stops it gracefully",
        server.local_addr(),
        server.local_addr().port()
    );

    tokio::signal::ctrl_c().await?;
    println!("draining (at most 5 s)...");
    let report = server.shutdown(Duration::from_secs(5)).await?;
    let stats = server.server().stats();
    println!(
        "stopped: {} drained, {} aborted; {} connections served, {} keys held",
        report.drained,
        report.aborted,
        stats.accepted,
        server.keys()
    );
    Ok(())
}
