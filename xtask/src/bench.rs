//! `cargo xtask bench`: run the criterion benches, then write BENCHMARKS.md.

use std::fs;
use std::process::Command;
use std::time::Instant;

use crate::cli::BenchArgs;
use crate::steps::{self, Outcome, Report, StepResult};
use crate::{cargo, herd, latency, report, target_dir, workspace_root};

/// Runs the benches (unless `--report-only`) and rewrites BENCHMARKS.md.
pub(crate) fn run(args: &BenchArgs) -> Report {
    let mut out = Report::default();
    if !args.report_only {
        if args.filter.is_none() {
            // A full run starts from an empty results tree, so a bench that was removed or
            // renamed does not linger in BENCHMARKS.md with numbers from an older run.
            for dir in [
                target_dir().join("criterion"),
                target_dir().join("beamline-bench"),
            ] {
                if let Err(e) = fs::remove_dir_all(&dir)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    println!("warning: could not clear {}: {e}", dir.display());
                }
            }
        }
        let mut cmd = Command::new(cargo());
        cmd.current_dir(workspace_root())
            .args(["bench", "--package", "beamline-benches"]);
        if let Some(filter) = &args.filter {
            cmd.args(["--", filter]);
        }
        out.record(steps::run("criterion benches", &mut cmd));
    }
    // The herd is a deterministic simulation, not a timing: it is redrawn on every run.
    let start = Instant::now();
    let mut sections = Vec::new();
    let outcome = match herd::run() {
        Ok(section) => {
            sections.push(section);
            Outcome::Passed
        }
        Err(why) => Outcome::Failed(why),
    };
    out.record(StepResult {
        name: "herd plot (benches/plots/herd.svg)".into(),
        outcome,
        duration: start.elapsed(),
    });
    // The latency bench leaves its percentiles as CSV; drawn when it ran.
    let start = Instant::now();
    let outcome = match latency::run(&target_dir().join("beamline-bench").join("latency.csv")) {
        Ok(Some(section)) => {
            sections.push(section);
            Outcome::Passed
        }
        Ok(None) => Outcome::Skipped("the latency bench did not run".into()),
        Err(why) => Outcome::Failed(why),
    };
    out.record(StepResult {
        name: "latency plot (benches/plots/latency.svg)".into(),
        outcome,
        duration: start.elapsed(),
    });
    let start = Instant::now();
    let outcome = match write_benchmarks_md(&sections) {
        Ok(n) => {
            println!("BENCHMARKS.md: {n} results");
            Outcome::Passed
        }
        Err(why) => Outcome::Failed(why),
    };
    out.record(StepResult {
        name: "BENCHMARKS.md".into(),
        outcome,
        duration: start.elapsed(),
    });
    out
}

/// Rewrites the generated part of BENCHMARKS.md; returns how many results it holds.
fn write_benchmarks_md(sections: &[String]) -> Result<usize, String> {
    let root = workspace_root();
    let mut results = report::load(&target_dir().join("criterion"))?;
    results.extend(report::load_external(&target_dir().join("beamline-bench"))?);
    let goals_path = root.join("benches").join("goals.txt");
    let goals = match fs::read_to_string(&goals_path) {
        Ok(text) => report::parse_goals(&text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("{}: {e}", goals_path.display())),
    };
    let generated = report::render(&results, &goals, sections, &report::this_machine());
    let md_path = root.join("BENCHMARKS.md");
    let existing = match fs::read_to_string(&md_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "# Benchmarks\n".to_owned(),
        Err(e) => return Err(format!("{}: {e}", md_path.display())),
    };
    fs::write(&md_path, report::splice(&existing, &generated))
        .map_err(|e| format!("{}: {e}", md_path.display()))?;
    Ok(results.len())
}
