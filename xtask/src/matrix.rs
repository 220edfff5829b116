//! The integration matrix: named cells, each a command that exercises the composed stack
//! under one combination of transport, client shape and fault, and exits non-zero when an
//! invariant broke.
//!
//! Cells are registered in [`registry`]; the layers add theirs as they land.

use std::process::Command;

use crate::steps::{self, Report};

/// One cell of the matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cell {
    /// `transport/client/fault`, e.g. `tls/pooled+mux/reset`; `--only` matches on it.
    pub(crate) name: String,
    /// The program and arguments that run the cell.
    pub(crate) program: String,
    pub(crate) args: Vec<String>,
}

/// Every registered cell, in the order they run.
pub(crate) fn registry() -> Vec<Cell> {
    Vec::new()
}

/// The cells whose name contains `filter` (all of them without a filter).
pub(crate) fn select<'a>(cells: &'a [Cell], filter: Option<&str>) -> Vec<&'a Cell> {
    cells
        .iter()
        .filter(|c| filter.is_none_or(|f| c.name.contains(f)))
        .collect()
}

/// Runs the selected cells, one step each.
pub(crate) fn run(report: &mut Report, filter: Option<&str>) {
    let cells = registry();
    let selected = select(&cells, filter);
    match (cells.len(), selected.len(), filter) {
        (n, 0, Some(f)) => {
            // Asking for cells that do not exist is a mistake worth failing on: a typo in
            // `--only` must not look like a green run.
            report.record(steps::StepResult {
                name: format!("matrix --only {f}"),
                outcome: steps::Outcome::Failed(format!("no cell of {n} matches `{f}`")),
                duration: std::time::Duration::ZERO,
            });
        }
        (0, _, None) => println!("integration matrix: no cells registered yet (0 cells)"),
        (n, k, _) => {
            println!("integration matrix: running {k} of {n} cells");
            for cell in selected {
                let mut cmd = Command::new(&cell.program);
                cmd.args(&cell.args);
                report.record(steps::run(&format!("matrix {}", cell.name), &mut cmd));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(name: &str) -> Cell {
        Cell {
            name: name.into(),
            program: "true".into(),
            args: vec![],
        }
    }

    #[test]
    fn select_matches_substrings_and_keeps_order() {
        let cells = [
            cell("tcp/single/none"),
            cell("tls/pooled/reset"),
            cell("tcp/mux/reset"),
        ];
        let names = |v: Vec<&Cell>| v.into_iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(select(&cells, None)).len(), 3);
        assert_eq!(
            names(select(&cells, Some("reset"))),
            ["tls/pooled/reset", "tcp/mux/reset"]
        );
        assert!(select(&cells, Some("partition")).is_empty());
    }

    #[test]
    fn registered_cell_names_are_unique() {
        let cells = registry();
        let mut names: Vec<_> = cells.iter().map(|c| c.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), cells.len());
    }
}
