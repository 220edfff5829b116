//! The integration matrix: cells over transport × client shape × fault, each run in its own
//! process so a hang, a leak or a crash stays inside its cell.
//!
//! The cells live in the `matrix` program (`examples/matrix.rs`), which speaks a two-call
//! protocol:
//! - `matrix --list` prints one cell name per line (`tcp/pooled+mux/reset`);
//! - `matrix --run <cell>` runs one cell, exits 0 when every invariant held, and prints as
//!   its last `MATRIX-RESULT ` line a JSON object: `cell`, `passed`, `requests`, `ok`,
//!   `errors` (kind → count), `p50_ms`, `p99_ms`, `seconds`, `failures` (what broke), and
//!   `recovery_ms` (the `cluster/*` cells: fault to first successful write on the slots it
//!   affected; `null` or absent for the others).
//!
//! xtask builds the program, lists the cells, runs the selected ones under a per-cell time
//! limit with a live progress bar, and prints a table of what each cell saw.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::steps::{self, Outcome, Report, StepResult};
use crate::{cargo, target_dir, workspace_root};

/// The longest one cell may run before it is killed and failed.
const CELL_LIMIT: Duration = Duration::from_secs(120);
/// How many lines of a failed cell's output are shown.
const TAIL_LINES: usize = 40;
/// The marker of the result line.
const RESULT_PREFIX: &str = "MATRIX-RESULT ";

/// What one cell reported about itself.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CellReport {
    pub(crate) cell: String,
    pub(crate) passed: bool,
    pub(crate) requests: u64,
    pub(crate) ok: u64,
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) seconds: f64,
    /// The cluster cells' time from the fault to writes succeeding again.
    pub(crate) recovery_ms: Option<f64>,
    pub(crate) failures: Vec<String>,
}

/// Finds and parses the last `MATRIX-RESULT` line of a cell's output.
pub(crate) fn parse_result(output: &str) -> Result<CellReport, String> {
    let line = output
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(RESULT_PREFIX))
        .ok_or("the cell printed no MATRIX-RESULT line")?;
    let v: Value =
        serde_json::from_str(line).map_err(|e| format!("MATRIX-RESULT is not JSON: {e}"))?;
    let text = |k: &str| {
        v[k].as_str()
            .map(str::to_owned)
            .ok_or(format!("MATRIX-RESULT has no `{k}`"))
    };
    let count = |k: &str| {
        v[k].as_u64()
            .ok_or(format!("MATRIX-RESULT has no count `{k}`"))
    };
    let float = |k: &str| {
        v[k].as_f64()
            .ok_or(format!("MATRIX-RESULT has no number `{k}`"))
    };
    let errors = match &v["errors"] {
        Value::Object(map) => map
            .iter()
            .map(|(k, n)| {
                n.as_u64()
                    .map(|n| (k.clone(), n))
                    .ok_or(format!("error count `{k}` is not a number"))
            })
            .collect::<Result<_, _>>()?,
        Value::Null => BTreeMap::new(),
        _ => return Err("MATRIX-RESULT `errors` is not an object".into()),
    };
    let failures = match &v["failures"] {
        Value::Array(items) => items
            .iter()
            .map(|f| f.as_str().unwrap_or("?").to_owned())
            .collect(),
        _ => Vec::new(),
    };
    Ok(CellReport {
        cell: text("cell")?,
        passed: v["passed"]
            .as_bool()
            .ok_or("MATRIX-RESULT has no `passed`")?,
        requests: count("requests")?,
        ok: count("ok")?,
        errors,
        p50_ms: float("p50_ms")?,
        p99_ms: float("p99_ms")?,
        seconds: float("seconds")?,
        recovery_ms: v["recovery_ms"].as_f64(),
        failures,
    })
}

/// The cells whose name contains `filter` (all of them without a filter), in order.
pub(crate) fn select<'a>(cells: &'a [String], filter: Option<&str>) -> Vec<&'a String> {
    cells
        .iter()
        .filter(|c| filter.is_none_or(|f| c.contains(f)))
        .collect()
}

/// The table printed after the run.
pub(crate) fn table(reports: &[CellReport]) -> String {
    let mut s = format!(
        "{:<34} {:>4} {:>8} {:>8}  {:<34} {:>9} {:>9} {:>7} {:>9}\n",
        "cell",
        "ok?",
        "requests",
        "replies",
        "errors by kind",
        "p50 ms",
        "p99 ms",
        "time",
        "recovery"
    );
    for r in reports {
        let errors = if r.errors.is_empty() {
            "-".to_owned()
        } else {
            r.errors
                .iter()
                .map(|(k, n)| format!("{k}:{n}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let recovery = r
            .recovery_ms
            .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.0} ms"));
        s.push_str(&format!(
            "{:<34} {:>4} {:>8} {:>8}  {:<34} {:>9.2} {:>9.2} {:>6.1}s {:>9}\n",
            r.cell,
            if r.passed { "yes" } else { "NO" },
            r.requests,
            r.ok,
            errors,
            r.p50_ms,
            r.p99_ms,
            r.seconds,
            recovery
        ));
    }
    s
}

/// Runs the matrix (every cell, or those matching `filter`) as steps of `report`.
pub(crate) fn run(report: &mut Report, filter: Option<&str>) {
    let root = workspace_root();
    if !root.join("examples").join("matrix.rs").is_file() {
        match filter {
            Some(f) => report.record(failed(
                &format!("matrix --only {f}"),
                "no cells registered yet".into(),
            )),
            None => println!("integration matrix: no cells registered yet (0 cells)"),
        }
        return;
    }
    let build = steps::run(
        "matrix build",
        Command::new(cargo()).current_dir(root).args([
            "build",
            "--package",
            "beamline-examples",
            "--example",
            "matrix",
        ]),
    );
    let built = build.outcome == Outcome::Passed;
    report.record(build);
    if !built {
        return;
    }
    let program = target_dir().join("debug").join("examples").join("matrix");
    let cells = match list(&program) {
        Ok(cells) => cells,
        Err(why) => return report.record(failed("matrix --list", why)),
    };
    let selected = select(&cells, filter);
    if selected.is_empty() {
        // A typo in `--only` must not look like a green run.
        let why = format!(
            "no cell of {} matches `{}`",
            cells.len(),
            filter.unwrap_or("")
        );
        return report.record(failed("matrix selection", why));
    }
    println!(
        "integration matrix: running {} of {} cells",
        selected.len(),
        cells.len()
    );
    let bar = ProgressBar::new(selected.len() as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} cells  {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut reports = Vec::new();
    for cell in selected {
        bar.set_message(cell.clone());
        let (result, cell_report) = run_cell(&program, cell);
        bar.suspend(|| report.record(result));
        if let Some(r) = cell_report {
            reports.push(r);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if !reports.is_empty() {
        print!("\n{}", table(&reports));
    }
}

fn list(program: &Path) -> Result<Vec<String>, String> {
    let out = Command::new(program)
        .arg("--list")
        .output()
        .map_err(|e| format!("could not run {}: {e}", program.display()))?;
    if !out.status.success() {
        return Err(format!("`matrix --list` failed ({})", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

/// Runs one cell in its own process with output to a file (no pipe can fill and stall it),
/// killing it at the time limit. Returns the step and, when the cell got far enough to
/// report, its report (a failed cell's too, for the table).
fn run_cell(program: &Path, cell: &str) -> (StepResult, Option<CellReport>) {
    let log = target_dir()
        .join("matrix")
        .join(format!("{}.log", cell.replace('/', "_")));
    let start = Instant::now();
    let (outcome, cell_report) = match execute(program, cell, &log, start) {
        Ok(r) if r.passed => (Outcome::Passed, Some(r)),
        Ok(r) => {
            let why = r
                .failures
                .first()
                .cloned()
                .unwrap_or_else(|| "the cell reported a failure".to_owned());
            (Outcome::Failed(why), Some(r))
        }
        Err(why) => (Outcome::Failed(why), None),
    };
    if outcome != Outcome::Passed {
        let output = fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = output.lines().collect();
        println!("---- {cell}: last lines of {} ----", log.display());
        for line in &lines[lines.len().saturating_sub(TAIL_LINES)..] {
            println!("{line}");
        }
    }
    let step = StepResult {
        name: format!("matrix {cell}"),
        outcome,
        duration: start.elapsed(),
    };
    (step, cell_report)
}

/// Spawns the cell, waits for it within the limit, and parses its report. A cell that exits
/// non-zero while reporting `passed` is treated as failed.
fn execute(program: &Path, cell: &str, log: &Path, start: Instant) -> Result<CellReport, String> {
    if let Some(dir) = log.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let file = fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err_file = file.try_clone().map_err(|e| e.to_string())?;
    let mut child = Command::new(program)
        .args(["--run", cell])
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err_file)
        .spawn()
        .map_err(|e| format!("could not start the cell: {e}"))?;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if start.elapsed() > CELL_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("killed after the {}s limit", CELL_LIMIT.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = fs::read_to_string(log).unwrap_or_default();
    let mut report =
        parse_result(&output).map_err(|why| format!("{why} (exit status {status})"))?;
    if !status.success() && report.passed {
        report.passed = false;
        report.failures.insert(0, format!("exit status {status}"));
    }
    Ok(report)
}

fn failed(name: &str, why: String) -> StepResult {
    StepResult {
        name: name.into(),
        outcome: Outcome::Failed(why),
        duration: Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"MATRIX-RESULT {"cell":"tcp/pooled/reset","passed":true,"requests":2000,"ok":1990,"errors":{"connection_lost":7,"not_sent":3},"p50_ms":0.41,"p99_ms":12.5,"seconds":3.2,"failures":[]}"#;

    #[test]
    fn parses_the_last_result_line_among_logs() {
        let output = format!("starting\nMATRIX-RESULT {{\"old\":1}}\nlog line\n{LINE}\n");
        let r = parse_result(&output).unwrap();
        assert_eq!(r.cell, "tcp/pooled/reset");
        assert!(r.passed);
        assert_eq!((r.requests, r.ok), (2000, 1990));
        assert_eq!(r.errors["connection_lost"], 7);
        assert_eq!(r.p99_ms, 12.5);
        assert_eq!(r.recovery_ms, None, "absent: not a cluster cell");
    }

    #[test]
    fn a_cluster_cell_reports_its_recovery_and_the_table_shows_it() {
        let line = LINE
            .replace("tcp/pooled/reset", "cluster/kill-primary")
            .replace(r#""failures""#, r#""recovery_ms":3017.4,"failures""#);
        let r = parse_result(&line).unwrap();
        assert_eq!(r.recovery_ms, Some(3017.4));
        let t = table(std::slice::from_ref(&r));
        assert!(t.contains("recovery") && t.contains("3017 ms"), "{t}");
        let null = line.replace("3017.4", "null");
        assert_eq!(parse_result(&null).unwrap().recovery_ms, None);
    }

    #[test]
    fn missing_or_malformed_results_are_errors() {
        assert!(parse_result("no result here\n").is_err());
        assert!(parse_result("MATRIX-RESULT {not json\n").is_err());
        assert!(parse_result(r#"MATRIX-RESULT {"cell":"x","passed":true}"#).is_err());
        assert!(parse_result(&LINE.replace(r#""errors":{"#, r#""errors":{"x":"y","#)).is_err());
    }

    #[test]
    fn select_matches_substrings_and_keeps_order() {
        let cells: Vec<String> = ["tcp/single/none", "tls/pooled/reset", "tcp/mux/reset"]
            .map(String::from)
            .to_vec();
        assert_eq!(select(&cells, None).len(), 3);
        assert_eq!(select(&cells, Some("reset")), [&cells[1], &cells[2]]);
        assert!(select(&cells, Some("partition")).is_empty());
    }

    #[test]
    fn table_has_a_row_per_cell_with_errors_by_kind() {
        let mut r = parse_result(LINE).unwrap();
        let t = table(std::slice::from_ref(&r));
        assert!(
            t.contains("tcp/pooled/reset") && t.contains("connection_lost:7 not_sent:3"),
            "{t}"
        );
        r.passed = false;
        r.errors.clear();
        let t = table(&[r]);
        assert!(t.contains(" NO ") && t.contains(" - "), "{t}");
    }
}
