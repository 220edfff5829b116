//! beamline's developer commands, run as `cargo xtask <command>` (see `cargo xtask help`).
//!
//! One binary, one module per subcommand, two dependencies: serde_json (criterion's saved
//! estimates, external bench results, matrix reports) and indicatif (the matrix's progress bar).

mod bench;
mod cli;
mod demo;
mod features;
mod herd;
mod latency;
mod matrix;
mod prereq;
mod report;
mod steps;
mod svg;
mod test;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("error: {e}\n\n{}", cli::HELP);
            return ExitCode::from(2);
        }
    };
    let report = match command {
        cli::Command::Help => {
            print!("{}", cli::HELP);
            return ExitCode::SUCCESS;
        }
        cli::Command::Test(args) => test::run(&args),
        cli::Command::Bench(args) => bench::run(&args),
        cli::Command::Demo(args) => {
            // The demo's own summary comes last: it is what the user ran the demo for.
            let demo = demo::run(&args);
            print!("{}", demo.report.recap());
            println!("{}", demo.report.summary_line());
            if let Some(summary) = demo.summary {
                print!("\n{summary}");
            }
            return if demo.report.success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
    };
    print!("{}", report.recap());
    println!("{}", report.summary_line());
    if report.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The workspace root (xtask lives one level below it).
pub(crate) fn workspace_root() -> &'static Path {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir)
}

/// The cargo that invoked us (`$CARGO`), so the same toolchain runs every step.
pub(crate) fn cargo() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}

/// Where cargo puts build output (criterion writes its estimates below it).
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
}
