//! A simulated filesystem behind a gate: it lets a budget of operations through and fails
//! every later one (the machine stopped there; `SimFs::crash` then loses power), and it can
//! hold one fsync of a `.log` file until released, to line up concurrent work without sleeps.
#![allow(dead_code)]

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use streamlog::io::{File, FileSystem, MappedWords, OpenMode, SimFs};

/// Shared state of a [`GatedFs`]: the budget of operations left, and an fsync hold.
#[derive(Debug)]
pub struct Gate {
    pub fs: SimFs,
    /// Operations left before every operation fails (as if power were cut there).
    budget: AtomicI64,
    /// When set, the next `sync_data` of a `.log` file reports here and waits for the
    /// go-ahead on the receiver before syncing.
    hold: Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>>,
    /// `sync_data` calls on `.log` files.
    pub log_syncs: AtomicU32,
}

impl Gate {
    pub fn new(fs: SimFs) -> Arc<Gate> {
        Arc::new(Gate {
            fs,
            budget: AtomicI64::new(i64::MAX),
            hold: Mutex::new(None),
            log_syncs: AtomicU32::new(0),
        })
    }

    /// Lets `n` more operations through, then fails every one.
    pub fn arm(&self, n: i64) {
        self.budget.store(n, Ordering::SeqCst);
    }

    /// Fails every operation from now on.
    pub fn cut(&self) {
        self.budget.store(0, Ordering::SeqCst);
    }

    /// Whether the budget ran out.
    pub fn is_cut(&self) -> bool {
        self.budget.load(Ordering::SeqCst) <= 0
    }

    /// Holds the next fsync of a `.log` file: `reached` gets a message when it starts, and
    /// it proceeds when `release` gets one.
    pub fn hold_next_log_sync(&self, reached: mpsc::Sender<()>, release: mpsc::Receiver<()>) {
        *self.hold.lock().unwrap() = Some((reached, release));
    }

    fn pass(&self) -> io::Result<()> {
        if self.budget.fetch_sub(1, Ordering::SeqCst) <= 0 {
            self.budget.store(0, Ordering::SeqCst);
            return Err(io::Error::other("stopped at the crash point"));
        }
        Ok(())
    }
}

/// A [`SimFs`] behind a [`Gate`].
#[derive(Debug)]
pub struct GatedFs(pub Arc<Gate>);

#[derive(Debug)]
struct GatedFile {
    file: Arc<dyn File>,
    gate: Arc<Gate>,
    is_log: bool,
}

#[derive(Debug)]
struct GatedMap(Arc<dyn MappedWords>, Arc<Gate>);

impl FileSystem for GatedFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>> {
        self.0.pass()?;
        let file = self.0.fs.open(path, mode)?;
        Ok(Arc::new(GatedFile {
            file,
            gate: Arc::clone(&self.0),
            is_log: path.extension().is_some_and(|e| e == "log"),
        }))
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.0.pass()?;
        self.0.fs.create_dir_all(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        self.0.pass()?;
        self.0.fs.list(dir)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.0.pass()?;
        self.0.fs.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.0.pass()?;
        self.0.fs.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.0.pass()?;
        self.0.fs.sync_dir(dir)
    }
    fn exists(&self, path: &Path) -> bool {
        self.0.fs.exists(path)
    }
}

impl File for GatedFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.gate.pass()?;
        self.file.read_at(buf, pos)
    }
    fn append(&self, bufs: &[&[u8]]) -> io::Result<()> {
        self.gate.pass()?;
        self.file.append(bufs)
    }
    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.gate.pass()?;
        self.file.write_at(buf, pos)
    }
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.gate.pass()?;
        self.file.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        if self.is_log {
            self.gate.log_syncs.fetch_add(1, Ordering::SeqCst);
            let hold = self.gate.hold.lock().unwrap().take();
            if let Some((reached, release)) = hold {
                let _ = reached.send(());
                let _ = release.recv();
            }
        }
        self.gate.pass()?;
        self.file.sync_data()
    }
    fn map_words(&self, len: u64, writable: bool) -> io::Result<Arc<dyn MappedWords>> {
        self.gate.pass()?;
        let map = self.file.map_words(len, writable)?;
        Ok(Arc::new(GatedMap(map, Arc::clone(&self.gate))))
    }
}

impl MappedWords for GatedMap {
    fn words(&self) -> &[std::sync::atomic::AtomicU32] {
        self.0.words()
    }
    fn flush(&self) -> io::Result<()> {
        self.1.pass()?;
        self.0.flush()
    }
}
