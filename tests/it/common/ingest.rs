//! Drives a `FileSource` by hand: polls into a sink, "commits" by keeping its positions and
//! the records sent so far, "crashes" by dropping the uncommitted records and building the
//! source again from the committed positions — the agent's contract, without its threads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use streamlog::ingest::{FileSource, FileSourceConfig, Poll, RecordSink, Source, SourceMetrics};
use streamlog::Header;

/// A record as the source sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub value: Vec<u8>,
    pub key: Option<Vec<u8>>,
    pub headers: BTreeMap<String, String>,
}

impl Sent {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.value).into_owned()
    }
}

#[derive(Default)]
pub struct VecSink(pub Vec<Sent>);

impl RecordSink for VecSink {
    fn send(
        &mut self,
        _timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> streamlog::ingest::Result<()> {
        self.0.push(Sent {
            value: value.unwrap_or_default().to_vec(),
            key: key.map(<[u8]>::to_vec),
            headers: headers
                .iter()
                .map(|h| {
                    (
                        String::from_utf8_lossy(h.key).into_owned(),
                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect(),
        });
        Ok(())
    }
}

pub struct Harness {
    pub cfg: FileSourceConfig,
    pub metrics: Arc<SourceMetrics>,
    pub source: FileSource,
    pub committed: BTreeMap<Vec<u8>, Vec<u8>>,
    pub delivered: Vec<Sent>,
    pub pending: VecSink,
}

impl Harness {
    pub fn new(cfg: FileSourceConfig) -> Self {
        let metrics = Arc::new(SourceMetrics::default());
        let source = FileSource::new(cfg.clone(), Arc::clone(&metrics)).unwrap();
        Harness {
            cfg,
            metrics,
            source,
            committed: BTreeMap::new(),
            delivered: Vec::new(),
            pending: VecSink::default(),
        }
    }

    /// One poll with a far deadline.
    pub fn poll(&mut self) -> Poll {
        self.source
            .poll(&mut self.pending, Instant::now() + Duration::from_secs(600))
            .unwrap()
    }

    /// The transaction commits: positions and records become durable together.
    pub fn commit(&mut self) {
        for (k, v) in self.source.take_positions() {
            match v {
                Some(v) => self.committed.insert(k, v),
                None => self.committed.remove(&k),
            };
        }
        self.delivered.append(&mut self.pending.0);
    }

    /// The agent dies: what was not committed is gone; a new source resumes.
    pub fn crash(&mut self) {
        self.pending.0.clear();
        self.source = FileSource::new(self.cfg.clone(), Arc::clone(&self.metrics)).unwrap();
        self.source.restore(&self.committed).unwrap();
    }

    /// Polls until a poll finds nothing new (a source may end a poll early, e.g. to list
    /// the files again after a truncation), then commits.
    pub fn poll_commit(&mut self) {
        for _ in 0..10 {
            if self.poll() == Poll::Idle {
                break;
            }
        }
        self.commit();
    }

    pub fn texts(&self) -> Vec<String> {
        self.delivered.iter().map(Sent::text).collect()
    }

    pub fn count(&self, m: fn(&SourceMetrics) -> &std::sync::atomic::AtomicU64) -> u64 {
        SourceMetrics::get(m(&self.metrics))
    }
}

/// Compresses `plain` into `plain.gz` and removes it, as `gzip` does: the compressed file
/// appears first, keeps the original's modification time, and the original goes last.
pub fn gzip(plain: &std::path::Path) {
    use std::io::Write;
    let data = std::fs::read(plain).unwrap();
    let gz = std::path::PathBuf::from(format!("{}.gz", plain.display()));
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(&data).unwrap();
    let file = enc.finish().unwrap();
    file.set_modified(std::fs::metadata(plain).unwrap().modified().unwrap())
        .unwrap();
    drop(file);
    std::fs::remove_file(plain).unwrap();
}

/// A `streamlog ingest` process started by [`spawn_agent`]: killed (SIGKILL) and reaped when
/// dropped, so an agent never outlives a test that fails between its start and its end.
/// Derefs to the [`std::process::Child`] for `kill`, `wait` and `try_wait`.
#[cfg(feature = "cli")]
pub struct Agent(std::process::Child);

#[cfg(feature = "cli")]
impl Agent {
    /// SIGKILLs the agent and reaps it.
    pub fn kill_now(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }

    /// Waits until the agent exits by itself, at most until `deadline`; `None` (the agent
    /// killed and reaped) if it was still running then.
    pub fn wait_until(&mut self, deadline: Instant) -> Option<std::process::ExitStatus> {
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                self.kill_now();
                return None;
            }
            // Polling the child's exit (there is no portable wait with a timeout), bounded.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(feature = "cli")]
impl std::ops::Deref for Agent {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

#[cfg(feature = "cli")]
impl std::ops::DerefMut for Agent {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

#[cfg(feature = "cli")]
impl Drop for Agent {
    fn drop(&mut self) {
        // Already exited and reaped: both fail harmlessly.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `streamlog ingest --config CONFIG` (with `--until-idle` when asked: it stops by
/// itself once its sources are caught up), standard error to the file `log`.
#[cfg(feature = "cli")]
pub fn spawn_agent(config: &std::path::Path, log: &std::path::Path, until_idle: bool) -> Agent {
    let mut args = vec!["ingest", "--config", config.to_str().unwrap()];
    if until_idle {
        args.push("--until-idle");
    }
    Agent(
        std::process::Command::new(env!("CARGO_BIN_EXE_streamlog"))
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// A test source's position: how many records it sent, kept under the key `n`, and how many
/// of those it already reported to the agent.
#[derive(Debug, Default, Clone, Copy)]
pub struct CountedPosition {
    pub sent: u64,
    pub reported: u64,
}

impl CountedPosition {
    /// Starts from the count committed under `n` (0 when none).
    pub fn restored(committed: &BTreeMap<Vec<u8>, Vec<u8>>) -> CountedPosition {
        let n = committed
            .get(b"n".as_slice())
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        CountedPosition {
            sent: n,
            reported: n,
        }
    }

    /// `Source::take_positions`: the count, once each time it moved.
    pub fn take(&mut self) -> Vec<streamlog::ingest::PositionUpdate> {
        if self.sent == self.reported {
            return Vec::new();
        }
        self.reported = self.sent;
        vec![(b"n".to_vec(), Some(self.sent.to_string().into_bytes()))]
    }
}
