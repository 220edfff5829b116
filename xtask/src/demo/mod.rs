//! `cargo xtask demo`: the main job a new user runs.
//!
//! Runs the `demo` program of the examples package in release
//! (`cargo run --release -p beamline-examples --example demo -- [--quick] --out target/demo`):
//! the `kv` server, 1,000 reconnecting clients, the server killed and restarted under them,
//! once with clients whose backoff has no jitter and once with full jitter. The program shows
//! its live progress and writes `reconnects.csv` and `summary.txt`; xtask then draws
//! `target/demo/reconnects.svg` (reconnect attempts per 100 ms window, one line per jitter)
//! and prints the summary as its last lines.
//!
//! `cargo xtask demo cluster [--quick]` runs the cluster demo instead (see [`cluster`]).

mod cluster;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::cli::{DemoArgs, DemoKind};
use crate::herd::{Column, parse_csv, series};
use crate::steps::{self, Outcome, Report, StepResult};
use crate::svg::Chart;
use crate::{cargo, target_dir, workspace_root};

/// What the demo run left behind: the steps, and the summary to print last.
#[derive(Debug)]
pub(crate) struct DemoRun {
    pub(crate) report: Report,
    pub(crate) summary: Option<String>,
}

/// Runs the demo `args` names and draws its plot.
pub(crate) fn run(args: &DemoArgs) -> DemoRun {
    match args.kind {
        DemoKind::Reconnect => run_reconnect(args.quick),
        DemoKind::Cluster => cluster::run(args.quick),
    }
}

/// Runs `example` of the examples package in release with `[--quick] --out <out>`, after
/// removing `stale` from `out` (a file of an earlier run must not be drawn as this run's).
fn run_example(example: &str, quick: bool, out: &Path, stale: &[&str]) -> StepResult {
    for file in stale {
        let _ = fs::remove_file(out.join(file));
    }
    let mut cmd = Command::new(cargo());
    cmd.current_dir(workspace_root()).args([
        "run",
        "--quiet",
        "--release",
        "--package",
        "beamline-examples",
        "--example",
        example,
        "--",
    ]);
    if quick {
        cmd.arg("--quick");
    }
    cmd.arg("--out").arg(out);
    steps::run(example, &mut cmd)
}

/// The reconnect demo and its plot.
fn run_reconnect(quick: bool) -> DemoRun {
    let mut report = Report::default();
    let out = target_dir().join("demo");
    let demo = run_example(
        "demo",
        quick,
        &out,
        &["reconnects.csv", "summary.txt", "reconnects.svg"],
    );
    let ran = demo.outcome == Outcome::Passed;
    report.record(demo);
    if !ran {
        return DemoRun {
            report,
            summary: None,
        };
    }
    let start = Instant::now();
    let outcome = match plot(&out) {
        Ok(svg) => {
            println!("plot: {}", svg.display());
            Outcome::Passed
        }
        Err(why) => Outcome::Failed(why),
    };
    report.record(StepResult {
        name: "reconnect plot (target/demo/reconnects.svg)".into(),
        outcome,
        duration: start.elapsed(),
    });
    let summary = fs::read_to_string(out.join("summary.txt")).ok();
    DemoRun { report, summary }
}

/// Draws the demo's CSV as `reconnects.svg` beside it; returns the SVG's path.
fn plot(out: &Path) -> Result<PathBuf, String> {
    let csv_path = out.join("reconnects.csv");
    let csv = fs::read_to_string(&csv_path).map_err(|e| format!("{}: {e}", csv_path.display()))?;
    let (starts, columns) = parse_csv(&csv)?;
    let svg = out.join("reconnects.svg");
    fs::write(&svg, chart(&starts, &columns).render())
        .map_err(|e| format!("{}: {e}", svg.display()))?;
    Ok(svg)
}

/// Reconnect attempts per window since the kill, one line per jitter kind.
fn chart(starts: &[u64], columns: &[Column]) -> Chart {
    Chart {
        title: "1,000 clients, server killed at t = 0 and restarted: reconnect attempts".into(),
        x_label: "time since the server was killed (s)".into(),
        y_label: "connect attempts per 100 ms window".into(),
        series: series(starts, columns, |jitter| match jitter {
            "none" => "no jitter".to_owned(),
            other => format!("{other} jitter"),
        }),
        log_y: false,
        markers: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_csv_becomes_a_chart_with_a_line_per_jitter() {
        let csv = "window_start_ms,none,full\n0,0,3\n100,1000,250\n200,0,240\n";
        let (starts, columns) = parse_csv(csv).unwrap();
        let c = chart(&starts, &columns);
        assert_eq!(c.series.len(), 2);
        assert_eq!(c.series[0].name, "no jitter");
        assert_eq!(c.series[1].name, "full jitter");
        assert_eq!(c.series[0].points[1], (0.1, 1000.0));
        let svg = c.render();
        assert!(svg.contains("no jitter") && svg.contains("full jitter"));
    }

    #[test]
    fn plot_writes_the_svg_beside_the_csv_and_reports_a_missing_one() {
        let dir = std::env::temp_dir().join(format!("xtask-demo-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert!(plot(&dir).unwrap_err().contains("reconnects.csv"));
        fs::write(
            dir.join("reconnects.csv"),
            "window_start_ms,none,full\n0,5,1\n100,0,2\n",
        )
        .unwrap();
        let svg = plot(&dir).unwrap();
        assert!(fs::read_to_string(&svg).unwrap().contains("</svg>"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
