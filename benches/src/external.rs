//! Results measured outside criterion, written as JSON for `cargo xtask bench`.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::results_dir;

/// One measurement for `cargo xtask bench`'s ratio tables, paired like a criterion result:
/// within a group, the function whose id starts with `beamline` is the subject and every
/// other one a peer. A single figure: xtask shows it without an interval.
#[derive(Debug, Clone, PartialEq)]
pub struct External {
    /// `<layer>/<what>`.
    pub group: String,
    /// `beamline...` for the subject, the peer's name otherwise.
    pub function: String,
    /// The unit (`requests/s`, `bytes/connection`, `ms`).
    pub metric: &'static str,
    /// The measured amount.
    pub amount: f64,
    /// Whether more is better (a rate) or worse (a time, a size).
    pub higher_is_better: bool,
}

/// How xtask summarises a [`Sampled`] measurement and the ratio of two of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    /// The median, with the smallest and largest sample as its interval (repeated whole
    /// runs: kv's rounds, allocation counts). Ratios are taken round by round (sample `i`
    /// of the subject against sample `i` of the peer) and summarised the same way.
    Median,
    /// The mean with its 95% Student-t interval (many rounds: per-round latency
    /// percentiles). Ratios are taken round by round, on a log scale (a geometric mean).
    Mean,
}

impl Summary {
    fn name(self) -> &'static str {
        match self {
            Summary::Median => "median",
            Summary::Mean => "mean",
        }
    }
}

/// A measurement repeated over rounds, for `cargo xtask bench`'s ratio tables with an
/// interval. Sample `i` of every function in a group comes from the same round, so xtask can
/// pair them.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampled {
    /// `<layer>/<what>`.
    pub group: String,
    /// `beamline...` for the subject, the peer's name otherwise.
    pub function: String,
    /// The unit (`requests/s`, `ms`).
    pub metric: &'static str,
    /// One figure per round, in round order.
    pub samples: Vec<f64>,
    /// How the samples are summarised.
    pub summary: Summary,
    /// Whether more is better (a rate) or worse (a time, a size).
    pub higher_is_better: bool,
}

/// One row of the JSON xtask reads, with the figure's own fields (`amount`, or `samples`
/// and `summary`) added.
fn row(
    group: &str,
    function: &str,
    metric: &str,
    higher: bool,
    figure: Vec<(&str, Value)>,
) -> Value {
    let mut row = json!({
        "group": group,
        "function": function,
        "value": null,
        "metric": metric,
        "higher_is_better": higher,
    });
    for (key, value) in figure {
        row[key] = value;
    }
    row
}

/// `results` as the JSON array `cargo xtask bench` reads.
pub fn external_json(results: &[External]) -> String {
    let rows = results.iter().map(|r| {
        row(
            &r.group,
            &r.function,
            r.metric,
            r.higher_is_better,
            vec![("amount", json!(r.amount))],
        )
    });
    pretty(&Value::Array(rows.collect()))
}

/// `results` as the JSON array `cargo xtask bench` reads (rows with `samples`).
pub fn sampled_json(results: &[Sampled]) -> String {
    let rows = results.iter().map(|r| {
        let figure = vec![
            ("samples", json!(r.samples)),
            ("summary", json!(r.summary.name())),
        ];
        row(&r.group, &r.function, r.metric, r.higher_is_better, figure)
    });
    pretty(&Value::Array(rows.collect()))
}

pub(crate) fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "[]".to_owned());
    text.push('\n');
    text
}

/// Writes `json` to `target/beamline-bench/<name>.json`; returns the path.
fn write(name: &str, json: &str) -> std::io::Result<PathBuf> {
    let dir = results_dir();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, json)?;
    Ok(path)
}

/// Writes `results` to `target/beamline-bench/<name>.json`; returns the path.
///
/// # Errors
/// The directory or the file cannot be written.
pub fn write_external(name: &str, results: &[External]) -> std::io::Result<PathBuf> {
    write(name, &external_json(results))
}

/// Writes `results` to `target/beamline-bench/<name>.json`; returns the path.
///
/// # Errors
/// The directory or the file cannot be written.
pub fn write_sampled(name: &str, results: &[Sampled]) -> std::io::Result<PathBuf> {
    write(name, &sampled_json(results))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_json_is_the_array_xtask_reads() {
        let results = [
            External {
                group: "server/memory-per-idle-connection".into(),
                function: "beamline".into(),
                metric: "bytes/connection",
                amount: 1234.5,
                higher_is_better: false,
            },
            External {
                group: "server/memory-per-idle-connection".into(),
                function: "raw \"tokio\"\n\\".into(),
                metric: "bytes/connection",
                amount: 1000.0,
                higher_is_better: false,
            },
        ];
        let parsed: Value = serde_json::from_str(&external_json(&results)).unwrap();
        let rows = parsed.as_array().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["amount"], 1234.5);
        assert_eq!(rows[0]["higher_is_better"], false);
        // Every character survives, control characters included.
        assert_eq!(rows[1]["function"], "raw \"tokio\"\n\\");
        assert_eq!(external_json(&[]).trim(), "[]");
    }

    #[test]
    fn sampled_json_keeps_every_round_and_the_summary() {
        let results = [Sampled {
            group: "kv/set-p16".into(),
            function: "beamline-kv".into(),
            metric: "requests/s",
            samples: vec![1.0, 2.5, 3.0],
            summary: Summary::Median,
            higher_is_better: true,
        }];
        let parsed: Value = serde_json::from_str(&sampled_json(&results)).unwrap();
        assert_eq!(parsed[0]["samples"], json!([1.0, 2.5, 3.0]));
        assert_eq!(parsed[0]["summary"], "median");
        assert!(parsed[0].get("amount").is_none());
    }
}
