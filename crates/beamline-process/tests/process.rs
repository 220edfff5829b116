//! Processes: mailboxes, cast / try_cast / call, exit reasons and panic isolation.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

mod common;

use std::future::pending;
use std::num::NonZeroUsize;
use std::time::Duration;

use beamline_process::{
    Addr, CallError, CastError, Event, ExitReason, Reply, SpawnConfig, TryCastError, spawn,
    spawn_with,
};
use common::{DELIBERATE, quiet_deliberate_panics};
use tokio::time::Instant;

#[derive(Debug)]
enum Msg {
    Add(u64),
    Get(Reply<u64>),
    /// Panics while holding the reply.
    PanicHolding(Reply<u64>),
    /// Drops the reply unanswered and keeps running.
    Ignore(Reply<u64>),
    /// Keeps the reply and never answers.
    Hold(Reply<u64>),
    Stop,
}

fn counter() -> Addr<Msg> {
    spawn(|mut ctx| async move {
        let mut total = 0;
        let mut held = Vec::new();
        loop {
            match ctx.recv().await {
                Event::Msg(Msg::Add(n)) => total += n,
                Event::Msg(Msg::Get(reply)) => {
                    let _ = reply.send(total);
                }
                Event::Msg(Msg::PanicHolding(_reply)) => panic!("{DELIBERATE}: holding a reply"),
                Event::Msg(Msg::Ignore(reply)) => drop(reply),
                Event::Msg(Msg::Hold(reply)) => held.push(reply),
                Event::Msg(Msg::Stop) => return Ok(()),
                Event::Info(_) => {}
            }
        }
    })
}

/// A process that never reads its mailbox (so messages pile up) until told via a oneshot.
fn sleeper(capacity: usize) -> (Addr<u32>, tokio::sync::oneshot::Sender<()>) {
    let (wake, woken) = tokio::sync::oneshot::channel::<()>();
    let config = SpawnConfig::new().capacity(NonZeroUsize::new(capacity).unwrap());
    let addr = spawn_with(config, move |mut ctx| async move {
        let _ = woken.await;
        loop {
            ctx.recv().await;
        }
    });
    (addr, wake)
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn cast_then_call_sees_the_cast() {
    let c = counter();
    c.cast(Msg::Add(40)).await.unwrap();
    c.try_cast(Msg::Add(2)).unwrap();
    assert_eq!(c.call(Msg::Get, SECOND).await.unwrap(), 42);
}

#[tokio::test]
async fn try_cast_on_a_full_mailbox_fails_at_once_and_returns_the_message() {
    let (addr, _wake) = sleeper(2);
    addr.try_cast(1).unwrap();
    addr.try_cast(2).unwrap();
    assert_eq!(addr.mailbox_len(), 2);
    match addr.try_cast(3) {
        Err(TryCastError::Full { pid, message }) => {
            assert_eq!(pid, addr.id());
            assert_eq!(message, 3);
        }
        other => panic!("expected Full, got {other:?}"),
    }
}

#[tokio::test]
async fn sends_to_an_exited_process_fail_with_its_reason_and_return_the_message() {
    let c = counter();
    c.cast(Msg::Stop).await.unwrap();
    assert!(matches!(c.exited().await, ExitReason::Normal));
    assert!(!c.is_alive());
    match c.try_cast(Msg::Add(1)) {
        Err(TryCastError::Exited {
            reason: ExitReason::Normal,
            message: Msg::Add(1),
            ..
        }) => {}
        other => panic!("expected Exited, got {other:?}"),
    }
    match c.cast(Msg::Add(2)).await {
        Err(e @ CastError::Exited { .. }) => assert!(matches!(e.into_message(), Msg::Add(2))),
        other => panic!("expected Exited, got {other:?}"),
    }
    match c.call(Msg::Get, SECOND).await {
        Err(CallError::Exited {
            reason: ExitReason::Normal,
            pid,
        }) => assert_eq!(pid, c.id()),
        other => panic!("expected Exited, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn cast_waits_for_space_and_waiting_senders_are_served_in_order() {
    let (go, gone) = tokio::sync::oneshot::channel::<()>();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let config = SpawnConfig::new().capacity(NonZeroUsize::new(1).unwrap());
    let addr: Addr<u32> = spawn_with(config, move |mut ctx| async move {
        let _ = gone.await;
        loop {
            if let Event::Msg(n) = ctx.recv().await {
                let _ = seen_tx.send(n);
            }
        }
    });
    addr.cast(0).await.unwrap();
    let mut senders = Vec::new();
    for i in 1..=3 {
        let a = addr.clone();
        senders.push(tokio::spawn(async move { a.cast(i).await.unwrap() }));
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(SECOND).await;
    assert!(senders.iter().all(|s| !s.is_finished()), "cast must wait");
    go.send(()).unwrap();
    for s in senders {
        s.await.unwrap();
    }
    let mut order = Vec::new();
    while order.len() < 4 {
        order.push(seen.recv().await.unwrap());
    }
    assert_eq!(order, [0, 1, 2, 3]);
}

#[tokio::test]
async fn a_cancelled_waiting_cast_passes_its_turn_on() {
    let (addr, wake) = sleeper(1);
    addr.cast(0).await.unwrap();
    let first = {
        let a = addr.clone();
        tokio::spawn(async move { a.cast(1).await })
    };
    tokio::task::yield_now().await;
    let second = {
        let a = addr.clone();
        tokio::spawn(async move { a.cast(2).await })
    };
    tokio::task::yield_now().await;
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    let _ = wake.send(());
    tokio::time::timeout(SECOND, second)
        .await
        .expect("the second sender got the freed slot")
        .unwrap()
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn call_times_out_when_no_reply_comes() {
    let c = counter();
    let start = Instant::now();
    match c.call(Msg::Hold, Duration::from_millis(250)).await {
        Err(CallError::Timeout { pid, timeout }) => {
            assert_eq!(pid, c.id());
            assert_eq!(timeout, Duration::from_millis(250));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert_eq!(start.elapsed(), Duration::from_millis(250));
    assert!(c.is_alive());
}

#[tokio::test(start_paused = true)]
async fn a_dropped_reply_from_a_live_process_is_a_timeout_as_in_otp() {
    let c = counter();
    let start = Instant::now();
    let err = c.call(Msg::Ignore, SECOND).await.unwrap_err();
    assert!(matches!(err, CallError::Timeout { .. }), "{err:?}");
    assert_eq!(start.elapsed(), SECOND);
}

#[tokio::test(start_paused = true)]
async fn call_fails_at_once_with_the_panic_when_the_callee_panics_holding_the_request() {
    quiet_deliberate_panics();
    let c = counter();
    let start = Instant::now();
    match c.call(Msg::PanicHolding, Duration::from_secs(3600)).await {
        Err(CallError::Exited {
            reason: ExitReason::Panicked(message),
            ..
        }) => assert!(message.contains("holding a reply"), "{message}"),
        other => panic!("expected Exited(Panicked), got {other:?}"),
    }
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "no waiting for the timeout"
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_still_queued_when_the_process_exits_fails_with_the_exit_reason() {
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let addr: Addr<Msg> = spawn(|_ctx| async move {
        let _ = released.await;
        Err(ExitReason::Shutdown)
    });
    let call = {
        let a = addr.clone();
        tokio::spawn(async move { a.call(Msg::Get, Duration::from_secs(3600)).await })
    };
    tokio::task::yield_now().await;
    assert_eq!(addr.mailbox_len(), 1);
    let start = Instant::now();
    release.send(()).unwrap();
    match call.await.unwrap() {
        Err(CallError::Exited {
            reason: ExitReason::Shutdown,
            ..
        }) => {}
        other => panic!("expected Exited(Shutdown), got {other:?}"),
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn call_waiting_for_mailbox_space_counts_against_the_timeout() {
    let (addr, _wake) = sleeper(1);
    addr.cast(0).await.unwrap();
    #[derive(Debug)]
    struct Never;
    let typed: Addr<u32> = addr.clone();
    let start = Instant::now();
    let err = typed
        .call(|_r: Reply<Never>| 1, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout { .. }));
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    assert_eq!(
        addr.mailbox_len(),
        1,
        "the timed-out request was never queued"
    );
}

#[tokio::test]
async fn a_panic_is_the_exit_reason_and_never_reaches_another_process() {
    quiet_deliberate_panics();
    let bystander = counter();
    let crasher: Addr<()> = spawn(|mut ctx| async move {
        ctx.recv().await;
        panic!("{DELIBERATE}: crash {}", 7);
    });
    crasher.cast(()).await.unwrap();
    match crasher.exited().await {
        ExitReason::Panicked(message) => assert!(message.ends_with("crash 7"), "{message}"),
        other => panic!("expected Panicked, got {other:?}"),
    }
    bystander.cast(Msg::Add(1)).await.unwrap();
    assert_eq!(bystander.call(Msg::Get, SECOND).await.unwrap(), 1);
}

#[tokio::test]
async fn a_panic_while_building_the_body_is_the_exit_reason_too() {
    quiet_deliberate_panics();
    let addr: Addr<()> = spawn(|_ctx| -> std::future::Ready<Result<(), ExitReason>> {
        panic!("{DELIBERATE}: in the start function")
    });
    assert!(matches!(addr.exited().await, ExitReason::Panicked(_)));
}

#[derive(Debug, thiserror::Error)]
#[error("disk full on {0}")]
struct DiskFull(&'static str);

#[tokio::test]
async fn an_error_returned_by_the_body_is_the_exit_reason() {
    let addr: Addr<()> = spawn(|_ctx| async move {
        Err(DiskFull("/var"))?;
        Ok(())
    });
    let reason = addr.exited().await;
    assert_eq!(
        reason.downcast_error::<DiskFull>().map(|e| e.0),
        Some("/var")
    );
    assert!(reason.is_abnormal());
}

#[tokio::test]
async fn kill_ends_a_process_that_never_reads_its_mailbox() {
    let addr: Addr<()> = spawn(|_ctx| async move {
        pending::<()>().await;
        Ok(())
    });
    tokio::task::yield_now().await;
    assert!(addr.is_alive());
    assert!(addr.kill());
    assert!(matches!(addr.exited().await, ExitReason::Killed));
    assert!(!addr.kill(), "a second kill has nothing to end");
    assert!(matches!(addr.exit_reason(), Some(ExitReason::Killed)));
}

#[tokio::test]
async fn no_task_is_left_behind_by_exited_processes() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let addrs: Vec<Addr<Msg>> = (0..100).map(|_| counter()).collect();
    for a in &addrs {
        a.cast(Msg::Stop).await.unwrap();
    }
    for a in &addrs {
        a.exited().await;
    }
    for _ in 0..100 {
        if metrics.num_alive_tasks() == before {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(metrics.num_alive_tasks(), before);
}

#[tokio::test]
async fn try_recv_and_recv_in_select_lose_nothing() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let addr: Addr<u32> = spawn(|mut ctx| async move {
        let mut got = Vec::new();
        while got.len() < 100 {
            tokio::select! {
                ev = ctx.recv() => if let Event::Msg(n) = ev { got.push(n) },
                () = tokio::task::yield_now() => {
                    if let Some(Event::Msg(n)) = ctx.try_recv() { got.push(n) }
                }
            }
        }
        let _ = tx.send(got);
        Ok(())
    });
    for i in 0..100 {
        addr.cast(i).await.unwrap();
    }
    let got = rx.await.unwrap();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
}
