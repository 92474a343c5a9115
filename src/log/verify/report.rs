//! What verification found: findings, their kinds, the report and progress.

use std::fmt;
use std::path::{Path, PathBuf};

/// Findings listed per kind of list; beyond it they are only counted.
const MAX_LISTED: usize = 1000;

/// What a finding is about. Problems make [`VerifyReport::is_ok`] false; notes do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FindingKind {
    /// Problem: a file named like a segment file without a 20-digit base offset.
    BadFileName,
    /// Problem: a file that could not be read.
    Io,
    /// Problem: bytes that do not frame a v2 batch (length, magic), or a file ending
    /// mid-batch. Nothing after it in the file can be found.
    BatchFrame,
    /// Problem: a batch whose CRC-32C does not match its bytes.
    Checksum,
    /// Problem: header fields that contradict each other or the records.
    BatchHeader,
    /// Problem: records that do not decode, or disagree with the header.
    Records,
    /// Problem: a batch at or below the previous batch's last offset, or a segment whose
    /// base offset is at or below the previous segment's last offset.
    OffsetOverlap,
    /// Problem: a batch below its segment's base offset, or too far above it for a 31-bit
    /// relative offset.
    OffsetOutsideSegment,
    /// Problem: a bad `.index` file or entry.
    OffsetIndex,
    /// Problem: a bad `.timeindex` file or entry.
    TimeIndex,
    /// Problem: a checkpoint file that does not parse.
    Checkpoint,
    /// Problem: a directory without a single segment (`.log`) file: not a partition.
    NoSegments,
    /// Note: offsets missing between two batches (normal after compaction).
    OffsetGap,
    /// Note: an index file's trailing zero entries (preallocated space of an active
    /// segment).
    PreallocatedIndex,
    /// Note: a segment without an index file (a log rebuilds it).
    MissingIndex,
    /// Note: an index file without its `.log` file (a log deletes it).
    OrphanIndex,
    /// Note: a bad index file or entry of a segment that the next open scans and reindexes
    /// (one at or after the recovery point, after an unclean shutdown), such as the stale
    /// entries a live active segment's preallocated index can hold past its last entry.
    IndexRebuiltOnOpen,
    /// Note: a `.txnindex` file that does not parse or does not fit its segment. Opening
    /// the log notices, replays the log from its start and rewrites it: it costs time only.
    TxnIndexRebuiltOnOpen,
    /// Note: a producer-state `.snapshot` file that does not parse or whose checksum does
    /// not match. Opening the log deletes it and rebuilds the producer state from an older
    /// snapshot or the log: it costs time only.
    SnapshotRebuiltOnOpen,
}

impl FindingKind {
    /// Whether this kind is a problem (as opposed to information).
    pub fn is_problem(self) -> bool {
        !matches!(
            self,
            FindingKind::OffsetGap
                | FindingKind::PreallocatedIndex
                | FindingKind::MissingIndex
                | FindingKind::OrphanIndex
                | FindingKind::IndexRebuiltOnOpen
                | FindingKind::TxnIndexRebuiltOnOpen
                | FindingKind::SnapshotRebuiltOnOpen
        )
    }

    /// A short, stable name (`checksum`, `offset-gap`, ...), for machine-readable output.
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::BadFileName => "bad-file-name",
            FindingKind::Io => "io",
            FindingKind::BatchFrame => "batch-frame",
            FindingKind::Checksum => "checksum",
            FindingKind::BatchHeader => "batch-header",
            FindingKind::Records => "records",
            FindingKind::OffsetOverlap => "offset-overlap",
            FindingKind::OffsetOutsideSegment => "offset-outside-segment",
            FindingKind::OffsetIndex => "offset-index",
            FindingKind::TimeIndex => "time-index",
            FindingKind::Checkpoint => "checkpoint",
            FindingKind::NoSegments => "no-segments",
            FindingKind::OffsetGap => "offset-gap",
            FindingKind::PreallocatedIndex => "preallocated-index",
            FindingKind::MissingIndex => "missing-index",
            FindingKind::OrphanIndex => "orphan-index",
            FindingKind::IndexRebuiltOnOpen => "index-rebuilt-on-open",
            FindingKind::TxnIndexRebuiltOnOpen => "txn-index-rebuilt-on-open",
            FindingKind::SnapshotRebuiltOnOpen => "snapshot-rebuilt-on-open",
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One thing verification found, located by file and byte position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file it is in.
    pub path: PathBuf,
    /// Byte position within that file (0 for findings about the whole file).
    pub position: u64,
    /// What kind of finding it is.
    pub kind: FindingKind,
    /// What exactly was found.
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at byte {}: {}: {}",
            self.path.display(),
            self.position,
            self.kind,
            self.detail
        )
    }
}

/// What [`verify_partition`](super::verify_partition) found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// The partition directory.
    pub dir: PathBuf,
    /// `.log` files found.
    pub segments: usize,
    /// Batches whose frame was readable.
    pub batches: u64,
    /// Records decoded from batches that validated.
    pub records: u64,
    /// Total size of the `.log` files.
    pub bytes: u64,
    /// Base offset of the first batch, if any.
    pub first_offset: Option<i64>,
    /// Last offset of the last batch, if any.
    pub last_offset: Option<i64>,
    /// Whether the clean-shutdown marker is present.
    pub clean_shutdown: bool,
    /// Number of problems found (`problems` lists at most the first 1000).
    pub problem_count: u64,
    /// Number of notes (`notes` lists at most the first 1000).
    pub note_count: u64,
    /// Problems, in the order found.
    pub problems: Vec<Finding>,
    /// Information that is not a problem (offset gaps, preallocated index space).
    pub notes: Vec<Finding>,
}

impl VerifyReport {
    /// Whether no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problem_count == 0
    }

    pub(super) fn add(&mut self, path: &Path, position: u64, kind: FindingKind, detail: String) {
        let (count, list) = if kind.is_problem() {
            (&mut self.problem_count, &mut self.problems)
        } else {
            (&mut self.note_count, &mut self.notes)
        };
        *count += 1;
        if list.len() < MAX_LISTED {
            list.push(Finding {
                path: path.to_path_buf(),
                position,
                kind,
                detail,
            });
        }
    }
}

/// How far verification has got, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyProgress {
    /// Bytes of `.log` files checked so far.
    pub bytes_done: u64,
    /// Total bytes of the `.log` files.
    pub bytes_total: u64,
}
