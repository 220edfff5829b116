//! The demo `cargo xtask demo` runs: 1,000 `beamline::Client`s doing GET/SET against the
//! `kv` server, which is killed and restarted under them twice — once with clients whose
//! reconnect backoff has no jitter (the thundering herd), once with full jitter (its cure).
//!
//! ```sh
//! cargo xtask demo            # this, then the plot drawn as target/demo/reconnects.svg
//! cargo xtask demo --quick    # shorter phases
//! cargo run --release --example demo -- [--quick] [--out DIR]
//! ```
//!
//! It writes `reconnects.csv` (attempts per 100 ms window from the kill on, per phase) and
//! `summary.txt` into `--out` (default `target/demo`). The logic is in
//! `beamline_examples::demo`.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use beamline_examples::cli;
use beamline_examples::demo::{self, DemoConfig};

/// Set in the re-executed process, so a failed raise is not retried forever.
const RAISED: &str = "BEAMLINE_DEMO_FD_RAISED";

fn main() -> ExitCode {
    let (quick, out) = match cli::demo_args("demo", std::env::args().skip(1)) {
        Ok(args) => (args.quick, args.out),
        Err(usage) => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    let mut config = if quick {
        DemoConfig::quick()
    } else {
        DemoConfig::full()
    };
    if let Some(code) = fit_open_files(&mut config) {
        return code;
    }
    let out = out.unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| PathBuf::from("target"), PathBuf::from)
            .join("demo")
    });
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("no tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = match runtime.block_on(demo::run(&config)) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("the demo failed: {}", cli::report(&e));
            return ExitCode::FAILURE;
        }
    };
    let summary = report.summary();
    println!("\n{summary}");
    let written = std::fs::create_dir_all(&out)
        .and_then(|()| std::fs::write(out.join("reconnects.csv"), report.csv()))
        .and_then(|()| std::fs::write(out.join("summary.txt"), &summary));
    match written {
        Ok(()) => println!("data: {}", out.join("reconnects.csv").display()),
        Err(e) => {
            eprintln!("could not write into {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
    }
    if report.wrong_replies() > 0 {
        eprintln!("a reply reached the wrong caller: that is a bug");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Makes sure the process may open the descriptors `config` needs: if the soft limit is
/// too low but the hard limit allows more, runs the demo again through `sh -c 'ulimit -n'`
/// (returning its exit code); if the hard limit itself is too low, says so and shrinks the
/// number of clients to fit.
fn fit_open_files(config: &mut DemoConfig) -> Option<ExitCode> {
    let needed = config.fds_needed();
    let (soft, hard) = demo::open_files_limit()?;
    if soft >= needed {
        return None;
    }
    if hard > soft && std::env::var_os(RAISED).is_none() {
        let raise_to = if hard == u64::MAX {
            "unlimited".to_owned()
        } else {
            hard.to_string()
        };
        println!("raising the open files limit from {soft} to {raise_to} ({needed} needed)");
        let exe = std::env::current_exe().ok()?;
        let status = Command::new("sh")
            .arg("-c")
            .arg(r#"ulimit -n "$1" && shift && exec "$@""#)
            .arg("sh")
            .arg(raise_to)
            .arg(exe)
            .args(std::env::args_os().skip(1))
            .env(RAISED, "1")
            .status();
        return Some(match status {
            Ok(status) if status.success() => ExitCode::SUCCESS,
            Ok(status) => ExitCode::from(status.code().unwrap_or(1).clamp(1, 255) as u8),
            Err(e) => {
                eprintln!("could not re-run the demo through sh to raise the limit: {e}");
                ExitCode::FAILURE
            }
        });
    }
    let fits = (soft.saturating_sub(256) / 2) as usize;
    println!(
        "NOTE: the hard limit on open files is {hard} (soft {soft}); {} clients need about {needed}. \
         Running with {fits} clients instead; raise the hard limit (`ulimit -Hn`, as root, or \
         /etc/security/limits.conf) to see all of them.",
        config.clients
    );
    config.clients = fits.max(1);
    None
}
