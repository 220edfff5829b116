//! BENCHMARKS.md, written from criterion's saved estimates.
//!
//! Every bench group measures beamline and its peer in the same run. Within a group (and
//! parameter value), the function whose id starts with `beamline` is the subject and every
//! other function is a peer. The ratio is `peer time / beamline time`: above 1.00× beamline
//! is faster. Absolute times on a shared machine drift from run to run; a ratio from one
//! run holds.
//!
//! Goals come from `benches/goals.txt`, one per line: `<group> <peer> <min ratio> <note…>`.
//! Measurements criterion cannot take (requests/s reported by redis-benchmark, bytes per
//! connection) come from `target/beamline-bench/*.json`: arrays of `{group, function, value,
//! metric, amount, higher_is_better}`, paired by the same rules; their ratio is oriented so
//! that above 1.00× beamline is better.
//!
//! The generated part of BENCHMARKS.md sits between two markers; text outside them is
//! kept, so prose about the numbers survives a re-run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use serde_json::Value;

pub(crate) const BEGIN: &str = "<!-- xtask:bench:begin -->";
pub(crate) const END: &str = "<!-- xtask:bench:end -->";

/// One benchmark's typical time, as criterion saved it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BenchResult {
    pub(crate) group: String,
    pub(crate) function: String,
    pub(crate) value: Option<String>,
    /// Criterion's typical estimate (the slope when it has one, else the mean), in ns per iteration.
    pub(crate) ns: f64,
    /// 95% confidence interval of that estimate, in ns.
    pub(crate) ci: (f64, f64),
    pub(crate) throughput: Option<Throughput>,
    /// Set for a measurement from `target/beamline-bench/*.json` (then `ns` and `ci` are unused).
    pub(crate) external: Option<External>,
}

/// A measurement taken outside criterion.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct External {
    /// What `amount` counts, e.g. `requests/s` or `bytes/connection`.
    pub(crate) metric: String,
    pub(crate) amount: f64,
    pub(crate) higher_is_better: bool,
}

impl BenchResult {
    /// How much better `self` (beamline) is than `peer`: above 1.0, beamline is better.
    pub(crate) fn ratio_over(&self, peer: &BenchResult) -> f64 {
        match (&self.external, &peer.external) {
            (Some(b), Some(p)) if b.higher_is_better => b.amount / p.amount,
            (Some(b), Some(p)) => p.amount / b.amount,
            _ => peer.ns / self.ns,
        }
    }
}

/// What one iteration processes, when the bench declared it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Throughput {
    Elements(u64),
    Bytes(u64),
}

/// A ratio a group must reach against a peer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Goal {
    pub(crate) group: String,
    pub(crate) peer: String,
    pub(crate) min_ratio: f64,
    pub(crate) note: String,
}

/// Where the numbers were measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Machine {
    pub(crate) cpu: String,
    pub(crate) cores: usize,
    pub(crate) rustc: String,
    pub(crate) date: String,
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
    let ci = (
        typical["confidence_interval"]["lower_bound"]
            .as_f64()
            .unwrap_or(ns),
        typical["confidence_interval"]["upper_bound"]
            .as_f64()
            .unwrap_or(ns),
    );
    Ok(BenchResult {
        group,
        function,
        value,
        ns,
        ci,
        throughput,
        external: None,
    })
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
            let amount = row["amount"]
                .as_f64()
                .filter(|a| a.is_finite() && *a > 0.0)
                .ok_or_else(|| format!("measurement {i} has no positive `amount`"))?;
            Ok(BenchResult {
                group: field("group")?,
                function: field("function")?,
                value: row["value"].as_str().map(str::to_owned),
                ns: 0.0,
                ci: (0.0, 0.0),
                throughput: None,
                external: Some(External {
                    metric: field("metric")?,
                    amount,
                    higher_is_better: row["higher_is_better"].as_bool().unwrap_or(true),
                }),
            })
        })
        .collect()
}

/// Every measurement in the `*.json` files of `dir` (none when it does not exist).
pub(crate) fn load_external(dir: &Path) -> Result<Vec<BenchResult>, String> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(out);
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    for path in paths {
        let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        out.extend(parse_external(&text).map_err(|e| format!("{}: {e}", path.display()))?);
    }
    Ok(out)
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
                out.push(result);
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

/// The generated section (markers included); `sections` are extra markdown parts (the herd
/// table) placed after the ratio tables.
pub(crate) fn render(
    results: &[BenchResult],
    goals: &[Goal],
    sections: &[String],
    machine: &Machine,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{BEGIN}");
    let _ = writeln!(
        s,
        "_Generated by `cargo xtask bench` on {} — {} ({} cores), {}._\n",
        machine.date, machine.cpu, machine.cores, machine.rustc
    );
    let _ = writeln!(
        s,
        "Ratio = peer time ÷ beamline time (or, for rates, beamline ÷ peer), both measured in the same run: above 1.00× beamline is better.\n"
    );
    if results.is_empty() {
        let _ = writeln!(
            s,
            "No criterion results found yet: the layers add their benches as they land.\n"
        );
    }

    // (group, value) -> rows; BTreeMap keeps the output stable between runs.
    let mut by_case: BTreeMap<(String, Option<String>), Vec<&BenchResult>> = BTreeMap::new();
    for r in results {
        by_case
            .entry((r.group.clone(), r.value.clone()))
            .or_default()
            .push(r);
    }
    let mut layers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut unpaired: Vec<&BenchResult> = Vec::new();
    let mut measured: Vec<(String, String)> = Vec::new();
    for ((group, value), rows) in &by_case {
        let case = match value {
            Some(v) => format!("{group}/{v}"),
            None => group.clone(),
        };
        let Some(subject) = rows.iter().find(|r| r.function.starts_with("beamline")) else {
            unpaired.extend(rows.iter().copied());
            continue;
        };
        let layer = group.split('/').next().unwrap_or(group).to_owned();
        let table = layers.entry(layer).or_default();
        for peer in rows.iter().filter(|r| !r.function.starts_with("beamline")) {
            let ratio = subject.ratio_over(peer);
            measured.push((group.clone(), peer.function.clone()));
            let goal = goals
                .iter()
                .find(|g| g.group == *group && g.peer == peer.function)
                .map(|g| {
                    let verdict = if ratio >= g.min_ratio {
                        "✅ met"
                    } else {
                        "❌ missed"
                    };
                    format!("≥ {:.2}× {verdict}", g.min_ratio)
                })
                .unwrap_or_else(|| "—".to_owned());
            table.push(format!(
                "| {case} | {} | {} | {} | **{ratio:.2}×** | {goal} |",
                describe(subject),
                peer.function,
                describe(peer),
            ));
        }
        if rows.len() == 1 {
            table.push(format!(
                "| {case} | {} | — | — | — | — |",
                describe(subject)
            ));
        }
    }
    for (layer, rows) in &layers {
        let _ = writeln!(s, "### {layer}\n");
        let _ = writeln!(
            s,
            "| benchmark | beamline | peer | peer's result | ratio | goal |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|");
        for row in rows {
            let _ = writeln!(s, "{row}");
        }
        let _ = writeln!(s);
    }
    if !unpaired.is_empty() {
        let _ = writeln!(s, "### Without a beamline row\n");
        let _ = writeln!(s, "| benchmark | result |");
        let _ = writeln!(s, "|---|---|");
        for r in unpaired {
            let mut name = r.group.clone();
            for part in [Some(&r.function), r.value.as_ref()].into_iter().flatten() {
                if !part.is_empty() {
                    name.push('/');
                    name.push_str(part);
                }
            }
            let _ = writeln!(s, "| {name} | {} |", describe(r));
        }
        let _ = writeln!(s);
    }
    let unmeasured: Vec<&Goal> = goals
        .iter()
        .filter(|g| {
            !measured
                .iter()
                .any(|(grp, peer)| *grp == g.group && *peer == g.peer)
        })
        .collect();
    if !unmeasured.is_empty() {
        let _ = writeln!(s, "### Goals not measured in this run\n");
        let _ = writeln!(s, "| benchmark | peer | goal | what it means |");
        let _ = writeln!(s, "|---|---|---|---|");
        for g in unmeasured {
            let _ = writeln!(
                s,
                "| {} | {} | ≥ {:.2}× | {} |",
                g.group, g.peer, g.min_ratio, g.note
            );
        }
        let _ = writeln!(s);
    }
    for section in sections {
        s.push_str(section);
    }
    let _ = writeln!(s, "{END}");
    s
}

/// `95.1 ns ± 2% (10.5 M elem/s)`, or `1.52 M requests/s` for an external measurement.
fn describe(r: &BenchResult) -> String {
    if let Some(e) = &r.external {
        // si() ends in a prefix letter or a space; a unit follows it directly.
        let amount = si(e.amount);
        let sep = if amount.ends_with(' ') { "" } else { " " };
        return format!("{amount}{sep}{}", e.metric);
    }
    let spread = if r.ns > 0.0 {
        ((r.ci.1 - r.ci.0) / 2.0 / r.ns * 100.0).abs()
    } else {
        0.0
    };
    let mut out = format!("{} ± {spread:.0}%", format_time(r.ns));
    if let Some(t) = r.throughput {
        let per_sec = |n: u64| n as f64 / (r.ns * 1e-9);
        match t {
            Throughput::Elements(n) => out.push_str(&format!(" ({} elem/s)", si(per_sec(n)))),
            Throughput::Bytes(n) => out.push_str(&format!(" ({}B/s)", si(per_sec(n)))),
        }
    }
    out
}

pub(crate) fn format_time(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

fn si(x: f64) -> String {
    if x >= 1e9 {
        format!("{:.2} G", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.1} ")
    }
}

/// Puts `generated` between the markers of `existing`, or appends it when there are none.
pub(crate) fn splice(existing: &str, generated: &str) -> String {
    match (existing.find(BEGIN), existing.find(END)) {
        (Some(b), Some(e)) if b < e => {
            let after = &existing[e + END.len()..];
            let after = after.strip_prefix('\n').unwrap_or(after);
            format!("{}{generated}{after}", &existing[..b])
        }
        _ => {
            let mut out = existing.to_owned();
            if !out.is_empty() && !out.ends_with("\n\n") {
                out.push_str(if out.ends_with('\n') { "\n" } else { "\n\n" });
            }
            out.push_str(generated);
            out
        }
    }
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
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400);
    Machine {
        cpu,
        cores,
        rustc,
        date: civil_date(days as i64),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like criterion 0.8's files (trimmed to the fields xtask reads, plus extras).
    fn bench_json(function: &str, value: Option<&str>, throughput: &str) -> String {
        let value = value.map_or("null".to_owned(), |v| format!("\"{v}\""));
        format!(
            r#"{{"group_id":"process/cast","function_id":"{function}","value_str":{value},
               "throughput":{throughput},"full_id":"process/cast/{function}",
               "directory_name":"process_cast/{function}","title":"process/cast/{function}"}}"#
        )
    }

    fn estimates_json(mean: f64, slope: Option<f64>) -> String {
        let est = |x: f64| {
            format!(
                r#"{{"confidence_interval":{{"confidence_level":0.95,"lower_bound":{},"upper_bound":{}}},
                   "point_estimate":{x},"standard_error":1.0}}"#,
                x * 0.98,
                x * 1.02
            )
        };
        let slope = slope.map_or("null".to_owned(), est);
        format!(
            r#"{{"mean":{},"median":{},"median_abs_dev":{},"slope":{slope},"std_dev":{}}}"#,
            est(mean),
            est(mean),
            est(1.0),
            est(1.0)
        )
    }

    #[test]
    fn parses_criterion_files_and_prefers_the_slope() {
        let r = parse_result(
            &bench_json("beamline", None, r#"{"Elements":1000}"#),
            &estimates_json(120.0, Some(100.0)),
        )
        .unwrap();
        assert_eq!(r.group, "process/cast");
        assert_eq!(r.function, "beamline");
        assert_eq!(r.value, None);
        assert_eq!(r.ns, 100.0);
        assert_eq!(r.throughput, Some(Throughput::Elements(1000)));
        let r = parse_result(
            &bench_json("tokio-mpsc", Some("64"), "null"),
            &estimates_json(90.0, None),
        )
        .unwrap();
        assert_eq!(r.ns, 90.0);
        assert_eq!(r.value.as_deref(), Some("64"));
        assert_eq!(r.throughput, None);
    }

    #[test]
    fn malformed_files_are_errors_not_panics() {
        assert!(parse_result("{", &estimates_json(1.0, None)).is_err());
        assert!(parse_result(&bench_json("x", None, "null"), r#"{"mean":{}}"#).is_err());
        assert!(parse_result(r#"{"function_id":"x"}"#, &estimates_json(1.0, None)).is_err());
    }

    fn result(group: &str, function: &str, ns: f64) -> BenchResult {
        BenchResult {
            group: group.into(),
            function: function.into(),
            value: None,
            ns,
            ci: (ns * 0.99, ns * 1.01),
            throughput: Some(Throughput::Elements(1)),
            external: None,
        }
    }

    fn machine() -> Machine {
        Machine {
            cpu: "Test CPU".into(),
            cores: 2,
            rustc: "rustc 1.95.0".into(),
            date: "2026-11-23".into(),
        }
    }

    #[test]
    fn table_shows_ratio_and_goal_verdict() {
        let results = [
            result("process/cast", "beamline", 100.0),
            result("process/cast", "tokio-mpsc", 95.0),
            result("process/call", "beamline", 250.0),
            result("process/call", "kameo", 1000.0),
        ];
        let goals = parse_goals(
            "# comment\nprocess/cast tokio-mpsc 0.90 cast throughput vs raw mpsc\n\
             process/call kameo 2.0 call vs kameo\npool/get deadpool 1.25 get+drop vs deadpool\n",
        )
        .unwrap();
        let md = render(&results, &goals, &[], &machine());
        assert!(md.starts_with(BEGIN) && md.trim_end().ends_with(END));
        assert!(md.contains("Test CPU (2 cores)"));
        assert!(md.contains("### process"));
        assert!(
            md.contains("| process/cast | 100.0 ns ± 1% (10.00 M elem/s) | tokio-mpsc |"),
            "{md}"
        );
        assert!(md.contains("**0.95×** | ≥ 0.90× ✅ met"), "{md}");
        assert!(md.contains("**4.00×** | ≥ 2.00× ✅ met"), "{md}");
        // A goal whose bench did not run is listed, so a missing bench is visible.
        assert!(
            md.contains("| pool/get | deadpool | ≥ 1.25× | get+drop vs deadpool |"),
            "{md}"
        );
    }

    #[test]
    fn missed_goals_and_unpaired_results_are_shown() {
        let results = [
            result("mux/codec", "beamline", 200.0),
            result("mux/codec", "tokio-util", 100.0),
            result("reconnect/delay", "full-jitter", 12.0),
        ];
        let goals = parse_goals("mux/codec tokio-util 1.0 encode+decode").unwrap();
        let md = render(&results, &goals, &[], &machine());
        assert!(md.contains("**0.50×** | ≥ 1.00× ❌ missed"), "{md}");
        assert!(md.contains("### Without a beamline row"), "{md}");
        assert!(
            md.contains("| reconnect/delay/full-jitter | 12.0 ns"),
            "{md}"
        );
    }

    #[test]
    fn external_measurements_pair_and_orient_their_ratio() {
        let rows = parse_external(
            r#"[{"group":"kv/set","function":"beamline-kv","value":null,"metric":"requests/s","amount":1500000.0,"higher_is_better":true},
                {"group":"kv/set","function":"redis-server","metric":"requests/s","amount":1000000.0,"higher_is_better":true},
                {"group":"server/idle-memory","function":"beamline","metric":"bytes/connection","amount":5800.0,"higher_is_better":false},
                {"group":"server/idle-memory","function":"raw-tokio","metric":"bytes/connection","amount":4960.0,"higher_is_better":false}]"#,
        )
        .unwrap();
        assert_eq!(rows[0].ratio_over(&rows[1]), 1.5);
        assert!((rows[2].ratio_over(&rows[3]) - 4960.0 / 5800.0).abs() < 1e-12);
        let goals = parse_goals("kv/set redis-server 1.0 at least redis-server's rate").unwrap();
        let md = render(&rows, &goals, &[], &machine());
        assert!(md.contains("| kv/set | 1.50 M requests/s | redis-server | 1.00 M requests/s | **1.50×** | ≥ 1.00× ✅ met |"), "{md}");
        assert!(md.contains("**0.86×**"), "{md}");
    }

    #[test]
    fn external_files_reject_bad_rows() {
        assert!(parse_external("{}").is_err());
        assert!(parse_external(r#"[{"group":"g","function":"f","metric":"m"}]"#).is_err());
        assert!(
            parse_external(r#"[{"group":"g","function":"f","metric":"m","amount":-1}]"#).is_err()
        );
        assert!(parse_external(r#"[{"function":"f","metric":"m","amount":1}]"#).is_err());
        assert!(
            load_external(Path::new("/nonexistent/beamline-bench"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn empty_results_say_so() {
        let md = render(&[], &[], &["### extra\n".to_owned()], &machine());
        assert!(md.contains("No criterion results found yet"));
        assert!(md.contains(&format!("### extra\n{END}")), "{md}");
    }

    #[test]
    fn goals_reject_bad_lines() {
        assert!(parse_goals("process/cast tokio-mpsc").is_err());
        assert!(parse_goals("process/cast tokio-mpsc fast").is_err());
        assert_eq!(parse_goals("\n# only comments\n").unwrap(), vec![]);
    }

    #[test]
    fn splice_replaces_between_markers_and_keeps_prose() {
        let old =
            format!("# Benchmarks\n\nProse before.\n\n{BEGIN}\nold table\n{END}\nProse after.\n");
        let new = format!("{BEGIN}\nnew table\n{END}\n");
        let out = splice(&old, &new);
        assert_eq!(
            out,
            format!("# Benchmarks\n\nProse before.\n\n{BEGIN}\nnew table\n{END}\nProse after.\n")
        );
        // No markers yet: appended after a blank line.
        let out = splice("# Benchmarks\n", &new);
        assert_eq!(out, format!("# Benchmarks\n\n{new}"));
    }

    #[test]
    fn load_walks_the_criterion_tree() {
        let dir = std::env::temp_dir().join(format!("xtask-report-test-{}", std::process::id()));
        let new = dir.join("process_cast").join("beamline").join("new");
        fs::create_dir_all(&new).unwrap();
        fs::write(
            new.join("benchmark.json"),
            bench_json("beamline", None, "null"),
        )
        .unwrap();
        fs::write(new.join("estimates.json"), estimates_json(42.0, None)).unwrap();
        // `base` holds an older run and must be ignored.
        let base = dir.join("process_cast").join("beamline").join("base");
        fs::create_dir_all(&base).unwrap();
        fs::write(
            base.join("benchmark.json"),
            bench_json("beamline", None, "null"),
        )
        .unwrap();
        fs::write(base.join("estimates.json"), estimates_json(1.0, None)).unwrap();
        let results = load(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].ns, 42.0);
        assert!(
            load(Path::new("/nonexistent/criterion"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(11_016), "2000-02-29");
        assert_eq!(civil_date(20_780), "2026-11-23");
    }
}
