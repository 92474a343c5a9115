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
use crate::segment::{parse_segment_file_name, txnindex};

mod index_check;
mod reader;
mod report;
#[cfg(test)]
mod tests;
mod walk;

pub use reader::{list_segment_files, SegmentReader};
pub use report::{Finding, FindingKind, VerifyProgress, VerifyReport};
use walk::Walk;

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
