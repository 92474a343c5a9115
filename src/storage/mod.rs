//! A data directory of topics and partitions, in Kafka's layout.
//!
//! ```text
//! <data>/<topic>-<partition>/                 one partition log (see crate::log)
//! <data>/<topic>-<partition>.<uuid>-delete/   a partition being deleted (removed on open)
//! <data>/topic-configs/<topic>                partition count and config overrides
//! <data>/partition-summaries                  left by a clean close, removed on open
//! ```
//!
//! Partitions open lazily, on first use, and the open ones are kept within a budget of file
//! handles and memory maps ([`StorageConfig::max_open_files`], `max_open_maps`): opening one
//! more closes the least recently used logs first. A close is a clean close (the
//! clean-shutdown marker is written), so reopening loads the indexes without a scan. A log
//! whose `Arc` a caller still holds is never closed by the budget: it stays usable, and is
//! closed once released and least recently used.
//!
//! The budget is enforced whenever a log is opened: the charges of open logs are recounted
//! first (a caller holding a log may have rolled segments since), so between two opens the
//! logs callers hold can exceed it by what they rolled.
//!
//! One mutex guards the table of topics and the budget, and is held while a log opens or
//! closes; a partition's reads and appends go through its own [`Log`] and never take it, and
//! maintenance takes it only to choose its work and to open and close logs.
//!
//! A clean [`close`](Storage::close) leaves each partition's summary (offsets, size, the
//! oldest segment's size and largest timestamp) in `partition-summaries`, which the next
//! open reads and removes; [`maintain`](Storage::maintain) judges closed partitions from
//! these, so the data directory must not be changed by anything else in between (as with
//! Kafka, one process owns a data directory).
//!
//! ```
//! use streamlog::storage::{Storage, StorageConfig, TopicConfig};
//! use streamlog::{Compression, OwnedRecord};
//!
//! let dir = tempfile::tempdir()?;
//! let storage = Storage::open(dir.path(), StorageConfig::default())?;
//! let mut config = TopicConfig::new();
//! config.set("retention.ms", "86400000")?;
//! storage.create_topic("orders", 3, config)?;
//!
//! let log = storage.partition("orders", 1)?;
//! log.append_records(&[OwnedRecord::new(1_700_000_000_000, Some(b"k"), Some(b"v"))], Compression::None)?;
//! drop(log);
//! storage.close()?;
//!
//! let storage = Storage::open(dir.path(), StorageConfig::default())?;
//! assert_eq!(storage.topics(), ["orders"]);
//! assert_eq!(storage.topic_config("orders")?.retention_ms, Some(86_400_000));
//! assert_eq!(storage.partition("orders", 1)?.log_end_offset(), 1);
//! assert!(storage.partition("orders", 3).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod handles;
mod high_watermark;
mod maintenance;
mod metadata;
mod names;
mod partitions;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, MutexGuard};

pub use config::{
    CompressionType, StorageConfig, StorageConfigBuilder, TopicConfig, TopicSettings,
    CLEANUP_POLICY, COMPRESSION_TYPE, DELETE_RETENTION_MS, FLUSH_MESSAGES, FLUSH_MS,
    INDEX_INTERVAL_BYTES, MAX_COMPACTION_LAG_MS, MAX_MESSAGE_BYTES, MESSAGE_TIMESTAMP_AFTER_MAX_MS,
    MESSAGE_TIMESTAMP_BEFORE_MAX_MS, MESSAGE_TIMESTAMP_TYPE, MIN_CLEANABLE_DIRTY_RATIO,
    MIN_COMPACTION_LAG_MS, RETENTION_BYTES, RETENTION_MS, SEGMENT_BYTES, SEGMENT_INDEX_BYTES,
    SEGMENT_MS, TOPIC_CONFIGS_WITHOUT_EFFECT, TOPIC_CONFIG_KEYS,
};
pub use maintenance::{MaintenanceHandle, MaintenanceReport};
pub use names::{topic_names_collide, validate_topic_name, MAX_TOPIC_NAME_LEN};

use crate::error::{Error, Result};
use crate::io::FileSystem;
use crate::log::Log;
use handles::{Budget, Cost};
use maintenance::Summary;
use metadata::TopicMeta;
use names::{
    delete_dir_name, parse_partition_dir_name, partition_dir_name, unique_id, DELETE_SUFFIX,
    TMP_PREFIX, TOPIC_CONFIG_DIR,
};

/// Most partitions one topic may have.
pub const MAX_PARTITIONS: u32 = 1 << 20;

/// Many topics and partitions in one data directory. `Send + Sync`: share it in an `Arc`.
#[derive(Debug)]
pub struct Storage {
    dir: PathBuf,
    config: StorageConfig,
    /// The table of topics and partitions and the budget. Never held while a log opens,
    /// recovers or closes: a partition being opened or closed is marked `busy` instead.
    inner: Mutex<Inner>,
    /// The data directory's exclusive lock, held from open to `close`.
    dir_lock: Mutex<Option<Box<dyn crate::io::FileLock>>>,
    /// What the data directory's `replication-offset-checkpoint` holds (`None`: no file);
    /// its lock serialises writes of the file and is taken before the table lock.
    high_watermarks_written: Mutex<Option<Vec<high_watermark::Entry>>>,
    /// Notified whenever a partition stops being busy.
    settled: Condvar,
}

#[derive(Debug)]
struct Inner {
    topics: BTreeMap<String, Topic>,
    budget: Budget,
    closed: bool,
}

#[derive(Debug)]
struct Topic {
    config: TopicConfig,
    settings: TopicSettings,
    partitions: Vec<Partition>,
}

#[derive(Debug, Default)]
struct Partition {
    log: Option<Arc<Log>>,
    /// Place in the LRU order while open.
    tick: u64,
    /// What the open log is charged.
    cost: Cost,
    /// Taken at the last close; `None` while open or never opened.
    summary: Option<Summary>,
    /// The high watermark as of the last close, or from the data directory's checkpoint
    /// (`Replicated` partitions only); an open log holds the current one.
    high_watermark: Option<i64>,
    /// Its log is being opened or closed outside the table lock: whoever else wants the
    /// partition waits for `Storage::settled` (the per-partition guard, so a partition is
    /// opened once and never while its previous log is still closing).
    busy: bool,
    /// Its open log predates the topic's current settings (altered while a caller held
    /// it): the next open that finds no other holder closes and reopens it.
    stale: bool,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

fn file_name(path: &Path) -> Option<&str> {
    path.file_name().and_then(|n| n.to_str())
}

impl Storage {
    /// Opens (creating if needed) the data directory `dir`: reads the topics' metadata,
    /// finishes deletions a crash interrupted, and adopts partition directories that have no
    /// metadata (a Kafka data directory) as topics with default configs. No log is opened.
    pub fn open(dir: impl AsRef<Path>, config: StorageConfig) -> Result<Storage> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        let fs = Arc::clone(&config.fs);
        let meta_dir = dir.join(TOPIC_CONFIG_DIR);
        fs.create_dir_all(&meta_dir).map_err(io_err(&meta_dir))?;
        // One `Storage` per data directory, across processes.
        let dir_lock = crate::io::lock_dir(&*fs, &dir)?;
        fs.sync_dir(&dir).map_err(io_err(&dir))?;

        let mut metas: BTreeMap<String, TopicMeta> = BTreeMap::new();
        for path in fs.list(&meta_dir).map_err(io_err(&meta_dir))? {
            let Some(name) = file_name(&path) else {
                continue;
            };
            if name.starts_with(TMP_PREFIX) {
                // An interrupted write: the file it was replacing is intact.
                fs.remove(&path).map_err(io_err(&path))?;
            } else if validate_topic_name(name).is_ok() {
                metas.insert(name.to_string(), metadata::read_meta(&*fs, &path)?);
            }
        }

        let mut doomed = Vec::new();
        let mut found: BTreeMap<String, u32> = BTreeMap::new();
        for path in fs.list(&dir).map_err(io_err(&dir))? {
            let Some(name) = file_name(&path) else {
                continue;
            };
            if name.ends_with(DELETE_SUFFIX) {
                doomed.push(path);
            } else if let Some((topic, p)) = parse_partition_dir_name(name) {
                let n = found.entry(topic.to_string()).or_default();
                *n = (*n).max(p.saturating_add(1));
            }
        }

        let deleting: Vec<(String, u32)> = metas
            .iter()
            .filter(|(_, m)| m.deleting)
            .map(|(t, m)| (t.clone(), m.partitions))
            .collect();
        for (topic, partitions) in deleting {
            let partitions = partitions.max(found.remove(&topic).unwrap_or(0));
            metas.remove(&topic);
            doomed.extend(move_partitions_aside(&*fs, &dir, &topic, partitions)?);
        }
        for (topic, partitions) in found {
            let meta = metas.entry(topic.clone()).or_insert_with(|| TopicMeta {
                partitions: 0,
                deleting: false,
                config: TopicConfig::new(),
            });
            if partitions > meta.partitions {
                meta.partitions = partitions.min(MAX_PARTITIONS);
                metadata::write_meta(&*fs, &dir, &topic, meta)?;
            }
        }
        if !doomed.is_empty() {
            for d in &doomed {
                metadata::remove_tree(&*fs, d)?;
            }
            fs.sync_dir(&dir).map_err(io_err(&dir))?;
        }

        let mut topics = BTreeMap::new();
        for (name, meta) in metas {
            let settings = meta.config.resolve(&config.defaults);
            let partitions = (0..meta.partitions).map(|_| Partition::default()).collect();
            topics.insert(
                name,
                Topic {
                    config: meta.config,
                    settings,
                    partitions,
                },
            );
        }
        for (topic, p, summary) in metadata::take_summaries(&*fs, &dir)? {
            if let Some(part) = topics
                .get_mut(&topic)
                .and_then(|t| t.partitions.get_mut(p as usize))
            {
                part.summary = Some(summary);
            }
        }
        let high_watermarks = high_watermark::read(&*fs, &dir)?;
        for (topic, p, hw) in high_watermarks.iter().flatten() {
            if let Some(part) = topics
                .get_mut(topic)
                .and_then(|t| t.partitions.get_mut(*p as usize))
            {
                part.high_watermark = Some(*hw);
            }
        }
        let budget = Budget::new(config.max_open_files, config.max_open_maps);
        Ok(Storage {
            dir,
            config,
            dir_lock: Mutex::new(Some(dir_lock)),
            high_watermarks_written: Mutex::new(high_watermarks),
            inner: Mutex::new(Inner {
                topics,
                budget,
                closed: false,
            }),
            settled: Condvar::new(),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The storage's defaults and budget.
    pub fn config(&self) -> &StorageConfig {
        &self.config
    }

    fn fs(&self) -> &dyn FileSystem {
        &*self.config.fs
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>> {
        let inner = self.inner.lock();
        if inner.closed {
            return Err(Error::StorageClosed {
                dir: self.dir.clone(),
            });
        }
        Ok(inner)
    }

    /// Creates `topic` with `partitions` partitions and the given overrides. The metadata
    /// file is written (durably) before the partition directories, so a crash leaves either
    /// no topic or the whole topic (missing directories are created on first use).
    pub fn create_topic(&self, topic: &str, partitions: u32, config: TopicConfig) -> Result<()> {
        validate_topic_name(topic)?;
        let mut inner = self.lock()?;
        if let Some(existing) = inner
            .topics
            .keys()
            .find(|t| *t == topic || topic_names_collide(t, topic))
        {
            return Err(Error::TopicExists {
                topic: topic.to_string(),
                existing: (existing != topic).then(|| existing.clone()),
            });
        }
        check_count(topic, partitions, 0)?;
        let settings = config.resolve_checked(&self.config.defaults)?;
        let meta = TopicMeta {
            partitions,
            deleting: false,
            config,
        };
        metadata::write_meta(self.fs(), &self.dir, topic, &meta)?;
        inner.topics.insert(
            topic.to_string(),
            Topic {
                config: meta.config,
                settings,
                partitions: (0..partitions).map(|_| Partition::default()).collect(),
            },
        );
        self.create_partition_dirs(topic, 0..partitions)
    }

    fn create_partition_dirs(&self, topic: &str, range: std::ops::Range<u32>) -> Result<()> {
        for p in range {
            let d = self.dir.join(partition_dir_name(topic, p));
            self.fs().create_dir_all(&d).map_err(io_err(&d))?;
        }
        self.fs().sync_dir(&self.dir).map_err(io_err(&self.dir))
    }

    /// Raises `topic`'s partition count to `partitions` (Kafka never lowers it).
    pub fn add_partitions(&self, topic: &str, partitions: u32) -> Result<()> {
        let mut inner = self.lock()?;
        let t = get_topic(&mut inner, topic)?;
        let current = partition_count(t);
        if partitions <= current {
            return Err(Error::InvalidPartitionCount {
                topic: topic.to_string(),
                requested: partitions,
                current,
                max: MAX_PARTITIONS,
            });
        }
        check_count(topic, partitions, current)?;
        let meta = TopicMeta {
            partitions,
            deleting: false,
            config: t.config.clone(),
        };
        metadata::write_meta(self.fs(), &self.dir, topic, &meta)?;
        t.partitions
            .resize_with(partitions as usize, Partition::default);
        self.create_partition_dirs(topic, current..partitions)
    }

    /// Deletes `topic` and all its data. Its open logs are closed (callers holding one get
    /// [`Error::LogClosed`]). Crash safe: the metadata is first marked as deleting, then each
    /// partition directory is renamed to `<topic>-<partition>.<uuid>-delete`, the metadata
    /// removed, and the renamed directories removed; an open after a crash at any step
    /// finishes the deletion.
    pub fn delete_topic(&self, topic: &str) -> Result<()> {
        let mut inner = self.lock()?;
        self.wait_topic_settled(&mut inner, topic)?;
        let t = get_topic(&mut inner, topic)?;
        let meta = TopicMeta {
            partitions: partition_count(t),
            deleting: true,
            config: t.config.clone(),
        };
        // The data is going: a log that fails to close cleanly is dropped all the same.
        let all: Vec<u32> = (0..meta.partitions).collect();
        let _ = self.close_partitions(&mut inner, topic, &all);
        metadata::write_meta(self.fs(), &self.dir, topic, &meta)?;
        inner.topics.remove(topic);
        let doomed = move_partitions_aside(self.fs(), &self.dir, topic, meta.partitions)?;
        for d in &doomed {
            metadata::remove_tree(self.fs(), d)?;
        }
        self.fs().sync_dir(&self.dir).map_err(io_err(&self.dir))
    }

    /// Replaces `topic`'s overrides (persisted before they take effect). Open logs of the
    /// topic that no caller holds are closed, so they reopen under the new settings; a log
    /// a caller holds keeps its settings until the first [`partition`](Storage::partition)
    /// call that finds no other caller holding it, which closes and reopens it. The next
    /// [`maintain`](Storage::maintain) opens each of the topic's partitions once.
    pub fn alter_topic_config(&self, topic: &str, config: TopicConfig) -> Result<()> {
        let mut inner = self.lock()?;
        self.wait_topic_settled(&mut inner, topic)?;
        let t = get_topic(&mut inner, topic)?;
        let settings = config.resolve_checked(&self.config.defaults)?;
        let meta = TopicMeta {
            partitions: partition_count(t),
            deleting: false,
            config,
        };
        metadata::write_meta(self.fs(), &self.dir, topic, &meta)?;
        t.settings = settings;
        t.config = meta.config;
        let unused: Vec<u32> = (0..meta.partitions)
            .filter(|&p| {
                t.partitions
                    .get(p as usize)
                    .and_then(|part| part.log.as_ref())
                    .is_some_and(|l| Arc::strong_count(l) == 1)
            })
            .collect();
        // The held ones are reopened once their callers let go (`open_partition`).
        for part in &mut t.partitions {
            part.stale = part.log.is_some();
        }
        self.close_partitions(&mut inner, topic, &unused)?;
        // Summaries were taken under the old settings (a log that was not compacted has no
        // count of its dirty bytes): each closed partition is looked at once more.
        for part in &mut get_topic(&mut inner, topic)?.partitions {
            part.summary = None;
        }
        Ok(())
    }

    /// The topics, by name.
    pub fn topics(&self) -> Vec<String> {
        self.inner.lock().topics.keys().cloned().collect()
    }

    /// `topic`'s partition count.
    pub fn partition_count(&self, topic: &str) -> Result<u32> {
        Ok(partition_count(get_topic(&mut *self.lock()?, topic)?))
    }

    /// `topic`'s overrides.
    pub fn topic_config(&self, topic: &str) -> Result<TopicConfig> {
        Ok(get_topic(&mut *self.lock()?, topic)?.config.clone())
    }

    /// `topic`'s settings: its overrides resolved over the storage defaults.
    pub fn topic_settings(&self, topic: &str) -> Result<TopicSettings> {
        Ok(get_topic(&mut *self.lock()?, topic)?.settings.clone())
    }
}

fn check_count(topic: &str, requested: u32, current: u32) -> Result<()> {
    if requested == 0 || requested > MAX_PARTITIONS {
        return Err(Error::InvalidPartitionCount {
            topic: topic.to_string(),
            requested,
            current,
            max: MAX_PARTITIONS,
        });
    }
    Ok(())
}

fn partition_count(t: &Topic) -> u32 {
    u32::try_from(t.partitions.len()).unwrap_or(u32::MAX)
}

fn get_topic<'a>(inner: &'a mut Inner, topic: &str) -> Result<&'a mut Topic> {
    get_topic_in(&mut inner.topics, topic)
}

fn get_topic_in<'a>(topics: &'a mut BTreeMap<String, Topic>, topic: &str) -> Result<&'a mut Topic> {
    topics.get_mut(topic).ok_or_else(|| Error::UnknownTopic {
        topic: topic.to_string(),
    })
}

fn get_partition<'a>(t: &'a mut Topic, topic: &str, partition: u32) -> Result<&'a mut Partition> {
    let partitions = partition_count(t);
    t.partitions
        .get_mut(partition as usize)
        .ok_or_else(|| Error::UnknownPartition {
            topic: topic.to_string(),
            partition,
            partitions,
        })
}

/// Renames the partition directories of a topic being deleted aside (Kafka's `-delete`
/// names), then removes its metadata file; returns the renamed directories.
fn move_partitions_aside(
    fs: &dyn FileSystem,
    dir: &Path,
    topic: &str,
    partitions: u32,
) -> Result<Vec<PathBuf>> {
    let mut moved = Vec::new();
    for p in 0..partitions {
        let from = dir.join(partition_dir_name(topic, p));
        if fs.exists(&from) {
            let to = dir.join(delete_dir_name(topic, p, unique_id()));
            fs.rename(&from, &to).map_err(io_err(&from))?;
            moved.push(to);
        }
    }
    fs.sync_dir(dir).map_err(io_err(dir))?;
    let meta = metadata::meta_path(dir, topic);
    match fs.remove(&meta) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&meta, e)),
    }
    let meta_dir = dir.join(TOPIC_CONFIG_DIR);
    fs.sync_dir(&meta_dir).map_err(io_err(&meta_dir))?;
    Ok(moved)
}
