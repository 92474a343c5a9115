//! The cleaner's progress: `cleaner-offset-checkpoint` in the partition directory.
//!
//! Kafka keeps one such file per data directory; here, as for the other checkpoints, each
//! partition directory has its own, in Kafka's text format, written tmp → fsync → rename →
//! fsync dir. It holds the first dirty offset: everything below it has been cleaned once.

use std::path::Path;

use crate::error::Result;
use crate::io::FileSystem;
use crate::log::{checkpoint, Log};

/// Name of the file holding the cleaner's first dirty offset.
pub const CLEANER_OFFSET_CHECKPOINT: &str = "cleaner-offset-checkpoint";

/// The first dirty offset recorded, if any.
pub(crate) fn read(fs: &dyn FileSystem, dir: &Path) -> Result<Option<i64>> {
    checkpoint::read(fs, dir, CLEANER_OFFSET_CHECKPOINT)
}

/// Records that everything below `offset` has been cleaned.
pub(crate) fn write(fs: &dyn FileSystem, dir: &Path, offset: i64) -> Result<()> {
    checkpoint::write(fs, dir, CLEANER_OFFSET_CHECKPOINT, offset)
}

/// Where cleaning resumes: the checkpoint when it lies within the log, else the log start
/// offset (a checkpoint below the log start, or past the end after a truncation, no longer
/// describes this log; Kafka resets it the same way).
pub(crate) fn first_dirty_offset(
    checkpointed: Option<i64>,
    log_start_offset: i64,
    log_end_offset: i64,
) -> i64 {
    match checkpointed {
        Some(o) if o >= log_start_offset && o <= log_end_offset => o,
        _ => log_start_offset,
    }
}

impl Log {
    /// After a truncation to `log_end_offset`: a checkpoint past the new end would count
    /// offsets appended again later as cleaned (Kafka's `maybeTruncateCheckpoint`).
    pub(crate) fn clamp_cleaner_checkpoint(&self, log_end_offset: i64) -> Result<()> {
        if read(&*self.local.fs, &self.local.dir)?.is_some_and(|o| o > log_end_offset) {
            self.poison_on_io(write(&*self.local.fs, &self.local.dir, log_end_offset))?;
        }
        Ok(())
    }
}
