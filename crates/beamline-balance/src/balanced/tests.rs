//! The driver and the call loop under paused time, over in-memory endpoints whose round
//! trips are tokio sleeps: deterministic to the nanosecond, so seeds replay. The same
//! behaviours over real sockets and real servers are in the facade's `tests/balanced*.rs`.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::WasSent;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::*;
use crate::discover::{Change, Dns, Resolution, Resolver};
use crate::endpoint::{EndpointError, Failure};
use crate::{BudgetConfig, HealthConfig};

const MS: Duration = Duration::from_millis(1);

fn addr(n: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7000 + n))
}

/// How an in-memory endpoint behaves.
#[derive(Debug, Default)]
struct Behaviour {
    latency: Mutex<Duration>,
    /// Every call fails with this, after the latency.
    fails: Mutex<Option<Failure>>,
    /// Never answers.
    silent: AtomicBool,
    /// Reports itself connecting (picked only when no endpoint is ready).
    connecting: AtomicBool,
    calls: AtomicUsize,
    closed: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
#[error("fake endpoint failed: {0:?}")]
struct FakeError(Failure);

impl WasSent for FakeError {
    fn was_sent(&self) -> bool {
        !matches!(self.0, Failure::Unreachable)
    }
}

impl EndpointError for FakeError {
    fn failure(&self) -> Failure {
        self.0
    }
}

/// An endpoint answering `(its address, the request)` after its latency.
#[derive(Debug)]
struct Fake {
    addr: SocketAddr,
    behaviour: Arc<Behaviour>,
}

impl Endpoint for Fake {
    type Request = u32;
    type Response = (SocketAddr, u32);
    type Error = FakeError;

    async fn call(&self, request: u32) -> Result<(SocketAddr, u32), FakeError> {
        let b = &self.behaviour;
        b.calls.fetch_add(1, Ordering::SeqCst);
        let latency = *b.latency.lock().unwrap();
        tokio::time::sleep(latency).await;
        if b.silent.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        match *b.fails.lock().unwrap() {
            Some(failure) => Err(FakeError(failure)),
            None => Ok((self.addr, request)),
        }
    }

    fn readiness(&self) -> crate::Readiness {
        if self.behaviour.connecting.load(Ordering::SeqCst) {
            crate::Readiness::Connecting
        } else {
            crate::Readiness::Ready
        }
    }

    fn close(&self) {
        self.behaviour.closed.store(true, Ordering::SeqCst);
    }
}

/// A fleet of in-memory endpoints by address, and a maker that counts what it made.
#[derive(Debug, Default, Clone)]
struct Fleet {
    endpoints: Arc<Mutex<HashMap<SocketAddr, Arc<Behaviour>>>>,
    made: Arc<Mutex<Vec<(SocketAddr, Instant)>>>,
    /// How long making the client of an address takes.
    make_delay: Arc<Mutex<HashMap<SocketAddr, Duration>>>,
}

impl Fleet {
    fn with(addrs: impl IntoIterator<Item = SocketAddr>, latency: Duration) -> Fleet {
        let fleet = Fleet::default();
        for a in addrs {
            fleet
                .behaviour(a)
                .latency
                .lock()
                .map(|mut l| *l = latency)
                .unwrap();
        }
        fleet
    }

    fn behaviour(&self, addr: SocketAddr) -> Arc<Behaviour> {
        Arc::clone(self.endpoints.lock().unwrap().entry(addr).or_default())
    }

    fn calls(&self, addr: SocketAddr) -> usize {
        self.behaviour(addr).calls.load(Ordering::SeqCst)
    }

    fn maker(&self) -> impl MakeEndpoint<Endpoint = Fake> + use<> {
        let fleet = self.clone();
        move |addr: SocketAddr| {
            let fleet = fleet.clone();
            async move {
                let delay = fleet.make_delay.lock().unwrap().get(&addr).copied();
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
                fleet.made.lock().unwrap().push((addr, Instant::now()));
                Ok::<_, io::Error>(Fake {
                    addr,
                    behaviour: fleet.behaviour(addr),
                })
            }
        }
    }
}

/// Runs `n` calls, `concurrency` at a time, and counts which endpoint answered each.
async fn load(client: &Balanced<Fake>, n: u32, concurrency: u32) -> BTreeMap<SocketAddr, u32> {
    let next = Arc::new(AtomicU32::new(0));
    let answered = Arc::new(Mutex::new(BTreeMap::new()));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, next, answered) = (client.clone(), next.clone(), answered.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= n {
                        return;
                    }
                    let (by, echo) = client.call(i).await.expect("an answer");
                    assert_eq!(echo, i, "its own answer");
                    *answered.lock().unwrap().entry(by).or_insert(0) += 1;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    Arc::try_unwrap(answered).unwrap().into_inner().unwrap()
}

async fn started(fleet: &Fleet, discovery: impl Into<Discovery>, seed: u64) -> Balanced<Fake> {
    let client = Balanced::builder(discovery, fleet.maker())
        .name("test")
        .seed(seed)
        .start()
        .unwrap();
    // Let the driver make every client.
    tokio::time::sleep(MS).await;
    client
}

#[tokio::test(start_paused = true)]
async fn p2c_under_paused_time_replays_from_its_seed_and_starves_the_slow_endpoint() {
    let addrs: Vec<SocketAddr> = (0..5).map(addr).collect();
    let run = |seed| {
        let addrs = addrs.clone();
        async move {
            let fleet = Fleet::with(addrs.clone(), MS);
            *fleet.behaviour(addrs[4]).latency.lock().unwrap() = MS * 20;
            let client = started(&fleet, addrs.clone(), seed).await;
            load(&client, 4000, 16).await
        }
    };
    let first = run(7).await;
    assert_eq!(first, run(7).await, "the same seed, the same choices");
    assert_ne!(first, run(8).await);
    let slow = first.get(&addr(4)).copied().unwrap_or(0);
    assert!(
        slow * 100 <= 4000,
        "20x slower, yet {slow} of 4000: {first:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_whose_client_is_made_late_takes_requests_at_once() {
    // tower#824: an endpoint that started pending was never promoted to ready.
    let addrs: Vec<SocketAddr> = (0..3).map(addr).collect();
    let fleet = Fleet::with(addrs.clone(), MS);
    fleet.make_delay.lock().unwrap().insert(addrs[2], MS * 500);
    let client = started(&fleet, addrs.clone(), 1).await;
    let before = load(&client, 300, 8).await;
    assert_eq!(before.get(&addrs[2]), None, "not made yet: {before:?}");
    tokio::time::sleep(MS * 500).await;
    let after = load(&client, 300, 8).await;
    assert!(
        after[&addrs[2]] > 50,
        "made: a full share at once: {after:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_with_no_endpoint_waits_within_its_deadline_then_fails_typed() {
    let fleet = Fleet::default();
    let (changes, rx) = mpsc::unbounded_channel::<Change>();
    let discovery = Discovery::stream(tokio_stream(rx));
    let client = Balanced::builder(discovery, fleet.maker())
        .timeout(MS * 300)
        .start()
        .unwrap();
    let started = Instant::now();
    let err = client.call(1).await.unwrap_err();
    assert!(
        matches!(err, BalanceError::NoEndpoint { known: 0, .. }),
        "{err}"
    );
    assert!(!err.was_sent());
    assert_eq!(started.elapsed(), MS * 300);
    // An endpoint discovered while a call waits serves it.
    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.call(2).await }
    });
    tokio::time::sleep(MS * 100).await;
    changes.send(Change::Insert(addr(1))).unwrap();
    assert_eq!(waiting.await.unwrap().unwrap(), (addr(1), 2));
}

#[tokio::test(start_paused = true)]
async fn a_removed_endpoint_takes_no_new_request_drains_and_is_closed() {
    let fleet = Fleet::with((0..3).map(addr), MS * 100);
    let (changes, rx) = mpsc::unbounded_channel();
    for n in 0..3 {
        changes.send(Change::Insert(addr(n))).unwrap();
    }
    let client = started(&fleet, Discovery::stream(tokio_stream(rx)), 5).await;
    // Requests in flight everywhere, then endpoint 1 is removed.
    let in_flight: Vec<_> = (0..30)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.call(i).await })
        })
        .collect();
    tokio::time::sleep(MS * 10).await;
    let on_removed = fleet.calls(addr(1));
    assert!(on_removed > 0);
    changes.send(Change::Remove(addr(1))).unwrap();
    tokio::time::sleep(MS).await;
    let stats = client.stats();
    assert_eq!(
        stats.endpoint(addr(1)).map(|s| s.state),
        Some(crate::EndpointState::Draining)
    );
    assert!(!fleet.behaviour(addr(1)).closed.load(Ordering::SeqCst));
    // Its requests in flight finish with their own answers; then it is closed.
    for call in in_flight {
        call.await.unwrap().unwrap();
    }
    assert!(fleet.behaviour(addr(1)).closed.load(Ordering::SeqCst));
    let after = load(&client, 200, 8).await;
    assert_eq!(after.get(&addr(1)), None, "{after:?}");
    assert_eq!(
        fleet.calls(addr(1)),
        on_removed,
        "no new request reached it"
    );
    assert!(client.stats().endpoint(addr(1)).is_none());
}

#[tokio::test(start_paused = true)]
async fn retries_go_to_another_endpoint_within_the_budget() {
    let addrs: Vec<SocketAddr> = (0..3).map(addr).collect();
    let fleet = Fleet::with(addrs.clone(), MS);
    *fleet.behaviour(addrs[0]).fails.lock().unwrap() = Some(Failure::Unreachable);
    let client = Balanced::builder(addrs.clone(), fleet.maker())
        .seed(3)
        .health(HealthConfig::new().consecutive_failures(1000))
        .budget(BudgetConfig::new().ratio(0.5))
        .start()
        .unwrap();
    tokio::time::sleep(MS).await;
    let answered = load(&client, 500, 4).await;
    assert_eq!(
        answered.get(&addrs[0]),
        None,
        "every failure was retried elsewhere"
    );
    assert_eq!(answered.values().sum::<u32>(), 500);
    let stats = client.stats();
    assert_eq!(stats.totals.retries as usize, fleet.calls(addrs[0]));
}

#[tokio::test(start_paused = true)]
async fn a_lost_connection_is_retried_only_for_an_idempotent_call() {
    // Endpoint 0 is the only ready one and loses every connection; endpoint 1 reports
    // itself connecting, so it is tried only when 0 is excluded: by a retry.
    let addrs: Vec<SocketAddr> = (0..2).map(addr).collect();
    let fleet = Fleet::with(addrs.clone(), MS);
    *fleet.behaviour(addrs[0]).fails.lock().unwrap() = Some(Failure::ConnectionLost);
    fleet
        .behaviour(addrs[1])
        .connecting
        .store(true, Ordering::SeqCst);
    let client = Balanced::builder(addrs.clone(), fleet.maker())
        .health(HealthConfig::new().consecutive_failures(1000))
        .start()
        .unwrap();
    tokio::time::sleep(MS).await;
    for i in 0..20 {
        let err = client.call(i).await.unwrap_err();
        assert!(
            matches!(err, BalanceError::Endpoint { attempts: 1, sent: true, endpoint, .. } if endpoint == addrs[0]),
            "{err}"
        );
        assert_eq!(err.failure(), Some(Failure::ConnectionLost));
        let (by, echo) = client.call_idempotent(i).await.expect("retried");
        assert_eq!((by, echo), (addrs[1], i));
    }
    assert_eq!(
        fleet.calls(addrs[1]),
        20,
        "only the idempotent calls were retried"
    );
}

#[tokio::test(start_paused = true)]
async fn in_a_total_outage_attempts_stay_within_one_plus_the_budget() {
    let addrs: Vec<SocketAddr> = (0..5).map(addr).collect();
    let fleet = Fleet::with(addrs.clone(), MS);
    for a in &addrs {
        *fleet.behaviour(*a).fails.lock().unwrap() = Some(Failure::Unreachable);
    }
    let budget = BudgetConfig::new();
    let client = Balanced::builder(addrs.clone(), fleet.maker())
        .seed(4)
        .budget(budget.clone())
        .start()
        .unwrap();
    tokio::time::sleep(MS).await;
    let requests = 2000u32;
    let mut failed = 0;
    for i in 0..requests {
        let err = client.call(i).await.unwrap_err();
        assert!(!err.was_sent(), "{err}");
        failed += 1;
    }
    let attempts: usize = addrs.iter().map(|a| fleet.calls(*a)).sum();
    let allowed = f64::from(requests) + budget.allowance(u64::from(requests));
    assert_eq!(failed, requests);
    assert!(
        attempts as f64 <= allowed,
        "{attempts} attempts for {requests} requests"
    );
    assert_eq!(client.stats().totals.attempts as usize, attempts);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_ends_a_call_on_a_silent_endpoint_as_maybe_sent() {
    let fleet = Fleet::with([addr(0)], MS);
    fleet
        .behaviour(addr(0))
        .silent
        .store(true, Ordering::SeqCst);
    let client = Balanced::builder(vec![addr(0)], fleet.maker())
        .timeout(MS * 250)
        .start()
        .unwrap();
    tokio::time::sleep(MS).await;
    let started = Instant::now();
    let err = client.call(1).await.unwrap_err();
    assert!(
        matches!(
            err,
            BalanceError::Timeout {
                attempts: 1,
                sent: true,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(started.elapsed(), MS * 250);
    // The dropped attempt was completed as a timeout of the endpoint: nothing is left in
    // flight, and it counts against the endpoint.
    let stats = client.stats();
    let endpoint = stats.endpoint(addr(0)).unwrap();
    assert_eq!((endpoint.in_flight, endpoint.failures), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_that_misses_deadlines_is_ejected_and_slowed() {
    // A silent endpoint (no error, no answer) under a client with no timeout of its own:
    // only the balancer's deadline tells, and it must count as the endpoint's timeout.
    let addrs: Vec<SocketAddr> = (0..3).map(addr).collect();
    let fleet = Fleet::with(addrs.clone(), MS);
    fleet
        .behaviour(addrs[0])
        .silent
        .store(true, Ordering::SeqCst);
    let client = Balanced::builder(addrs.clone(), fleet.maker())
        .seed(9)
        .timeout(MS * 100)
        .health(HealthConfig::new().consecutive_failures(1))
        .start()
        .unwrap();
    tokio::time::sleep(MS).await;
    let mut timeouts = 0;
    for i in 0..200 {
        if client.call(i).await.is_err() {
            timeouts += 1;
        }
    }
    let stats = client.stats();
    let silent = stats.endpoint(addrs[0]).unwrap();
    assert!(
        matches!(silent.state, crate::EndpointState::Ejected { .. }),
        "{stats:?}"
    );
    assert_eq!(
        timeouts, 1,
        "ejected at its first missed deadline: {stats:?}"
    );
    assert_eq!(silent.failures, 1);
    assert!(
        silent.rtt >= MS * 90,
        "seen about as slow as its deadline (decayed since): {stats:?}"
    );
    // Ejected: the next call goes elsewhere and is answered at once.
    let early = tokio::time::timeout(MS * 10, client.call(1000)).await;
    assert!(early.is_ok(), "the ejected endpoint is not picked");
}

/// A resolver whose answer the test changes, recording when it was asked.
#[derive(Debug, Clone)]
struct Scripted {
    answer: Arc<Mutex<io::Result<Vec<SocketAddr>>>>,
    asked: Arc<Mutex<Vec<Instant>>>,
    ttl: Option<Duration>,
}

impl Resolver for Scripted {
    async fn resolve(&self, _host: &str, _port: u16) -> io::Result<Resolution> {
        self.asked.lock().unwrap().push(Instant::now());
        let answer = match &*self.answer.lock().unwrap() {
            Ok(addrs) => Ok(Resolution::new(addrs.clone())),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        };
        answer.map(|r| match self.ttl {
            Some(ttl) => r.ttl(ttl),
            None => r,
        })
    }
}

fn active(client: &Balanced<Fake>) -> Vec<SocketAddr> {
    let mut addrs: Vec<SocketAddr> = client
        .stats()
        .endpoints
        .into_iter()
        .filter(|(_, s)| s.state != crate::EndpointState::Draining)
        .map(|(a, _)| a)
        .collect();
    addrs.sort();
    addrs
}

#[tokio::test(start_paused = true)]
async fn dns_changes_are_followed_and_the_minimum_ttl_holds() {
    let fleet = Fleet::with((0..4).map(addr), MS);
    let resolver = Scripted {
        answer: Arc::new(Mutex::new(Ok(vec![addr(0), addr(1)]))),
        asked: Arc::default(),
        ttl: Some(Duration::from_secs(1)),
    };
    let dns = Dns::new("kv.test", 7000)
        .min_ttl(Duration::from_secs(5))
        .resolver(resolver.clone());
    let client = started(&fleet, dns, 6).await;
    assert_eq!(active(&client), [addr(0), addr(1)]);
    *resolver.answer.lock().unwrap() = Ok(vec![addr(1), addr(2), addr(3)]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        active(&client),
        [addr(0), addr(1)],
        "the 1 s TTL is below the 5 s minimum"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(active(&client), [addr(1), addr(2), addr(3)]);
    // A failed answer keeps the set; the next good one applies.
    *resolver.answer.lock().unwrap() = Err(io::Error::other("SERVFAIL"));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(active(&client), [addr(1), addr(2), addr(3)]);
    *resolver.answer.lock().unwrap() = Ok(vec![addr(3)]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(active(&client), [addr(3)]);
    let asked = resolver.asked.lock().unwrap().clone();
    assert!(asked.len() >= 4, "{asked:?}");
    for pair in asked.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_secs(5), "{asked:?}");
    }
}

#[test]
fn connections_have_no_max_age_by_default() {
    let builder = Balanced::builder(vec![addr(0)], Fleet::default().maker());
    assert!(
        format!("{builder:?}").contains("max_age: None"),
        "{builder:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn clients_are_replaced_after_their_jittered_max_age() {
    let addrs: Vec<SocketAddr> = (0..4).map(addr).collect();
    let fleet = Fleet::with(addrs.clone(), MS);
    let age = Duration::from_secs(60);
    let client = Balanced::builder(addrs.clone(), fleet.maker())
        .seed(9)
        .max_connection_age(age)
        .max_age_jitter(0.5)
        .start()
        .unwrap();
    tokio::time::sleep(MS).await;
    let first = fleet.made.lock().unwrap().len();
    assert_eq!(first, 4);
    tokio::time::sleep(age / 2 - MS * 10).await;
    assert_eq!(
        fleet.made.lock().unwrap().len(),
        4,
        "none before half the age"
    );
    tokio::time::sleep(age / 2 + MS * 20).await;
    let made = fleet.made.lock().unwrap().clone();
    assert_eq!(made.len(), 8, "each replaced once: {made:?}");
    let mut renewals: Vec<Instant> = made[4..].iter().map(|(_, at)| *at).collect();
    renewals.sort();
    renewals.dedup();
    assert!(renewals.len() > 1, "the jitter spreads them: {renewals:?}");
    // Every call still answers, and the old clients were closed once replaced.
    let answered = load(&client, 100, 4).await;
    assert_eq!(answered.values().sum::<u32>(), 100);
    assert_eq!(active(&client), addrs);
    assert!(client.stats().endpoints.len() == 4, "the old ones drained");
}

/// An mpsc receiver as a stream.
fn tokio_stream<T: Send + 'static>(
    rx: mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|t| (t, rx)) }).boxed()
}
