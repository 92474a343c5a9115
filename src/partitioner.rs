//! Kafka's default partitioner: which partition a record goes to.
//!
//! A record with a key goes where Kafka's Java client would put it: the key's murmur2 hash
//! (Kafka's seed `0x9747b28c`), made positive by clearing the sign bit, modulo the number
//! of partitions. Every producer that follows this rule, in any language, agrees on where a
//! key lives, which is what keeps a key's records in order and compaction per key correct.
//! Records without a key go round-robin or "sticky" (the same partition until about a
//! batch's worth of bytes went there, then another: Kafka's KIP-480 behaviour, which makes
//! fuller batches).
//!
//! ```
//! use streamlog::partitioner::{partition_for_key, NullKeyStrategy, Partitioner};
//!
//! // The same key lands on the same partition as with Kafka's Java client.
//! assert_eq!(partition_for_key(b"user-42", 12)?, partition_for_key(b"user-42", 12)?);
//!
//! let p = Partitioner::new(NullKeyStrategy::RoundRobin);
//! let spread: Vec<u32> = (0..4).map(|_| p.partition(None, 100, 3)).collect::<Result<_, _>>()?;
//! assert_eq!(spread, [0, 1, 2, 0]);
//! # Ok::<(), streamlog::Error>(())
//! ```

use parking_lot::Mutex;

use crate::error::{Error, Result};

/// Kafka's murmur2 seed (`Utils.murmur2` in the Java client).
pub const KAFKA_MURMUR2_SEED: u32 = 0x9747_b28c;

/// Kafka's `Utils.murmur2`: MurmurHash2 of `key` with Kafka's seed, as a signed 32-bit value
/// (what the Java client computes).
pub fn murmur2(key: &[u8]) -> i32 {
    // MurmurHash2 reads the input as little-endian 32-bit words, as Kafka's Java port does;
    // the `murmur2` crate's endianness-independent variant is exactly that.
    murmur2::murmur2(key, KAFKA_MURMUR2_SEED) as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows on `i32::MIN`).
pub fn to_positive(value: i32) -> u32 {
    (value & 0x7fff_ffff) as u32
}

/// The partition Kafka's default partitioner picks for a keyed record.
///
/// Fails with [`Error::NoPartitions`] when `num_partitions` is 0.
pub fn partition_for_key(key: &[u8], num_partitions: u32) -> Result<u32> {
    if num_partitions == 0 {
        return Err(no_partitions());
    }
    Ok(to_positive(murmur2(key)) % num_partitions)
}

fn no_partitions() -> Error {
    Error::NoPartitions
}

/// Where records without a key go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NullKeyStrategy {
    /// Each keyless record to the next partition in turn (Kafka's `RoundRobinPartitioner`).
    RoundRobin,
    /// Keyless records stay on one partition until at least `switch_after_bytes` went there,
    /// then move to another, chosen at random (Kafka's built-in sticky partitioner, which
    /// switches after `batch.size`, 16384 bytes by default).
    Sticky {
        /// Bytes sent to one partition before switching.
        switch_after_bytes: u64,
    },
}

impl Default for NullKeyStrategy {
    /// Sticky with Kafka's default `batch.size` of 16384 bytes.
    fn default() -> Self {
        NullKeyStrategy::Sticky {
            switch_after_bytes: 16_384,
        }
    }
}

/// Kafka's default partitioning for one topic: murmur2 for keyed records, and the configured
/// [`NullKeyStrategy`] for keyless ones. `Send + Sync`; keep one per topic.
#[derive(Debug)]
pub struct Partitioner {
    strategy: NullKeyStrategy,
    state: Mutex<NullKeyState>,
}

#[derive(Debug)]
struct NullKeyState {
    /// Round-robin: the next counter value. Sticky: the current partition (or `u32::MAX`
    /// before the first pick).
    next: u32,
    bytes_on_current: u64,
    /// xorshift64* state for sticky switches; never 0.
    rng: u64,
}

impl Partitioner {
    /// A partitioner whose sticky choices are seeded from the clock.
    pub fn new(strategy: NullKeyStrategy) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x5eed, |d| d.as_nanos() as u64);
        Self::with_seed(strategy, seed)
    }

    /// A partitioner whose sticky choices follow `seed` (deterministic, for tests and
    /// simulations).
    pub fn with_seed(strategy: NullKeyStrategy, seed: u64) -> Self {
        Partitioner {
            strategy,
            state: Mutex::new(NullKeyState {
                next: match strategy {
                    NullKeyStrategy::RoundRobin => 0,
                    NullKeyStrategy::Sticky { .. } => u32::MAX,
                },
                bytes_on_current: 0,
                rng: seed | 1,
            }),
        }
    }

    /// The strategy for keyless records.
    pub fn strategy(&self) -> NullKeyStrategy {
        self.strategy
    }

    /// The partition for a record with `key` (None: keyless) of about `record_bytes` bytes,
    /// in a topic of `num_partitions` partitions.
    ///
    /// Fails with [`Error::NoPartitions`] when `num_partitions` is 0.
    pub fn partition(
        &self,
        key: Option<&[u8]>,
        record_bytes: usize,
        num_partitions: u32,
    ) -> Result<u32> {
        if let Some(key) = key {
            return partition_for_key(key, num_partitions);
        }
        if num_partitions == 0 {
            return Err(no_partitions());
        }
        let mut s = self.state.lock();
        match self.strategy {
            NullKeyStrategy::RoundRobin => {
                // Kafka: toPositive(counter.getAndIncrement()) % numPartitions.
                let counter = s.next;
                s.next = counter.wrapping_add(1);
                Ok(to_positive(counter as i32) % num_partitions)
            }
            NullKeyStrategy::Sticky { switch_after_bytes } => {
                let stale = s.next >= num_partitions;
                if stale || s.bytes_on_current >= switch_after_bytes {
                    let previous = if stale { None } else { Some(s.next) };
                    s.next = pick_other(&mut s.rng, previous, num_partitions);
                    s.bytes_on_current = 0;
                }
                s.bytes_on_current = s.bytes_on_current.saturating_add(record_bytes as u64);
                Ok(s.next)
            }
        }
    }
}

/// A random partition, other than `previous` when there is a choice.
fn pick_other(rng: &mut u64, previous: Option<u32>, num_partitions: u32) -> u32 {
    // xorshift64*: plenty for spreading load, and no dependency.
    *rng ^= *rng >> 12;
    *rng ^= *rng << 25;
    *rng ^= *rng >> 27;
    let random = rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32;
    match previous {
        Some(prev) if num_partitions > 1 => {
            // Uniform over the other n-1 partitions.
            let step = 1 + (random % u64::from(num_partitions - 1)) as u32;
            (prev + step) % num_partitions
        }
        _ => (random % u64::from(num_partitions)) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_utils_test_vectors() {
        // The values Kafka's own UtilsTest asserts for Utils.murmur2.
        assert_eq!(murmur2(b"21"), -973_932_308);
        assert_eq!(murmur2(b"foobar"), -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985_981_536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1_486_304_829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58_897_971
        );
        assert_eq!(murmur2(b"abc"), 479_470_107);
    }

    #[test]
    fn to_positive_clears_only_the_sign_bit() {
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(-1), 0x7fff_ffff);
        assert_eq!(to_positive(5), 5);
    }

    #[test]
    fn zero_partitions_is_an_error() {
        assert!(partition_for_key(b"k", 0).is_err());
        let p = Partitioner::with_seed(NullKeyStrategy::RoundRobin, 1);
        assert!(p.partition(None, 1, 0).is_err());
    }

    #[test]
    fn sticky_stays_then_switches_to_another_partition() {
        let p = Partitioner::with_seed(
            NullKeyStrategy::Sticky {
                switch_after_bytes: 300,
            },
            7,
        );
        let picks: Vec<u32> = (0..9)
            .map(|_| p.partition(None, 100, 5))
            .collect::<Result<_>>()
            .unwrap();
        // Three records of 100 B fill 300 B; the fourth goes elsewhere.
        for chunk in picks.chunks(3) {
            assert!(chunk.iter().all(|&x| x == chunk[0]), "{picks:?}");
        }
        assert_ne!(picks[0], picks[3]);
        assert_ne!(picks[3], picks[6]);
        assert!(picks.iter().all(|&x| x < 5));
    }

    #[test]
    fn sticky_repicks_when_the_partition_count_shrinks() {
        let p = Partitioner::with_seed(
            NullKeyStrategy::Sticky {
                switch_after_bytes: u64::MAX,
            },
            3,
        );
        let first = p.partition(None, 10, 1000).unwrap();
        let again = p.partition(None, 10, 1000).unwrap();
        assert_eq!(first, again);
        assert_eq!(p.partition(None, 10, 1).unwrap(), 0);
    }

    #[test]
    fn sticky_spreads_over_all_partitions() {
        let p = Partitioner::with_seed(
            NullKeyStrategy::Sticky {
                switch_after_bytes: 1,
            },
            11,
        );
        let mut seen = [0u32; 4];
        for _ in 0..4000 {
            seen[p.partition(None, 1, 4).unwrap() as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 700), "{seen:?}");
    }
}
