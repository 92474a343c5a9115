//! Files the storage keeps beside the partition directories: one metadata file a topic, and
//! the partition summaries a clean close leaves for the next open.
//!
//! ```text
//! topic-configs/<topic>                written ~<topic> -> fsync -> rename -> fsync dir
//!     partitions=<count>                the topic's partition count
//!     deleting=true                     only while a deletion is under way
//!     <kafka key>=<value>               one line per config override
//! partition-summaries                   written at close, removed at open
//!     <topic> <partition> <summary fields, see maintenance.rs>
//! ```

use std::path::{Path, PathBuf};

use super::config::{parse_properties, TopicConfig};
use super::maintenance::Summary;
use super::names::{TMP_PREFIX, TOPIC_CONFIG_DIR};
use crate::error::{Error, Result};
use crate::io::{read_file, write_file_atomic, write_file_atomic_via, FileSystem};

/// Name of the summaries file in the data directory.
pub(crate) const SUMMARIES_FILE: &str = "partition-summaries";

const PARTITIONS_KEY: &str = "partitions";
const DELETING_KEY: &str = "deleting";

/// A topic's persisted metadata.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TopicMeta {
    pub partitions: u32,
    pub deleting: bool,
    pub config: TopicConfig,
}

pub(crate) fn meta_path(data_dir: &Path, topic: &str) -> PathBuf {
    data_dir.join(TOPIC_CONFIG_DIR).join(topic)
}

/// The temporary file a topic's metadata is written through: `~<topic>`, a name no topic
/// has (`~` is not allowed in topic names) and at most 250 characters.
fn meta_tmp_path(data_dir: &Path, topic: &str) -> PathBuf {
    data_dir
        .join(TOPIC_CONFIG_DIR)
        .join(format!("{TMP_PREFIX}{topic}"))
}

/// Writes a topic's metadata atomically and durably.
pub(crate) fn write_meta(
    fs: &dyn FileSystem,
    data_dir: &Path,
    topic: &str,
    meta: &TopicMeta,
) -> Result<()> {
    let mut text = format!(
        "# streamlog topic metadata\n{PARTITIONS_KEY}={}\n",
        meta.partitions
    );
    if meta.deleting {
        text.push_str(DELETING_KEY);
        text.push_str("=true\n");
    }
    text.push_str(&meta.config.to_properties());
    write_file_atomic_via(
        fs,
        &meta_path(data_dir, topic),
        &meta_tmp_path(data_dir, topic),
        text.as_bytes(),
    )
}

/// Reads a topic's metadata file.
pub(crate) fn read_meta(fs: &dyn FileSystem, path: &Path) -> Result<TopicMeta> {
    let bytes = read_file(fs, path)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| Error::CorruptCheckpoint {
        path: path.to_path_buf(),
    })?;
    let mut map = parse_properties(text)?;
    let partitions = map
        .remove(PARTITIONS_KEY)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::CorruptCheckpoint {
            path: path.to_path_buf(),
        })?;
    let deleting = map.remove(DELETING_KEY).is_some_and(|v| v == "true");
    Ok(TopicMeta {
        partitions,
        deleting,
        config: TopicConfig::from_map(&map)?,
    })
}

/// Removes a directory and everything in it.
pub(crate) fn remove_tree(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    for path in fs.list(dir).map_err(|e| Error::io(dir, e))? {
        match fs.remove(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // A directory (unlink says EISDIR on Linux, EPERM elsewhere): empty it first.
            Err(e) => {
                if fs.list(&path).is_ok() {
                    remove_tree(fs, &path)?;
                } else {
                    return Err(Error::io(&path, e));
                }
            }
        }
    }
    match fs.remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(dir, e)),
    }
}

/// Writes the summaries of closed partitions.
pub(crate) fn write_summaries(
    fs: &dyn FileSystem,
    data_dir: &Path,
    summaries: &[(&str, u32, Summary)],
) -> Result<()> {
    let mut text = String::with_capacity(summaries.len() * 80);
    for (topic, partition, s) in summaries {
        text.push_str(topic);
        text.push(' ');
        text.push_str(&partition.to_string());
        text.push(' ');
        text.push_str(&s.to_line());
        text.push('\n');
    }
    write_file_atomic(fs, &data_dir.join(SUMMARIES_FILE), text.as_bytes())
}

/// Reads the summaries a clean close left, and removes the file: from now on only the
/// storage's own closes vouch for a partition's summary. A missing or unreadable file
/// gives no summaries (maintenance then opens each partition once).
pub(crate) fn take_summaries(
    fs: &dyn FileSystem,
    data_dir: &Path,
) -> Result<Vec<(String, u32, Summary)>> {
    let path = data_dir.join(SUMMARIES_FILE);
    if !fs.exists(&path) {
        return Ok(Vec::new());
    }
    let parsed = read_file(fs, &path).map(|bytes| {
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|line| {
                let mut parts = line.splitn(3, ' ');
                let topic = parts.next()?.to_string();
                let partition = parts.next()?.parse().ok()?;
                let summary = Summary::from_line(parts.next()?)?;
                Some((topic, partition, summary))
            })
            .collect()
    });
    fs.remove(&path).map_err(|e| Error::io(&path, e))?;
    fs.sync_dir(data_dir).map_err(|e| Error::io(data_dir, e))?;
    Ok(parsed.unwrap_or_default())
}
