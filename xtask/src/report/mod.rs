//! BENCHMARKS.md, written from criterion's saved estimates and the harness-free results.
//!
//! Every bench group measures beamline and its peer in the same run. Within a group (and
//! parameter value), the function whose id starts with `beamline` is the subject and every
//! other function is a peer. The ratio is `peer time / beamline time`: above 1.00× beamline
//! is faster. Absolute times on a shared machine drift from run to run; a ratio from one
//! run holds, within the interval [`stats`] gives it.
//!
//! Goals come from `benches/goals.txt`, one per line: `<group> <peer> <min ratio> <note…>`;
//! the group may hold `*` wildcards (`kv/*-p16`), and an exact line wins over a pattern.
//! Measurements criterion cannot take come from `target/beamline-bench/*.json`: arrays of
//! `{group, function, value, metric, higher_is_better}` with either one `amount` or
//! `samples` (one per round) and a `summary` (`median` or `mean`), paired by the same rules;
//! their ratio is oriented so that above 1.00× beamline is better. Allocation counts come
//! from `target/beamline-bench/memory/*.json`, markdown sections written by benches from
//! `target/beamline-bench/sections/*.md`.
//!
//! The generated part of BENCHMARKS.md sits between two markers; text outside them is
//! kept, so prose about the numbers survives a re-run. Inside, every row and section
//! carries the stamp (commit, date) of the run that produced it, so a filtered run can
//! rewrite its own groups and keep everyone else's ([`render`]).

mod render;
pub(crate) mod stats;
#[cfg(test)]
mod tests;

use std::fs;
use std::path::Path;
use std::time::SystemTime;

use serde_json::Value;

pub(crate) use render::{Header, Stamp, Update, render, splice};
use stats::{Interval, Summary};

/// One benchmark's typical value, as criterion or a harness-free bench saved it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BenchResult {
    pub(crate) group: String,
    pub(crate) function: String,
    pub(crate) value: Option<String>,
    /// Criterion: ns per iteration (the slope when it has one, else the mean) with its 95%
    /// confidence interval. Harness-free: the amount (median or mean of the samples) with
    /// its interval.
    pub(crate) estimate: Interval,
    pub(crate) throughput: Option<Throughput>,
    /// Set for a measurement from `target/beamline-bench/*.json`.
    pub(crate) external: Option<External>,
    /// When its files were written: which run produced it.
    pub(crate) written: Option<SystemTime>,
    /// The commit and date of that run.
    pub(crate) stamp: Stamp,
}

/// A measurement taken outside criterion.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct External {
    /// What the amount counts, e.g. `requests/s` or `bytes/connection`.
    pub(crate) metric: String,
    pub(crate) higher_is_better: bool,
    /// One figure per round and how to summarise them; `None` for a single amount.
    pub(crate) samples: Option<(Vec<f64>, Summary)>,
}

impl BenchResult {
    /// How much better `self` (beamline) is than `peer`, with its interval: above 1.0,
    /// beamline is better. See [`stats`] for how the interval is made.
    pub(crate) fn ratio_over(&self, peer: &BenchResult) -> Interval {
        match (&self.external, &peer.external) {
            (None, None) => stats::criterion_ratio(self.estimate, peer.estimate),
            (Some(b), Some(p)) => {
                if let (Some((bs, bsum)), Some((ps, psum))) = (&b.samples, &p.samples)
                    && bs.len() == ps.len()
                    && bs.len() >= 2
                    && bsum == psum
                {
                    let ratios: Vec<f64> = bs
                        .iter()
                        .zip(ps)
                        .map(|(b_i, p_i)| {
                            if b.higher_is_better {
                                b_i / p_i
                            } else {
                                p_i / b_i
                            }
                        })
                        .collect();
                    return stats::paired_ratio(&ratios, *bsum);
                }
                if b.higher_is_better {
                    stats::quotient(self.estimate, peer.estimate)
                } else {
                    stats::quotient(peer.estimate, self.estimate)
                }
            }
            _ => stats::quotient(peer.estimate, self.estimate),
        }
    }
}

/// What one iteration processes, when the bench declared it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Throughput {
    Elements(u64),
    Bytes(u64),
}

/// One side's allocation figures for a group's workload (`benches/src/memory.rs`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MemoryResult {
    pub(crate) group: String,
    pub(crate) function: String,
    /// Operations per measured iteration.
    pub(crate) ops: u64,
    pub(crate) allocations_per_op: Vec<f64>,
    pub(crate) peak_bytes: Vec<f64>,
    pub(crate) written: Option<SystemTime>,
    pub(crate) stamp: Stamp,
}

/// A markdown section a bench wrote (`target/beamline-bench/sections/<name>.md`), or one
/// xtask draws (the herd, the latency picture).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Section {
    pub(crate) name: String,
    pub(crate) markdown: String,
    pub(crate) written: Option<SystemTime>,
    pub(crate) stamp: Stamp,
}

/// A ratio a group must reach against a peer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Goal {
    /// A group name, or a pattern with `*` standing for any text.
    pub(crate) group: String,
    pub(crate) peer: String,
    pub(crate) min_ratio: f64,
    pub(crate) note: String,
}

impl Goal {
    pub(crate) fn is_pattern(&self) -> bool {
        self.group.contains('*')
    }

    /// Whether this goal applies to `case` (a group, or `group/value`) against `peer`.
    pub(crate) fn applies(&self, case: &str, peer: &str) -> bool {
        self.peer == peer && glob(&self.group, case)
    }
}

/// `pattern` matches `text`, `*` standing for any run of characters.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// The goal for `case` against `peer`: an exact line first, else the first pattern.
pub(crate) fn goal_for<'a>(goals: &'a [Goal], case: &str, peer: &str) -> Option<&'a Goal> {
    goals
        .iter()
        .find(|g| !g.is_pattern() && g.applies(case, peer))
        .or_else(|| {
            goals
                .iter()
                .find(|g| g.is_pattern() && g.applies(case, peer))
        })
}

/// Where the numbers were measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Machine {
    pub(crate) cpu: String,
    pub(crate) cores: usize,
    pub(crate) rustc: String,
}

/// Parses one benchmark from the contents of its `new/benchmark.json` and `new/estimates.json`.
pub(crate) fn parse_result(
    benchmark_json: &str,
    estimates_json: &str,
) -> Result<BenchResult, String> {
    let id: Value =
        serde_json::from_str(benchmark_json).map_err(|e| format!("benchmark.json: {e}"))?;
    let est: Value =
        serde_json::from_str(estimates_json).map_err(|e| format!("estimates.json: {e}"))?;
    let group = id["group_id"]
        .as_str()
        .ok_or("benchmark.json has no group_id")?
        .to_owned();
    // A bench made with `bench_function` directly on Criterion has no function id: the group
    // id is the whole name.
    let function = id["function_id"].as_str().unwrap_or("").to_owned();
    let value = id["value_str"].as_str().map(str::to_owned);
    let throughput = match &id["throughput"] {
        Value::Object(map) => map.iter().find_map(|(kind, v)| match kind.as_str() {
            "Elements" => v.as_u64().map(Throughput::Elements),
            "Bytes" | "BytesDecimal" => v.as_u64().map(Throughput::Bytes),
            "ElementsAndBytes" => v["elements"].as_u64().map(Throughput::Elements),
            _ => None,
        }),
        _ => None,
    };
    let typical = if est["slope"].is_object() {
        &est["slope"]
    } else {
        &est["mean"]
    };
    let ns = typical["point_estimate"]
        .as_f64()
        .ok_or("estimates.json has no point estimate")?;
    let bound = |name: &str| typical["confidence_interval"][name].as_f64().unwrap_or(ns);
    Ok(BenchResult {
        group,
        function,
        value,
        estimate: Interval {
            point: ns,
            lo: bound("lower_bound"),
            hi: bound("upper_bound"),
        },
        throughput,
        external: None,
        written: None,
        stamp: Stamp::default(),
    })
}

fn positive(v: &Value) -> Option<f64> {
    v.as_f64().filter(|a| a.is_finite() && *a > 0.0)
}

/// Parses one `target/beamline-bench/*.json` file: an array of measurements.
pub(crate) fn parse_external(json: &str) -> Result<Vec<BenchResult>, String> {
    let rows: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let rows = rows.as_array().ok_or("not a JSON array")?;
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let field = |name: &str| {
                row[name]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("measurement {i} has no `{name}`"))
            };
            let (estimate, samples) = match row["samples"].as_array() {
                Some(samples) => {
                    let summary = row["summary"]
                        .as_str()
                        .and_then(Summary::parse)
                        .ok_or_else(|| {
                            format!("measurement {i}: `summary` is not median or mean")
                        })?;
                    let samples: Vec<f64> = samples
                        .iter()
                        .map(positive)
                        .collect::<Option<_>>()
                        .filter(|s: &Vec<f64>| !s.is_empty())
                        .ok_or_else(|| {
                            format!("measurement {i}: `samples` must be positive numbers")
                        })?;
                    (
                        stats::summarise(&samples, summary),
                        Some((samples, summary)),
                    )
                }
                None => {
                    let amount = positive(&row["amount"])
                        .ok_or_else(|| format!("measurement {i} has no positive `amount`"))?;
                    (Interval::exact(amount), None)
                }
            };
            Ok(BenchResult {
                group: field("group")?,
                function: field("function")?,
                value: row["value"].as_str().map(str::to_owned),
                estimate,
                throughput: None,
                external: Some(External {
                    metric: field("metric")?,
                    higher_is_better: row["higher_is_better"].as_bool().unwrap_or(true),
                    samples,
                }),
                written: None,
                stamp: Stamp::default(),
            })
        })
        .collect()
}

/// Parses one `target/beamline-bench/memory/*.json` file.
pub(crate) fn parse_memory(json: &str) -> Result<Vec<MemoryResult>, String> {
    let rows: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let rows = rows.as_array().ok_or("not a JSON array")?;
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let text = |name: &str| {
                row[name]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("memory row {i} has no `{name}`"))
            };
            let numbers = |name: &str| {
                row[name]
                    .as_array()
                    .and_then(|a| {
                        a.iter()
                            .map(|v| v.as_f64().filter(|x| x.is_finite() && *x >= 0.0))
                            .collect::<Option<Vec<f64>>>()
                    })
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| format!("memory row {i}: `{name}` must be numbers ≥ 0"))
            };
            Ok(MemoryResult {
                group: text("group")?,
                function: text("function")?,
                ops: row["ops"]
                    .as_u64()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("memory row {i} has no positive `ops`"))?,
                allocations_per_op: numbers("allocations_per_op")?,
                peak_bytes: numbers("peak_bytes")?,
                written: None,
                stamp: Stamp::default(),
            })
        })
        .collect()
}

/// The files of `dir` ending in `.ext`, sorted, with their contents and modification time
/// (none when `dir` does not exist).
fn read_files(dir: &Path, ext: &str) -> Result<Vec<(String, String, Option<SystemTime>)>, String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == ext))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok((stem, text, modified(&path)))
        })
        .collect()
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Every measurement in the `*.json` files of `dir` (none when it does not exist).
pub(crate) fn load_external(dir: &Path) -> Result<Vec<BenchResult>, String> {
    let mut out = Vec::new();
    for (name, text, written) in read_files(dir, "json")? {
        // stamps.json is xtask's own ledger, not a measurement.
        if name == "stamps" {
            continue;
        }
        let rows =
            parse_external(&text).map_err(|e| format!("{}/{name}.json: {e}", dir.display()))?;
        out.extend(rows.into_iter().map(|r| BenchResult { written, ..r }));
    }
    Ok(out)
}

/// Every allocation figure in `dir` (`target/beamline-bench/memory`).
pub(crate) fn load_memory(dir: &Path) -> Result<Vec<MemoryResult>, String> {
    let mut out = Vec::new();
    for (name, text, written) in read_files(dir, "json")? {
        let rows =
            parse_memory(&text).map_err(|e| format!("{}/{name}.json: {e}", dir.display()))?;
        out.extend(rows.into_iter().map(|r| MemoryResult { written, ..r }));
    }
    Ok(out)
}

/// Every markdown section in `dir` (`target/beamline-bench/sections`).
pub(crate) fn load_sections(dir: &Path) -> Result<Vec<Section>, String> {
    Ok(read_files(dir, "md")?
        .into_iter()
        .map(|(name, markdown, written)| Section {
            name,
            markdown,
            written,
            stamp: Stamp::default(),
        })
        .collect())
}

/// Every benchmark saved under `criterion_dir` (criterion's `target/criterion`), sorted.
pub(crate) fn load(criterion_dir: &Path) -> Result<Vec<BenchResult>, String> {
    let mut out = Vec::new();
    if criterion_dir.is_dir() {
        walk(criterion_dir, &mut out)?;
    }
    out.sort_by(|a, b| (&a.group, &a.value, &a.function).cmp(&(&b.group, &b.value, &b.function)));
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<BenchResult>) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if !path.is_dir() {
            continue;
        }
        // `new` holds the latest run; `base` and `change` are older or derived.
        if path.file_name().is_some_and(|n| n == "new") {
            let bench = path.join("benchmark.json");
            let est = path.join("estimates.json");
            if bench.is_file() && est.is_file() {
                let read =
                    |p: &Path| fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
                let result = parse_result(&read(&bench)?, &read(&est)?)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                out.push(BenchResult {
                    written: modified(&est),
                    ..result
                });
            }
        } else {
            walk(&path, out)?;
        }
    }
    Ok(())
}

/// Parses `benches/goals.txt`.
pub(crate) fn parse_goals(text: &str) -> Result<Vec<Goal>, String> {
    let mut goals = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(group), Some(peer), Some(ratio)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(format!(
                "goals.txt line {}: want `<group> <peer> <min ratio> <note>`",
                n + 1
            ));
        };
        let min_ratio: f64 = ratio
            .parse()
            .map_err(|_| format!("goals.txt line {}: `{ratio}` is not a number", n + 1))?;
        goals.push(Goal {
            group: group.to_owned(),
            peer: peer.to_owned(),
            min_ratio,
            note: fields.collect::<Vec<_>>().join(" "),
        });
    }
    Ok(goals)
}

/// The machine this process runs on.
pub(crate) fn this_machine() -> Machine {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rustc =
        std::process::Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
            .arg("-V")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "rustc (unknown version)".to_owned());
    Machine { cpu, cores, rustc }
}

/// The `YYYY-MM-DD` of `time`.
pub(crate) fn date_of(time: SystemTime) -> String {
    let days = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400);
    civil_date(days as i64)
}

/// `YYYY-MM-DD` of a day counted from 1970-01-01 (proleptic Gregorian calendar).
pub(crate) fn civil_date(days_since_epoch: i64) -> String {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a 400-year era.
    let z = days_since_epoch + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
