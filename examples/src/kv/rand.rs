//! Random picks for RANDOMKEY, SPOP, SRANDMEMBER and HRANDFIELD: the workspace's one
//! generator (beamline-backoff's SplitMix64), one per thread, each seeded from the OS through
//! the standard library's per-process random hasher keys. Not for secrets; uniform enough for
//! Redis's distribution tests.

use std::cell::RefCell;

use beamline::reconnect::SplitMix64;

thread_local! {
    static RNG: RefCell<SplitMix64> = RefCell::new(SplitMix64::from_entropy());
}

/// The next 64 random bits.
pub(crate) fn next() -> u64 {
    RNG.with(|rng| rng.borrow_mut().next())
}

/// A number in `0..n` (0 when `n` is 0), without modulo bias worth measuring (`n` is far
/// below 2^64).
pub(crate) fn below(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    // The high bits of a 64x64 multiply: Lemire's reduction.
    ((u128::from(next()) * n as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut seen = [0usize; 5];
        for _ in 0..5000 {
            seen[below(5)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
        assert_eq!(below(0), 0);
    }
}
