//! User code the driver runs (the connector, the health check, the first poll of a queued
//! call) runs outside its lock, and a panic in it is a typed end: the connection closes with
//! `CloseReason::Panicked` and the panic's message, calls already started end as their
//! connection reports them (maybe delivered), queued ones fail unsent, nothing hangs.

#![allow(clippy::unwrap_used)]

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Waker};
use std::time::Duration;

use beamline_reconnect::WasSent;
use beamline_reconnect::{
    CloseReason, ConnectError, HealthCheck, Reconnect, ReconnectError, StartError, State,
};
use common::*;

fn panicked_with(state: &State, text: &str) -> bool {
    matches!(state, State::Closed(CloseReason::Panicked(message)) if message.contains(text))
}

fn closed_by_panic(err: &ReconnectError<MockError>, text: &str) -> bool {
    matches!(
        err,
        ReconnectError::Closed { reason: CloseReason::Panicked(message), .. } if message.contains(text)
    )
}

/// Waits until `n` requests sit in the offline queue.
async fn queued(conn: &Reconnect<MockConn>, n: usize) {
    within(async {
        while conn.queued() < n {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_panicking_connector_closes_with_its_message() {
    let (server, conn) = up_and_connected(queue(10, Duration::from_secs(60))).await;
    server.panic_connects.store(true, Ordering::SeqCst);
    server.kill_current();
    let waiting = spawn_call(&conn, "queued");
    let state = wait_for(&conn, State::is_closed).await;
    assert!(panicked_with(&state, "connector exploded"), "{state:?}");
    let err = within(waiting).await.unwrap().unwrap_err();
    assert!(closed_by_panic(&err, "connector exploded"), "{err}");
    assert!(!err.was_sent());
    let later = conn.call("later".into()).await.unwrap_err();
    assert!(closed_by_panic(&later, "connector exploded"), "{later}");
    assert!(server.delivered().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_panicking_first_connect_is_a_start_error() {
    let server = Server::new(true);
    server.panic_connects.store(true, Ordering::SeqCst);
    let config = queue(10, Duration::from_secs(1)).sync_connect(true);
    let err = Reconnect::start(connector(server.clone()), config)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StartError::Connect(ConnectError::Panicked { message, attempt: 1, .. }) if message.contains("connector exploded")),
        "{err}"
    );
    assert!(err.to_string().contains("mock"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_health_check_closes_with_its_message() {
    let server = Server::new(true);
    let check = HealthCheck::new(Duration::from_secs(1), MS * 500, || -> String {
        panic!("ping exploded")
    });
    let config = queue(10, Duration::from_secs(5));
    let conn = Reconnect::start_with_health_check(connector(server.clone()), config, check)
        .await
        .unwrap();
    connected(&conn).await;
    let hanging = spawn_call(&conn, "hang");
    let state = wait_for(&conn, State::is_closed).await;
    assert!(panicked_with(&state, "ping exploded"), "{state:?}");
    // Written before the panic: the connection, closed under it, says it may have been
    // delivered.
    assert_lost(&within(hanging).await.unwrap().unwrap_err());
}

#[tokio::test(start_paused = true)]
async fn a_ping_whose_call_panics_closes_with_its_message() {
    let server = Server::new(true);
    let check = HealthCheck::new(Duration::from_secs(1), MS * 500, || "panic".to_string());
    let config = queue(10, Duration::from_secs(5));
    let conn = Reconnect::start_with_health_check(connector(server.clone()), config, check)
        .await
        .unwrap();
    let state = wait_for(&conn, State::is_closed).await;
    assert!(panicked_with(&state, "call exploded"), "{state:?}");
}

/// The old failure: the driver started queued calls under its lock; a panic there dropped
/// every started call unanswered and each caller heard "closed, not sent", although the
/// first one had been written.
#[tokio::test(start_paused = true)]
async fn a_queued_call_that_panics_when_started_keeps_was_sent_exact() {
    let server = Server::new(false);
    let conn = start(&server, queue(10, Duration::from_secs(60))).await;
    let hanging = spawn_call(&conn, "hang");
    let exploding = spawn_call(&conn, "panic");
    let after = spawn_call(&conn, "after");
    queued(&conn, 3).await;
    server.set_up(true);
    let state = wait_for(&conn, State::is_closed).await;
    assert!(panicked_with(&state, "call exploded"), "{state:?}");
    // Started before the panic and written: it ends as its connection reports it.
    assert_lost(&within(hanging).await.unwrap().unwrap_err());
    // The one that panicked may have written something before it did.
    let err = within(exploding).await.unwrap().unwrap_err();
    assert!(
        matches!(&err, ReconnectError::Panicked { message, .. } if message.contains("call exploded")),
        "{err}"
    );
    assert!(err.was_sent());
    // Never started: not sent.
    let err = within(after).await.unwrap().unwrap_err();
    assert!(closed_by_panic(&err, "call exploded"), "{err}");
    assert!(!err.was_sent());
    assert_eq!(server.delivered(), ["hang"]);
}

/// While the driver starts a queued call, the caller-facing state is not locked: another
/// thread can read it. (Before, the first poll ran under the driver's mutex.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_lock_is_held_while_a_queued_call_starts() {
    let server = Server::new(false);
    let conn = start(&server, queue(10, Duration::from_secs(60))).await;
    let free = Arc::new(Mutex::new(Vec::new()));
    let hook = {
        let (conn, free) = (conn.clone(), free.clone());
        move |request: &str| {
            if request != "probe" {
                return;
            }
            let (done, probed) = mpsc::channel();
            let conn = conn.clone();
            std::thread::spawn(move || {
                let _ = conn.is_closed();
                let _ = done.send(());
            });
            let answered = probed.recv_timeout(Duration::from_secs(2)).is_ok();
            free.lock().unwrap().push(answered);
        }
    };
    *server.on_call.lock().unwrap() = Some(Arc::new(hook));
    let probe = spawn_call(&conn, "probe");
    queued(&conn, 1).await;
    server.set_up(true);
    assert_eq!(within(probe).await.unwrap().unwrap(), "ok:probe");
    assert_eq!(*free.lock().unwrap(), [true], "the state was locked");
    // The hook holds a handle: close explicitly.
    conn.close();
}

/// A request made while the queue is being started (here, by the first queued call's own
/// first poll) goes after the queue, not around it.
#[tokio::test(start_paused = true)]
async fn a_request_made_while_the_queue_is_being_started_goes_after_it() {
    let server = Server::new(false);
    let conn = start(&server, queue(10, Duration::from_secs(60))).await;
    let hook = {
        let conn = conn.clone();
        move |request: &str| {
            if request != "first" {
                return;
            }
            let mut during: Pin<Box<dyn Future<Output = _> + Send>> = {
                let conn = conn.clone();
                Box::pin(async move { conn.call("during".to_string()).await })
            };
            let first_poll = during
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()));
            assert!(first_poll.is_pending());
            tokio::spawn(async move { assert_eq!(during.await.unwrap(), "ok:during") });
        }
    };
    *server.on_call.lock().unwrap() = Some(Arc::new(hook));
    let first = spawn_call(&conn, "first");
    let second = spawn_call(&conn, "second");
    queued(&conn, 2).await;
    server.set_up(true);
    assert_eq!(within(first).await.unwrap().unwrap(), "ok:first");
    assert_eq!(within(second).await.unwrap().unwrap(), "ok:second");
    within(async {
        while server.delivered().len() < 3 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(server.delivered(), ["first", "second", "during"]);
    conn.close();
}
