//! Appends through direct I/O: an active segment's `.log` file written in large aligned
//! chunks with `O_DIRECT`, around the page cache.
//!
//! Why: on a machine whose free memory must first be faulted back in from the host, a
//! buffered append pays for every new page-cache page and runs slower than the device
//! itself (`BENCHMARKS.md`, "Direct I/O"). Writing straight to the device skips that.
//!
//! How ([`DirectFile`]):
//! - Appended bytes are copied into an aligned buffer of `chunk` bytes that covers the log
//!   from a block boundary (`start`) to its end. When the buffer is full, the chunk goes to
//!   the file in one direct write and the buffer starts over at the next byte: small
//!   batches become large aligned writes.
//! - Bytes not yet in the file are read from the buffer, so readers see every appended
//!   byte at once, as with buffered appends.
//! - A sync writes the whole blocks held with a direct write and the partial last block
//!   through the page cache (so the file never holds more than the log), then fsyncs. That
//!   block stays in memory, and the next chunk write rewrites it in place, whole.
//!
//! Crash safety is the buffered path's: nothing is durable before a sync, a sync makes
//! everything appended before it durable, and the file always holds a prefix of what was
//! appended (the buffer only ever holds the newest bytes, and a rewrite of the partial
//! block writes the bytes already there again before the new ones).

use std::fmt;
use std::io;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::{AlignedBuf, File, MappedWords};

/// The alignment direct I/O needs here: of file positions, write lengths and memory. 4 KiB
/// covers devices with 512-byte and 4 KiB logical blocks.
pub const DIRECT_ALIGN: usize = 4096;

const ALIGN: u64 = DIRECT_ALIGN as u64;

/// A handle that writes a file with direct I/O (see [`FileSystem::open_direct`](super::FileSystem::open_direct)).
pub trait DirectWrite: Send + Sync + fmt::Debug {
    /// Writes all of `buf` at `pos`. `pos` and `buf.len()` must be multiples of
    /// [`DIRECT_ALIGN`] and `buf` must start on such a boundary; backends refuse anything
    /// else with `EINVAL`, as the kernel does.
    fn write_direct(&self, buf: &[u8], pos: u64) -> io::Result<()>;
}

/// Whether a direct write of `buf` at `pos` is aligned as [`DirectWrite`] requires.
pub(crate) fn direct_aligned(buf: &[u8], pos: u64) -> bool {
    pos % ALIGN == 0
        && buf.len() % DIRECT_ALIGN == 0
        && buf.as_ptr().align_offset(DIRECT_ALIGN) == 0
}

/// Wraps `file` (a `.log` file opened read-write) so that appends go through an aligned
/// buffer of `chunk` bytes (a multiple of [`DIRECT_ALIGN`]) and reach the file in chunks,
/// with `direct` (from [`FileSystem::open_direct`](super::FileSystem::open_direct)) when the
/// filesystem supports it, through the page cache otherwise.
pub(crate) fn direct_append_file(
    file: Arc<dyn File>,
    direct: Option<Box<dyn DirectWrite>>,
    chunk: usize,
) -> io::Result<Arc<dyn File>> {
    let chunk = chunk.max(DIRECT_ALIGN) / DIRECT_ALIGN * DIRECT_ALIGN;
    let end = file.len()?;
    Ok(Arc::new(DirectFile {
        file,
        direct,
        chunk,
        writer: Mutex::new(()),
        tail: RwLock::new(Tail {
            buf: None,
            start: end,
            len: 0,
            in_file: end,
        }),
    }))
}

/// What the log holds past the file, in memory.
struct Tail {
    /// `chunk` bytes while the log is appended to; `None` before the first append and after
    /// a write-back (then `start` is the end and nothing is held).
    buf: Option<AlignedBuf>,
    /// The log position of the buffer's first byte: a multiple of [`ALIGN`] while the buffer
    /// exists.
    start: u64,
    /// Bytes of the buffer in use: the log's bytes `start..start + len`.
    len: usize,
    /// The file holds the log's bytes `0..in_file` (at least `start`, at most the end).
    in_file: u64,
}

impl Tail {
    fn end(&self) -> u64 {
        self.start + self.len as u64
    }
}

/// A `.log` file appended to in aligned chunks (see the module docs).
pub(crate) struct DirectFile {
    /// The ordinary handle: reads, the partial block at a sync, cuts, fsync.
    file: Arc<dyn File>,
    direct: Option<Box<dyn DirectWrite>>,
    chunk: usize,
    /// Serialises appends, syncs and cuts (a log has one writer, but the trait takes
    /// `&self`). Readers never take it.
    writer: Mutex<()>,
    /// Held for reading while a chunk is written from the buffer (readers copy from it
    /// meanwhile), for writing only to change it.
    tail: RwLock<Tail>,
}

impl fmt::Debug for DirectFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectFile")
            .field("file", &self.file)
            .field("direct", &self.direct.is_some())
            .field("chunk", &self.chunk)
            .finish_non_exhaustive()
    }
}

impl DirectFile {
    /// Writes whole blocks at `pos` (a block boundary), directly when the filesystem can.
    fn write_blocks(&self, data: &[u8], pos: u64) -> io::Result<()> {
        match &self.direct {
            Some(d) => d.write_direct(data, pos),
            None => self.file.write_at(data, pos),
        }
    }

    /// Gives the tail a buffer starting at the block that holds its end, that block's bytes
    /// read back from the file: the next chunk write rewrites it whole.
    fn ensure_buffer(&self, t: &mut Tail) -> io::Result<()> {
        if t.buf.is_some() {
            return Ok(());
        }
        let end = t.end();
        let start = end - end % ALIGN;
        let keep = (end - start) as usize;
        let mut buf = AlignedBuf::with_alignment(self.chunk, DIRECT_ALIGN);
        if keep > 0 {
            let dst = buf.as_mut_slice().get_mut(..keep).unwrap_or_default();
            self.file.read_exact_at(dst, start)?;
        }
        t.buf = Some(buf);
        t.start = start;
        t.len = keep;
        Ok(())
    }

    /// Writes the full buffer as one chunk and starts the buffer over after it.
    fn write_chunk(&self) -> io::Result<()> {
        {
            let t = self.tail.read();
            let data = t.buf.as_ref().map(|b| b.as_slice()).unwrap_or_default();
            let data = data.get(..self.chunk).unwrap_or_default();
            self.write_blocks(data, t.start)?;
        }
        let mut t = self.tail.write();
        t.start += self.chunk as u64;
        t.len = 0;
        t.in_file = t.in_file.max(t.start);
        Ok(())
    }

    /// Writes everything held to the file (the whole blocks directly, the partial last
    /// block through the page cache). With `release`, frees the buffer too; otherwise the
    /// buffer keeps the partial block at its front. The caller holds `writer`.
    fn write_held(&self, release: bool) -> io::Result<()> {
        let (whole, end) = {
            let t = self.tail.read();
            let Some(buf) = t.buf.as_ref() else {
                return Ok(());
            };
            let data = buf.as_slice();
            let end = t.end();
            let whole = t.len - t.len % DIRECT_ALIGN;
            let whole_end = t.start + whole as u64;
            if whole > 0 && t.in_file < whole_end {
                self.write_blocks(data.get(..whole).unwrap_or_default(), t.start)?;
            }
            let from = t.in_file.max(whole_end);
            if end > from {
                let at = (from - t.start) as usize;
                self.file
                    .write_at(data.get(at..t.len).unwrap_or_default(), from)?;
            }
            (whole, end)
        };
        let mut t = self.tail.write();
        t.in_file = end;
        if release {
            t.buf = None;
            t.start = end;
            t.len = 0;
        } else if whole > 0 {
            let len = t.len;
            if let Some(buf) = t.buf.as_mut() {
                buf.as_mut_slice().copy_within(whole..len, 0);
            }
            t.start += whole as u64;
            t.len -= whole;
        }
        Ok(())
    }
}

impl File for DirectFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let t = self.tail.read();
        if pos >= t.start {
            let from = usize::try_from(pos - t.start).unwrap_or(usize::MAX);
            let held = t.buf.as_ref().map(|b| b.as_slice()).unwrap_or_default();
            let src = held
                .get(..t.len)
                .and_then(|h| h.get(from..))
                .unwrap_or_default();
            let n = src.len().min(buf.len());
            if let (Some(dst), Some(src)) = (buf.get_mut(..n), src.get(..n)) {
                dst.copy_from_slice(src);
            }
            return Ok(n);
        }
        // Below `start` the file has every byte, and keeps it while the log does.
        let limit = t.start;
        drop(t);
        let want = usize::try_from(limit - pos)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        self.file
            .read_at(buf.get_mut(..want).unwrap_or_default(), pos)
    }

    fn append(&self, bufs: &[&[u8]]) -> io::Result<()> {
        let _one = self.writer.lock();
        for part in bufs {
            let mut rest: &[u8] = part;
            while !rest.is_empty() {
                let full = {
                    let mut t = self.tail.write();
                    self.ensure_buffer(&mut t)?;
                    let at = t.len;
                    let n = (self.chunk - at).min(rest.len());
                    let dst = t
                        .buf
                        .as_mut()
                        .and_then(|b| b.as_mut_slice().get_mut(at..at + n));
                    if let (Some(dst), Some(src)) = (dst, rest.get(..n)) {
                        dst.copy_from_slice(src);
                    }
                    t.len += n;
                    rest = rest.get(n..).unwrap_or_default();
                    t.len == self.chunk
                };
                if full {
                    self.write_chunk()?;
                }
            }
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        // Not how a log is written; keep it simple: everything to the file, then through it.
        let _one = self.writer.lock();
        self.write_held(true)?;
        self.file.write_at(buf, pos)?;
        let len = self.file.len()?;
        let mut t = self.tail.write();
        t.start = len;
        t.in_file = len;
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.tail.read().end())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let _one = self.writer.lock();
        if len > self.tail.read().end() {
            // Growing with zeros is not how a log grows either: through the file.
            self.write_held(true)?;
            self.file.set_len(len)?;
            let mut t = self.tail.write();
            t.start = len;
            t.in_file = len;
            return Ok(());
        }
        let mut t = self.tail.write();
        // The file first: if it cannot be cut (a failed write may have left bytes past
        // `len`), nothing changes and the caller sees a length that disagrees.
        if self.file.len()? > len {
            self.file.set_len(len)?;
        }
        if len >= t.start {
            t.len = (len - t.start) as usize;
        } else {
            // Below the buffer: drop it; the next append reads the partial block back.
            t.buf = None;
            t.start = len;
            t.len = 0;
        }
        t.in_file = t.in_file.min(len);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let _one = self.writer.lock();
        self.write_held(false)?;
        self.file.sync_data()
    }

    fn map_words(&self, len: u64, writable: bool) -> io::Result<Arc<dyn MappedWords>> {
        self.file.map_words(len, writable)
    }

    fn write_back(&self) -> io::Result<()> {
        let _one = self.writer.lock();
        self.write_held(true)
    }
}

impl Drop for DirectFile {
    fn drop(&mut self) {
        // Appended bytes reach the file when the handle goes, as buffered appends are in the
        // page cache already: a log dropped without a sync loses only what a crash would.
        let _ = self.write_held(true);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::io::{FileSystem, OpenMode, SimFs};

    /// The simulation's splitmix64, seeded: the same run every time.
    struct Rng(crate::rng::Rng);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0.below(usize::try_from(n).unwrap()) as u64
        }
    }

    fn open(fs: &SimFs, direct: bool, chunk: usize) -> Arc<dyn File> {
        let path = Path::new("/d/f.log");
        let file = fs.open(path, OpenMode::ReadWrite).unwrap();
        fs.sync_dir(Path::new("/d")).unwrap();
        let d = if direct {
            fs.open_direct(path).unwrap()
        } else {
            None
        };
        direct_append_file(file, d, chunk).unwrap()
    }

    fn read_all(f: &dyn File, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        f.read_exact_at(&mut out, 0).unwrap();
        out
    }

    /// Random appends, reads, syncs, cuts, write-backs and reopens against a model; then a
    /// power cut keeps a prefix at least as long as the last sync. The simulated direct
    /// handle refuses unaligned writes, so every chunk write is checked for alignment too.
    #[test]
    fn matches_a_model_and_a_crash_keeps_a_synced_prefix() {
        for seed in 0..200u64 {
            let mut rng = Rng(crate::rng::Rng::new(seed));
            let direct = seed % 4 != 3;
            let chunk = [4096, 8192, 16384][rng.below(3) as usize];
            let fs = SimFs::new(seed);
            fs.create_dir_all(Path::new("/d")).unwrap();
            let mut f = open(&fs, direct, chunk);
            let mut model: Vec<u8> = Vec::new();
            let mut synced = 0usize;
            // A cut not yet synced may be undone by a crash (on any filesystem).
            let mut cut_unsynced = false;
            for op in 0..60 {
                match rng.below(10) {
                    0..=4 => {
                        let max = if rng.below(4) == 0 { 20_000 } else { 300 };
                        let n = rng.below(max) as usize;
                        let a: Vec<u8> =
                            (0..n).map(|i| (i as u64 * 31 + seed + op) as u8).collect();
                        let split = rng.below(n as u64 + 1) as usize;
                        f.append(&[&a[..split], &a[split..]]).unwrap();
                        model.extend_from_slice(&a);
                    }
                    5 => {
                        f.sync_data().unwrap();
                        synced = model.len();
                        cut_unsynced = false;
                        assert_eq!(fs.read_durable(Path::new("/d/f.log")).unwrap(), model);
                    }
                    6 => {
                        let to = rng.below(model.len() as u64 + 1) as usize;
                        f.set_len(to as u64).unwrap();
                        model.truncate(to);
                        synced = synced.min(to);
                        cut_unsynced = true;
                    }
                    7 => {
                        f.write_back().unwrap();
                        let on_disk = fs.read_current(Path::new("/d/f.log")).unwrap();
                        assert_eq!(on_disk, model, "seed {seed} op {op}: write-back");
                    }
                    8 => {
                        drop(f);
                        assert_eq!(fs.read_current(Path::new("/d/f.log")).unwrap(), model);
                        f = open(&fs, direct, chunk);
                    }
                    _ => {
                        let pos = rng.below(model.len() as u64 + 10);
                        let mut buf = vec![0; rng.below(30_000) as usize];
                        let mut got = 0;
                        while got < buf.len() {
                            let n = f.read_at(&mut buf[got..], pos + got as u64).unwrap();
                            if n == 0 {
                                break;
                            }
                            got += n;
                        }
                        let from = (pos as usize).min(model.len());
                        let want = &model[from..(from + buf.len()).min(model.len())];
                        assert_eq!(&buf[..got], want, "seed {seed} op {op}: read at {pos}");
                    }
                }
                assert_eq!(f.len().unwrap(), model.len() as u64, "seed {seed} op {op}");
                // The file never holds bytes the log does not.
                let current = fs.read_current(Path::new("/d/f.log")).unwrap();
                assert!(
                    model.starts_with(&current),
                    "seed {seed} op {op}: file not a prefix"
                );
            }
            assert_eq!(read_all(&*f, model.len()), model);
            let after = fs.crash();
            let kept = after
                .read_durable(Path::new("/d/f.log"))
                .unwrap_or_default();
            assert!(kept.len() >= synced, "seed {seed}: synced bytes lost");
            assert_eq!(
                kept[..synced],
                model[..synced],
                "seed {seed}: synced bytes changed"
            );
            if !cut_unsynced {
                assert!(
                    model.starts_with(&kept),
                    "seed {seed}: crash left a non-prefix"
                );
            }
        }
    }

    #[test]
    fn unaligned_direct_writes_are_refused() {
        let fs = SimFs::new(1);
        fs.create_dir_all(Path::new("/d")).unwrap();
        let _file = fs.open(Path::new("/d/f"), OpenMode::ReadWrite).unwrap();
        let d = fs.open_direct(Path::new("/d/f")).unwrap().unwrap();
        let buf = AlignedBuf::with_alignment(2 * DIRECT_ALIGN, DIRECT_ALIGN);
        d.write_direct(buf.as_slice(), 0).unwrap();
        let slice = buf.as_slice();
        for (data, pos) in [
            (&slice[..DIRECT_ALIGN], 512),
            (&slice[..100], 0),
            (&slice[1..DIRECT_ALIGN + 1], 0),
        ] {
            let e = d.write_direct(data, pos).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(22));
        }
        assert!(fs.open_direct(Path::new("/d/missing")).is_err());
    }

    /// The real filesystem, where it takes `O_DIRECT` (the temp directory may be a tmpfs,
    /// and then the page cache stands in): appends read back before and after a sync.
    #[test]
    fn real_files_read_back_what_was_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.log");
        let fs = crate::io::RealFs;
        let file = fs.open(&path, OpenMode::ReadWrite).unwrap();
        let direct = fs.open_direct(&path).unwrap();
        let f = direct_append_file(file, direct, 8192).unwrap();
        let mut model = Vec::new();
        for i in 0..50u32 {
            let a: Vec<u8> = (0..(i * 97 % 3000)).map(|j| (i + j) as u8).collect();
            f.append(&[&a]).unwrap();
            model.extend_from_slice(&a);
            if i % 7 == 0 {
                f.sync_data().unwrap();
                assert_eq!(std::fs::read(&path).unwrap(), model);
            }
        }
        assert_eq!(read_all(&*f, model.len()), model);
        assert!(f.as_std().is_none());
        drop(f);
        assert_eq!(std::fs::read(&path).unwrap(), model);
    }
}
