//! The data directory's `replication-offset-checkpoint`: the high watermark of every
//! partition whose log is under [`HighWatermarkPolicy::Replicated`], in Kafka's format
//! (one file per data directory, as Kafka keeps one per log directory). Read at open and
//! handed to each log as it opens; written by [`Storage::checkpoint_high_watermarks`], which
//! [`Storage::maintain`] and [`Storage::close`] call. Partitions under the other policies
//! derive their high watermark and are not listed; no file is made while none is listed.

use crate::config::HighWatermarkPolicy;
use crate::error::Result;
use crate::log::REPLICATION_OFFSET_CHECKPOINT;

use super::{Inner, Storage};

/// Topic, partition, high watermark.
pub(super) type Entry = (String, u32, i64);

/// Reads the data directory's checkpoint (nothing when it does not exist).
pub(super) fn read(
    fs: &dyn crate::io::FileSystem,
    dir: &std::path::Path,
) -> Result<Option<Vec<Entry>>> {
    crate::log::checkpoint::read_entries(fs, dir, REPLICATION_OFFSET_CHECKPOINT)
}

/// The entries the checkpoint holds now: every partition under `Replicated` with a known
/// high watermark (open logs' current values, closed ones' as they closed).
pub(super) fn entries(inner: &Inner) -> Vec<Entry> {
    let mut entries = Vec::new();
    for (name, topic) in &inner.topics {
        if topic.settings.log.high_watermark_policy != HighWatermarkPolicy::Replicated {
            continue;
        }
        for (p, part) in topic.partitions.iter().enumerate() {
            let hw = match &part.log {
                Some(log) => Some(log.high_watermark()),
                None => part.high_watermark,
            };
            if let (Some(hw), Ok(p)) = (hw, u32::try_from(p)) {
                entries.push((name.clone(), p, hw));
            }
        }
    }
    entries
}

impl Storage {
    /// Writes the data directory's `replication-offset-checkpoint` with the high watermark of
    /// every partition under [`HighWatermarkPolicy::Replicated`] (open logs' current values,
    /// closed ones' as they closed), when it changed since the last write.
    pub fn checkpoint_high_watermarks(&self) -> Result<()> {
        let mut written = self.high_watermarks_written.lock();
        let entries = entries(&*self.lock()?);
        self.write_high_watermarks(&mut written, entries)
    }

    /// Writes `entries` unless they are what was last written (`written`).
    pub(super) fn write_high_watermarks(
        &self,
        written: &mut Option<Vec<Entry>>,
        entries: Vec<Entry>,
    ) -> Result<()> {
        if written.as_ref() == Some(&entries) || (entries.is_empty() && written.is_none()) {
            return Ok(());
        }
        crate::log::checkpoint::write_entries(
            &*self.config.fs,
            &self.dir,
            REPLICATION_OFFSET_CHECKPOINT,
            &entries,
        )?;
        *written = Some(entries);
        Ok(())
    }
}
