//! balance: one client over five servers, one of them 20x slower, through beamline's
//! `Balanced` (P2C over PeakEWMA) beside tower's `balance::p2c::Balance` with
//! `PeakEwmaDiscover`, and round-robin as the baseline; then the reconnect herd of 200
//! balanced clients when all five servers restart.
//!
//! Equal work, same run, same servers:
//! - **Servers**: five beamline-servers answering beamline's wire format with each request's
//!   own bytes (`beamline_examples::matrix::balanced::Fleet`), each behind its own
//!   beamline-chaos proxy. The proxies add the round trip: 1 ms on the way back for every
//!   server (`healthy`), 20 ms for the first one (`one-slow`), nothing (`throughput`).
//! - **Endpoints**: every strategy gets its own five `beamline::Client`s, built the same way:
//!   one multiplexed TCP connection each (`TCP_NODELAY`, request ids, 256 in flight, a 1 s
//!   request timeout), on the shared two-worker runtime.
//! - **beamline**: `Balanced` with its defaults (decay 10 s, first estimate 1 ms, health and
//!   budget defaults, a 30 s deadline per call), shared by the callers as clones.
//! - **tower-p2c-peak-ewma**: `Balance::new(PeakEwmaDiscover::new(ServiceList::new(clients),
//!   1 ms, 10 s, CompleteOnResponse))` — the same decay and first estimate — behind
//!   `Buffer` (bound 1024: how tower users share a `Balance` between tasks) and a 30 s
//!   `Timeout`, the client's `tower::Service` impl under it.
//! - **round-robin**: the five clients taken in turn (an atomic counter).
//! - **Load**: 64 callers, each sending unique 8-byte requests back to back, every reply
//!   checked against its request; 150 requests per caller per round, 12 rounds per
//!   strategy (`BEAMLINE_BALANCE_BENCH_ROUNDS`) after a warm-up round, strategies taking
//!   turns (the order rotates each round). Latency figures are per-round percentiles, their
//!   mean over rounds with a 95% t-interval; throughput is requests/s per round.
//!
//! Groups (in `target/beamline-bench/balance.json`): `balance/p99-one-slow` and
//! `balance/p99.9-one-slow` (with `all-healthy`: beamline's own p99 with every server
//! healthy, for the 1.5x goal), `balance/p99-healthy`, `balance/throughput-healthy` (no
//! added latency: the balancers' own cost). The herd (`balance-herd.json` and
//! `sections/balance.md`): peak over mean connects per 100 ms, at the proxies, after all
//! five servers restart under 200 balanced clients (1,000 connections) whose reconnect
//! backoff is fully jittered, beside the same clients without jitter.
//!
//! Not criterion (distributions and a herd). Run alone with
//! `cargo bench -p beamline-benches --bench balance`.
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use beamline::balance::Balanced;
use beamline::chaos::{Direction, Fault};
use beamline::reconnect::{BackoffConfig, Jitter};
use beamline::{BuildError, Client};
use beamline_benches::{
    External, Sampled, Summary, selected, write_external, write_sampled, write_section,
};
use beamline_examples::demo::{WINDOW, peak_and_mean};
use beamline_examples::matrix::balanced::Fleet;
use bytes::Bytes;
use tokio::runtime::Runtime;
use tokio::time::Instant;
use tower::balance::p2c::Balance;
use tower::buffer::Buffer;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PeakEwmaDiscover};
use tower::timeout::Timeout;
use tower::{BoxError, Service, ServiceExt};

const CALLERS: usize = 64;
const PER_CALLER: usize = 150;
/// Rounds per strategy after the warm-up (`BEAMLINE_BALANCE_BENCH_ROUNDS` overrides).
const ROUNDS: usize = 12;
const BASE: Duration = Duration::from_millis(1);
const SLOW: Duration = Duration::from_millis(20);
const DECAY: Duration = Duration::from_secs(10);
const DEADLINE: Duration = Duration::from_secs(30);
const TOWER_VERSION: &str = "0.5.3";
const FUNCTIONS: [&str; 3] = ["beamline", "tower-p2c-peak-ewma", "round-robin"];

type Endpoint = Client<Bytes, Bytes>;
type TowerBalance = Timeout<
    Buffer<
        Bytes,
        <Balance<PeakEwmaDiscover<ServiceList<Vec<Endpoint>>>, Bytes> as Service<Bytes>>::Future,
    >,
>;

/// One strategy over its own five clients.
#[derive(Clone)]
enum Strategy {
    Beamline(Balanced<Endpoint>),
    Tower(TowerBalance),
    RoundRobin(Arc<(Vec<Endpoint>, AtomicUsize)>),
}

impl Strategy {
    async fn call(&mut self, request: Bytes) -> Result<Bytes, BoxError> {
        match self {
            Strategy::Beamline(b) => Ok(b.call(request).await?),
            Strategy::Tower(t) => t.ready().await?.call(request).await,
            Strategy::RoundRobin(rr) => {
                let i = rr.1.fetch_add(1, Ordering::Relaxed) % rr.0.len();
                Ok(rr.0[i].call(request).await?)
            }
        }
    }
}

/// One endpoint's client, the same for every strategy.
async fn endpoint(addr: SocketAddr) -> Result<Endpoint, BuildError> {
    Client::builder(addr)
        .timeout(Duration::from_secs(1))
        .connect()
        .await
}

async fn strategies(addrs: &[SocketAddr], seed: u64) -> [Strategy; 3] {
    let beamline = Balanced::builder(addrs.to_vec(), endpoint)
        .name("bench")
        .timeout(DEADLINE)
        .seed(seed)
        .start()
        .unwrap();
    let mut tower_clients = Vec::new();
    let mut rr_clients = Vec::new();
    for addr in addrs {
        tower_clients.push(endpoint(*addr).await.unwrap());
        rr_clients.push(endpoint(*addr).await.unwrap());
    }
    let discover = PeakEwmaDiscover::new::<Bytes>(
        ServiceList::new::<Bytes>(tower_clients),
        BASE,
        DECAY,
        CompleteOnResponse::default(),
    );
    let tower = Timeout::new(Buffer::new(Balance::new(discover), 1024), DEADLINE);
    [
        Strategy::Beamline(beamline),
        Strategy::Tower(tower),
        Strategy::RoundRobin(Arc::new((rr_clients, AtomicUsize::new(0)))),
    ]
}

/// One round: every caller's requests back to back; every latency, and the round's time.
async fn round(strategy: Strategy, round: usize) -> (Vec<Duration>, Duration) {
    let started = Instant::now();
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let mut s = strategy.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(PER_CALLER);
                for i in 0..PER_CALLER {
                    let tag = ((round as u64) << 40) | ((caller as u64) << 20) | i as u64;
                    let request = Bytes::copy_from_slice(&tag.to_be_bytes());
                    let sent = Instant::now();
                    let reply = s.call(request.clone()).await.unwrap();
                    latencies.push(sent.elapsed());
                    assert_eq!(reply, request, "its own reply");
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::with_capacity(CALLERS * PER_CALLER);
    for c in callers {
        all.extend(c.await.unwrap());
    }
    (all, started.elapsed())
}

/// `BEAMLINE_BALANCE_BENCH_ROUNDS`, else [`ROUNDS`]; at least 2 (an interval needs two).
fn rounds() -> usize {
    std::env::var("BEAMLINE_BALANCE_BENCH_ROUNDS").map_or(ROUNDS, |v| {
        v.parse::<usize>()
            .unwrap_or_else(|_| panic!("BEAMLINE_BALANCE_BENCH_ROUNDS={v} is not a number"))
            .max(2)
    })
}

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1e3
}

/// Per strategy and round: p99, p99.9, requests/s.
type Figures = Vec<Vec<(f64, f64, f64)>>;

/// Runs a scenario: warm-up, then rounds in turns.
fn scenario(rt: &Runtime, fleet: &Fleet, name: &str, seed: u64) -> Figures {
    let rounds = rounds();
    let set = rt.block_on(strategies(&fleet.addrs(), seed));
    let mut figures: Figures = vec![Vec::with_capacity(rounds); set.len()];
    for s in &set {
        rt.block_on(round(s.clone(), 0));
    }
    for r in 0..rounds {
        for k in 0..set.len() {
            let i = (r + k) % set.len();
            let (mut latencies, took) = rt.block_on(round(set[i].clone(), r + 1));
            latencies.sort_unstable();
            let rate = latencies.len() as f64 / took.as_secs_f64();
            figures[i].push((
                percentile_ms(&latencies, 99.0),
                percentile_ms(&latencies, 99.9),
                rate,
            ));
        }
    }
    for (i, f) in FUNCTIONS.iter().enumerate() {
        let mean = |pick: fn(&(f64, f64, f64)) -> f64| {
            figures[i].iter().map(pick).sum::<f64>() / figures[i].len() as f64
        };
        println!(
            "{name:<12} {f:<22} p99 {:>8.3} ms  p99.9 {:>8.3} ms  {:>9.0} req/s",
            mean(|x| x.0),
            mean(|x| x.1),
            mean(|x| x.2)
        );
    }
    if let Strategy::Beamline(b) = &set[0] {
        b.close();
    }
    figures
}

/// Every node's proxy adds `base` on the way back, the first one `first`.
fn set_latency(fleet: &Fleet, first: Duration, base: Duration) {
    for (i, node) in fleet.nodes.iter().enumerate() {
        node.proxy.clear_all();
        let delay = if i == 0 { first } else { base };
        if !delay.is_zero() {
            node.proxy
                .apply(Direction::Downstream, Fault::latency(delay));
        }
    }
}

fn sampled(
    group: &str,
    function: &str,
    metric: &'static str,
    samples: Vec<f64>,
    higher: bool,
) -> Sampled {
    Sampled {
        group: group.to_owned(),
        function: function.to_owned(),
        metric,
        samples,
        summary: Summary::Mean,
        higher_is_better: higher,
    }
}

/// The latency and throughput groups.
fn balancers(rt: &Runtime) {
    let fleet = rt
        .block_on(Fleet::start(5, Duration::ZERO, 19, false))
        .unwrap();
    set_latency(&fleet, BASE, BASE);
    let healthy = scenario(rt, &fleet, "healthy", 1);
    set_latency(&fleet, SLOW, BASE);
    let slow = scenario(rt, &fleet, "one-slow", 2);
    set_latency(&fleet, Duration::ZERO, Duration::ZERO);
    let fast = scenario(rt, &fleet, "throughput", 3);
    rt.block_on(fleet.shutdown());

    let mut results = Vec::new();
    let column = |f: &Figures, i: usize, pick: fn(&(f64, f64, f64)) -> f64| -> Vec<f64> {
        f[i].iter().map(pick).collect()
    };
    for (i, function) in FUNCTIONS.iter().enumerate() {
        results.push(sampled(
            "balance/p99-one-slow",
            function,
            "ms",
            column(&slow, i, |x| x.0),
            false,
        ));
        results.push(sampled(
            "balance/p99.9-one-slow",
            function,
            "ms",
            column(&slow, i, |x| x.1),
            false,
        ));
        results.push(sampled(
            "balance/p99-healthy",
            function,
            "ms",
            column(&healthy, i, |x| x.0),
            false,
        ));
        results.push(sampled(
            "balance/throughput-healthy",
            function,
            "requests/s",
            column(&fast, i, |x| x.2),
            true,
        ));
    }
    results.push(sampled(
        "balance/p99-one-slow",
        "all-healthy",
        "ms",
        column(&healthy, 0, |x| x.0),
        false,
    ));
    let path = write_sampled("balance", &results).unwrap();
    println!("written to {}", path.display());
}

/// Balanced clients over the fleet: their reconnects after every server restarts, counted
/// at the proxies per 100 ms from the restart on. Returns (peak / mean, windows).
async fn herd(clients: usize, jitter: Jitter, seed: u64) -> (f64, Vec<u64>) {
    let mut fleet = Fleet::start(5, Duration::ZERO, seed, false).await.unwrap();
    let addrs = fleet.addrs();
    let backoff =
        BackoffConfig::exponential(Duration::from_millis(500), 2.0, Duration::from_secs(2))
            .jitter(jitter);
    let mut balanced = Vec::with_capacity(clients);
    for c in 0..clients {
        let backoff = backoff.clone();
        let make = move |addr: SocketAddr| {
            let backoff = backoff.clone();
            async move {
                let reconnect = beamline::reconnect::ReconnectConfig::new(
                    beamline::reconnect::OfflinePolicy::FailFast,
                )
                .backoff(backoff)
                .seed(seed ^ ((c as u64) << 8) ^ u64::from(addr.port()));
                Client::builder(addr).reconnect(reconnect).connect().await
            }
        };
        balanced.push(
            Balanced::builder(addrs.clone(), make)
                .seed(c as u64)
                .start()
                .unwrap(),
        );
    }
    let all_up = |b: &[Balanced<Endpoint>]| {
        b.iter().all(|c| {
            let s = c.stats();
            s.endpoints.len() == 5
                && s.endpoints
                    .iter()
                    .all(|(_, e)| e.state == beamline::balance::EndpointState::Healthy)
        })
    };
    while !all_up(&balanced) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for node in &mut fleet.nodes {
        node.proxy.refuse_new(true).unwrap();
        node.proxy.reset_all();
        node.kill();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let accepted = |fleet: &Fleet| {
        fleet
            .nodes
            .iter()
            .map(|n| n.proxy.stats().accepted)
            .sum::<u64>()
    };
    for node in &mut fleet.nodes {
        node.restart().unwrap();
        node.proxy.refuse_new(false).unwrap();
    }
    let mut last = accepted(&fleet);
    let mut windows = Vec::new();
    let mut ticks = tokio::time::interval(WINDOW);
    ticks.tick().await;
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        ticks.tick().await;
        let now = accepted(&fleet);
        windows.push(now - last);
        last = now;
    }
    let (peak, mean) = peak_and_mean(&windows);
    for b in &balanced {
        b.close();
    }
    drop(balanced);
    fleet.shutdown().await;
    (peak as f64 / mean.max(f64::MIN_POSITIVE), windows)
}

fn herds(rt: &Runtime) {
    const CLIENTS: usize = 200;
    let (full, full_windows) = rt.block_on(herd(CLIENTS, Jitter::Full, 5));
    let (none, none_windows) = rt.block_on(herd(CLIENTS, Jitter::None, 6));
    println!(
        "herd: peak/mean {full:.2} with full jitter, {none:.2} without; windows {full_windows:?} / {none_windows:?}"
    );
    let row = |function: &str, amount| External {
        group: "balance/herd-peak-over-mean".into(),
        function: function.into(),
        metric: "peak/mean",
        amount,
        higher_is_better: false,
    };
    write_external(
        "balance-herd",
        &[row("beamline", full), row("no-jitter", none)],
    )
    .unwrap();
    let mut md = String::new();
    writeln!(md, "### balance: the herd of five servers restarting").unwrap();
    writeln!(md).unwrap();
    writeln!(
        md,
        "{CLIENTS} `Balanced` clients over 5 servers (1,000 connections, each a `beamline::Client` \
         reconnecting 500 ms doubling to 2 s), every server killed for 2 s and restarted; connects \
         counted at the proxies per 100 ms for 4 s from the restart."
    )
    .unwrap();
    writeln!(md).unwrap();
    // The ratio is over the busy span (the demo's definition): a herd without jitter is
    // over in two windows, so its ratio alone hides it; the peak and the span tell.
    let span = |w: &[u64]| {
        let first = w.iter().position(|&a| a > 0).unwrap_or(0);
        w.iter().rposition(|&a| a > 0).map_or(0, |l| l - first + 1)
    };
    let peak = |w: &[u64]| w.iter().copied().max().unwrap_or(0);
    writeln!(
        md,
        "| backoff jitter | peak connects per 100 ms | busy windows | peak / mean | goal |"
    )
    .unwrap();
    writeln!(md, "|---|---|---|---|---|").unwrap();
    let verdict = if full <= 2.0 { "met" } else { "missed" };
    writeln!(
        md,
        "| full (beamline's default) | {} | {} | {full:.2} | <= 2: {verdict} |",
        peak(&full_windows),
        span(&full_windows)
    )
    .unwrap();
    writeln!(
        md,
        "| none | {} | {} | {none:.2} | |",
        peak(&none_windows),
        span(&none_windows)
    )
    .unwrap();
    writeln!(md).unwrap();
    writeln!(
        md,
        "Balancer peer: tower {TOWER_VERSION} (`balance::p2c::Balance` + `PeakEwmaDiscover`)."
    )
    .unwrap();
    write_section("balance", &md).unwrap();
}

fn main() {
    let rt = beamline_benches::runtime();
    let groups = [
        "balance/p99-one-slow",
        "balance/p99.9-one-slow",
        "balance/p99-healthy",
        "balance/throughput-healthy",
    ];
    if groups.iter().any(|g| selected(g, &FUNCTIONS)) {
        balancers(&rt);
    }
    if selected("balance/herd-peak-over-mean", &["beamline", "no-jitter"]) {
        herds(&rt);
    }
}
