//! Topic names and the directory names built from them (Kafka's layout).
//!
//! ```text
//! <data>/<topic>-<partition>/                 one partition log
//! <data>/<topic>-<partition>.<uuid>-delete/   a partition being deleted (removed on open)
//! <data>/topic-configs/<topic>               a topic's partition count and overrides
//! ```
//! A topic name holds only `[a-zA-Z0-9._-]`, so no name reaches outside the data directory,
//! and a partition directory always ends in `-<digits>`, which no other entry does.

use crate::error::{Error, Result};

/// Kafka's longest topic name: 249 characters, so `<topic>-<partition>.<uuid>-delete` stays
/// within a 255-byte file name.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Suffix of a directory being deleted.
pub(crate) const DELETE_SUFFIX: &str = "-delete";
/// Directory of the per-topic metadata files.
pub(crate) const TOPIC_CONFIG_DIR: &str = "topic-configs";
/// Prefix of a topic metadata file being written (`~` is not allowed in topic names).
pub(crate) const TMP_PREFIX: char = '~';

/// Checks a topic name as Kafka's `Topic.validate` does: not empty, not `.` or `..`, at most
/// 249 characters, only ASCII letters, digits, `.`, `_` and `-`.
///
/// ```
/// use streamlog::storage::validate_topic_name;
/// assert!(validate_topic_name("orders.v2_eu-west").is_ok());
/// assert!(validate_topic_name("../etc").is_err());
/// ```
pub fn validate_topic_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name == "." || name == ".." {
        Some("'.' and '..' are not allowed")
    } else if name.len() > MAX_TOPIC_NAME_LEN {
        Some("longer than 249 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some("only ASCII letters, digits, '.', '_' and '-' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidTopicName {
            name: name.chars().take(300).collect(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Whether two topic names collide in metric names (Kafka's rule: `.` and `_` are the same).
pub fn topic_names_collide(a: &str, b: &str) -> bool {
    a != b && a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| unify(x) == unify(y))
}

fn unify(b: u8) -> u8 {
    if b == b'.' {
        b'_'
    } else {
        b
    }
}

/// `<topic>-<partition>`.
pub(crate) fn partition_dir_name(topic: &str, partition: u32) -> String {
    format!("{topic}-{partition}")
}

/// Splits `<topic>-<partition>` into its parts; `None` for any other name (including
/// directories being deleted, and names whose topic part is not a valid topic).
pub(crate) fn parse_partition_dir_name(name: &str) -> Option<(&str, u32)> {
    let (topic, partition) = name.rsplit_once('-')?;
    if partition.is_empty()
        || !partition.bytes().all(|b| b.is_ascii_digit())
        || (partition.len() > 1 && partition.starts_with('0'))
    {
        return None;
    }
    let partition = partition.parse().ok()?;
    validate_topic_name(topic).ok()?;
    Some((topic, partition))
}

/// `<topic>-<partition>.<uuid>-delete`, Kafka's name for a partition directory being
/// deleted; `unique` is 32 hex digits (a UUID without dashes, as Kafka writes it).
/// As Kafka does, the topic is cut short when the whole name would pass 255 bytes.
pub(crate) fn delete_dir_name(topic: &str, partition: u32, unique: u128) -> String {
    let suffix = format!("-{partition}.{unique:032x}{DELETE_SUFFIX}");
    let keep = topic.len().min(255usize.saturating_sub(suffix.len()));
    // Topic names are ASCII, so any byte count is a character boundary.
    format!("{}{suffix}", topic.get(..keep).unwrap_or(topic))
}

/// A value unique enough for a delete directory name: no two in one process repeat, and a
/// process restarting at the same nanosecond is the only way for two runs to collide.
pub(crate) fn unique_id() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    (u128::from(h.finish()) << 64) | u128::from(n ^ (nanos as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_dir_names_parse_back() {
        assert_eq!(parse_partition_dir_name("a-b-12"), Some(("a-b", 12)));
        assert_eq!(parse_partition_dir_name("t-0"), Some(("t", 0)));
        assert_eq!(parse_partition_dir_name("t-01"), None);
        assert_eq!(parse_partition_dir_name("t-"), None);
        assert_eq!(parse_partition_dir_name("-1"), None);
        assert_eq!(parse_partition_dir_name("topic-configs"), None);
        let deleting = delete_dir_name("t", 3, 0xabc);
        assert!(deleting.ends_with("-delete"));
        assert_eq!(parse_partition_dir_name(&deleting), None);
        let long = "t".repeat(MAX_TOPIC_NAME_LEN);
        let deleting = delete_dir_name(&long, u32::MAX, u128::MAX);
        assert_eq!(deleting.len(), 255);
        assert!(deleting.ends_with("-4294967295.ffffffffffffffffffffffffffffffff-delete"));
    }

    #[test]
    fn collisions() {
        assert!(topic_names_collide("a.b", "a_b"));
        assert!(!topic_names_collide("a.b", "a.b"));
        assert!(!topic_names_collide("a.b", "a-b"));
    }
}
