//! Random picks for RANDOMKEY, SPOP, SRANDMEMBER and HRANDFIELD: a xorshift generator per
//! thread, seeded from the standard library's per-process random hasher keys. Not for
//! secrets; uniform enough for Redis's distribution tests.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0x9E37_79B9_7F4A_7C15);
    // Never zero: xorshift would stay there.
    hasher.finish() | 1
}

/// The next 64 random bits (xorshift64*).
pub(crate) fn next() -> u64 {
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
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
