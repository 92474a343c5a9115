//! `<offset>.snapshot` files: the producer state below `offset`, so opening does not
//! replay the whole log.
//!
//! The layout follows Kafka's producer snapshot (big-endian; a CRC-32C over everything after
//! the CRC field), extended to keep the last five batches per producer rather than one, so a
//! retry of any of them is still recognised after a reopen:
//!
//! ```text
//! version            i16   2 (Kafka's own version 1 files are read too)
//! crc                u32   CRC-32C of the bytes after this field
//! aborted_below      i64   aborted transactions with a marker below the snapshot offset
//! producer_count     i32
//! per producer:
//!   producer_id      i64
//!   producer_epoch   i16
//!   coordinator_epoch i32
//!   txn_first_offset i64   -1 when no transaction is open
//!   last_timestamp   i64
//!   batch_count      i32   at most 5, oldest first:
//!     last_seq i32, last_offset i64, offset_delta i32, timestamp i64
//!
//! Kafka version 1 (read only), after version and crc:
//!   count i32, then per producer: producer_id i64, epoch i16, last_seq i32,
//!   last_offset i64, offset_delta i32, timestamp i64, coordinator_epoch i32,
//!   txn_first_offset i64
//! ```

use std::path::{Path, PathBuf};

use super::entry::{BatchMetadata, ProducerStateEntry};
use super::state::ProducerState;
use super::NUM_BATCHES_TO_RETAIN;
use crate::error::{Error, Result};
use crate::io::{FileSystem, OpenMode};
use crate::segment::{parse_segment_file_name, segment_file_name};

/// Extension of producer snapshot files.
pub(crate) const SNAPSHOT_EXTENSION: &str = "snapshot";

const VERSION: i16 = 2;
const KAFKA_VERSION_1: i16 = 1;
// Byte positions of the header fields.
const VERSION_AT: usize = 0;
const CRC_AT: usize = 2;
const BODY_AT: usize = 6;
const BATCH_BYTES: usize = 24;
const KAFKA_ENTRY_BYTES: usize = 42;

/// What a snapshot file holds.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub entries: Vec<ProducerStateEntry>,
    /// How many aborted transactions had a marker below the snapshot offset (`None` for
    /// Kafka's files): a count the `.txnindex` files must match to be trusted.
    pub aborted_below: Option<u64>,
}

fn path_of(dir: &Path, offset: i64) -> PathBuf {
    dir.join(segment_file_name(offset, SNAPSHOT_EXTENSION))
}

/// The offsets of the snapshot files in `dir`, ascending.
pub(crate) fn list_snapshots(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<i64>> {
    let mut offsets: Vec<i64> = fs
        .list(dir)
        .map_err(|e| Error::io(dir, e))?
        .iter()
        .filter_map(|p| parse_segment_file_name(p, SNAPSHOT_EXTENSION))
        .collect();
    offsets.sort_unstable();
    Ok(offsets)
}

/// The bytes of `<offset>.snapshot` for `state` (taken under the producer-state lock; the
/// file is written after it is released, by [`write_snapshot_bytes`]).
pub(crate) fn encode_snapshot(offset: i64, state: &ProducerState) -> Vec<u8> {
    let mut body = Vec::with_capacity(16 + state.producer_count() * 160);
    let aborted = state.aborted_count_below(offset) as i64;
    body.extend_from_slice(&aborted.to_be_bytes());
    body.extend_from_slice(&(state.producer_count() as i32).to_be_bytes());
    for e in state.entries() {
        body.extend_from_slice(&e.producer_id.to_be_bytes());
        body.extend_from_slice(&e.producer_epoch.to_be_bytes());
        body.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
        body.extend_from_slice(&e.current_txn_first_offset.unwrap_or(-1).to_be_bytes());
        body.extend_from_slice(&e.last_timestamp.to_be_bytes());
        body.extend_from_slice(&(e.batches.len() as i32).to_be_bytes());
        for b in e.batches() {
            body.extend_from_slice(&b.last_seq.to_be_bytes());
            body.extend_from_slice(&b.last_offset.to_be_bytes());
            body.extend_from_slice(&b.offset_delta.to_be_bytes());
            body.extend_from_slice(&b.timestamp.to_be_bytes());
        }
    }
    let mut out = Vec::with_capacity(BODY_AT + body.len());
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&crate::record::crc::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Writes snapshot bytes as `<offset>.snapshot` (tmp, fsync, rename, fsync of the directory).
pub(crate) fn write_snapshot_bytes(
    fs: &dyn FileSystem,
    dir: &Path,
    offset: i64,
    bytes: &[u8],
) -> Result<()> {
    crate::io::write_file_atomic(fs, &path_of(dir, offset), bytes)
}

/// Writes snapshot bytes as `<offset>.snapshot` in place, without syncing anything (see
/// [`sync_snapshot`]).
pub(crate) fn write_snapshot_unsynced(
    fs: &dyn FileSystem,
    dir: &Path,
    offset: i64,
    bytes: &[u8],
) -> Result<()> {
    let path = path_of(dir, offset);
    let file = fs
        .open(&path, OpenMode::ReadWrite)
        .map_err(|e| Error::io(&path, e))?;
    file.set_len(0).map_err(|e| Error::io(&path, e))?;
    file.write_at(bytes, 0).map_err(|e| Error::io(&path, e))
}

/// fsyncs `<offset>.snapshot` if it is still there.
pub(crate) fn sync_snapshot(fs: &dyn FileSystem, dir: &Path, offset: i64) -> Result<()> {
    let path = path_of(dir, offset);
    match fs.open(&path, OpenMode::Read) {
        Ok(file) => file.sync_data().map_err(|e| Error::io(&path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Writes the state as `<offset>.snapshot` (tmp, fsync, rename, fsync of the directory).
#[cfg(test)]
pub(crate) fn write_snapshot(
    fs: &dyn FileSystem,
    dir: &Path,
    offset: i64,
    state: &ProducerState,
) -> Result<()> {
    write_snapshot_bytes(fs, dir, offset, &encode_snapshot(offset, state))
}

/// Reads `<offset>.snapshot`; any damage is [`Error::CorruptSnapshot`].
pub(crate) fn read_snapshot(fs: &dyn FileSystem, dir: &Path, offset: i64) -> Result<Snapshot> {
    let path = path_of(dir, offset);
    let bytes = crate::io::read_file(fs, &path)?;
    parse(&path, &bytes)
}

/// Parses the bytes of a `.snapshot` file read from `path` (streamlog's version 2, or
/// Kafka's version 1): the producers it holds, or [`Error::CorruptSnapshot`].
pub fn parse_snapshot_file(path: &Path, bytes: &[u8]) -> Result<Vec<ProducerStateEntry>> {
    parse(path, bytes).map(|s| s.entries)
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Snapshot> {
    parse_at(bytes).map_err(|(_, reason)| Error::CorruptSnapshot {
        path: path.to_path_buf(),
        reason,
    })
}

/// Parses a `.snapshot` file's bytes, failing with the byte position where the damage shows
/// (the CRC field for a checksum mismatch) and what is wrong.
pub(crate) fn parse_at(bytes: &[u8]) -> std::result::Result<Snapshot, (u64, &'static str)> {
    let mut r = Reader {
        bytes,
        at: VERSION_AT,
    };
    let short = |r: &Reader<'_>| (r.at as u64, "shorter than its header");
    let version = r.i16().ok_or_else(|| short(&r))?;
    let crc = r.i32().ok_or_else(|| short(&r))? as u32;
    debug_assert_eq!(r.at, BODY_AT);
    let body = bytes.get(BODY_AT..).unwrap_or_default();
    if crate::record::crc::crc32c(body) != crc {
        return Err((CRC_AT as u64, "CRC-32C mismatch"));
    }
    let parsed = match version {
        VERSION => parse_v2(&mut r),
        KAFKA_VERSION_1 => parse_kafka_v1(&mut r),
        _ => return Err((VERSION_AT as u64, "unknown version")),
    };
    let snapshot = parsed.ok_or((r.at as u64, "entries run past the end"))?;
    if r.at != bytes.len() {
        return Err((r.at as u64, "bytes after the last entry"));
    }
    Ok(snapshot)
}

fn parse_v2(r: &mut Reader<'_>) -> Option<Snapshot> {
    let aborted_below = u64::try_from(r.i64()?).ok()?;
    let count = usize::try_from(r.i32()?).ok()?;
    let mut entries = Vec::with_capacity(count.min(r.remaining() / 34));
    for _ in 0..count {
        let mut e = ProducerStateEntry::empty(r.i64()?);
        e.producer_epoch = r.i16()?;
        e.coordinator_epoch = r.i32()?;
        let first = r.i64()?;
        e.current_txn_first_offset = (first >= 0).then_some(first);
        e.last_timestamp = r.i64()?;
        let n = usize::try_from(r.i32()?).ok()?;
        if n > NUM_BATCHES_TO_RETAIN || r.remaining() < n * BATCH_BYTES {
            return None;
        }
        for _ in 0..n {
            e.batches.push_back(BatchMetadata {
                last_seq: r.i32()?,
                last_offset: r.i64()?,
                offset_delta: r.i32()?,
                timestamp: r.i64()?,
            });
        }
        entries.push(e);
    }
    Some(Snapshot {
        entries,
        aborted_below: Some(aborted_below),
    })
}

fn parse_kafka_v1(r: &mut Reader<'_>) -> Option<Snapshot> {
    let count = usize::try_from(r.i32()?).ok()?;
    let mut entries = Vec::with_capacity(count.min(r.remaining() / KAFKA_ENTRY_BYTES));
    for _ in 0..count {
        let mut e = ProducerStateEntry::empty(r.i64()?);
        e.producer_epoch = r.i16()?;
        let last_seq = r.i32()?;
        let last_offset = r.i64()?;
        let offset_delta = r.i32()?;
        let timestamp = r.i64()?;
        e.coordinator_epoch = r.i32()?;
        let first = r.i64()?;
        e.current_txn_first_offset = (first >= 0).then_some(first);
        e.last_timestamp = timestamp;
        if last_offset >= 0 {
            e.batches.push_back(BatchMetadata {
                last_seq,
                last_offset,
                offset_delta,
                timestamp,
            });
        }
        entries.push(e);
    }
    Some(Snapshot {
        entries,
        aborted_below: None,
    })
}

/// Removes the snapshots with an offset above `offset` (state the log no longer holds).
pub(crate) fn delete_snapshots_above(fs: &dyn FileSystem, dir: &Path, offset: i64) -> Result<()> {
    delete_where(fs, dir, |o| o > offset)
}

/// Removes the snapshots with an offset below `offset`.
pub(crate) fn delete_snapshots_below(fs: &dyn FileSystem, dir: &Path, offset: i64) -> Result<()> {
    delete_where(fs, dir, |o| o < offset)
}

/// Removes the matching snapshots durably: a snapshot of offsets a truncation or a crash
/// took away must not come back after the next crash and describe a different log.
fn delete_where(fs: &dyn FileSystem, dir: &Path, doomed: impl Fn(i64) -> bool) -> Result<()> {
    let mut removed = false;
    for offset in list_snapshots(fs, dir)? {
        if doomed(offset) {
            let p = path_of(dir, offset);
            match fs.remove(&p) {
                Ok(()) => removed = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(p, e)),
            }
        }
    }
    if removed {
        fs.sync_dir(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

/// Big-endian reads that return `None` past the end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let b = self.bytes.get(self.at..self.at + N)?;
        self.at += N;
        b.try_into().ok()
    }
    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::SimFs;
    use crate::producer::ProducerAppend;

    #[test]
    fn round_trip_keeps_five_batches_and_open_transactions() {
        let fs = SimFs::new(1);
        let dir = Path::new("/p");
        fs.create_dir_all(dir).unwrap();
        let mut state = ProducerState::new(1000, 0);
        for i in 0..7i64 {
            state.apply_data(&ProducerAppend {
                producer_id: 3,
                producer_epoch: 1,
                first_seq: (i * 2) as i32,
                last_seq: (i * 2 + 1) as i32,
                first_offset: i * 2,
                last_offset: i * 2 + 1,
                max_timestamp: 100 + i,
                transactional: i == 6,
            });
        }
        write_snapshot(&fs, dir, 14, &state).unwrap();
        assert_eq!(list_snapshots(&fs, dir).unwrap(), [14]);
        let snap = read_snapshot(&fs, dir, 14).unwrap();
        assert_eq!(snap.aborted_below, Some(0));
        let e = &snap.entries[0];
        assert_eq!(e, state.entry(3).unwrap());
        assert_eq!(e.batches().count(), 5);
        assert_eq!(e.current_txn_first_offset, Some(12));
        // Any flipped bit is caught.
        let path = path_of(dir, 14);
        let bytes = crate::io::read_file(&fs, &path).unwrap();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(parse(&path, &bad).is_err(), "flip at byte {i} not caught");
        }
        delete_snapshots_below(&fs, dir, 15).unwrap();
        assert!(list_snapshots(&fs, dir).unwrap().is_empty());
    }

    /// The fuzz target's seeds (`fuzz/make_producer_seeds.py`) are valid snapshots of
    /// both versions, so fuzzing starts past the CRC check.
    #[test]
    fn fuzz_seeds_parse() {
        let seeds: [(&[u8], usize); 4] = [
            (
                include_bytes!("../../fuzz/corpus/producer_files/v2_empty.bin"),
                0,
            ),
            (
                include_bytes!("../../fuzz/corpus/producer_files/v2_two_producers.bin"),
                2,
            ),
            (
                include_bytes!("../../fuzz/corpus/producer_files/v1_kafka_one_producer.bin"),
                1,
            ),
            (
                include_bytes!("../../fuzz/corpus/producer_files/v1_kafka_no_batch.bin"),
                1,
            ),
        ];
        for (bytes, producers) in seeds {
            let entries = parse_snapshot_file(Path::new("seed.snapshot"), bytes).unwrap();
            assert_eq!(entries.len(), producers);
        }
    }

    #[test]
    fn reads_kafka_version_1_snapshots() {
        let mut body = Vec::new();
        body.extend_from_slice(&1i32.to_be_bytes()); // one producer
        body.extend_from_slice(&77i64.to_be_bytes()); // producer id
        body.extend_from_slice(&2i16.to_be_bytes()); // epoch
        body.extend_from_slice(&9i32.to_be_bytes()); // last sequence
        body.extend_from_slice(&40i64.to_be_bytes()); // last offset
        body.extend_from_slice(&4i32.to_be_bytes()); // offset delta
        body.extend_from_slice(&1234i64.to_be_bytes()); // timestamp
        body.extend_from_slice(&5i32.to_be_bytes()); // coordinator epoch
        body.extend_from_slice(&36i64.to_be_bytes()); // current txn first offset
        let mut bytes = 1i16.to_be_bytes().to_vec();
        bytes.extend_from_slice(&crate::record::crc::crc32c(&body).to_be_bytes());
        bytes.extend_from_slice(&body);
        let entries = parse_snapshot_file(Path::new("k.snapshot"), &bytes).unwrap();
        let e = &entries[0];
        assert_eq!(
            (e.producer_id, e.producer_epoch, e.coordinator_epoch),
            (77, 2, 5)
        );
        assert_eq!(e.current_txn_first_offset, Some(36));
        let b = e.last_batch().unwrap();
        assert_eq!(
            (b.first_seq(), b.last_seq, b.first_offset(), b.last_offset),
            (5, 9, 36, 40)
        );
    }
}
