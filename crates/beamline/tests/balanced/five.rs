//! Five servers behind five chaos proxies: one slowed 20x, one resetting every connection,
//! one killed and restarted, one removed by discovery mid-run, one added mid-run.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beamline::balance::{
    BalanceError, Balanced, BalancedStats, Change, Discovery, EndpointState, HealthConfig,
};
use beamline::chaos::{Direction, Fault};
use beamline::pool::PoolConfig;
use beamline::reconnect::{BackoffConfig, Jitter};
use beamline::{Client, ClientError, Pooling};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::fleet::{fleet, payload, state, wait_for};

const MS: Duration = Duration::from_millis(1);
/// Every call's deadline, and what the test allows beyond it before calling it a hang.
const DEADLINE: Duration = Duration::from_secs(2);
const SLACK: Duration = Duration::from_secs(1);
const CALLERS: u16 = 12;

/// What the callers saw.
#[derive(Debug, Default)]
struct Seen {
    requests: u64,
    ok: u64,
    errors: BTreeMap<String, u64>,
    violations: Vec<String>,
    /// Requests started once the removal had taken effect.
    after_removal: Vec<Bytes>,
}

fn kind(e: &BalanceError<ClientError>) -> String {
    match e {
        BalanceError::Endpoint { source, .. } => format!(
            "endpoint: {}",
            source.to_string().split(':').nth(1).unwrap_or("?").trim()
        ),
        BalanceError::NoEndpoint { .. } => "no endpoint".into(),
        BalanceError::Timeout { .. } => "timeout".into(),
        BalanceError::Closed { .. } => "closed".into(),
        _ => "other".into(),
    }
}

/// One caller: requests back to back, 2 ms apart, until `stop`.
async fn caller(
    client: Balanced<Client<Bytes, Bytes>>,
    id: u16,
    stop: Instant,
    removed: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
) {
    let mut seq = 0;
    while Instant::now() < stop {
        let request = payload(id, seq);
        seq += 1;
        let after_removal = removed.load(Ordering::SeqCst);
        let started = Instant::now();
        let outcome = tokio::time::timeout(DEADLINE + SLACK, client.call(request.clone())).await;
        {
            let mut seen = seen.lock().unwrap();
            seen.requests += 1;
            if after_removal {
                seen.after_removal.push(request.clone());
            }
            match outcome {
                Err(_) => seen.violations.push(format!(
                    "{request:?} did not end within {:?}",
                    DEADLINE + SLACK
                )),
                Ok(Ok(reply)) if reply == request => seen.ok += 1,
                Ok(Ok(reply)) => seen.violations.push(format!("{request:?} got {reply:?}")),
                Ok(Err(e)) => {
                    if started.elapsed() > DEADLINE + SLACK {
                        seen.violations
                            .push(format!("{request:?} failed late: {e}"));
                    }
                    *seen.errors.entry(kind(&e)).or_default() += 1;
                }
            }
        }
        tokio::time::sleep(2 * MS).await;
    }
}

/// The first time `addr` is seen ejected: its attempts and every endpoint's then.
async fn watch_ejection(
    client: Balanced<Client<Bytes, Bytes>>,
    addr: SocketAddr,
    stop: Instant,
) -> Option<(Instant, u64, u64)> {
    while Instant::now() < stop {
        let stats = client.stats();
        if let Some(EndpointState::Ejected { .. }) = state(&stats, addr) {
            let mine = stats.endpoint(addr).map_or(0, |s| s.requests);
            return Some((Instant::now(), mine, stats.totals.attempts));
        }
        tokio::time::sleep(MS).await;
    }
    None
}

fn requests_to(stats: &BalancedStats, addr: SocketAddr) -> u64 {
    stats
        .endpoints
        .iter()
        .filter(|(a, _)| *a == addr)
        .map(|(_, s)| s.requests)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_endpoints_under_faults_every_request_ends_with_its_own_reply_or_a_typed_error() {
    let mut nodes = fleet(5, MS, 19).await;
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr()).collect();
    let (slow, reset, killed, removed, added) = (addrs[0], addrs[1], addrs[2], addrs[3], addrs[4]);
    // 20x: the servers answer after 1 ms; this one's proxy adds 20 ms on the way back.
    nodes[0]
        .proxy
        .apply(Direction::Downstream, Fault::latency(MS * 20));
    nodes[1].proxy.apply(Direction::Both, Fault::reset());

    let (changes, rx) = mpsc::unbounded_channel();
    for addr in &addrs[..4] {
        changes.send(Change::Insert(*addr)).unwrap();
    }
    let discovery = Discovery::stream(
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
            .boxed(),
    );
    // Each server's client is a shared pool of 2 connections: ready while open, so a sick
    // one is found by its failures (a single connection would mostly show as reconnecting).
    let make = |addr: SocketAddr| {
        Client::builder(addr)
            .name(format!("node {addr}"))
            .timeout(MS * 500)
            // Each pooled connection reconnects by itself with this backoff: the client's
            // default (up to 30 s) could leave the restarted server's connections offline
            // at its probe, which then fails and ejects it past the end of the run.
            .backoff(BackoffConfig::exponential(MS * 20, 2.0, MS * 200).jitter(Jitter::Full))
            .pool(Pooling::Shared(
                PoolConfig::new(2)
                    .checkout_timeout(Some(MS * 300))
                    .connect_timeout(Some(MS * 300))
                    .backoff(
                        BackoffConfig::exponential(MS * 20, 2.0, MS * 200).jitter(Jitter::Full),
                    ),
            ))
            .connect()
    };
    let client = Balanced::builder(discovery, make)
        .name("five")
        .timeout(DEADLINE)
        .seed(19)
        .health(
            HealthConfig::new()
                .consecutive_failures(3)
                .base_ejection(Duration::from_secs(1)),
        )
        .start()
        .unwrap();
    wait_for(&client, "four endpoints up", |s| {
        addrs[..4].iter().all(|a| s.endpoint(*a).is_some())
    })
    .await;

    let epoch = Instant::now();
    let stop = epoch + Duration::from_millis(2600);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let removed_flag = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..CALLERS)
        .map(|id| {
            tokio::spawn(caller(
                client.clone(),
                id,
                stop,
                removed_flag.clone(),
                seen.clone(),
            ))
        })
        .collect();
    let ejection = tokio::spawn(watch_ejection(client.clone(), reset, stop));

    tokio::time::sleep_until(epoch + MS * 300).await;
    nodes[2].backend.kill();
    // Back before its first probe (its ejection, once its failures were seen, lasts 1 s).
    tokio::time::sleep_until(epoch + MS * 700).await;
    nodes[2].backend.restart();
    let killed_before_restart = nodes[2].backend.seen.count();
    changes.send(Change::Insert(added)).unwrap();
    tokio::time::sleep_until(epoch + MS * 900).await;
    changes.send(Change::Remove(removed)).unwrap();
    wait_for(&client, "the removal applied", |s| {
        !matches!(
            state(s, removed),
            Some(EndpointState::Healthy | EndpointState::Probing | EndpointState::Connecting)
        )
    })
    .await;
    removed_flag.store(true, Ordering::SeqCst);
    let at_removal = nodes[3].backend.seen.count();

    for c in callers {
        c.await.unwrap();
    }
    let end = client.stats();
    let seen = Arc::try_unwrap(seen).unwrap().into_inner().unwrap();
    println!(
        "{} requests, {} answered, errors {:?}",
        seen.requests, seen.ok, seen.errors
    );
    for (addr, s) in &end.endpoints {
        println!("{addr}: {s:?}");
    }
    println!("{:?}", end.totals);

    // Every request ended by its deadline with its own reply or a typed error.
    assert!(seen.violations.is_empty(), "{:#?}", seen.violations);
    assert!(
        seen.ok > seen.requests * 9 / 10,
        "{} of {} answered",
        seen.ok,
        seen.requests
    );

    // The resetting endpoint was ejected, and from then on got at most 1% of the attempts
    // (its probes: every one fails, so it never comes back).
    let (_, its_then, all_then) = ejection
        .await
        .unwrap()
        .expect("the resetting endpoint was ejected");
    let its = requests_to(&end, reset) - its_then;
    let all = end.totals.attempts - all_then;
    assert!(
        its * 100 <= all,
        "after its ejection: {its} of {all} attempts"
    );

    // No request started after the removal reached the removed server.
    let reached: Vec<&Bytes> = seen
        .after_removal
        .iter()
        .filter(|p| nodes[3].backend.seen.contains(p))
        .collect();
    assert!(
        reached.is_empty(),
        "{} requests reached it after its removal: {reached:?}",
        reached.len()
    );
    assert!(at_removal > 0 && !seen.after_removal.is_empty());
    assert_eq!(state(&end, removed), None, "drained and gone");

    // The added endpoint took its share; the killed one came back after its restart; the
    // slow one got little.
    assert!(
        nodes[4].backend.seen.count() > seen.requests / 20,
        "added: {}",
        nodes[4].backend.seen.count()
    );
    assert!(
        nodes[2].backend.seen.count() > killed_before_restart + seen.requests / 20,
        "the restarted server took its share again: {}",
        nodes[2].backend.seen.count() - killed_before_restart
    );
    assert_eq!(state(&end, killed), Some(EndpointState::Healthy));
    let slow_share = requests_to(&end, slow) as f64 / end.totals.attempts as f64;
    // (A fifth would be its even share; on a loaded debug build the healthy servers' own
    // round trips are a few ms, so 20 ms is not 20x there: 10.7% was seen once in 15 runs
    // with other builds beside it. The paused-time test holds it to 1%; the bench measures
    // the tail.)
    assert!(
        slow_share < 0.15,
        "the slow endpoint got {:.1}%",
        slow_share * 100.0
    );
    assert!(end.totals.ejections >= 2, "{:?}", end.totals);
    client.close();
}
