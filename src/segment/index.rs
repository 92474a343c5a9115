//! The sparse indexes of a segment, memory-mapped, in Kafka's byte layout.
//!
//! ```text
//! .index      8-byte entries: relative offset u32, file position u32       (big-endian)
//! .timeindex 12-byte entries: timestamp i64, relative offset u32           (big-endian)
//! ```
//!
//! Files are preallocated to `segment.index.bytes` while their segment is active and trimmed
//! to their entries when it is sealed or closed. The writer stores an entry's words and then
//! publishes the entry count (`Release`); readers load the count (`Acquire`) and search only
//! below it, so neither waits for the other.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::io::{File, FileSystem, MappedWords, OpenMode};

/// Which index a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexKind {
    /// `.index`: relative offset → position.
    Offset,
    /// `.timeindex`: timestamp → relative offset.
    Time,
}

impl IndexKind {
    pub(crate) fn entry_size(self) -> u64 {
        match self {
            IndexKind::Offset => 8,
            IndexKind::Time => 12,
        }
    }

    fn words(self) -> usize {
        self.entry_size() as usize / 4
    }

    pub(crate) fn extension(self) -> &'static str {
        match self {
            IndexKind::Offset => "index",
            IndexKind::Time => "timeindex",
        }
    }
}

/// An offset-index entry: the last offset of a batch and the batch's file position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// A time-index entry: the largest timestamp so far and the offset it was reached at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

/// One mapped index file.
#[derive(Debug)]
pub(crate) struct IndexFile {
    kind: IndexKind,
    path: PathBuf,
    file: Arc<dyn File>,
    map: Arc<dyn MappedWords>,
    entries: AtomicUsize,
    max_entries: usize,
}

impl IndexFile {
    /// Opens (creating if missing) an index for writing, preallocated to `max_bytes`, holding
    /// `valid_entries` entries already.
    pub(crate) fn open_writable(
        fs: &dyn FileSystem,
        path: &Path,
        kind: IndexKind,
        max_bytes: u32,
        valid_entries: usize,
    ) -> Result<Self> {
        let io = |e| Error::io(path, e);
        let entry = kind.entry_size();
        let max_bytes = (u64::from(max_bytes) / entry * entry).max(entry);
        let file = fs.open(path, OpenMode::ReadWrite).map_err(io)?;
        file.set_len(max_bytes).map_err(io)?;
        let map = file.map_words(max_bytes, true).map_err(io)?;
        let max_entries = (max_bytes / entry) as usize;
        Ok(IndexFile {
            kind,
            path: path.to_path_buf(),
            file,
            map,
            entries: AtomicUsize::new(valid_entries.min(max_entries)),
            max_entries,
        })
    }

    /// Opens a trimmed (sealed) index read-only. Its size must be a whole number of entries.
    pub(crate) fn open_sealed(fs: &dyn FileSystem, path: &Path, kind: IndexKind) -> Result<Self> {
        let io = |e| Error::io(path, e);
        let file = fs.open(path, OpenMode::Read).map_err(io)?;
        let len = file.len().map_err(io)?;
        if len % kind.entry_size() != 0 {
            return Err(Error::CorruptIndex {
                path: path.to_path_buf(),
                reason: "size is not a whole number of entries",
            });
        }
        let map = file.map_words(len, false).map_err(io)?;
        let n = (len / kind.entry_size()) as usize;
        Ok(IndexFile {
            kind,
            path: path.to_path_buf(),
            file,
            map,
            entries: AtomicUsize::new(n),
            max_entries: n,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Number of published entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.load(Ordering::Acquire)
    }

    /// Entries the file can hold.
    pub(crate) fn capacity(&self) -> usize {
        self.max_entries
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len() >= self.max_entries
    }

    fn word(&self, entry: usize, word: usize) -> u32 {
        self.map
            .words()
            .get(entry * self.kind.words() + word)
            .map_or(0, |w| u32::from_be(w.load(Ordering::Relaxed)))
    }

    fn push(&self, words: &[u32]) -> bool {
        let n = self.entries.load(Ordering::Relaxed);
        if n >= self.max_entries {
            return false;
        }
        let all = self.map.words();
        for (i, w) in words.iter().enumerate() {
            if let Some(slot) = all.get(n * self.kind.words() + i) {
                slot.store(w.to_be(), Ordering::Relaxed);
            }
        }
        self.entries.store(n + 1, Ordering::Release);
        true
    }

    pub(crate) fn offset_entry(&self, i: usize) -> OffsetEntry {
        OffsetEntry {
            relative_offset: self.word(i, 0),
            position: self.word(i, 1),
        }
    }

    pub(crate) fn time_entry(&self, i: usize) -> TimeEntry {
        TimeEntry {
            timestamp: (i64::from(self.word(i, 0)) << 32) | i64::from(self.word(i, 1)),
            relative_offset: self.word(i, 2),
        }
    }

    /// Appends an offset entry; false when the index is full.
    pub(crate) fn push_offset(&self, e: OffsetEntry) -> bool {
        self.push(&[e.relative_offset, e.position])
    }

    /// Appends a time entry; false when the index is full.
    pub(crate) fn push_time(&self, e: TimeEntry) -> bool {
        let ts = e.timestamp as u64;
        self.push(&[(ts >> 32) as u32, ts as u32, e.relative_offset])
    }

    /// Index of the last entry whose key is at most `target`, by binary search over the
    /// published entries, where `key(i)` is non-decreasing.
    fn floor(&self, target: i64, key: impl Fn(usize) -> i64) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if key(mid) <= target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }

    /// The last offset entry with relative offset ≤ `relative`.
    pub(crate) fn lookup_offset(&self, relative: i64) -> Option<OffsetEntry> {
        self.floor(relative, |i| {
            i64::from(self.offset_entry(i).relative_offset)
        })
        .map(|i| self.offset_entry(i))
    }

    /// Index of the last offset entry with relative offset ≤ `relative`.
    pub(crate) fn floor_offset(&self, relative: i64) -> Option<usize> {
        self.floor(relative, |i| {
            i64::from(self.offset_entry(i).relative_offset)
        })
    }

    /// Index of the last offset entry whose batch starts at or before byte `position`.
    pub(crate) fn floor_position(&self, position: u64) -> Option<usize> {
        let target = i64::try_from(position).unwrap_or(i64::MAX);
        self.floor(target, |i| i64::from(self.offset_entry(i).position))
    }

    /// The last time entry with timestamp ≤ `timestamp`.
    #[cfg(test)]
    pub(crate) fn lookup_time(&self, timestamp: i64) -> Option<TimeEntry> {
        self.floor_time(timestamp).map(|i| self.time_entry(i))
    }

    /// Index of the last time entry with timestamp ≤ `timestamp`.
    pub(crate) fn floor_time(&self, timestamp: i64) -> Option<usize> {
        self.floor(timestamp, |i| self.time_entry(i).timestamp)
    }

    pub(crate) fn last_time_entry(&self) -> Option<TimeEntry> {
        self.len().checked_sub(1).map(|i| self.time_entry(i))
    }

    pub(crate) fn last_offset_entry(&self) -> Option<OffsetEntry> {
        self.len().checked_sub(1).map(|i| self.offset_entry(i))
    }

    /// Shrinks the file to its entries (when the segment is sealed or closed).
    pub(crate) fn trim(&self) -> Result<()> {
        // The mapping is shared, so its stores are already in the page cache the file sees;
        // making them durable is `flush`'s job.
        self.file
            .set_len(self.len() as u64 * self.kind.entry_size())
            .map_err(|e| Error::io(&self.path, e))
    }

    pub(crate) fn flush(&self) -> Result<()> {
        self.map.flush().map_err(|e| Error::io(&self.path, e))
    }

    /// Makes the file durable as it is now, size included: its map's stores, then the file
    /// (a trim changes only its length, which a read-only map's flush would not write).
    pub(crate) fn sync(&self) -> Result<()> {
        self.flush()?;
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))
    }

    /// Checks that entries increase and stay inside the segment: `log_size` bytes holding
    /// offsets up to `max_relative`.
    pub(crate) fn sanity_check(&self, log_size: u64, max_relative: i64) -> Result<()> {
        let bad = |reason| {
            Err(Error::CorruptIndex {
                path: self.path.clone(),
                reason,
            })
        };
        let n = self.len();
        match self.kind {
            IndexKind::Offset => {
                let mut prev: Option<OffsetEntry> = None;
                for i in 0..n {
                    let e = self.offset_entry(i);
                    if u64::from(e.position) >= log_size {
                        return bad("entry points past the end of the log");
                    }
                    if i64::from(e.relative_offset) > max_relative {
                        return bad("entry offset past the segment's last offset");
                    }
                    if let Some(p) = prev {
                        if e.relative_offset <= p.relative_offset || e.position <= p.position {
                            return bad("entries do not increase");
                        }
                    }
                    prev = Some(e);
                }
            }
            IndexKind::Time => {
                let mut prev: Option<TimeEntry> = None;
                for i in 0..n {
                    let e = self.time_entry(i);
                    if i64::from(e.relative_offset) > max_relative {
                        return bad("entry offset past the segment's last offset");
                    }
                    if let Some(p) = prev {
                        if e.timestamp <= p.timestamp || e.relative_offset < p.relative_offset {
                            return bad("entries do not increase");
                        }
                    }
                    prev = Some(e);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::RealFs;

    #[test]
    fn entries_round_trip_and_floor_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.index");
        let idx = IndexFile::open_writable(&RealFs, &p, IndexKind::Offset, 80, 0).unwrap();
        for i in 0..10u32 {
            assert!(idx.push_offset(OffsetEntry {
                relative_offset: i * 10,
                position: i * 100
            }));
        }
        assert!(idx.is_full());
        assert!(!idx.push_offset(OffsetEntry {
            relative_offset: 1000,
            position: 1000
        }));
        assert_eq!(
            idx.lookup_offset(5),
            Some(OffsetEntry {
                relative_offset: 0,
                position: 0
            })
        );
        assert_eq!(
            idx.lookup_offset(95),
            Some(OffsetEntry {
                relative_offset: 90,
                position: 900
            })
        );
        assert_eq!(idx.lookup_offset(-1), None);
        idx.trim().unwrap();
        drop(idx);
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes.len(), 80);
        assert_eq!(&bytes[8..16], &[0, 0, 0, 10, 0, 0, 0, 100]);
        let sealed = IndexFile::open_sealed(&RealFs, &p, IndexKind::Offset).unwrap();
        assert_eq!(sealed.len(), 10);
        sealed.sanity_check(1000, 90).unwrap();
        assert!(
            sealed.sanity_check(900, 90).is_err(),
            "position 900 is past a 900-byte log"
        );
    }

    #[test]
    fn time_entries_keep_negative_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.timeindex");
        let idx = IndexFile::open_writable(&RealFs, &p, IndexKind::Time, 1200, 0).unwrap();
        idx.push_time(TimeEntry {
            timestamp: -5,
            relative_offset: 1,
        });
        idx.push_time(TimeEntry {
            timestamp: 1 << 40,
            relative_offset: 7,
        });
        assert_eq!(
            idx.lookup_time(0),
            Some(TimeEntry {
                timestamp: -5,
                relative_offset: 1
            })
        );
        assert_eq!(
            idx.last_time_entry(),
            Some(TimeEntry {
                timestamp: 1 << 40,
                relative_offset: 7
            })
        );
    }
}
