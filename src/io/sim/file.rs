//! Simulated files and maps: durable and current content, the pending-write queue, torn
//! writes at a crash, and maps kept coherent with the file as a shared mapping is.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use super::{
    errno, run, run_op, NodeId, SimOp, SpaceLimitMode, State, EACCES, EBADF, EFBIG, EINVAL, ENOMEM,
    ENOSPC, MAX_FILE_SIZE,
};
use crate::io::{DirectWrite, File, MappedWords};
use crate::rng::Rng;

/// A write since the file's last sync.
#[derive(Debug, Clone)]
enum WriteOp {
    /// `data` at byte `pos` (an append is a write at the length it saw).
    Write { pos: usize, data: Vec<u8> },
    /// The file cut or zero-extended to this length.
    SetLen(usize),
}

impl WriteOp {
    fn apply(&self, content: &mut Vec<u8>) {
        match self {
            WriteOp::Write { pos, data } => write_bytes(content, *pos, data),
            WriteOp::SetLen(len) => set_length(content, *len),
        }
    }

    /// Applies the op as the last one to reach the disk before power went: a write keeps
    /// all its bytes half the time, else a uniform prefix of them (possibly none).
    fn apply_torn(&self, content: &mut Vec<u8>, rng: &mut Rng) {
        match self {
            WriteOp::Write { pos, data } if !data.is_empty() => {
                let keep = if rng.below(2) == 0 {
                    data.len()
                } else {
                    rng.below(data.len())
                };
                write_bytes(content, *pos, data.get(..keep).unwrap_or_default());
            }
            _ => self.apply(content),
        }
    }
}

/// Writes `data` at `pos`, zero-filling any gap after the end. Writing nothing changes
/// nothing, even past the end, as with `pwrite`.
fn write_bytes(content: &mut Vec<u8>, pos: usize, data: &[u8]) {
    let Some(end) = pos.checked_add(data.len()) else {
        return;
    };
    if data.is_empty() {
        return;
    }
    if content.len() < end {
        set_length(content, end);
    }
    if let Some(dst) = content.get_mut(pos..end) {
        dst.copy_from_slice(data);
    }
}

/// Zeros to extend files with, a block at a time: `Vec::resize` fills byte by byte in debug
/// builds, which made a 10 MiB index preallocation take a tenth of a second.
const ZEROS: [u8; 4096] = [0; 4096];

/// Cuts `content` to `len` bytes or extends it with zeros.
fn set_length(content: &mut Vec<u8>, len: usize) {
    if len <= content.len() {
        content.truncate(len);
        return;
    }
    if content.is_empty() {
        *content = vec![0; len];
        return;
    }
    content.reserve(len - content.len());
    while content.len() < len {
        let n = (len - content.len()).min(ZEROS.len());
        content.extend_from_slice(ZEROS.get(..n).unwrap_or_default());
    }
}

/// Word `i` of `bytes` as a mapping loads it: the four bytes at `4 * i` in native order,
/// zeros past the end.
fn word_of(bytes: &[u8], i: usize) -> u32 {
    let mut w = [0u8; 4];
    let src = i
        .checked_mul(4)
        .and_then(|s| bytes.get(s..))
        .unwrap_or_default();
    for (d, s) in w.iter_mut().zip(src) {
        *d = *s;
    }
    u32::from_ne_bytes(w)
}

/// The first `n` words of `bytes` (zeros past the end), skipping zero blocks cheaply: a
/// preallocated index is mostly zeros.
fn words_of(bytes: &[u8], n: usize) -> Vec<u32> {
    const BLOCK: usize = 256;
    let mut words = vec![0u32; n];
    for (dst, src) in words.chunks_mut(BLOCK / 4).zip(bytes.chunks(BLOCK)) {
        if ZEROS.get(..src.len()) != Some(src) {
            for (k, w) in dst.iter_mut().enumerate() {
                *w = word_of(src, k);
            }
        }
    }
    words
}

/// A length as an in-memory size, or `EFBIG` past the simulation's largest file.
fn file_size(len: u64) -> io::Result<usize> {
    if len > MAX_FILE_SIZE {
        return Err(errno(EFBIG));
    }
    usize::try_from(len).map_err(|_| errno(EFBIG))
}

/// Grows `content`'s capacity to `len` bytes, failing (instead of aborting) when memory
/// runs out.
fn reserve(content: &mut Vec<u8>, len: usize) -> io::Result<()> {
    let more = len.saturating_sub(content.len());
    content.try_reserve(more).map_err(|_| errno(ENOMEM))
}

/// The words of one map; the file's [`Node`] holds a weak reference to read them back.
#[derive(Debug)]
struct MapCore {
    words: Vec<AtomicU32>,
}

/// A live map as its file sees it.
#[derive(Debug)]
struct MapReg {
    core: Weak<MapCore>,
    /// Each word as last copied between the map and the file: a word that differs was
    /// stored through the map since.
    seen: Vec<u32>,
    writable: bool,
}

/// One file's content, wherever it is named.
#[derive(Debug, Default)]
pub(super) struct Node {
    /// What reads see: the page cache.
    pub(super) current: Vec<u8>,
    /// What power loss cannot take.
    pub(super) durable: Vec<u8>,
    /// Writes since the last sync, oldest first. Applying them to `durable` gives `current`,
    /// unless a failed sync dropped some (see `SimFs::fail_next`).
    pending: Vec<WriteOp>,
    maps: Vec<MapReg>,
    /// Open handles and live maps: the node stays while any exists, even with no name.
    pub(super) handles: usize,
}

impl Node {
    /// Copies the words stored through writable maps since the last copy into `current`
    /// (bytes past the end of the file are dropped, as a real mapping drops them), queues
    /// them as pending writes, and shows them to the other maps.
    pub(super) fn absorb_maps(&mut self) {
        self.maps.retain(|m| m.core.strong_count() > 0);
        let mut stored: Vec<(usize, u32)> = Vec::new();
        for reg in &mut self.maps {
            let Some(core) = reg.core.upgrade() else {
                continue;
            };
            // Block by block, comparing each block at once: this runs over every mapped
            // word whenever the file is touched, and a debug build pays per iteration.
            const BLOCK: usize = 64;
            let mut now = [0u32; BLOCK];
            let blocks = core.words.chunks(BLOCK).zip(reg.seen.chunks_mut(BLOCK));
            for (b, (words, seen)) in blocks.enumerate() {
                let now = now.get_mut(..words.len()).unwrap_or_default();
                for (v, w) in now.iter_mut().zip(words) {
                    *v = w.load(Ordering::Relaxed);
                }
                if now == seen {
                    continue;
                }
                for (k, (v, s)) in now.iter().zip(seen.iter_mut()).enumerate() {
                    if v != s {
                        *s = *v;
                        if reg.writable {
                            stored.push((b * BLOCK + k, *v));
                        }
                    }
                }
            }
        }
        if stored.is_empty() {
            return;
        }
        let len = self.current.len();
        let mut run: Option<(usize, Vec<u8>)> = None;
        let mut touched = Vec::with_capacity(stored.len());
        for (i, v) in stored {
            let Some(start) = i.checked_mul(4) else {
                continue;
            };
            let n = len.saturating_sub(start).min(4);
            if n == 0 {
                continue;
            }
            let bytes = v.to_ne_bytes();
            let bytes = bytes.get(..n).unwrap_or_default();
            let Some(dst) = self.current.get_mut(start..start + n) else {
                continue;
            };
            dst.copy_from_slice(bytes);
            touched.push(i);
            // Neighbouring words become one write, as one dirty page would be.
            match &mut run {
                Some((at, data)) if *at + data.len() == start => data.extend_from_slice(bytes),
                _ => {
                    if let Some((pos, data)) = run.replace((start, bytes.to_vec())) {
                        self.pending.push(WriteOp::Write { pos, data });
                    }
                }
            }
        }
        if let Some((pos, data)) = run {
            self.pending.push(WriteOp::Write { pos, data });
        }
        for i in touched {
            self.refresh_words(i, i + 1);
        }
    }

    /// Shows `current`'s bytes `from..to` to every live map (zeros past the end of the
    /// file), as a shared mapping sees the page cache.
    fn refresh_maps(&mut self, from: usize, to: usize) {
        self.refresh_words(from / 4, to.div_ceil(4));
    }

    fn refresh_words(&mut self, first: usize, end: usize) {
        for reg in &mut self.maps {
            let Some(core) = reg.core.upgrade() else {
                continue;
            };
            let end = end.min(core.words.len()).min(reg.seen.len());
            let words = core.words.get(first..end);
            let seen = reg.seen.get_mut(first..end);
            let (Some(words), Some(seen)) = (words, seen) else {
                continue;
            };
            for (k, (w, s)) in words.iter().zip(seen).enumerate() {
                let v = word_of(&self.current, first + k);
                if w.load(Ordering::Relaxed) != v {
                    w.store(v, Ordering::Relaxed);
                }
                *s = v;
            }
        }
    }

    /// `current` with the stores not yet copied back from writable maps, without copying
    /// them (so looking changes nothing).
    pub(super) fn view(&self) -> Vec<u8> {
        let mut out = self.current.clone();
        for reg in self.maps.iter().filter(|r| r.writable) {
            let Some(core) = reg.core.upgrade() else {
                continue;
            };
            for (i, (word, seen)) in core.words.iter().zip(&reg.seen).enumerate() {
                let v = word.load(Ordering::Relaxed);
                let Some(start) = i.checked_mul(4) else {
                    continue;
                };
                if v == *seen || start >= out.len() {
                    continue;
                }
                let n = (out.len() - start).min(4);
                if let (Some(dst), Some(src)) =
                    (out.get_mut(start..start + n), v.to_ne_bytes().get(..n))
                {
                    dst.copy_from_slice(src);
                }
            }
        }
        out
    }

    /// This file after power loss: durable content plus a random prefix of the pending
    /// writes, the last perhaps torn; everything durable again.
    pub(super) fn crash_outcome(&self, rng: &mut Rng) -> Node {
        let mut content = self.durable.clone();
        let keep = rng.up_to(self.pending.len());
        for (i, op) in self.pending.iter().take(keep).enumerate() {
            if i + 1 == keep {
                op.apply_torn(&mut content, rng);
            } else {
                op.apply(&mut content);
            }
        }
        Node {
            current: content.clone(),
            durable: content,
            ..Node::default()
        }
    }
}

impl State {
    /// Writes `data` at `at`, or at the end when `None`.
    fn write(&mut self, id: NodeId, path: &Path, at: Option<u64>, data: &[u8]) -> io::Result<()> {
        self.take_fault(SimOp::Write, &[path])?;
        let room = self.room();
        let mode = self.space_mode;
        let node = self.node_mut(id)?;
        node.absorb_maps();
        let len = node.current.len();
        let pos = match at {
            Some(p) => file_size(p)?,
            None => len,
        };
        if data.is_empty() {
            return Ok(());
        }
        let end = file_size((pos as u64).saturating_add(data.len() as u64))?;
        let growth = end.saturating_sub(len) as u64;
        let (keep, result) = match room {
            Some(room) if growth > room => {
                let fits = (len as u64).saturating_add(room).saturating_sub(pos as u64);
                let keep = match mode {
                    SpaceLimitMode::NothingWritten => 0,
                    SpaceLimitMode::PartialWrite => {
                        usize::try_from(fits).map_or(data.len(), |f| f.min(data.len()))
                    }
                };
                (keep, Err(errno(ENOSPC)))
            }
            _ => (data.len(), Ok(())),
        };
        let data = data.get(..keep).unwrap_or_default();
        if !data.is_empty() {
            let end = pos.saturating_add(data.len());
            reserve(&mut node.current, end)?;
            write_bytes(&mut node.current, pos, data);
            node.pending.push(WriteOp::Write {
                pos,
                data: data.to_vec(),
            });
            node.refresh_maps(pos.min(len), end);
        }
        result
    }

    fn set_len(&mut self, id: NodeId, path: &Path, len: u64) -> io::Result<()> {
        let new = file_size(len)?;
        let old = self.node(id)?.current.len();
        if new > old {
            self.take_fault(SimOp::Write, &[path])?;
            if self.room().is_some_and(|room| (new - old) as u64 > room) {
                return Err(errno(ENOSPC));
            }
        }
        let node = self.node_mut(id)?;
        node.absorb_maps();
        if new == old {
            return Ok(());
        }
        reserve(&mut node.current, new)?;
        set_length(&mut node.current, new);
        node.pending.push(WriteOp::SetLen(new));
        // Maps see the extension as zeros. Past a cut, only the word holding the new end
        // is refreshed (its tail reads as zeros, as the kernel zeroes a partial page); the
        // words wholly past it are beyond the file, where stores are dropped and a later
        // extension zeroes them, so refreshing them now would only cost time.
        node.refresh_maps(
            old.min(new),
            if new > old {
                new
            } else {
                new.next_multiple_of(4).min(old)
            },
        );
        Ok(())
    }

    /// Makes the file's pending writes durable. A failed sync makes nothing durable and
    /// drops them, as Linux marks pages clean after a failed writeback.
    fn sync(&mut self, id: NodeId, path: &Path) -> io::Result<()> {
        self.node_mut(id)?.absorb_maps();
        let fault = self.take_fault(SimOp::Sync, &[path]);
        let node = self.node_mut(id)?;
        let pending = std::mem::take(&mut node.pending);
        fault?;
        for op in &pending {
            op.apply(&mut node.durable);
        }
        self.syncs += 1;
        Ok(())
    }
}

/// An open simulated file.
pub(super) struct SimFile {
    state: Arc<Mutex<State>>,
    id: NodeId,
    /// The path it was opened by: what fault filters match.
    path: PathBuf,
    writable: bool,
}

impl std::fmt::Debug for SimFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimFile")
            .field("path", &self.path)
            .field("writable", &self.writable)
            .finish()
    }
}

impl SimFile {
    pub(super) fn new(state: Arc<Mutex<State>>, id: NodeId, path: &Path, writable: bool) -> Self {
        SimFile {
            state,
            id,
            path: path.to_path_buf(),
            writable,
        }
    }

    fn run_write<T>(&self, f: impl FnOnce(&mut State) -> io::Result<T>) -> io::Result<T> {
        run_op(&self.state, Some((SimOp::Write, &[&self.path])), |st| {
            if !self.writable {
                return Err(errno(EBADF));
            }
            f(st)
        })
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let mut st = self.state.lock();
        if st.crashed {
            return;
        }
        if let Ok(node) = st.node_mut(self.id) {
            node.handles = node.handles.saturating_sub(1);
        }
        st.collect_garbage();
    }
}

impl File for SimFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        run_op(&self.state, Some((SimOp::Read, &[&self.path])), |st| {
            st.take_fault(SimOp::Read, &[&self.path])?;
            let node = st.node_mut(self.id)?;
            node.absorb_maps();
            let src = usize::try_from(pos)
                .ok()
                .and_then(|p| node.current.get(p..))
                .unwrap_or_default();
            let n = src.len().min(buf.len());
            if let (Some(dst), Some(src)) = (buf.get_mut(..n), src.get(..n)) {
                dst.copy_from_slice(src);
            }
            Ok(n)
        })
    }

    fn append(&self, bufs: &[&[u8]]) -> io::Result<()> {
        let data = bufs.concat();
        self.run_write(|st| st.write(self.id, &self.path, None, &data))
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.run_write(|st| st.write(self.id, &self.path, Some(pos), buf))
    }

    fn len(&self) -> io::Result<u64> {
        // Stores through maps never change the length, so there is nothing to copy back.
        run(&self.state, |st| Ok(st.node(self.id)?.current.len() as u64))
    }

    fn preallocate(&self, _offset: u64, _len: u64) -> io::Result<bool> {
        // Reserving blocks changes neither length nor contents: nothing to model, and the
        // segment's bookkeeping of the reservation runs as on a real filesystem.
        Ok(true)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.run_write(|st| st.set_len(self.id, &self.path, len))
    }

    fn sync_data(&self) -> io::Result<()> {
        run_op(&self.state, Some((SimOp::Sync, &[&self.path])), |st| {
            st.sync(self.id, &self.path)
        })
    }

    fn map_words(&self, len: u64, writable: bool) -> io::Result<Arc<dyn MappedWords>> {
        let core = run(&self.state, |st| {
            if len % 4 != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("mapping length {len} is not a multiple of 4"),
                ));
            }
            let n = file_size(len).map_err(|_| errno(EINVAL))? / 4;
            if writable && !self.writable {
                return Err(errno(EACCES));
            }
            let node = st.node_mut(self.id)?;
            node.absorb_maps();
            let seen = words_of(&node.current, n);
            let mut words = Vec::new();
            words.try_reserve_exact(n).map_err(|_| errno(ENOMEM))?;
            words.extend(seen.iter().map(|&v| AtomicU32::new(v)));
            let core = Arc::new(MapCore { words });
            node.maps.push(MapReg {
                core: Arc::downgrade(&core),
                seen,
                writable,
            });
            node.handles += 1;
            Ok(core)
        })?;
        Ok(Arc::new(SimMap {
            core,
            file: SimFile::new(Arc::clone(&self.state), self.id, &self.path, writable),
        }))
    }
}

/// A simulated file opened for direct I/O (see `SimFs::open_direct`).
#[derive(Debug)]
pub(super) struct SimDirect {
    file: SimFile,
}

impl SimDirect {
    pub(super) fn new(file: SimFile) -> Self {
        SimDirect { file }
    }
}

impl DirectWrite for SimDirect {
    fn write_direct(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        let f = &self.file;
        f.run_write(|st| {
            if !crate::io::direct_aligned(buf, pos) {
                return Err(errno(EINVAL));
            }
            st.write(f.id, &f.path, Some(pos), buf)
        })
    }
}

/// A map of a simulated file: words copied from it, copied back as described on
/// [`Node::absorb_maps`]. Stores through a read-only map are never written to the file.
struct SimMap {
    core: Arc<MapCore>,
    /// A handle of its own (writable as the map is): the file lives while the map does.
    file: SimFile,
}

impl std::fmt::Debug for SimMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimMap")
            .field("file", &self.file)
            .field("words", &self.core.words.len())
            .finish()
    }
}

impl MappedWords for SimMap {
    fn words(&self) -> &[AtomicU32] {
        &self.core.words
    }

    /// Like `msync(MS_SYNC)`, modelled as a sync of the whole file (as ext4 does for any
    /// range): copies the map's stores back and makes every pending write of the file
    /// durable. Flushing a read-only map does nothing.
    fn flush(&self) -> io::Result<()> {
        let f = &self.file;
        run_op(&f.state, Some((SimOp::Sync, &[&f.path])), |st| {
            if f.writable {
                st.sync(f.id, &f.path)
            } else {
                Ok(())
            }
        })
    }
}

impl Drop for SimMap {
    fn drop(&mut self) {
        // Unmapping keeps dirty pages in the page cache: the stores reach the file. (The
        // handle, dropped next, lets the file go.)
        let mut st = self.file.state.lock();
        if st.crashed {
            return;
        }
        if let Ok(node) = st.node_mut(self.file.id) {
            node.absorb_maps();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_fill_gaps_and_empty_writes_change_nothing() {
        let mut c = b"ab".to_vec();
        write_bytes(&mut c, 4, b"xy");
        assert_eq!(c, b"ab\0\0xy");
        write_bytes(&mut c, 100, b"");
        assert_eq!(c.len(), 6);
        write_bytes(&mut c, usize::MAX, b"z");
        assert_eq!(c.len(), 6);
        assert_eq!(
            word_of(b"\x01\x02\x03", 0),
            u32::from_ne_bytes([1, 2, 3, 0])
        );
        assert_eq!(word_of(b"\x01", usize::MAX), 0);
    }
}
