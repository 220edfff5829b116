//! A RESP2 key-value server on beamline-server: every connection is its own supervised
//! process, the key space is sharded across locks, and the real Redis tools talk to it.
//!
//! Try it:
//!
//! ```sh
//! cargo run --release --example kv                  # listens on 127.0.0.1:6380
//! cargo run --release --example kv -- --port 7379   # or --addr 127.0.0.1:7379
//! cargo run --release --example kv -- --proxy-protocol   # behind HAProxy send-proxy(-v2)
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
//! QUIT. Ctrl-C (or SIGTERM) stops it gracefully: no new connections, every connection
//! finishes the requests it is answering, then closes.
//!
//! In a fleet:
//!
//! ```sh
//! # behind a balancer: the client's address comes from the PROXY header
//! kv --port 6380 --proxy-protocol --proxy-from 10.0.0.0/8 --max-connections-per-ip 100
//!
//! # upgrades that refuse no connection: the running one waits at the upgrade socket...
//! kv --port 6380 --upgrade-socket /run/kv.upgrade
//! # ...a new binary takes its listening socket, accepts, then the old one drains and exits
//! kv --port 6380 --upgrade-from /run/kv.upgrade --upgrade-socket /run/kv.upgrade
//! ```
//!
//! Under systemd (`Type=notify`, `NotifyAccess=all` for upgrades) it says `READY=1` once it
//! serves (`MAINPID=` too after an upgrade) and `STOPPING=1` when it drains. It prints the
//! number of open descriptors when it starts and when it exits: the same, whatever it
//! handed over or took.
//!
//! Threads: `--threads N` (else `TOKIO_WORKER_THREADS`, else the cores it may run on, so
//! `taskset -c 1 kv` gets one). With one, kv is one event loop on one thread, as
//! redis-server is: tokio's current-thread runtime, which costs less per wake-up than the
//! work-stealing scheduler. With more, tokio's multi-thread runtime. On a small machine that
//! also runs the load generator, give kv the cores the load generator does not use.

use std::time::Duration;

use beamline::server::{Notifier, Predecessor, Successor, UpgradeListener};
use beamline_examples::cli;
use beamline_examples::kv::flags::KvFlags;
use beamline_examples::kv::{self, KvServer};
use tokio::signal::unix::{SignalKind, signal};

/// How long each step of an upgrade may take.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long live connections have to finish when the server stops or hands over.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Waits for a successor at the upgrade socket, or for ever when there is none.
async fn successor(
    upgrades: Option<UpgradeListener>,
) -> Result<Successor, beamline::server::UpgradeError> {
    match upgrades {
        Some(upgrades) => upgrades.accept().await,
        None => std::future::pending().await,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flags = KvFlags::from_args()?;
    // One thread: one event loop on this thread, as redis-server runs. More: a worker each.
    let runtime = match flags.threads().get() {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
    };
    runtime.block_on(serve(flags))
}

async fn serve(flags: KvFlags) -> Result<(), Box<dyn std::error::Error>> {
    cli::init_tracing();
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let notifier = Notifier::from_env()?;
    let fds_at_start = beamline_testkit::open_fds();

    let (server, predecessor) = match &flags.upgrade_from {
        Some(path) => {
            let (fds, predecessor) = Predecessor::connect(path, UPGRADE_TIMEOUT).await?;
            (kv::start_inherited(flags.config(), fds)?, Some(predecessor))
        }
        None => (kv::start(flags.config())?, None),
    };
    let pid = std::process::id();
    println!(
        "kv listening on {} (pid {pid}); try `redis-cli -p {}`",
        server.local_addr(),
        server.local_addr().port()
    );
    let upgraded = predecessor.is_some();
    if let Some(predecessor) = predecessor {
        predecessor.ready(UPGRADE_TIMEOUT).await?;
        println!("took over from the previous process");
    }
    if let Some(n) = &notifier {
        if upgraded {
            n.ready_as_main(pid)?
        } else {
            n.ready()?
        }
    }
    // Bound after the predecessor stopped accepting: it has given the path up by then.
    let upgrades = flags
        .upgrade_socket
        .as_ref()
        .map(UpgradeListener::bind)
        .transpose()?;
    if let Some(upgrades) = &upgrades {
        println!("waiting for a successor at {}", upgrades.path().display());
    }

    tokio::select! {
        _ = interrupt.recv() => println!("draining (at most 5 s)..."),
        _ = terminate.recv() => println!("draining (at most 5 s)..."),
        next = successor(upgrades) => {
            let next = next?;
            let to = next.pid().map_or_else(|| "?".to_owned(), |p| p.to_string());
            let sockets = server.server().hand_over(next, UPGRADE_TIMEOUT).await?;
            println!("handed {sockets} listening sockets to pid {to}; draining");
        }
    }
    if let Some(n) = &notifier {
        n.stopping()?;
    }
    stop(server, fds_at_start).await
}

async fn stop(server: KvServer, fds_at_start: usize) -> Result<(), Box<dyn std::error::Error>> {
    let report = server.shutdown(DRAIN_TIMEOUT).await?;
    let stats = server.server().stats();
    let keys = server.keys();
    drop(server);
    println!(
        "stopped: {} drained, {} aborted; {} connections served, {} keys held; \
         open fds at start {fds_at_start}, at exit {}",
        report.drained,
        report.aborted,
        stats.accepted,
        keys,
        beamline_testkit::open_fds()
    );
    Ok(())
}
