//! The default jitter generator: SplitMix64, small, fast and reproducible from a seed.

use std::convert::Infallible;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

/// SplitMix64 (Steele, Lea and Flood, 2014): one `u64` of state, one addition and three
/// xor-shift-multiply rounds per output.
///
/// This is the generator [`Backoff`](crate::Backoff) uses unless you inject another one. It
/// is not cryptographic and does not need to be: jitter only has to spread clients apart.
/// What it promises is reproducibility: the same seed gives the same sequence on every
/// platform and every version of this crate, so a seeded backoff (and the
/// [`herd`](crate::herd) simulation) is deterministic.
///
/// It implements `rand`'s [`TryRng`](rand::TryRng) with an infallible error, so it is a
/// [`rand::Rng`] and can be used wherever one is expected.
///
/// # Examples
/// ```
/// use beamline_backoff::SplitMix64;
/// use rand::Rng;
///
/// let mut a = SplitMix64::new(7);
/// let mut b = SplitMix64::new(7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

/// The golden-ratio increment of SplitMix64.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl SplitMix64 {
    /// A generator whose sequence is fixed by `seed`.
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator seeded from the standard library's per-process random hash keys
    /// (themselves drawn from the OS once per thread) mixed with a process-wide counter, so
    /// two generators made in a row, in one process or in many, differ.
    pub fn from_entropy() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Self::new(RandomState::new().hash_one(n))
    }

    /// The next 64 random bits.
    pub const fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl rand::TryRng for SplitMix64 {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        // The high half has the better-mixed bits.
        Ok((self.next() >> 32) as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.next())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

/// A uniform `f64` in `[0, 1)` from the top 53 bits of one `u64` draw.
///
/// This is the only way the backoff turns random bits into a fraction, so the jitter
/// formulas are exact functions of the generator's output.
pub(crate) fn unit_f64<R: rand::Rng + ?Sized>(rng: &mut R) -> f64 {
    const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
    (rng.next_u64() >> 11) as f64 * SCALE
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn matches_the_reference_sequence() {
        // First outputs of the reference C implementation (Vigna's splitmix64.c) for seed 0.
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(rng.next(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn entropy_seeds_differ() {
        let a = SplitMix64::from_entropy();
        let b = SplitMix64::from_entropy();
        assert_ne!(a, b);
    }

    #[test]
    fn unit_is_in_range_and_uses_the_top_bits() {
        let mut rng = SplitMix64::new(1);
        for _ in 0..10_000 {
            let u = unit_f64(&mut rng);
            assert!((0.0..1.0).contains(&u), "{u}");
        }
        let mut first = SplitMix64::new(1);
        let mut second = SplitMix64::new(1);
        let bits = first.next_u64() >> 11;
        assert_eq!(unit_f64(&mut second), bits as f64 / (1u64 << 53) as f64);
    }

    #[test]
    fn fill_bytes_handles_partial_chunks() {
        let mut rng = SplitMix64::new(3);
        let mut buf = [0u8; 13];
        rng.fill_bytes(&mut buf);
        let mut check = SplitMix64::new(3);
        let a = check.next().to_le_bytes();
        let b = check.next().to_le_bytes();
        assert_eq!(&buf[..8], &a);
        assert_eq!(&buf[8..], &b[..5]);
    }
}
