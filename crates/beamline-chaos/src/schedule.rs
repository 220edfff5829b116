//! Faults stated as data: "at t, apply F; at t + d, clear it".

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::action::Action;
use crate::fault::{Direction, Fault, PartitionMode};
use crate::proxy::{Proxy, ReopenError};

/// An [`Action`] and when it happens, measured from the start of [`Schedule::run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::exhaustive_structs)] // closed: a step of a schedule, written as a literal
pub struct Step {
    /// Offset from the start of the run.
    pub at: Duration,
    /// What happens then.
    pub action: Action,
}

/// A timeline of actions against a proxy, so a test states its faults as data.
///
/// Steps run in time order; steps at the same instant run in the order they were added.
/// Each step runs no earlier than its offset from the moment [`Schedule::run`] is first
/// polled (tokio's timer never fires early; under load it may fire late, and a late step
/// delays none of the later ones beyond their own time).
///
/// # Examples
/// ```no_run
/// use std::time::Duration;
/// use beamline_chaos::{Direction, Fault, Proxy, Schedule};
///
/// # async fn demo(proxy: Proxy) -> Result<(), Box<dyn std::error::Error>> {
/// let ms = Duration::from_millis;
/// let schedule = Schedule::new()
///     .fault(ms(0), ms(200), Direction::Downstream, Fault::latency(ms(50)))
///     .partition(ms(300), ms(100))
///     .fault(ms(500), ms(0), Direction::Both, Fault::reset());
/// let (run, ()) = tokio::join!(schedule.run(&proxy), async { /* drive the client */ });
/// run?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schedule {
    /// Kept sorted by `at`, stable for equal offsets.
    steps: Vec<Step>,
}

/// A [`Schedule`] step failed; the steps after it were not run.
#[derive(Debug)]
#[non_exhaustive]
pub struct ScheduleError {
    /// The failed step's index in [`Schedule::steps`].
    pub step: usize,
    /// The failed step's offset.
    pub at: Duration,
    /// Why it failed.
    pub source: ReopenError,
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "schedule step {} at {:?} failed", self.step, self.at)
    }
}

impl std::error::Error for ScheduleError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl Schedule {
    /// An empty schedule.
    pub fn new() -> Schedule {
        Schedule::default()
    }

    /// Adds `action` at offset `at`.
    pub fn at(mut self, at: Duration, action: Action) -> Schedule {
        let index = self.steps.partition_point(|s| s.at <= at);
        self.steps.insert(index, Step { at, action });
        self
    }

    /// Applies `fault` to `direction` at `at`, and clears its kind from `direction`
    /// `lasting` later (the clear also removes any other fault of that kind there).
    pub fn fault(
        self,
        at: Duration,
        lasting: Duration,
        direction: Direction,
        fault: Fault,
    ) -> Schedule {
        self.at(at, Action::Apply { direction, fault }).at(
            at + lasting,
            Action::Clear {
                direction,
                kind: fault.kind(),
            },
        )
    }

    /// Partitions (in [`PartitionMode::Blackhole`]) at `at` and heals `lasting` later.
    pub fn partition(self, at: Duration, lasting: Duration) -> Schedule {
        self.at(at, Action::Partition(PartitionMode::Blackhole))
            .at(at + lasting, Action::Heal)
    }

    /// The steps, in the order they run.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The offset of the last step (zero for an empty schedule).
    pub fn duration(&self) -> Duration {
        self.steps.last().map_or(Duration::ZERO, |s| s.at)
    }

    /// Runs every step against `proxy`, each at its offset from now, and completes after the
    /// last one. Dropping the future stops the schedule where it is (faults already applied
    /// stay applied).
    ///
    /// # Errors
    /// The first step that fails (a heal or un-refuse whose address cannot be bound again);
    /// later steps are not run.
    ///
    /// # Panics
    /// If polled outside a tokio runtime with its time driver enabled, like any tokio timer.
    pub async fn run(&self, proxy: &Proxy) -> Result<(), ScheduleError> {
        self.run_with(|action| proxy.perform(action)).await
    }

    async fn run_with(
        &self,
        mut perform: impl FnMut(&Action) -> Result<(), ReopenError>,
    ) -> Result<(), ScheduleError> {
        let start = Instant::now();
        for (index, step) in self.steps.iter().enumerate() {
            tokio::time::sleep_until(start + step.at).await;
            perform(&step.action).map_err(|source| ScheduleError {
                step: index,
                at: step.at,
                source,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::net::SocketAddr;

    use super::*;
    use crate::fault::FaultKind;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn steps_sort_by_time_and_keep_insertion_order_on_ties() {
        let s = Schedule::new()
            .partition(ms(100), ms(50))
            .at(ms(100), Action::ResetAll)
            .fault(ms(0), ms(100), Direction::Upstream, Fault::Blackhole);
        let actions: Vec<_> = s.steps().iter().map(|s| (s.at, s.action)).collect();
        assert_eq!(
            actions,
            [
                (
                    ms(0),
                    Action::Apply {
                        direction: Direction::Upstream,
                        fault: Fault::Blackhole
                    }
                ),
                (ms(100), Action::Partition(PartitionMode::Blackhole)),
                (ms(100), Action::ResetAll),
                (
                    ms(100),
                    Action::Clear {
                        direction: Direction::Upstream,
                        kind: FaultKind::Blackhole
                    }
                ),
                (ms(150), Action::Heal),
            ]
        );
        assert_eq!(s.duration(), ms(150));
        assert_eq!(Schedule::new().duration(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn each_step_runs_at_its_offset() {
        let s = Schedule::new()
            .at(ms(30), Action::ResetAll)
            .partition(ms(10), ms(5))
            .at(ms(0), Action::ClearAll);
        let start = Instant::now();
        let mut seen = Vec::new();
        s.run_with(|a| {
            seen.push((start.elapsed(), *a));
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(
            seen,
            [
                (ms(0), Action::ClearAll),
                (ms(10), Action::Partition(PartitionMode::Blackhole)),
                (ms(15), Action::Heal),
                (ms(30), Action::ResetAll),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_step_names_itself_and_stops_the_run() {
        let s = Schedule::new()
            .at(ms(1), Action::RefuseNew(true))
            .at(ms(2), Action::RefuseNew(false))
            .at(ms(3), Action::ResetAll);
        let addr = SocketAddr::from(([127, 0, 0, 1], 9));
        let mut ran = Vec::new();
        let err = s
            .run_with(|a| {
                ran.push(*a);
                match a {
                    Action::RefuseNew(false) => Err(ReopenError::new(
                        addr,
                        io::Error::from(io::ErrorKind::AddrInUse),
                    )),
                    _ => Ok(()),
                }
            })
            .await
            .unwrap_err();
        assert_eq!((err.step, err.at), (1, ms(2)));
        assert_eq!(err.source.addr(), addr);
        assert_eq!(err.source.kind(), io::ErrorKind::AddrInUse);
        let chain = beamline_testkit::assert_printed_once(&err);
        assert!(chain[1].contains("127.0.0.1:9"), "{chain:?}");
        assert_eq!(ran.len(), 2, "the step after the failure never ran");
    }
}
