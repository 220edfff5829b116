//! Shared set-up for beamline's criterion benches.
//!
//! Conventions every bench file follows, so `cargo xtask bench` can pair results:
//! - one criterion group per measurement, named `<layer>/<what>` (`process/cast`);
//! - the beamline function's id starts with `beamline`; every other id in the group is a
//!   peer measured in the same run (`tokio-mpsc`, `kameo`, `deadpool`);
//! - throughput is declared (`Throughput::Elements`) wherever a rate is the natural unit;
//! - the file's header states, for beamline and each peer, the runtime and its workers, the
//!   connections, the timeouts, the buffer sizes and what is checked: equal work.
//!
//! Code the bench files share (runtimes, the filter, the result writers, the counting
//! allocator) lives in this library.
//!
//! Measurements criterion cannot take (requests/s from `redis-benchmark`, bytes per
//! connection, latency percentiles) go through [`write_external`] or [`write_sampled`] into
//! `target/beamline-bench/`, where `cargo xtask bench` reads them beside criterion's;
//! allocation counts through [`memory::write`], markdown sections through [`write_section`].

mod external;
pub mod memory;

use std::path::PathBuf;

pub use external::{
    External, Sampled, Summary, external_json, sampled_json, write_external, write_sampled,
};

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

/// `target/beamline-bench`, honouring `CARGO_TARGET_DIR` (relative to the workspace).
pub fn results_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest.parent().map_or(manifest.clone(), PathBuf::from);
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map_or_else(|| workspace.join("target"), |dir| workspace.join(dir));
    target.join("beamline-bench")
}

/// The median of `values`, the upper of the middle two for an even count (0 for none): how
/// the harness-free benches and the memory rows summarise their rounds.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Writes a markdown section to `target/beamline-bench/sections/<name>.md`, which `cargo
/// xtask bench` places (stamped with the run's commit and date) after the ratio tables.
///
/// # Errors
/// The directory or the file cannot be written.
pub fn write_section(name: &str, markdown: &str) -> std::io::Result<PathBuf> {
    let dir = results_dir().join("sections");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.md"));
    std::fs::write(&path, markdown)?;
    Ok(path)
}

/// Criterion's options that take a value (`--sample-size 10`): the word after them is not
/// the filter.
const OPTIONS_WITH_VALUES: [&str; 22] = [
    "-c",
    "--color",
    "-s",
    "--save-baseline",
    "-b",
    "--baseline",
    "--baseline-lenient",
    "--load-baseline",
    "--sample-size",
    "--warm-up-time",
    "--measurement-time",
    "--nresamples",
    "--noise-threshold",
    "--confidence-level",
    "--significance-level",
    "--profile-time",
    "--plotting-backend",
    "--output-format",
    "--format",
    "--logfile",
    "--skip",
    "--test-threads",
];

/// The filter criterion was given (`cargo bench -- <filter>`), from this process's arguments.
pub fn filter() -> Option<String> {
    filter_in(std::env::args().skip(1))
}

/// The first positional argument of `args`, skipping options and their values.
pub fn filter_in(args: impl IntoIterator<Item = String>) -> Option<String> {
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if OPTIONS_WITH_VALUES.contains(&arg.as_str()) {
            args.next();
        } else if !arg.starts_with('-') {
            return Some(arg);
        }
    }
    None
}

/// Whether this run should measure `group` with `functions`: no filter, or the filter is
/// part of one of the ids `<group>/<function>` (criterion's ids; a plain substring, which
/// is how the filter is used here). `--list` runs nothing outside criterion.
pub fn selected(group: &str, functions: &[&str]) -> bool {
    if std::env::args().any(|a| a == "--list") {
        return false;
    }
    matches(filter().as_deref(), group, functions)
}

/// [`selected`]'s rule for a given filter.
pub fn matches(filter: Option<&str>, group: &str, functions: &[&str]) -> bool {
    let Some(filter) = filter else {
        return true;
    };
    group.contains(filter)
        || functions
            .iter()
            .any(|f| format!("{group}/{f}").contains(filter))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_filter_is_the_first_positional_argument() {
        assert_eq!(filter_in(args(&["--bench"])), None);
        assert_eq!(
            filter_in(args(&["--bench", "pool/get"])),
            Some("pool/get".into())
        );
        assert_eq!(
            filter_in(args(&[
                "--warm-up-time",
                "1",
                "--measurement-time",
                "2",
                "--bench"
            ])),
            None
        );
        assert_eq!(
            filter_in(args(&["--bench", "--sample-size", "10", "mux"])),
            Some("mux".into())
        );
    }

    #[test]
    fn a_filter_selects_groups_and_functions() {
        assert!(matches(None, "process/cast", &["beamline"]));
        assert!(matches(Some("process"), "process/cast", &["beamline"]));
        assert!(matches(
            Some("process/cast/flume"),
            "process/cast",
            &["beamline", "flume"]
        ));
        assert!(!matches(Some("pool"), "process/cast", &["beamline"]));
    }
}
