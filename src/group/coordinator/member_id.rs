//! Member ids as Kafka makes them: the client id (or the static member's instance id), a
//! dash, and a random UUID. The randomness comes from a seed the application passes in, so
//! a simulation replays exactly.

/// The crate's splitmix64 ([`crate::rng::Rng`]): small, fast, and good enough for unique ids.
#[derive(Debug, Clone)]
pub(super) struct MemberIdGenerator {
    rng: crate::rng::Rng,
}

impl MemberIdGenerator {
    pub(super) fn new(seed: u64) -> Self {
        MemberIdGenerator {
            rng: crate::rng::Rng::new(seed),
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// `prefix-xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx` (a version-4 UUID layout).
    pub(super) fn generate(&mut self, prefix: &str) -> String {
        let hi = (self.next_u64() & !0xF000) | 0x4000;
        let lo = (self.next_u64() & !(0xC << 60)) | (0x8 << 60);
        format!(
            "{prefix}-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xFFFF,
            hi & 0xFFFF,
            lo >> 48,
            lo & 0xFFFF_FFFF_FFFF
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_kafkas_and_differ() {
        let mut ids = MemberIdGenerator::new(7);
        let a = ids.generate("consumer-1");
        let b = ids.generate("consumer-1");
        assert_ne!(a, b);
        let uuid = a.strip_prefix("consumer-1-").unwrap();
        let parts: Vec<usize> = uuid.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12]);
        assert_eq!(uuid.as_bytes()[14], b'4');
    }
}
