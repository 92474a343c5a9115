//! Change data capture through logical decoding: a replication slot with the built-in
//! `pgoutput` plugin and a publication of the chosen tables, read with the SQL interface.
//!
//! Exactly once, in three steps a round:
//! 1. `pg_logical_slot_peek_binary_changes` returns the committed transactions after the
//!    slot's confirmed position (whole transactions, in commit order), without consuming
//!    them. Each transaction whose end LSN is past the position this source already handed
//!    out becomes records (inserts and updates as JSON rows, deletes as tombstones, keyed by
//!    the primary key); its end LSN becomes the source's position (`lsn`).
//! 2. The agent commits the records and that position in one transaction.
//! 3. Only then ([`Source::committed`]) `pg_replication_slot_advance` moves the slot to it,
//!    so the server can recycle the WAL.
//!
//! A crash between 2 and 3 leaves the slot behind the committed position: on restart the
//! slot is advanced to the committed position first, and transactions at or below it are
//! skipped anyway. A crash before 2 leaves both where they were, and the changes are read
//! again. So a change is in the topic once whether the agent or the database stops.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postgres::Client;
use serde_json::{json, Map, Value};

use super::error::PostgresError;
use super::pgoutput::{decode, format_lsn, parse_lsn, Datum, Message, Relation, PG_EPOCH_MS};
use super::value::{key_json, row_json};
use super::PostgresSourceConfig;
use crate::ingest::error::{IngestError, Result};
use crate::ingest::metrics::SourceMetrics;
use crate::ingest::source::{Poll, PositionUpdate, RecordSink, Source};
use crate::record::Header;

/// The key of the source's position in `__ingest_positions`: the end LSN of the last
/// transaction committed to the topic.
pub(crate) const LSN_KEY: &[u8] = b"lsn";

/// One change, ready for the topic.
struct Change {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    op: &'static str,
    table: String,
}

/// A transaction being gathered from the peeked messages.
struct Open {
    xid: u32,
    changes: Vec<Change>,
}

/// The CDC source (`mode = "cdc"`, the default).
pub struct PostgresCdcSource {
    config: PostgresSourceConfig,
    metrics: Arc<SourceMetrics>,
    client: Option<Client>,
    relations: HashMap<u32, Relation>,
    /// The position in the last committed agent transaction.
    committed_lsn: u64,
    /// The end LSN of the last transaction handed to the sink.
    sent_lsn: u64,
    /// The position last returned by `take_positions`.
    reported_lsn: u64,
    last_lag_warning: Option<Instant>,
}

impl std::fmt::Debug for PostgresCdcSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresCdcSource")
            .field("name", &self.config.name)
            .field("committed_lsn", &format_lsn(self.committed_lsn))
            .field("sent_lsn", &format_lsn(self.sent_lsn))
            .finish_non_exhaustive()
    }
}

impl PostgresCdcSource {
    /// A source for `config`; it connects in [`restore`](Source::restore), so a server
    /// that is down at start is retried by the agent like any later failure.
    pub fn new(config: PostgresSourceConfig, metrics: Arc<SourceMetrics>) -> Result<Self> {
        config.validate()?;
        Ok(PostgresCdcSource {
            config,
            metrics,
            client: None,
            relations: HashMap::new(),
            committed_lsn: 0,
            sent_lsn: 0,
            reported_lsn: 0,
            last_lag_warning: None,
        })
    }

    fn err(&self, error: PostgresError) -> IngestError {
        IngestError::Postgres {
            source_name: self.config.name.clone(),
            error,
        }
    }

    fn client(&mut self) -> Result<&mut Client> {
        if self.client.is_none() {
            let client = super::connect(&self.config).map_err(|e| self.err(e))?;
            self.client = Some(client);
        }
        self.client.as_mut().ok_or_else(|| IngestError::Source {
            source_name: String::new(),
            reason: "no connection".into(),
        })
    }

    /// Creates the publication and the slot if missing; returns the slot's confirmed LSN.
    fn set_up(&mut self) -> std::result::Result<u64, PostgresError> {
        let slot = self.config.slot_name();
        let publication = self.config.publication_name();
        let tables = self.config.quoted_tables();
        let client = match self.client.as_mut() {
            Some(c) => c,
            None => {
                return Err(PostgresError::Protocol(
                    "set_up called without a connection".into(),
                ))
            }
        };
        let c = PostgresError::client;
        let exists = client
            .query_opt(
                "SELECT 1 FROM pg_publication WHERE pubname = $1",
                &[&publication],
            )
            .map_err(c("look up the publication"))?
            .is_some();
        if !exists {
            client
                .batch_execute(&format!(
                    "CREATE PUBLICATION {} FOR TABLE {}",
                    super::quote_ident(&publication),
                    tables.join(", ")
                ))
                .map_err(c("create the publication"))?;
        }
        let row = client
            .query_opt(
                "SELECT plugin, database = current_database(), confirmed_flush_lsn::text \
                 FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .map_err(c("look up the replication slot"))?;
        let confirmed = match row {
            Some(row) => {
                let plugin: Option<String> = row.try_get(0).map_err(c("read the slot"))?;
                let same_db: Option<bool> = row.try_get(1).map_err(c("read the slot"))?;
                if plugin.as_deref() != Some("pgoutput") || same_db != Some(true) {
                    return Err(PostgresError::Slot {
                        slot,
                        reason: format!(
                            "plugin {plugin:?}, in this database: {same_db:?} (expected a pgoutput slot of this database)"
                        ),
                    });
                }
                let lsn: Option<String> = row.try_get(2).map_err(c("read the slot"))?;
                lsn.as_deref().and_then(parse_lsn).unwrap_or(0)
            }
            None => {
                let row = client
                    .query_one(
                        "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')",
                        &[&slot],
                    )
                    .map_err(c("create the replication slot"))?;
                let lsn: String = row.try_get(0).map_err(c("create the replication slot"))?;
                parse_lsn(&lsn).unwrap_or(0)
            }
        };
        Ok(confirmed)
    }

    fn advance_slot(&mut self, lsn: u64) -> std::result::Result<(), PostgresError> {
        let slot = self.config.slot_name();
        let Some(client) = self.client.as_mut() else {
            return Ok(());
        };
        client
            .query_one(
                "SELECT end_lsn::text FROM pg_replication_slot_advance($1, $2::text::pg_lsn)",
                &[&slot, &format_lsn(lsn)],
            )
            .map_err(PostgresError::client("advance the replication slot"))?;
        let row = client
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .map_err(PostgresError::client("read the current WAL LSN"))?;
        let current: String = row
            .try_get(0)
            .map_err(PostgresError::client("read the current WAL LSN"))?;
        let lag = parse_lsn(&current).unwrap_or(0).saturating_sub(lsn);
        self.metrics
            .slot_lag_bytes
            .store(lag, std::sync::atomic::Ordering::Relaxed);
        if lag > self.config.lag_warn_bytes {
            let due = self
                .last_lag_warning
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
            if due {
                eprintln!(
                    "streamlog ingest: warning: source {}: replication slot {} lags {} bytes of WAL behind the server (lag_warn_bytes {})",
                    self.config.name,
                    slot,
                    lag,
                    self.config.lag_warn_bytes
                );
                self.last_lag_warning = Some(Instant::now());
            }
        }
        Ok(())
    }

    /// Peeks at the next transactions and sends those past `sent_lsn`; returns whether
    /// anything was sent.
    fn read(&mut self, sink: &mut dyn RecordSink) -> Result<bool> {
        let slot = self.config.slot_name();
        let publication = self.config.publication_name();
        let limit = i32::try_from(self.config.max_changes_per_poll).unwrap_or(i32::MAX);
        let rows = self
            .client()?
            .query(
                "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2, \
                 'proto_version', '1', 'publication_names', $3)",
                &[&slot, &limit, &publication],
            )
            .map_err(|e| self.err(PostgresError::client("peek at the slot's changes")(e)))?;
        let mut open: Option<Open> = None;
        let mut sent_any = false;
        for row in &rows {
            let data: &[u8] = row
                .try_get(0)
                .map_err(|e| self.err(PostgresError::client("read a change")(e)))?;
            let message = decode(data).map_err(|e| self.err(e.into()))?;
            match message {
                Message::Relation(rel) => {
                    self.relations.insert(rel.oid, rel);
                }
                Message::Begin { xid, .. } => {
                    if open.is_some() {
                        return Err(self.err(PostgresError::Protocol(format!(
                            "Begin of xid {xid} inside an open transaction"
                        ))));
                    }
                    open = Some(Open {
                        xid,
                        changes: Vec::new(),
                    });
                }
                Message::Commit {
                    end_lsn, commit_ts, ..
                } => {
                    let Some(txn) = open.take() else {
                        return Err(
                            self.err(PostgresError::Protocol("Commit without Begin".into()))
                        );
                    };
                    if end_lsn <= self.sent_lsn {
                        continue; // committed to the topic already (or sent in this round)
                    }
                    let timestamp = commit_ts / 1000 + PG_EPOCH_MS;
                    let lsn = format_lsn(end_lsn);
                    let xid = txn.xid.to_string();
                    for change in &txn.changes {
                        let headers = [
                            Header::new("op", Some(change.op.as_bytes())),
                            Header::new("table", Some(change.table.as_bytes())),
                            Header::new("lsn", Some(lsn.as_bytes())),
                            Header::new("xid", Some(xid.as_bytes())),
                        ];
                        sink.send(
                            timestamp,
                            change.key.as_deref(),
                            change.value.as_deref(),
                            &headers,
                        )?;
                        SourceMetrics::add(&self.metrics.records, 1);
                        SourceMetrics::add(
                            &self.metrics.bytes,
                            change.value.as_ref().map_or(0, Vec::len) as u64,
                        );
                    }
                    self.sent_lsn = end_lsn;
                    sent_any = true;
                }
                Message::Insert { relation, new } => {
                    let change = self.change(relation, "insert", None, &new)?;
                    push(&mut open, change).map_err(|e| self.err(e))?;
                }
                Message::Update { relation, old, new } => {
                    // A changed key: the old key's record is deleted (a tombstone) first.
                    if let Some((_, old)) = &old {
                        let rel = self.relation(relation)?;
                        let old_key = key_json(rel, old);
                        if old_key.is_some() && old_key != key_json(rel, &new) {
                            let change = self.change(relation, "delete", Some(old), &[])?;
                            push(&mut open, change).map_err(|e| self.err(e))?;
                        }
                    }
                    let change = self.change(relation, "update", None, &new)?;
                    push(&mut open, change).map_err(|e| self.err(e))?;
                }
                Message::Delete { relation, old } => {
                    let change = self.change(relation, "delete", Some(&old.1), &[])?;
                    push(&mut open, change).map_err(|e| self.err(e))?;
                }
                // A compacted topic cannot mirror a TRUNCATE without the keys it removed.
                Message::Truncate { relations, .. } if open.is_some() => {
                    eprintln!(
                        "streamlog ingest: warning: source {}: TRUNCATE of {} table(s) not mirrored (no keys to delete)",
                        self.config.name,
                        relations.len()
                    );
                }
                _ => {}
            }
        }
        Ok(sent_any)
    }

    fn relation(&self, oid: u32) -> Result<&Relation> {
        self.relations.get(&oid).ok_or_else(|| {
            self.err(PostgresError::Protocol(format!(
                "a change of relation {oid} before its Relation message"
            )))
        })
    }

    /// The record of one change: `new` for inserts and updates, `old` (the key) for
    /// deletes, which become tombstones.
    fn change(
        &self,
        relation: u32,
        op: &'static str,
        old: Option<&[Datum<'_>]>,
        new: &[Datum<'_>],
    ) -> Result<Change> {
        let rel = self.relation(relation)?;
        let table = format!("{}.{}", rel.namespace, rel.name);
        let key_of = |tuple: &[Datum<'_>]| -> Option<Vec<u8>> {
            let key = key_json(rel, tuple)?;
            let key = if self.config.tables.len() > 1 {
                json!({ "table": table, "key": key })
            } else {
                Value::Object(key)
            };
            serde_json::to_vec(&key).ok()
        };
        let (key, value) = match old {
            Some(old) => (key_of(old), None),
            None => {
                let row: Map<String, Value> = row_json(rel, new);
                (key_of(new), serde_json::to_vec(&Value::Object(row)).ok())
            }
        };
        Ok(Change {
            key,
            value,
            op,
            table,
        })
    }
}

fn push(open: &mut Option<Open>, change: Change) -> std::result::Result<(), PostgresError> {
    match open {
        Some(txn) => {
            txn.changes.push(change);
            Ok(())
        }
        None => Err(PostgresError::Protocol(
            "a change outside a transaction".into(),
        )),
    }
}

impl Source for PostgresCdcSource {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn topic(&self) -> &str {
        &self.config.topic
    }

    fn restore(&mut self, committed: &BTreeMap<Vec<u8>, Vec<u8>>) -> Result<()> {
        self.committed_lsn = match committed.get(LSN_KEY) {
            None => 0,
            Some(v) => std::str::from_utf8(v)
                .ok()
                .and_then(parse_lsn)
                .ok_or_else(|| IngestError::BadPosition {
                    source_name: self.config.name.clone(),
                    key: "lsn".into(),
                    reason: format!("not an LSN: {:?}", String::from_utf8_lossy(v)),
                })?,
        };
        self.client()?;
        let confirmed = self.set_up().map_err(|e| self.err(e))?;
        // Committed to the topic but the slot not advanced (a crash in between): advance
        // it now; the peek would skip those transactions anyway.
        if confirmed < self.committed_lsn {
            self.advance_slot(self.committed_lsn)
                .map_err(|e| self.err(e))?;
        }
        self.sent_lsn = self.committed_lsn;
        self.reported_lsn = self.committed_lsn;
        Ok(())
    }

    fn poll(&mut self, sink: &mut dyn RecordSink, _deadline: Instant) -> Result<Poll> {
        // A peek starts at the slot's confirmed position, which moves only after a commit:
        // peeking again before it would decode the same transactions again.
        if self.sent_lsn > self.committed_lsn {
            return Ok(Poll::Idle);
        }
        if self.read(sink)? {
            Ok(Poll::Progress)
        } else {
            Ok(Poll::Idle)
        }
    }

    fn take_positions(&mut self) -> Vec<PositionUpdate> {
        if self.sent_lsn == self.reported_lsn {
            return Vec::new();
        }
        self.reported_lsn = self.sent_lsn;
        vec![(
            LSN_KEY.to_vec(),
            Some(format_lsn(self.sent_lsn).into_bytes()),
        )]
    }

    fn committed(&mut self) -> Result<()> {
        if self.reported_lsn > self.committed_lsn {
            self.committed_lsn = self.reported_lsn;
            self.advance_slot(self.committed_lsn)
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }
}
