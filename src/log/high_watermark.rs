//! The high watermark: the offset below which records are committed (replicated to the
//! in-sync replicas, or, on a partition that is its own only replica, appended or flushed as
//! [`HighWatermarkPolicy`] says). Consumers read below it (read_uncommitted) or below the
//! last stable offset, which never passes it (read_committed); followers read to the log end.
//!
//! The value lives in the log's high-watermark [`Notifier`](super::wait) (so waiters on
//! [`Watermark::HighWatermark`](super::Watermark::HighWatermark) wake when it moves). It only
//! moves up, except that a truncation lowers it to the new log end; it is never below the log
//! start offset. Under `Replicated` it is written to Kafka's `replication-offset-checkpoint`
//! at [`Log::checkpoint`] (when it moved), at close, and restored on open: the partition
//! directory's own file for a log opened on its own, the data directory's for a `Storage`.

use std::sync::atomic::Ordering;

use super::checkpoint::{self, REPLICATION_OFFSET_CHECKPOINT};
use super::wait::Watermark;
use super::Log;
use crate::config::HighWatermarkPolicy;
use crate::error::{Error, Result};

impl Log {
    /// The high watermark: consumers read the records below it.
    ///
    /// ```
    /// use streamlog::{Log, LogConfig, OwnedRecord, Compression};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let log = Log::open(dir.path(), LogConfig::default())?; // its own only replica
    /// log.append_records(&[OwnedRecord::new(0, None, Some(b"v"))], Compression::None)?;
    /// assert_eq!(log.high_watermark(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn high_watermark(&self) -> i64 {
        self.watermark(Watermark::HighWatermark)
    }

    /// Raises the high watermark to `offset`, clamped to `[log start offset, log end
    /// offset]`; a lower `offset` changes nothing (Kafka's `maybeIncrementHighWatermark`).
    /// Returns the high watermark after. Waiters on
    /// [`Watermark::HighWatermark`] wake. Under
    /// [`HighWatermarkPolicy::LogEnd`] the high watermark already is the log end offset and
    /// this changes nothing.
    pub fn maybe_advance_high_watermark(&self, offset: i64) -> Result<i64> {
        if self.read_only {
            return Err(Error::ReadOnlyLog {
                dir: self.local.dir.clone(),
            });
        }
        self.durability.check_usable()?;
        if self.config().high_watermark_policy == HighWatermarkPolicy::LogEnd {
            return Ok(self.high_watermark());
        }
        let hw = self.local.raise_high_watermark(offset);
        self.producers.on_high_watermark(hw);
        Ok(hw)
    }

    /// The last stable offset (Kafka's LSO): the smaller of the high watermark and the first
    /// offset of a transaction not yet decided, or decided by a marker not yet below the high
    /// watermark; never below the log start offset. read_committed consumers read below it.
    /// A pure query.
    pub fn last_stable_offset(&self) -> i64 {
        self.stable_offset(self.high_watermark())
    }

    /// Transactions whose marker is below the high watermark are stable for good: the
    /// producer state forgets them (Kafka's `onHighWatermarkUpdated`).
    pub(crate) fn forget_replicated_transactions(&self) {
        self.producers.on_high_watermark(self.high_watermark());
    }

    /// Under [`HighWatermarkPolicy::Flushed`], the high watermark follows a flush that moved
    /// the recovery point to `recovery_point`.
    pub(crate) fn follow_recovery_point(&self, recovery_point: i64) {
        if self.config().high_watermark_policy == HighWatermarkPolicy::Flushed {
            let hw = self.local.raise_high_watermark(recovery_point);
            self.producers.on_high_watermark(hw);
        }
    }

    /// Writes the partition's own `replication-offset-checkpoint` when the high watermark is
    /// persisted (`Replicated`, a log not in a `Storage`) and moved since the last write.
    pub(crate) fn checkpoint_high_watermark(&self) -> Result<()> {
        if !self.own_high_watermark_file
            || self.config().high_watermark_policy != HighWatermarkPolicy::Replicated
        {
            return Ok(());
        }
        let hw = self.high_watermark();
        if self.high_watermark_checkpointed.load(Ordering::Acquire) == hw {
            return Ok(());
        }
        let (topic, partition) = checkpoint::partition_of(&self.local.dir);
        self.poison_on_io(checkpoint::write_entries(
            &*self.local.fs,
            &self.local.dir,
            REPLICATION_OFFSET_CHECKPOINT,
            &[(topic, partition, hw)],
        ))?;
        self.high_watermark_checkpointed
            .store(hw, Ordering::Release);
        Ok(())
    }
}
