//! Walking the batches of a `.log` file read-only, trusting nothing in it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::io::{File, FileSystem, OpenMode, RealFs};
use crate::record::{Batch, DecodeLimits, BATCH_HEADER_SIZE};
use crate::segment::{check_segment_base, parse_segment_file_name};

/// Bytes read from a `.log` file at a time.
const READ_CHUNK: usize = 1 << 20;

/// Reads the batches of one `.log` file in order, read-only, checking only each batch's
/// frame (length and magic); call [`Batch::validate`] for the rest.
///
/// It reads ahead in large chunks, so walking a segment of small batches costs few
/// system calls. After an error (a damaged frame, a file ending mid-batch) it returns
/// nothing more, and [`SegmentReader::position`] is where the damage starts.
///
/// ```
/// use streamlog::{Log, LogConfig, OwnedRecord, Compression};
/// use streamlog::log::SegmentReader;
///
/// let dir = tempfile::tempdir()?;
/// let log = Log::open(dir.path(), LogConfig::default())?;
/// log.append_records(&[OwnedRecord::new(0, None, Some(b"v"))], Compression::None)?;
/// log.close()?;
///
/// let mut reader = SegmentReader::open(&dir.path().join("00000000000000000000.log"))?;
/// let (position, batch) = reader.next_batch()?.expect("one batch");
/// assert_eq!((position, batch.base_offset()), (0, 0));
/// assert!(reader.next_batch()?.is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SegmentReader {
    file: Arc<dyn File>,
    path: PathBuf,
    len: u64,
    position: u64,
    buf: Vec<u8>,
    buf_start: u64,
    limits: DecodeLimits,
    done: bool,
}

impl SegmentReader {
    /// Opens the `.log` file at `path` read-only on the real filesystem.
    pub fn open(path: &Path) -> Result<Self> {
        SegmentReader::open_in(&RealFs, path)
    }

    /// Opens the `.log` file at `path` read-only through `fs`.
    pub fn open_in(fs: &dyn FileSystem, path: &Path) -> Result<Self> {
        let file = fs
            .open(path, OpenMode::Read)
            .map_err(|e| Error::io(path, e))?;
        let len = file.len().map_err(|e| Error::io(path, e))?;
        Ok(SegmentReader {
            file,
            path: path.to_path_buf(),
            len,
            position: 0,
            buf: Vec::new(),
            buf_start: 0,
            limits: DecodeLimits::DEFAULT,
            done: false,
        })
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's length when it was opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file was empty when it was opened.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Byte position of the next batch; after an error, of the damaged bytes.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The next batch and its byte position, `None` at the end of the file or after an
    /// error. Errors carry what is wrong with the frame; a file that ends mid-batch is
    /// [`Error::BatchTruncated`] with the file position.
    pub fn next_batch(&mut self) -> Result<Option<(u64, Batch<'_>)>> {
        if self.done || self.position >= self.len {
            return Ok(None);
        }
        let position = self.position;
        let left = self.len - position;
        let header = (BATCH_HEADER_SIZE as u64).min(left);
        self.fill(header)?;
        let needed = match Batch::parse(self.buffered(), &self.limits) {
            Ok(_) => None,
            Err(Error::BatchTruncated { needed, .. }) if needed <= left => Some(needed),
            Err(Error::BatchTruncated { needed, .. }) => {
                self.done = true;
                return Err(Error::BatchTruncated {
                    position,
                    needed,
                    available: left,
                });
            }
            Err(e) => {
                self.done = true;
                return Err(e);
            }
        };
        if let Some(needed) = needed {
            self.fill(needed)?;
        }
        let limits = self.limits;
        let start = usize::try_from(position - self.buf_start).unwrap_or(usize::MAX);
        let bytes = self.buf.get(start..).unwrap_or_default();
        match Batch::parse(bytes, &limits) {
            Ok((batch, _)) => {
                self.position += batch.size_in_bytes() as u64;
                Ok(Some((position, batch)))
            }
            Err(e) => {
                self.done = true;
                Err(e)
            }
        }
    }

    /// The buffered bytes from the current position on.
    fn buffered(&self) -> &[u8] {
        let start = usize::try_from(self.position - self.buf_start).unwrap_or(usize::MAX);
        self.buf.get(start..).unwrap_or_default()
    }

    /// Makes sure `n` bytes from the current position are buffered.
    fn fill(&mut self, n: u64) -> Result<()> {
        let end = self.position + n;
        if self.position >= self.buf_start && end <= self.buf_start + self.buf.len() as u64 {
            return Ok(());
        }
        let want = n.max(READ_CHUNK as u64).min(self.len - self.position);
        let Ok(want) = usize::try_from(want) else {
            self.done = true;
            return Err(Error::TooLargeForMemory {
                what: "batch",
                size: want,
            });
        };
        self.buf.resize(want, 0);
        if let Err(e) = self.file.read_exact_at(&mut self.buf, self.position) {
            self.done = true;
            return Err(Error::io(&self.path, e));
        }
        self.buf_start = self.position;
        Ok(())
    }
}

/// The `.log` segment files of the partition directory `dir` (those named by a 20-digit
/// base offset), with their base offsets, in offset order.
///
/// A file whose base offset leaves no room for its offsets is
/// [`Error::SegmentBaseOutOfRange`].
pub fn list_segment_files(dir: &Path) -> Result<Vec<(i64, PathBuf)>> {
    let mut logs: Vec<(i64, PathBuf)> = RealFs
        .list(dir)
        .map_err(|e| Error::io(dir, e))?
        .into_iter()
        .filter_map(|p| parse_segment_file_name(&p, "log").map(|base| (base, p)))
        .collect();
    for (base, path) in &logs {
        check_segment_base(path, *base)?;
    }
    logs.sort();
    Ok(logs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BatchBuilder, BatchOptions};

    #[test]
    fn reader_walks_batches_across_chunk_boundaries() {
        let mut file = Vec::new();
        let mut expected = Vec::new();
        let mut base = 0i64;
        while file.len() < 3 * READ_CHUNK {
            let mut b = BatchBuilder::new(BatchOptions {
                base_offset: base,
                ..BatchOptions::default()
            });
            b.append(0, None, Some(&vec![7u8; 9_000]), &[]).unwrap();
            let bytes = b.build().unwrap();
            expected.push((file.len() as u64, base));
            file.extend_from_slice(&bytes);
            base += 1;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.log");
        std::fs::write(&path, &file).unwrap();
        let mut reader = SegmentReader::open(&path).unwrap();
        let mut got = Vec::new();
        while let Some((position, batch)) = reader.next_batch().unwrap() {
            batch.validate().unwrap();
            got.push((position, batch.base_offset()));
        }
        assert_eq!(got, expected);
        assert_eq!(reader.position(), file.len() as u64);
    }
}
