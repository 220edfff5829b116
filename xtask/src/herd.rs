//! The thundering-herd picture: beamline-backoff's deterministic simulation (10,000
//! clients lose their server at t = 0, it is back at t = 5 s), drawn per jitter kind.
//!
//! The simulation lives in `beamline_backoff::herd` (re-exported as
//! `beamline_reconnect::herd`); beamline-reconnect's `herd` example prints attempts per window
//! as CSV. xtask runs it, draws `benches/plots/herd.svg` and returns the markdown
//! section (peak window, mean over the busy span, their ratio) for BENCHMARKS.md. Peak and
//! mean use the crate's definitions: the busy span runs from the first window with an attempt
//! to the last.

use std::fs;
use std::process::Command;

use crate::svg::{Chart, Series};
use crate::{cargo, workspace_root};

/// Attempts per window for one jitter kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Column {
    pub(crate) jitter: String,
    pub(crate) attempts: Vec<u64>,
}

impl Column {
    pub(crate) fn peak(&self) -> u64 {
        self.attempts.iter().copied().max().unwrap_or(0)
    }

    /// Mean attempts per window over the busy span (first to last window with an attempt).
    pub(crate) fn mean_busy(&self) -> f64 {
        let first = self.attempts.iter().position(|&a| a > 0);
        let last = self.attempts.iter().rposition(|&a| a > 0);
        match (first, last) {
            (Some(f), Some(l)) => {
                let span = &self.attempts[f..=l];
                span.iter().sum::<u64>() as f64 / span.len() as f64
            }
            _ => 0.0,
        }
    }
}

/// Parses the example's CSV: `window_start_ms,<kind>,<kind>…` then one row per window.
/// Returns the window starts (ms) and one column per jitter kind.
pub(crate) fn parse_csv(csv: &str) -> Result<(Vec<u64>, Vec<Column>), String> {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().ok_or("herd CSV is empty")?;
    let mut names = header.split(',');
    if names.next() != Some("window_start_ms") {
        return Err(format!(
            "herd CSV header `{header}` does not start with window_start_ms"
        ));
    }
    let mut columns: Vec<Column> = names
        .map(|n| Column {
            jitter: n.trim().to_owned(),
            attempts: Vec::new(),
        })
        .collect();
    let mut starts = Vec::new();
    for (i, line) in lines.enumerate() {
        let mut cells = line.split(',').map(|c| c.trim().parse::<u64>());
        let bad = || format!("herd CSV row {}: `{line}`", i + 2);
        starts.push(cells.next().ok_or_else(bad)?.map_err(|_| bad())?);
        for column in &mut columns {
            column
                .attempts
                .push(cells.next().ok_or_else(bad)?.map_err(|_| bad())?);
        }
        if cells.next().is_some() {
            return Err(bad());
        }
    }
    Ok((starts, columns))
}

/// The chart of attempts per window over time, one line per jitter kind.
pub(crate) fn chart(starts: &[u64], columns: &[Column]) -> Chart {
    Chart {
        title: "Thundering herd: 10,000 clients, server back at t = 5 s".into(),
        x_label: "time since the server went away (s)".into(),
        y_label: "connection attempts per 100 ms window".into(),
        series: series(starts, columns, |jitter| jitter.to_owned()),
        log_y: false,
        markers: Vec::new(),
    }
}

/// One line per column, in seconds, named by `name(jitter)`.
pub(crate) fn series(
    starts: &[u64],
    columns: &[Column],
    name: impl Fn(&str) -> String,
) -> Vec<Series> {
    columns
        .iter()
        .map(|c| Series {
            name: name(&c.jitter),
            points: starts
                .iter()
                .zip(&c.attempts)
                .map(|(&ms, &a)| (ms as f64 / 1000.0, a as f64))
                .collect(),
        })
        .collect()
}

/// The BENCHMARKS.md section for `columns`, linking the picture at `svg_path`.
pub(crate) fn markdown(columns: &[Column], svg_path: &str) -> String {
    let mut s = String::from(
        "### reconnect: the thundering herd\n\n\
         10,000 simulated clients (seeded) lose their server at t = 0; it is back at t = 5 s. \
         Peak = the busiest 100 ms window; mean = attempts per window over the busy span. \
         Without jitter every retry wave lands in one window.\n\n\
         | jitter | peak window | mean over busy span | peak ÷ mean |\n|---|---|---|---|\n",
    );
    for c in columns {
        let mean = c.mean_busy();
        let ratio = if mean > 0.0 {
            c.peak() as f64 / mean
        } else {
            0.0
        };
        s.push_str(&format!(
            "| {} | {} | {mean:.1} | {ratio:.2}× |\n",
            c.jitter,
            c.peak()
        ));
    }
    s.push_str(&format!(
        "\n![attempts per window, per jitter kind]({svg_path})\n\n"
    ));
    s
}

/// Runs the simulation, writes the SVG, and returns the markdown section.
pub(crate) fn run() -> Result<String, String> {
    let root = workspace_root();
    let output = Command::new(cargo())
        .current_dir(root)
        .args([
            "run",
            "--quiet",
            "--release",
            "--package",
            "beamline-reconnect",
            "--example",
            "herd",
        ])
        .output()
        .map_err(|e| format!("could not run the herd example: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "the herd example failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let (starts, columns) = parse_csv(&String::from_utf8_lossy(&output.stdout))?;
    let plots = root.join("benches").join("plots");
    fs::create_dir_all(&plots).map_err(|e| format!("{}: {e}", plots.display()))?;
    let svg = plots.join("herd.svg");
    fs::write(&svg, chart(&starts, &columns).render())
        .map_err(|e| format!("{}: {e}", svg.display()))?;
    Ok(markdown(&columns, "benches/plots/herd.svg"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "window_start_ms,none,full\n0,0,4\n100,0,0\n200,10,2\n300,0,0\n";

    #[test]
    fn parses_columns_and_computes_peak_and_busy_mean() {
        let (starts, cols) = parse_csv(CSV).unwrap();
        assert_eq!(starts, [0, 100, 200, 300]);
        assert_eq!(cols[0].jitter, "none");
        assert_eq!(cols[0].peak(), 10);
        // Busy span of `none` is the single window 200: mean 10.
        assert_eq!(cols[0].mean_busy(), 10.0);
        // Busy span of `full` is windows 0..=200: (4 + 0 + 2) / 3.
        assert_eq!(cols[1].mean_busy(), 2.0);
    }

    #[test]
    fn rejects_malformed_csv() {
        assert!(parse_csv("").is_err());
        assert!(parse_csv("time,none\n0,1\n").is_err());
        assert!(parse_csv("window_start_ms,none\n0,x\n").is_err());
        assert!(parse_csv("window_start_ms,none\n0,1,2\n").is_err());
        assert!(parse_csv("window_start_ms,none,full\n0,1\n").is_err());
    }

    #[test]
    fn markdown_has_a_row_per_kind_and_the_picture() {
        let (_, cols) = parse_csv(CSV).unwrap();
        let md = markdown(&cols, "benches/plots/herd.svg");
        assert!(md.contains("| none | 10 | 10.0 | 1.00× |"), "{md}");
        assert!(md.contains("| full | 4 | 2.0 | 2.00× |"), "{md}");
        assert!(md.contains("(benches/plots/herd.svg)"));
    }

    #[test]
    fn chart_has_a_series_per_kind_in_seconds() {
        let (starts, cols) = parse_csv(CSV).unwrap();
        let c = chart(&starts, &cols);
        assert_eq!(c.series.len(), 2);
        assert_eq!(c.series[0].points[2], (0.2, 10.0));
    }
}
