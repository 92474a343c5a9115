//! A read that races with a truncation is retried against the truncated log, so the reader
//! gets whole batches of the log as it now is (or `OffsetOutOfRange` when its offset is
//! gone), never an I/O error from a file that shrank under it. The races are staged
//! exactly by a filesystem wrapper: it runs the truncation inside the reader's first read
//! of a `.log` file (after the reader took its view of the log), or runs the read inside
//! the truncation, right after the `.log` file is cut.

use crate::common::logs;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use logs::{batch, batch_ranges, records, T0};
use streamlog::io::{File, FileSystem, MappedWords, OpenMode, RealFs};
use streamlog::{Compression, Error, Log, LogConfig};

type Action = Box<dyn FnOnce(&Log) + Send>;

/// Runs `action` once, at the first read (or, `on_set_len`, right after the first length
/// change) of a `.log` file after it is armed.
#[derive(Default)]
struct Tripwire {
    armed: AtomicBool,
    on_set_len: AtomicBool,
    action: Mutex<Option<Action>>,
    log: Mutex<Weak<Log>>,
}

impl std::fmt::Debug for Tripwire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tripwire")
    }
}

impl Tripwire {
    fn arm(&self, action: impl FnOnce(&Log) + Send + 'static) {
        *self.action.lock().unwrap() = Some(Box::new(action));
        self.armed.store(true, Ordering::SeqCst);
    }

    fn fire(&self) {
        if self.armed.swap(false, Ordering::SeqCst) {
            let action = self.action.lock().unwrap().take();
            let log = self.log.lock().unwrap().upgrade();
            if let (Some(action), Some(log)) = (action, log) {
                action(&log);
            }
        }
    }
}

#[derive(Debug)]
struct TripFs {
    wire: Arc<Tripwire>,
}

#[derive(Debug)]
struct TripFile {
    inner: Arc<dyn File>,
    wire: Option<Arc<Tripwire>>,
}

impl FileSystem for TripFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>> {
        let inner = RealFs.open(path, mode)?;
        let is_log = path.extension().is_some_and(|e| e == "log");
        Ok(Arc::new(TripFile {
            inner,
            wire: is_log.then(|| Arc::clone(&self.wire)),
        }))
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        RealFs.create_dir_all(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        RealFs.list(dir)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        RealFs.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealFs.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        RealFs.sync_dir(dir)
    }
    fn exists(&self, path: &Path) -> bool {
        RealFs.exists(path)
    }
}

impl File for TripFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        if let Some(wire) = self
            .wire
            .as_ref()
            .filter(|w| !w.on_set_len.load(Ordering::SeqCst))
        {
            wire.fire();
        }
        self.inner.read_at(buf, pos)
    }
    fn append(&self, bufs: &[&[u8]]) -> io::Result<()> {
        self.inner.append(bufs)
    }
    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.inner.write_at(buf, pos)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)?;
        if let Some(wire) = self
            .wire
            .as_ref()
            .filter(|w| w.on_set_len.load(Ordering::SeqCst))
        {
            wire.fire();
        }
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()
    }
    fn map_words(&self, len: u64, writable: bool) -> io::Result<Arc<dyn MappedWords>> {
        self.inner.map_words(len, writable)
    }
}

/// A log of three batches, [0,4] [5,9] [10,14], in one segment, behind a tripwire.
fn staged(dir: &Path) -> (Arc<Log>, Arc<Tripwire>) {
    let wire = Arc::new(Tripwire::default());
    let fs = Arc::new(TripFs {
        wire: Arc::clone(&wire),
    });
    let (log, _) = Log::open_with(fs, dir, LogConfig::default(), &mut |_| Ok(())).unwrap();
    let log = Arc::new(log);
    *wire.log.lock().unwrap() = Arc::downgrade(&log);
    for i in 0..3 {
        log.append(&batch(5, T0 + i)).unwrap();
    }
    (log, wire)
}

#[test]
fn offset_truncated_away_mid_read_is_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let (log, wire) = staged(dir.path());
    wire.arm(|log| log.truncate_to(5).unwrap());
    match log.read_bytes(10, 1 << 20, None) {
        Err(Error::OffsetOutOfRange {
            offset: 10,
            log_end_offset: 5,
            ..
        }) => {}
        other => panic!("expected OffsetOutOfRange at the new end, got {other:?}"),
    }
    assert!(!wire.armed.load(Ordering::SeqCst), "the race was staged");
}

#[test]
fn rewritten_tail_mid_read_returns_the_new_batches() {
    let dir = tempfile::tempdir().unwrap();
    let (log, wire) = staged(dir.path());
    // The tail is replaced by a larger batch while the reader reads.
    wire.arm(|log| {
        log.truncate_to(5).unwrap();
        log.append_records(&records(77, 8, T0 + 9, 100), Compression::None)
            .unwrap();
    });
    let bytes = log.read_bytes(5, 1 << 20, None).unwrap();
    assert_eq!(batch_ranges(&bytes), vec![(5, 12)]);
    assert!(!wire.armed.load(Ordering::SeqCst), "the race was staged");
}

#[test]
fn record_iteration_mid_truncation_sees_the_truncated_log() {
    let dir = tempfile::tempdir().unwrap();
    let (log, wire) = staged(dir.path());
    wire.arm(|log| log.truncate_to(7).unwrap());
    let offsets: Vec<i64> = log.records_from(0).map(|r| r.unwrap().offset()).collect();
    assert_eq!(offsets, (0..5).collect::<Vec<_>>());
    assert!(!wire.armed.load(Ordering::SeqCst), "the race was staged");
}

#[test]
fn reads_while_the_file_is_being_cut_see_the_truncated_log() {
    let dir = tempfile::tempdir().unwrap();
    let (log, wire) = staged(dir.path());
    let seen = Arc::new(Mutex::new(None));
    let seen_in_cut = Arc::clone(&seen);
    // Arm the read to run inside truncate_to, right after it cuts the .log file.
    wire.on_set_len.store(true, Ordering::SeqCst);
    let probe = Arc::downgrade(&log);
    wire.arm(move |_| {
        let log = probe.upgrade().unwrap();
        let beyond = log.read_bytes(10, 1 << 20, None);
        let kept = log.read_bytes(0, 1 << 20, None);
        *seen_in_cut.lock().unwrap() = Some((beyond, kept));
    });
    log.truncate_to(5).unwrap();
    assert!(!wire.armed.load(Ordering::SeqCst), "the race was staged");
    let (beyond, kept) = seen.lock().unwrap().take().unwrap();
    // Offsets being cut away are gone (or, read before the cut, whole), never an I/O error.
    match beyond {
        Err(Error::OffsetOutOfRange { offset: 10, .. }) => {}
        Ok(bytes) => assert_eq!(batch_ranges(&bytes), vec![(10, 14)]),
        Err(e) => panic!("read during the cut failed: {e:?}"),
    }
    let kept = kept.unwrap();
    assert_eq!(batch_ranges(&kept)[0], (0, 4));
    assert_eq!(
        batch_ranges(&log.read_bytes(0, 1 << 20, None).unwrap()),
        vec![(0, 4)]
    );
}
