//! The one seam for file I/O.
//!
//! Every byte streamlog stores goes through a [`FileSystem`] and the [`File`]s and
//! [`MappedWords`] it hands out. [`RealFs`] is the operating system; a simulated backend with
//! crash and fault injection plugs in behind the same traits. The traits are kept small: what
//! a log needs and nothing else.

mod direct;
mod lock;
mod overlay;
mod real;
mod sim;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

pub(crate) use direct::{direct_aligned, direct_append_file};
pub use direct::{DirectWrite, DIRECT_ALIGN};
pub use lock::{lock_dir, lock_path, FileLock, LOCK_FILE};
pub use overlay::ReadOnlyFs;
pub use real::RealFs;
pub use sim::{SimError, SimFs, SimOp, SpaceLimitMode};

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; created if missing.
    ReadWrite,
    /// Read and write; created, and must not already exist.
    CreateNew,
}

/// A directory of files: the operations a log needs, and no more.
pub trait FileSystem: Send + Sync + std::fmt::Debug {
    /// Opens (or creates, per `mode`) the file at `path`.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>>;
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// The paths of the entries of a directory.
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Renames a file, replacing any file at `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes creates, renames and removes in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Whether a file exists at `path`.
    fn exists(&self, path: &Path) -> bool;
    /// Removes an empty directory. Backends that cannot refuse with `Unsupported`.
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("cannot remove directory {}", path.display()),
        ))
    }
    /// When the file at `path` was last modified, in milliseconds since the Unix epoch;
    /// `None` when the filesystem keeps no such time (retention then relies on record
    /// timestamps alone).
    fn modified_ms(&self, path: &Path) -> io::Result<Option<i64>> {
        let _ = path;
        Ok(None)
    }
    /// Takes an exclusive lock on the file at `path` (created if missing), held until the
    /// returned value is dropped; fails with [`io::ErrorKind::WouldBlock`] while another
    /// holder has it. [`RealFs`] locks with `flock` (between processes, and between two
    /// opens in one process) and writes the holder's process id into the file; [`SimFs`]
    /// keeps its locks in memory. Backends without locks grant every request.
    fn try_lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        let _ = path;
        Ok(Box::new(lock::NoLock))
    }
    /// Opens the existing file at `path` for direct I/O (`O_DIRECT`): writes that bypass the
    /// page cache, at positions and of lengths that are multiples of [`DIRECT_ALIGN`], from
    /// memory aligned to it. `Ok(None)` when this filesystem cannot (tmpfs, a platform
    /// without `O_DIRECT`, a backend without it): callers then write through the page cache.
    /// Direct writes are no more durable than buffered ones until the file is synced (the
    /// device may cache them).
    fn open_direct(&self, path: &Path) -> io::Result<Option<Box<dyn DirectWrite>>> {
        let _ = path;
        Ok(None)
    }
}

/// An open file. All methods take `&self`: a file is shared between the one writer and any
/// number of readers, and positioned reads never disturb appends.
#[allow(clippy::len_without_is_empty)]
pub trait File: Send + Sync + std::fmt::Debug {
    /// Reads up to `buf.len()` bytes at `pos`; returns how many were read (0 at the end).
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
    /// Appends `bufs` in order at the end of the file, all or an error.
    fn append(&self, bufs: &[&[u8]]) -> io::Result<()>;
    /// Writes `buf` at `pos` (used for small files written whole).
    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Truncates or extends the file (extension reads as zeros).
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the file's data durable (fdatasync).
    fn sync_data(&self) -> io::Result<()>;
    /// Maps the first `len` bytes (a multiple of 4) as 32-bit words for lock-free sharing
    /// between the writer and readers. `writable` maps read-write and shared.
    fn map_words(&self, len: u64, writable: bool) -> io::Result<Arc<dyn MappedWords>>;
    /// The operating-system file behind this handle, when there is one (for `sendfile`).
    /// `None` also when the handle holds bytes the file does not have yet (a direct-I/O
    /// append file), since the file alone would show a shorter log.
    fn as_std(&self) -> Option<&std::fs::File> {
        None
    }

    /// Writes to the file whatever this handle still holds in memory (no sync) and frees
    /// that memory; called when no more appends are expected soon (a segment is sealed).
    /// Plain handles hold nothing.
    fn write_back(&self) -> io::Result<()> {
        Ok(())
    }

    /// Reserves disk blocks for the bytes `offset..offset + len` ahead of appends, leaving
    /// the file's length and contents as they are (Linux's `fallocate` with
    /// `FALLOC_FL_KEEP_SIZE`): a hint that makes later appends cheaper. `Ok(false)` when
    /// this handle does not reserve (the default); a later [`set_len`](Self::set_len) to
    /// the current length releases what lies past the end.
    fn preallocate(&self, offset: u64, len: u64) -> io::Result<bool> {
        let _ = (offset, len);
        Ok(false)
    }

    /// Reads exactly `buf.len()` bytes at `pos`, or fails with `UnexpectedEof`.
    fn read_exact_at(&self, mut buf: &mut [u8], mut pos: u64) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.read_at(buf, pos)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("file ends before byte {}", pos + buf.len() as u64),
                ));
            }
            buf = buf.get_mut(n..).unwrap_or_default();
            pos += n as u64;
        }
        Ok(())
    }
}

/// A mapped region seen as 32-bit words, shared between one writer and many readers.
///
/// Words hold big-endian file bytes: use `u32::from_be(word.load(..))` and
/// `word.store(v.to_be(), ..)`. Writers publish with a `Release` store of a separate counter
/// and readers read the counter with `Acquire`, so readers never see a half-written entry.
pub trait MappedWords: Send + Sync + std::fmt::Debug {
    /// The mapped words.
    fn words(&self) -> &[AtomicU32];
    /// Writes dirty pages back to the file (msync).
    fn flush(&self) -> io::Result<()>;
}

/// Writes a small file atomically and durably: `path.tmp`, fsync, rename over `path`, fsync
/// of the directory. A crash leaves either the old file or the new one.
pub fn write_file_atomic(fs: &dyn FileSystem, path: &Path, bytes: &[u8]) -> crate::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    write_file_atomic_via(fs, path, Path::new(&tmp), bytes)
}

/// [`write_file_atomic`] through a temporary file the caller names (in the same directory),
/// for files whose `<name>.tmp` could be mistaken for another file or be too long a name.
pub fn write_file_atomic_via(
    fs: &dyn FileSystem,
    path: &Path,
    tmp: &Path,
    bytes: &[u8],
) -> crate::Result<()> {
    let err = |p: &Path| {
        let p = p.to_path_buf();
        move |e| crate::Error::io(p, e)
    };
    let file = fs.open(tmp, OpenMode::ReadWrite).map_err(err(tmp))?;
    file.set_len(0).map_err(err(tmp))?;
    file.write_at(bytes, 0).map_err(err(tmp))?;
    file.sync_data().map_err(err(tmp))?;
    drop(file);
    fs.rename(tmp, path).map_err(err(path))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs.sync_dir(dir).map_err(err(dir))?;
    Ok(())
}

/// Reads a whole (small) file.
pub fn read_file(fs: &dyn FileSystem, path: &Path) -> crate::Result<Vec<u8>> {
    let file = fs
        .open(path, OpenMode::Read)
        .map_err(|e| crate::Error::io(path, e))?;
    let len = file.len().map_err(|e| crate::Error::io(path, e))?;
    let len = usize::try_from(len).map_err(|_| crate::Error::TooLargeForMemory {
        what: "file",
        size: len,
    })?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, 0)
        .map_err(|e| crate::Error::io(path, e))?;
    Ok(buf)
}

/// A read buffer on a 64-byte boundary: `read()` into aligned memory runs several times
/// faster than into a typical (16-byte aligned) `Vec` on the machines we measured.
#[derive(Debug)]
pub struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
    align: usize,
}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes starting on a 64-byte boundary.
    pub fn new(len: usize) -> Self {
        AlignedBuf::with_alignment(len, 64)
    }

    /// A zeroed buffer of `len` bytes starting on an `align`-byte boundary (a power of two;
    /// direct I/O wants the device's block size, [`DIRECT_ALIGN`]). Over-allocates by
    /// `align` bytes instead of asking the allocator for an aligned block, so no `unsafe`.
    pub fn with_alignment(len: usize, align: usize) -> Self {
        let align = align.max(1).next_power_of_two();
        let raw = vec![0u8; len + align];
        let start = raw.as_ptr().align_offset(align).min(align);
        AlignedBuf {
            raw,
            start,
            len,
            align,
        }
    }

    /// Makes the buffer `len` bytes long, reusing its memory when it is large enough (the
    /// bytes are then whatever the buffer held; callers overwrite them).
    pub fn resize(&mut self, len: usize) {
        if self.start + len > self.raw.len() {
            *self = AlignedBuf::with_alignment(len, self.align);
        } else {
            self.len = len;
        }
    }

    /// The buffer's bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.raw
            .get_mut(self.start..self.start + self.len)
            .unwrap_or_default()
    }

    /// The buffer's bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.raw
            .get(self.start..self.start + self.len)
            .unwrap_or_default()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Shortens the buffer to `len` bytes (no-op when already shorter).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}
