use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

const SEC: Duration = Duration::from_secs(1);

fn config() -> HealthConfig {
    HealthConfig::new()
        .consecutive_failures(3)
        .base_ejection(SEC * 10)
        .max_ejection(SEC * 25)
}

const LOST: Outcome = Outcome::Failed(Failure::ConnectionLost);

/// One request through `h` with `outcome`; the share always allows an ejection.
fn one(h: &mut Health, outcome: Outcome, now: Instant) -> Option<Transition> {
    h.poll(now);
    let ticket = h.start().expect("admitted");
    h.finish(ticket, outcome, true, &config(), now)
}

/// `n` lost connections in a row.
fn fail_n(h: &mut Health, n: usize, now: Instant) {
    for _ in 0..n {
        one(h, LOST, now);
    }
}

#[test]
fn consecutive_failures_eject_for_the_base_then_probing_starts() {
    let t0 = Instant::now();
    let mut h = Health::new(t0);
    assert_eq!(one(&mut h, LOST, t0), None);
    assert_eq!(one(&mut h, Outcome::Failed(Failure::Timeout), t0), None);
    assert_eq!(
        one(&mut h, Outcome::Failed(Failure::Unreachable), t0),
        Some(Transition::Ejected {
            duration: SEC * 10,
            ejections: 1
        })
    );
    assert_eq!(
        h.state(),
        HealthState::Ejected {
            until: t0 + SEC * 10
        }
    );
    assert_eq!(h.admission(), Admission::Refused);
    assert_eq!(h.poll(t0 + SEC * 9), None);
    assert_eq!(h.poll(t0 + SEC * 10), Some(Transition::Probing));
    assert_eq!(h.admission(), Admission::Probe);
}

#[test]
fn a_typed_error_from_the_server_is_an_answer_not_a_failure() {
    let t0 = Instant::now();
    let mut h = Health::new(t0);
    for _ in 0..10 {
        fail_n(&mut h, 2, t0);
        assert_eq!(one(&mut h, Outcome::Failed(Failure::Rejected), t0), None);
    }
    assert_eq!(h.state(), HealthState::Healthy);
    assert_eq!(h.consecutive_failures(), 0);
}

#[test]
fn probing_is_one_request_at_a_time_and_a_success_brings_full_load_back() {
    let t0 = Instant::now();
    let mut h = Health::new(t0);
    fail_n(&mut h, 3, t0);
    let back = t0 + SEC * 10;
    h.poll(back);
    let probe = h.start().expect("the probe");
    assert!(probe.is_probe());
    assert_eq!(h.start(), None, "one probe at a time");
    assert_eq!(
        h.finish(probe, Outcome::Success, true, &config(), back),
        Some(Transition::Healthy)
    );
    assert_eq!(h.admission(), Admission::Full);
}

#[test]
fn a_failed_probe_ejects_again_for_longer_up_to_the_cap() {
    let t0 = Instant::now();
    let mut h = Health::new(t0);
    fail_n(&mut h, 3, t0);
    let mut now = t0;
    let mut lengths = Vec::new();
    for _ in 0..3 {
        let HealthState::Ejected { until } = h.state() else {
            panic!("ejected")
        };
        lengths.push(until - now);
        now = until;
        assert_eq!(h.poll(now), Some(Transition::Probing));
        let probe = h.start().expect("probe");
        h.finish(probe, LOST, true, &config(), now);
    }
    assert_eq!(lengths, [SEC * 10, SEC * 20, SEC * 25], "base × n, capped");
}

#[test]
fn a_cancelled_probe_frees_the_probe_slot() {
    let t0 = Instant::now();
    let mut h = Health::new(t0);
    fail_n(&mut h, 3, t0);
    h.poll(t0 + SEC * 10);
    let probe = h.start().expect("probe");
    assert_eq!(
        h.finish(probe, Outcome::Cancelled, true, &config(), t0),
        None
    );
    assert_eq!(h.admission(), Admission::Probe);
}

#[test]
fn ejections_are_forgiven_one_per_base_of_health() {
    let t0 = Instant::now();
    let mut h = Health::new(t0);
    let mut now = t0;
    // Two ejections in a row: the second lasts 20 s.
    for _ in 0..2 {
        fail_n(&mut h, 3, now);
        let HealthState::Ejected { until } = h.state() else {
            panic!("ejected")
        };
        now = until;
        h.poll(now);
        let probe = h.start().expect("probe");
        h.finish(probe, Outcome::Success, true, &config(), now);
    }
    assert_eq!(h.ejections(), 2);
    // Healthy for 20 s: both forgiven, the next ejection is the base again.
    now += SEC * 20;
    fail_n(&mut h, 2, now);
    assert_eq!(
        one(&mut h, LOST, now),
        Some(Transition::Ejected {
            duration: SEC * 10,
            ejections: 1
        })
    );
}

#[test]
fn an_outcome_from_before_a_transition_changes_nothing() {
    let t0 = Instant::now();
    let mut h = Health::new(t0);
    let old = h.start().expect("healthy");
    fail_n(&mut h, 3, t0);
    h.poll(t0 + SEC * 10);
    // The old request succeeds while the endpoint is probing: not a probe's success.
    assert_eq!(
        h.finish(old, Outcome::Success, true, &config(), t0 + SEC * 10),
        None
    );
    assert_eq!(h.state(), HealthState::Probing);
}

#[test]
fn at_most_the_share_is_ejected_and_the_rest_keep_their_load() {
    assert!(ejection_allowed(0, 5, 0.5));
    assert!(ejection_allowed(1, 5, 0.5));
    assert!(!ejection_allowed(2, 5, 0.5));
    assert!(
        !ejection_allowed(0, 1, 0.5),
        "the only endpoint is never ejected at 50%"
    );
    assert!(!ejection_allowed(0, 10, 0.0));
    let t0 = Instant::now();
    let mut set = HealthSet::new(config()).unwrap();
    for node in 0..4 {
        set.insert(node, t0);
    }
    let fail = |set: &mut HealthSet<i32>, node| {
        let t = set.start(&node, t0).expect("admitted");
        set.finish(&node, t, LOST, t0)
    };
    for node in 0..3 {
        fail(&mut set, node);
        fail(&mut set, node);
    }
    assert!(matches!(
        fail(&mut set, 0),
        Some(Transition::Ejected { .. })
    ));
    assert!(matches!(
        fail(&mut set, 1),
        Some(Transition::Ejected { .. })
    ));
    assert_eq!(fail(&mut set, 2), Some(Transition::EjectionSkipped));
    assert_eq!(set.ejected(), 2);
    assert_eq!(set.state(&2), Some(HealthState::Healthy));
}

#[test]
fn bad_settings_are_named() {
    assert_eq!(
        HealthConfig::new().consecutive_failures(0).validate(),
        Err(HealthConfigError::ZeroFailures)
    );
    assert_eq!(
        HealthConfig::new().max_ejected_share(1.5).validate(),
        Err(HealthConfigError::Share(1.5))
    );
    assert!(matches!(
        HealthConfig::new().max_ejection(SEC).validate(),
        Err(HealthConfigError::MaxBelowBase { .. })
    ));
    assert_eq!(
        HealthConfig::new().base_ejection(Duration::ZERO).validate(),
        Err(HealthConfigError::ZeroEjection)
    );
    assert_eq!(
        HealthConfig::new().probe_successes(0).validate(),
        Err(HealthConfigError::ZeroProbes)
    );
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Success),
        Just(Outcome::Cancelled),
        Just(Outcome::Failed(Failure::Unreachable)),
        Just(Outcome::Failed(Failure::ConnectionLost)),
        Just(Outcome::Failed(Failure::Timeout)),
        Just(Outcome::Failed(Failure::Rejected)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the outcomes and their timing: an ejected endpoint admits nothing, a probing
    /// one at most one request at a time, and no ejection is longer than the cap.
    #[test]
    fn ejected_admits_nothing_probing_one_at_a_time(
        steps in proptest::collection::vec((outcome(), 0u64..15_000, any::<bool>()), 1..300)
    ) {
        let t0 = Instant::now();
        let config = config();
        let mut h = Health::new(t0);
        let mut now = t0;
        let mut open: Vec<Ticket> = Vec::new();
        for (outcome, advance_ms, finish_oldest) in steps {
            now += Duration::from_millis(advance_ms);
            h.poll(now);
            if let HealthState::Ejected { until } = h.state() {
                prop_assert!(until <= now + config.max_ejection);
                prop_assert_eq!(h.start(), None);
            }
            if let Some(t) = h.start() {
                open.push(t);
            }
            let probes = open.iter().filter(|t| t.is_probe()).count();
            prop_assert!(probes <= 1, "{probes} probes in flight");
            if !open.is_empty() {
                let t = if finish_oldest { open.remove(0) } else { open.pop().expect("open") };
                h.finish(t, outcome, true, &config, now);
            }
        }
    }
}
