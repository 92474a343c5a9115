//! Checking a segment's `.index` and `.timeindex` against the batches its walk found.

use std::path::Path;

use super::report::{FindingKind, VerifyReport};
use super::walk::{BatchSpan, Walk};

/// Size of an `.index` entry: relative offset u32, position u32 (big-endian).
const OFFSET_ENTRY_SIZE: usize = 8;
/// Size of a `.timeindex` entry: timestamp i64, relative offset u32 (big-endian).
const TIME_ENTRY_SIZE: usize = 12;
/// Bad entries reported per index file; beyond it they are only counted.
const MAX_INDEX_FINDINGS: usize = 20;

impl Walk<'_> {
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

    pub(super) fn offset_index(&mut self, base: i64, path: &Path, spans: &[BatchSpan]) {
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

    pub(super) fn time_index(&mut self, base: i64, path: &Path, spans: &[BatchSpan]) {
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

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    if let Some(s) = bytes.get(at..at + 4) {
        word.copy_from_slice(s);
    }
    u32::from_be_bytes(word)
}
