//! The latency picture: the `latency` bench's percentiles (`target/beamline-bench/latency.csv`:
//! `percentile,<function>,<function>…`, in ms) drawn as `benches/plots/latency.svg`, one line
//! per client, and the BENCHMARKS.md section that shows the table and links the picture.
//!
//! The x axis counts nines (`-log10(1 - p/100)`: 0 is p0, 1 is p90, 2 is p99, 3 is p99.9),
//! so the tail, where clients differ, is not squeezed into the right edge; p100 (the
//! maximum) sits one nine past the last percentile below it.

use std::fs;
use std::path::Path;

use crate::svg::{Chart, Series};
use crate::workspace_root;

/// One client's latency at each percentile.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Line {
    pub(crate) function: String,
    pub(crate) ms: Vec<f64>,
}

/// Parses the bench's CSV into the percentiles and one line per function.
pub(crate) fn parse_csv(csv: &str) -> Result<(Vec<f64>, Vec<Line>), String> {
    let mut rows = csv.lines().filter(|l| !l.trim().is_empty());
    let header = rows.next().ok_or("latency CSV is empty")?;
    let mut names = header.split(',');
    if names.next() != Some("percentile") {
        return Err(format!(
            "latency CSV header `{header}` does not start with percentile"
        ));
    }
    let mut lines: Vec<Line> = names
        .map(|n| Line {
            function: n.trim().to_owned(),
            ms: Vec::new(),
        })
        .collect();
    if lines.is_empty() {
        return Err("latency CSV has no function column".into());
    }
    let mut percentiles = Vec::new();
    for (i, row) in rows.enumerate() {
        let bad = || format!("latency CSV row {}: `{row}`", i + 2);
        let cells: Vec<f64> = row
            .split(',')
            .map(|c| c.trim().parse::<f64>().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        if cells.len() != lines.len() + 1 || !(0.0..=100.0).contains(&cells[0]) {
            return Err(bad());
        }
        percentiles.push(cells[0]);
        for (line, ms) in lines.iter_mut().zip(&cells[1..]) {
            line.ms.push(*ms);
        }
    }
    Ok((percentiles, lines))
}

/// Where a percentile goes on the x axis: its count of nines.
fn nines(p: f64, below_max: f64) -> f64 {
    if p >= 100.0 {
        below_max + 1.0
    } else {
        -(1.0 - p / 100.0).log10()
    }
}

/// The chart: latency (ms) against percentile, one line per function.
pub(crate) fn chart(percentiles: &[f64], lines: &[Line]) -> Chart {
    let below_max = percentiles
        .iter()
        .filter(|&&p| p < 100.0)
        .map(|&p| nines(p, 0.0))
        .fold(0.0, f64::max);
    Chart {
        title: "Client latency, 64 callers doing SET/GET against one redis-server".into(),
        x_label: "percentile, in nines (0 = p0, 1 = p90, 2 = p99, 3 = p99.9, 4 = p99.99; the last point is the maximum)".into(),
        y_label: "latency (ms)".into(),
        series: lines
            .iter()
            .map(|l| Series {
                name: l.function.clone(),
                points: percentiles
                    .iter()
                    .zip(&l.ms)
                    .map(|(&p, &ms)| (nines(p, below_max), ms))
                    .collect(),
            })
            .collect(),
        log_y: false,
        markers: Vec::new(),
    }
}

/// The BENCHMARKS.md section: a row per percentile, a column per function, the picture.
pub(crate) fn markdown(percentiles: &[f64], lines: &[Line], svg_path: &str) -> String {
    let mut s = String::from(
        "### client: latency distribution\n\n\
         64 callers doing SET/GET pairs back to back, every reply checked, against the same \
         redis-server, each client over 4 connections with the same 500 ms request timeout; \
         the clients take turns over many rounds and every request's latency is kept, pooled \
         over the rounds below (`benches/latency.rs`). The p50, p99 and p99.9 with their 95% \
         intervals over the rounds are in the client table above.\n\n| percentile |",
    );
    for l in lines {
        s.push_str(&format!(" {} (ms) |", l.function));
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(lines.len()));
    s.push('\n');
    for (i, p) in percentiles.iter().enumerate() {
        s.push_str(&format!("| p{p} |"));
        for l in lines {
            s.push_str(&format!(" {:.3} |", l.ms[i]));
        }
        s.push('\n');
    }
    s.push_str(&format!(
        "\n![latency by percentile, per client]({svg_path})\n\n"
    ));
    s
}

/// Draws the picture from `csv` and returns the section; `Ok(None)` when the bench did not
/// run (no CSV).
pub(crate) fn run(csv: &Path) -> Result<Option<String>, String> {
    let text = match fs::read_to_string(csv) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", csv.display())),
    };
    let (percentiles, lines) = parse_csv(&text)?;
    let plots = workspace_root().join("benches").join("plots");
    fs::create_dir_all(&plots).map_err(|e| format!("{}: {e}", plots.display()))?;
    let svg = plots.join("latency.svg");
    fs::write(&svg, chart(&percentiles, &lines).render())
        .map_err(|e| format!("{}: {e}", svg.display()))?;
    Ok(Some(markdown(
        &percentiles,
        &lines,
        "benches/plots/latency.svg",
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "percentile,beamline-fifo-pooled,redis-rs-multiplexed\n\
                       0,0.1,0.12\n50,0.5,0.6\n90,0.9,1.1\n99,2.0,3.5\n100,9.0,12.0\n";

    #[test]
    fn parses_percentiles_and_a_line_per_function() {
        let (p, lines) = parse_csv(CSV).unwrap();
        assert_eq!(p, [0.0, 50.0, 90.0, 99.0, 100.0]);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].function, "redis-rs-multiplexed");
        assert_eq!(lines[0].ms[3], 2.0);
    }

    #[test]
    fn rejects_malformed_csv() {
        assert!(parse_csv("").is_err());
        assert!(parse_csv("p,a\n1,2\n").is_err());
        assert!(parse_csv("percentile\n1\n").is_err());
        assert!(parse_csv("percentile,a\n1,x\n").is_err());
        assert!(parse_csv("percentile,a\n1,2,3\n").is_err());
        assert!(parse_csv("percentile,a\n101,2\n").is_err());
    }

    #[test]
    fn the_x_axis_counts_nines_and_the_maximum_comes_last() {
        let (p, lines) = parse_csv(CSV).unwrap();
        let c = chart(&p, &lines);
        let xs: Vec<f64> = c.series[0].points.iter().map(|pt| pt.0).collect();
        assert_eq!(xs[0], 0.0);
        assert!(
            (xs[2] - 1.0).abs() < 1e-9 && (xs[3] - 2.0).abs() < 1e-9,
            "{xs:?}"
        );
        assert!((xs[4] - 3.0).abs() < 1e-9, "p100 one nine past p99: {xs:?}");
        assert!(c.render().contains("redis-rs-multiplexed"));
    }

    #[test]
    fn markdown_has_a_row_per_percentile_and_the_picture() {
        let (p, lines) = parse_csv(CSV).unwrap();
        let md = markdown(&p, &lines, "benches/plots/latency.svg");
        assert!(md.contains("| p99 | 2.000 | 3.500 |"), "{md}");
        assert!(md.contains("beamline-fifo-pooled (ms)"));
        assert!(md.contains("(benches/plots/latency.svg)"));
    }
}
