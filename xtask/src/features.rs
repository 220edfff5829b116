//! The facade's features, checked one by one: each feature of `crates/beamline` must build
//! alone (`cargo check -p beamline --no-default-features --features X`), and so must no
//! feature and every feature together. Cargo unifies features across a workspace build, so
//! `cargo test --workspace` alone would never notice a feature that forgot to enable what it
//! uses; this step keeps the additivity that was checked by hand.

use std::fs;
use std::process::Command;

use crate::steps::{self, Outcome, Report, StepResult};
use crate::{cargo, workspace_root};

/// The facade's manifest, relative to the workspace root.
const MANIFEST: &str = "crates/beamline/Cargo.toml";

/// Runs one `cargo check` per combination and records each as a step.
pub(crate) fn run(report: &mut Report) {
    let path = workspace_root().join(MANIFEST);
    let features = match fs::read_to_string(&path) {
        Ok(text) => feature_names(&text),
        Err(e) => {
            report.record(StepResult {
                name: "facade features".into(),
                outcome: Outcome::Failed(format!("could not read {}: {e}", path.display())),
                duration: std::time::Duration::ZERO,
            });
            return;
        }
    };
    for (label, extra) in combinations(&features) {
        let mut cmd = Command::new(cargo());
        cmd.args(["check", "--quiet", "-p", "beamline"])
            .args(&extra)
            .current_dir(workspace_root());
        report.record(steps::run(&format!("beamline features: {label}"), &mut cmd));
    }
}

/// Every combination to check: no feature, each feature alone, all of them.
fn combinations(features: &[String]) -> Vec<(String, Vec<String>)> {
    let none = "--no-default-features".to_owned();
    let mut out = vec![("none".to_owned(), vec![none.clone()])];
    for feature in features {
        out.push((
            feature.clone(),
            vec![none.clone(), "--features".to_owned(), feature.clone()],
        ));
    }
    out.push(("all".to_owned(), vec!["--all-features".to_owned()]));
    out
}

/// The names declared in a manifest's `[features]` table, `default` excepted, in order.
fn feature_names(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_features = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_features = line == "[features]";
            continue;
        }
        if !in_features || line.starts_with('#') {
            continue;
        }
        if let Some((name, _)) = line.split_once('=') {
            let name = name.trim();
            if !name.is_empty() && name != "default" {
                names.push(name.to_owned());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_names_skip_default_comments_and_other_tables() {
        let manifest = "[package]\nname = \"beamline\"\n\n[features]\n# a comment = no\n\
                        default = [\"a\"]\na = [\"dep:x\"]\nb-c = []\n\n[dependencies]\nx = \"1\"\n";
        assert_eq!(feature_names(manifest), ["a", "b-c"]);
    }

    #[test]
    fn combinations_are_none_each_alone_and_all() {
        let combos = combinations(&["a".to_owned(), "b".to_owned()]);
        let labels: Vec<&str> = combos.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(labels, ["none", "a", "b", "all"]);
        assert_eq!(combos[1].1, ["--no-default-features", "--features", "a"]);
        assert_eq!(combos[3].1, ["--all-features"]);
    }

    #[test]
    fn the_facade_declares_the_features_its_docs_name() {
        let text = fs::read_to_string(workspace_root().join(MANIFEST)).unwrap();
        let names = feature_names(&text);
        for expected in ["process", "server", "client", "tls", "http"] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} in {names:?}"
            );
        }
    }
}
