//! The agent: many sources, each on its own thread with its own transactional producer,
//! committing records and positions together through one local transaction coordinator.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::error::{IngestError, Result};
use super::metrics::SourceMetrics;
use super::positions::{ensure_topic, load_committed};
use super::producer::{now_ms, ProducerSettings, TxnProducer};
use super::source::{Poll, Source};
use crate::storage::{Storage, TopicConfig};
use crate::txn::{LocalTxnDriver, TxnCoordinatorConfig};

/// Builds a source (again after a failure) with the counters it reports to.
pub type SourceFactory = Box<dyn Fn(Arc<SourceMetrics>) -> Result<Box<dyn Source>> + Send + Sync>;

/// How the agent commits.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AgentSettings {
    /// The prefix of every source's `transactional.id` (`<prefix>-<source>`).
    pub agent_id: String,
    /// A record waits at most this long before the transaction holding it commits (the
    /// position is committed at least this often while records flow).
    pub linger: Duration,
    /// Batching and codec.
    pub producer: ProducerSettings,
    /// How long to wait before rebuilding a failed source (doubles up to 32×).
    pub retry_backoff: Duration,
    /// A quiet source's positions that moved without records (a file finished or
    /// forgotten) are committed at least this often, even when the source itself never
    /// asks to be polled (Kafka Connect's `offset.flush.interval.ms`).
    pub offset_flush_interval: Duration,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            agent_id: "streamlog-ingest".to_string(),
            linger: Duration::from_millis(100),
            producer: ProducerSettings::default(),
            retry_backoff: Duration::from_millis(200),
            offset_flush_interval: Duration::from_secs(60),
        }
    }
}

struct SourceSpec {
    name: String,
    topic: String,
    factory: SourceFactory,
    metrics: Arc<SourceMetrics>,
}

/// Sources feeding one [`Storage`] exactly once.
///
/// ```
/// use std::sync::Arc;
/// use streamlog::ingest::{Agent, AgentSettings, FileSourceConfig};
/// use streamlog::storage::{Storage, StorageConfig};
///
/// let logs = tempfile::tempdir()?;
/// std::fs::write(logs.path().join("app.log"), "one\ntwo\n")?;
/// let data = tempfile::tempdir()?;
/// let storage = Arc::new(Storage::open(data.path(), StorageConfig::default())?);
///
/// let mut agent = Agent::new(Arc::clone(&storage), AgentSettings::default())?;
/// let mut files = FileSourceConfig::new("app", "app-logs");
/// files.paths = vec![format!("{}/*.log", logs.path().display())];
/// agent.add_file_source(files)?;
/// let running = agent.start()?;
/// running.wait_for_records("app", 2, std::time::Duration::from_secs(30));
/// running.shutdown()?;
///
/// let log = storage.partition("app-logs", 0)?;
/// let lines: Vec<Vec<u8>> = log
///     .records_committed(0)
///     .map(|r| r.map(|r| r.value().unwrap_or_default().to_vec()))
///     .collect::<Result<_, _>>()?;
/// assert_eq!(lines, [b"one".to_vec(), b"two".to_vec()]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Agent {
    storage: Arc<Storage>,
    driver: Arc<Mutex<LocalTxnDriver>>,
    settings: AgentSettings,
    sources: Vec<SourceSpec>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("settings", &self.settings)
            .field(
                "sources",
                &self.sources.iter().map(|s| &s.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// An agent over `storage`: opens the transaction coordinator on it (creating
    /// `__transaction_state`) and the positions topic.
    pub fn new(storage: Arc<Storage>, settings: AgentSettings) -> Result<Self> {
        if settings.offset_flush_interval.is_zero() {
            return Err(IngestError::Config(
                "offset_flush_interval is 0 (a busy loop)".into(),
            ));
        }
        ensure_topic(&storage)?;
        let driver = LocalTxnDriver::open(Arc::clone(&storage), TxnCoordinatorConfig::default())?;
        Ok(Agent {
            storage,
            driver: Arc::new(Mutex::new(driver)),
            settings,
            sources: Vec::new(),
        })
    }

    /// Adds a source built by `factory`; its topic is created with `partitions` partitions
    /// if missing. Names must be unique.
    pub fn add_source(&mut self, partitions: u32, factory: SourceFactory) -> Result<()> {
        let metrics = Arc::new(SourceMetrics::default());
        let probe = factory(Arc::clone(&metrics))?;
        let (name, topic) = (probe.name().to_string(), probe.topic().to_string());
        drop(probe);
        if name.is_empty() || name.contains('\0') {
            return Err(IngestError::Config(format!(
                "source name {name:?} is empty or has a NUL"
            )));
        }
        if self.sources.iter().any(|s| s.name == name) {
            return Err(IngestError::Config(format!(
                "two sources are named {name:?}"
            )));
        }
        if !self.storage.topics().contains(&topic) {
            self.storage
                .create_topic(&topic, partitions.max(1), TopicConfig::new())?;
        }
        self.sources.push(SourceSpec {
            name,
            topic,
            factory,
            metrics,
        });
        Ok(())
    }

    /// Starts every source: first fences each source's previous producer (aborting what a
    /// crash left open), then reads the committed positions once, then runs each source on
    /// a thread of its own.
    pub fn start(self) -> Result<RunningAgent> {
        let mut producers = Vec::new();
        for spec in &self.sources {
            producers.push(TxnProducer::init(
                Arc::clone(&self.storage),
                Arc::clone(&self.driver),
                &spec.name,
                &spec.topic,
                self.transactional_id(&spec.name),
                self.settings.producer,
            )?);
        }
        let mut committed = load_committed(&self.storage)?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut running = RunningAgent {
            stop: Arc::clone(&stop),
            wakers: Vec::new(),
            threads: Vec::new(),
            status: Vec::new(),
        };
        let shared = Arc::new(Shared {
            storage: Arc::clone(&self.storage),
            driver: Arc::clone(&self.driver),
            settings: self.settings.clone(),
            stop,
        });
        for (spec, producer) in self.sources.into_iter().zip(producers) {
            let (tx, rx) = channel();
            let positions = committed.remove(&spec.name).unwrap_or_default();
            running
                .status
                .push((spec.name.clone(), Arc::clone(&spec.metrics)));
            running.wakers.push(tx.clone());
            let shared = Arc::clone(&shared);
            let thread = std::thread::Builder::new()
                .name(format!("ingest-{}", spec.name))
                .spawn(move || run_source(&shared, spec, producer, positions, tx, rx))
                .map_err(|e| IngestError::Io {
                    op: "spawn a thread for",
                    path: "source".into(),
                    source: e,
                })?;
            running.threads.push(thread);
        }
        Ok(running)
    }

    fn transactional_id(&self, source: &str) -> String {
        format!("{}-{}", self.settings.agent_id, source)
    }
}

struct Shared {
    storage: Arc<Storage>,
    driver: Arc<Mutex<LocalTxnDriver>>,
    settings: AgentSettings,
    stop: Arc<AtomicBool>,
}

/// A started agent: status, and a graceful shutdown that commits what was read.
pub struct RunningAgent {
    stop: Arc<AtomicBool>,
    wakers: Vec<Sender<()>>,
    threads: Vec<JoinHandle<Result<()>>>,
    status: Vec<(String, Arc<SourceMetrics>)>,
}

impl std::fmt::Debug for RunningAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningAgent")
            .field(
                "sources",
                &self.status.iter().map(|s| &s.0).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl RunningAgent {
    /// Each source's name and counters.
    pub fn status(&self) -> &[(String, Arc<SourceMetrics>)] {
        &self.status
    }

    /// One line a source: records committed, commits, errors and rotation counters.
    pub fn status_line(&self) -> String {
        let g = SourceMetrics::get;
        self.status
            .iter()
            .map(|(name, m)| {
                format!(
                    "{name}: {} records committed ({} read), {} commits, {} files, {} truncations, {} errors",
                    g(&m.committed_records),
                    g(&m.records),
                    g(&m.commits),
                    g(&m.files_open),
                    g(&m.truncations),
                    g(&m.errors),
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Blocks until source `name` has committed at least `records` records or `timeout`
    /// passed; returns whether it got there. (For examples and tests: it polls the counter
    /// every few milliseconds.)
    pub fn wait_for_records(&self, name: &str, records: u64, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        let Some((_, m)) = self.status.iter().find(|(n, _)| n == name) else {
            return false;
        };
        while SourceMetrics::get(&m.committed_records) < records {
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Whether every source is caught up: its last `polls` polls found nothing new and
    /// everything it read is committed.
    pub fn is_idle(&self, polls: u64) -> bool {
        self.status
            .iter()
            .all(|(_, m)| SourceMetrics::get(&m.idle_streak) >= polls)
    }

    /// Whether a source thread has ended (it ends only on shutdown or a bug).
    pub fn any_finished(&self) -> bool {
        self.threads.iter().any(JoinHandle::is_finished)
    }

    /// Tells every source to stop (it commits what it has read first) and wakes it.
    fn stop_sources(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for w in &self.wakers {
            let _ = w.send(());
        }
    }

    /// Stops every source after it commits what it has read; returns the first error.
    pub fn shutdown(mut self) -> Result<()> {
        self.stop_sources();
        let mut first = Ok(());
        for t in std::mem::take(&mut self.threads) {
            let r = t.join().unwrap_or_else(|_| {
                Err(IngestError::Source {
                    source_name: "?".into(),
                    reason: "a source thread panicked".into(),
                })
            });
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

/// Dropped without [`RunningAgent::shutdown`] (a caller's early return, a test that
/// panics): the sources stop as on shutdown, each committing what it has read, and their
/// threads are waited for, so none outlives the agent; their errors are dropped.
impl Drop for RunningAgent {
    fn drop(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        self.stop_sources();
        for t in std::mem::take(&mut self.threads) {
            let _ = t.join();
        }
    }
}

fn run_source(
    shared: &Shared,
    spec: SourceSpec,
    mut producer: TxnProducer,
    mut committed: BTreeMap<Vec<u8>, Vec<u8>>,
    waker: Sender<()>,
    wake: Receiver<()>,
) -> Result<()> {
    let metrics = Arc::clone(&spec.metrics);
    let build = |committed: &BTreeMap<Vec<u8>, Vec<u8>>| -> Result<Box<dyn Source>> {
        let mut s = (spec.factory)(Arc::clone(&metrics))?;
        s.restore(committed)?;
        s.set_waker(waker.clone());
        Ok(s)
    };
    let mut failures = 0u32;
    let mut source = retry(shared, &wake, &metrics, &mut failures, || build(&committed))?;
    let linger = shared.settings.linger;
    let flush_interval = shared.settings.offset_flush_interval;
    let mut last_commit = Instant::now();
    loop {
        let stopping = shared.stop.load(Ordering::SeqCst);
        let deadline = last_commit + linger;
        let step = if stopping {
            Ok(Poll::Idle)
        } else {
            SourceMetrics::add(&metrics.polls, 1);
            source.poll(&mut producer, deadline)
        };
        let step = step.and_then(|outcome| {
            let due = stopping || Instant::now() >= deadline || producer.transaction_full();
            if due {
                // The next commit is due `linger` after this one starts, so commits follow
                // each other every `linger` while records flow, however long one takes.
                last_commit = Instant::now();
                commit(source.as_mut(), &mut producer, &mut committed, &metrics)?;
            }
            Ok(outcome)
        });
        let step = match step {
            Ok(_) if stopping => return Ok(()),
            Ok(Poll::Progress) => {
                failures = 0;
                metrics.idle_streak.store(0, Ordering::Relaxed);
                continue;
            }
            Ok(outcome) => {
                if outcome == Poll::Waiting {
                    metrics.idle_streak.store(0, Ordering::Relaxed);
                } else if producer.pending_records() == 0 {
                    SourceMetrics::add(&metrics.idle_streak, 1);
                }
                // Whichever comes first: the source's own next poll, its waker, the linger
                // deadline of what is pending (else the commit interval), shutdown.
                let commit_at = if producer.pending_bytes() > 0 {
                    last_commit + linger
                } else {
                    last_commit + flush_interval
                };
                let until = source.next_poll().map_or(commit_at, |at| at.min(commit_at));
                if wait_until(&wake, until) && !shared.stop.load(Ordering::SeqCst) {
                    SourceMetrics::add(&metrics.wakes, 1);
                }
                // Commit before the next poll when due: a source that can read on only
                // after a commit (the CDC source's slot) then reads at once.
                let now = Instant::now();
                let due = now >= commit_at || now >= last_commit + linger;
                if due && !shared.stop.load(Ordering::SeqCst) {
                    last_commit = now;
                    commit(source.as_mut(), &mut producer, &mut committed, &metrics)
                } else {
                    Ok(())
                }
            }
            Err(e) => Err(e),
        };
        match step {
            Ok(()) => {}
            Err(e) => {
                // Start over from what is committed: the open transaction is aborted, the
                // source rebuilt, the producer fenced and re-created with a new epoch. The
                // failed source is never polled again, even while a rebuild fails (say, the
                // server is still down): it holds what it read past the last commit, and a
                // later commit of the aborted producer's empty transaction would tell it
                // (and a CDC slot) that those records were committed.
                note_error(&metrics, &e);
                producer.abort();
                if stopping {
                    return Err(e);
                }
                // Dropped before the rebuild: what it holds (a CDC source's stream, which
                // keeps the slot active) is released first.
                drop(source);
                backoff(shared, &wake, &mut failures);
                (source, producer) = retry(shared, &wake, &metrics, &mut failures, || {
                    let s = build(&committed)?;
                    let p = TxnProducer::init(
                        Arc::clone(&shared.storage),
                        Arc::clone(&shared.driver),
                        &spec.name,
                        &spec.topic,
                        format!("{}-{}", shared.settings.agent_id, spec.name),
                        shared.settings.producer,
                    )?;
                    Ok((s, p))
                })?;
                last_commit = Instant::now();
            }
        }
    }
}

fn commit(
    source: &mut dyn Source,
    producer: &mut TxnProducer,
    committed: &mut BTreeMap<Vec<u8>, Vec<u8>>,
    metrics: &SourceMetrics,
) -> Result<()> {
    let positions = source.take_positions();
    let records = producer.pending_records();
    let updates = positions.clone();
    if producer.commit(positions)? {
        for (k, v) in updates {
            match v {
                Some(v) => committed.insert(k, v),
                None => committed.remove(&k),
            };
        }
        SourceMetrics::add(&metrics.committed_records, records);
        SourceMetrics::add(&metrics.commits, 1);
        metrics
            .last_commit_ms
            .store(now_ms().max(0) as u64, Ordering::Relaxed);
        source.committed()?;
    }
    Ok(())
}

fn note_error(metrics: &SourceMetrics, e: &IngestError) {
    SourceMetrics::add(&metrics.errors, 1);
    *metrics.last_error.lock() = Some(e.to_string());
}

/// Blocks until `wake` receives or `until` passes; returns whether it was woken. Wakes
/// that came in a burst are all taken: one poll answers them.
fn wait_until(wake: &Receiver<()>, until: Instant) -> bool {
    let timeout = until.saturating_duration_since(Instant::now());
    if wake.recv_timeout(timeout).is_err() {
        return false;
    }
    while wake.try_recv().is_ok() {}
    true
}

/// Calls `attempt` until it succeeds, each failure counted and followed by a backoff; at
/// shutdown, the failure is returned.
fn retry<T>(
    shared: &Shared,
    wake: &Receiver<()>,
    metrics: &SourceMetrics,
    failures: &mut u32,
    mut attempt: impl FnMut() -> Result<T>,
) -> Result<T> {
    loop {
        match attempt() {
            Ok(built) => return Ok(built),
            Err(e) => {
                note_error(metrics, &e);
                if shared.stop.load(Ordering::SeqCst) {
                    return Err(e);
                }
                backoff(shared, wake, failures);
            }
        }
    }
}

fn backoff(shared: &Shared, wake: &Receiver<()>, failures: &mut u32) {
    let factor = 1u32 << (*failures).min(5);
    *failures = failures.saturating_add(1);
    if !shared.stop.load(Ordering::SeqCst) {
        let _ = wake.recv_timeout(shared.settings.retry_backoff * factor);
    }
}
