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
