//! A reconnecting connection as a supervised process (feature `process`): it exits with a
//! typed reason when it gives up, its supervisor restarts it within its intensity, and the
//! handle follows the restarts.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use beamline_process::{
    ExitReason, Intensity, RestartIntensityExceeded, Strategy, Supervisor, SupervisorSpec,
};
use beamline_reconnect::{
    CloseReason, OfflinePolicy, Reconnect, ReconnectConfig, ReconnectError, SupervisedReconnect,
};
use common::{MS, MockConn, Server, connector, exact_backoff, within};

const SECOND: Duration = Duration::from_secs(1);

fn config(offline: OfflinePolicy) -> ReconnectConfig {
    ReconnectConfig::new(offline)
        .name("mock")
        .backoff(exact_backoff())
        .exit_on_disconnection(true)
}

/// A supervisor of one supervised connection to `server`.
async fn supervised(
    server: &Arc<Server>,
    config: ReconnectConfig,
    intensity: Intensity,
) -> (Supervisor, SupervisedReconnect<MockConn>) {
    let (spec, conn) = Reconnect::child_spec("mock", connector(server.clone()), config);
    let sup = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne)
            .intensity(intensity)
            .child(spec),
    )
    .await
    .unwrap();
    (sup, conn)
}

/// Waits until the handle reaches a connected incarnation.
async fn connected(conn: &SupervisedReconnect<MockConn>) {
    within(async {
        while !conn.current().is_some_and(|c| c.state().is_connected()) {
            tokio::time::sleep(MS * 10).await;
        }
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_lost_peer_ends_the_process_with_disconnected_and_the_supervisor_restarts_it() {
    let server = Server::new(true);
    let (sup, conn) = supervised(
        &server,
        config(OfflinePolicy::FailFast),
        Intensity::default(),
    )
    .await;
    connected(&conn).await;
    assert_eq!(conn.call("a".into()).await.unwrap(), "ok:a");

    let pid = conn.pid().unwrap();
    server.kill_current();
    let reason = within(pid.exited()).await;
    match reason.downcast_error::<CloseReason>() {
        Some(CloseReason::Disconnected { .. }) => {}
        other => panic!("expected Disconnected, got {other:?} ({reason})"),
    }
    // Restarted: a new process behind the same handle, which reconnects.
    connected(&conn).await;
    assert_ne!(conn.pid().unwrap(), pid);
    assert_eq!(conn.call("b".into()).await.unwrap(), "ok:b");
    assert_eq!(sup.which_children().await.unwrap()[0].restarts, 1);
    sup.shutdown().await.unwrap();
    assert!(matches!(
        conn.call("c".into()).await,
        Err(ReconnectError::Disconnected { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_call_between_incarnations_waits_for_the_next_one_with_a_queue() {
    let server = Server::new(true);
    let policy = OfflinePolicy::Queue {
        max: 10,
        deadline: 5 * SECOND,
    };
    let (sup, conn) = supervised(&server, config(policy), Intensity::default()).await;
    connected(&conn).await;
    let pid = conn.pid().unwrap();
    server.kill_current();
    pid.exited().await;
    // No incarnation is running right now, or a new one is connecting: the call waits
    // (the queue's policy) and goes out on the new connection.
    assert_eq!(within(conn.call("late".into())).await.unwrap(), "ok:late");
    assert_eq!(server.connections(), 2);
    sup.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_stays_down_makes_the_supervisor_give_up_and_escalate() {
    let server = Server::new(true);
    let config = config(OfflinePolicy::FailFast).backoff(exact_backoff().max_attempts(2));
    let (sup, conn) = supervised(&server, config, Intensity::new(2, 60 * SECOND)).await;
    connected(&conn).await;
    let first = conn.pid().unwrap();
    let sup_pid = sup.pid();
    server.set_up(false);
    server.kill_current();
    assert!(
        first
            .exited()
            .await
            .downcast_error::<CloseReason>()
            .is_some()
    );
    // Each restart's connection gives up after its attempts; the third restart is one too
    // many.
    let reason = within(sup_pid.exited()).await;
    let exceeded = reason.downcast_error::<RestartIntensityExceeded>().unwrap();
    assert_eq!(exceeded.child.as_str(), "mock");
    assert!(conn.pid().is_none());
    assert!(matches!(
        conn.call("x".into()).await,
        Err(ReconnectError::Disconnected { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_the_driver_is_the_process_exit_reason() {
    let server = Server::new(true);
    // Reconnects after a loss (no exit_on_disconnection): the connector runs again, and
    // panics.
    let config = config(OfflinePolicy::FailFast).exit_on_disconnection(false);
    let (sup, conn) = supervised(&server, config, Intensity::default()).await;
    common::quiet_panics();
    connected(&conn).await;
    let pid = conn.pid().unwrap();
    server.panic_connects.store(true, Ordering::SeqCst);
    server.kill_current();
    match within(pid.exited()).await {
        ExitReason::Panicked(message) => assert!(message.contains("connector exploded")),
        other => panic!("expected Panicked, got {other}"),
    }
    // Every restart's connector panics too: the supervisor gives up.
    let reason = within(sup.pid().exited()).await;
    assert!(
        reason
            .downcast_error::<RestartIntensityExceeded>()
            .is_some()
    );
}
