//! Shared set-up for beamline's criterion benches.
//!
//! Conventions every bench file follows, so `cargo xtask bench` can pair results:
//! - one criterion group per measurement, named `<layer>/<what>` (`process/cast`);
//! - the beamline function's id starts with `beamline`; every other id in the group is a
//!   peer measured in the same run (`tokio-mpsc`, `kameo`, `deadpool`);
//! - throughput is declared (`Throughput::Elements`) wherever a rate is the natural unit.
//!
//! Code the bench files share (runtimes, loopback peers) lives in this library.
//!
//! Measurements criterion cannot take (requests/s from `redis-benchmark`, bytes per
//! connection, latency percentiles) go through [`write_external`] into
//! `target/beamline-bench/`, where `cargo xtask bench` reads them beside criterion's.

use std::fmt::Write as _;
use std::path::PathBuf;

/// The runtime the benches share: multi-thread with two workers (this machine's cores), time
/// and I/O enabled. Server, peers and load run on it together, as they share the machine.
///
/// # Panics
/// If tokio cannot start its threads (the bench cannot run at all).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start a tokio runtime: {e}"))
}

/// One measurement for `cargo xtask bench`'s ratio tables, paired like a criterion result:
/// within a group, the function whose id starts with `beamline` is the subject and every
/// other one a peer.
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

/// `target/beamline-bench`, honouring `CARGO_TARGET_DIR` (relative to the workspace).
pub fn results_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest.parent().map_or(manifest.clone(), PathBuf::from);
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map_or_else(|| workspace.join("target"), |dir| workspace.join(dir));
    target.join("beamline-bench")
}

/// `results` as the JSON array `cargo xtask bench` reads.
pub fn external_json(results: &[External]) -> String {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut json = String::from("[\n");
    for (i, r) in results.iter().enumerate() {
        let comma = if i + 1 == results.len() { "" } else { "," };
        let _ = writeln!(
            json,
            "  {{\"group\": \"{}\", \"function\": \"{}\", \"value\": null, \"metric\": \"{}\", \
             \"amount\": {:.3}, \"higher_is_better\": {}}}{comma}",
            quote(&r.group),
            quote(&r.function),
            quote(r.metric),
            r.amount,
            r.higher_is_better
        );
    }
    json.push_str("]\n");
    json
}

/// Writes `results` to `target/beamline-bench/<name>.json`; returns the path.
///
/// # Errors
/// The directory or the file cannot be written.
pub fn write_external(name: &str, results: &[External]) -> std::io::Result<PathBuf> {
    let dir = results_dir();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, external_json(results))?;
    Ok(path)
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
                function: "raw \"tokio\"".into(),
                metric: "bytes/connection",
                amount: 1000.0,
                higher_is_better: false,
            },
        ];
        let json = external_json(&results);
        assert!(json.starts_with("[\n") && json.ends_with("]\n"));
        assert_eq!(json.matches("\"group\"").count(), 2);
        assert!(json.contains("\"amount\": 1234.500, \"higher_is_better\": false},\n"));
        assert!(json.contains("raw \\\"tokio\\\""));
        assert!(json.contains("\"higher_is_better\": false}\n]"));
        assert!(external_json(&[]).starts_with('['));
    }
}
