//! The library's one seeded generator, splitmix64: the simulated filesystem's randomness,
//! consumer-group member ids, and the library's own seeded tests draw from it, so a run
//! repeats exactly from its seed. (Tests outside the library share
//! `tests/it/common/rng.rs`, the same algorithm.)

/// A splitmix64 generator (Steele, Lea and Flood): tiny, fast, and every seed (zero
/// included) gives a full-period stream.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0), by multiply-shift rather than modulo.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `0..=n`; draws nothing when `n` is 0, so empty choices leave the stream be.
    pub(crate) fn up_to(&mut self, n: usize) -> usize {
        match n.checked_add(1) {
            _ if n == 0 => 0,
            Some(m) => self.below(m),
            None => self.next_u64() as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn same_seed_same_stream_and_bounds_hold() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        for n in 0..1000usize {
            assert_eq!(a.next_u64(), b.next_u64());
            assert!(a.below(n + 1) <= n);
            assert!(a.up_to(n) <= n);
            b.below(n + 1);
            b.up_to(n);
        }
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }

    #[test]
    fn up_to_reaches_both_ends() {
        let mut r = Rng::new(0);
        let seen: std::collections::BTreeSet<usize> = (0..200).map(|_| r.up_to(3)).collect();
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), [0, 1, 2, 3]);
    }
}
