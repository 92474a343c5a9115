//! The real filesystem, through `std::fs` and `memmap2`.

use std::fs::OpenOptions;
use std::io::{self, IoSlice, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use super::{DirectWrite, File, FileLock, FileSystem, MappedWords, OpenMode};

/// The operating system's filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

impl RealFs {
    /// A shared handle, as logs take it.
    pub fn shared() -> Arc<dyn FileSystem> {
        Arc::new(RealFs)
    }
}

impl FileSystem for RealFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>> {
        let mut o = OpenOptions::new();
        o.read(true);
        match mode {
            OpenMode::Read => {}
            OpenMode::ReadWrite => {
                o.write(true).create(true);
            }
            OpenMode::CreateNew => {
                o.write(true).create_new(true);
            }
        }
        let file = o.open(path)?;
        Ok(Arc::new(RealFile {
            file,
            at_end: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.path()))
            .collect()
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn try_lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        // Never truncated on open: the holder's pid stays readable to whoever is refused.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!("{} is locked", path.display()),
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        // The pid is only a hint for the error message of the next process refused.
        let pid = format!("{}\n", std::process::id());
        let _ = file.set_len(0);
        let _ = file.write_all_at(pid.as_bytes(), 0);
        Ok(Box::new(RealLock { file }))
    }

    fn open_direct(&self, path: &Path) -> io::Result<Option<Box<dyn DirectWrite>>> {
        open_direct(path)
    }

    fn modified_ms(&self, path: &Path) -> io::Result<Option<i64>> {
        let modified = std::fs::metadata(path)?.modified()?;
        Ok(modified
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_millis()).ok()))
    }
}

/// `O_DIRECT` on Linux; `None` where the filesystem refuses it (tmpfs says `EINVAL`).
#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> io::Result<Option<Box<dyn DirectWrite>>> {
    use std::os::unix::fs::OpenOptionsExt;
    match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    {
        Ok(file) => Ok(Some(Box::new(RealDirect { file }))),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Other platforms: through the page cache.
#[cfg(not(target_os = "linux"))]
fn open_direct(path: &Path) -> io::Result<Option<Box<dyn DirectWrite>>> {
    let _ = path;
    Ok(None)
}

/// A file opened with `O_DIRECT`, for aligned writes only.
#[derive(Debug)]
struct RealDirect {
    file: std::fs::File,
}

impl DirectWrite for RealDirect {
    fn write_direct(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        if !super::direct_aligned(buf, pos) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "direct write not aligned to DIRECT_ALIGN",
            ));
        }
        self.file.write_all_at(buf, pos)
    }

    fn writes_in_background(&self) -> bool {
        true
    }
}

/// A held `flock`, released explicitly when dropped.
///
/// Closing our descriptor alone is not enough: a `flock` belongs to the open file
/// description, and a child process forked by another thread holds a copy of every
/// descriptor until it execs (close-on-exec), so the lock would outlive `close` for that
/// window and a reopen in this process would be refused. `LOCK_UN` releases it for every
/// copy.
#[derive(Debug)]
struct RealLock {
    file: std::fs::File,
}

impl FileLock for RealLock {}

impl Drop for RealLock {
    fn drop(&mut self) {
        // Best effort: if unlocking fails, closing the file still releases the lock once
        // no other copy of the descriptor remains.
        let _ = self.file.unlock();
    }
}

#[derive(Debug)]
struct RealFile {
    file: std::fs::File,
    /// Whether the file cursor is known to be at the end (saves an `lseek` per append).
    at_end: std::sync::atomic::AtomicBool,
}

impl File for RealFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        loop {
            match self.file.read_at(buf, pos) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }

    fn append(&self, bufs: &[&[u8]]) -> io::Result<()> {
        // Writes go where the file cursor is, so put it at the end first: a file just opened
        // has its cursor at 0 (appending there would overwrite the first batches of a
        // reopened segment), and `write_at` can extend a file without moving it. Only the one
        // writer appends, so nothing moves the cursor between this seek and the writes.
        use std::sync::atomic::Ordering;
        let mut f = &self.file;
        if !self.at_end.load(Ordering::Acquire) {
            f.seek(io::SeekFrom::End(0))?;
            self.at_end.store(true, Ordering::Release);
        }
        // Until this append completes the cursor may stop short of the end.
        self.at_end.store(false, Ordering::Release);
        // A batch is a header and a body: two slices, kept on the stack (no allocation
        // per append); more go to the heap.
        let mut inline = [IoSlice::new(&[]); 4];
        let mut heap: Vec<IoSlice<'_>>;
        let mut slices: &mut [IoSlice<'_>] = if bufs.len() <= inline.len() {
            for (dst, b) in inline.iter_mut().zip(bufs) {
                *dst = IoSlice::new(b);
            }
            inline.get_mut(..bufs.len()).unwrap_or_default()
        } else {
            heap = bufs.iter().map(|b| IoSlice::new(b)).collect();
            heap.as_mut_slice()
        };
        while !slices.is_empty() {
            match f.write_vectored(slices) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "write returned 0 bytes",
                    ))
                }
                Ok(n) => IoSlice::advance_slices(&mut slices, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.at_end
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        // May extend the file without moving the cursor.
        self.at_end
            .store(false, std::sync::atomic::Ordering::Release);
        self.file.write_all_at(buf, pos)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        use std::sync::atomic::Ordering;
        self.at_end.store(false, Ordering::Release);
        self.file.set_len(len)?;
        (&self.file).seek(io::SeekFrom::Start(len))?;
        self.at_end.store(true, Ordering::Release);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    #[cfg(target_os = "linux")]
    fn preallocate(&self, offset: u64, len: u64) -> io::Result<bool> {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len))
        else {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        };
        loop {
            // SAFETY: `fallocate` takes a file descriptor and plain integers; the descriptor
            // is this handle's, open for as long as `self.file` lives.
            let rc = unsafe {
                libc::fallocate(
                    self.file.as_raw_fd(),
                    libc::FALLOC_FL_KEEP_SIZE,
                    offset,
                    len,
                )
            };
            if rc == 0 {
                return Ok(true);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    fn map_words(&self, len: u64, writable: bool) -> io::Result<Arc<dyn MappedWords>> {
        if len % 4 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("mapping length {len} is not a multiple of 4"),
            ));
        }
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mapping too large"))?;
        if len == 0 {
            return Ok(Arc::new(EmptyMap));
        }
        let map = if writable {
            // SAFETY: the file is only changed through this mapping (by the one writer) and
            // through `set_len`, which never shrinks it below the words in use; every access
            // goes through the atomic view in `words`, so concurrent readers are sound.
            let map = unsafe { memmap2::MmapOptions::new().len(len).map_mut(&self.file)? };
            // A writable index is a preallocated, mostly sparse file filled from the front
            // and searched at random. With the default advice the first touch of a page
            // reads around it (the device's read-ahead, 8 MiB on our VM): zeroed page cache
            // for entries that do not exist yet, paid by the append that crosses the page.
            // Advice is only a hint, so failing to give it changes nothing.
            let _ = map.advise(memmap2::Advice::Random);
            Mapping::Rw(map)
        } else {
            // SAFETY: as above; a read-only mapping is only read through atomic loads.
            Mapping::Ro(unsafe { memmap2::MmapOptions::new().len(len).map(&self.file)? })
        };
        Ok(Arc::new(RealMap { map, len }))
    }

    fn as_std(&self) -> Option<&std::fs::File> {
        Some(&self.file)
    }
}

#[derive(Debug)]
enum Mapping {
    Rw(memmap2::MmapMut),
    Ro(memmap2::Mmap),
}

#[derive(Debug)]
struct RealMap {
    map: Mapping,
    len: usize,
}

impl MappedWords for RealMap {
    fn words(&self) -> &[AtomicU32] {
        let ptr = match &self.map {
            Mapping::Rw(m) => m.as_ptr(),
            Mapping::Ro(m) => m.as_ptr(),
        };
        // SAFETY: the mapping is page-aligned (so 4-byte aligned) and `len` bytes long, a
        // multiple of 4 checked in `map_words`; AtomicU32 has u32's size and alignment; the
        // slice borrows `self`, which owns the mapping, so it cannot outlive it; and the bytes
        // are never accessed non-atomically while the mapping lives (we never deref the
        // Mmap as a byte slice). Relaxed/Acquire loads on a read-only mapping of lock-free
        // 32-bit atomics are permitted.
        unsafe { std::slice::from_raw_parts(ptr.cast::<AtomicU32>(), self.len / 4) }
    }

    fn flush(&self) -> io::Result<()> {
        match &self.map {
            Mapping::Rw(m) => m.flush(),
            Mapping::Ro(_) => Ok(()),
        }
    }
}

#[derive(Debug)]
struct EmptyMap;

impl MappedWords for EmptyMap {
    fn words(&self) -> &[AtomicU32] {
        &[]
    }

    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod lock_tests {
    use super::*;

    /// A duplicate of the lock file's descriptor (what a child forked by another thread
    /// holds until it execs) must not keep the directory locked once the holder lets go.
    #[test]
    fn dropping_the_lock_releases_it_while_a_copy_of_its_descriptor_lives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .unwrap();
        file.try_lock().unwrap();
        let forked_copy = file.try_clone().unwrap();
        let held = RealLock { file };
        assert!(
            RealFs.try_lock(&path).is_err(),
            "a second holder must be refused"
        );
        drop(held);
        let again = RealFs.try_lock(&path);
        assert!(again.is_ok(), "the lock outlived its holder: {again:?}");
        drop(forked_copy);
    }
}
