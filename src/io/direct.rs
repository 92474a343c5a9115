//! Appends through direct I/O: an active segment's `.log` file written in large aligned
//! chunks with `O_DIRECT`, around the page cache.
//!
//! Why: on a machine whose free memory must first be faulted back in from the host, a
//! buffered append pays for every new page-cache page and runs slower than the device
//! itself (`BENCHMARKS.md`, "Direct I/O"). Writing straight to the device skips that.
//!
//! How ([`DirectFile`]):
//! - Appended bytes are copied into an aligned buffer of `chunk` bytes that covers the log
//!   from a block boundary (`start`) to its end. When the buffer is full it is handed off
//!   whole, as one write, and appends go on into another buffer: small batches become large
//!   aligned writes.
//! - Up to `depth` handed-off chunks are *in flight* at once. On a real device a writer
//!   thread of the file writes them, in order, while the appender validates and copies the
//!   next batches: the device and the CPU work at the same time (the thread sleeps in the
//!   write). An appender that fills a buffer while `depth` chunks are still in flight waits
//!   for the oldest. A backend that cannot write in the background (the simulation, to stay
//!   deterministic) writes the oldest chunk in the appending thread when the next one is
//!   handed off beyond `depth`; with `depth` 0 every chunk is written when it fills.
//! - Bytes not yet in the file (in flight or in the buffer) are read from memory, so
//!   readers see every appended byte at once, as with buffered appends.
//! - A sync waits for the chunks in flight, writes the whole blocks held with a direct
//!   write and the partial last block through the page cache (so the file never holds more
//!   than the log), then fsyncs. That block stays in memory, and the next chunk write
//!   rewrites it in place, whole. Cuts, write-backs and drops also wait for the chunks in
//!   flight first.
//!
//! Crash safety is the buffered path's: nothing is durable before a sync, a sync makes
//! everything appended before it durable, and the file always holds a prefix of what was
//! appended (chunks are written in log order, one at a time; the buffer only ever holds the
//! newest bytes; and a rewrite of the partial block writes the bytes already there again
//! before the new ones). A chunk write that fails in the writer thread fails the file for
//! good: every later call returns the error (and the log poisons itself), as bytes of
//! appends already acknowledged may then never reach the file. In the appending thread a
//! failed chunk stays in flight and is tried again by the next call that needs it written.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex, RwLock};

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

    /// Whether a writer thread may issue these writes while appends go on (a real device:
    /// the thread sleeps while the device works). `false` (the default) keeps every write in
    /// the appending thread, at points that depend only on what was appended: what a
    /// seeded simulation needs to replay exactly.
    fn writes_in_background(&self) -> bool {
        false
    }
}

/// Whether a direct write of `buf` at `pos` is aligned as [`DirectWrite`] requires.
pub(crate) fn direct_aligned(buf: &[u8], pos: u64) -> bool {
    pos % ALIGN == 0
        && buf.len() % DIRECT_ALIGN == 0
        && buf.as_ptr().align_offset(DIRECT_ALIGN) == 0
}

/// Wraps `file` (a `.log` file opened read-write) so that appends go through aligned
/// buffers of `chunk` bytes (a multiple of [`DIRECT_ALIGN`]) and reach the file in chunks,
/// with `direct` (from [`FileSystem::open_direct`](super::FileSystem::open_direct)) when the
/// filesystem supports it, through the page cache otherwise; up to `depth` full chunks are
/// in flight while appends go on (see the module docs).
pub(crate) fn direct_append_file(
    file: Arc<dyn File>,
    direct: Option<Box<dyn DirectWrite>>,
    chunk: usize,
    depth: usize,
) -> io::Result<Arc<dyn File>> {
    let chunk = chunk.max(DIRECT_ALIGN) / DIRECT_ALIGN * DIRECT_ALIGN;
    let end = file.len()?;
    let background = direct.as_ref().is_some_and(|d| d.writes_in_background());
    Ok(Arc::new(DirectFile {
        shared: Arc::new(Shared {
            file,
            direct,
            tail: RwLock::new(Tail {
                buf: None,
                start: end,
                len: 0,
                in_file: end,
                flying: VecDeque::new(),
            }),
            done: Mutex::new(Done {
                free: Vec::new(),
                failed: None,
            }),
            written: Condvar::new(),
        }),
        chunk,
        depth,
        background,
        writer: Mutex::new(Appender {
            worker: None,
            buffers: 0,
        }),
    }))
}

/// What the log holds past the file, in memory.
struct Tail {
    /// `chunk` bytes while the log is appended to; `None` before the first append, after a
    /// write-back (then `start` is the end and nothing is held), and between a hand-off and
    /// the next append.
    buf: Option<AlignedBuf>,
    /// The log position of the buffer's first byte: a multiple of [`ALIGN`] while the buffer
    /// exists or chunks are in flight.
    start: u64,
    /// Bytes of the buffer in use: the log's bytes `start..start + len`.
    len: usize,
    /// The file holds the log's bytes `0..in_file`: at least up to the first chunk in
    /// flight (or `start`), at most the end.
    in_file: u64,
    /// Full chunks handed off and not yet written, oldest first, each with the log position
    /// of its first byte: back to back, the last ending at `start`.
    flying: VecDeque<(u64, Arc<AlignedBuf>)>,
}

impl Tail {
    fn end(&self) -> u64 {
        self.start + self.len as u64
    }

    /// Where the bytes held in memory begin (below it, the file has every byte).
    fn memory_start(&self) -> u64 {
        self.flying.front().map_or(self.start, |(at, _)| *at)
    }
}

/// What the appender and the writer thread share. Lock order: the appender's `writer`
/// lock, then `done`, then `tail`; the writer thread takes `tail` and `done` one at a time.
struct Shared {
    /// The ordinary handle: reads, the partial block at a sync, cuts, fsync.
    file: Arc<dyn File>,
    direct: Option<Box<dyn DirectWrite>>,
    /// Held for reading while readers copy from memory, for writing only to change it.
    tail: RwLock<Tail>,
    /// Buffers whose chunk was written, and a failure of the writer thread.
    done: Mutex<Done>,
    /// Signalled when a chunk in flight was written (or failed).
    written: Condvar,
}

struct Done {
    free: Vec<AlignedBuf>,
    /// A chunk write of the writer thread failed: the file fails every call from then on.
    failed: Option<(io::ErrorKind, String)>,
}

impl Done {
    fn check(&self) -> io::Result<()> {
        match &self.failed {
            Some((kind, msg)) => Err(io::Error::new(
                *kind,
                format!("an earlier direct-I/O write failed: {msg}"),
            )),
            None => Ok(()),
        }
    }
}

impl Shared {
    /// Writes whole blocks at `pos` (a block boundary), directly when the filesystem can.
    fn write_blocks(&self, data: &[u8], pos: u64) -> io::Result<()> {
        match &self.direct {
            Some(d) => d.write_direct(data, pos),
            None => self.file.write_at(data, pos),
        }
    }

    /// The oldest chunk in flight at `at` is in the file: it leaves memory, and its buffer
    /// is free again.
    fn chunk_written(&self, at: u64, chunk: usize) {
        let freed = {
            let mut t = self.tail.write();
            match t.flying.front() {
                Some((front, _)) if *front == at => {
                    t.in_file = t.in_file.max(at + chunk as u64);
                    t.flying.pop_front().map(|(_, b)| b)
                }
                _ => None,
            }
        };
        let mut d = self.done.lock();
        if let Some(buf) = freed.and_then(|b| Arc::try_unwrap(b).ok()) {
            d.free.push(buf);
        }
        drop(d);
        self.written.notify_all();
    }

    fn fail(&self, e: &io::Error) {
        let mut d = self.done.lock();
        if d.failed.is_none() {
            d.failed = Some((e.kind(), e.to_string()));
        }
        drop(d);
        self.written.notify_all();
    }
}

/// The writer thread of one file, started by the first chunk handed off.
struct Worker {
    jobs: mpsc::Sender<(u64, Arc<AlignedBuf>)>,
    thread: JoinHandle<()>,
}

/// What only the appender (the holder of the writer lock) touches.
struct Appender {
    worker: Option<Worker>,
    /// Buffers made so far: at most `depth + 1` (in flight, and the one being filled).
    buffers: usize,
}

/// A `.log` file appended to in aligned chunks (see the module docs).
pub(crate) struct DirectFile {
    shared: Arc<Shared>,
    chunk: usize,
    /// Full chunks that may be in flight while appends go on.
    depth: usize,
    /// Whether a writer thread writes them (else the appending thread does).
    background: bool,
    /// Serialises appends, syncs and cuts (a log has one writer, but the trait takes
    /// `&self`). Readers never take it.
    writer: Mutex<Appender>,
}

impl fmt::Debug for DirectFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectFile")
            .field("file", &self.shared.file)
            .field("direct", &self.shared.direct.is_some())
            .field("chunk", &self.chunk)
            .field("depth", &self.depth)
            .field("background", &self.background)
            .finish_non_exhaustive()
    }
}

impl DirectFile {
    /// A buffer for the tail when it has none: a free one, a new one while fewer than
    /// `depth + 1` exist, else the next one a chunk in flight gives back. When no chunk is
    /// in flight, the buffer starts at the block that holds the log's end, that block's
    /// bytes read back from the file: the next chunk write rewrites it whole.
    fn ensure_buffer(&self, a: &mut Appender) -> io::Result<()> {
        if self.shared.tail.read().buf.is_some() {
            return Ok(());
        }
        let mut buf = loop {
            let mut d = self.shared.done.lock();
            d.check()?;
            if let Some(b) = d.free.pop() {
                break b;
            }
            if a.buffers <= self.depth || self.shared.tail.read().flying.is_empty() {
                a.buffers += 1;
                break AlignedBuf::with_alignment(self.chunk, DIRECT_ALIGN);
            }
            if self.background {
                self.shared.written.wait(&mut d);
            } else {
                drop(d);
                self.write_oldest()?;
            }
        };
        let mut t = self.shared.tail.write();
        if t.flying.is_empty() {
            let end = t.end();
            let start = end - end % ALIGN;
            let keep = (end - start) as usize;
            if keep > 0 {
                let dst = buf.as_mut_slice().get_mut(..keep).unwrap_or_default();
                self.shared.file.read_exact_at(dst, start)?;
            }
            t.start = start;
            t.len = keep;
        }
        t.buf = Some(buf);
        Ok(())
    }

    /// Hands the full buffer off as one chunk, then waits until no more than `depth` chunks
    /// are in flight.
    fn hand_off(&self, a: &mut Appender) -> io::Result<()> {
        let job = {
            let mut t = self.shared.tail.write();
            let Some(buf) = t.buf.take() else {
                return Ok(());
            };
            let job = (t.start, Arc::new(buf));
            t.flying.push_back((job.0, Arc::clone(&job.1)));
            t.start += self.chunk as u64;
            t.len = 0;
            job
        };
        if self.background {
            self.send(a, job)?;
        }
        self.wait_in_flight(a, self.depth)
    }

    /// Gives a chunk to the writer thread, starting it first if need be.
    fn send(&self, a: &mut Appender, job: (u64, Arc<AlignedBuf>)) -> io::Result<()> {
        if a.worker.is_none() {
            let (jobs, rx) = mpsc::channel::<(u64, Arc<AlignedBuf>)>();
            let shared = Arc::clone(&self.shared);
            let chunk = self.chunk;
            let thread = std::thread::Builder::new()
                .name("streamlog-direct-io".into())
                .spawn(move || {
                    for (at, buf) in rx {
                        if shared.done.lock().failed.is_some() {
                            continue;
                        }
                        match shared.write_blocks(buf.as_slice(), at) {
                            Ok(()) => {
                                drop(buf);
                                shared.chunk_written(at, chunk);
                            }
                            Err(e) => shared.fail(&e),
                        }
                    }
                })?;
            a.worker = Some(Worker { jobs, thread });
        }
        let sent = a.worker.as_ref().map(|w| w.jobs.send(job));
        if !matches!(sent, Some(Ok(()))) {
            let e = io::Error::other("the direct-I/O writer thread is gone");
            self.shared.fail(&e);
            return Err(e);
        }
        Ok(())
    }

    /// Waits until at most `limit` chunks are in flight: for the writer thread, or by
    /// writing the oldest here.
    fn wait_in_flight(&self, _a: &mut Appender, limit: usize) -> io::Result<()> {
        loop {
            let mut d = self.shared.done.lock();
            d.check()?;
            if self.shared.tail.read().flying.len() <= limit {
                return Ok(());
            }
            if self.background {
                self.shared.written.wait(&mut d);
            } else {
                drop(d);
                self.write_oldest()?;
            }
        }
    }

    /// Writes the oldest chunk in flight in this thread (no writer thread). On failure the
    /// chunk stays in flight, to be tried again.
    fn write_oldest(&self) -> io::Result<()> {
        let Some((at, buf)) = self.shared.tail.read().flying.front().cloned() else {
            return Ok(());
        };
        self.shared.write_blocks(buf.as_slice(), at)?;
        drop(buf);
        self.shared.chunk_written(at, self.chunk);
        Ok(())
    }

    /// Writes everything held to the file (the chunks in flight first, then the whole
    /// blocks directly, the partial last block through the page cache). With `release`,
    /// frees the buffer too; otherwise the buffer keeps the partial block at its front.
    fn write_held(&self, a: &mut Appender, release: bool) -> io::Result<()> {
        self.wait_in_flight(a, 0)?;
        let (whole, end) = {
            let t = self.shared.tail.read();
            let Some(buf) = t.buf.as_ref() else {
                return Ok(());
            };
            let data = buf.as_slice();
            let end = t.end();
            let whole = t.len - t.len % DIRECT_ALIGN;
            let whole_end = t.start + whole as u64;
            if whole > 0 && t.in_file < whole_end {
                self.shared
                    .write_blocks(data.get(..whole).unwrap_or_default(), t.start)?;
            }
            let from = t.in_file.max(whole_end);
            if end > from {
                let at = (from - t.start) as usize;
                self.shared
                    .file
                    .write_at(data.get(at..t.len).unwrap_or_default(), from)?;
            }
            (whole, end)
        };
        let mut t = self.shared.tail.write();
        t.in_file = end;
        let mut freed = None;
        if release {
            freed = t.buf.take();
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
        drop(t);
        self.free(freed);
        Ok(())
    }

    /// Keeps `buf` for the next chunk (never with the tail lock held: the lock order is
    /// the done lock, then the tail lock).
    fn free(&self, buf: Option<AlignedBuf>) {
        if let Some(buf) = buf {
            self.shared.done.lock().free.push(buf);
        }
    }

    /// Writes everything back, frees every buffer and ends the writer thread (a sealed
    /// segment, or a handle going away).
    fn release(&self, a: &mut Appender) -> io::Result<()> {
        let r = self.write_held(a, true);
        if let Some(w) = a.worker.take() {
            drop(w.jobs);
            let _ = w.thread.join();
        }
        if r.is_ok() {
            self.shared.done.lock().free.clear();
            a.buffers = 0;
        }
        r
    }
}

impl File for DirectFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let t = self.shared.tail.read();
        let held: &[u8] = if pos >= t.start {
            let from = usize::try_from(pos - t.start).unwrap_or(usize::MAX);
            let b = t.buf.as_ref().map(|b| b.as_slice()).unwrap_or_default();
            b.get(..t.len)
                .and_then(|h| h.get(from..))
                .unwrap_or_default()
        } else if pos >= t.memory_start() {
            // In a chunk in flight: the file may not have it yet.
            let off = pos - t.memory_start();
            let i = usize::try_from(off / self.chunk as u64).unwrap_or(usize::MAX);
            let from = usize::try_from(off % self.chunk as u64).unwrap_or(usize::MAX);
            t.flying
                .get(i)
                .and_then(|(_, b)| b.as_slice().get(from..self.chunk))
                .unwrap_or_default()
        } else {
            // Below the memory the file has every byte, and keeps it while the log does.
            let limit = t.memory_start();
            drop(t);
            let want = usize::try_from(limit - pos)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            return self
                .shared
                .file
                .read_at(buf.get_mut(..want).unwrap_or_default(), pos);
        };
        let n = held.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), held.get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok(n)
    }

    fn append(&self, bufs: &[&[u8]]) -> io::Result<()> {
        let mut a = self.writer.lock();
        self.shared.done.lock().check()?;
        for part in bufs {
            let mut rest: &[u8] = part;
            while !rest.is_empty() {
                self.ensure_buffer(&mut a)?;
                let full = {
                    let mut t = self.shared.tail.write();
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
                    self.hand_off(&mut a)?;
                }
            }
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        // Not how a log is written; keep it simple: everything to the file, then through it.
        let mut a = self.writer.lock();
        self.write_held(&mut a, true)?;
        self.shared.file.write_at(buf, pos)?;
        let len = self.shared.file.len()?;
        let mut t = self.shared.tail.write();
        t.start = len;
        t.in_file = len;
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        self.shared.done.lock().check()?;
        Ok(self.shared.tail.read().end())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut a = self.writer.lock();
        // Chunks already handed off are written first; the cut then works on the file and
        // the one buffer.
        self.wait_in_flight(&mut a, 0)?;
        if len > self.shared.tail.read().end() {
            // Growing with zeros is not how a log grows either: through the file.
            self.write_held(&mut a, true)?;
            self.shared.file.set_len(len)?;
            let mut t = self.shared.tail.write();
            t.start = len;
            t.in_file = len;
            return Ok(());
        }
        let mut t = self.shared.tail.write();
        // The file first: if it cannot be cut (a failed write may have left bytes past
        // `len`), nothing changes and the caller sees a length that disagrees.
        if self.shared.file.len()? > len {
            self.shared.file.set_len(len)?;
        }
        let mut freed = None;
        if len >= t.start {
            t.len = (len - t.start) as usize;
        } else {
            // Below the buffer: drop it; the next append reads the partial block back.
            freed = t.buf.take();
            t.start = len;
            t.len = 0;
        }
        t.in_file = t.in_file.min(len);
        drop(t);
        self.free(freed);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut a = self.writer.lock();
        self.write_held(&mut a, false)?;
        self.shared.file.sync_data()
    }

    fn map_words(&self, len: u64, writable: bool) -> io::Result<Arc<dyn MappedWords>> {
        self.shared.file.map_words(len, writable)
    }

    fn write_back(&self) -> io::Result<()> {
        let mut a = self.writer.lock();
        self.release(&mut a)
    }
}

impl Drop for DirectFile {
    fn drop(&mut self) {
        // Appended bytes reach the file when the handle goes, as buffered appends are in the
        // page cache already: a log dropped without a sync loses only what a crash would.
        let mut a = self.writer.lock();
        let _ = self.release(&mut a);
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

    fn open(fs: &SimFs, direct: bool, chunk: usize, depth: usize) -> Arc<dyn File> {
        let path = Path::new("/d/f.log");
        let file = fs.open(path, OpenMode::ReadWrite).unwrap();
        fs.sync_dir(Path::new("/d")).unwrap();
        let d = if direct {
            fs.open_direct(path).unwrap()
        } else {
            None
        };
        direct_append_file(file, d, chunk, depth).unwrap()
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
            // Writes in flight (in the simulation, written by the appending thread when the
            // next chunk would pass this many).
            let depth = rng.below(3) as usize;
            let fs = SimFs::new(seed);
            fs.create_dir_all(Path::new("/d")).unwrap();
            let mut f = open(&fs, direct, chunk, depth);
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
                        f = open(&fs, direct, chunk, depth);
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
        for depth in [0, 1, 3] {
            real_files_read_back(depth);
        }
    }

    fn real_files_read_back(depth: usize) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.log");
        let fs = crate::io::RealFs;
        let file = fs.open(&path, OpenMode::ReadWrite).unwrap();
        let direct = fs.open_direct(&path).unwrap();
        let f = direct_append_file(file, direct, 8192, depth).unwrap();
        let mut model = Vec::new();
        for i in 0..50u32 {
            let a: Vec<u8> = (0..(i * 97 % 3000)).map(|j| (i + j) as u8).collect();
            f.append(&[&a]).unwrap();
            model.extend_from_slice(&a);
            // Whatever is in flight meanwhile, every byte reads back.
            assert_eq!(read_all(&*f, model.len()), model, "depth {depth}");
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
