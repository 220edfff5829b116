//! Steps, their outcomes, and the summary every run ends with.
//!
//! A step is one thing that passes or fails (a cargo command, a matrix cell). Each
//! finished step prints one line with its duration; the run ends with a recap and the
//! line `N passed, N failed`, which CI greps for.

use std::fmt;
use std::process::Command;
use std::time::{Duration, Instant};

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Passed,
    /// Failed, with a one-line reason (the full output was already streamed).
    Failed(String),
    /// Deliberately not run, with the reason (counts as neither passed nor failed).
    Skipped(String),
}

/// One finished step.
#[derive(Debug, Clone)]
pub(crate) struct StepResult {
    pub(crate) name: String,
    pub(crate) outcome: Outcome,
    pub(crate) duration: Duration,
}

impl fmt::Display for StepResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (tag, detail) = match &self.outcome {
            Outcome::Passed => ("PASS", String::new()),
            Outcome::Failed(why) => ("FAIL", format!("  ({why})")),
            Outcome::Skipped(why) => ("SKIP", format!("  ({why})")),
        };
        write!(
            f,
            "{tag}  {:<40} {:>8}{detail}",
            self.name,
            format_duration(self.duration)
        )
    }
}

/// Every step of a run, in order.
#[derive(Debug, Default)]
pub(crate) struct Report {
    results: Vec<StepResult>,
}

impl Report {
    /// Records a finished step and prints its line at once.
    pub(crate) fn record(&mut self, result: StepResult) {
        println!("{result}");
        self.results.push(result);
    }

    pub(crate) fn passed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Passed))
    }

    pub(crate) fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed(_)))
    }

    fn count(&self, pred: impl Fn(&Outcome) -> bool) -> usize {
        self.results.iter().filter(|r| pred(&r.outcome)).count()
    }

    /// The last line of every run: `N passed, N failed`.
    pub(crate) fn summary_line(&self) -> String {
        format!("{} passed, {} failed", self.passed(), self.failed())
    }

    /// The recap printed before the summary line: every step again, with the total time.
    pub(crate) fn recap(&self) -> String {
        let total: Duration = self.results.iter().map(|r| r.duration).sum();
        let mut out = String::from("\n---- summary ----\n");
        for r in &self.results {
            out.push_str(&r.to_string());
            out.push('\n');
        }
        out.push_str(&format!("total time {}\n", format_duration(total)));
        out
    }

    pub(crate) fn success(&self) -> bool {
        self.failed() == 0
    }
}

/// Runs `cmd` with inherited stdio as the step `name`.
pub(crate) fn run(name: &str, cmd: &mut Command) -> StepResult {
    println!("==> {name}: {}", describe(cmd));
    let start = Instant::now();
    let outcome = match cmd.status() {
        Ok(status) if status.success() => Outcome::Passed,
        Ok(status) => Outcome::Failed(match status.code() {
            Some(code) => format!("exit code {code}"),
            None => "killed by a signal".to_owned(),
        }),
        Err(e) => Outcome::Failed(format!("could not start `{}`: {e}", describe(cmd))),
    };
    StepResult {
        name: name.to_owned(),
        outcome,
        duration: start.elapsed(),
    }
}

/// The command line of `cmd`, for logs.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// `0.4s`, `12.3s`, `3m 07s`.
pub(crate) fn format_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = d.as_secs();
        format!("{}m {:02}s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str, outcome: Outcome, secs: u64) -> StepResult {
        StepResult {
            name: name.into(),
            outcome,
            duration: Duration::from_secs(secs),
        }
    }

    #[test]
    fn summary_counts_passes_and_failures_but_not_skips() {
        let mut r = Report::default();
        r.record(step("fmt", Outcome::Passed, 1));
        r.record(step("clippy", Outcome::Skipped("--quick".into()), 0));
        r.record(step("tests", Outcome::Failed("exit code 101".into()), 30));
        r.record(step("matrix tcp/none", Outcome::Passed, 2));
        assert_eq!(r.summary_line(), "2 passed, 1 failed");
        assert!(!r.success());
    }

    #[test]
    fn empty_report_is_a_success_with_zero_counts() {
        let r = Report::default();
        assert_eq!(r.summary_line(), "0 passed, 0 failed");
        assert!(r.success());
    }

    #[test]
    fn step_line_names_step_duration_and_reason() {
        let line = step("clippy", Outcome::Failed("exit code 101".into()), 75).to_string();
        assert!(line.starts_with("FAIL  clippy"), "{line}");
        assert!(line.contains("1m 15s"), "{line}");
        assert!(line.contains("exit code 101"), "{line}");
    }

    #[test]
    fn recap_lists_every_step_and_the_total() {
        let mut r = Report::default();
        r.record(step("fmt", Outcome::Passed, 1));
        r.record(step("tests", Outcome::Passed, 2));
        let recap = r.recap();
        assert!(recap.contains("PASS  fmt"));
        assert!(recap.contains("PASS  tests"));
        assert!(recap.contains("total time 3.0s"));
    }

    #[test]
    fn durations_format_short_and_long() {
        assert_eq!(format_duration(Duration::from_millis(400)), "0.4s");
        assert_eq!(format_duration(Duration::from_secs(187)), "3m 07s");
    }

    #[test]
    fn run_reports_exit_codes_and_missing_programs() {
        let ok = run("true", &mut Command::new("true"));
        assert_eq!(ok.outcome, Outcome::Passed);
        let bad = run("false", &mut Command::new("false"));
        assert_eq!(bad.outcome, Outcome::Failed("exit code 1".into()));
        let missing = run(
            "nope",
            &mut Command::new("/nonexistent/beamline-xtask-nope"),
        );
        assert!(
            matches!(missing.outcome, Outcome::Failed(ref why) if why.contains("could not start"))
        );
    }
}
