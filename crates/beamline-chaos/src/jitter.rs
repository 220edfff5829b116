//! The seeded generator behind [`crate::Fault::Latency`]'s jitter.
//!
//! The workspace's one generator, [`SplitMix64`] from beamline-backoff: tiny, fast, and fully
//! determined by its seed, which is all jitter needs (it is not for cryptography). Each
//! connection direction gets its own stream, derived from the proxy's seed, the connection's
//! accept index and the direction, so one connection's traffic never shifts another's delays.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

use beamline_backoff::SplitMix64;

use crate::fault::Side;

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// One direction's stream of jitter.
#[derive(Debug, Clone)]
pub(crate) struct Jitter {
    rng: SplitMix64,
}

impl Jitter {
    /// The stream for direction `side` of the `index`-th connection under `seed`.
    pub(crate) fn for_connection(seed: u64, index: u64, side: Side) -> Jitter {
        let lane = index.wrapping_mul(2) + u64::from(side == Side::Down);
        // Mixing the lane through one round keeps neighbouring connections' streams apart.
        let mut mixer = SplitMix64::new(seed ^ lane.wrapping_mul(GOLDEN));
        Jitter {
            rng: SplitMix64::new(mixer.next()),
        }
    }

    /// A duration drawn uniformly from `[0, max]` (nanosecond resolution).
    pub(crate) fn up_to(&mut self, max: Duration) -> Duration {
        let max = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        if max == 0 {
            return Duration::ZERO;
        }
        // Multiply-shift maps 64 random bits onto [0, max]; the bias is below 2^-64 · max.
        let span = u128::from(max) + 1;
        let nanos = (u128::from(self.rng.next()) * span) >> 64;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(max))
    }
}

/// A seed for a proxy that was not given one: different in every process run, so that runs
/// explore different jitter, and reported by [`crate::Proxy::seed`] so a failing run can be
/// replayed.
pub(crate) fn random_seed() -> u64 {
    RandomState::new().hash_one(std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_lanes_differ() {
        let draw = |seed, index, side| {
            let mut j = Jitter::for_connection(seed, index, side);
            (0..8)
                .map(|_| j.up_to(Duration::from_millis(20)))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7, 3, Side::Up), draw(7, 3, Side::Up));
        assert_ne!(draw(7, 3, Side::Up), draw(7, 3, Side::Down));
        assert_ne!(draw(7, 3, Side::Up), draw(7, 4, Side::Up));
        assert_ne!(draw(7, 3, Side::Up), draw(8, 3, Side::Up));
    }

    #[test]
    fn draws_stay_in_range_and_spread() {
        let mut j = Jitter::for_connection(1, 0, Side::Up);
        let max = Duration::from_micros(1000);
        let draws: Vec<_> = (0..2000).map(|_| j.up_to(max)).collect();
        assert!(draws.iter().all(|d| *d <= max));
        // Uniform: both halves of the range are well used.
        let low = draws.iter().filter(|d| **d < max / 2).count();
        assert!((800..1200).contains(&low), "low half drew {low} of 2000");
        assert_eq!(j.up_to(Duration::ZERO), Duration::ZERO);
    }
}
