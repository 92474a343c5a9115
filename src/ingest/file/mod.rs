//! The file source: Flume's TAILDIR, with positions committed in the records' transaction.
//!
//! Every poll lists the files matching the globs (stat: device, inode, size) until two
//! listings in a row agree on every path's inode (a directory read and its `stat`s are not
//! one moment: a file copied, renamed or compressed meanwhile could be missing under both
//! names), then reads in this order, each file only up to a size measured before the files
//! read ahead of it measured theirs (followed files are measured newest first after the
//! listing):
//!
//! 1. the files already followed, oldest first, through the descriptor kept open for each
//!    (a renamed file is the same inode and is finished where it now is; one that left the
//!    listing — deleted, compressed and removed, renamed away — is read to its end through
//!    the descriptor and forgotten);
//! 2. files whose rest must be found elsewhere (truncated, or gone while the agent was
//!    down): a plain file starting with their fingerprint (copytruncate's copy) or a gzip
//!    file whose decompressed start is their fingerprint. While that rest is unknown it is
//!    looked for in the file's place in step 1's order, and the poll ends there if it is
//!    not found; afterwards (found elsewhere later, until a timeout) in this step;
//! 3. new files (plain, and gzip files no followed file accounts for), oldest modification
//!    first (`gzip` keeps the original's time; in one clock tick the longer name first, as
//!    the file being written has the shortest), from their start. A new file whose first
//!    bytes are those of a followed file is taken for a copy in progress and left alone
//!    until the original is truncated or gone.
//!
//! Reading up to the listed sizes, older files first, keeps a writer's lines in order across
//! a rotation: any byte of the new file the listing saw was written after the old file's
//! last byte. So a poll never reads a later file before an earlier one is done with:
//! - it stops at the deadline (the agent's next commit) rather than skip to later files;
//! - after a truncation it ends, and the next poll lists again (the copy's listing is newer
//!   than the other files' sizes);
//! - a new file gone, replaced or truncated since the listing ends the poll (a file being
//!   compressed is in the listing under neither name, or under a time it is about to lose);
//! - new plain files are started only if the files are still as listed once their first
//!   bytes are read: one truncated (copytruncate) in between has its older lines in a copy
//!   the listing did not show;
//! - every read checks afterwards that the file still starts with its fingerprint: bytes
//!   read from a file truncated and written again under the read are not framed, and the
//!   file is handled as truncated (also when the read finds the file shorter, or gone);
//! - while a file whose rest is unknown (gone or truncated while the agent was down) has
//!   not been looked for in two listings, no file after it is read, followed or new (its
//!   rest is looked for in its place in the order).
//!
//! **Copytruncate's window.** `copytruncate` copies the file and then truncates it; lines
//! written between the copy and the truncation are in neither, unless the agent read them
//! from the original before the truncation. The agent cannot know how many there were; the
//! rotation test counts them (`truncations` counts the events).
//!
//! **Identical starts.** Two files with the same first bytes (up to 256) are taken for a
//! file and its copy: the second is read only once the first is truncated or gone.

mod config;
mod framing;
mod identity;
mod watch;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::bytes::Regex;

pub use config::{FileSourceConfig, KeyMode};
use framing::{Framer, Piece};
pub use identity::FINGERPRINT_BYTES;
use identity::{from_hex, prefixes_agree, to_hex, StoredStream};

use super::error::{IngestError, Result};
use super::metrics::SourceMetrics;
use super::producer::now_ms;
use super::source::{Poll, PositionUpdate, RecordSink, Source};
use crate::record::Header;

const READ_CHUNK: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Followed as it grows.
    Active,
    /// A copy (or the rest of a file in another one): read to its end, never grows.
    Sealed,
    /// Gone or truncated; the rest (if any) is looked for in copies and gzip files, and a
    /// copy of what was read is recognised as such.
    Detached { since: Instant },
    /// A gzip file read to its end (identified by its compressed first bytes), kept while it
    /// exists so it is not read twice.
    Gzip,
}

struct Stream {
    dev: u64,
    ino: u64,
    path: PathBuf,
    file: Option<File>,
    /// The file's first bytes, up to [`FINGERPRINT_BYTES`].
    fingerprint: Vec<u8>,
    framer: Framer,
    state: State,
    /// When the file last grew (for the idle flush).
    last_growth: Instant,
    /// Size at the last listing.
    size_seen: u64,
    /// The committed position, to know whether it changed.
    stored: Option<(u64, u32, String, u64, u64)>,
    /// Detached with its rest unknown: how many more listings must look for the rest
    /// before any later file (followed or new) is read. A listing is not atomic (a file
    /// renamed or compressed while it runs may be in it under neither name), and a newer
    /// file read before this one's rest would put a writer's lines out of order.
    searches_left: u8,
    /// The file no longer started with the fingerprint after a read: truncated (and written
    /// again) under it. The bytes of that read were not framed.
    cut: bool,
}

/// Listings that look for a detached file's rest before new files are read.
const SEARCHES_BEFORE_NEW_FILES: u8 = 2;

/// Listings a poll takes at most to find two in a row that agree.
const LISTING_TRIES: usize = 5;

#[derive(Debug, Clone)]
struct Entry {
    path: PathBuf,
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    gz: bool,
}

/// The file source. Build it with [`FileSource::new`] or through
/// [`Agent::add_file_source`](crate::ingest::Agent::add_file_source).
pub struct FileSource {
    cfg: FileSourceConfig,
    key_regex: Option<Regex>,
    start_regex: Option<Regex>,
    host: String,
    metrics: Arc<SourceMetrics>,
    streams: BTreeMap<u64, Stream>,
    next_id: u64,
    removed: BTreeSet<u64>,
    /// Files reported unreadable (counted once each).
    unreadable: HashSet<PathBuf>,
    /// Gzip files already tried against the detached streams, by (dev, ino, size).
    gzip_tried: HashSet<(u64, u64, u64)>,
    watcher: Option<watch::Watcher>,
    last_poll: Instant,
    buf: Vec<u8>,
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSource")
            .field("cfg", &self.cfg)
            .field("streams", &self.streams.len())
            .finish_non_exhaustive()
    }
}

impl FileSource {
    /// A file source from its settings (regexes compiled, paths checked).
    pub fn new(cfg: FileSourceConfig, metrics: Arc<SourceMetrics>) -> Result<Self> {
        let bad = |what: String| IngestError::Config(format!("source {}: {what}", cfg.name));
        if cfg.paths.is_empty() {
            return Err(bad("`paths` is empty".into()));
        }
        for p in &cfg.paths {
            glob::Pattern::new(p).map_err(|e| bad(format!("bad glob {p:?}: {e}")))?;
        }
        if cfg.max_line_bytes == 0 {
            return Err(bad("`max_line_bytes` is 0".into()));
        }
        if cfg.poll_interval_ms == 0 || cfg.refresh_interval_ms == 0 {
            return Err(bad(
                "`poll_interval_ms` and `refresh_interval_ms` must be at least 1 (0 is a busy loop)"
                    .into(),
            ));
        }
        let key_regex = match (cfg.key, &cfg.key_regex) {
            (KeyMode::Regex, Some(r)) => {
                Some(Regex::new(r).map_err(|e| bad(format!("bad key_regex: {e}")))?)
            }
            (KeyMode::Regex, None) => return Err(bad("key = \"regex\" needs `key_regex`".into())),
            (_, Some(_)) => return Err(bad("`key_regex` is set but key is not \"regex\"".into())),
            _ => None,
        };
        let start_regex = match &cfg.multiline_start {
            Some(r) => Some(Regex::new(r).map_err(|e| bad(format!("bad multiline_start: {e}")))?),
            None => None,
        };
        let host = cfg.host.clone().unwrap_or_else(host_name);
        Ok(FileSource {
            cfg,
            key_regex,
            start_regex,
            host,
            metrics,
            streams: BTreeMap::new(),
            next_id: 1,
            removed: BTreeSet::new(),
            unreadable: HashSet::new(),
            gzip_tried: HashSet::new(),
            watcher: None,
            last_poll: Instant::now(),
            buf: vec![0; READ_CHUNK],
        })
    }

    fn framer_at(&self, offset: u64, split: u32) -> Framer {
        Framer::new(
            self.cfg.max_line_bytes,
            self.start_regex.clone(),
            offset,
            split,
        )
    }

    /// Turns `path`'s framed pieces into records for `sink`.
    fn emitter<'a>(&'a self, sink: &'a mut dyn RecordSink, path: &'a str) -> Emitter<'a> {
        Emitter {
            sink,
            cfg: &self.cfg,
            key_regex: self.key_regex.as_ref(),
            host: &self.host,
            path,
            metrics: &self.metrics,
            timestamp: now_ms(),
            records: 0,
            bytes: 0,
        }
    }

    /// Lists the files the globs match, as they stood at one moment: two listings in a row
    /// that agree on every path's device and inode (sizes aside). A listing alone is not a
    /// snapshot: its directory read and its `stat`s happen one after the other, so a file
    /// copied, renamed or compressed meanwhile can be missing under both names, or a file
    /// can be seen truncated while its copy is not seen at all; a writer's newer lines would
    /// then be read before its older ones. Returns the first of the two (its sizes are the
    /// earlier), or None while the files keep changing ([`LISTING_TRIES`] listings).
    fn list_stable(&mut self) -> Option<Vec<Entry>> {
        let mut first = self.list();
        for _ in 1..LISTING_TRIES {
            let second = self.list();
            let same = first.len() == second.len()
                && first
                    .iter()
                    .zip(&second)
                    .all(|(a, b)| (&a.path, a.dev, a.ino) == (&b.path, b.dev, b.ino));
            if same {
                return Some(first);
            }
            first = second;
        }
        None
    }

    /// Lists the files the globs match now (one pass; see [`Self::list_stable`]).
    fn list(&mut self) -> Vec<Entry> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for pattern in &self.cfg.paths {
            let Ok(paths) = glob::glob(pattern) else {
                continue;
            };
            for path in paths {
                let path = match path {
                    Ok(p) => p,
                    Err(e) => {
                        if self.unreadable.insert(e.path().to_path_buf()) {
                            SourceMetrics::add(&self.metrics.files_skipped, 1);
                        }
                        continue;
                    }
                };
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue;
                };
                if !meta.is_file() {
                    // A directory, FIFO, socket or device where a file is expected: never
                    // opened (a FIFO's open would block), counted once.
                    if self.unreadable.insert(path) {
                        SourceMetrics::add(&self.metrics.files_skipped, 1);
                    }
                    continue;
                }
                if !seen.insert((meta.dev(), meta.ino())) {
                    continue;
                }
                let gz = path.extension().is_some_and(|e| e == "gz");
                out.push(Entry {
                    dev: meta.dev(),
                    ino: meta.ino(),
                    size: meta.size(),
                    mtime: (meta.mtime(), meta.mtime_nsec()),
                    gz,
                    path,
                });
            }
        }
        out
    }

    fn open(&mut self, path: &Path) -> Option<File> {
        match File::open(path) {
            Ok(f) => {
                self.unreadable.remove(path);
                Some(f)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(_) => {
                if self.unreadable.insert(path.to_path_buf()) {
                    SourceMetrics::add(&self.metrics.files_skipped, 1);
                }
                None
            }
        }
    }

    /// Reads a file's first bytes (up to `n`).
    fn prefix(file: &File, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        let mut got = 0;
        while got < n {
            match file.read_at(buf.get_mut(got..).unwrap_or_default(), got as u64) {
                Ok(0) | Err(_) => break,
                Ok(k) => got += k,
            }
        }
        buf.truncate(got);
        buf
    }

    /// Starts following `e` from its start, in `state`; returns the stream's id.
    fn new_stream(
        &mut self,
        e: &Entry,
        file: Option<File>,
        fingerprint: Vec<u8>,
        state: State,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let framer = self.framer_at(0, 0);
        let size_seen = if file.is_some() { e.size } else { 0 };
        self.streams.insert(
            id,
            Stream {
                dev: e.dev,
                ino: e.ino,
                path: e.path.clone(),
                file,
                fingerprint,
                framer,
                state,
                last_growth: Instant::now(),
                size_seen,
                stored: None,
                searches_left: 0,
                cut: false,
            },
        );
        id
    }

    fn forget(&mut self, id: u64) {
        if let Some(s) = self.streams.remove(&id) {
            if s.stored.is_some() {
                self.removed.insert(id);
            }
        }
    }

    /// Reads stream `id` from where it stands up to `limit` bytes (None: to the end), and
    /// with `finish` emits what is held at the end. Returns whether bytes were read.
    fn read(
        &mut self,
        id: u64,
        limit: Option<u64>,
        finish: bool,
        sink: &mut dyn RecordSink,
        deadline: Instant,
    ) -> Result<bool> {
        let Some(mut s) = self.streams.remove(&id) else {
            return Ok(false);
        };
        let r = self.read_stream(&mut s, limit, finish, sink, deadline);
        self.streams.insert(id, s);
        r
    }

    fn read_stream(
        &mut self,
        s: &mut Stream,
        limit: Option<u64>,
        finish: bool,
        sink: &mut dyn RecordSink,
        deadline: Instant,
    ) -> Result<bool> {
        let Some(file) = s.file.as_ref() else {
            return Ok(false);
        };
        s.cut = false;
        let mut any = false;
        let path_str = s.path.to_string_lossy().into_owned();
        let mut reached_end = true;
        loop {
            let at = s.framer.next_offset();
            let want = match limit {
                Some(l) if l <= at => break,
                Some(l) => (l - at).min(READ_CHUNK as u64) as usize,
                None => READ_CHUNK,
            };
            let buf = self.buf.get_mut(..want).unwrap_or_default();
            let n = file.read_at(buf, at).map_err(|e| IngestError::Io {
                op: "read",
                path: s.path.clone(),
                source: e,
            })?;
            if n == 0 {
                // The end, or a truncation below the position (its rest then is in a copy).
                let shorter = file.metadata().is_ok_and(|m| m.size() < at);
                if shorter || !Self::still_starts_with(file, &s.fingerprint, at, &[]) {
                    s.cut = true;
                    reached_end = false;
                }
                break;
            }
            let data = self.buf.get(..n).unwrap_or_default();
            // Truncated and written again under the read (copytruncate), the bytes may be
            // the new generation's while the old one's rest is in a copy: not framed.
            if !Self::still_starts_with(file, &s.fingerprint, at, data) {
                s.cut = true;
                reached_end = false;
                break;
            }
            any = true;
            Self::extend_fingerprint(&mut s.fingerprint, at, data);
            let mut emitter = self.emitter(&mut *sink, &path_str);
            s.framer.feed(data, &mut |p| emitter.emit(p))?;
            if Instant::now() >= deadline {
                reached_end = false;
                break;
            }
        }
        if any {
            s.last_growth = Instant::now();
        }
        let idle = s.framer.holds()
            && s.last_growth.elapsed() >= Duration::from_millis(self.cfg.idle_timeout_ms);
        if reached_end && (finish || idle) && s.framer.holds() {
            let mut emitter = self.emitter(sink, &path_str);
            s.framer.flush(&mut |p| emitter.emit(p))?;
            any = true;
        }
        let counts = std::mem::take(&mut s.framer.counts);
        SourceMetrics::add(&self.metrics.lines_split, counts.lines_split);
        SourceMetrics::add(&self.metrics.partial_lines, counts.partial_flushes);
        Ok(any)
    }

    /// Whether `file`, from which `data` was just read at `at`, still starts with
    /// `fingerprint`: the bytes of `data` it covers agree, and so does the file's start read
    /// after `data` (so `data` was read before any truncation).
    fn still_starts_with(file: &File, fingerprint: &[u8], at: u64, data: &[u8]) -> bool {
        if fingerprint.is_empty() {
            return true;
        }
        let overlap_agrees = match usize::try_from(at).ok().and_then(|a| fingerprint.get(a..)) {
            Some(rest) => {
                let n = rest.len().min(data.len());
                rest.get(..n) == data.get(..n)
            }
            None => true,
        };
        overlap_agrees && Self::prefix(file, fingerprint.len()) == fingerprint
    }

    /// Grows a fingerprint shorter than [`FINGERPRINT_BYTES`] with the bytes `data` read at
    /// `at` holds past its end.
    fn extend_fingerprint(fingerprint: &mut Vec<u8>, at: u64, data: &[u8]) {
        let have = fingerprint.len() as u64;
        if have >= FINGERPRINT_BYTES as u64 || at > have {
            return;
        }
        let from = (have - at) as usize;
        let to = (FINGERPRINT_BYTES as u64 - at).min(data.len() as u64) as usize;
        fingerprint.extend_from_slice(data.get(from..to).unwrap_or_default());
    }

    /// Stream `id`'s file was truncated (copytruncate): its rest is looked for in the copy,
    /// listed now (the copy was made before the truncation). The poll ends there: files
    /// after this one must be read only up to sizes listed after this listing, or a
    /// writer's later lines could come before its earlier ones.
    fn truncation(
        &mut self,
        id: u64,
        sink: &mut dyn RecordSink,
        deadline: Instant,
    ) -> Result<Poll> {
        SourceMetrics::add(&self.metrics.truncations, 1);
        self.detach(id, false);
        if let Some(now) = self.list_stable() {
            let tracked = self.tracked();
            self.find_rest(id, &now, &tracked, sink, deadline)?;
        }
        Ok(self.polled(true))
    }

    /// Looks for detached stream `id`'s rest in `entries` while it is unknown (see
    /// [`Stream::searches_left`]). Called in the reading order: on [`Search::Waiting`] the
    /// poll ends, so no later file is read before the rest (a writer's later lines would
    /// come before its earlier ones), until the rest is found or the listings run out.
    fn search_rest(
        &mut self,
        id: u64,
        entries: &[Entry],
        sink: &mut dyn RecordSink,
        deadline: Instant,
    ) -> Result<Search> {
        let pending = self
            .streams
            .get(&id)
            .is_some_and(|s| matches!(s.state, State::Detached { .. }) && s.searches_left > 0);
        if !pending {
            return Ok(Search::NotPending);
        }
        let tracked = self.tracked();
        let found = self.find_rest(id, entries, &tracked, sink, deadline)?;
        if let Some(s) = self.streams.get_mut(&id) {
            s.searches_left = if found {
                0
            } else {
                s.searches_left.saturating_sub(1)
            };
        }
        Ok(if found {
            Search::Found
        } else {
            Search::Waiting
        })
    }

    fn was_cut(&self, id: u64) -> bool {
        self.streams.get(&id).is_some_and(|s| s.cut)
    }

    /// Whether a followed file no longer holds what was read from it: shorter than what was
    /// read, or other first bytes.
    fn truncated(s: &Stream, e: &Entry) -> bool {
        let Some(file) = s.file.as_ref() else {
            return false;
        };
        if e.size < s.framer.next_offset() {
            return true;
        }
        let now = Self::prefix(file, s.fingerprint.len());
        now != s.fingerprint
    }

    /// Looks for the rest of detached stream `id` in `entries` (a plain copy, or a gzip
    /// file) and reads it there. Returns whether it was found.
    fn find_rest(
        &mut self,
        id: u64,
        entries: &[Entry],
        tracked: &HashSet<(u64, u64)>,
        sink: &mut dyn RecordSink,
        deadline: Instant,
    ) -> Result<bool> {
        let Some(fp) = self.streams.get(&id).map(|s| s.fingerprint.clone()) else {
            return Ok(false);
        };
        if fp.is_empty() {
            return Ok(false);
        }
        for e in entries
            .iter()
            .filter(|e| !e.gz && !tracked.contains(&(e.dev, e.ino)))
        {
            // A copy made while the file was shorter than its fingerprint is a prefix of it.
            let Some(file) = self.open(&e.path) else {
                continue;
            };
            let head = Self::prefix(&file, fp.len());
            if !prefixes_agree(&head, &fp) || (head.len() < fp.len() && head.len() as u64 != e.size)
            {
                continue;
            }
            // The copy holds the file's bytes at the same offsets: read on from the
            // position, to the copy's end, and hold it as a sealed file.
            if let Some(s) = self.streams.get_mut(&id) {
                s.dev = e.dev;
                s.ino = e.ino;
                s.path = e.path.clone();
                s.file = Some(file);
                s.state = State::Sealed;
                s.size_seen = e.size;
            }
            SourceMetrics::add(&self.metrics.copies_followed, 1);
            self.read(id, Some(e.size), true, sink, deadline)?;
            return Ok(true);
        }
        for e in entries
            .iter()
            .filter(|e| e.gz && !tracked.contains(&(e.dev, e.ino)))
        {
            if self.gzip_tried.contains(&(e.dev, e.ino, e.size)) {
                continue;
            }
            let before = self.streams.get(&id).map(|s| s.framer.resume_point());
            match self.read_gzip(id, e, &fp, sink)? {
                GzipOutcome::Read => {
                    // Counted when the gzip file held bytes the plain one had not given.
                    if self.streams.get(&id).map(|s| s.framer.resume_point()) != before {
                        SourceMetrics::add(&self.metrics.gzip_reads, 1);
                        SourceMetrics::add(&self.metrics.copies_followed, 1);
                    }
                    self.hold_gzip(id, e);
                    return Ok(true);
                }
                GzipOutcome::Other => {
                    self.gzip_tried.insert((e.dev, e.ino, e.size));
                }
                GzipOutcome::Incomplete => {}
            }
        }
        Ok(false)
    }

    /// Reads the rest of stream `id` from a gzip file whose decompressed start is `fp`.
    fn read_gzip(
        &mut self,
        id: u64,
        e: &Entry,
        fp: &[u8],
        sink: &mut dyn RecordSink,
    ) -> Result<GzipOutcome> {
        let Some(file) = self.open(&e.path) else {
            return Ok(GzipOutcome::Other);
        };
        let mut decoder = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
        let mut head = Vec::with_capacity(fp.len());
        if (&mut decoder)
            .take(fp.len() as u64)
            .read_to_end(&mut head)
            .is_err()
        {
            return Ok(GzipOutcome::Incomplete);
        }
        if !prefixes_agree(&head, fp) {
            return Ok(GzipOutcome::Other);
        }
        let Some(mut s) = self.streams.remove(&id) else {
            return Ok(GzipOutcome::Other);
        };
        let (offset, split) = s.framer.resume_point();
        let mut framer = self.framer_at(offset, split);
        let path_str = e.path.to_string_lossy().into_owned();
        // Skip to the position: everything before it is committed.
        let mut skip = offset.saturating_sub(head.len() as u64);
        if offset < head.len() as u64 {
            skip = 0;
            let r = {
                let mut emitter = self.emitter(&mut *sink, &path_str);
                framer.feed(head.get(offset as usize..).unwrap_or_default(), &mut |p| {
                    emitter.emit(p)
                })
            };
            if let Err(err) = r {
                self.streams.insert(id, s);
                return Err(err);
            }
        }
        let skipped = std::io::copy(&mut (&mut decoder).take(skip), &mut std::io::sink());
        let mut outcome = if matches!(skipped, Ok(n) if n == skip) {
            GzipOutcome::Read
        } else {
            GzipOutcome::Incomplete
        };
        while outcome == GzipOutcome::Read {
            match decoder.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => {
                    let r = {
                        let mut emitter = self.emitter(&mut *sink, &path_str);
                        let data = self.buf.get(..n).unwrap_or_default();
                        framer.feed(data, &mut |p| emitter.emit(p))
                    };
                    if let Err(err) = r {
                        s.framer = framer;
                        self.streams.insert(id, s);
                        return Err(err);
                    }
                }
                // A gzip file still being written ends early: try again at the next poll
                // from what was emitted.
                Err(_) => outcome = GzipOutcome::Incomplete,
            }
        }
        if outcome == GzipOutcome::Read {
            let mut emitter = self.emitter(sink, &path_str);
            framer.flush(&mut |p| emitter.emit(p))?;
        }
        // Held bytes are re-read from the resume point next time.
        let (offset, split) = framer.resume_point();
        s.framer = self.framer_at(offset, split);
        self.streams.insert(id, s);
        Ok(outcome)
    }

    /// Keeps stream `id` as the gzip file `e`, read to its end.
    fn hold_gzip(&mut self, id: u64, e: &Entry) {
        let raw = self
            .open(&e.path)
            .map(|f| Self::prefix(&f, FINGERPRINT_BYTES))
            .unwrap_or_default();
        if let Some(s) = self.streams.get_mut(&id) {
            s.dev = e.dev;
            s.ino = e.ino;
            s.path = e.path.clone();
            s.file = None;
            s.fingerprint = raw;
            s.state = State::Gzip;
        }
    }

    /// A gzip file no followed file accounts for (rotated and compressed before the agent
    /// saw it): read whole from its start, once it decompresses to its end.
    fn read_new_gzip(&mut self, e: &Entry, sink: &mut dyn RecordSink) -> Result<bool> {
        let Some(file) = self.open(&e.path) else {
            return Ok(false);
        };
        let mut decoder = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
        let mut head = Vec::with_capacity(FINGERPRINT_BYTES);
        let complete = (&mut decoder)
            .take(FINGERPRINT_BYTES as u64)
            .read_to_end(&mut head)
            .is_ok()
            && std::io::copy(&mut decoder, &mut std::io::sink()).is_ok();
        if !complete || head.is_empty() {
            return Ok(false);
        }
        // The compressed copy of a file known here (followed, a sealed copy, or gone and
        // waiting for its rest) is read as that file's, at its position, or not at all.
        let of_followed = self
            .streams
            .values()
            .any(|s| s.state != State::Gzip && prefixes_agree(&s.fingerprint, &head));
        if of_followed {
            return Ok(false);
        }
        let id = self.new_stream(
            e,
            None,
            head.clone(),
            State::Detached {
                since: Instant::now(),
            },
        );
        let outcome = self.read_gzip(id, e, &head, sink)?;
        SourceMetrics::add(&self.metrics.gzip_reads, 1);
        if outcome != GzipOutcome::Read {
            // Checked complete above; replaced since. Its records were sent: keep the
            // stream detached at its position so they are not sent again.
            return Ok(true);
        }
        self.hold_gzip(id, e);
        Ok(true)
    }

    /// Attaches a restored stream (no descriptor yet) to its file, if the inode still holds
    /// it. Returns false when the inode holds another file now.
    fn reattach(&mut self, id: u64, e: &Entry) -> bool {
        let Some(file) = self.open(&e.path) else {
            return false;
        };
        let Ok(meta) = file.metadata() else {
            return false;
        };
        let Some(s) = self.streams.get_mut(&id) else {
            return false;
        };
        if (meta.dev(), meta.ino()) != (s.dev, s.ino) {
            return false;
        }
        let now = Self::prefix(&file, s.fingerprint.len());
        if now != s.fingerprint || meta.size() < s.framer.next_offset() {
            return false;
        }
        s.file = Some(file);
        s.path = e.path.clone();
        true
    }

    /// The end of a poll: the open-files gauge, and what the poll found.
    fn polled(&self, progress: bool) -> Poll {
        self.metrics.files_open.store(
            self.streams.values().filter(|s| s.file.is_some()).count() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        if progress {
            Poll::Progress
        } else {
            Poll::Idle
        }
    }

    /// Stream `id` lost its file; `rest_known` when it was read to its end through its
    /// descriptor (nothing more can come), else its rest is looked for.
    fn detach(&mut self, id: u64, rest_known: bool) {
        if let Some(s) = self.streams.get_mut(&id) {
            s.searches_left = if rest_known {
                0
            } else {
                SEARCHES_BEFORE_NEW_FILES
            };
            s.file = None;
            s.cut = false;
            s.state = State::Detached {
                since: Instant::now(),
            };
            let (offset, split) = s.framer.resume_point();
            s.framer = Framer::new(
                self.cfg.max_line_bytes,
                self.start_regex.clone(),
                offset,
                split,
            );
        }
        self.gzip_tried.clear();
    }

    fn tracked(&self) -> HashSet<(u64, u64)> {
        self.streams
            .values()
            .filter(|s| !matches!(s.state, State::Detached { .. }))
            .map(|s| (s.dev, s.ino))
            .collect()
    }
}

/// A new plain file opened, with its first bytes.
type Opened = (File, Vec<u8>);

/// What [`FileSource::search_rest`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Search {
    /// The rest was found and read.
    Found,
    /// Not found yet: the poll ends, later files wait.
    Waiting,
    /// The stream's rest is not searched for ahead of later files.
    NotPending,
}

impl Search {
    /// Whether the rest was found and read, or `None` while the poll must end there.
    fn found(self) -> Option<bool> {
        match self {
            Search::Found => Some(true),
            Search::NotPending => Some(false),
            Search::Waiting => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GzipOutcome {
    /// Read to its end.
    Read,
    /// Not this stream's (or not a gzip file).
    Other,
    /// Ended early (still being written); tried again later.
    Incomplete,
}

/// Turns framed pieces into records with the source's key and headers. Made for one read
/// (a chunk of a file): the records of a read share its timestamp, and its counts reach the
/// source's counters when it is dropped.
struct Emitter<'a> {
    sink: &'a mut dyn RecordSink,
    cfg: &'a FileSourceConfig,
    key_regex: Option<&'a Regex>,
    host: &'a str,
    path: &'a str,
    metrics: &'a SourceMetrics,
    timestamp: i64,
    records: u64,
    bytes: u64,
}

impl Emitter<'_> {
    fn emit(&mut self, p: Piece<'_>) -> Result<()> {
        let key: Option<&[u8]> = match self.cfg.key {
            KeyMode::None => None,
            KeyMode::Path => Some(self.path.as_bytes()),
            KeyMode::Regex => self.key_regex.and_then(|re| {
                re.captures(p.value)
                    .and_then(|c| c.name("key").or_else(|| c.get(1)).map(|m| m.as_bytes()))
            }),
            #[allow(unreachable_patterns)]
            _ => None,
        };
        let mut digits = [0u8; 20];
        let offset = decimal(p.start, &mut digits);
        let mut index_digits = [0u8; 10];
        let split_headers;
        let headers: &[Header<'_>] = match p.split {
            None => &[
                Header::new("host", Some(self.host.as_bytes())),
                Header::new("path", Some(self.path.as_bytes())),
                Header::new("offset", Some(offset)),
            ],
            Some((i, last)) => {
                split_headers = [
                    Header::new("host", Some(self.host.as_bytes())),
                    Header::new("path", Some(self.path.as_bytes())),
                    Header::new("offset", Some(offset)),
                    Header::new(
                        "split.index",
                        Some(decimal(u64::from(i), &mut index_digits)),
                    ),
                    Header::new("split.last", Some(if last { b"true" } else { b"false" })),
                ];
                &split_headers
            }
        };
        self.records += 1;
        self.bytes += p.value.len() as u64;
        self.sink.send(self.timestamp, key, Some(p.value), headers)
    }
}

impl Drop for Emitter<'_> {
    fn drop(&mut self) {
        SourceMetrics::add(&self.metrics.records, self.records);
        SourceMetrics::add(&self.metrics.bytes, self.bytes);
    }
}

/// `n` in decimal, written at the end of `buf` (20 bytes hold any u64).
fn decimal<const N: usize>(mut n: u64, buf: &mut [u8; N]) -> &[u8] {
    let mut at = N;
    while at > 0 {
        at -= 1;
        if let Some(b) = buf.get_mut(at) {
            *b = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.get(at..).unwrap_or_default()
}

impl Source for FileSource {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn topic(&self) -> &str {
        &self.cfg.topic
    }

    fn restore(&mut self, committed: &BTreeMap<Vec<u8>, Vec<u8>>) -> Result<()> {
        for (key, value) in committed {
            let stored = StoredStream::decode(&self.cfg.name, key, value)?;
            let id: u64 = std::str::from_utf8(key)
                .ok()
                .and_then(|k| k.parse().ok())
                .ok_or_else(|| IngestError::BadPosition {
                    source_name: self.cfg.name.clone(),
                    key: String::from_utf8_lossy(key).into_owned(),
                    reason: "not a stream id".into(),
                })?;
            let fingerprint =
                from_hex(&stored.fingerprint).ok_or_else(|| IngestError::BadPosition {
                    source_name: self.cfg.name.clone(),
                    key: id.to_string(),
                    reason: "bad fingerprint".into(),
                })?;
            let state = match stored.state.as_str() {
                "active" => State::Active,
                "sealed" => State::Sealed,
                "gzip" => State::Gzip,
                _ => State::Detached {
                    since: Instant::now(),
                },
            };
            let framer = self.framer_at(stored.offset, stored.split);
            self.streams.insert(
                id,
                Stream {
                    dev: stored.dev,
                    ino: stored.ino,
                    path: PathBuf::from(&stored.path),
                    file: None,
                    fingerprint,
                    framer,
                    state,
                    last_growth: Instant::now(),
                    size_seen: stored.offset,
                    stored: Some((
                        stored.offset,
                        stored.split,
                        stored.state.clone(),
                        stored.dev,
                        stored.ino,
                    )),
                    searches_left: if stored.state == "detached" {
                        SEARCHES_BEFORE_NEW_FILES
                    } else {
                        0
                    },
                    cut: false,
                },
            );
            self.next_id = self.next_id.max(id + 1);
        }
        Ok(())
    }

    fn poll(&mut self, sink: &mut dyn RecordSink, deadline: Instant) -> Result<Poll> {
        self.last_poll = Instant::now();
        let mut progress = false;
        let Some(entries) = self.list_stable() else {
            // The files changed under every listing: try again soon.
            return Ok(self.polled(true));
        };
        // Restored streams take their descriptors first, so their limits are measured below
        // with the others (one that cannot is dealt with in step 1).
        let unattached: Vec<(u64, Entry)> = self
            .streams
            .iter()
            .filter(|(_, s)| s.file.is_none() && matches!(s.state, State::Active | State::Sealed))
            .filter_map(|(id, s)| {
                let e = entries.iter().find(|e| (e.dev, e.ino) == (s.dev, s.ino))?;
                Some((*id, e.clone()))
            })
            .collect();
        for (id, e) in unattached {
            self.reattach(id, &e);
        }
        // How far each followed file is read, measured newest first (the reverse of the
        // reading order, after the listing's sizes of new files): every byte a later file
        // holds within its limit was written before an earlier file's limit was measured,
        // so a writer's lines written before it are within that limit. (Sizes taken in the
        // listing's own order would depend on the names' alphabetical order.)
        let limits: BTreeMap<u64, u64> = self
            .streams
            .iter()
            .rev()
            .filter_map(|(id, s)| {
                let size = s.file.as_ref()?.metadata().ok()?.size();
                Some((*id, size))
            })
            .collect();
        let ids: Vec<u64> = self.streams.keys().copied().collect();
        // 1. Files already followed, oldest first.
        for id in ids {
            if Instant::now() >= deadline {
                // A later file read before an earlier one's rest would put a writer's lines
                // out of order: the rest waits for the next poll.
                return Ok(self.polled(true));
            }
            let Some(s) = self.streams.get(&id) else {
                continue;
            };
            if matches!(s.state, State::Detached { .. }) {
                // Its rest, while unknown, is looked for before any later file is read.
                let Some(found) = self.search_rest(id, &entries, sink, deadline)?.found() else {
                    return Ok(self.polled(true));
                };
                progress |= found;
                continue;
            }
            if s.state == State::Gzip {
                // Read to its end; forgotten once deleted.
                if !entries.iter().any(|e| (e.dev, e.ino) == (s.dev, s.ino)) {
                    self.forget(id);
                }
                continue;
            }
            let (dev, ino, has_file, state) = (s.dev, s.ino, s.file.is_some(), s.state);
            let entry = entries
                .iter()
                .find(|e| (e.dev, e.ino) == (dev, ino))
                .cloned();
            match entry {
                None if has_file => {
                    // Gone from the listing: what the descriptor still holds is the rest.
                    // Kept detached a while, so a gzip copy of it is known for what it is.
                    progress |= self.read(id, None, true, sink, deadline)?;
                    if self.was_cut(id) {
                        return self.truncation(id, sink, deadline);
                    }
                    let done = self.streams.get(&id).is_some_and(|s| !s.framer.holds());
                    if done {
                        self.detach(id, true);
                    }
                }
                None => {
                    // Gone while the agent was down (e.g. compressed and removed): its rest
                    // comes before the files after it.
                    self.detach(id, false);
                    let search = self.search_rest(id, &entries, sink, deadline)?;
                    let Some(found) = search.found() else {
                        return Ok(self.polled(true));
                    };
                    progress |= found;
                }
                Some(e) => {
                    if !has_file && !self.reattach(id, &e) {
                        // The inode holds another file, or this one was truncated while
                        // the agent was down: a plain copy holding its rest tells which.
                        self.detach(id, false);
                        let search = self.search_rest(id, &entries, sink, deadline)?;
                        let copied = self
                            .streams
                            .get(&id)
                            .is_some_and(|s| s.state == State::Sealed);
                        let counter = if copied {
                            &self.metrics.truncations
                        } else {
                            &self.metrics.identity_changes
                        };
                        SourceMetrics::add(counter, 1);
                        let Some(found) = search.found() else {
                            return Ok(self.polled(true));
                        };
                        progress |= found;
                        continue;
                    }
                    let truncated = state == State::Active
                        && self
                            .streams
                            .get(&id)
                            .is_some_and(|s| Self::truncated(s, &e));
                    if truncated {
                        return self.truncation(id, sink, deadline);
                    }
                    if let Some(s) = self.streams.get_mut(&id) {
                        s.path = e.path.clone();
                        s.size_seen = e.size;
                    }
                    let limit = limits.get(&id).copied().unwrap_or(e.size);
                    progress |=
                        self.read(id, Some(limit), state == State::Sealed, sink, deadline)?;
                    if self.was_cut(id) {
                        return self.truncation(id, sink, deadline);
                    }
                }
            }
        }
        // 2. Detached files no longer searched before later files (read to their end, or
        // searched in enough listings): their rest may still turn up in a copy or a gzip
        // file, until their timeout.
        let detached: Vec<(u64, Instant)> = self
            .streams
            .iter()
            .filter_map(|(id, s)| match s.state {
                State::Detached { since } => Some((*id, since)),
                _ => None,
            })
            .collect();
        for (id, since) in detached {
            let tracked = self.tracked();
            if self.find_rest(id, &entries, &tracked, sink, deadline)? {
                progress = true;
            } else if since.elapsed() >= Duration::from_millis(self.cfg.detached_timeout_ms) {
                let lost = self
                    .streams
                    .get(&id)
                    .map_or(0, |s| s.size_seen.saturating_sub(s.framer.resume_point().0));
                if lost > 0 {
                    SourceMetrics::add(&self.metrics.bytes_lost, lost);
                    SourceMetrics::add(&self.metrics.files_skipped, 1);
                }
                self.forget(id);
            }
        }
        // 3. New files (gzip files no followed file accounts for, and plain files), oldest
        // modification first: `gzip` keeps the original's modification time, so a rotated
        // file compressed later still sorts before the files written after it. (Step 1
        // ended the poll while a detached file's rest was still searched for.)
        let tracked = self.tracked();
        let listed: Vec<(PathBuf, u64, u64)> = entries
            .iter()
            .map(|e| (e.path.clone(), e.dev, e.ino))
            .collect();
        let mut fresh: Vec<Entry> = entries
            .into_iter()
            .filter(|e| (e.gz || e.size > 0) && !tracked.contains(&(e.dev, e.ino)))
            .collect();
        fresh.sort_by(|a, b| {
            let key = |e: &Entry| (e.mtime, std::cmp::Reverse(e.path.as_os_str().len()));
            key(a).cmp(&key(b)).then_with(|| a.path.cmp(&b.path))
        });
        // First each new plain file is opened and its first bytes read (None: a gzip file).
        let mut starts: Vec<(Entry, Option<Opened>)> = Vec::new();
        for e in fresh {
            if e.gz {
                starts.push((e, None));
                continue;
            }
            // Gone, replaced or truncated since the listing (compressed, rotated,
            // copytruncated): the files after it in this listing may hold later lines than
            // its successor (a gzip file sorts by its final time only once complete), so
            // they wait for the next poll's listing.
            let Some(file) = self.open(&e.path) else {
                break;
            };
            let Ok(meta) = file.metadata() else { break };
            if (meta.dev(), meta.ino()) != (e.dev, e.ino) {
                break;
            }
            let head = Self::prefix(&file, FINGERPRINT_BYTES.min(e.size as usize));
            if file.metadata().map_or(true, |m| m.size() < e.size) {
                break;
            }
            // A copy in progress of a followed file (or of a new file before it) is left
            // alone until the original is truncated or gone.
            let copy = self.streams.values().any(|s| {
                matches!(s.state, State::Active | State::Sealed)
                    && prefixes_agree(&s.fingerprint, &head)
            }) || starts
                .iter()
                .any(|(_, st)| st.as_ref().is_some_and(|(_, h)| prefixes_agree(h, &head)));
            if copy {
                continue;
            }
            starts.push((e, Some((file, head))));
        }
        // Then the files are listed again: a new file truncated (copytruncate) between the
        // listing and the read of its first bytes has its older lines in a copy the listing
        // did not see, and they must come first. A copy made after this listing holds lines
        // newer than those first bytes, and a truncation after them is seen by the reads.
        if starts.iter().any(|(_, st)| st.is_some()) {
            let same = self.list_stable().is_some_and(|now| {
                now.len() == listed.len()
                    && now
                        .iter()
                        .zip(&listed)
                        .all(|(a, (path, dev, ino))| (&a.path, a.dev, a.ino) == (path, *dev, *ino))
            });
            if !same {
                return Ok(self.polled(true));
            }
        }
        for (e, start) in starts {
            if Instant::now() >= deadline {
                return Ok(self.polled(true));
            }
            let Some((file, head)) = start else {
                progress |= self.read_new_gzip(&e, sink)?;
                continue;
            };
            // Taken by a gzip file or a copy read above.
            if self.tracked().contains(&(e.dev, e.ino)) {
                continue;
            }
            let id = self.new_stream(&e, Some(file), head, State::Active);
            progress |= self.read(id, Some(e.size), false, sink, deadline)?;
            if self.was_cut(id) {
                return self.truncation(id, sink, deadline);
            }
        }
        Ok(self.polled(progress))
    }

    fn take_positions(&mut self) -> Vec<PositionUpdate> {
        let mut out: Vec<PositionUpdate> = std::mem::take(&mut self.removed)
            .into_iter()
            .map(|id| (id.to_string().into_bytes(), None))
            .collect();
        for (id, s) in &mut self.streams {
            let (offset, split) = s.framer.resume_point();
            let state = match s.state {
                State::Active => "active",
                State::Sealed => "sealed",
                State::Gzip => "gzip",
                State::Detached { .. } => "detached",
            };
            let now = (offset, split, state.to_string(), s.dev, s.ino);
            // A new file nothing was emitted from needs no position: after a restart it is
            // found again and read from its start.
            let unchanged = match &s.stored {
                Some(stored) => *stored == now,
                None => offset == 0 && split == 0 && state == "active",
            };
            if unchanged {
                continue;
            }
            let value = StoredStream {
                dev: s.dev,
                ino: s.ino,
                offset,
                split,
                fingerprint: to_hex(&s.fingerprint),
                path: s.path.to_string_lossy().into_owned(),
                state: state.to_string(),
            };
            out.push((id.to_string().into_bytes(), Some(value.encode())));
            s.stored = Some(now);
        }
        out
    }

    /// The refresh interval after this poll (the poll interval without a watcher), or
    /// sooner when a held partial line's idle timeout or a detached file's timeout falls
    /// before it. A file event wakes the source earlier through the waker.
    fn next_poll(&self) -> Option<Instant> {
        let interval = match self.watcher {
            Some(_) => self.cfg.refresh_interval_ms,
            None => self.cfg.poll_interval_ms,
        };
        let now = Instant::now();
        let mut at = self.last_poll + Duration::from_millis(interval);
        let idle = Duration::from_millis(self.cfg.idle_timeout_ms);
        let detached = Duration::from_millis(self.cfg.detached_timeout_ms);
        for s in self.streams.values() {
            let due = match s.state {
                State::Detached { since } => since + detached,
                _ if s.framer.holds() && s.file.is_some() => s.last_growth + idle,
                _ => continue,
            };
            // One already past was due at the poll just made, which acted on it if it could:
            // polling again at once would spin.
            if due > now {
                at = at.min(due);
            }
        }
        Some(at)
    }

    fn set_waker(&mut self, wake: Sender<()>) {
        if self.cfg.watch {
            self.watcher = watch::Watcher::start(&self.cfg.paths, wake);
        }
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}
