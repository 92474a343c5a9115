//! Which partition of `__consumer_offsets` holds a group.

use crate::error::{Error, Result};

/// The name of Kafka's offsets topic.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Kafka's default `offsets.topic.num.partitions`.
pub const DEFAULT_OFFSETS_TOPIC_NUM_PARTITIONS: u32 = 50;

/// Java's `String.hashCode`: `s[0]*31^(n-1) + … + s[n-1]` over UTF-16 code units, wrapping.
pub fn java_string_hash_code(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The `__consumer_offsets` partition that holds `group` when the topic has
/// `num_partitions` partitions (Kafka's `partitionFor`).
///
/// Fails with [`Error::InvalidConfig`] when `num_partitions` is 0.
///
/// Which partition of `__consumer_offsets` holds a group: Kafka's
/// `abs(groupId.hashCode()) % offsets.topic.num.partitions`, with Java's `String.hashCode`
/// (over UTF-16 code units) and Kafka's `Utils.abs` (which maps `Integer.MIN_VALUE` to 0,
/// where `Math.abs` would stay negative). Every broker and client that follows the rule
/// agrees on a group's coordinator.
///
/// ```
/// use streamlog::group::{java_string_hash_code, partition_for_group};
///
/// assert_eq!(java_string_hash_code("payments"), 1_382_682_413);
/// assert_eq!(partition_for_group("payments", 50)?, 13);
/// // The one string family whose hash is i32::MIN goes to partition 0.
/// assert_eq!(java_string_hash_code("polygenelubricants"), i32::MIN);
/// assert_eq!(partition_for_group("polygenelubricants", 50)?, 0);
/// # Ok::<(), streamlog::Error>(())
/// ```
pub fn partition_for_group(group: &str, num_partitions: u32) -> Result<u32> {
    if num_partitions == 0 {
        return Err(Error::InvalidConfig {
            key: "offsets.topic.num.partitions",
            value: "0".to_string(),
            reason: "the offsets topic needs a partition",
        });
    }
    // Utils.abs: i32::MIN has no positive counterpart, Kafka maps it to 0.
    let hash = java_string_hash_code(group);
    let positive = if hash == i32::MIN {
        0
    } else {
        hash.unsigned_abs()
    };
    Ok(positive % num_partitions)
}
