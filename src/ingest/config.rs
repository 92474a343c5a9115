//! `agent.toml`: the agent's data directory, commit settings and sources. Unknown keys are
//! refused with their name, so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::agent::AgentSettings;
use super::error::{IngestError, Result};
use super::file::FileSourceConfig;
use super::producer::ProducerSettings;
use crate::record::Compression;

/// The whole `agent.toml`.
///
/// ```
/// use streamlog::ingest::AgentConfig;
///
/// let config = AgentConfig::from_toml(r#"
///     data_dir = "/var/lib/streamlog"
///     linger_ms = 100
///     compression = "lz4"
///
///     [[source]]
///     type = "file"
///     name = "nginx"
///     topic = "nginx-access"
///     paths = ["/var/log/nginx/access.log*"]
///     key = "path"
/// "#)?;
/// assert_eq!(config.sources.len(), 1);
/// assert!(AgentConfig::from_toml("data_dir = \"x\"\nlingr_ms = 5").is_err());
/// # Ok::<(), streamlog::ingest::IngestError>(())
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AgentConfig {
    /// The storage's data directory.
    pub data_dir: PathBuf,
    /// The prefix of the sources' transactional ids.
    #[serde(default = "agent_id")]
    pub agent_id: String,
    /// Milliseconds a record waits at most before its transaction commits.
    #[serde(default = "linger_ms")]
    pub linger_ms: u64,
    /// Milliseconds between commits of a quiet source's positions that moved without
    /// records (Kafka Connect's `offset.flush.interval.ms`, and its default 60,000); records
    /// are committed within `linger_ms`.
    #[serde(default = "offset_flush_interval_ms")]
    pub offset_flush_interval_ms: u64,
    /// The codec of the batches: `none`, `gzip`, `lz4`, `zstd`, `snappy`.
    #[serde(default = "compression")]
    pub compression: String,
    /// Bytes of records per batch (Kafka's `batch.size`).
    #[serde(default = "batch_size")]
    pub batch_size: usize,
    /// A transaction commits once this many bytes are pending in it.
    #[serde(default = "max_transaction_bytes")]
    pub max_transaction_bytes: usize,
    /// Seconds between status lines on stderr (0: none).
    #[serde(default = "status_interval_s")]
    pub status_interval_s: u64,
    /// Seconds between maintenance passes of `streamlog ingest` (retention, and compaction
    /// of `__ingest_positions`, which keeps only each position's latest value); 0: none.
    #[serde(default = "maintenance_interval_s")]
    pub maintenance_interval_s: u64,
    /// The sources.
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceConfig>,
}

/// One `[[source]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
#[non_exhaustive]
pub enum SourceConfig {
    /// `type = "file"`.
    File(FileSourceConfig),
    /// `type = "postgres"` (feature `ingest-postgres`).
    #[cfg(feature = "ingest-postgres")]
    Postgres(super::postgres::PostgresSourceConfig),
}

impl AgentConfig {
    /// Parses `agent.toml`'s text.
    pub fn from_toml(text: &str) -> Result<Self> {
        let config: AgentConfig =
            toml::from_str(text).map_err(|e| IngestError::Config(feature_hint(e.to_string())))?;
        config.settings()?;
        Ok(config)
    }

    /// Reads and parses an `agent.toml`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| IngestError::Io {
            op: "read",
            path: path.to_path_buf(),
            source: e,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            IngestError::Config(m) => IngestError::Config(format!("{}: {m}", path.display())),
            e => e,
        })
    }

    /// The agent settings it gives.
    pub fn settings(&self) -> Result<AgentSettings> {
        let compression = match self.compression.as_str() {
            "none" | "uncompressed" => Compression::None,
            "gzip" => Compression::Gzip,
            "lz4" => Compression::Lz4,
            "zstd" => Compression::Zstd,
            "snappy" => Compression::Snappy,
            other => {
                return Err(IngestError::Config(format!(
                    "compression {other:?}: expected none, gzip, lz4, zstd or snappy"
                )))
            }
        };
        if self.batch_size == 0 {
            return Err(IngestError::Config("batch_size is 0".into()));
        }
        if self.offset_flush_interval_ms == 0 {
            return Err(IngestError::Config(
                "offset_flush_interval_ms is 0 (a busy loop); at least 1".into(),
            ));
        }
        Ok(AgentSettings {
            agent_id: self.agent_id.clone(),
            linger: Duration::from_millis(self.linger_ms),
            offset_flush_interval: Duration::from_millis(self.offset_flush_interval_ms),
            producer: ProducerSettings {
                compression,
                batch_size: self.batch_size,
                max_transaction_bytes: self.max_transaction_bytes.max(1),
                ..ProducerSettings::default()
            },
            ..AgentSettings::default()
        })
    }
}

/// A `type = "postgres"` source read by a build without the PostgreSQL source (the `cli`
/// feature leaves it out: its client brings tokio and some forty crates, and the quick
/// start's first build stays light): the message says which feature is missing.
fn feature_hint(message: String) -> String {
    if cfg!(not(feature = "ingest-postgres")) && message.contains("unknown variant `postgres`") {
        format!(
            "{message}\n`type = \"postgres\"` needs streamlog built with the `ingest-postgres` \
             feature (`cargo install --path . --features cli,ingest-postgres`)"
        )
    } else {
        message
    }
}

fn agent_id() -> String {
    AgentSettings::default().agent_id
}
fn linger_ms() -> u64 {
    100
}
fn offset_flush_interval_ms() -> u64 {
    60_000
}
fn compression() -> String {
    "lz4".into()
}
fn batch_size() -> usize {
    ProducerSettings::default().batch_size
}
fn max_transaction_bytes() -> usize {
    ProducerSettings::default().max_transaction_bytes
}
fn maintenance_interval_s() -> u64 {
    30
}
fn status_interval_s() -> u64 {
    10
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Built without `ingest-postgres` (e.g. `--features cli`), a PostgreSQL source is
    /// refused with the feature to build with.
    #[test]
    #[cfg(not(feature = "ingest-postgres"))]
    fn postgres_source_without_the_feature_names_it() {
        let text = "data_dir = \"d\"\n[[source]]\ntype = \"postgres\"\nname = \"x\"\n";
        let e = AgentConfig::from_toml(text).unwrap_err().to_string();
        assert!(e.contains("--features cli,ingest-postgres"), "{e}");
    }

    #[test]
    fn zero_intervals_are_refused() {
        for text in [
            "data_dir = \"d\"\noffset_flush_interval_ms = 0\n",
            "data_dir = \"d\"\n[[source]]\ntype = \"file\"\nname = \"f\"\ntopic = \"t\"\npaths = [\"/x/*\"]\nrefresh_interval_ms = 0\n",
        ] {
            let config = AgentConfig::from_toml(text);
            let checked = config.and_then(|c| match &c.sources[..] {
                [SourceConfig::File(f)] => {
                    super::super::FileSource::new(f.clone(), Default::default()).map(|_| ())
                }
                _ => Ok(()),
            });
            let e = checked.unwrap_err().to_string();
            assert!(e.contains("interval_ms"), "{e}");
        }
        let ok = AgentConfig::from_toml("data_dir = \"d\"\n").unwrap();
        assert_eq!(ok.offset_flush_interval_ms, 60_000);
    }

    #[test]
    fn unknown_source_type_is_refused() {
        let text = "data_dir = \"d\"\n[[source]]\ntype = \"kafka\"\nname = \"x\"\n";
        let e = AgentConfig::from_toml(text).unwrap_err().to_string();
        assert!(e.contains("kafka"), "{e}");
        assert!(!e.contains("ingest-postgres"), "{e}");
    }
}
