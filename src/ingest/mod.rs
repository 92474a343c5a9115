//! Log collection into streamlog, exactly once (feature `ingest`): sources (files; later
//! PostgreSQL) whose records and positions are committed in one transaction, as Kafka
//! Connect's exactly-once sources do (KIP-618).
//!
//! - A [`Source`] reads records and hands them to its producer; it can say at any moment
//!   where it stands (its positions).
//! - Each source has its own transactional producer (`transactional.id` =
//!   `<agent_id>-<source>`): records are partitioned with Kafka's partitioner on their key,
//!   batched per partition by size (`batch_size`), compressed with the chosen codec and
//!   appended to the source's topic; every `linger` the source's positions are appended to
//!   the compacted `__ingest_positions` topic in the same transaction, the logs are flushed,
//!   and the transaction commits through the local transaction coordinator
//!   ([`LocalTxnDriver`](crate::txn::LocalTxnDriver)).
//! - On start, every source's producer is initialised first (fencing a previous instance
//!   and aborting what a crash left open), then the committed positions are read
//!   (read_committed), and each source resumes from them: a record is in the topic exactly
//!   once, whether the agent stopped cleanly or was killed.
//! - Reading and appending run on the source's own thread, so a slow log slows its source
//!   (back-pressure) and nothing queues without bound; a failure aborts the transaction and
//!   rebuilds the source from its committed positions.
//!
//! The file source ([`FileSource`]) follows files through rename, create, copytruncate and
//! gzip rotations; [`postgres`] (feature `ingest-postgres`) captures a PostgreSQL
//! database's changes; `streamlog ingest --config agent.toml` runs an agent from an
//! [`AgentConfig`].

mod agent;
mod config;
mod error;
pub mod file;
mod metrics;
mod positions;
#[cfg(feature = "ingest-postgres")]
pub mod postgres;
mod producer;
mod source;

pub use agent::{Agent, AgentSettings, RunningAgent, SourceFactory};
pub use config::{AgentConfig, SourceConfig};
pub use error::{IngestError, Result};
pub use file::{FileSource, FileSourceConfig, KeyMode};
pub use metrics::SourceMetrics;
pub use positions::{load_committed, CommittedPositions, POSITIONS_TOPIC};
pub use producer::ProducerSettings;
pub use source::{Poll, PositionUpdate, RecordSink, Source};

impl Agent {
    /// Adds a [`FileSource`] (its topic created with `config.partitions` partitions if
    /// missing).
    pub fn add_file_source(&mut self, config: FileSourceConfig) -> Result<()> {
        FileSource::new(config.clone(), std::sync::Arc::default())?;
        let partitions = config.partitions;
        self.add_source(
            partitions,
            Box::new(move |metrics| Ok(Box::new(FileSource::new(config.clone(), metrics)?))),
        )
    }

    /// Adds every source of `config`.
    pub fn add_sources(&mut self, config: &AgentConfig) -> Result<()> {
        for source in &config.sources {
            match source {
                SourceConfig::File(f) => self.add_file_source(f.clone())?,
                #[cfg(feature = "ingest-postgres")]
                SourceConfig::Postgres(p) => self.add_postgres_source(p.clone())?,
            }
        }
        Ok(())
    }
}
