//! `ChildSpec::resource`: a value a process owns for its life (a client connection) as a
//! supervised child, behind a `Current` handle that follows its restarts.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

use beamline_process::Info;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use beamline_process::{
    ChildSpec, Context, Current, Event, ExitReason, Intensity, Resource, RestartIntensityExceeded,
    StartError, Strategy, Supervisor, SupervisorSpec, spawn,
};
use tokio::sync::watch;

const SECOND: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, thiserror::Error)]
#[error("the peer went away")]
struct PeerGone;

/// A stand-in for a client connection: it ends when told why, and counts the `end` calls of
/// all the incarnations of its spec.
#[derive(Clone, Debug)]
struct Conn {
    incarnation: usize,
    fate: Arc<watch::Sender<Option<ExitReason>>>,
    ends: Arc<AtomicUsize>,
}

impl Conn {
    fn give_up(&self, reason: ExitReason) {
        self.fate.send_replace(Some(reason));
    }
}

impl Resource for Conn {
    fn ended(&self) -> impl Future<Output = ExitReason> + Send {
        let mut fate = self.fate.subscribe();
        async move {
            match fate.wait_for(Option::is_some).await {
                Ok(reason) => reason.clone().unwrap_or(ExitReason::Normal),
                Err(_) => ExitReason::Normal,
            }
        }
    }

    fn end(&self) {
        self.ends.fetch_add(1, Ordering::SeqCst);
        self.fate.send_if_modified(|fate| {
            fate.get_or_insert(ExitReason::Normal);
            true
        });
    }
}

/// A resource spec whose `start` fails from incarnation `fail_from` on, and the counters
/// shared by its incarnations.
fn conn_spec(
    current: &Current<Conn>,
    fail_from: usize,
) -> (ChildSpec<std::convert::Infallible>, Arc<AtomicUsize>) {
    let started = Arc::new(AtomicUsize::new(0));
    let ends = Arc::new(AtomicUsize::new(0));
    let counter = started.clone();
    let spec = ChildSpec::resource("conn", current, move || {
        let incarnation = counter.fetch_add(1, Ordering::SeqCst);
        let ends = ends.clone();
        async move {
            if incarnation >= fail_from {
                return Err(ExitReason::error(PeerGone));
            }
            Ok(Conn {
                incarnation,
                fate: Arc::new(watch::Sender::new(None)),
                ends,
            })
        }
    });
    (spec, started)
}

#[tokio::test(start_paused = true)]
async fn a_resource_that_gives_up_exits_with_its_reason_and_is_restarted_behind_one_handle() {
    let current = Current::new();
    assert!(matches!(current.get(), Err(ExitReason::NoProc)));
    let (spec, _) = conn_spec(&current, usize::MAX);
    let sup = Supervisor::start(SupervisorSpec::new(Strategy::OneForOne).child(spec))
        .await
        .unwrap();
    let first = current.get().unwrap();
    assert_eq!(first.incarnation, 0);

    // A monitor on the resource's process sees why it gave up.
    let pid = current.pid().unwrap();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let watcher = spawn(move |mut ctx: Context<()>| async move {
        ctx.monitor(&pid);
        if let Event::Info(Info::Down { reason, .. }) = ctx.recv().await {
            let _ = seen_tx.send(reason);
        }
        Ok(())
    });
    tokio::task::yield_now().await;
    first.give_up(ExitReason::error(PeerGone));
    let reason = seen.recv().await.unwrap();
    assert!(reason.downcast_error::<PeerGone>().is_some(), "{reason}");
    watcher.exited().await;

    // The supervisor restarted it; the same handle reaches the new incarnation.
    sup.count_children().await.unwrap();
    let second = current.wait(SECOND).await.unwrap();
    assert_eq!(second.incarnation, 1);
    assert_eq!(
        sup.which_children().await.unwrap()[0].restarts,
        1,
        "restarted once"
    );
    sup.shutdown().await.unwrap();
    assert_eq!(
        second.ends.load(Ordering::SeqCst),
        2,
        "each incarnation is ended once, as its process exits (stopping the second included)"
    );
    assert!(matches!(current.get(), Err(ExitReason::Shutdown)));
}

#[tokio::test(start_paused = true)]
async fn a_killed_resource_process_ends_its_value_and_withdraws_it() {
    let current = Current::new();
    let (spec, _) = conn_spec(&current, usize::MAX);
    let spec = spec.shutdown(beamline_process::Shutdown::Brutal);
    let sup = Supervisor::start(SupervisorSpec::new(Strategy::OneForOne).child(spec))
        .await
        .unwrap();
    let first = current.get().unwrap();
    let pid = current.pid().unwrap();
    pid.kill();
    assert!(matches!(pid.exited().await, ExitReason::Killed));
    assert_eq!(first.ends.load(Ordering::SeqCst), 1);
    sup.count_children().await.unwrap();
    assert_eq!(current.get().unwrap().incarnation, 1);
    sup.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_start_that_fails_fails_the_supervisor_start() {
    let current = Current::new();
    let (spec, _) = conn_spec(&current, 0);
    match Supervisor::start(SupervisorSpec::new(Strategy::OneForOne).child(spec)).await {
        Err(StartError::Child { child, reason }) => {
            assert_eq!(child.as_str(), "conn");
            assert!(reason.downcast_error::<PeerGone>().is_some());
        }
        other => panic!("expected a failed start, got {other:?}"),
    }
    assert!(
        current
            .get()
            .unwrap_err()
            .downcast_error::<PeerGone>()
            .is_some()
    );
}

#[tokio::test(start_paused = true)]
async fn a_resource_that_cannot_come_back_makes_its_supervisor_escalate() {
    let current = Current::new();
    // Starts once; every restart fails.
    let (spec, started) = conn_spec(&current, 1);
    let sup = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne)
            .intensity(Intensity::new(3, 5 * SECOND))
            .child(spec),
    )
    .await
    .unwrap();
    let sup_pid = sup.pid();
    current.get().unwrap().give_up(ExitReason::error(PeerGone));
    let reason = sup_pid.exited().await;
    let exceeded = reason.downcast_error::<RestartIntensityExceeded>().unwrap();
    assert_eq!(exceeded.child.as_str(), "conn");
    assert_eq!(
        started.load(Ordering::SeqCst),
        4,
        "the first start and three restarts"
    );
    assert!(current.get().is_err());
    assert!(
        current.wait(SECOND).await.is_err(),
        "no incarnation comes back"
    );
}
