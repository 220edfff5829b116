//! What a cell reports: the `MATRIX-RESULT` line xtask reads.

use std::collections::BTreeMap;

use serde_json::json;

/// The marker of the result line (see `xtask/src/matrix.rs`).
pub const RESULT_PREFIX: &str = "MATRIX-RESULT ";

/// What one cell saw, and whether every invariant held.
#[derive(Debug, Clone, PartialEq)]
pub struct CellReport {
    /// The cell's name.
    pub cell: String,
    /// The seed it ran with (`--seed` replays it).
    pub seed: u64,
    /// Every invariant held.
    pub passed: bool,
    /// Requests started.
    pub requests: u64,
    /// Requests answered with their own payload.
    pub ok: u64,
    /// Typed errors by kind (`not_sent`, `connection_lost`, `timeout`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Median latency of the successful requests, in ms.
    pub p50_ms: f64,
    /// 99th percentile latency of the successful requests, in ms.
    pub p99_ms: f64,
    /// The cell's wall-clock time, set-up and tear-down included.
    pub seconds: f64,
    /// The `cluster/*` cells: ms from the fault to the first successful write on the slots
    /// it affected; `None` (JSON `null`) for the others.
    pub recovery_ms: Option<f64>,
    /// Each broken invariant, in a sentence; empty when `passed`.
    pub failures: Vec<String>,
}

impl CellReport {
    /// The report as the JSON object xtask parses.
    pub fn to_json(&self) -> String {
        json!({
            "cell": self.cell,
            "seed": self.seed,
            "passed": self.passed,
            "requests": self.requests,
            "ok": self.ok,
            "errors": self.errors,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "seconds": self.seconds,
            "recovery_ms": self.recovery_ms,
            "failures": self.failures,
        })
        .to_string()
    }

    /// The last line a cell prints.
    pub fn result_line(&self) -> String {
        format!("{RESULT_PREFIX}{}", self.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_line_is_one_line_of_json_with_every_field() {
        let mut errors = BTreeMap::new();
        errors.insert("connection_lost".to_owned(), 7);
        let report = CellReport {
            cell: "tcp/pooled/reset".into(),
            seed: 42,
            passed: false,
            requests: 10,
            ok: 3,
            errors,
            p50_ms: 0.5,
            p99_ms: 12.25,
            seconds: 3.5,
            recovery_ms: Some(1250.5),
            failures: vec!["a \"quoted\"\nfailure".into()],
        };
        let line = report.result_line();
        assert!(!line.contains('\n'));
        let json = line.strip_prefix(RESULT_PREFIX).unwrap();
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["cell"], "tcp/pooled/reset");
        assert_eq!(v["passed"], false);
        assert_eq!(v["requests"], 10);
        assert_eq!(v["ok"], 3);
        assert_eq!(v["errors"]["connection_lost"], 7);
        assert_eq!(v["p99_ms"], 12.25);
        assert_eq!(v["seconds"], 3.5);
        assert_eq!(v["recovery_ms"], 1250.5);
        assert_eq!(v["failures"][0], "a \"quoted\"\nfailure");
    }
}
