//! The thundering herd, deterministic: 10,000 simulated clients with seeded generators lose
//! their server at t = 0 and it is back at t = 5 s; attempts per 100 ms window.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use beamline_reconnect::Jitter;
use beamline_reconnect::herd::{HerdConfig, JITTER_KINDS, simulate, simulate_all};

#[test]
fn without_jitter_all_ten_thousand_land_in_one_window() {
    let config = HerdConfig::default();
    let h = simulate(&config, Jitter::None).unwrap();
    assert_eq!(h.peak(), 10_000);
    let busy: Vec<(usize, u32)> = h
        .attempts
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, n)| n > 0)
        .collect();
    // Every round of retries is the whole herd in one window: at 1 s, 3 s and 5 s.
    assert_eq!(busy, [(10, 10_000), (30, 10_000), (50, 10_000)]);
    assert_eq!(h.reconnected, 10_000);
}

#[test]
fn full_and_decorrelated_jitter_keep_the_peak_within_twice_the_mean() {
    let config = HerdConfig::default();
    for jitter in [Jitter::Full, Jitter::Decorrelated] {
        let h = simulate(&config, jitter).unwrap();
        let (peak, mean) = (f64::from(h.peak()), h.mean_busy());
        assert!(
            peak <= 2.0 * mean,
            "{jitter:?}: peak {peak} > 2 x mean {mean:.1} over {} windows",
            h.busy_span().len()
        );
        assert_eq!(h.reconnected, 10_000, "{jitter:?}");
        // And far below the unjittered herd.
        assert!(h.peak() < 2_000, "{jitter:?}: peak {}", h.peak());
    }
}

#[test]
fn every_client_is_back_within_one_capped_delay_of_the_server() {
    let config = HerdConfig::default();
    for h in simulate_all(&config).unwrap() {
        assert_eq!(config.backoff_for(h.jitter).jitter_kind(), h.jitter);
        assert_eq!(h.reconnected, config.clients, "{:?}", h.jitter);
        // The last attempt is at most outage + cap (2 s): window 70 at the latest.
        assert!(
            h.attempts.len() <= 71,
            "{:?}: {}",
            h.jitter,
            h.attempts.len()
        );
        // Nobody attempts before its first delay could end (decorrelated's floor is 0.7 s).
        if h.jitter == Jitter::Decorrelated {
            assert!(h.attempts[..7].iter().all(|&n| n == 0));
        }
    }
}

#[test]
fn the_simulation_is_deterministic_under_a_seed() {
    let config = HerdConfig::default();
    let again = simulate_all(&config).unwrap();
    assert_eq!(simulate_all(&config).unwrap(), again);
    let other = HerdConfig {
        seed: 2,
        ..HerdConfig::default()
    };
    let differs = simulate_all(&other).unwrap();
    for (a, b) in again.iter().zip(&differs) {
        if a.jitter == Jitter::None {
            assert_eq!(a, b);
        } else {
            assert_ne!(a.attempts, b.attempts, "{:?}", a.jitter);
        }
    }
    assert_eq!(again.len(), JITTER_KINDS.len());
}

#[test]
fn the_window_width_only_regroups_attempts() {
    let fine = simulate(&HerdConfig::default(), Jitter::Full).unwrap();
    let coarse = simulate(
        &HerdConfig {
            window: Duration::from_secs(1),
            ..HerdConfig::default()
        },
        Jitter::Full,
    )
    .unwrap();
    assert_eq!(fine.total(), coarse.total());
    for (i, n) in coarse.attempts.iter().enumerate() {
        let from_fine: u32 = fine.attempts.iter().skip(i * 10).take(10).sum();
        assert_eq!(*n, from_fine, "second {i}");
    }
}
