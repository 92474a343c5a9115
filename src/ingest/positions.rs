//! `__ingest_positions`: a compacted internal topic of one partition holding every source's
//! positions. A record's key is the source's name, a zero byte, and the source's own key
//! (a file's stream id, a replication slot); its value is the source's encoding of the
//! position, or null once the source forgets it. Positions are only ever written inside the
//! transaction that carries the records they cover, so a read_committed read gives exactly
//! the positions of the committed records.

use std::collections::BTreeMap;

use super::error::Result;
use crate::storage::{Storage, TopicConfig};

/// The internal topic of positions.
pub const POSITIONS_TOPIC: &str = "__ingest_positions";

/// The committed positions of every source, by source name, then by key within the source.
pub type CommittedPositions = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

/// The record key of `key` of `source`.
pub(crate) fn position_key(source: &str, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(source.len() + 1 + key.len());
    k.extend_from_slice(source.as_bytes());
    k.push(0);
    k.extend_from_slice(key);
    k
}

/// Creates the compacted positions topic if missing.
pub(crate) fn ensure_topic(storage: &Storage) -> Result<()> {
    if !storage.topics().iter().any(|t| t == POSITIONS_TOPIC) {
        let mut config = TopicConfig::new();
        config.set("cleanup.policy", "compact")?;
        // Compaction leaves the active segment alone: small segments let it drop old
        // positions soon (a source writes one record per changed file per commit).
        config.set("segment.bytes", "1048576")?;
        storage.create_topic(POSITIONS_TOPIC, 1, config)?;
    }
    Ok(())
}

/// Reads the committed positions (read_committed, up to the last stable offset; the later
/// record of a key wins and a null value removes it). Call it when no source has a
/// transaction open, so the last stable offset is the log end.
pub fn load_committed(storage: &Storage) -> Result<CommittedPositions> {
    let mut out = CommittedPositions::new();
    if !storage.topics().iter().any(|t| t == POSITIONS_TOPIC) {
        return Ok(out);
    }
    let log = storage.partition(POSITIONS_TOPIC, 0)?;
    for record in log.records_committed(log.log_start_offset()) {
        let record = record?;
        let Some(key) = record.key() else { continue };
        let Some(split) = key.iter().position(|b| *b == 0) else {
            continue;
        };
        let source = String::from_utf8_lossy(key.get(..split).unwrap_or_default()).into_owned();
        let own = key.get(split + 1..).unwrap_or_default().to_vec();
        let entry = out.entry(source).or_default();
        match record.value() {
            Some(v) => {
                entry.insert(own, v.to_vec());
            }
            None => {
                entry.remove(&own);
            }
        }
    }
    out.retain(|_, v| !v.is_empty());
    Ok(out)
}
