//! Read-only verification of a partition directory, and a reader that walks the batches of
//! a `.log` file without trusting it.
//!
//! [`verify_partition`] opens every file read-only and changes nothing; its documentation
//! lists what it checks.

use std::path::{Path, PathBuf};

use super::checkpoint::{self, RECOVERY_POINT_CHECKPOINT};
use super::{CLEAN_SHUTDOWN_FILE, LOG_START_OFFSET_CHECKPOINT};
use crate::error::{Error, Result};
use crate::io::{FileSystem, OpenMode, RealFs};
use crate::producer;
use crate::record::{Batch, DecodeLimits, TimestampType};
use crate::segment::{parse_segment_file_name, txnindex};

mod reader;
mod report;

pub use reader::{list_segment_files, SegmentReader};
pub use report::{Finding, FindingKind, VerifyProgress, VerifyReport};

/// Size of an `.index` entry: relative offset u32, position u32 (big-endian).
const OFFSET_ENTRY_SIZE: usize = 8;
/// Size of a `.timeindex` entry: timestamp i64, relative offset u32 (big-endian).
const TIME_ENTRY_SIZE: usize = 12;
/// Bad entries reported per index file; beyond it they are only counted.
const MAX_INDEX_FINDINGS: usize = 20;
/// Extensions of files named after a segment's base offset.
const SEGMENT_EXTENSIONS: [&str; 5] = ["log", "index", "timeindex", "txnindex", "snapshot"];

/// Verifies the partition directory `dir` on the real filesystem, read-only.
///
/// It opens every file read-only and changes nothing: it is safe on the directory of a live
/// log or of a broker that crashed. What it checks:
///
/// ```text
/// names        <20-digit base offset>.{log,index,timeindex,txnindex,snapshot}
/// .log         every batch: frame (length, magic), CRC-32C, header consistency, records
///              decode to the declared count, record timestamps ≤ the max timestamp
///              (CreateTime), a control batch's record is a control record
/// offsets      each batch ≥ its segment's base offset, relative offsets fit 31 bits, batch
///              offsets increase within and across segments (overlaps are problems, gaps are
///              notes: compaction leaves gaps)
/// .index       size a multiple of 8; entries strictly increasing; each position the start
///              of a batch whose offsets hold the entry's offset
/// .timeindex   size a multiple of 12; timestamps strictly increasing, offsets
///              non-decreasing and inside the segment; no entry claims a timestamp the
///              batches up to its offset have not reached
/// checkpoints  log-start-offset and recovery-point checkpoints parse
/// .txnindex    whole 34-byte entries of a known version, each marker inside its segment,
///              in marker order
/// .snapshot    producer-state snapshots parse and their CRC-32C matches
/// ```
///
/// Preallocated index space (an active segment's trailing zero entries) is a note, not a
/// problem, as is a missing index: a log rebuilds indexes from the `.log` files. So are bad
/// index entries of the segments the next open reindexes anyway: after an unclean shutdown
/// (no clean-shutdown marker), those from the one holding the recovery point on. A damaged
/// `.txnindex` or `.snapshot` file is a note too, naming the byte where the damage shows:
/// opening the log rebuilds both from the log.
///
/// Returns an error only when the directory cannot be listed; everything wrong inside it
/// is a [`Finding`] in the report.
///
/// ```
/// use streamlog::{Log, LogConfig, OwnedRecord, Compression};
/// use streamlog::log::verify_partition;
///
/// let dir = tempfile::tempdir()?;
/// let log = Log::open(dir.path(), LogConfig::default())?;
/// log.append_records(&[OwnedRecord::new(0, Some(b"k"), Some(b"v"))], Compression::Lz4)?;
/// log.close()?;
///
/// let report = verify_partition(dir.path())?;
/// assert!(report.is_ok(), "{:?}", report.problems);
/// assert_eq!((report.segments, report.batches, report.records), (1, 1, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn verify_partition(dir: &Path) -> Result<VerifyReport> {
    verify_partition_with(&RealFs, dir, &mut |_| {})
}

/// [`verify_partition`] through `fs`, calling `progress` as `.log` bytes are checked.
pub fn verify_partition_with(
    fs: &dyn FileSystem,
    dir: &Path,
    progress: &mut dyn FnMut(VerifyProgress),
) -> Result<VerifyReport> {
    let files = fs.list(dir).map_err(|e| Error::io(dir, e))?;
    let mut report = VerifyReport {
        dir: dir.to_path_buf(),
        clean_shutdown: fs.exists(&dir.join(CLEAN_SHUTDOWN_FILE)),
        ..VerifyReport::default()
    };
    let mut logs = Vec::new();
    let mut indexes = Vec::new();
    let mut txn_indexes = Vec::new();
    let mut snapshots = Vec::new();
    for path in files {
        let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
            continue;
        };
        if !SEGMENT_EXTENSIONS.contains(&ext) {
            continue;
        }
        match parse_segment_file_name(&path, ext) {
            Some(base) if ext == "log" => logs.push((base, path)),
            Some(base) if ext == "index" || ext == "timeindex" => indexes.push((base, path)),
            Some(base) if ext == "txnindex" => txn_indexes.push((base, path)),
            Some(_) if ext == "snapshot" => snapshots.push(path),
            Some(_) => {}
            None => report.add(
                &path,
                0,
                FindingKind::BadFileName,
                format!("a .{ext} file must be named by a 20-digit base offset"),
            ),
        }
    }
    logs.sort();
    if logs.is_empty() {
        // Nothing damaged, but nothing there either: a wrong path must not read as "OK".
        report.add(
            dir,
            0,
            FindingKind::NoSegments,
            "no segment (.log) files: not a partition directory".into(),
        );
    }
    for (base, path) in &indexes {
        if logs.binary_search_by_key(base, |(b, _)| *b).is_err() {
            report.add(
                path,
                0,
                FindingKind::OrphanIndex,
                "no .log file with this base offset".into(),
            );
        }
    }
    check_producer_files(fs, &logs, &txn_indexes, &snapshots, &mut report);
    let sizes: Vec<u64> = logs
        .iter()
        .map(|(_, p)| {
            fs.open(p, OpenMode::Read)
                .and_then(|f| f.len())
                .unwrap_or(0)
        })
        .collect();
    for name in [LOG_START_OFFSET_CHECKPOINT, RECOVERY_POINT_CHECKPOINT] {
        if let Err(e) = checkpoint::read(fs, dir, name) {
            report.add(&dir.join(name), 0, FindingKind::Checkpoint, e.to_string());
        }
    }
    // After an unclean shutdown, opening the log scans the segments from the one holding
    // the recovery point on and rebuilds their indexes: what those indexes hold now (an
    // active segment's stale entries past its last one, say) can mislead no reader.
    let rebuilt_from = if report.clean_shutdown {
        None
    } else {
        let recovery_point = checkpoint::read(fs, dir, RECOVERY_POINT_CHECKPOINT)
            .ok()
            .flatten()
            .unwrap_or(0);
        let i = logs
            .partition_point(|(b, _)| *b <= recovery_point)
            .saturating_sub(1);
        logs.get(i).map(|(b, _)| *b)
    };
    let mut walk = Walk {
        fs,
        report,
        progress,
        bytes_done: 0,
        bytes_total: sizes.iter().sum(),
        last_offset: None,
        rebuilt_from,
    };
    for (base, path) in &logs {
        walk.segment(*base, path);
    }
    let mut report = walk.report;
    report.segments = logs.len();
    report.bytes = walk.bytes_total;
    report.last_offset = walk.last_offset.map(|(offset, _)| offset);
    Ok(report)
}

/// Parses every `.txnindex` (against its segment's offset range) and `.snapshot` file with
/// the loaders a log opens them with; damage is a note naming the byte where it shows.
fn check_producer_files(
    fs: &dyn FileSystem,
    logs: &[(i64, PathBuf)],
    txn_indexes: &[(i64, PathBuf)],
    snapshots: &[PathBuf],
    report: &mut VerifyReport,
) {
    for (base, path) in txn_indexes {
        let next_base = logs
            .iter()
            .map(|(b, _)| *b)
            .find(|b| b > base)
            .unwrap_or(i64::MAX);
        match crate::io::read_file(fs, path) {
            Ok(bytes) => {
                if let Err((at, reason)) = txnindex::decode_at(&bytes, *base, next_base) {
                    let kind = FindingKind::TxnIndexRebuiltOnOpen;
                    report.add(path, at, kind, reason.to_string());
                }
            }
            Err(e) => report.add(path, 0, FindingKind::Io, e.to_string()),
        }
    }
    for path in snapshots {
        match crate::io::read_file(fs, path) {
            Ok(bytes) => {
                if let Err((at, reason)) = producer::parse_snapshot_at(&bytes) {
                    let kind = FindingKind::SnapshotRebuiltOnOpen;
                    report.add(path, at, kind, reason.to_string());
                }
            }
            Err(e) => report.add(path, 0, FindingKind::Io, e.to_string()),
        }
    }
}

/// Where a batch sits in its segment, as the index checks need it.
#[derive(Debug, Clone, Copy)]
struct BatchSpan {
    position: u64,
    base_offset: i64,
    last_offset: i64,
    /// The largest max timestamp of the segment's batches up to and including this one.
    max_timestamp_so_far: i64,
}

/// State carried across the segments of one verification.
struct Walk<'a> {
    fs: &'a dyn FileSystem,
    report: VerifyReport,
    progress: &'a mut dyn FnMut(VerifyProgress),
    bytes_done: u64,
    bytes_total: u64,
    /// Last offset of the last batch seen, and the file it was in.
    last_offset: Option<(i64, PathBuf)>,
    /// Base offset of the first segment whose indexes the next open rebuilds.
    rebuilt_from: Option<i64>,
}

impl Walk<'_> {
    fn report_progress(&mut self) {
        (self.progress)(VerifyProgress {
            bytes_done: self.bytes_done,
            bytes_total: self.bytes_total,
        });
    }

    fn segment(&mut self, base: i64, path: &Path) {
        if let Some((last, _)) = &self.last_offset {
            if base <= *last {
                let detail = format!(
                    "segment base offset {base} is at or below the previous segment's last offset {last}"
                );
                self.report.add(path, 0, FindingKind::OffsetOverlap, detail);
            }
        }
        let start = self.bytes_done;
        let spans = match SegmentReader::open_in(self.fs, path) {
            Ok(mut reader) => {
                let spans = self.batches(base, &mut reader);
                self.bytes_done = start + reader.len();
                spans
            }
            Err(e) => {
                self.report.add(path, 0, FindingKind::Io, e.to_string());
                Vec::new()
            }
        };
        self.report_progress();
        let with_ext = |ext: &str| path.with_extension(ext);
        self.offset_index(base, &with_ext("index"), &spans);
        self.time_index(base, &with_ext("timeindex"), &spans);
    }

    /// Checks every batch of one segment; returns where each framed batch sits.
    fn batches(&mut self, base: i64, reader: &mut SegmentReader) -> Vec<BatchSpan> {
        let path = reader.path().to_path_buf();
        let mut spans: Vec<BatchSpan> = Vec::new();
        let mut scratch = Vec::new();
        let start = self.bytes_done;
        loop {
            let (position, batch) = match reader.next_batch() {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) => {
                    let position = reader.position();
                    self.report
                        .add(&path, position, FindingKind::BatchFrame, e.to_string());
                    break;
                }
            };
            self.report.batches += 1;
            if let Some((kind, detail)) = check_batch(&batch, &mut scratch, &mut self.report) {
                self.report.add(&path, position, kind, detail);
            }
            let (first, last) = (batch.base_offset(), batch.last_offset());
            self.check_offsets(base, &path, position, first, last);
            let max_so_far = spans.last().map_or(batch.max_timestamp(), |s| {
                s.max_timestamp_so_far.max(batch.max_timestamp())
            });
            spans.push(BatchSpan {
                position,
                base_offset: first,
                last_offset: last,
                max_timestamp_so_far: max_so_far,
            });
            self.bytes_done = start + reader.position();
            self.report_progress();
        }
        spans
    }

    /// Offsets against the segment's base offset and the previous batch.
    fn check_offsets(&mut self, base: i64, path: &Path, position: u64, first: i64, last: i64) {
        if first < base {
            let detail =
                format!("batch base offset {first} is below the segment's base offset {base}");
            self.report
                .add(path, position, FindingKind::OffsetOutsideSegment, detail);
        } else if last - base > i64::from(i32::MAX) {
            let detail = format!(
                "batch last offset {last} is more than 2^31-1 above the segment's base offset {base}"
            );
            self.report
                .add(path, position, FindingKind::OffsetOutsideSegment, detail);
        }
        match &self.last_offset {
            Some((prev, prev_path)) if first <= *prev => {
                let where_ = if prev_path == path {
                    String::new()
                } else {
                    format!(" in {}", prev_path.display())
                };
                let detail = format!(
                    "batch offsets [{first}, {last}] overlap or go back from the previous batch's last offset {prev}{where_}"
                );
                self.report
                    .add(path, position, FindingKind::OffsetOverlap, detail);
            }
            Some((prev, _)) if first > *prev + 1 => {
                let detail = format!(
                    "offsets [{}, {}] absent before this batch",
                    *prev + 1,
                    first - 1
                );
                self.report
                    .add(path, position, FindingKind::OffsetGap, detail);
            }
            _ => {}
        }
        if self.report.first_offset.is_none() {
            self.report.first_offset = Some(first);
        }
        let keep = self
            .last_offset
            .as_ref()
            .is_some_and(|(prev, _)| *prev >= last);
        if !keep {
            self.last_offset = Some((last, path.to_path_buf()));
        }
    }

    /// Reads an index file; `None` (with a finding) when it is missing or unreadable.
    fn read_index(&mut self, path: &Path, kind: FindingKind) -> Option<Vec<u8>> {
        if !self.fs.exists(path) {
            self.report.add(
                path,
                0,
                FindingKind::MissingIndex,
                "index file missing (a log rebuilds it)".into(),
            );
            return None;
        }
        match crate::io::read_file(self.fs, path) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.report.add(path, 0, kind, e.to_string());
                None
            }
        }
    }

    /// Entries of an index file with its trailing preallocated (all-zero) entries cut off,
    /// reporting a size that is not a whole number of entries.
    fn index_entries<'b>(
        &mut self,
        path: &Path,
        bytes: &'b [u8],
        entry_size: usize,
        kind: FindingKind,
    ) -> Vec<&'b [u8]> {
        let whole = bytes.len() / entry_size * entry_size;
        if whole != bytes.len() {
            self.report.add(
                path,
                whole as u64,
                kind,
                format!(
                    "size {} is not a multiple of the {entry_size}-byte entry size",
                    bytes.len()
                ),
            );
        }
        let whole_entries = bytes.get(..whole).unwrap_or_default();
        // Entries up to the last one holding a non-zero byte; the rest is preallocated.
        let used = whole_entries
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |last| last / entry_size + 1);
        let total = whole / entry_size;
        if used < total {
            let detail = format!(
                "{} trailing empty entries (preallocated space)",
                total - used
            );
            self.report.add(
                path,
                (used * entry_size) as u64,
                FindingKind::PreallocatedIndex,
                detail,
            );
        }
        whole_entries
            .get(..used * entry_size)
            .unwrap_or_default()
            .chunks_exact(entry_size)
            .collect()
    }

    /// The kind to report a bad entry of a segment's index as: a note when the next open
    /// rebuilds the index anyway.
    fn index_kind(&self, base: i64, kind: FindingKind) -> FindingKind {
        if self.rebuilt_from.is_some_and(|from| base >= from) {
            FindingKind::IndexRebuiltOnOpen
        } else {
            kind
        }
    }

    fn offset_index(&mut self, base: i64, path: &Path, spans: &[BatchSpan]) {
        let kind = self.index_kind(base, FindingKind::OffsetIndex);
        let Some(bytes) = self.read_index(path, kind) else {
            return;
        };
        let entries = self.index_entries(path, &bytes, OFFSET_ENTRY_SIZE, kind);
        let mut bad = BadEntries::default();
        let mut prev: Option<(u32, u32)> = None;
        for (i, e) in entries.iter().enumerate() {
            let relative = be_u32(e, 0);
            let position = be_u32(e, 4);
            let offset = base + i64::from(relative);
            let at = (i * OFFSET_ENTRY_SIZE) as u64;
            let wrong = if prev.is_some_and(|(r, p)| relative <= r || position <= p) {
                Some("entries do not strictly increase".to_string())
            } else {
                match spans.binary_search_by_key(&u64::from(position), |s| s.position) {
                    Err(_) => Some(format!(
                        "position {position} is not the start of a batch"
                    )),
                    Ok(i) => match spans.get(i) {
                        Some(s) if offset < s.base_offset || offset > s.last_offset => {
                            Some(format!(
                                "offset {offset} is outside the batch at position {position} (offsets [{}, {}])",
                                s.base_offset, s.last_offset
                            ))
                        }
                        _ => None,
                    },
                }
            };
            prev = Some((relative, position));
            if let Some(detail) = wrong {
                bad.add(&mut self.report, path, at, kind, detail);
            }
        }
        bad.finish(&mut self.report, path, kind);
    }

    fn time_index(&mut self, base: i64, path: &Path, spans: &[BatchSpan]) {
        let kind = self.index_kind(base, FindingKind::TimeIndex);
        let Some(bytes) = self.read_index(path, kind) else {
            return;
        };
        let entries = self.index_entries(path, &bytes, TIME_ENTRY_SIZE, kind);
        let last_offset = spans.iter().map(|s| s.last_offset).max();
        let mut bad = BadEntries::default();
        let mut prev: Option<(i64, u32)> = None;
        for (i, e) in entries.iter().enumerate() {
            let timestamp = (i64::from(be_u32(e, 0)) << 32) | i64::from(be_u32(e, 4));
            let relative = be_u32(e, 8);
            let offset = base + i64::from(relative);
            let at = (i * TIME_ENTRY_SIZE) as u64;
            // Batches starting at or below the entry's offset: what it may claim to have seen.
            let seen = spans.partition_point(|s| s.base_offset <= offset);
            let reached = seen
                .checked_sub(1)
                .and_then(|i| spans.get(i))
                .map(|s| s.max_timestamp_so_far);
            let wrong = if prev.is_some_and(|(t, r)| timestamp <= t || relative < r) {
                Some("entries do not increase".to_string())
            } else if last_offset.is_none_or(|last| offset > last) {
                Some(format!(
                    "offset {offset} is past the segment's last offset ({})",
                    last_offset.map_or_else(|| "empty segment".into(), |l| l.to_string())
                ))
            } else if reached.is_none_or(|r| timestamp > r) {
                Some(format!(
                    "timestamp {timestamp} is above every batch timestamp up to offset {offset}"
                ))
            } else {
                None
            };
            prev = Some((timestamp, relative));
            if let Some(detail) = wrong {
                bad.add(&mut self.report, path, at, kind, detail);
            }
        }
        bad.finish(&mut self.report, path, kind);
    }
}

/// Bad index entries of one file: the first few reported, the rest counted.
#[derive(Debug, Default)]
struct BadEntries {
    count: usize,
    first_unlisted: Option<u64>,
}

impl BadEntries {
    fn add(
        &mut self,
        report: &mut VerifyReport,
        path: &Path,
        at: u64,
        kind: FindingKind,
        detail: String,
    ) {
        self.count += 1;
        if self.count <= MAX_INDEX_FINDINGS {
            report.add(path, at, kind, detail);
        } else if self.first_unlisted.is_none() {
            self.first_unlisted = Some(at);
        }
    }

    fn finish(self, report: &mut VerifyReport, path: &Path, kind: FindingKind) {
        if let Some(at) = self.first_unlisted {
            let more = self.count - MAX_INDEX_FINDINGS;
            report.add(
                path,
                at,
                kind,
                format!("{more} more bad entries from here on"),
            );
        }
    }
}

/// Checks one framed batch: CRC and header, then its records. Counts the records decoded.
fn check_batch(
    batch: &Batch<'_>,
    scratch: &mut Vec<u8>,
    report: &mut VerifyReport,
) -> Option<(FindingKind, String)> {
    match batch.validate() {
        Ok(()) => {}
        Err(e @ Error::ChecksumMismatch { .. }) => {
            return Some((FindingKind::Checksum, e.to_string()))
        }
        Err(e) => return Some((FindingKind::BatchHeader, e.to_string())),
    }
    let records = match batch.records_in(scratch, &DecodeLimits::DEFAULT) {
        Ok(r) => r,
        Err(e) => return Some((FindingKind::Records, e.to_string())),
    };
    let create_time = batch.timestamp_type() == TimestampType::CreateTime;
    let mut late = None;
    for record in records.iter() {
        match record {
            Ok(r) => {
                report.records += 1;
                if create_time && r.timestamp > batch.max_timestamp() && late.is_none() {
                    late = Some((r.offset, r.timestamp));
                }
            }
            Err(e) => return Some((FindingKind::Records, e.to_string())),
        }
    }
    if let Some((offset, timestamp)) = late {
        let detail = format!(
            "record at offset {offset} has timestamp {timestamp}, above the batch's max timestamp {}",
            batch.max_timestamp()
        );
        return Some((FindingKind::BatchHeader, detail));
    }
    if batch.is_control() && batch.record_count() > 0 {
        if let Err(e) = batch.control_record() {
            return Some((FindingKind::Records, e.to_string()));
        }
    }
    None
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    if let Some(s) = bytes.get(at..at + 4) {
        word.copy_from_slice(s);
    }
    u32::from_be_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BatchBuilder, BatchOptions, Compression, ControlRecord, OwnedRecord};
    use crate::{Log, LogConfig};

    fn small_segments() -> LogConfig {
        LogConfig {
            segment_bytes: 4096,
            index_interval_bytes: 256,
            ..LogConfig::default()
        }
    }

    /// A closed log of several segments: plain, lz4 and control batches.
    fn build_log(dir: &Path) -> i64 {
        let log = Log::open(dir, small_segments()).unwrap();
        for i in 0..60i64 {
            let value = format!("value-{i:04}-{}", "x".repeat(40));
            let codec = if i % 3 == 0 {
                Compression::Lz4
            } else {
                Compression::None
            };
            let records = [
                OwnedRecord::new(1_000 + i, Some(b"key"), Some(value.as_bytes())),
                OwnedRecord::new(1_000 + i, None, Some(value.as_bytes())),
            ];
            log.append_records(&records, codec).unwrap();
        }
        let marker = BatchBuilder::control_batch(
            BatchOptions {
                base_offset: log.log_end_offset(),
                producer_id: 7,
                producer_epoch: 0,
                ..BatchOptions::default()
            },
            &ControlRecord::end_txn(true, 3),
            2_000,
        )
        .unwrap();
        log.append_replicated(&marker).unwrap();
        let leo = log.log_end_offset();
        log.close().unwrap();
        leo
    }

    fn segment_logs(dir: &Path) -> Vec<PathBuf> {
        let logs = list_segment_files(dir).unwrap();
        logs.into_iter().map(|(_, p)| p).collect()
    }

    /// Size of the first batch in the `.log` file at `path`.
    fn first_batch_size(path: &Path) -> usize {
        let mut reader = SegmentReader::open(path).unwrap();
        let (_, batch) = reader.next_batch().unwrap().unwrap();
        batch.size_in_bytes()
    }

    /// Rewrites the file at `path` through `damage`.
    fn rewrite(path: &Path, damage: impl FnOnce(&mut Vec<u8>)) {
        let mut bytes = std::fs::read(path).unwrap();
        damage(&mut bytes);
        std::fs::write(path, &bytes).unwrap();
    }

    fn kinds(report: &VerifyReport) -> Vec<FindingKind> {
        report.problems.iter().map(|f| f.kind).collect()
    }

    #[test]
    fn good_log_verifies_clean() {
        let dir = tempfile::tempdir().unwrap();
        let leo = build_log(dir.path());
        let report = verify_partition(dir.path()).unwrap();
        assert!(report.is_ok(), "{:#?}", report.problems);
        assert!(
            report.segments > 2,
            "small segments roll: {}",
            report.segments
        );
        assert_eq!(report.batches, 61);
        assert_eq!(report.records, 121);
        assert_eq!(report.first_offset, Some(0));
        assert_eq!(report.last_offset, Some(leo - 1));
        assert!(report.clean_shutdown);
        let on_disk: u64 = segment_logs(dir.path())
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        assert_eq!(report.bytes, on_disk);
        assert_eq!(report.note_count, 0, "{:#?}", report.notes);
    }

    #[test]
    fn open_log_with_preallocated_indexes_verifies_with_notes() {
        let dir = tempfile::tempdir().unwrap();
        build_log(dir.path());
        let log = Log::open(dir.path(), small_segments()).unwrap();
        log.append_records(&[OwnedRecord::new(5, None, Some(b"v"))], Compression::None)
            .unwrap();
        let mut seen = Vec::new();
        let report = verify_partition_with(&RealFs, dir.path(), &mut |p| seen.push(p)).unwrap();
        assert!(report.is_ok(), "{:#?}", report.problems);
        assert!(!report.clean_shutdown);
        assert!(report
            .notes
            .iter()
            .any(|n| n.kind == FindingKind::PreallocatedIndex));
        let last = seen.last().copied().unwrap();
        assert_eq!(last.bytes_done, last.bytes_total);
        assert_eq!(last.bytes_total, report.bytes);
        assert!(seen.windows(2).all(|w| w[0].bytes_done <= w[1].bytes_done));
        drop(log);
    }

    #[test]
    fn verify_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        build_log(dir.path());
        let snapshot = |dir: &Path| {
            let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| {
                    let p = e.unwrap().path();
                    let bytes = std::fs::read(&p).unwrap();
                    (p, bytes)
                })
                .collect();
            files.sort();
            files
        };
        let before = snapshot(dir.path());
        rewrite(&segment_logs(dir.path())[0], |b| b[70] ^= 0xff);
        let before_damaged = snapshot(dir.path());
        assert_ne!(before, before_damaged);
        verify_partition(dir.path()).unwrap();
        assert_eq!(snapshot(dir.path()), before_damaged);
    }

    #[test]
    fn flipped_byte_is_a_checksum_problem_at_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        build_log(dir.path());
        let path = segment_logs(dir.path())[1].clone();
        let second_at = first_batch_size(&path);
        rewrite(&path, |b| b[second_at + 70] ^= 0x01);
        let report = verify_partition(dir.path()).unwrap();
        assert!(!report.is_ok());
        assert_eq!(kinds(&report), [FindingKind::Checksum]);
        assert_eq!(report.problems[0].path, path);
        assert_eq!(report.problems[0].position, second_at as u64);
        // The walk goes on past a bad CRC: every batch is still counted.
        assert_eq!(report.batches, 61);
    }

    #[test]
    fn truncated_batch_is_a_frame_problem() {
        let dir = tempfile::tempdir().unwrap();
        build_log(dir.path());
        let path = segment_logs(dir.path())[0].clone();
        let first = first_batch_size(&path);
        rewrite(&path, |b| b.truncate(first + 30));
        let report = verify_partition(dir.path()).unwrap();
        let frame: Vec<&Finding> = report
            .problems
            .iter()
            .filter(|f| f.kind == FindingKind::BatchFrame)
            .collect();
        assert_eq!(frame.len(), 1, "{:#?}", report.problems);
        assert_eq!(frame[0].path, path);
        assert_eq!(frame[0].position, first as u64);
        assert!(frame[0].detail.contains("truncated"), "{}", frame[0].detail);
    }

    #[test]
    fn corrupt_offset_index_is_named() {
        let dir = tempfile::tempdir().unwrap();
        build_log(dir.path());
        let index = segment_logs(dir.path())[0].with_extension("index");
        // Point the second entry's position into the middle of a batch.
        rewrite(&index, |b| b[15] = b[15].wrapping_add(1));
        let report = verify_partition(dir.path()).unwrap();
        assert_eq!(
            kinds(&report),
            [FindingKind::OffsetIndex],
            "{:#?}",
            report.problems
        );
        assert_eq!(report.problems[0].path, index);
        assert_eq!(report.problems[0].position, 8);

        rewrite(&index, |b| b.truncate(b.len() - 3));
        let report = verify_partition(dir.path()).unwrap();
        assert!(report
            .problems
            .iter()
            .any(|f| f.detail.contains("not a multiple")));
    }

    #[test]
    fn bad_time_index_entry_is_named() {
        let dir = tempfile::tempdir().unwrap();
        build_log(dir.path());
        let index = segment_logs(dir.path())[0].with_extension("timeindex");
        // A timestamp far above anything in the segment.
        rewrite(&index, |b| b[0] = 0x10);
        let report = verify_partition(dir.path()).unwrap();
        assert!(!report.problems.is_empty());
        assert!(report
            .problems
            .iter()
            .all(|f| f.kind == FindingKind::TimeIndex && f.path == index));
    }

    #[test]
    fn overlapping_segments_are_a_problem_and_gaps_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        let batch = |base: i64, n: i64| {
            let mut b = BatchBuilder::new(BatchOptions {
                base_offset: base,
                ..BatchOptions::default()
            });
            for i in 0..n {
                b.append(i, None, Some(b"v"), &[]).unwrap();
            }
            b.build().unwrap()
        };
        log.append_replicated(&batch(0, 5)).unwrap();
        log.append_replicated(&batch(10, 5)).unwrap(); // a gap: 5..=9
        log.roll().unwrap();
        log.append_replicated(&batch(15, 5)).unwrap();
        log.close().unwrap();
        let report = verify_partition(dir.path()).unwrap();
        assert!(report.is_ok(), "{:#?}", report.problems);
        assert_eq!(report.note_count, 1);
        assert_eq!(report.notes[0].kind, FindingKind::OffsetGap);
        assert!(report.notes[0].detail.contains("[5, 9]"));

        // A third segment re-using offsets 12..=16.
        let overlapping = batch(12, 5);
        std::fs::write(dir.path().join("00000000000000000012.log"), &overlapping).unwrap();
        let report = verify_partition(dir.path()).unwrap();
        assert!(!report.is_ok());
        assert!(kinds(&report)
            .iter()
            .all(|k| *k == FindingKind::OffsetOverlap));
        assert!(report
            .problems
            .iter()
            .any(|f| f.path.ends_with("00000000000000000012.log")));
    }

    #[test]
    fn batch_below_segment_base_and_bad_names_are_problems() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = BatchBuilder::new(BatchOptions::default());
        b.append(0, None, Some(b"v"), &[]).unwrap();
        let bytes = b.build().unwrap();
        std::fs::write(dir.path().join("00000000000000000100.log"), &bytes).unwrap();
        std::fs::write(dir.path().join("7.log"), &bytes).unwrap();
        std::fs::write(dir.path().join("partition.metadata"), b"ignored").unwrap();
        let report = verify_partition(dir.path()).unwrap();
        let mut found = kinds(&report);
        found.sort_by_key(|k| k.name());
        assert_eq!(
            found,
            [FindingKind::BadFileName, FindingKind::OffsetOutsideSegment]
        );
        assert_eq!(report.segments, 1);
        assert!(report
            .notes
            .iter()
            .all(|n| n.kind == FindingKind::MissingIndex));
    }

    #[test]
    fn garbage_never_panics_and_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut garbage = vec![0u8; 5000];
        for b in &mut garbage {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
        }
        std::fs::write(dir.path().join("00000000000000000000.log"), &garbage).unwrap();
        std::fs::write(
            dir.path().join("00000000000000000000.index"),
            &garbage[..13],
        )
        .unwrap();
        std::fs::write(dir.path().join("00000000000000000000.timeindex"), &garbage).unwrap();
        std::fs::write(dir.path().join(LOG_START_OFFSET_CHECKPOINT), &garbage[..20]).unwrap();
        let report = verify_partition(dir.path()).unwrap();
        assert!(!report.is_ok());
        assert!(kinds(&report).contains(&FindingKind::BatchFrame));
        assert!(kinds(&report).contains(&FindingKind::Checkpoint));
    }

    #[test]
    fn missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = verify_partition(&dir.path().join("absent")).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
    }

    /// No false alarms: whatever sequence of operations the library performs, the
    /// directory it leaves (closed cleanly, or dropped open as a crash would leave it)
    /// verifies without problems.
    #[test]
    fn every_log_the_library_writes_verifies() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for round in 0..6 {
            let dir = tempfile::tempdir().unwrap();
            let config = || LogConfig {
                segment_bytes: 1500,
                index_interval_bytes: 100,
                segment_index_bytes: 4096,
                message_timestamp_type: if round % 2 == 0 {
                    TimestampType::CreateTime
                } else {
                    TimestampType::LogAppendTime
                },
                ..LogConfig::default()
            };
            let mut log = Log::open(dir.path(), config()).unwrap();
            for step in 0..120 {
                match next(20) {
                    0 => log.roll().unwrap(),
                    1 => {
                        let end = log.log_end_offset();
                        log.truncate_to(end - next(8) as i64).unwrap();
                    }
                    2 => {
                        let (start, end) = (log.log_start_offset(), log.log_end_offset());
                        let at = start + next((end - start + 1) as u64) as i64;
                        log.delete_records_before(at).unwrap();
                    }
                    3 => {
                        // A replica batch past a compaction gap.
                        let mut b = BatchBuilder::new(BatchOptions {
                            base_offset: log.log_end_offset() + next(4) as i64,
                            ..BatchOptions::default()
                        });
                        b.append(step, None, Some(b"replica"), &[]).unwrap();
                        log.append_replicated(&b.build().unwrap()).unwrap();
                    }
                    4 => {
                        // Reopen, cleanly or as after a crash.
                        if next(2) == 0 {
                            log.close().unwrap();
                        }
                        drop(log);
                        log = Log::open(dir.path(), config()).unwrap();
                    }
                    _ => {
                        let n = 1 + next(4);
                        let records: Vec<OwnedRecord> = (0..n)
                            .map(|i| {
                                let ts = 10_000 + next(1000) as i64 + i as i64;
                                OwnedRecord::new(ts, Some(b"k"), Some(&[b'v'; 40]))
                            })
                            .collect();
                        let codec = [Compression::None, Compression::Lz4][next(2) as usize];
                        log.append_records(&records, codec).unwrap();
                    }
                }
                if step % 30 == 29 {
                    let report = verify_partition(dir.path()).unwrap();
                    assert!(
                        report.is_ok(),
                        "round {round} step {step}: {:#?}",
                        report.problems
                    );
                }
            }
            if round % 2 == 0 {
                log.close().unwrap();
            }
            drop(log);
            let report = verify_partition(dir.path()).unwrap();
            assert!(report.is_ok(), "round {round}: {:#?}", report.problems);
        }
    }
}
