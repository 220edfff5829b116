//! Observability: `tracing` events for start, exit (with reason), restart and escalation.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

mod common;

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beamline_process::{
    ChildSpec, Context, Event, ExitReason, Intensity, Strategy, Supervisor, SupervisorSpec, spawn,
};
use common::{DELIBERATE, quiet_deliberate_panics};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Level, Metadata, Subscriber};

/// One recorded event: its level and its fields rendered as `name=value`.
#[derive(Clone, Debug)]
struct Line {
    level: Level,
    text: String,
}

/// A subscriber that records every event, for assertions.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Line>>>);

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push_str(&format!("{}={} ", field.name(), value));
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(Line {
            level: *event.metadata().level(),
            text: fields.0,
        });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl Recorder {
    fn find(&self, level: Level, parts: &[&str]) -> Option<Line> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.level == level && parts.iter().all(|p| l.text.contains(p)))
            .cloned()
    }
}

#[test]
fn start_exit_restart_and_escalation_are_traced() {
    quiet_deliberate_panics();
    let recorder = Recorder::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    tracing::subscriber::with_default(recorder.clone(), || {
        rt.block_on(async {
            // A plain process: start and exit, with its reason.
            let p = spawn(|_ctx: Context<()>| async { Err(ExitReason::Shutdown) });
            p.exited().await;

            // A supervised child that crashes twice under an intensity of one restart.
            let spec = ChildSpec::permanent("flaky", |mut ctx: Context<()>| async move {
                loop {
                    if let Event::Msg(()) = ctx.recv().await {
                        panic!("{DELIBERATE}: flaky");
                    }
                }
            });
            let flaky = spec.handle();
            let sup = Supervisor::start(
                SupervisorSpec::new(Strategy::OneForOne)
                    .intensity(Intensity::new(1, Duration::from_secs(60)))
                    .child(spec),
            )
            .await
            .unwrap();
            let sup_pid = sup.pid();
            for _ in 0..2 {
                let addr = flaky.current();
                addr.cast(()).await.unwrap();
                addr.exited().await;
                let _ = sup.count_children().await;
            }
            sup_pid.exited().await;
        });
    });
    assert!(recorder.find(Level::TRACE, &["process started"]).is_some());
    assert!(
        recorder
            .find(Level::TRACE, &["process exited", "reason=shutdown"])
            .is_some()
    );
    assert!(
        recorder
            .find(Level::DEBUG, &["child started", "child=flaky"])
            .is_some()
    );
    assert!(
        recorder
            .find(
                Level::WARN,
                &["child exited", "child=flaky", "reason=panicked"]
            )
            .is_some()
    );
    assert!(
        recorder
            .find(
                Level::INFO,
                &["child restarted", "child=flaky", "restarts=1"]
            )
            .is_some()
    );
    assert!(
        recorder
            .find(Level::ERROR, &["escalating", "gave up"])
            .is_some()
    );
}
