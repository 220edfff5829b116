//! `cargo xtask bench`: run the criterion benches, then write BENCHMARKS.md.
//!
//! Which results a run writes, and with which stamp:
//! - a full run (no filter) clears the saved results first and rewrites the whole table, every
//!   row stamped with the current commit and date;
//! - a filtered run (`cargo xtask bench <filter>`) rewrites only the groups, memory rows and
//!   sections whose files it wrote (their modification time is after its start), stamped
//!   now; every other row keeps its text and stamp. A group counts only when its beamline
//!   function ran: a ratio needs both sides from the same run;
//! - `--report-only` rewrites every group found in `target/`, each with the stamp recorded
//!   when it was measured (`target/beamline-bench/stamps.json`), and keeps the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Instant, SystemTime};

use serde_json::{Map, Value, json};

use crate::cli::BenchArgs;
use crate::report::{self, BenchResult, Header, Section, Stamp, Update};
use crate::steps::{self, Outcome, Report, StepResult};
use crate::{cargo, herd, latency, target_dir, workspace_root};

/// Runs the benches (unless `--report-only`) and rewrites BENCHMARKS.md.
pub(crate) fn run(args: &BenchArgs) -> Report {
    let mut out = Report::default();
    let started = SystemTime::now();
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
        Ok(markdown) => {
            sections.push(Section {
                name: "herd".into(),
                markdown,
                written: Some(SystemTime::now()),
                stamp: Stamp::default(),
            });
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
    let csv = target_dir().join("beamline-bench").join("latency.csv");
    let outcome = match latency::run(&csv) {
        Ok(Some(markdown)) => {
            sections.push(Section {
                name: "latency".into(),
                markdown,
                written: fs::metadata(&csv).and_then(|m| m.modified()).ok(),
                stamp: Stamp::default(),
            });
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
    let outcome = match write_benchmarks_md(args, started, sections) {
        Ok(n) => {
            println!("BENCHMARKS.md: {n} results rewritten");
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

/// Rewrites the generated part of BENCHMARKS.md; returns how many results it rewrote.
fn write_benchmarks_md(
    args: &BenchArgs,
    started: SystemTime,
    mut sections: Vec<Section>,
) -> Result<usize, String> {
    let root = workspace_root();
    let dir = target_dir().join("beamline-bench");
    let mut results = report::load(&target_dir().join("criterion"))?;
    results.extend(report::load_external(&dir)?);
    let mut memory = report::load_memory(&dir.join("memory"))?;
    sections.extend(report::load_sections(&dir.join("sections"))?);
    let goals_path = root.join("benches").join("goals.txt");
    let goals = match fs::read_to_string(&goals_path) {
        Ok(text) => report::parse_goals(&text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("{}: {e}", goals_path.display())),
    };

    let now = Stamp {
        commit: commit(root),
        date: report::date_of(SystemTime::now()),
    };
    let ledger_path = dir.join("stamps.json");
    let mut ledger = load_ledger(&ledger_path);
    let mut warnings = Vec::new();
    if args.report_only {
        // Everything saved, each with the stamp of the run that measured it.
        let recorded = |key: String, written: Option<SystemTime>| {
            ledger.get(&key).cloned().unwrap_or_else(|| Stamp {
                commit: "unknown".into(),
                date: written.map_or_else(|| "unknown date".into(), report::date_of),
            })
        };
        for r in &mut results {
            r.stamp = recorded(r.group.clone(), r.written);
        }
        for m in &mut memory {
            m.stamp = recorded(format!("memory:{}", m.group), m.written);
        }
        for s in &mut sections {
            s.stamp = recorded(format!("section:{}", s.name), s.written);
        }
    } else {
        if args.filter.is_some() {
            let fresh = |w: Option<SystemTime>| w.is_some_and(|w| w >= started);
            results = fresh_groups(results, &fresh, &mut warnings);
            memory.retain(|m| fresh(m.written));
            sections.retain(|s| fresh(s.written));
        }
        for r in &mut results {
            r.stamp = now.clone();
            ledger.insert(r.group.clone(), now.clone());
        }
        for m in &mut memory {
            m.stamp = now.clone();
            ledger.insert(format!("memory:{}", m.group), now.clone());
        }
        for s in &mut sections {
            s.stamp = now.clone();
            ledger.insert(format!("section:{}", s.name), now.clone());
        }
        save_ledger(&ledger_path, &ledger)?;
    }

    let md_path = root.join("BENCHMARKS.md");
    let existing = match fs::read_to_string(&md_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "# Benchmarks\n".to_owned(),
        Err(e) => return Err(format!("{}: {e}", md_path.display())),
    };
    let mut command = String::from("cargo xtask bench");
    if args.report_only {
        command.push_str(" --report-only");
    }
    if let Some(f) = &args.filter {
        command.push(' ');
        command.push_str(f);
    }
    let header = Header {
        command,
        stamp: now,
        machine: report::this_machine(),
    };
    let update = Update {
        results: &results,
        memory: &memory,
        sections: &sections,
        replace_all: !args.report_only && args.filter.is_none(),
    };
    let (generated, more) = report::render(&existing, update, &goals, &header);
    warnings.extend(more);
    for w in &warnings {
        println!("warning: {w}");
    }
    fs::write(&md_path, report::splice(&existing, &generated))
        .map_err(|e| format!("{}: {e}", md_path.display()))?;
    Ok(results.len())
}

/// The results of the groups this run measured: those whose beamline function is fresh,
/// with their fresh peers. A peer that did not run beside it, or a group whose beamline
/// function did not run, is left out with a warning (its old row stays).
pub(crate) fn fresh_groups(
    results: Vec<BenchResult>,
    fresh: &dyn Fn(Option<SystemTime>) -> bool,
    warnings: &mut Vec<String>,
) -> Vec<BenchResult> {
    let subjects: BTreeSet<(String, Option<String>)> = results
        .iter()
        .filter(|r| r.function.starts_with("beamline") && fresh(r.written))
        .map(|r| (r.group.clone(), r.value.clone()))
        .collect();
    let mut stale_peers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut orphans = BTreeSet::new();
    let kept = results
        .into_iter()
        .filter(|r| {
            let paired = subjects.contains(&(r.group.clone(), r.value.clone()));
            match (paired, fresh(r.written)) {
                (true, true) => true,
                (true, false) => {
                    stale_peers
                        .entry(r.group.clone())
                        .or_default()
                        .push(r.function.clone());
                    false
                }
                (false, true) => {
                    orphans.insert(r.group.clone());
                    false
                }
                (false, false) => false,
            }
        })
        .collect();
    for (group, peers) in stale_peers {
        warnings.push(format!(
            "{group}: {} did not run beside beamline in this run; left out of its rows",
            peers.join(", ")
        ));
    }
    for group in orphans {
        warnings.push(format!(
            "{group}: the filter ran peers without beamline; the group's rows are kept as they were"
        ));
    }
    kept
}

/// The short commit of `HEAD`, `-dirty` when tracked files other than the bench output
/// differ from it, `unknown` without git.
fn commit(root: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(head) = git(&["rev-parse", "--short=7", "HEAD"]) else {
        return "unknown".into();
    };
    let status = git(&[
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ".",
        ":!BENCHMARKS.md",
        ":!benches/plots",
    ]);
    match status {
        Some(s) if s.is_empty() => head,
        _ => format!("{head}-dirty"),
    }
}

fn load_ledger(path: &Path) -> BTreeMap<String, Stamp> {
    let Ok(text) = fs::read_to_string(path) else {
        return BTreeMap::new();
    };
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&text) else {
        return BTreeMap::new();
    };
    map.into_iter()
        .filter_map(|(key, v)| {
            Some((
                key,
                Stamp {
                    commit: v["commit"].as_str()?.to_owned(),
                    date: v["date"].as_str()?.to_owned(),
                },
            ))
        })
        .collect()
}

fn save_ledger(path: &Path, ledger: &BTreeMap<String, Stamp>) -> Result<(), String> {
    let map: Map<String, Value> = ledger
        .iter()
        .map(|(k, s)| (k.clone(), json!({"commit": s.commit, "date": s.date})))
        .collect();
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(&Value::Object(map)).map_err(|e| e.to_string())?;
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::report::stats::Interval;

    fn result(group: &str, function: &str, written: SystemTime) -> BenchResult {
        BenchResult {
            group: group.into(),
            function: function.into(),
            value: None,
            estimate: Interval::exact(1.0),
            throughput: None,
            external: None,
            written: Some(written),
            stamp: Stamp::default(),
        }
    }

    #[test]
    fn a_filtered_run_counts_only_groups_whose_beamline_side_ran() {
        let started = SystemTime::now();
        let (old, new) = (
            started - Duration::from_secs(3600),
            started + Duration::from_secs(1),
        );
        let results = vec![
            // Ran whole: kept.
            result("pool/get_drop_1task", "beamline", new),
            result("pool/get_drop_1task", "deadpool", new),
            // Only one peer ran beside beamline: the stale one is left out.
            result("process/cast", "beamline", new),
            result("process/cast", "flume", new),
            result("process/cast", "tokio-mpsc", old),
            // Only a peer ran: nothing to pair it with.
            result("mux/64-callers", "beamline-mux", old),
            result("mux/64-callers", "framed-id-map", new),
            // Not run at all.
            result("chaos/echo_1mib", "beamline-chaos", old),
        ];
        let fresh = |w: Option<SystemTime>| w.is_some_and(|w| w >= started);
        let mut warnings = Vec::new();
        let kept = fresh_groups(results, &fresh, &mut warnings);
        let names: Vec<String> = kept
            .iter()
            .map(|r| format!("{}/{}", r.group, r.function))
            .collect();
        assert_eq!(
            names,
            [
                "pool/get_drop_1task/beamline",
                "pool/get_drop_1task/deadpool",
                "process/cast/beamline",
                "process/cast/flume"
            ]
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("process/cast: tokio-mpsc did not run"));
        assert!(warnings[1].starts_with("mux/64-callers: the filter ran peers without beamline"));
    }

    #[test]
    fn the_ledger_round_trips() {
        let path = std::env::temp_dir().join(format!("xtask-ledger-{}.json", std::process::id()));
        let mut ledger = BTreeMap::new();
        ledger.insert(
            "process/cast".to_owned(),
            Stamp {
                commit: "abc1234".into(),
                date: "2026-11-25".into(),
            },
        );
        save_ledger(&path, &ledger).unwrap();
        let back = load_ledger(&path);
        fs::remove_file(&path).unwrap();
        assert_eq!(back, ledger);
        assert!(load_ledger(Path::new("/nonexistent/stamps.json")).is_empty());
    }
}
