//! The PostgreSQL source (feature `ingest-postgres`): changes of chosen tables as JSON
//! records keyed by primary key, exactly once.
//!
//! [`PostgresCdcSource`] reads the server's logical decoding (a replication slot with the
//! built-in `pgoutput` plugin and a publication of the tables) over the streaming
//! replication protocol (a `replication=database` connection of its own; the server pushes
//! each transaction as it commits), or with `stream = false` through the SQL interface
//! (`pg_logical_slot_peek_binary_changes`, `pg_replication_slot_advance`). Inserts and
//! updates become records whose value is the new row as a JSON object; deletes become
//! tombstones (null value), so a compacted topic mirrors the table. The slot's LSN is the
//! source's position: committed with the records, and the slot confirmed only after that
//! commit.
//!
//! The server needs `wal_level = logical`; the user needs the `REPLICATION` attribute (or
//! to be a superuser) and to own the tables (to create the publication) — or create the
//! publication beforehand. A source that starts with nothing committed first reads the rows
//! already there (`snapshot_mode = "initial"`, the default; each table needs a primary key or
//! a replica identity index), then the changes after them, exactly once even when it is
//! killed mid-snapshot (see the `snapshot` module). An idle source moves its slot to the
//! flushed WAL position every `heartbeat_interval_ms`, so writes to other tables do not pile
//! up WAL behind it.
//!
//! [`PostgresQuerySource`] polls a table instead (Kafka Connect JDBC's `incrementing` and
//! `timestamp+incrementing` modes) without missing rows whose transactions commit out of
//! order: see its docs for how.
//!
//! The client is the synchronous [`postgres`] crate: each source runs on a thread of its
//! own, so a blocking client is the simplest fit (it drives tokio-postgres on a private
//! current-thread runtime).

mod cdc;
mod error;
pub mod pgoutput;
mod query;
mod snapshot;
mod stream;
mod value;

use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

pub use cdc::PostgresCdcSource;
pub use error::PostgresError;
pub use query::PostgresQuerySource;

use super::error::{IngestError, Result};

/// A `[[source]]` with `type = "postgres"`.
///
/// ```
/// use streamlog::ingest::{AgentConfig, SourceConfig};
///
/// let config = AgentConfig::from_toml(r#"
///     data_dir = "/var/lib/streamlog"
///
///     [[source]]
///     type = "postgres"
///     name = "shop"
///     topic = "shop-orders"
///     conninfo = "host=127.0.0.1 port=5432 user=streamlog dbname=shop"
///     tables = ["public.orders"]
/// "#)?;
/// let SourceConfig::Postgres(pg) = &config.sources[0] else { unreachable!() };
/// assert_eq!(pg.slot_name(), "streamlog_shop");
/// # Ok::<(), streamlog::ingest::IngestError>(())
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PostgresSourceConfig {
    /// The source's name (unique in the agent).
    pub name: String,
    /// The topic the changes go to.
    pub topic: String,
    /// Partitions of the topic when the agent creates it.
    #[serde(default = "one")]
    pub partitions: u32,
    /// libpq-style connection string (`host=… port=… user=… dbname=… password=…`) or URL.
    pub conninfo: String,
    /// The tables, `schema.table` or `table` (schema `public`). With more than one, a
    /// record's key is `{"table": "schema.table", "key": {…}}` instead of the bare key.
    pub tables: Vec<String>,
    /// `cdc` (logical decoding, the default), or a query mode for tables without it:
    /// `incrementing` (new rows by a sequence-fed id column) or `timestamp+incrementing`
    /// (new and updated rows by a timestamp column, then the id); see
    /// [`PostgresQuerySource`].
    #[serde(default = "mode")]
    pub mode: String,
    /// The id column of the query modes (an integer fed by a sequence).
    #[serde(default = "incrementing_column")]
    pub incrementing_column: String,
    /// The timestamp column of `timestamp+incrementing` (written by the server's clock).
    #[serde(default)]
    pub timestamp_column: Option<String>,
    /// The replication slot (default `streamlog_<name>`); created if missing.
    #[serde(default)]
    pub slot: Option<String>,
    /// The publication (default `streamlog_<name>`); created for `tables` if missing.
    #[serde(default)]
    pub publication: Option<String>,
    /// Changes read at most per peek (whole transactions are always read).
    #[serde(default = "max_changes_per_poll")]
    pub max_changes_per_poll: u32,
    /// Warn (on stderr, at most once a minute) when the slot holds more WAL than this.
    #[serde(default = "lag_warn_bytes")]
    pub lag_warn_bytes: u64,
    /// Seconds a connection attempt may take.
    #[serde(default = "connect_timeout_s")]
    pub connect_timeout_s: u64,
    /// CDC: `initial` (the default, Debezium's `snapshot.mode`): a source that starts with
    /// nothing committed first reads the rows already in the tables (records with op
    /// `read`), then the changes after them, each exactly once; `never`: only changes made
    /// after the slot is created.
    #[serde(default = "snapshot_mode")]
    pub snapshot_mode: String,
    /// CDC: rows read per snapshot query (each chunk is committed with the snapshot's
    /// progress).
    #[serde(default = "snapshot_chunk_rows")]
    pub snapshot_chunk_rows: u32,
    /// CDC: how often (milliseconds) an idle source moves its slot to the server's flushed
    /// WAL position when nothing of its tables changed (Debezium's `heartbeat.interval.ms`),
    /// so WAL written for other tables or databases is not held for it; 0 turns it off.
    #[serde(default = "heartbeat_interval_ms")]
    pub heartbeat_interval_ms: u64,
    /// CDC: read the slot over the streaming replication protocol (the default): the server
    /// pushes each transaction as it commits, and the source wakes on it. `false`: peek
    /// with `pg_logical_slot_peek_binary_changes` every `poll_interval_ms` (each peek
    /// decodes the WAL from the slot's restart position again; for servers that refuse
    /// replication connections).
    #[serde(default = "yes")]
    pub stream: bool,
    /// How often (milliseconds) the source looks for new input when nothing wakes it
    /// (Debezium's and Kafka Connect JDBC's `poll.interval.ms`). CDC (default 50): a look
    /// is one `pg_current_wal_flush_lsn()`, and the slot is peeked only when the flushed
    /// WAL moved since a peek that found nothing, so a quiet database costs one trivial
    /// query per interval. Query modes (default 1000; Kafka Connect JDBC's is 5000): a
    /// look is the table query.
    #[serde(default)]
    pub poll_interval_ms: Option<u64>,
    /// For tests only: plants a known bug so a test can show it catches it.
    #[doc(hidden)]
    #[serde(default)]
    pub test_planted_bug: Option<String>,
}

fn yes() -> bool {
    true
}
fn mode() -> String {
    "cdc".into()
}
fn incrementing_column() -> String {
    "id".into()
}
fn one() -> u32 {
    1
}
fn max_changes_per_poll() -> u32 {
    20_000
}
fn lag_warn_bytes() -> u64 {
    256 * 1024 * 1024
}
fn connect_timeout_s() -> u64 {
    10
}
fn snapshot_mode() -> String {
    "initial".into()
}
fn snapshot_chunk_rows() -> u32 {
    10_000
}
fn heartbeat_interval_ms() -> u64 {
    10_000
}

impl PostgresSourceConfig {
    /// A config with the defaults.
    pub fn new(name: &str, topic: &str, conninfo: &str, tables: &[&str]) -> Self {
        PostgresSourceConfig {
            name: name.to_string(),
            topic: topic.to_string(),
            partitions: one(),
            conninfo: conninfo.to_string(),
            tables: tables.iter().map(|t| t.to_string()).collect(),
            mode: mode(),
            incrementing_column: incrementing_column(),
            timestamp_column: None,
            slot: None,
            publication: None,
            max_changes_per_poll: max_changes_per_poll(),
            lag_warn_bytes: lag_warn_bytes(),
            connect_timeout_s: connect_timeout_s(),
            snapshot_mode: snapshot_mode(),
            snapshot_chunk_rows: snapshot_chunk_rows(),
            heartbeat_interval_ms: heartbeat_interval_ms(),
            poll_interval_ms: None,
            stream: true,
            test_planted_bug: None,
        }
    }

    /// The replication slot's name.
    pub fn slot_name(&self) -> String {
        self.slot
            .clone()
            .unwrap_or_else(|| default_name(&self.name))
    }

    /// The publication's name.
    pub fn publication_name(&self) -> String {
        self.publication
            .clone()
            .unwrap_or_else(|| default_name(&self.name))
    }

    /// The poll interval: `poll_interval_ms`, else the mode's default (50 ms for CDC,
    /// 1 s for the query modes).
    pub fn poll_interval(&self) -> Duration {
        let default = if self.mode == "cdc" { 50 } else { 1000 };
        Duration::from_millis(self.poll_interval_ms.unwrap_or(default))
    }

    pub(crate) fn quoted_tables(&self) -> Vec<String> {
        self.tables
            .iter()
            .map(|t| match t.split_once('.') {
                Some((schema, table)) => format!("{}.{}", quote_ident(schema), quote_ident(table)),
                None => format!("public.{}", quote_ident(t)),
            })
            .collect()
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(IngestError::Config(format!("source {}: {m}", self.name)));
        if self.tables.is_empty() {
            return bad("no tables".into());
        }
        let slot = self.slot_name();
        if slot.is_empty()
            || slot.len() > 63
            || !slot
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return bad(format!(
                "slot name {slot:?}: lower-case letters, digits and _ only, at most 63"
            ));
        }
        match self.mode.as_str() {
            "cdc" => {}
            "incrementing" | "timestamp+incrementing" if self.tables.len() == 1 => {}
            "incrementing" | "timestamp+incrementing" => {
                return bad("the query modes read one table".into())
            }
            other => {
                return bad(format!(
                    "mode {other:?}: expected cdc, incrementing or timestamp+incrementing"
                ))
            }
        }
        if self.max_changes_per_poll == 0 {
            return bad("max_changes_per_poll is 0".into());
        }
        if !matches!(self.snapshot_mode.as_str(), "initial" | "never") {
            return bad(format!(
                "snapshot_mode {:?}: expected initial or never",
                self.snapshot_mode
            ));
        }
        if self.poll_interval_ms == Some(0) {
            return bad("poll_interval_ms is 0 (a busy loop); at least 1".into());
        }
        if self.snapshot_chunk_rows == 0 {
            return bad("snapshot_chunk_rows is 0".into());
        }
        postgres::Config::from_str(&self.conninfo)
            .map(|_| ())
            .or_else(|e| bad(format!("conninfo: {e}")))
    }
}

fn default_name(source: &str) -> String {
    let mut s: String = format!("streamlog_{source}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    s.truncate(63);
    s
}

/// `ident` quoted for SQL (`"a""b"`).
pub(crate) fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Connects with `config`'s conninfo, bounding the connection attempt and every statement.
pub(crate) fn connect(
    config: &PostgresSourceConfig,
) -> std::result::Result<postgres::Client, PostgresError> {
    let c = PostgresError::client;
    let mut pg = postgres::Config::from_str(&config.conninfo).map_err(c("parse conninfo"))?;
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(Duration::from_secs(config.connect_timeout_s.max(1)));
    }
    pg.application_name(&format!("streamlog-ingest {}", config.name));
    let mut client = pg.connect(postgres::NoTls).map_err(c("connect"))?;
    client
        .batch_execute(
            "SET statement_timeout = '120s'; SET TimeZone = 'UTC'; \
             SET standard_conforming_strings = on",
        )
        .map_err(c("set statement_timeout"))?;
    Ok(client)
}

impl super::Agent {
    /// Adds a PostgreSQL source (its topic created with `config.partitions` partitions if
    /// missing). It connects when it starts; a server that is down is retried.
    pub fn add_postgres_source(&mut self, config: PostgresSourceConfig) -> Result<()> {
        config.validate()?;
        let partitions = config.partitions;
        if config.mode == "cdc" {
            return self.add_source(
                partitions,
                Box::new(move |metrics| {
                    Ok(Box::new(PostgresCdcSource::new(config.clone(), metrics)?))
                }),
            );
        }
        PostgresQuerySource::new(config.clone(), std::sync::Arc::default())?;
        self.add_source(
            partitions,
            Box::new(move |metrics| {
                Ok(Box::new(PostgresQuerySource::new(config.clone(), metrics)?))
            }),
        )
    }
}
