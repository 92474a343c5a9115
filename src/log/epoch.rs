//! The leader-epoch cache (Kafka's `LeaderEpochFileCache`): for each leader epoch the log
//! holds, the offset its first batch has. A follower compares its history with the leader's
//! through it (OffsetsForLeaderEpoch, a Fetch's diverging epoch) and truncates to where they
//! agree (KIP-101, KIP-279).
//!
//! ```text
//! <dir>/leader-epoch-checkpoint
//! 0                        version
//! 2                        number of entries
//! 0 0                      <epoch> <start offset>, both ascending
//! 3 1234
//! ```
//!
//! Written atomically (tmp, fsync, rename, fsync dir) whenever it changes: on a new epoch
//! (rare: a leader change) and when a truncation cuts entries. At open it is read, cut to
//! the log as it is, and checked against the last batch; when it is missing or stale, the
//! missing part is rebuilt from the batches' partition leader epochs.

use std::path::Path;

use super::{Log, View};
use crate::config::HighWatermarkPolicy;
use crate::error::{Error, Result};
use crate::io::FileSystem;
use crate::record::header::PARTITION_LEADER_EPOCH;
use crate::record::Batches;

/// The name of the leader-epoch checkpoint file in a partition directory (Kafka's).
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";

/// One leader epoch and the offset of its first batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: i32,
    /// The offset of the epoch's first batch.
    pub start_offset: i64,
}

/// The epochs of one log, ascending in both epoch and start offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    pub(crate) fn from_entries(entries: Vec<EpochEntry>) -> Self {
        let mut cache = LeaderEpochCache::default();
        for e in entries {
            cache.assign(e.epoch, e.start_offset);
        }
        cache
    }

    pub(crate) fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub(crate) fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Records that `epoch` starts at `start_offset` (Kafka's `assign`): entries that would
    /// break the order (an epoch at or above it, or a start at or above it) go first. False
    /// (nothing changed) when the latest entry already is this epoch starting no later, or
    /// for a negative epoch or offset (batches written without an epoch).
    pub(crate) fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        if let Some(latest) = self.latest() {
            if latest.epoch == epoch && latest.start_offset <= start_offset {
                return false;
            }
        }
        while self
            .entries
            .last()
            .is_some_and(|e| e.epoch >= epoch || e.start_offset >= start_offset)
        {
            self.entries.pop();
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// The answer to OffsetsForLeaderEpoch for `epoch` with the log ending at
    /// `log_end_offset` (Kafka's `endOffsetFor`): the largest epoch at or below `epoch` the
    /// log knows and the offset where the epoch after it starts (the log end for the latest
    /// epoch). `None` when the log knows no epoch at or below it nor above it (Kafka's
    /// UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET).
    pub(crate) fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        if epoch < 0 {
            return None;
        }
        let latest = self.latest()?;
        if latest.epoch == epoch {
            return Some((epoch, log_end_offset));
        }
        // The first entry above `epoch`.
        let i = self.entries.partition_point(|e| e.epoch <= epoch);
        let higher = self.entries.get(i)?;
        match i.checked_sub(1).and_then(|j| self.entries.get(j)) {
            Some(floor) => Some((floor.epoch, higher.start_offset)),
            // Older than anything the log still holds: the data below is gone; the follower
            // starts over from the first epoch the log knows.
            None => Some((epoch, higher.start_offset)),
        }
    }

    /// The log was cut to end at `end_offset`: epochs starting at or after it go. True when
    /// something changed.
    pub(crate) fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        before != self.entries.len()
    }

    /// The log now starts at `start_offset`: epochs wholly below it go, and the one holding
    /// it starts there. True when something changed.
    pub(crate) fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let holding = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        let Some(keep_from) = holding.checked_sub(1) else {
            return false;
        };
        let mut changed = keep_from > 0;
        self.entries.drain(..keep_from);
        if let Some(first) = self.entries.first_mut() {
            if first.start_offset < start_offset {
                first.start_offset = start_offset;
                changed = true;
            }
        }
        changed
    }
}

/// Writes the cache to `dir`'s `leader-epoch-checkpoint`, atomically and durably.
pub(crate) fn write(fs: &dyn FileSystem, dir: &Path, entries: &[EpochEntry]) -> Result<()> {
    let lines = entries
        .iter()
        .map(|e| format!("{} {}", e.epoch, e.start_offset));
    super::checkpoint::write_lines(fs, &dir.join(LEADER_EPOCH_CHECKPOINT), entries.len(), lines)
}

/// Reads `dir`'s `leader-epoch-checkpoint`: `None` when it does not exist.
/// A damaged file is [`Error::CorruptCheckpoint`]; the caller rebuilds from the batches.
pub(crate) fn read(fs: &dyn FileSystem, dir: &Path) -> Result<Option<Vec<EpochEntry>>> {
    super::checkpoint::read_lines(fs, &dir.join(LEADER_EPOCH_CHECKPOINT), |line, earlier| {
        let mut fields = line.split(' ');
        let (Some(epoch), Some(offset), None) = (fields.next(), fields.next(), fields.next())
        else {
            return None;
        };
        let epoch = epoch.parse::<i32>().ok()?;
        let start_offset = offset.parse::<i64>().ok()?;
        let ordered = earlier
            .last()
            .is_none_or(|l: &EpochEntry| l.epoch < epoch && l.start_offset < start_offset);
        (epoch >= 0 && start_offset >= 0 && ordered).then_some(EpochEntry {
            epoch,
            start_offset,
        })
    })
}

/// Bytes read per step when rebuilding the cache from the batches.
const SCAN_CHUNK: usize = 1 << 20;

impl Log {
    /// Whether this log keeps a leader-epoch cache: a replica of a replicated partition
    /// ([`HighWatermarkPolicy::Replicated`]). A log that is its partition's only replica
    /// never compares its history with another's, and keeps no file for it.
    fn keeps_epochs(&self) -> bool {
        self.config().high_watermark_policy == HighWatermarkPolicy::Replicated
    }

    /// The leader-epoch cache: every leader epoch the log holds batches of (or has become
    /// leader in), with the offset it starts at, ascending. Empty unless the log is under
    /// [`HighWatermarkPolicy::Replicated`].
    pub fn leader_epochs(&self) -> Vec<EpochEntry> {
        self.epochs.lock().entries().to_vec()
    }

    /// The latest leader epoch in the cache, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.lock().latest().map(|e| e.epoch)
    }

    /// OffsetsForLeaderEpoch (Kafka's `endOffsetFor`): the largest epoch at or below `epoch`
    /// that the log knows, and the offset where the epoch after it starts (the log end offset
    /// for the latest epoch). `None` is Kafka's UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET: no
    /// such epoch (or an epoch newer than the log knows). Under
    /// [`HighWatermarkPolicy::Replicated`] only (else the cache is empty).
    ///
    /// ```
    /// use streamlog::{HighWatermarkPolicy, Log, LogConfig, OwnedRecord, Compression};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let config = LogConfig::builder()
    ///     .high_watermark_policy(HighWatermarkPolicy::Replicated)
    ///     .build()?;
    /// let log = Log::open(dir.path(), config)?;
    /// let record = [OwnedRecord::new(0, None, Some(b"v"))];
    /// log.set_leader_epoch(1)?;
    /// log.append_records(&record, Compression::None)?;
    /// log.set_leader_epoch(4)?; // a new leader at offset 1
    /// log.append_records(&record, Compression::None)?;
    /// assert_eq!(log.end_offset_for_epoch(4), Some((4, 2)));
    /// assert_eq!(log.end_offset_for_epoch(3), Some((1, 1)));
    /// assert_eq!(log.end_offset_for_epoch(5), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let leo = self.log_end_offset();
        self.epochs.lock().end_offset_for(epoch, leo)
    }

    /// Records `epoch` starting at `start_offset` in the cache (in memory); true when it
    /// changed and the file is to be written ([`Log::write_leader_epochs`]).
    pub(crate) fn assign_epoch(&self, epoch: i32, start_offset: i64) -> bool {
        self.keeps_epochs() && self.epochs.lock().assign(epoch, start_offset)
    }

    /// Records `epoch` starting at the log end, if it is newer than every epoch the cache
    /// holds (a replica becoming leader). True when the file is to be written.
    pub(crate) fn assign_newer_epoch(&self, epoch: i32, log_end_offset: i64) -> bool {
        if !self.keeps_epochs() {
            return false;
        }
        let mut epochs = self.epochs.lock();
        epochs.latest().is_none_or(|l| epoch > l.epoch) && epochs.assign(epoch, log_end_offset)
    }

    /// The log was cut to end at `end_offset`; true when the file is to be written.
    pub(crate) fn truncate_epochs_from_end(&self, end_offset: i64) -> bool {
        self.keeps_epochs() && self.epochs.lock().truncate_from_end(end_offset)
    }

    /// The log now starts at `start_offset`; true when the file is to be written.
    pub(crate) fn truncate_epochs_from_start(&self, start_offset: i64) -> bool {
        self.keeps_epochs() && self.epochs.lock().truncate_from_start(start_offset)
    }

    /// Writes the cache as it is now to `leader-epoch-checkpoint` (serialised: the last
    /// writer writes the newest state). A failure poisons the log.
    pub(crate) fn write_leader_epochs(&self) -> Result<()> {
        if self.read_only || !self.keeps_epochs() {
            return Ok(());
        }
        let _one = self.epoch_file.lock();
        let entries = self.leader_epochs();
        self.poison_on_io(write(&*self.local.fs, &self.local.dir, &entries))
    }

    /// At open: the leader epoch the log stamps is the newest it holds (its cache's, or its
    /// last batch's), so it survives a reopen; under `Replicated` the cache is read, cut to
    /// the log (an epoch starting past the log end goes; one starting at it stays: a leader
    /// that has appended nothing yet), and completed from the batches where it is missing or
    /// behind the last batch (read from its latest epoch's start, or the whole log when there
    /// is no usable file).
    pub(crate) fn load_leader_epochs(&self) -> Result<()> {
        let view = self.view();
        let last = self.last_batch_epoch(&view)?;
        let mut changed = false;
        if self.keeps_epochs() {
            let found = match read(&*self.local.fs, &self.local.dir) {
                Ok(found) => found,
                Err(Error::CorruptCheckpoint { .. }) => None,
                Err(e) => return Err(e),
            };
            let mut cache = LeaderEpochCache::from_entries(found.clone().unwrap_or_default());
            cache.truncate_from_end(view.log_end_offset.saturating_add(1));
            cache.truncate_from_start(view.log_start_offset);
            let behind = match (cache.latest(), last) {
                (Some(latest), Some(last)) => last != latest.epoch,
                (None, Some(last)) => last >= 0,
                (_, None) => false,
            };
            if found.is_none() || behind {
                let from = if found.is_some() {
                    cache
                        .latest()
                        .map_or(view.log_start_offset, |l| l.start_offset)
                } else {
                    view.log_start_offset
                };
                self.scan_epochs(&view, from, &mut cache)?;
            }
            changed = found.as_deref() != Some(cache.entries());
            *self.epochs.lock() = cache;
        }
        let newest = self.latest_epoch().max(last).unwrap_or(0).max(0);
        self.local.writer.lock().leader_epoch = newest;
        if changed {
            self.write_leader_epochs()?;
        }
        Ok(())
    }

    /// The partition leader epoch of the log's last batch, if it has one.
    fn last_batch_epoch(&self, view: &View) -> Result<Option<i32>> {
        let leo = view.log_end_offset;
        if leo <= view.log_start_offset {
            return Ok(None);
        }
        let data = self.local.read_in(view, leo - 1, 1, None)?;
        let Some(slice) = data.slice else {
            return Ok(None);
        };
        let mut epoch = [0u8; 4];
        slice
            .file()
            .read_exact_at(&mut epoch, slice.position() + PARTITION_LEADER_EPOCH as u64)
            .map_err(|e| Error::io(&self.local.dir, e))?;
        Ok(Some(i32::from_be_bytes(epoch)))
    }

    /// Assigns the epochs of the batches in `[from, log end)` to `cache`, in order.
    fn scan_epochs(&self, view: &View, from: i64, cache: &mut LeaderEpochCache) -> Result<()> {
        let limits = self.config().decode_limits;
        let mut offset = from.max(view.log_start_offset);
        let mut buf = Vec::new();
        while offset < view.log_end_offset {
            let data = self.local.read_in(view, offset, SCAN_CHUNK, None)?;
            let Some(slice) = data.slice else { break };
            buf.resize(usize::try_from(slice.len()).unwrap_or(0), 0);
            slice.read_into(&mut buf)?;
            for b in Batches::with_limits(&buf, limits) {
                let b = b?;
                cache.assign(b.partition_leader_epoch(), b.base_offset());
            }
            if data.next_offset <= offset {
                break;
            }
            offset = data.next_offset;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::RealFs;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache::from_entries(
            entries
                .iter()
                .map(|&(epoch, start_offset)| EpochEntry {
                    epoch,
                    start_offset,
                })
                .collect(),
        )
    }

    fn pairs(c: &LeaderEpochCache) -> Vec<(i32, i64)> {
        c.entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    #[test]
    fn assign_keeps_epochs_and_offsets_ascending() {
        let mut c = cache(&[(0, 0), (2, 10)]);
        assert!(!c.assign(2, 15)); // same epoch, later start: nothing new
        assert!(c.assign(3, 20));
        assert_eq!(pairs(&c), [(0, 0), (2, 10), (3, 20)]);
        // A lower epoch or an earlier start drops what conflicts.
        assert!(c.assign(2, 12));
        assert_eq!(pairs(&c), [(0, 0), (2, 12)]);
        assert!(c.assign(4, 5));
        assert_eq!(pairs(&c), [(0, 0), (4, 5)]);
        assert!(!c.assign(-1, 7));
    }

    #[test]
    fn end_offset_for_answers_as_kafka() {
        let c = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert_eq!(c.end_offset_for(5, 30), Some((5, 30)));
        assert_eq!(c.end_offset_for(3, 30), Some((3, 20)));
        // An epoch the log never had: the one before it, ending where the next starts.
        assert_eq!(c.end_offset_for(4, 30), Some((3, 20)));
        assert_eq!(c.end_offset_for(2, 30), Some((1, 10)));
        // Older than the log: the first known start.
        assert_eq!(c.end_offset_for(0, 30), Some((0, 0)));
        // Newer than the log knows, or undefined.
        assert_eq!(c.end_offset_for(6, 30), None);
        assert_eq!(c.end_offset_for(-1, 30), None);
        assert_eq!(LeaderEpochCache::default().end_offset_for(1, 0), None);
    }

    #[test]
    fn truncation_at_both_ends() {
        let mut c = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert!(c.truncate_from_end(20));
        assert_eq!(pairs(&c), [(1, 0), (3, 10)]);
        assert!(!c.truncate_from_end(20));
        assert!(c.truncate_from_start(12));
        assert_eq!(pairs(&c), [(3, 12)]);
        assert!(!c.truncate_from_start(5));
        let mut c = cache(&[(1, 0), (3, 10)]);
        assert!(c.truncate_from_start(10));
        assert_eq!(pairs(&c), [(3, 10)]);
    }

    #[test]
    fn file_round_trips_in_kafkas_format_and_refuses_damage() {
        let tmp = tempfile::tempdir().unwrap();
        let c = cache(&[(0, 0), (3, 1234)]);
        write(&RealFs, tmp.path(), c.entries()).unwrap();
        let text = std::fs::read_to_string(tmp.path().join(LEADER_EPOCH_CHECKPOINT)).unwrap();
        assert_eq!(text, "0\n2\n0 0\n3 1234\n");
        assert_eq!(
            read(&RealFs, tmp.path()).unwrap().as_deref(),
            Some(c.entries())
        );
        for bad in ["1\n0\n", "0\n2\n0 0\n", "0\n2\n3 5\n2 6\n", "0\n1\nx 0\n"] {
            std::fs::write(tmp.path().join(LEADER_EPOCH_CHECKPOINT), bad).unwrap();
            assert!(matches!(
                read(&RealFs, tmp.path()),
                Err(Error::CorruptCheckpoint { .. })
            ));
        }
    }
}
