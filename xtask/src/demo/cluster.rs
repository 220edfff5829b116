//! `cargo xtask demo cluster`: a real Redis Cluster loses a primary to `kill -9` under 64
//! callers of beamline-redis's `ClusterClient`.
//!
//! Checks that `redis-server` and `redis-cli` are installed (installing them with apt-get
//! when root, otherwise stopping with the command to run), then runs the `cluster_demo`
//! program of the examples package in release
//! (`cargo run --release -p beamline-examples --example cluster_demo -- [--quick] --out
//! target/demo/cluster`). The program shows its live progress and writes `throughput.csv`
//! (per 100 ms window: requests answered per node, and errors), `events.csv` (the kill, the
//! takeover as the cluster saw it, the client's first write on the dead primary's slots) and
//! `summary.txt`; xtask draws `throughput.svg` (a line per node, a marker per event) and
//! prints the summary last.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{DemoRun, run_example};
use crate::herd::{Column, parse_csv, series};
use crate::prereq;
use crate::steps::{Outcome, Report, StepResult};
use crate::svg::{Chart, Marker};
use crate::target_dir;

/// Runs the cluster demo and draws its plot.
pub(super) fn run(quick: bool) -> DemoRun {
    let mut report = Report::default();
    let start = Instant::now();
    let checked = prereq::ensure(&prereq::cluster_demo());
    let ready = checked.is_ok();
    report.record(StepResult {
        name: "prerequisites (redis-server, redis-cli)".into(),
        outcome: match checked {
            Ok(()) => Outcome::Passed,
            Err(why) => Outcome::Failed(why),
        },
        duration: start.elapsed(),
    });
    if !ready {
        return DemoRun {
            report,
            summary: None,
        };
    }
    let out = target_dir().join("demo").join("cluster");
    let demo = run_example(
        "cluster_demo",
        quick,
        &out,
        &[
            "throughput.csv",
            "events.csv",
            "summary.txt",
            "throughput.svg",
        ],
    );
    let ran = demo.outcome == Outcome::Passed;
    report.record(demo);
    // A failed run may still have written its summary (it says what broke).
    let summary = fs::read_to_string(out.join("summary.txt")).ok();
    if !ran {
        return DemoRun { report, summary };
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
        name: "throughput plot (target/demo/cluster/throughput.svg)".into(),
        outcome,
        duration: start.elapsed(),
    });
    DemoRun { report, summary }
}

/// Draws `throughput.csv` and `events.csv` as `throughput.svg` beside them.
fn plot(out: &Path) -> Result<PathBuf, String> {
    let read = |name: &str| {
        let path = out.join(name);
        fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
    };
    let (starts, columns) = parse_csv(&read("throughput.csv")?)?;
    let markers = parse_events(&read("events.csv")?)?;
    let svg = out.join("throughput.svg");
    fs::write(&svg, chart(&starts, &columns, markers).render())
        .map_err(|e| format!("{}: {e}", svg.display()))?;
    Ok(svg)
}

/// `event,ms` lines (after an `event,ms` header) as markers, in seconds.
fn parse_events(csv: &str) -> Result<Vec<Marker>, String> {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    if lines.next() != Some("event,ms") {
        return Err("events.csv does not start with `event,ms`".into());
    }
    lines
        .map(|line| {
            let (label, ms) = line
                .rsplit_once(',')
                .ok_or_else(|| format!("events.csv: `{line}`"))?;
            let ms: f64 = ms
                .trim()
                .parse()
                .map_err(|_| format!("events.csv: `{line}`"))?;
            Ok(Marker {
                x: ms / 1000.0,
                label: label.trim().to_owned(),
            })
        })
        .collect()
}

/// Answers per window for each node that served any (replicas serve nothing until one
/// takes over), the errors, and the events.
fn chart(starts: &[u64], columns: &[Column], markers: Vec<Marker>) -> Chart {
    let columns: Vec<Column> = columns
        .iter()
        .filter(|c| c.jitter == "errors" || c.peak() > 0)
        .cloned()
        .collect();
    Chart {
        title: "Redis Cluster, 64 callers, kill -9 of a primary: requests answered per node".into(),
        x_label: "time since the load started (s)".into(),
        y_label: "per 100 ms window".into(),
        series: series(starts, &columns, |column| match column {
            "errors" => "errors (all kinds)".to_owned(),
            node => node.to_owned(),
        }),
        log_y: false,
        markers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_become_markers_in_seconds() {
        let markers =
            parse_events("event,ms\nkill -9 127.0.0.1:7000,8000\nreplica took over,10150.5\n")
                .unwrap();
        assert_eq!(markers.len(), 2);
        assert_eq!(markers[0].label, "kill -9 127.0.0.1:7000");
        assert_eq!(markers[1].x, 10.1505);
        assert!(parse_events("kill,1\n").is_err());
        assert!(parse_events("event,ms\nkill,soon\n").is_err());
    }

    #[test]
    fn the_csv_and_events_become_a_chart_with_a_line_per_node() {
        let dir = std::env::temp_dir().join(format!("xtask-cluster-demo-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert!(plot(&dir).unwrap_err().contains("throughput.csv"));
        fs::write(
            dir.join("throughput.csv"),
            "window_start_ms,127.0.0.1:7000,127.0.0.1:7001,errors\n0,300,310,0\n100,0,305,4\n",
        )
        .unwrap();
        fs::write(dir.join("events.csv"), "event,ms\nkill -9,100\n").unwrap();
        let svg = fs::read_to_string(plot(&dir).unwrap()).unwrap();
        assert!(svg.contains("127.0.0.1:7001") && svg.contains("errors (all kinds)"));
        assert!(svg.contains("kill -9") && svg.contains("</svg>"));
        // A replica that never served draws no line.
        fs::write(
            dir.join("throughput.csv"),
            "window_start_ms,127.0.0.1:7000,127.0.0.1:7003,errors\n0,300,0,0\n",
        )
        .unwrap();
        let svg = fs::read_to_string(plot(&dir).unwrap()).unwrap();
        assert!(svg.contains("127.0.0.1:7000") && !svg.contains("127.0.0.1:7003"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
