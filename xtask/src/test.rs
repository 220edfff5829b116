//! `cargo xtask test`: prerequisites, fmt, clippy, the workspace tests, the facade's features
//! one by one, the matrix.

use std::process::Command;
use std::time::Instant;

use crate::cli::TestArgs;
use crate::steps::{self, Outcome, Report, StepResult};
use crate::{cargo, features, matrix, prereq, workspace_root};

/// Runs the steps `args` selects, in order, and returns what happened.
pub(crate) fn run(args: &TestArgs) -> Report {
    let mut report = Report::default();
    let cargo = cargo();
    let matrix_only = args.only.is_some();

    // Prerequisites first: a missing peer stops the run with the command that fixes it,
    // instead of surfacing later as a confusing test failure (or, worse, a skip).
    let start = Instant::now();
    let checked = prereq::ensure_cargo_tools(&cargo, !args.quick && !matrix_only)
        .and_then(|()| prereq::ensure_system());
    let failed = checked.is_err();
    report.record(StepResult {
        name: "prerequisites".into(),
        outcome: match checked {
            Ok(()) => Outcome::Passed,
            Err(why) => Outcome::Failed(why),
        },
        duration: start.elapsed(),
    });
    if failed {
        return report;
    }

    if !matrix_only {
        let cmd = |args: &[&str]| {
            let mut c = Command::new(&cargo);
            c.args(args).current_dir(workspace_root());
            c
        };
        report.record(steps::run("fmt", &mut cmd(&["fmt", "--all", "--check"])));
        if args.quick {
            report.record(skipped("clippy", "--quick"));
        } else {
            report.record(steps::run(
                "clippy",
                &mut cmd(&[
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ]),
            ));
        }
        // `cargo test --workspace` runs unit, integration and doc tests of every member.
        report.record(steps::run("tests", &mut cmd(&["test", "--workspace"])));
        // Every facade feature alone, none and all (feature unification in the workspace
        // build above would hide a feature that forgot what it needs).
        if args.quick {
            report.record(skipped("facade features", "--quick"));
        } else {
            features::run(&mut report);
        }
    }

    if args.quick {
        report.record(skipped("integration matrix", "--quick"));
    } else {
        matrix::run(&mut report, args.only.as_deref());
    }
    report
}

fn skipped(name: &str, why: &str) -> StepResult {
    StepResult {
        name: name.into(),
        outcome: Outcome::Skipped(why.into()),
        duration: std::time::Duration::ZERO,
    }
}
