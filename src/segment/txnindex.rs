//! A segment's `.txnindex`: the aborted transactions whose ABORT marker lies in the segment,
//! in marker order, as Kafka's `TransactionIndex` stores them.
//!
//! ```text
//! entry (34 bytes, big-endian):
//!   version             i16   0
//!   producer_id         i64
//!   first_offset        i64   the transaction's first record
//!   last_offset         i64   the ABORT marker
//!   last_stable_offset  i64   the last stable offset when the marker was written
//! ```
//!
//! The file is created with its first entry; a segment without one has no file. It is
//! derived data: opening rebuilds it from the log when it is damaged.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::{FileSystem, OpenMode};

use super::segment_file_name;

/// An aborted transaction as the `.txnindex` stores it (Kafka's `AbortedTxn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AbortedTxn {
    /// The producer whose transaction was aborted.
    pub producer_id: i64,
    /// Offset of the transaction's first record.
    pub first_offset: i64,
    /// Offset of the ABORT marker.
    pub last_offset: i64,
    /// The last stable offset when the marker was written.
    pub last_stable_offset: i64,
}

/// Size of one entry.
pub(crate) const ENTRY_BYTES: usize = 34;
const VERSION: i16 = 0;
// Byte positions within an entry.
const VERSION_AT: usize = 0;
const PRODUCER_ID_AT: usize = 2;
const FIRST_OFFSET_AT: usize = 10;
const LAST_OFFSET_AT: usize = 18;
const LAST_STABLE_OFFSET_AT: usize = 26;

/// Path of the `.txnindex` of the segment based at `base_offset`.
pub(crate) fn txn_index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(segment_file_name(base_offset, "txnindex"))
}

/// The bytes of one entry.
pub(crate) fn encode(t: &AbortedTxn) -> [u8; ENTRY_BYTES] {
    let mut out = [0u8; ENTRY_BYTES];
    let mut put = |at: usize, bytes: &[u8]| {
        if let Some(dst) = out.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    };
    put(VERSION_AT, &VERSION.to_be_bytes());
    put(PRODUCER_ID_AT, &t.producer_id.to_be_bytes());
    put(FIRST_OFFSET_AT, &t.first_offset.to_be_bytes());
    put(LAST_OFFSET_AT, &t.last_offset.to_be_bytes());
    put(LAST_STABLE_OFFSET_AT, &t.last_stable_offset.to_be_bytes());
    out
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut v = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        v.copy_from_slice(s);
    }
    i64::from_be_bytes(v)
}

/// Decodes a whole file's bytes. Entries must be well-formed, lie within
/// `[base_offset, next_base)` and come in marker order; anything else is
/// [`Error::CorruptTxnIndex`].
pub(crate) fn decode(
    path: &Path,
    bytes: &[u8],
    base_offset: i64,
    next_base: i64,
) -> Result<Vec<AbortedTxn>> {
    decode_at(bytes, base_offset, next_base).map_err(|(_, reason)| Error::CorruptTxnIndex {
        path: path.to_path_buf(),
        reason,
    })
}

/// [`decode`], failing with the byte position of the first bad entry and what is wrong.
pub(crate) fn decode_at(
    bytes: &[u8],
    base_offset: i64,
    next_base: i64,
) -> std::result::Result<Vec<AbortedTxn>, (u64, &'static str)> {
    if bytes.len() % ENTRY_BYTES != 0 {
        let at = bytes.len() - bytes.len() % ENTRY_BYTES;
        return Err((at as u64, "size is not a multiple of 34 bytes"));
    }
    let mut out: Vec<AbortedTxn> = Vec::with_capacity(bytes.len() / ENTRY_BYTES);
    for (i, e) in bytes.chunks_exact(ENTRY_BYTES).enumerate() {
        let at = (i * ENTRY_BYTES) as u64;
        let version = i16::from_be_bytes([
            e.first().copied().unwrap_or(0),
            e.get(1).copied().unwrap_or(0),
        ]);
        if version != VERSION {
            return Err((at, "unknown entry version"));
        }
        let t = AbortedTxn {
            producer_id: be_i64(e, PRODUCER_ID_AT),
            first_offset: be_i64(e, FIRST_OFFSET_AT),
            last_offset: be_i64(e, LAST_OFFSET_AT),
            last_stable_offset: be_i64(e, LAST_STABLE_OFFSET_AT),
        };
        if t.producer_id < 0
            || t.first_offset > t.last_offset
            || t.last_offset < base_offset
            || t.last_offset >= next_base
            || t.last_stable_offset < 0
        {
            return Err((at, "entry outside the segment or inconsistent"));
        }
        if out.last().is_some_and(|p| p.last_offset >= t.last_offset) {
            return Err((at, "entries out of marker order"));
        }
        out.push(t);
    }
    Ok(out)
}

/// Reads the `.txnindex` of a segment (empty when there is none).
pub(crate) fn load(
    fs: &dyn FileSystem,
    dir: &Path,
    base_offset: i64,
    next_base: i64,
) -> Result<Vec<AbortedTxn>> {
    let path = txn_index_path(dir, base_offset);
    if !fs.exists(&path) {
        return Ok(Vec::new());
    }
    let bytes = crate::io::read_file(fs, &path)?;
    decode(&path, &bytes, base_offset, next_base)
}

/// Appends one entry to a segment's `.txnindex` (made durable with the segment's flush or,
/// if lost, rebuilt from the log at open).
pub(crate) fn append(
    fs: &dyn FileSystem,
    dir: &Path,
    base_offset: i64,
    t: &AbortedTxn,
) -> Result<()> {
    let path = txn_index_path(dir, base_offset);
    let file = fs
        .open(&path, OpenMode::ReadWrite)
        .map_err(|e| Error::io(&path, e))?;
    file.append(&[&encode(t)]).map_err(|e| Error::io(&path, e))
}

/// fsyncs a segment's `.txnindex`, if it has one.
pub(crate) fn sync(fs: &dyn FileSystem, dir: &Path, base_offset: i64) -> Result<()> {
    let path = txn_index_path(dir, base_offset);
    if !fs.exists(&path) {
        return Ok(());
    }
    let file = fs
        .open(&path, OpenMode::ReadWrite)
        .map_err(|e| Error::io(&path, e))?;
    file.sync_data().map_err(|e| Error::io(&path, e))
}

/// Replaces a segment's `.txnindex` with `entries` (removing it when there are none).
pub(crate) fn rewrite(
    fs: &dyn FileSystem,
    dir: &Path,
    base_offset: i64,
    entries: &[AbortedTxn],
) -> Result<()> {
    let path = txn_index_path(dir, base_offset);
    if entries.is_empty() {
        return match fs.remove(&path) {
            // Durably: entries of aborts a truncation took away must not come back.
            Ok(()) => fs.sync_dir(dir).map_err(|e| Error::io(dir, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(path, e)),
        };
    }
    let bytes: Vec<u8> = entries.iter().flat_map(encode).collect();
    crate::io::write_file_atomic(fs, &path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_damage_is_detected() {
        let t = AbortedTxn {
            producer_id: 9,
            first_offset: 100,
            last_offset: 120,
            last_stable_offset: 121,
        };
        let bytes = encode(&t);
        assert_eq!(bytes.len(), 34);
        let p = Path::new("x.txnindex");
        assert_eq!(decode(p, &bytes, 0, 1000).unwrap(), vec![t]);
        assert!(decode(p, &bytes[..33], 0, 1000).is_err());
        assert!(decode(p, &bytes, 0, 110).is_err());
        let mut bad = bytes;
        bad[1] = 7;
        assert!(decode(p, &bad, 0, 1000).is_err());
    }
}
