//! Model test: random sequences of child exits (panic, error, normal) and clock advances, under
//! every strategy and restart type, run against a real supervisor and a small reference model
//! of OTP's rules. After every step the running children, their restart counts and whether the
//! supervisor escalated must match the model.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

mod common;

use std::time::Duration;

use beamline_process::{
    Child, ChildSpec, Context, DynamicSupervisor, DynamicSupervisorConfig, Event, ExitReason,
    Intensity, Restart, Strategy as Sup, Supervisor, SupervisorSpec,
};
use common::{DELIBERATE, quiet_deliberate_panics};
use proptest::prelude::*;

const PERIOD: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Exit {
    Panic,
    Error,
    Normal,
}

#[derive(Clone, Debug)]
enum Step {
    /// The `n`-th running child (modulo how many run) exits this way.
    Exit(usize, Exit),
    /// The clock moves forward.
    Advance(Duration),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..8_usize, prop_oneof![Just(Exit::Panic), Just(Exit::Error), Just(Exit::Normal)])
            .prop_map(|(n, e)| Step::Exit(n, e)),
        1 => (0..3000_u64).prop_map(|ms| Step::Advance(Duration::from_millis(ms))),
    ]
}

fn restart() -> impl Strategy<Value = Restart> {
    prop_oneof![
        Just(Restart::Permanent),
        Just(Restart::Transient),
        Just(Restart::Temporary)
    ]
}

fn strategy() -> impl Strategy<Value = Sup> {
    prop_oneof![
        Just(Sup::OneForOne),
        Just(Sup::OneForAll),
        Just(Sup::RestForOne)
    ]
}

// ---- the reference model -------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
struct ModelChild {
    id: String,
    restart: Restart,
    running: bool,
    restarts: u32,
}

/// OTP's supervisor rules, written as plainly as possible.
#[derive(Debug)]
struct Model {
    strategy: Sup,
    max_restarts: usize,
    now: Duration,
    restart_times: Vec<Duration>,
    children: Vec<ModelChild>,
    escalated: bool,
}

impl Model {
    fn running(&self) -> Vec<usize> {
        (0..self.children.len())
            .filter(|&i| self.children[i].running)
            .collect()
    }

    fn exit(&mut self, i: usize, how: Exit) {
        let abnormal = how != Exit::Normal;
        self.children[i].running = false;
        let restart = match self.children[i].restart {
            Restart::Permanent => true,
            Restart::Transient => abnormal,
            Restart::Temporary => false,
        };
        if !restart {
            if self.children[i].restart == Restart::Temporary {
                self.children.remove(i);
            }
            return;
        }
        let now = self.now;
        self.restart_times.retain(|&t| now - t < PERIOD);
        self.restart_times.push(now);
        if self.restart_times.len() > self.max_restarts {
            self.escalated = true;
            return;
        }
        let first = match self.strategy {
            Sup::OneForOne => {
                self.children[i].running = true;
                self.children[i].restarts += 1;
                return;
            }
            Sup::OneForAll => 0,
            Sup::RestForOne => i,
        };
        // Temporary siblings in the restarted group are stopped and forgotten (the failed
        // child is not temporary: temporary children are never restarted).
        let mut j = first;
        while j < self.children.len() {
            if self.children[j].restart == Restart::Temporary {
                self.children.remove(j);
            } else {
                j += 1;
            }
        }
        for c in &mut self.children[first..] {
            c.running = true;
            c.restarts += 1;
        }
    }
}

// ---- the real supervisor -------------------------------------------------------------------

/// A child that exits the way it is told.
async fn body(mut ctx: Context<Exit>) -> Result<(), ExitReason> {
    loop {
        if let Event::Msg(how) = ctx.recv().await {
            return match how {
                Exit::Panic => panic!("{DELIBERATE}: model child panics"),
                Exit::Error => Err(ExitReason::error(std::io::Error::other("model"))),
                Exit::Normal => Ok(()),
            };
        }
    }
}

fn spec(id: String, restart: Restart) -> ChildSpec<Exit> {
    match restart {
        Restart::Permanent => ChildSpec::permanent(id, body),
        Restart::Transient => ChildSpec::transient(id, body),
        Restart::Temporary => ChildSpec::temporary(id, body),
    }
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

type Observed = Vec<(String, bool, u32)>;

/// The supervisor under test, of either kind.
enum Sut {
    Static(Supervisor),
    Dynamic(DynamicSupervisor),
}

impl Sut {
    /// The children as (id, running, restarts), sorted by id for the dynamic supervisor
    /// (which reports in no particular order); `None` once the supervisor has exited.
    async fn observe(&self) -> Option<Observed> {
        let children = match self {
            Self::Static(sup) => sup.which_children().await.ok()?,
            Self::Dynamic(sup) => sup.which_children().await.ok()?,
        };
        let mut observed: Observed = children
            .into_iter()
            .map(|c| (c.id.to_string(), c.pid.is_some(), c.restarts))
            .collect();
        if let Self::Dynamic(_) = self {
            observed.sort();
        }
        Some(observed)
    }

    async fn shutdown(&self) {
        match self {
            Self::Static(sup) => sup.shutdown().await.unwrap(),
            Self::Dynamic(sup) => {
                sup.shutdown(Duration::from_secs(1)).await.unwrap();
            }
        }
    }
}

/// Starts children with `restarts` under a supervisor of kind `strategy` (`None`: a dynamic
/// supervisor), plays `steps` on it and on the model, and compares them after each step.
async fn run(
    strategy: Option<Sup>,
    restarts: &[Restart],
    max_restarts: u32,
    steps: &[Step],
) -> Result<(), TestCaseError> {
    let intensity = Intensity::new(max_restarts, PERIOD);
    let mut model = Model {
        // Every exit in a dynamic supervisor concerns that child alone.
        strategy: strategy.unwrap_or(Sup::OneForOne),
        max_restarts: max_restarts as usize,
        now: Duration::ZERO,
        restart_times: Vec::new(),
        children: Vec::new(),
        escalated: false,
    };
    let mut handles: Vec<(String, Child<Exit>)> = Vec::new();
    let mut specs = Vec::new();
    for (i, &restart) in restarts.iter().enumerate() {
        let id = format!("c{i}");
        let s = spec(id.clone(), restart);
        handles.push((id.clone(), s.handle()));
        specs.push(s);
        model.children.push(ModelChild {
            id,
            restart,
            running: true,
            restarts: 0,
        });
    }
    let sut = match strategy {
        Some(strategy) => {
            let sup_spec = specs.into_iter().fold(
                SupervisorSpec::new(strategy).intensity(intensity),
                SupervisorSpec::child,
            );
            Sut::Static(Supervisor::start(sup_spec).await.unwrap())
        }
        None => {
            let sup = DynamicSupervisor::start(DynamicSupervisorConfig::new().intensity(intensity));
            for s in specs {
                sup.start_child(s).unwrap();
            }
            Sut::Dynamic(sup)
        }
    };
    let sup_pid = match &sut {
        Sut::Static(sup) => sup.pid(),
        Sut::Dynamic(sup) => sup.pid().unwrap(),
    };
    for step in steps {
        match step {
            Step::Advance(d) => {
                tokio::time::advance(*d).await;
                model.now += *d;
                continue;
            }
            Step::Exit(n, how) => {
                let running = model.running();
                if running.is_empty() {
                    continue;
                }
                let i = running[n % running.len()];
                let id = model.children[i].id.clone();
                let addr = handles.iter().find(|(h, _)| *h == id).unwrap().1.current();
                addr.cast(*how).await.unwrap();
                addr.exited().await;
                model.exit(i, *how);
                if let Sut::Dynamic(_) = sut {
                    // A dynamic supervisor forgets a child that is not restarted.
                    model.children.retain(|c| c.running);
                }
            }
        }
        match sut.observe().await {
            Some(observed) => {
                prop_assert!(!model.escalated, "model escalated, supervisor did not");
                let mut want = expected(&model);
                if let Sut::Dynamic(_) = sut {
                    want.sort();
                }
                prop_assert_eq!(observed, want, "after {:?}", step);
            }
            None => {
                prop_assert!(model.escalated, "supervisor escalated, model did not");
                let reason = sup_pid.exited().await;
                prop_assert!(
                    reason
                        .downcast_error::<beamline_process::RestartIntensityExceeded>()
                        .is_some()
                );
                for (_, h) in &handles {
                    prop_assert!(!h.current().is_alive(), "children stop with the supervisor");
                }
                return Ok(());
            }
        }
    }
    sut.shutdown().await;
    Ok(())
}

fn expected(model: &Model) -> Observed {
    model
        .children
        .iter()
        .map(|c| (c.id.clone(), c.running, c.restarts))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn supervisor_follows_otp_rules(
        strategy in strategy(),
        restarts in prop::collection::vec(restart(), 1..=4),
        max_restarts in 0..=4_u32,
        steps in prop::collection::vec(step(), 1..=14),
    ) {
        quiet_deliberate_panics();
        paused_runtime().block_on(run(Some(strategy), &restarts, max_restarts, &steps))?;
    }

    #[test]
    fn dynamic_supervisor_follows_otp_rules(
        restarts in prop::collection::vec(restart(), 1..=4),
        max_restarts in 0..=4_u32,
        steps in prop::collection::vec(step(), 1..=14),
    ) {
        quiet_deliberate_panics();
        paused_runtime().block_on(run(None, &restarts, max_restarts, &steps))?;
    }
}
