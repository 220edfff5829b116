//! The generated part of BENCHMARKS.md: ratio tables per layer, the memory table, the
//! sections, every row and section stamped with the run that produced it.
//!
//! A run rewrites only what it measured: the rows of the groups it ran (found in the
//! existing text by their first cell), the memory rows of the groups it counted and the
//! sections it wrote. Everything else is kept as it was, stamp included, unless the run
//! replaces everything (a full run: a removed bench must not linger).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::stats::{Interval, Summary, Verdict, median};
use super::{BenchResult, Goal, Machine, MemoryResult, Section, Throughput, goal_for};

pub(crate) const BEGIN: &str = "<!-- xtask:bench:begin -->";
pub(crate) const END: &str = "<!-- xtask:bench:end -->";
/// Opens a section: `<!-- xtask:section NAME -->`; it runs to the next one or to [`END`].
const SECTION: &str = "<!-- xtask:section ";
const UNPAIRED: &str = "Without a beamline row";
const MEMORY: &str = "memory beside speed";
const GOALS_LEFT: &str = "Goals without a result";

/// The commit and date of the run that produced a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) commit: String,
    pub(crate) date: String,
}

impl Default for Stamp {
    fn default() -> Self {
        Stamp {
            commit: "unknown".into(),
            date: "unknown date".into(),
        }
    }
}

impl Stamp {
    /// The table cell: `` `26d2e91` 2026-11-24 ``; parsed back by [`Stamp::parse_cell`].
    pub(crate) fn cell(&self) -> String {
        format!("`{}` {}", self.commit, self.date)
    }

    pub(crate) fn parse_cell(cell: &str) -> Option<Stamp> {
        let rest = cell.trim().strip_prefix('`')?;
        let (commit, date) = rest.split_once('`')?;
        Some(Stamp {
            commit: commit.to_owned(),
            date: date.trim().to_owned(),
        })
    }
}

/// Who wrote the block last, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    /// `cargo xtask bench` with its arguments.
    pub(crate) command: String,
    pub(crate) stamp: Stamp,
    pub(crate) machine: Machine,
}

/// What one run measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Update<'a> {
    pub(crate) results: &'a [BenchResult],
    pub(crate) memory: &'a [MemoryResult],
    pub(crate) sections: &'a [Section],
    /// Replace everything (a full run) instead of keeping what this run did not measure.
    pub(crate) replace_all: bool,
}

/// One table row, and the table it belongs to.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    table: String,
    /// The first cell: `group`, `group/value`, or (unpaired) `group/function`.
    case: String,
    line: String,
}

fn cells(line: &str) -> Vec<&str> {
    line.trim()
        .trim_start_matches('|')
        .trim_end_matches('|')
        .split('|')
        .map(str::trim)
        .collect()
}

fn width(table: &str) -> usize {
    match table {
        UNPAIRED => 3,
        MEMORY => 5,
        _ => 7,
    }
}

fn table_header(table: &str) -> &'static str {
    match table {
        UNPAIRED => "| benchmark | result | measured |\n|---|---|---|",
        MEMORY => {
            "| benchmark | function | allocations per op | peak bytes per iteration | measured at |\n\
             |---|---|---|---|---|"
        }
        _ => {
            "| benchmark | beamline | peer | peer's result | ratio (interval) | goal | measured |\n\
             |---|---|---|---|---|---|---|"
        }
    }
}

/// The rows and sections of an existing generated block, and how many rows were dropped
/// because they predate the stamped format.
fn parse_existing(block: &str) -> (Vec<Row>, BTreeMap<String, String>, usize) {
    let mut rows = Vec::new();
    let mut sections = BTreeMap::new();
    let mut section: Option<(String, String)> = None;
    let mut table: Option<String> = None;
    let mut bench_table = false;
    let mut dropped = 0;
    for line in block.lines() {
        if let Some(name) = line
            .strip_prefix(SECTION)
            .and_then(|rest| rest.strip_suffix("-->"))
        {
            if let Some((name, text)) = section.take() {
                sections.insert(name, text);
            }
            section = Some((name.trim().to_owned(), String::new()));
            continue;
        }
        if let Some((_, text)) = &mut section {
            text.push_str(line);
            text.push('\n');
            continue;
        }
        if let Some(heading) = line.strip_prefix("### ") {
            table = Some(heading.trim().to_owned());
            bench_table = false;
            continue;
        }
        if !line.starts_with('|') || line.starts_with("|---") {
            continue;
        }
        let c = cells(line);
        if c[0] == "benchmark" {
            bench_table = true;
            continue;
        }
        match &table {
            Some(t) if bench_table && t != GOALS_LEFT && !t.starts_with("Goals not measured") => {
                // A kept row must carry its stamp, or nobody can tell when it was measured.
                let stamped = c
                    .last()
                    .is_some_and(|cell| Stamp::parse_cell(cell).is_some());
                if c.len() == width(t) && stamped {
                    rows.push(Row {
                        table: t.clone(),
                        case: c[0].to_owned(),
                        line: line.to_owned(),
                    });
                } else {
                    dropped += 1;
                }
            }
            _ => {}
        }
    }
    if let Some((name, text)) = section {
        sections.insert(name, text);
    }
    (rows, sections, dropped)
}

fn covers(group: &str, case: &str) -> bool {
    case == group || case.strip_prefix(group).is_some_and(|r| r.starts_with('/'))
}

/// The new generated block (markers included), and warnings for the person running it.
pub(crate) fn render(
    existing: &str,
    update: Update<'_>,
    goals: &[Goal],
    header: &Header,
) -> (String, Vec<String>) {
    let mut warnings = Vec::new();
    let block = match (existing.find(BEGIN), existing.find(END)) {
        (Some(b), Some(e)) if b < e => &existing[b + BEGIN.len()..e],
        _ => "",
    };
    let (old_rows, old_sections, dropped) = parse_existing(block);
    let result_groups: BTreeSet<&str> = update.results.iter().map(|r| r.group.as_str()).collect();
    let memory_groups: BTreeSet<&str> = update.memory.iter().map(|m| m.group.as_str()).collect();
    let mut rows: Vec<Row> = Vec::new();
    if !update.replace_all {
        if dropped > 0 {
            warnings.push(format!(
                "{dropped} rows of BENCHMARKS.md predate per-row stamps and were dropped: run the full `cargo xtask bench`"
            ));
        }
        rows.extend(old_rows.into_iter().filter(|r| {
            let groups = if r.table == MEMORY {
                &memory_groups
            } else {
                &result_groups
            };
            !groups.iter().any(|g| covers(g, &r.case))
        }));
    }
    rows.extend(result_rows(update.results, goals));
    rows.extend(memory_rows(update.memory));

    let mut tables: BTreeMap<(u8, String), Vec<Row>> = BTreeMap::new();
    for row in rows {
        let order = match row.table.as_str() {
            UNPAIRED => 1,
            MEMORY => 2,
            _ => 0,
        };
        tables
            .entry((order, row.table.clone()))
            .or_default()
            .push(row);
    }

    let mut s = String::new();
    let _ = writeln!(s, "{BEGIN}");
    write_header(&mut s, header);
    if tables.is_empty() {
        let _ = writeln!(
            s,
            "No results found yet: the layers add their benches as they land.\n"
        );
    }
    let mut measured: Vec<(String, String)> = Vec::new();
    for ((_, table), rows) in &mut tables {
        rows.sort_by(|a, b| a.case.cmp(&b.case));
        let _ = writeln!(s, "### {table}\n\n{}", table_header(table));
        for row in rows.iter() {
            let _ = writeln!(s, "{}", row.line);
            if table != UNPAIRED && table != MEMORY {
                let c = cells(&row.line);
                measured.push((c[0].to_owned(), c[2].to_owned()));
            }
        }
        let _ = writeln!(s);
    }
    write_goals_left(&mut s, goals, &measured);

    let mut sections: BTreeMap<String, String> = if update.replace_all {
        BTreeMap::new()
    } else {
        old_sections
    };
    for section in update.sections {
        sections.insert(section.name.clone(), stamped(section));
    }
    for (name, text) in &sections {
        let _ = writeln!(s, "{SECTION}{name} -->");
        s.push_str(text);
    }
    let _ = writeln!(s, "{END}");
    (s, warnings)
}

fn write_header(s: &mut String, header: &Header) {
    let m = &header.machine;
    let _ = writeln!(
        s,
        "_Last written by `{}` on {} at commit `{}` — {} ({} cores), {}. Each row's last \
         column and each section's first line name the commit and date of the run that \
         measured it: a filtered run rewrites only its own groups._\n",
        header.command, header.stamp.date, header.stamp.commit, m.cpu, m.cores, m.rustc
    );
    let _ = writeln!(
        s,
        "Ratio = peer time ÷ beamline time (or, for rates, beamline ÷ peer), both measured in \
         the same run: above 1.00× beamline is better. Its interval: for criterion groups, \
         the two sides' 95% confidence intervals combined on a log scale (half-widths added in \
         quadrature); for repeated rounds, the ratio round by round, as the median with its \
         min–max or as the geometric mean with its 95% t-interval. A goal is ✅ met only when \
         the interval's lower end clears it, ❌ missed only when its upper end falls short, and \
         ➖ within noise otherwise.\n"
    );
}

fn write_goals_left(s: &mut String, goals: &[Goal], measured: &[(String, String)]) {
    let left: Vec<&Goal> = goals
        .iter()
        .filter(|g| !measured.iter().any(|(case, peer)| g.applies(case, peer)))
        .collect();
    if left.is_empty() {
        return;
    }
    let _ = writeln!(s, "### {GOALS_LEFT}\n");
    let _ = writeln!(s, "| benchmark | peer | goal | what it means |");
    let _ = writeln!(s, "|---|---|---|---|");
    for g in left {
        let _ = writeln!(
            s,
            "| {} | {} | ≥ {:.2}× | {} |",
            g.group, g.peer, g.min_ratio, g.note
        );
    }
    let _ = writeln!(s);
}

/// A section with its stamp after its heading.
fn stamped(section: &Section) -> String {
    let stamp = format!(
        "_Measured at `{}` on {}._\n",
        section.stamp.commit, section.stamp.date
    );
    let text = section.markdown.trim_end();
    let mut out = match text.split_once('\n') {
        Some((first, rest)) if first.starts_with('#') => {
            format!("{first}\n\n{stamp}\n{}", rest.trim_start_matches('\n'))
        }
        _ if text.starts_with('#') => format!("{text}\n\n{stamp}"),
        _ => format!("{stamp}\n{text}"),
    };
    out.push_str("\n\n");
    out
}

/// The rows of `results`: one per (case, peer), beamline's figure beside the peer's.
fn result_rows(results: &[BenchResult], goals: &[Goal]) -> Vec<Row> {
    let mut by_case: BTreeMap<(String, Option<String>), Vec<&BenchResult>> = BTreeMap::new();
    for r in results {
        by_case
            .entry((r.group.clone(), r.value.clone()))
            .or_default()
            .push(r);
    }
    let mut rows = Vec::new();
    for ((group, value), mut members) in by_case {
        members.sort_by(|a, b| a.function.cmp(&b.function));
        let case = match &value {
            Some(v) => format!("{group}/{v}"),
            None => group.clone(),
        };
        let table = group.split('/').next().unwrap_or(&group).to_owned();
        let Some(subject) = members
            .iter()
            .copied()
            .find(|r| r.function.starts_with("beamline"))
        else {
            for r in members {
                let name = format!("{case}/{}", r.function);
                rows.push(Row {
                    table: UNPAIRED.into(),
                    line: format!("| {name} | {} | {} |", describe(r), r.stamp.cell()),
                    case: name,
                });
            }
            continue;
        };
        let peers: Vec<&BenchResult> = members
            .iter()
            .copied()
            .filter(|r| !std::ptr::eq(*r, subject))
            .collect();
        if peers.is_empty() {
            rows.push(Row {
                table: table.clone(),
                line: format!(
                    "| {case} | {} | — | — | — | — | {} |",
                    describe(subject),
                    subject.stamp.cell()
                ),
                case: case.clone(),
            });
        }
        for peer in peers {
            let ratio = subject.ratio_over(peer);
            let goal = match goal_for(goals, &case, &peer.function) {
                Some(g) => format!(
                    "≥ {:.2}× {}",
                    g.min_ratio,
                    Verdict::of(ratio, g.min_ratio).label()
                ),
                None => "—".to_owned(),
            };
            rows.push(Row {
                table: table.clone(),
                line: format!(
                    "| {case} | {} | {} | {} | {} | {goal} | {} |",
                    describe(subject),
                    peer.function,
                    describe(peer),
                    ratio_cell(ratio),
                    subject.stamp.cell()
                ),
                case: case.clone(),
            });
        }
    }
    rows
}

/// The memory table's rows: per group, beamline first, then its peers.
fn memory_rows(memory: &[MemoryResult]) -> Vec<Row> {
    let mut sorted: Vec<&MemoryResult> = memory.iter().collect();
    sorted.sort_by_key(|m| {
        (
            m.group.clone(),
            !m.function.starts_with("beamline"),
            m.function.clone(),
        )
    });
    sorted
        .into_iter()
        .map(|m| {
            let allocations = spread(&m.allocations_per_op, count);
            let peak = spread(&m.peak_bytes, bytes);
            Row {
                table: MEMORY.into(),
                case: m.group.clone(),
                line: format!(
                    "| {} | {} | {allocations} | {peak} | {} |",
                    m.group,
                    m.function,
                    m.stamp.cell()
                ),
            }
        })
        .collect()
}

/// `median (min–max)` of `values`, each formatted by `f`.
fn spread(values: &[f64], f: impl Fn(f64) -> String) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if min == max {
        f(min)
    } else {
        format!("{} ({}–{})", f(median(values)), f(min), f(max))
    }
}

/// A byte count: whole bytes below a kilobyte, then SI prefixes (`1.05 MB`).
pub(crate) fn bytes(x: f64) -> String {
    if x < 1e3 {
        format!("{x:.0} B")
    } else {
        format!("{}B", number(x))
    }
}

/// An allocation count per operation: whole numbers as such, fractions with two decimals.
fn count(x: f64) -> String {
    if x.fract() == 0.0 && x < 1e6 {
        format!("{x:.0}")
    } else {
        number(x).trim_end().to_owned()
    }
}

fn ratio_cell(ratio: Interval) -> String {
    if ratio.is_exact() {
        format!("**{:.2}×**", ratio.point)
    } else {
        format!("**{:.2}×** ({:.2}–{:.2})", ratio.point, ratio.lo, ratio.hi)
    }
}

/// `95.1 ns ± 2% (10.5 M elem/s)`, or `1.52 M requests/s (1.48 M–1.60 M, 5 runs)` for a
/// harness-free measurement.
pub(crate) fn describe(r: &BenchResult) -> String {
    let e = r.estimate;
    let half_pct = if e.point > 0.0 {
        ((e.hi - e.lo) / 2.0 / e.point * 100.0).abs()
    } else {
        0.0
    };
    if let Some(x) = &r.external {
        let unit = |v: f64| {
            let n = number(v);
            let sep = if n.ends_with(' ') { "" } else { " " };
            format!("{n}{sep}{}", x.metric)
        };
        return match &x.samples {
            None => format!("{} (one run)", unit(e.point)),
            Some((s, Summary::Median)) => format!(
                "{} ({}–{}, {} runs)",
                unit(e.point),
                number(e.lo).trim_end(),
                number(e.hi).trim_end(),
                s.len()
            ),
            Some((s, Summary::Mean)) => {
                format!("{} ± {half_pct:.0}% ({} rounds)", unit(e.point), s.len())
            }
        };
    }
    let mut out = format!("{} ± {half_pct:.0}%", format_time(e.point));
    if let Some(t) = r.throughput {
        let per_sec = |n: u64| n as f64 / (e.point * 1e-9);
        match t {
            Throughput::Elements(n) => {
                let _ = write!(out, " ({} elem/s)", number(per_sec(n)));
            }
            Throughput::Bytes(n) => {
                let _ = write!(out, " ({}B/s)", number(per_sec(n)));
            }
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

/// A number with an SI prefix (`1.52 M`); small ones keep three significant digits and
/// end in a space, so a unit can follow directly.
pub(crate) fn number(x: f64) -> String {
    if x >= 1e9 {
        format!("{:.2} G", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else if x >= 100.0 {
        format!("{x:.1} ")
    } else if x >= 10.0 {
        format!("{x:.2} ")
    } else {
        format!("{x:.3} ")
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
