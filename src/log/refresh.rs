//! Following a writer in another process: a read-only log takes in what was appended to the
//! directory since it opened.
//!
//! Only whole batches that validate (CRC included) are taken, and only at the offsets that
//! follow the log end: a batch the writer is still writing is left for the next refresh.
//! The active segment's file is read through the read-only overlay, whose in-memory cut is
//! lifted to look at what the disk holds and set again after the last batch taken.

use std::sync::Arc;

use super::{Log, Writer};
use crate::error::{Error, Result};
use crate::record::{Batch, BATCH_HEADER_SIZE};
use crate::segment::{segment_file_name, BatchPos, Segment};

impl Log {
    /// For a read-only log ([`Log::open_read_only`]): takes in the batches a writer (in
    /// another process) appended since the open or the last refresh, including segments it
    /// rolled to, publishes them to readers and wakes [`Log::wait_for`] waiters. Returns the
    /// log end offset. A log opened for writing sees its own appends already: nothing to do.
    ///
    /// Records the writer deleted (retention) or rewrote (compaction) since the open are not
    /// noticed: reopen to see those.
    pub fn refresh(&self) -> Result<i64> {
        let Some(overlay) = &self.overlay else {
            return Ok(self.log_end_offset());
        };
        self.check_usable_for_reads()?;
        let mut w = self.local.writer.lock();
        let before = w.log_end_offset;
        loop {
            let Some(active) = w.segments.last().cloned() else {
                break;
            };
            overlay.uncut(active.log_path());
            let taken = self.take_appended(&mut w, &active);
            // Cut again after the last whole batch, whatever happened: reads never go past it.
            let cut = active
                .log_file()
                .set_len(active.size())
                .map_err(|e| Error::io(active.log_path(), e));
            taken?;
            cut?;
            // A roll: the writer's next segment is named at the log end.
            let next = self
                .local
                .dir
                .join(segment_file_name(w.log_end_offset, "log"));
            if w.log_end_offset == active.base_offset() || !self.local.fs.exists(&next) {
                break;
            }
            active.seal()?;
            let file = self
                .local
                .fs
                .open(&next, crate::io::OpenMode::ReadWrite)
                .map_err(|e| Error::io(&next, e))?;
            // Taken in batch by batch from its start, as the active segment's were.
            file.set_len(0).map_err(|e| Error::io(&next, e))?;
            drop(file);
            let leo = w.log_end_offset;
            let seg = Segment::open_active(
                &self.local.fs,
                &self.local.dir,
                leo,
                super::LocalLog::index_config(&self.local.config),
                Some((0, leo)),
            )?;
            w.segments.push(Arc::new(seg));
        }
        if w.log_end_offset != before {
            self.local.publish(&w);
        }
        Ok(w.log_end_offset)
    }

    /// Reads (and validates) the whole batches after the active segment's size, and takes
    /// them in. Stops at the end of the file, at a partial or invalid batch, or at a batch
    /// that does not follow the log end.
    fn take_appended(&self, w: &mut Writer, active: &Segment) -> Result<()> {
        let file = active.log_file();
        let path = active.log_path();
        let len = file.len().map_err(|e| Error::io(path, e))?;
        let start = active.size();
        let mut position = start;
        let mut next = w.log_end_offset;
        let mut batches = Vec::new();
        let mut buf = vec![0u8; BATCH_HEADER_SIZE];
        while position + BATCH_HEADER_SIZE as u64 <= len {
            buf.resize(BATCH_HEADER_SIZE, 0);
            file.read_exact_at(&mut buf, position)
                .map_err(|e| Error::io(path, e))?;
            let size = match Batch::parse(&buf, &self.local.config.decode_limits) {
                Ok((b, _)) => b.size_in_bytes(),
                Err(Error::BatchTruncated { needed, .. }) => {
                    usize::try_from(needed).map_err(|_| Error::BatchTruncated {
                        position,
                        needed,
                        available: len - position,
                    })?
                }
                Err(_) => break,
            };
            if position + size as u64 > len {
                break; // still being written
            }
            buf.resize(size, 0);
            file.read_exact_at(&mut buf, position)
                .map_err(|e| Error::io(path, e))?;
            let Ok(batch) = Batch::new(&buf) else { break };
            if batch.validate().is_err() || batch.base_offset() < next {
                break;
            }
            batches.push(BatchPos::of(&batch, position));
            next = batch.next_offset();
            position += size as u64;
        }
        if batches.is_empty() {
            return Ok(());
        }
        active.index_appended(start, &batches)?;
        w.log_end_offset = next;
        Ok(())
    }

    /// Fails when the log was closed (reads of a read-only log need nothing else).
    fn check_usable_for_reads(&self) -> Result<()> {
        if self.durability.is_closed() {
            return Err(Error::LogClosed {
                dir: self.local.dir.clone(),
            });
        }
        Ok(())
    }
}
