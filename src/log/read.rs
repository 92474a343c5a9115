//! Reading: whole stored batches by offset, as bytes or as a file range for `sendfile`.

use std::ops::ControlFlow;
use std::sync::Arc;

use super::{Log, View};
use crate::error::{Error, Result};
use crate::io::File;

/// A byte range of a segment file: what a server hands to `sendfile`.
#[derive(Debug, Clone)]
pub struct FileSlice {
    file: Arc<dyn File>,
    position: u64,
    len: u64,
    /// The log's truncation generation when the slice was read (see
    /// [`Log::slice_is_current`]).
    generation: u64,
}

impl FileSlice {
    /// The file, for `sendfile` (the OS file when the log is on the real filesystem).
    pub fn file(&self) -> &Arc<dyn File> {
        &self.file
    }

    /// The operating-system file, when there is one.
    pub fn std_file(&self) -> Option<&std::fs::File> {
        self.file.as_std()
    }

    /// Byte position of the first batch in the file.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the slice is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads the slice's bytes into `buf` (which must be `len()` bytes long).
    pub fn read_into(&self, buf: &mut [u8]) -> Result<()> {
        self.file
            .read_exact_at(buf, self.position)
            .map_err(|e| Error::io(format!("{:?}", self.file), e))
    }

    /// Reads the slice's bytes.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let len = usize::try_from(self.len).map_err(|_| Error::TooLargeForMemory {
            what: "file slice",
            size: self.len,
        })?;
        let mut buf = vec![0u8; len];
        self.read_into(&mut buf)?;
        Ok(buf)
    }
}

/// The result of a read: whole batches from one segment.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FetchData {
    /// The batches, as a file range; `None` when there is nothing to read.
    pub slice: Option<FileSlice>,
    /// Base offset of the first batch returned (it may start below the offset asked for).
    pub first_batch_offset: Option<i64>,
    /// The offset after the last batch returned.
    pub next_offset: i64,
    /// The log end offset when the read was made.
    pub log_end_offset: i64,
    /// For a read_committed [`Log::fetch`]: the aborted transactions overlapping the
    /// batches returned; `None` for other reads.
    pub aborted_transactions: Option<Vec<crate::AbortedTransaction>>,
    /// For a read_committed [`Log::fetch`]: the last stable offset it read below.
    pub last_stable_offset: Option<i64>,
}

impl Log {
    /// Whether `slice` (read from this log) still covers the batches it was read as: no
    /// truncation of the log has begun since. A truncation shows readers the shorter log
    /// before it cuts or rewrites any file, so a check made *after* the slice's bytes were
    /// read or sent answers for every one of them: `true` means they were the batches,
    /// `false` that some may have been cut or overwritten, and the read must be dropped or
    /// made again. (Appends, retention, DeleteRecords and compaction never change bytes a
    /// slice covers: they write past the end, or remove or replace whole files, which an
    /// open handle keeps reading as they were.)
    ///
    /// ```
    /// use streamlog::{Compression, Log, LogConfig, OwnedRecord};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let log = Log::open(dir.path(), LogConfig::default())?;
    /// for v in [b"a", b"b"] {
    ///     log.append_records(&[OwnedRecord::new(0, None, Some(v))], Compression::None)?;
    /// }
    /// let slice = log.read(0, 1 << 20, None)?.slice.expect("two batches");
    /// let bytes = slice.to_vec()?; // or sent with sendfile
    /// assert!(log.slice_is_current(&slice)); // `bytes` are the two batches
    /// log.truncate_to(1)?;
    /// assert!(!log.slice_is_current(&slice)); // what the slice covers may have changed
    /// # drop(bytes);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn slice_is_current(&self, slice: &FileSlice) -> bool {
        self.local.view.read().generation == slice.generation
    }

    /// Whole batches starting with the one that holds `offset`, from a single segment, up
    /// to `max_bytes` (but always at least one batch, even a larger one, as Kafka does), and
    /// only batches whose last offset is below `upper_bound` (a high watermark or last
    /// stable offset) when one is given.
    ///
    /// Reading at the log end returns no batches; below the log start offset or past the
    /// end is [`Error::OffsetOutOfRange`].
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        upper_bound: Option<i64>,
    ) -> Result<FetchData> {
        let view = self.view();
        self.local.read_in(&view, offset, max_bytes, upper_bound)
    }

    /// [`Log::read`], returning the batches' bytes. A truncation racing with the read is
    /// detected and the read retried, so the bytes are always whole batches.
    pub fn read_bytes(
        &self,
        offset: i64,
        max_bytes: usize,
        upper_bound: Option<i64>,
    ) -> Result<Vec<u8>> {
        loop {
            let view = self.view();
            let read = self
                .local
                .read_in(&view, offset, max_bytes, upper_bound)
                .and_then(|data| match &data.slice {
                    Some(s) => s.to_vec(),
                    None => Ok(Vec::new()),
                });
            // A truncation since the view was taken can have cut the file under the read
            // (an I/O or frame error) or rewritten it (wrong bytes): either way, read again.
            if self.local.view.read().generation == view.generation {
                return read;
            }
        }
    }
}

/// Whole batches starting with the one that holds `offset` under `view` (see
/// [`Log::read`]): the local log's read.
pub(crate) fn read_in(
    view: &View,
    offset: i64,
    max_bytes: usize,
    upper_bound: Option<i64>,
) -> Result<FetchData> {
    let empty = |next| FetchData {
        slice: None,
        first_batch_offset: None,
        next_offset: next,
        log_end_offset: view.log_end_offset,
        aborted_transactions: None,
        last_stable_offset: None,
    };
    if offset < view.log_start_offset || offset > view.log_end_offset {
        return Err(Error::OffsetOutOfRange {
            offset,
            log_start_offset: view.log_start_offset,
            log_end_offset: view.log_end_offset,
        });
    }
    let bound = upper_bound.unwrap_or(i64::MAX).min(view.log_end_offset);
    if offset >= bound {
        return Ok(empty(offset));
    }
    // Below the first segment's base (a replica's first batch can start past the log
    // start offset, leaving a gap) the next batch is in the first segment, as it is for
    // a gap inside a segment; answering "nothing" would stall the reader forever.
    let mut i = view.segment_index(offset).unwrap_or(0);
    while let Some(seg) = view.segments.get(i) {
        let end = view.readable_size(i);
        let Some(first) = seg.find_batch(offset, end)? else {
            i += 1;
            continue;
        };
        if first.last_offset >= bound {
            return Ok(empty(offset));
        }
        let mut len = first.size;
        let mut next = first.last_offset + 1;
        let max = max_bytes as u64;
        // A first batch that fills the read needs no look at what follows.
        if len < max {
            // Skip through the offset index to the last batch known to fit, and read
            // headers only from there.
            let limit = first.position.saturating_add(max).min(end);
            let from = match seg.indexed_batch_within(&first, limit, bound)? {
                Some(position) => {
                    len = position - first.position;
                    position
                }
                None => first.position + first.size,
            };
            seg.scan(from, end, |b| {
                if b.last_offset >= bound || len + b.size > max {
                    return ControlFlow::Break(());
                }
                len += b.size;
                next = b.last_offset + 1;
                ControlFlow::Continue(())
            })?;
        }
        return Ok(FetchData {
            slice: Some(FileSlice {
                file: Arc::clone(seg.log_file()),
                position: first.position,
                len,
                generation: view.generation,
            }),
            first_batch_offset: Some(first.base_offset),
            next_offset: next,
            log_end_offset: view.log_end_offset,
            aborted_transactions: None,
            last_stable_offset: None,
        });
    }
    Ok(empty(offset))
}
