//! The demo `cargo xtask demo cluster` runs: a real Redis Cluster (3 primaries, 3 replicas,
//! `redis-server` processes on loopback) serving 64 callers through beamline-redis's
//! `ClusterClient`, one primary killed with SIGKILL midway, the replica's takeover seen by
//! the cluster and by the client. Needs `redis-server` and `redis-cli`
//! (`sudo apt-get install -y redis-server redis-tools`).
//!
//! ```sh
//! cargo xtask demo cluster            # this, then target/demo/cluster/throughput.svg
//! cargo xtask demo cluster --quick    # 8 s instead of 20 s
//! cargo run --release --example cluster_demo -- [--quick] [--out DIR]
//! ```
//!
//! It writes `throughput.csv` (requests answered per node and errors, per 100 ms window),
//! `events.csv` (the kill and the takeover) and `summary.txt` into `--out` (default
//! `target/demo/cluster`), and exits non-zero if any invariant broke (a reply not its own,
//! an error no fault explains, a hang, an `INCRBY` applied twice). The logic is in
//! `beamline_examples::cluster_demo`.

use std::path::PathBuf;
use std::process::ExitCode;

use beamline_examples::cli;
use beamline_examples::cluster_demo::{self, ClusterDemoConfig};

fn main() -> ExitCode {
    let (quick, out) = match cli::demo_args("cluster_demo", std::env::args().skip(1)) {
        Ok(args) => (args.quick, args.out),
        Err(usage) => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    let config = if quick {
        ClusterDemoConfig::quick()
    } else {
        ClusterDemoConfig::full()
    };
    let out = out.unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| PathBuf::from("target"), PathBuf::from)
            .join("demo")
            .join("cluster")
    });
    // Two workers, as the matrix runs: the cluster's six redis-server processes need the
    // machine's cores too.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("no tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = match runtime.block_on(cluster_demo::run(&config)) {
        Ok(report) => report,
        Err(why) => {
            eprintln!("the cluster demo failed: {why}");
            return ExitCode::FAILURE;
        }
    };
    let summary = report.summary();
    println!("\n{summary}");
    let written = std::fs::create_dir_all(&out)
        .and_then(|()| std::fs::write(out.join("throughput.csv"), report.csv()))
        .and_then(|()| std::fs::write(out.join("events.csv"), report.events_csv()))
        .and_then(|()| std::fs::write(out.join("summary.txt"), &summary));
    match written {
        Ok(()) => println!("data: {}", out.join("throughput.csv").display()),
        Err(e) => {
            eprintln!("could not write into {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
    }
    if !report.violations.is_empty() {
        eprintln!("an invariant broke (see the summary): that is a bug");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
