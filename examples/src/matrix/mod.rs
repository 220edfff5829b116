//! The integration matrix that `cargo xtask test` runs: the whole stack under faults.
//!
//! A cell is transport {`tcp`, `tls`} × client shape {`single`, `pooled`, `mux`,
//! `pooled+mux`} × fault {`none`, `latency`, `reset`, `restart`, `partition`,
//! `slow-reader`}: 48 cells, named `tcp/pooled+mux/reset`; plus the FIFO family over TCP,
//! the same shapes without request ids ({`fifo`, `fifo-single`, `fifo-pooled`,
//! `pooled+fifo`}) under one fault, `abandoned-reply` (`tcp/fifo/abandoned-reply`: the
//! server swallows one reply, and the client's abandon timeout must replace the wedged
//! connection). Each runs in its own process (`cargo run --example matrix -- --run <cell>`),
//! in a tokio runtime of its own:
//!
//! ```text
//! callers ─► beamline::Client (cell's shape) ─► beamline-chaos Proxy (cell's fault) ─► beamline-server + serve_wire (echo)
//! ```
//!
//! The server is a beamline-server in-process (over TLS with certificates from a CA made for
//! the cell) serving beamline's wire format with `beamline_mux::serve_wire`; every answer is
//! the request's own bytes, some of them late, so answers overtake each other. The FIFO
//! cells' server speaks length-delimited frames without ids and answers in order. The proxy
//! injects the fault on a `Schedule`: at 0.5 s, for 2 s ([`Timeline::standard`]). The
//! client is the facade's `Client` in the cell's shape ([`Shape`]), with short bounds: a
//! 1 s request timeout, a 1 s offline queue, a 1 s pool checkout and connect timeout, and a
//! 50–400 ms fully jittered reconnect backoff.
//!
//! # What a cell checks
//!
//! - **Every request ends before its deadline** with its own answer or a typed error. The
//!   deadline is the sum of the bounds a request can meet (checkout, offline queue, its own
//!   timeout) plus 1 s of slack; errors are counted by kind (`not_sent`,
//!   `connection_lost`, `timeout`, `offline_timeout`, `checkout_timeout`, ...). An error no
//!   network fault explains (`remote`, `cancelled`, `request`, `closed`) is a failure, and
//!   so is any error in the `none` and `latency` cells.
//! - **No answer reaches the wrong caller**: every payload is unique (caller, sequence
//!   number, seeded body) and every answer must be byte-for-byte its request's.
//! - **Success resumes after the heal**: once the fault is over, every caller sends 20 more
//!   requests and every one must succeed.
//! - **The fault really happened**: each fault must leave its trace (resets counted by the
//!   proxy, a client back on the restarted server, requests slowed past the latency floor,
//!   the slow reader's bytes under its rate), so a cell cannot pass with a fault that never
//!   fired.
//! - **Nothing leaks**: after the client, proxy and server are shut down, the runtime has no
//!   live task, and the process holds as many file descriptors as before the runtime began.
//!
//! The `balanced/*` cells (`balanced/slow-endpoint`, `balanced/reset-endpoint`,
//! `balanced/endpoint-removed`) put one balanced client over five servers behind five
//! proxies; see [`balanced`].
//!
//! The `cluster/*` cells (`cluster/none`, `cluster/kill-primary`,
//! `cluster/manual-failover`, `cluster/migrate-slot`, `cluster/partition-primary`) put
//! beamline-redis's `ClusterClient` over a real Redis Cluster of `redis-server` processes (3
//! primaries, 3 replicas) while a primary is killed, failed over, loses a slot to a
//! migration or is partitioned behind a proxy; see [`cluster`]. They also report
//! `recovery_ms`, the time from the fault to the first successful write on the slots it
//! affected.
//!
//! In all: 48 + 4 FIFO + 3 balanced + 5 cluster = 60 cells.
//!
//! The cell prints its progress, then one `MATRIX-RESULT {json}` line (see [`CellReport`])
//! and exits 0 only if every invariant held. Seeds come from the cell's name, so a run
//! replays: the proxy's jitter, the reconnect backoff's jitter and every payload.

pub mod balanced;
mod cell;
pub mod cluster;
mod fault;
mod load;
mod report;
mod run;
mod server;

pub use cell::{Cell, CellParseError, Fault, Shape, Transport};
pub use report::{CellReport, RESULT_PREFIX};
pub use run::{Timeline, run_cell};

// The demo counts the same error kinds and computes the same percentiles.
pub(crate) use load::{kind as error_kind, percentile_ms};

use std::process::ExitCode;

/// How to call the matrix program.
pub const USAGE: &str = "\
usage: matrix --list
       matrix --run <cell> [--seed <n>]
  --list   print every cell's name, one per line
  --run    run one cell (`tcp/pooled+mux/reset`, `balanced/slow-endpoint`,
           `cluster/kill-primary`, ...); the last line is `MATRIX-RESULT {json}`, exit 0 when it passed";

/// The matrix program: `--list` or `--run <cell> [--seed <n>]` (see [`USAGE`]).
pub fn main(args: impl IntoIterator<Item = String>) -> ExitCode {
    let args: Vec<String> = args.into_iter().collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--list"] => {
            for cell in Cell::all() {
                println!("{cell}");
            }
            for cell in balanced::CELLS.iter().chain(&cluster::CELLS) {
                println!("{cell}");
            }
            ExitCode::SUCCESS
        }
        ["--run", name] => run_named(name, None),
        ["--run", name, "--seed", seed] => match seed.parse() {
            Ok(seed) => run_named(name, Some(seed)),
            Err(_) => usage(&format!("`{seed}` is not a seed (an unsigned integer)")),
        },
        _ => usage("unexpected arguments"),
    }
}

fn run_named(name: &str, seed: Option<u64>) -> ExitCode {
    let report = if let Some(fault) = balanced::BalancedFault::of(name) {
        balanced::run_balanced(fault, seed.unwrap_or_else(|| fault.seed()))
    } else if let Some(fault) = cluster::ClusterFault::of(name) {
        cluster::run_cluster(fault, seed.unwrap_or_else(|| fault.seed()))
    } else {
        let cell: Cell = match name.parse() {
            Ok(cell) => cell,
            Err(e) => return usage(&e.to_string()),
        };
        run_cell(
            cell,
            seed.unwrap_or_else(|| cell.seed()),
            &Timeline::for_fault(cell.fault),
        )
    };
    for failure in &report.failures {
        println!("FAILED: {failure}");
    }
    println!("{}", report.result_line());
    if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn usage(why: &str) -> ExitCode {
    eprintln!("error: {why}\n{USAGE}");
    ExitCode::from(2)
}
