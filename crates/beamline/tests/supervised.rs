//! A `Client` as a supervised process, against a real `redis-server`: a supervision tree of
//! the client and a worker that uses it rides out a redis restart (the client exits with a
//! typed reason its links and monitors see, the supervisor restarts it, the worker's calls
//! fail typed and then succeed again), and a redis that stays down makes the supervisor
//! give up and escalate.
#![cfg(all(feature = "client", feature = "resp", feature = "process"))]
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

use beamline::process::Info;
use std::time::Duration;

use beamline::WasSent;
use beamline::process::{
    ChildSpec, Context, DynamicSupervisor, DynamicSupervisorConfig, Event, ExitReason, Intensity,
    Pid, RestartIntensityExceeded, StartChildError, Strategy, Supervisor, SupervisorSpec, spawn,
};
use beamline::reconnect::{BackoffConfig, CloseReason, OfflinePolicy, ReconnectConfig};
use beamline::resp::{Command, Value};
use beamline::{BuildError, Client, ClientBuilder, ClientError};
use beamline_testkit::RedisServer;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// Every wait in these tests is bounded by this (real time: a real redis-server).
const LIMIT: Duration = Duration::from_secs(10);

type Redis = Client<Command, Value>;

/// A client of `redis` that exits when it loses its connection (Redix's
/// `exit_on_disconnection`), failing fast while offline.
fn builder(redis: &RedisServer, sync_connect: bool) -> ClientBuilder<Command, Value> {
    let backoff =
        BackoffConfig::exponential(Duration::from_millis(20), 2.0, Duration::from_millis(200));
    Client::builder(redis.addr())
        .resp()
        .name(format!("redis {}", redis.addr()))
        .timeout(Duration::from_secs(2))
        .reconnect(
            ReconnectConfig::new(OfflinePolicy::FailFast)
                .backoff(backoff)
                .sync_connect(sync_connect)
                .exit_on_disconnection(true),
        )
}

/// A worker process that uses the client: `ECHO n` every 10 ms, each reply checked to be its
/// own, each outcome reported.
fn worker(client: Redis, report: UnboundedSender<Result<u64, ClientError>>) -> ChildSpec<()> {
    ChildSpec::permanent("worker", move |_ctx: Context<()>| {
        let (client, report) = (client.clone(), report.clone());
        async move {
            for n in 0u64.. {
                let outcome = match client.call(Command::new("ECHO").arg(n.to_string())).await {
                    Ok(reply) => {
                        assert_eq!(reply, Value::bulk(n.to_string()), "another call's reply");
                        Ok(n)
                    }
                    Err(e) => Err(e),
                };
                if report.send(outcome).is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(())
        }
    })
}

/// The next outcome the worker reports that `want` accepts, within [`LIMIT`].
async fn next_outcome(
    outcomes: &mut UnboundedReceiver<Result<u64, ClientError>>,
    want: impl Fn(&Result<u64, ClientError>) -> bool,
    seen: &mut Vec<Result<u64, ClientError>>,
) {
    tokio::time::timeout(LIMIT, async {
        loop {
            let outcome = outcomes.recv().await.unwrap();
            let done = want(&outcome);
            seen.push(outcome);
            if done {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        let last = &seen[seen.len().saturating_sub(3)..];
        panic!(
            "no such outcome within {LIMIT:?}; {} seen, the last: {last:?}",
            seen.len()
        )
    });
}

/// Why `pid` exits, as a process linked to it (not trapping exits) and a monitor see it.
fn watch_exit(pid: Pid) -> (Pid, tokio::sync::oneshot::Receiver<ExitReason>) {
    let linked = spawn({
        let pid = pid.clone();
        move |ctx: Context<()>| async move {
            ctx.link(&pid);
            std::future::pending::<()>().await;
            Ok(())
        }
    });
    let (tx, rx) = tokio::sync::oneshot::channel();
    spawn(move |mut ctx: Context<()>| async move {
        ctx.monitor(&pid);
        if let Event::Info(Info::Down { reason, .. }) = ctx.recv().await {
            let _ = tx.send(reason);
        }
        Ok(())
    });
    (linked.pid(), rx)
}

/// The application under test: a supervisor (with `intensity`) of a client of `redis` and a
/// worker using it, once the worker has had a first reply.
struct App {
    sup: Supervisor,
    client: Redis,
    outcomes: UnboundedReceiver<Result<u64, ClientError>>,
    seen: Vec<Result<u64, ClientError>>,
}

async fn app(redis: &RedisServer, sync_connect: bool, intensity: Intensity) -> App {
    let (client_spec, client) = Client::child_spec("redis", builder(redis, sync_connect));
    let (report, mut outcomes) = unbounded_channel();
    let sup = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne)
            .intensity(intensity)
            .child(client_spec)
            .child(worker(client.clone(), report)),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    next_outcome(&mut outcomes, Result::is_ok, &mut seen).await;
    App {
        sup,
        client,
        outcomes,
        seen,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervised_client_and_its_worker_ride_out_a_redis_restart() {
    let mut redis = RedisServer::start();
    // Room for a few restarts: one for the loss, and one more each time a restart connects
    // to the dying server in the instant before its listening socket goes.
    let App {
        sup,
        client,
        mut outcomes,
        mut seen,
    } = app(&redis, false, Intensity::new(10, Duration::from_secs(5))).await;

    // Redis dies: the client's process exits with the typed reason, which a linked process
    // and a monitor both see.
    let first = client.pid().unwrap();
    let (linked, down) = watch_exit(first.clone());
    tokio::task::yield_now().await;
    redis.stop();
    let reason = tokio::time::timeout(LIMIT, down).await.unwrap().unwrap();
    assert!(
        matches!(
            reason.downcast_error::<CloseReason>(),
            Some(CloseReason::Disconnected { .. })
        ),
        "{reason}"
    );
    let linked_reason = tokio::time::timeout(LIMIT, linked.exited()).await.unwrap();
    assert!(linked_reason.downcast_error::<CloseReason>().is_some());

    // The worker's calls fail, typed, while redis is down (and the supervisor has
    // restarted the client, which reconnects with its backoff).
    seen.clear();
    next_outcome(&mut outcomes, Result::is_err, &mut seen).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Back on the same port (kept alive until the end of the test).
    let _redis = tokio::task::spawn_blocking(move || {
        redis.restart().unwrap();
        redis
    })
    .await
    .unwrap();
    next_outcome(&mut outcomes, Result::is_ok, &mut seen).await;
    for outcome in &seen {
        if let Err(e) = outcome {
            assert!(
                matches!(
                    e,
                    ClientError::NotSent { .. }
                        | ClientError::ConnectionLost { .. }
                        | ClientError::Disconnected { .. }
                        | ClientError::Closed { .. }
                ),
                "an error other than not-sent / connection-lost: {e}"
            );
            assert!(
                !e.was_sent() || matches!(e, ClientError::ConnectionLost { .. }),
                "{e}"
            );
        }
    }
    assert_ne!(client.pid().unwrap(), first, "a new incarnation");
    let children = sup.which_children().await.unwrap();
    assert_eq!(children[0].id.as_str(), "redis");
    assert!(children[0].restarts >= 1);
    sup.shutdown().await.unwrap();
    assert!(client.pid().is_none());
    assert!(matches!(
        client.call(Command::new("PING")).await,
        Err(ClientError::Disconnected { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_stays_down_makes_the_client_supervisor_escalate() {
    let mut redis = RedisServer::start();
    // With sync_connect every restart tries to connect at once, and fails: one more crash.
    let App { sup, client, .. } =
        app(&redis, true, Intensity::new(2, Duration::from_secs(60))).await;
    let (_, sup_down) = watch_exit(sup.pid());
    redis.stop();
    let reason = tokio::time::timeout(LIMIT, sup_down)
        .await
        .unwrap()
        .unwrap();
    let exceeded = reason
        .downcast_error::<RestartIntensityExceeded>()
        .unwrap_or_else(|| panic!("expected an escalation, got {reason}"));
    assert_eq!(exceeded.child.as_str(), "redis");
    assert!(client.pid().is_none());
    assert!(client.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_supervisor_starts_clients_and_reports_a_failed_connect() {
    let mut redis = RedisServer::start();
    let conns = DynamicSupervisor::start(DynamicSupervisorConfig::new());
    let (spec, client) = builder(&redis, true).child_spec("redis");
    conns.start_child_acknowledged(spec).await.unwrap();
    // Acknowledged once connected: the first call goes straight out.
    assert_eq!(
        client.call(Command::new("PING")).await.unwrap(),
        Value::simple("PONG")
    );
    assert_eq!(conns.count_children().await.unwrap().active, 1);
    let report = conns.shutdown(Duration::from_secs(1)).await.unwrap();
    assert_eq!((report.exited, report.aborted), (1, 0));
    assert!(client.pid().is_none());

    redis.stop();
    let conns = DynamicSupervisor::start(DynamicSupervisorConfig::new());
    let (spec, _) = builder(&redis, true).child_spec("unreachable");
    match conns.start_child_acknowledged(spec).await {
        Err(StartChildError::Failed { child, reason }) => {
            assert_eq!(child.as_str(), "unreachable");
            assert!(
                matches!(
                    reason.downcast_error::<BuildError>(),
                    Some(BuildError::Connect { .. })
                ),
                "{reason}"
            );
        }
        other => panic!("expected a failed start, got {other:?}"),
    }
    assert_eq!(conns.count_children().await.unwrap().active, 0);
}
