use std::collections::HashMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::budget::BudgetConfig;
use crate::health::HealthConfig;

const MS: Duration = Duration::from_millis(1);

fn seeded(seed: u64) -> Balancer<&'static str> {
    Balancer::new(BalancerConfig::new().seed(seed), Instant::now()).unwrap()
}

fn ready(_: &&str) -> Readiness {
    Readiness::Ready
}

/// Inserts `names` at `now`, returning their ids by name.
fn fill(
    b: &mut Balancer<&'static str>,
    names: &[&'static str],
    now: Instant,
) -> HashMap<&'static str, EndpointId> {
    names.iter().map(|n| (*n, b.insert(n, now))).collect()
}

#[test]
fn p2c_samples_two_with_the_seeded_generator_and_takes_the_lower_load() {
    let t0 = Instant::now();
    let names = ["a", "b", "c", "d", "e"];
    let mut b = seeded(42);
    let ids = fill(&mut b, &names, t0);
    // Give each endpoint a distinct round-trip estimate: a is the fastest.
    for (i, name) in names.iter().enumerate() {
        let pick = b.retry(t0, &[], |t| {
            if t == name {
                Readiness::Ready
            } else {
                Readiness::Unavailable
            }
        });
        let pick = pick.expect("the one candidate");
        assert_eq!(pick.id(), ids[name]);
        b.complete(pick, Outcome::Success, t0 + MS * (i as u32 + 1));
    }
    // Replay the generator beside the balancer: every pick is the lower-cost of the two
    // candidates the seed draws, and the sequence repeats under the same seed.
    let mut rng = SplitMix64::new(42);
    let mut seen = Vec::new();
    for _ in 0..200 {
        let now = t0 + MS * 10;
        let costs: Vec<f64> = b
            .endpoints(now, ready)
            .iter()
            .map(|(_, _, s)| s.load)
            .collect();
        let x = below(&mut rng, 5) as usize;
        let mut y = below(&mut rng, 4) as usize;
        if y >= x {
            y += 1;
        }
        let want = if costs[x] <= costs[y] { x } else { y };
        let pick = b.pick(now, ready).expect("five candidates");
        assert_eq!(pick.id(), ids[names[want]]);
        seen.push(pick.id());
        // Keep the loads moving: every third request stays in flight.
        if seen.len() % 3 != 0 {
            b.complete(pick, Outcome::Success, now);
        }
    }
    assert_ne!(seen.iter().filter(|id| **id == ids["a"]).count(), 0);
}

#[test]
fn the_same_seed_and_inputs_give_the_same_picks() {
    let run = |seed| {
        let t0 = Instant::now();
        let mut b = seeded(seed);
        let _ = fill(&mut b, &["a", "b", "c", "d"], t0);
        (0..100)
            .map(|i| {
                let now = t0 + MS * i;
                let pick = b.pick(now, ready).expect("candidates");
                let name = *b.get(pick.id()).expect("in the table");
                if i % 2 == 0 {
                    b.complete(pick, Outcome::Success, now + MS * (i % 7));
                }
                name
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

/// Simulates `requests` requests, `concurrency` in flight at a time, each taking its
/// endpoint's round trip; returns how many each endpoint got.
fn simulate(
    b: &mut Balancer<&'static str>,
    rtts: &HashMap<&str, Duration>,
    requests: usize,
    concurrency: usize,
) -> HashMap<&'static str, usize> {
    let t0 = Instant::now();
    let mut now = t0;
    let mut open: Vec<(Instant, Pick)> = Vec::new();
    let mut counts = HashMap::new();
    for _ in 0..requests {
        while open.len() >= concurrency {
            // The earliest to finish finishes.
            open.sort_by_key(|(end, _)| *end);
            let (end, pick) = open.remove(0);
            now = now.max(end);
            b.complete(pick, Outcome::Success, now);
        }
        let pick = b.pick(now, ready).expect("candidates");
        let name = *b.get(pick.id()).expect("in the table");
        *counts.entry(name).or_default() += 1;
        open.push((now + rtts[name], pick));
    }
    counts
}

#[test]
fn an_endpoint_twenty_times_slower_gets_a_small_share() {
    let t0 = Instant::now();
    let mut b = Balancer::new(BalancerConfig::new().seed(1).default_rtt(MS), t0).unwrap();
    let names = ["a", "b", "c", "d", "slow"];
    let _ = fill(&mut b, &names, t0);
    let rtts: HashMap<&str, Duration> = names
        .iter()
        .map(|n| (*n, if *n == "slow" { MS * 20 } else { MS }))
        .collect();
    let counts = simulate(&mut b, &rtts, 20_000, 32);
    let slow = counts.get("slow").copied().unwrap_or(0);
    assert!(
        slow * 100 < 20_000,
        "the slow endpoint got {slow} of 20000: {counts:?}"
    );
    for n in ["a", "b", "c", "d"] {
        assert!(counts[n] > 4_000, "{counts:?}");
    }
}

#[test]
fn an_endpoint_is_a_candidate_the_moment_it_reports_ready() {
    // tower#824: an endpoint that started pending was never promoted.
    let t0 = Instant::now();
    let mut b = seeded(3);
    let ids = fill(&mut b, &["up", "late"], t0);
    let late_ready = std::cell::Cell::new(false);
    let readiness = |t: &&str| match *t {
        "late" if !late_ready.get() => Readiness::Unavailable,
        _ => Readiness::Ready,
    };
    for _ in 0..20 {
        let pick = b.pick(t0, readiness).expect("up");
        assert_eq!(pick.id(), ids["up"]);
        // Keep "up" busy so that "late" wins as soon as it is a candidate.
        let _ = pick;
    }
    late_ready.set(true);
    let pick = b.pick(t0, readiness).expect("two candidates");
    assert_eq!(pick.id(), ids["late"]);
}

#[test]
fn connecting_endpoints_are_picked_only_when_none_is_ready() {
    let t0 = Instant::now();
    let mut b = seeded(5);
    let ids = fill(&mut b, &["ready", "connecting"], t0);
    let mut up = true;
    for _ in 0..50 {
        let readiness = |t: &&str| match *t {
            "ready" if up => Readiness::Ready,
            "ready" => Readiness::Unavailable,
            _ => Readiness::Connecting,
        };
        let pick = b.pick(t0, readiness).expect("a candidate");
        let want = if up { ids["ready"] } else { ids["connecting"] };
        assert_eq!(pick.id(), want);
        b.complete(pick, Outcome::Success, t0);
        up = !up;
    }
    assert!(b.pick(t0, |_| Readiness::Unavailable).is_none());
}

#[test]
fn a_removed_endpoint_takes_no_new_request_and_drains() {
    // tower#856: requests were routed to an endpoint after discovery removed it.
    let t0 = Instant::now();
    let mut b = seeded(9);
    let ids = fill(&mut b, &["a", "b", "c"], t0);
    let mut held = Vec::new();
    while held.iter().filter(|p: &&Pick| p.id() == ids["b"]).count() < 3 {
        held.push(b.pick(t0, ready).expect("candidates"));
    }
    assert_eq!(b.remove(ids["b"]), Some(Removed::Draining));
    assert_eq!(b.len(), 2);
    for _ in 0..500 {
        let pick = b.pick(t0, ready).expect("a and c");
        assert_ne!(pick.id(), ids["b"]);
        b.complete(pick, Outcome::Success, t0);
    }
    let retry = b.retry(t0, &[ids["a"], ids["c"]], ready);
    assert_eq!(
        retry,
        Err(NoRetry::NoEndpoint),
        "not even a retry goes to it"
    );
    // Its in-flight requests end; the last hands it back.
    let mut returned = Vec::new();
    for pick in held {
        returned.extend(b.complete(pick, Outcome::Success, t0));
    }
    assert_eq!(returned, ["b"]);
    assert_eq!(b.get(ids["b"]), None);
    assert_eq!(b.remove(ids["b"]), None);
    // Its slot is reused under a new id.
    let d = b.insert("d", t0);
    assert_ne!(d, ids["b"]);
    assert_eq!(b.get(d), Some(&"d"));
    assert_eq!(b.remove(ids["a"]), Some(Removed::Now("a")));
}

#[test]
fn a_retry_never_goes_back_to_an_endpoint_it_tried() {
    let t0 = Instant::now();
    let config = BalancerConfig::new()
        .seed(11)
        .health(HealthConfig::new().consecutive_failures(1000))
        .budget(BudgetConfig::new().ratio(2.0));
    let mut b = Balancer::new(config, t0).unwrap();
    let ids = fill(&mut b, &["a", "b", "c"], t0);
    for _ in 0..100 {
        let first = b.pick(t0, ready).expect("candidates");
        let mut tried = vec![first.id()];
        b.complete(first, Outcome::Failed(Failure::Unreachable), t0);
        let second = b.retry(t0, &tried, ready).expect("budget and endpoints");
        assert!(!tried.contains(&second.id()));
        tried.push(second.id());
        b.complete(second, Outcome::Success, t0);
        let third = b.retry(t0, &tried, ready).expect("the last one");
        assert!(!tried.contains(&third.id()));
        tried.push(third.id());
        b.complete(third, Outcome::Success, t0);
        assert_eq!(b.retry(t0, &tried, ready), Err(NoRetry::NoEndpoint));
    }
    assert_eq!(b.len(), ids.len());
}

#[test]
fn the_budget_refuses_retries_past_its_share() {
    let t0 = Instant::now();
    let config = BalancerConfig::new()
        .seed(1)
        .health(HealthConfig::new().consecutive_failures(1000))
        .budget(BudgetConfig::new().ratio(0.2).min_per_sec(0));
    let mut b = Balancer::new(config, t0).unwrap();
    let _ = fill(&mut b, &["a", "b", "c"], t0);
    let mut retries = 0;
    for _ in 0..100 {
        let pick = b.pick(t0, ready).expect("candidates");
        let tried = [pick.id()];
        b.complete(pick, Outcome::Failed(Failure::Unreachable), t0);
        if let Ok(retry) = b.retry(t0, &tried, ready) {
            retries += 1;
            b.complete(retry, Outcome::Failed(Failure::Unreachable), t0);
        }
    }
    assert_eq!(retries, 20);
    let stats = b.stats(t0);
    assert_eq!(
        (stats.requests, stats.retries, stats.retries_refused),
        (100, 20, 80)
    );
    assert_eq!(stats.attempts, 120);
}

#[test]
fn an_ejected_endpoint_gets_nothing_until_its_one_probe_succeeds() {
    let t0 = Instant::now();
    let health = HealthConfig::new()
        .consecutive_failures(2)
        .base_ejection(MS * 1000);
    let mut b = Balancer::new(BalancerConfig::new().seed(2).health(health), t0).unwrap();
    let ids = fill(&mut b, &["a", "b", "c", "bad"], t0);
    let only_bad = |t: &&str| {
        if *t == "bad" {
            Readiness::Ready
        } else {
            Readiness::Unavailable
        }
    };
    // `n` requests from `from`, every one to "bad" failing; returns how many went there.
    let run = |b: &mut Balancer<&'static str>, from: Instant, n: u32| {
        let mut to_bad = 0;
        for i in 0..n {
            let now = from + Duration::from_micros(u64::from(i));
            let pick = b.pick(now, ready).expect("candidates");
            if *b.get(pick.id()).expect("known") == "bad" {
                to_bad += 1;
                b.complete(pick, Outcome::Failed(Failure::ConnectionLost), now);
            } else {
                b.complete(pick, Outcome::Success, now + MS);
            }
        }
        to_bad
    };
    for _ in 0..2 {
        let pick = b.pick(t0, only_bad).expect("bad");
        b.complete(pick, Outcome::Failed(Failure::ConnectionLost), t0);
    }
    let state = |b: &Balancer<&'static str>| {
        b.endpoints(t0, ready)
            .into_iter()
            .find(|(id, _, _)| *id == ids["bad"])
            .map(|(_, _, s)| s.state)
    };
    assert!(matches!(state(&b), Some(EndpointState::Ejected { .. })));
    assert_eq!(run(&mut b, t0 + MS, 1000), 0, "ejected: nothing");
    // The ejection ends: its one probe goes first, fails, and it is ejected again (2 s).
    assert_eq!(run(&mut b, t0 + MS * 1001, 1000), 1, "one probe");
    assert_eq!(b.stats(t0).ejections, 2);
    assert_eq!(run(&mut b, t0 + MS * 2000, 1000), 0);
    // When the endpoint heals, its probe succeeds and it is back.
    let back = t0 + MS * 3100;
    let probe = b.pick(back, ready).expect("the probe");
    assert_eq!(probe.id(), ids["bad"]);
    assert!(probe.is_probe());
    b.complete(probe, Outcome::Success, back);
    assert_eq!(state(&b), Some(EndpointState::Healthy));
    assert_eq!(b.stats(back).ejections, 2);
}

#[test]
fn a_new_or_recovered_endpoint_starts_at_the_lowest_healthy_estimate() {
    let t0 = Instant::now();
    let health = HealthConfig::new()
        .consecutive_failures(1)
        .base_ejection(MS * 100);
    let config = BalancerConfig::new()
        .seed(4)
        .default_rtt(MS * 7)
        .health(health);
    let mut b = Balancer::new(config, t0).unwrap();
    let a = b.insert("a", t0);
    let rtt_of = |b: &Balancer<&'static str>, id, now| {
        b.endpoints(now, ready)
            .into_iter()
            .find(|(i, _, _)| *i == id)
            .map(|(_, _, s)| s.rtt)
            .expect("in the table")
    };
    assert_eq!(rtt_of(&b, a, t0), MS * 7, "the first: the default");
    let only = |name: &'static str| {
        move |t: &&str| {
            if *t == name {
                Readiness::Ready
            } else {
                Readiness::Unavailable
            }
        }
    };
    let slow = b.insert("slow", t0);
    let pick = b.pick(t0, only("slow")).expect("slow");
    b.complete(pick, Outcome::Success, t0 + MS * 30);
    let now = t0 + MS * 30;
    let c = b.insert("c", now);
    assert_eq!(
        rtt_of(&b, c, now),
        rtt_of(&b, a, now),
        "the lowest, not the slow one's"
    );
    assert!(rtt_of(&b, slow, now) >= MS * 29);
    // "a" fails and is ejected: its penalty is forgotten once its probe succeeds.
    let pick = b.pick(now, only("a")).expect("a");
    b.complete(pick, Outcome::Failed(Failure::Unreachable), now + MS * 500);
    let back = now + MS * 700;
    let probe = b.pick(back, only("a")).expect("the probe");
    assert!(probe.is_probe());
    b.complete(probe, Outcome::Success, back);
    assert_eq!(rtt_of(&b, a, back), rtt_of(&b, c, back));
}

#[derive(Debug, Clone)]
enum Op {
    Insert,
    Remove(usize),
    Pick,
    Retry(usize),
    Complete(usize, u8),
    Advance(u64),
}

#[test]
fn the_defaults_are_the_production_anchors_figures() {
    // linkerd's PeakEWMA decay, Envoy's ejection (5 in a row, 30 s x n, at most a share),
    // Finagle's budget (20% plus 10/s over 10 s).
    let c = BalancerConfig::new();
    assert_eq!(c.decay, Duration::from_secs(10));
    assert_eq!(c.health.consecutive_failures, 5);
    assert_eq!(c.health.base_ejection, Duration::from_secs(30));
    assert_eq!(c.health.max_ejected_share, 0.5);
    let finagle = BudgetConfig::new()
        .ratio(0.2)
        .min_per_sec(10)
        .window(Duration::from_secs(10));
    assert_eq!(c.budget, finagle);
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::Insert),
        1 => (0usize..8).prop_map(Op::Remove),
        4 => Just(Op::Pick),
        2 => (0usize..8).prop_map(Op::Retry),
        4 => (0usize..64, 0u8..5).prop_map(|(i, o)| Op::Complete(i, o)),
        1 => (0u64..3_000).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever happens: no pick goes to a removed endpoint, in-flight counts match the
    /// picks not yet completed, a draining endpoint comes back exactly once, and retries
    /// stay within the budget's allowance.
    #[test]
    fn the_table_keeps_its_books(ops in proptest::collection::vec(op(), 1..400)) {
        let t0 = Instant::now();
        let health = HealthConfig::new().consecutive_failures(2).base_ejection(MS * 500);
        let config = BalancerConfig::new().seed(17).health(health);
        let budget = config.budget.clone();
        let mut b: Balancer<u32> = Balancer::new(config, t0).unwrap();
        let mut now = t0;
        let mut next = 0u32;
        let mut live: Vec<EndpointId> = Vec::new();
        let mut removed: Vec<EndpointId> = Vec::new();
        let mut open: Vec<Pick> = Vec::new();
        let mut returned = 0usize;
        let mut draining = 0usize;
        for op in ops {
            match op {
                Op::Insert => {
                    live.push(b.insert(next, now));
                    next += 1;
                }
                Op::Remove(i) if !live.is_empty() => {
                    let id = live.remove(i % live.len());
                    match b.remove(id) {
                        Some(Removed::Now(_)) => returned += 1,
                        Some(Removed::Draining) => draining += 1,
                        None => prop_assert!(false, "a live endpoint was unknown"),
                    }
                    removed.push(id);
                }
                Op::Pick => open.extend(b.pick(now, |_| Readiness::Ready)),
                Op::Retry(n) => {
                    let tried: Vec<EndpointId> = live.iter().take(n).copied().collect();
                    if let Ok(pick) = b.retry(now, &tried, |_| Readiness::Ready) {
                        prop_assert!(!tried.contains(&pick.id()));
                        open.push(pick);
                    }
                }
                Op::Complete(i, o) if !open.is_empty() => {
                    let pick = open.remove(i % open.len());
                    let outcome = match o {
                        0 => Outcome::Success,
                        1 => Outcome::Cancelled,
                        2 => Outcome::Failed(Failure::Rejected),
                        3 => Outcome::Failed(Failure::Timeout),
                        _ => Outcome::Failed(Failure::Unreachable),
                    };
                    if b.complete(pick, outcome, now).is_some() {
                        returned += 1;
                    }
                }
                Op::Advance(ms) => now += Duration::from_millis(ms),
                _ => {}
            }
            for pick in &open {
                prop_assert!(removed.contains(&pick.id()) || live.contains(&pick.id()));
            }
            for (id, _, stats) in b.endpoints(now, |_| Readiness::Ready) {
                let n = open.iter().filter(|p| p.id() == id).count();
                prop_assert_eq!(stats.in_flight as usize, n);
            }
            prop_assert_eq!(b.len(), live.len());
        }
        // Over the whole run: the ratio of every request, plus the reserve once per window
        // (withdrawals expire with it).
        let stats = b.stats(now);
        let windows = 1.0 + (now - t0).as_secs_f64() / 10.0;
        let bound = budget.allowance(stats.requests) + budget.allowance(0) * windows;
        prop_assert!(stats.retries as f64 <= bound, "{} retries > {bound}", stats.retries);
        for pick in open.drain(..) {
            if b.complete(pick, Outcome::Success, now).is_some() {
                returned += 1;
            }
        }
        prop_assert_eq!(returned, removed.len(), "each removed endpoint handed back once ({} drained)", draining);
    }

    /// No pick, first or retry, ever reaches an endpoint once it was removed.
    #[test]
    fn nothing_reaches_an_endpoint_after_its_removal(
        seed in any::<u64>(),
        remove_at in 0usize..200,
    ) {
        let t0 = Instant::now();
        let mut b: Balancer<u32> = Balancer::new(BalancerConfig::new().seed(seed), t0).unwrap();
        let ids: Vec<EndpointId> = (0..4).map(|n| b.insert(n, t0)).collect();
        let mut open = Vec::new();
        for i in 0..400 {
            if i == remove_at {
                let _ = b.remove(ids[1]);
            }
            let pick = if i % 5 == 0 {
                b.retry(t0, &[ids[0]], |_| Readiness::Ready).ok()
            } else {
                b.pick(t0, |_| Readiness::Ready)
            };
            if let Some(pick) = pick {
                prop_assert!(i < remove_at || pick.id() != ids[1]);
                open.push(pick);
            }
            if i % 3 == 0 && !open.is_empty() {
                let pick = open.swap_remove(0);
                b.complete(pick, Outcome::Success, t0);
            }
        }
    }
}
