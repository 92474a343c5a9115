//! A read-only view of another filesystem whose writes stay in memory.
//!
//! A read-only log opens through [`ReadOnlyFs`]: the ordinary open path runs unchanged
//! (recovery may cut a torn tail, rebuild an index it cannot trust, drop a stale marker or
//! checkpoint), but every such change lands in this process's memory, never on disk, so a
//! live writer in another process is never disturbed and a damaged log is read as it stands.
//!
//! Files are never mapped from disk here: a live writer may trim a file (an active index at a
//! roll) under a reader's mapping, and touching a page past the new end kills the reader with
//! SIGBUS. Maps are copies instead, taken when made. `.log` files are only ever read with
//! positioned reads; a cut of one is remembered as a length, without copying it.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{File, FileLock, FileSystem, MappedWords, OpenMode};

/// A filesystem that reads through to `inner` and keeps every change in memory.
#[derive(Debug)]
pub struct ReadOnlyFs {
    inner: Arc<dyn FileSystem>,
    state: Mutex<Overlay>,
}

/// What this process changed, in memory.
#[derive(Debug, Default)]
struct Overlay {
    /// Files opened for writing (or created, or renamed) here: later opens share them.
    files: BTreeMap<PathBuf, Arc<CowFile>>,
    /// Paths removed (or renamed away) here.
    removed: BTreeSet<PathBuf>,
    /// Directories created here.
    dirs: BTreeSet<PathBuf>,
}

impl ReadOnlyFs {
    /// A read-only view of `inner`.
    pub fn new(inner: Arc<dyn FileSystem>) -> Self {
        ReadOnlyFs {
            inner,
            state: Mutex::new(Overlay::default()),
        }
    }

    /// Forgets a cut made here to the file at `path` while it is still read from disk: its
    /// length is again what the disk holds (a follower of a live writer looks at what was
    /// appended since, and cuts again at the last whole batch).
    pub(crate) fn uncut(&self, path: &Path) {
        if let Some(f) = self.state.lock().files.get(path) {
            f.state.lock().cut = None;
        }
    }

    fn base_exists(&self, st: &Overlay, path: &Path) -> bool {
        !st.removed.contains(path) && self.inner.exists(path)
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

impl FileSystem for ReadOnlyFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>> {
        let mut st = self.state.lock();
        if let Some(f) = st.files.get(path) {
            if mode == OpenMode::CreateNew {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists", path.display()),
                ));
            }
            return Ok(Arc::clone(f) as Arc<dyn File>);
        }
        let exists = self.base_exists(&st, path);
        let file = match (exists, mode) {
            (true, OpenMode::CreateNew) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists", path.display()),
                ))
            }
            (true, _) => CowFile::over(self.inner.open(path, OpenMode::Read)?),
            (false, OpenMode::Read) => return Err(not_found(path)),
            (false, _) => CowFile::empty(),
        };
        let file = Arc::new(file);
        if mode != OpenMode::Read {
            st.removed.remove(path);
            st.files.insert(path.to_path_buf(), Arc::clone(&file));
        }
        Ok(file)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        if !self.inner.exists(path) {
            self.state.lock().dirs.insert(path.to_path_buf());
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let st = self.state.lock();
        let mut paths: BTreeSet<PathBuf> = match self.inner.list(dir) {
            Ok(p) => p.into_iter().collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound && st.dirs.contains(dir) => {
                BTreeSet::new()
            }
            Err(e) => return Err(e),
        };
        paths.retain(|p| !st.removed.contains(p));
        paths.extend(st.files.keys().filter(|p| p.parent() == Some(dir)).cloned());
        Ok(paths.into_iter().collect())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        let here = st.files.remove(path).is_some();
        if !here && !self.base_exists(&st, path) {
            return Err(not_found(path));
        }
        st.removed.insert(path.to_path_buf());
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        let file = match st.files.remove(from) {
            Some(f) => f,
            None if self.base_exists(&st, from) => {
                Arc::new(CowFile::over(self.inner.open(from, OpenMode::Read)?))
            }
            None => return Err(not_found(from)),
        };
        st.removed.insert(from.to_path_buf());
        st.removed.remove(to);
        st.files.insert(to.to_path_buf(), file);
        Ok(())
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let st = self.state.lock();
        st.files.contains_key(path) || st.dirs.contains(path) || self.base_exists(&st, path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.dirs.remove(path);
        st.removed.insert(path.to_path_buf());
        Ok(())
    }

    fn modified_ms(&self, path: &Path) -> io::Result<Option<i64>> {
        self.inner.modified_ms(path)
    }

    fn try_lock(&self, _path: &Path) -> io::Result<Box<dyn FileLock>> {
        // Readers never exclude anyone, and never touch the writer's lock file.
        Ok(Box::new(super::lock::NoLock))
    }
}

/// A file read from disk until something writes it, then held in memory.
#[derive(Debug)]
struct CowFile {
    base: Option<Arc<dyn File>>,
    state: Mutex<CowState>,
}

#[derive(Debug)]
struct CowState {
    /// The content, once copied (or created) in memory.
    mem: Option<Words>,
    /// A cut made here to a file still read from disk: reads stop there, and its length is
    /// at most this (a live writer may append past it; this reader ignores that).
    cut: Option<u64>,
}

impl CowFile {
    fn over(base: Arc<dyn File>) -> Self {
        CowFile {
            base: Some(base),
            state: Mutex::new(CowState {
                mem: None,
                cut: None,
            }),
        }
    }

    fn empty() -> Self {
        CowFile {
            base: None,
            state: Mutex::new(CowState {
                mem: Some(Words::default()),
                cut: None,
            }),
        }
    }

    fn base_len(&self, st: &CowState) -> io::Result<u64> {
        let len = match &self.base {
            Some(b) => b.len()?,
            None => 0,
        };
        Ok(st.cut.map_or(len, |c| c.min(len)))
    }

    /// The content in memory, copied from disk on first need.
    fn materialize<'s>(&self, st: &'s mut CowState) -> io::Result<&'s mut Words> {
        if st.mem.is_none() {
            let len = self.base_len(st)?;
            let mut bytes = vec![0u8; to_usize(len)?];
            if let Some(b) = &self.base {
                b.read_exact_at(&mut bytes, 0)?;
            }
            st.mem = Some(Words::from_bytes(&bytes, 0));
        }
        st.mem
            .as_mut()
            .ok_or_else(|| io::Error::other("overlay file lost its content"))
    }
}

fn to_usize(n: u64) -> io::Result<usize> {
    usize::try_from(n).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file too large"))
}

impl File for CowFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let st = self.state.lock();
        if let Some(mem) = &st.mem {
            return Ok(mem.read(buf, to_usize(pos)?));
        }
        let len = self.base_len(&st)?;
        drop(st);
        let Some(base) = &self.base else {
            return Ok(0);
        };
        let room = to_usize(len.saturating_sub(pos))?.min(buf.len());
        match buf.get_mut(..room) {
            Some(b) if !b.is_empty() => base.read_at(b, pos),
            _ => Ok(0),
        }
    }

    fn append(&self, bufs: &[&[u8]]) -> io::Result<()> {
        let mut st = self.state.lock();
        let mem = self.materialize(&mut st)?;
        for b in bufs {
            let end = mem.len;
            mem.write(b, end);
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        let mut st = self.state.lock();
        let pos = to_usize(pos)?;
        self.materialize(&mut st)?.write(buf, pos);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let st = self.state.lock();
        match &st.mem {
            Some(mem) => Ok(mem.len as u64),
            None => self.base_len(&st),
        }
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.state.lock();
        if st.mem.is_none() && len <= self.base_len(&st)? {
            // A cut of a file read from disk (a torn `.log` tail): remembered, not copied.
            st.cut = Some(len);
            return Ok(());
        }
        let len = to_usize(len)?;
        self.materialize(&mut st)?.set_len(len);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn map_words(&self, len: u64, writable: bool) -> io::Result<Arc<dyn MappedWords>> {
        if !len.is_multiple_of(4) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("mapping length {len} is not a multiple of 4"),
            ));
        }
        let n = to_usize(len / 4)?;
        let mut st = self.state.lock();
        if writable || st.mem.is_some() {
            let mem = self.materialize(&mut st)?;
            mem.reserve_words(n);
            return Ok(Arc::new(MemMap {
                words: Arc::clone(&mem.words),
                n,
            }));
        }
        // A copy of what the file holds now: never a mapping of a file a writer may trim.
        drop(st);
        let mut bytes = vec![0u8; to_usize(len)?];
        let read = self.read_at(&mut bytes, 0)?;
        let copy = Words::from_bytes(bytes.get(..read).unwrap_or_default(), n);
        Ok(Arc::new(MemMap {
            words: copy.words,
            n,
        }))
    }
}

/// File content as 32-bit words, so maps can share it: each word holds four file bytes in
/// file order (its in-memory bytes are the file's bytes, as in a real mapping).
#[derive(Debug, Default)]
struct Words {
    words: Arc<[AtomicU32]>,
    /// Length in bytes.
    len: usize,
    /// Every byte from here on is zero (so growing the file zeroes only what a cut left).
    dirty_to: usize,
}

/// At least `n` words holding `bytes` (then zeros), filled as plain memory rather than word
/// by word: a copied index is millions of words, and tests run unoptimised builds.
fn words_from(bytes: &[u8], n: usize) -> Arc<[AtomicU32]> {
    let mut plain: Box<[u32]> = vec![0u32; n.max(bytes.len().div_ceil(4))].into_boxed_slice();
    // SAFETY: the slice's memory viewed as bytes: same allocation and length in bytes, `u8`
    // needs no alignment, every byte of a `u32` is initialised, and `plain` is not used
    // while the view lives.
    let as_bytes =
        unsafe { std::slice::from_raw_parts_mut(plain.as_mut_ptr().cast::<u8>(), plain.len() * 4) };
    if let Some(dst) = as_bytes.get_mut(..bytes.len()) {
        dst.copy_from_slice(bytes);
    }
    // SAFETY: `AtomicU32` has the same size, alignment and bit validity as `u32` (as its
    // documentation guarantees), so a boxed slice of one is a valid boxed slice of the other;
    // the pointer comes from `Box::into_raw` and is turned back into a box exactly once.
    let atomics: Box<[AtomicU32]> =
        unsafe { Box::from_raw(Box::into_raw(plain) as *mut [AtomicU32]) };
    Arc::from(atomics)
}

impl Words {
    /// A file holding `bytes`, with room for at least `n` words.
    fn from_bytes(bytes: &[u8], n: usize) -> Words {
        Words {
            words: words_from(bytes, n),
            len: bytes.len(),
            dirty_to: bytes.len(),
        }
    }
}

impl Words {
    fn byte(&self, i: usize) -> u8 {
        let word = self
            .words
            .get(i / 4)
            .map_or(0, |w| w.load(Ordering::Acquire));
        word.to_ne_bytes().get(i % 4).copied().unwrap_or(0)
    }

    fn set_byte(&self, i: usize, v: u8) {
        if let Some(w) = self.words.get(i / 4) {
            let mut bytes = w.load(Ordering::Acquire).to_ne_bytes();
            if let Some(b) = bytes.get_mut(i % 4) {
                *b = v;
            }
            w.store(u32::from_ne_bytes(bytes), Ordering::Release);
        }
    }

    /// Grows the word store to hold at least `n` words. Existing maps keep the old store;
    /// callers grow a file before mapping it, never while a map of it is written.
    fn reserve_words(&mut self, n: usize) {
        if self.words.len() >= n {
            return;
        }
        let grown = words_from(&[], n.max(self.words.len() * 2));
        for (new, old) in grown.iter().zip(self.words.iter()) {
            new.store(old.load(Ordering::Acquire), Ordering::Release);
        }
        self.words = grown;
    }

    fn read(&self, buf: &mut [u8], pos: usize) -> usize {
        let n = self.len.saturating_sub(pos).min(buf.len());
        for (i, b) in buf.iter_mut().take(n).enumerate() {
            *b = self.byte(pos + i);
        }
        n
    }

    fn write(&mut self, data: &[u8], pos: usize) {
        let end = pos + data.len();
        if data.is_empty() {
            return;
        }
        self.reserve_words(end.div_ceil(4));
        // Byte by byte up to a word boundary, then whole words (a copied index is megabytes).
        let head = ((4 - pos % 4) % 4).min(data.len());
        let (first, rest) = data.split_at(head);
        for (i, &b) in first.iter().enumerate() {
            self.set_byte(pos + i, b);
        }
        let start = pos + head;
        let mut chunks = rest.chunks_exact(4);
        for (i, c) in chunks.by_ref().enumerate() {
            if let (Some(w), Ok(bytes)) = (self.words.get(start / 4 + i), <[u8; 4]>::try_from(c)) {
                w.store(u32::from_ne_bytes(bytes), Ordering::Release);
            }
        }
        let tail = chunks.remainder();
        let tail_at = end - tail.len();
        for (i, &b) in tail.iter().enumerate() {
            self.set_byte(tail_at + i, b);
        }
        self.len = self.len.max(end);
        self.dirty_to = self.dirty_to.max(end);
    }

    fn set_len(&mut self, len: usize) {
        if len > self.len {
            // Grown again, the bytes a cut left behind read as zeros, as in a file.
            let dirty_end = self.dirty_to.min(len);
            let whole_from = self.len.div_ceil(4);
            for i in self.len..(whole_from * 4).min(dirty_end) {
                self.set_byte(i, 0);
            }
            for w in self
                .words
                .iter()
                .skip(whole_from)
                .take(dirty_end.div_ceil(4).saturating_sub(whole_from))
            {
                w.store(0, Ordering::Release);
            }
            self.reserve_words(len.div_ceil(4));
        }
        self.len = len;
    }
}

/// A map of an overlay file: its words shared, never a mapping of a disk file.
#[derive(Debug)]
struct MemMap {
    words: Arc<[AtomicU32]>,
    n: usize,
}

impl MappedWords for MemMap {
    fn words(&self) -> &[AtomicU32] {
        self.words.get(..self.n).unwrap_or_default()
    }

    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}
