//! The reconnect state machine under tokio's paused clock, over a scripted connection.
//!
//! Every timing here is exact: time only moves when every task is idle, so "the attempt
//! after a 400 ms delay happens 400 ms later" is checked to the millisecond, and the whole
//! file runs in milliseconds of real time.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use beamline_reconnect::{
    BackoffConfig, CloseReason, Connect, ConnectError, Connection, GiveUp, HealthCheck, LossCause,
    OfflinePolicy, Reconnect, ReconnectConfig, ReconnectConfigError, ReconnectError, StartError,
    State, WasSent,
};
use common::*;
use tokio::time::{Instant, sleep};

// ---------------------------------------------------------------------------------------
// Delays.

#[tokio::test(start_paused = true)]
async fn attempts_follow_the_seeded_backoff_exactly() {
    let server = Server::new(false);
    let backoff = BackoffConfig::exponential(MS * 100, 2.0, Duration::from_secs(5));
    let config = ReconnectConfig::new(OfflinePolicy::FailFast)
        .backoff(backoff.clone())
        .seed(42);
    let t0 = Instant::now();
    let conn = start(&server, config).await;
    let mut states = conn.state_changes();
    let mut backing_off = Vec::new();
    while backing_off.len() < 8 {
        within(states.changed()).await.unwrap();
        if let State::BackingOff { attempt, until } = *states.borrow_and_update() {
            backing_off.push((attempt, until));
        }
    }
    // The policy the driver runs, rebuilt from the same seed.
    let mut expected = backoff.build_seeded(42).unwrap();
    let attempts = server.attempt_offsets(t0);
    for (i, (attempt, until)) in backing_off.iter().enumerate() {
        let delay = expected.next_delay(std::time::Instant::now()).unwrap();
        assert_eq!(*attempt, i as u32 + 2, "attempt numbers count up from 2");
        // The attempt failed at once, so the wait starts when the attempt did.
        assert_eq!(*until - (t0 + attempts[i]), delay, "delay {i}");
        // And the next attempt happened then (the timer wheel rounds up to 1 ms).
        if let Some(next) = attempts.get(i + 1) {
            let late = (t0 + *next) - *until;
            assert!(late < MS, "attempt {} was {late:?} late", i + 2);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_backoff_resets_only_after_a_stable_period() {
    let server = Server::new(false);
    let config = queue(10, Duration::from_secs(60)).stable_period(Duration::from_secs(1));
    let t0 = Instant::now();
    let conn = start(&server, config).await;
    // Attempts at 0 and 100 ms fail; the server is up for the one at 300 ms.
    sleep(MS * 250).await;
    server.set_up(true);
    connected(&conn).await;
    assert_eq!(Instant::now() - t0, MS * 300);
    // Up for 500 ms only (< 1 s): the backoff carries on where it was (400 ms next).
    sleep(MS * 500).await;
    server.kill_current();
    wait_for(&conn, |s| matches!(s, State::BackingOff { .. })).await;
    connected(&conn).await;
    assert_eq!(Instant::now() - t0, MS * 1200);
    // Up for 2 s (> 1 s): reset, so the next delay is the initial 100 ms again.
    sleep(Duration::from_secs(2)).await;
    server.kill_current();
    let state = wait_for(&conn, |s| matches!(s, State::BackingOff { .. })).await;
    assert!(
        matches!(state, State::BackingOff { attempt: 1, .. }),
        "{state:?}"
    );
    connected(&conn).await;
    assert_eq!(Instant::now() - t0, MS * 3300);
    assert_eq!(
        server.attempt_offsets(t0),
        [0, 100, 300, 1200, 3300].map(|m| MS * m)
    );
}

#[tokio::test(start_paused = true)]
async fn a_connect_that_hangs_times_out() {
    let server = Server::new(true);
    server.hang_connects.store(true, Ordering::SeqCst);
    let config = queue(10, Duration::from_secs(60)).connect_timeout(Duration::from_secs(2));
    let t0 = Instant::now();
    let conn = start(&server, config).await;
    let state = wait_for(&conn, |s| matches!(s, State::BackingOff { .. })).await;
    assert_eq!(Instant::now() - t0, Duration::from_secs(2));
    assert!(matches!(state, State::BackingOff { attempt: 2, .. }));
    server.hang_connects.store(false, Ordering::SeqCst);
    connected(&conn).await;
    assert_eq!(Instant::now() - t0, MS * 2100);
}

#[tokio::test(start_paused = true)]
async fn the_grpc_preset_gives_connects_at_least_twenty_seconds() {
    let server = Server::new(true);
    server.hang_connects.store(true, Ordering::SeqCst);
    let config = ReconnectConfig::new(OfflinePolicy::FailFast)
        .backoff(BackoffConfig::grpc())
        .connect_timeout(MS * 50);
    let t0 = Instant::now();
    let conn = start(&server, config).await;
    wait_for(&conn, |s| matches!(s, State::BackingOff { .. })).await;
    assert_eq!(Instant::now() - t0, Duration::from_secs(20));
}

#[tokio::test(start_paused = true)]
async fn it_gives_up_at_the_limit_and_keeps_the_real_error() {
    let server = Server::new(false);
    let config = queue(10, Duration::from_secs(60)).backoff(exact_backoff().max_attempts(2));
    let conn = start(&server, config).await;
    let waiting = spawn_call(&conn, "queued");
    let state = wait_for(&conn, State::is_closed).await;
    // The first attempt plus the two the policy scheduled.
    assert_eq!(server.attempts.lock().unwrap().len(), 3);
    let State::Closed(CloseReason::GaveUp { limit, last_error }) = state else {
        panic!("{state:?}")
    };
    assert_eq!(limit, GiveUp::Attempts { max: 2 });
    let Some(ConnectError::Failed {
        attempt, source, ..
    }) = last_error
    else {
        panic!("no connect error kept")
    };
    assert_eq!(attempt, 3);
    assert!(source.to_string().contains("refused"), "{source}");
    let err = within(waiting).await.unwrap().unwrap_err();
    assert!(matches!(err, ReconnectError::Closed { .. }), "{err}");
    assert!(!err.was_sent());
}

// ---------------------------------------------------------------------------------------
// Start options.

#[tokio::test(start_paused = true)]
async fn sync_connect_returns_the_first_error() {
    let server = Server::new(false);
    let config = queue(10, Duration::from_secs(1)).sync_connect(true);
    let err = Reconnect::start(connector(server.clone()), config)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StartError::Connect(ConnectError::Failed { attempt: 1, .. })
        ),
        "{err}"
    );
    assert!(err.to_string().starts_with("mock: "), "{err}");
    // Nothing keeps trying in the background.
    sleep(Duration::from_secs(10)).await;
    assert_eq!(server.attempts.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn sync_connect_returns_connected() {
    let server = Server::new(true);
    let config = ReconnectConfig::new(OfflinePolicy::FailFast).sync_connect(true);
    let conn = start(&server, config).await;
    assert!(conn.state().is_connected());
    assert_eq!(conn.call("a".into()).await.unwrap(), "ok:a");
}

#[tokio::test(start_paused = true)]
async fn start_connected_begins_on_its_connection_and_reconnects_with_the_connector() {
    let server = Server::new(true);
    let mut connect = connector(server.clone());
    let first = connect.connect().await.unwrap();
    let config = ReconnectConfig::new(OfflinePolicy::FailFast)
        .name("mock")
        .backoff(exact_backoff());
    let conn = Reconnect::start_connected(first, connect, config).unwrap();
    // Connected at once, on the connection it was given: no attempt of its own.
    assert!(conn.state().is_connected());
    assert_eq!(conn.call("a".into()).await.unwrap(), "ok:a");
    assert_eq!(server.connections(), 1);
    server.kill_current();
    wait_for(&conn, |s| !s.is_connected()).await;
    connected(&conn).await;
    assert_eq!(server.connections(), 2);
    assert_eq!(conn.call("b".into()).await.unwrap(), "ok:b");
}

#[tokio::test(start_paused = true)]
async fn start_connected_refuses_bad_settings_and_closes_its_connection() {
    let server = Server::new(true);
    let mut connect = connector(server.clone());
    let first = connect.connect().await.unwrap();
    let config = ReconnectConfig::new(OfflinePolicy::Queue {
        max: 0,
        deadline: Duration::from_secs(1),
    });
    let err = Reconnect::start_connected(first, connect, config).unwrap_err();
    assert_eq!(err, ReconnectConfigError::ZeroQueueMax);
    assert!(server.conns.lock().unwrap()[0].is_closed());
}

#[tokio::test(start_paused = true)]
async fn without_sync_connect_a_failed_first_attempt_is_retried() {
    let server = Server::new(false);
    let conn = start(&server, queue(10, Duration::from_secs(60))).await;
    assert!(matches!(conn.state(), State::Connecting { attempt: 1 }));
    sleep(MS * 150).await;
    server.set_up(true);
    connected(&conn).await;
    assert_eq!(server.attempts.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn exit_on_disconnection_closes_instead_of_reconnecting() {
    let server = Server::new(true);
    let config = queue(10, Duration::from_secs(1)).exit_on_disconnection(true);
    let conn = start(&server, config).await;
    connected(&conn).await;
    server.kill_current();
    let state = wait_for(&conn, State::is_closed).await;
    assert!(matches!(
        state,
        State::Closed(CloseReason::Disconnected {
            cause: LossCause::Closed
        })
    ));
    let err = conn.call("x".into()).await.unwrap_err();
    assert!(matches!(err, ReconnectError::Closed { .. }));
    sleep(Duration::from_secs(10)).await;
    assert_eq!(server.attempts.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn bad_settings_are_refused_before_anything_starts() {
    let server = Server::new(true);
    let config = queue(0, Duration::from_secs(1));
    let err = Reconnect::start(connector(server.clone()), config)
        .await
        .unwrap_err();
    assert!(matches!(err, StartError::Config(_)), "{err}");
    let check = HealthCheck::new(Duration::ZERO, Duration::from_secs(1), || {
        "ping".to_string()
    });
    let err = Reconnect::start_with_health_check(
        connector(server.clone()),
        queue(1, Duration::from_secs(1)),
        check,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StartError::Config(_)), "{err}");
    assert!(server.attempts.lock().unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------
// Offline policy.

#[tokio::test(start_paused = true)]
async fn fail_fast_refuses_at_once_while_disconnected() {
    let server = Server::new(false);
    let config = ReconnectConfig::new(OfflinePolicy::FailFast).name("ff 127.0.0.1:9");
    let conn = start(&server, config).await;
    let t0 = Instant::now();
    let err = conn.call("x".into()).await.unwrap_err();
    assert_eq!(Instant::now(), t0);
    assert!(matches!(err, ReconnectError::Disconnected { .. }), "{err}");
    assert_eq!(err.name(), "ff 127.0.0.1:9");
    assert!(!err.was_sent());
    assert!(server.delivered().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_queue_is_bounded_and_times_out_at_its_deadline() {
    let server = Server::new(false);
    let conn = start(&server, queue(2, Duration::from_secs(1))).await;
    let t0 = Instant::now();
    let spawn = |req: &str| {
        let (conn, req) = (conn.clone(), req.to_string());
        tokio::spawn(async move { (conn.call(req).await, Instant::now()) })
    };
    let a = spawn("a");
    let b = spawn("b");
    tokio::task::yield_now().await;
    assert_eq!(conn.queued(), 2);
    let err = conn.call("c".into()).await.unwrap_err();
    assert!(
        matches!(err, ReconnectError::QueueFull { max: 2, .. }),
        "{err}"
    );
    for waiter in [a, b] {
        let (result, at) = waiter.await.unwrap();
        let err = result.unwrap_err();
        assert!(
            matches!(err, ReconnectError::Timeout { deadline, .. } if deadline == Duration::from_secs(1)),
            "{err}"
        );
        assert_eq!(at - t0, Duration::from_secs(1));
    }
    assert_eq!(conn.queued(), 0);
    // Nothing that timed out is sent later.
    server.set_up(true);
    connected(&conn).await;
    sleep(Duration::from_secs(1)).await;
    assert!(server.delivered().is_empty());
}

#[tokio::test(start_paused = true)]
async fn queued_requests_go_first_and_in_order_once_connected() {
    let server = Server::new(false);
    let conn = start(&server, queue(100, Duration::from_secs(30))).await;
    let mut calls = Vec::new();
    for i in 0..20 {
        calls.push(spawn_call(&conn, &format!("q{i}")));
        // Each is queued before the next is made.
        while conn.queued() < i + 1 {
            tokio::task::yield_now().await;
        }
    }
    server.set_up(true);
    connected(&conn).await;
    let late = conn.call("late".into()).await.unwrap();
    assert_eq!(late, "ok:late");
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap().unwrap(), format!("ok:q{i}"));
    }
    let mut want: Vec<String> = (0..20).map(|i| format!("q{i}")).collect();
    want.push("late".into());
    assert_eq!(server.delivered(), want);
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_gives_up_leaves_the_queue() {
    let server = Server::new(false);
    let conn = start(&server, queue(1, Duration::from_secs(30))).await;
    let gone = spawn_call(&conn, "gone");
    tokio::task::yield_now().await;
    assert_eq!(conn.queued(), 1);
    gone.abort();
    let _ = gone.await;
    // Its slot is free again and it is never sent.
    assert_eq!(conn.queued(), 0);
    let kept = spawn_call(&conn, "kept");
    tokio::task::yield_now().await;
    server.set_up(true);
    assert_eq!(kept.await.unwrap().unwrap(), "ok:kept");
    assert_eq!(server.delivered(), ["kept"]);
}

// ---------------------------------------------------------------------------------------
// In flight at disconnect, and replays.

#[tokio::test(start_paused = true)]
async fn written_is_connection_lost_and_unwritten_is_not_sent() {
    let (server, conn) = up_and_connected(queue(10, Duration::from_secs(5))).await;
    let lost = conn.call("kill".into()).await.unwrap_err();
    assert_lost(&lost);
    assert!(lost.was_sent());
    connected(&conn).await;
    let not_sent = conn.call("notsent".into()).await.unwrap_err();
    assert!(
        matches!(not_sent, ReconnectError::NotSent { .. }),
        "{not_sent}"
    );
    assert!(!not_sent.was_sent());
    // Neither was replayed: "kill" was written once, "notsent" never.
    assert_eq!(server.delivered(), ["kill"]);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_request_is_lost_when_its_connection_dies() {
    let (server, conn) = up_and_connected(queue(10, Duration::from_secs(5))).await;
    let hanging = spawn_call(&conn, "hang");
    sleep(MS * 10).await;
    server.kill_current();
    let err = within(hanging).await.unwrap().unwrap_err();
    assert_lost(&err);
}

#[tokio::test(start_paused = true)]
async fn a_request_error_on_a_live_connection_is_not_a_disconnect() {
    let (server, conn) = up_and_connected(queue(10, Duration::from_secs(5))).await;
    let err = conn.call_idempotent("reject".into()).await.unwrap_err();
    assert!(
        matches!(err, ReconnectError::Request { sent: true, .. }),
        "{err}"
    );
    assert!(conn.state().is_connected());
    assert_eq!(server.connections(), 1);
    assert_eq!(server.delivered(), ["reject"]);
}

#[tokio::test(start_paused = true)]
async fn only_idempotent_requests_are_replayed() {
    let (server, conn) = up_and_connected(queue(10, Duration::from_secs(5)).max_replays(3)).await;
    // Not idempotent: lost once, never sent again.
    let err = conn.call("flaky-a".into()).await.unwrap_err();
    assert_lost(&err);
    // Idempotent: lost once, replayed on the next connection, answered.
    let ok = conn.call_idempotent("flaky-b".into()).await.unwrap();
    assert_eq!(ok, "ok:flaky-b");
    assert_eq!(server.delivered(), ["flaky-a", "flaky-b", "flaky-b"]);
    let ids: Vec<usize> = server
        .delivered
        .lock()
        .unwrap()
        .iter()
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(ids, [0, 1, 2], "each send went to a new connection");
}

#[tokio::test(start_paused = true)]
async fn replays_stop_at_the_limit() {
    let (server, conn) = up_and_connected(queue(10, Duration::from_secs(5)).max_replays(2)).await;
    let err = conn.call_idempotent("kill".into()).await.unwrap_err();
    assert_lost(&err);
    // Sent once, replayed twice.
    assert_eq!(server.delivered(), ["kill", "kill", "kill"]);
}

#[tokio::test(start_paused = true)]
async fn a_replay_refused_by_fail_fast_keeps_the_original_error() {
    let server = Server::new(true);
    let config = ReconnectConfig::new(OfflinePolicy::FailFast)
        .backoff(exact_backoff())
        .max_replays(5);
    let conn = start(&server, config).await;
    connected(&conn).await;
    let err = conn.call_idempotent("kill".into()).await.unwrap_err();
    // Not "Disconnected": the caller must learn that it may have been delivered.
    assert_lost(&err);
    assert_eq!(server.delivered(), ["kill"]);
}

#[tokio::test(start_paused = true)]
async fn a_replayed_request_that_was_never_written_stays_not_sent() {
    let (server, conn) = up_and_connected(queue(10, Duration::from_secs(5)).max_replays(1)).await;
    let err = conn.call_idempotent("notsent".into()).await.unwrap_err();
    assert!(matches!(err, ReconnectError::NotSent { .. }), "{err}");
    assert_eq!(
        server.connections(),
        2,
        "the replay went to a new connection"
    );
    assert!(server.delivered().is_empty());
}

// ---------------------------------------------------------------------------------------
// Half-open detection.

#[tokio::test(start_paused = true)]
async fn a_failing_health_check_replaces_the_connection() {
    let t0 = Instant::now();
    let (server, conn) = up_with_health_check(true).await;
    let in_flight = spawn_call(&conn, "hang");
    wait_for(&conn, |s| matches!(s, State::BackingOff { .. })).await;
    // Ping sent at 1 s, unanswered at 1.5 s.
    assert_eq!(Instant::now() - t0, MS * 1500);
    // The half-open connection was closed, so its in-flight request ended too.
    let err = within(in_flight).await.unwrap().unwrap_err();
    assert_lost(&err);
    server.ignore_pings.store(false, Ordering::SeqCst);
    connected(&conn).await;
    assert_eq!(server.connections(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_passing_health_check_keeps_the_connection() {
    let (server, conn) = up_with_health_check(false).await;
    sleep(MS * 10_500).await;
    assert!(conn.state().is_connected());
    assert_eq!(server.connections(), 1);
    assert_eq!(server.delivered(), vec!["ping".to_string(); 10]);
}

#[tokio::test(start_paused = true)]
async fn no_progress_for_one_interval_replaces_the_connection() {
    let server = Server::new(true);
    let config = queue(10, Duration::from_secs(5)).progress_timeout(Duration::from_secs(2));
    let conn = start(&server, config).await;
    connected(&conn).await;
    // Idle for a while first: an idle connection is not stalled.
    sleep(MS * 3_300).await;
    assert!(conn.state().is_connected());
    let started = Instant::now();
    let err = within(conn.call("hang".into())).await.unwrap_err();
    assert_lost(&err);
    assert_eq!(Instant::now() - started, Duration::from_secs(2));
    connected(&conn).await;
    assert_eq!(server.connections(), 2);
}

#[tokio::test(start_paused = true)]
async fn slow_answers_are_progress() {
    let server = Server::new(true);
    let config = queue(10, Duration::from_secs(5)).progress_timeout(Duration::from_secs(2));
    let conn = start(&server, config).await;
    connected(&conn).await;
    // A stream of 1.5 s requests, overlapping, for 10 s: each answer is progress.
    let mut calls = Vec::new();
    for _ in 0..10 {
        calls.push(spawn_call(&conn, "slow:1500"));
        sleep(Duration::from_secs(1)).await;
    }
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), "ok:slow:1500");
    }
    assert_eq!(server.connections(), 1);
}

// ---------------------------------------------------------------------------------------
// Closing.

#[tokio::test(start_paused = true)]
async fn close_fails_the_queue_at_once_and_stops_for_good() {
    let server = Server::new(false);
    let conn = start(&server, queue(10, Duration::from_secs(30))).await;
    let queued = spawn_call(&conn, "q");
    tokio::task::yield_now().await;
    let t0 = Instant::now();
    conn.close();
    assert!(conn.is_closed());
    assert!(matches!(
        conn.state(),
        State::Closed(CloseReason::Requested)
    ));
    let err = queued.await.unwrap().unwrap_err();
    assert_eq!(Instant::now(), t0);
    assert!(
        matches!(
            err,
            ReconnectError::Closed {
                reason: CloseReason::Requested,
                ..
            }
        ),
        "{err}"
    );
    let attempts = server.attempts.lock().unwrap().len();
    server.set_up(true);
    sleep(Duration::from_secs(60)).await;
    assert_eq!(server.attempts.lock().unwrap().len(), attempts);
    assert!(matches!(
        conn.call("x".into()).await,
        Err(ReconnectError::Closed { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn close_closes_the_live_connection() {
    let (server, conn) = up_and_connected(queue(10, Duration::from_secs(30))).await;
    let in_flight = spawn_call(&conn, "hang");
    sleep(MS).await;
    conn.close();
    let err = within(in_flight).await.unwrap().unwrap_err();
    assert_lost(&err);
    assert!(server.conns.lock().unwrap()[0].is_closed());
}

#[tokio::test(start_paused = true)]
async fn dropping_every_handle_closes_the_connection() {
    let (server, conn) = up_and_connected(queue(10, Duration::from_secs(30))).await;
    let states = conn.state_changes();
    let other = conn.clone();
    drop(conn);
    assert!(!server.conns.lock().unwrap()[0].is_closed());
    drop(other);
    assert!(server.conns.lock().unwrap()[0].is_closed());
    assert!(matches!(
        *states.borrow(),
        State::Closed(CloseReason::Dropped)
    ));
    sleep(Duration::from_secs(60)).await;
    assert_eq!(server.attempts.lock().unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------
// Stacking.

#[tokio::test(start_paused = true)]
async fn a_reconnect_is_itself_a_connection() {
    async fn through<C: Connection<Request = String>>(c: &C) -> Option<C::Response> {
        c.call("via-trait".to_string()).await.ok()
    }
    let server = Server::new(true);
    let conn = start(&server, queue(10, Duration::from_secs(5))).await;
    assert_eq!(through(&conn).await.as_deref(), Some("ok:via-trait"));
    assert!(!Connection::is_closed(&conn));
    Connection::close(&conn);
    within(Connection::closed(&conn)).await;
}
