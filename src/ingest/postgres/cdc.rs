//! Change data capture through logical decoding: a replication slot with the built-in
//! `pgoutput` plugin and a publication of the chosen tables, read over the streaming
//! replication protocol (`stream = true`, the default; `stream.rs`) or with the SQL
//! interface (`stream = false`).
//!
//! Exactly once, in three steps a round:
//! 1. The committed transactions after the slot's confirmed position arrive whole, in commit
//!    order: pushed by the server's walsender as they commit (streaming), or returned by
//!    `pg_logical_slot_peek_binary_changes` without being consumed (peeking). Each
//!    transaction whose end LSN is past the position this source already handed out becomes
//!    records (inserts and updates as JSON rows, deletes as tombstones, keyed by the primary
//!    key); its end LSN becomes the source's position (`lsn`).
//! 2. The agent commits the records and that position in one transaction.
//! 3. Only then ([`Source::committed`]) the slot is confirmed up to it (a standby status
//!    update on the stream, `pg_replication_slot_advance` when peeking), so the server can
//!    recycle the WAL.
//!
//! A crash between 2 and 3 leaves the slot behind the committed position: on restart the
//! slot is advanced to the committed position first, and transactions at or below it are
//! skipped anyway. A crash before 2 leaves both where they were, and the changes are read
//! again. So a change is in the topic once whether the agent or the database stops.
//!
//! Before the first change, a source that starts with nothing committed reads the rows
//! already in its tables (the initial snapshot, `snapshot.rs`), and the stream then drops
//! the changes the snapshot holds.
//!
//! **Heartbeat.** An idle source whose sent changes are all committed confirms the slot up
//! to a position nothing of its own can be behind, every `heartbeat_interval_ms`;
//! otherwise writes to other tables (or databases) would keep WAL behind the slot.
//! Streaming: a keepalive's sent position, once every message queued before it is read
//! and no transaction is open. Peeking: the flushed WAL position read before a peek that
//! found nothing (the SQL interface decodes up to the flush position at the call).
//!
//! **Waiting.** Streaming, the source has no timer of its own once caught up: the stream's
//! reader wakes the agent when the server pushes a message, and a keepalive showing the
//! server has sent past the flush position read at the previous quiet poll makes it
//! caught up (`Poll::Idle`; before that `Poll::Waiting`, looking every `poll_interval_ms`).
//! Peeking, the SQL interface cannot wait for changes: the source looks every
//! `poll_interval_ms`, a look being one `pg_current_wal_flush_lsn()`, and peeks only when
//! the flushed position moved since a peek that found nothing (each peek decodes from the
//! slot's restart position, which moves only at the server's running-transactions records,
//! every 15 s: a cost that grows with the WAL in between). The agent also polls right after
//! each commit, when the slot has moved and what came meanwhile can be read.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postgres::Client;

use super::error::PostgresError;
use super::pgoutput::{decode, format_lsn, parse_lsn, Datum, Message, Relation, PG_EPOCH_MS};
use super::snapshot::{Seen, Snapshot, SnapshotPosition, SNAPSHOT_KEY};
use super::stream::{Event, ReplicationStream, SharedWaker};
use super::value::{key_json, record_key, record_value};
use super::PostgresSourceConfig;
use crate::ingest::error::{IngestError, Result};
use crate::ingest::metrics::SourceMetrics;
use crate::ingest::producer::now_ms;
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
    /// While the snapshot filters the stream: the source's table and the key's text values
    /// (to place the key in a snapshot segment).
    place: Option<(usize, Option<Vec<String>>)>,
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
    /// The initial snapshot, while it is read or still filters the stream.
    snapshot: Option<Snapshot>,
    /// The slot's confirmed position as last read or set.
    slot_lsn: u64,
    last_heartbeat: Instant,
    last_poll: Instant,
    /// The streaming replication connection (`stream = true`), started once the initial
    /// snapshot is done.
    stream: Option<ReplicationStream>,
    /// The agent's waker, shared with the stream's reader thread.
    waker: SharedWaker,
    /// The transaction being gathered from the stream (its Commit not received yet).
    open: Option<Open>,
    /// A keepalive's sent position with every message before it read and no transaction
    /// open: with everything sent committed, the slot may be confirmed there (the stream's
    /// heartbeat).
    keepalive_end: Option<u64>,
    /// The server's flushed WAL position read at the last poll that found nothing: the
    /// stream is caught up once a keepalive reports having sent that far.
    flushed_before: u64,
    /// Whether the last poll found the stream caught up.
    caught_up: bool,
    /// The flushed WAL position read before the last peek, when that peek found nothing:
    /// while the flushed position stays there, no peek can find anything either.
    quiet_at: Option<u64>,
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
            snapshot: None,
            slot_lsn: 0,
            last_heartbeat: Instant::now(),
            last_poll: Instant::now(),
            quiet_at: None,
            stream: None,
            waker: SharedWaker::default(),
            open: None,
            keepalive_end: None,
            flushed_before: u64::MAX,
            caught_up: false,
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
        self.slot_lsn = self.slot_lsn.max(lsn);
        self.note_lag(lsn)
    }

    /// The slot's lag behind the server's WAL, in the metrics and (when large) on stderr.
    fn note_lag(&mut self, lsn: u64) -> std::result::Result<(), PostgresError> {
        let slot = self.config.slot_name();
        let Some(client) = self.client.as_mut() else {
            return Ok(());
        };
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
    /// anything was sent (or dropped as held by the snapshot) and how many messages the
    /// peek returned.
    fn read(&mut self, sink: &mut dyn RecordSink) -> Result<(bool, usize)> {
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
            sent_any |= self.on_message(data, &mut open, sink)?;
        }
        Ok((sent_any, rows.len()))
    }

    /// Handles one pgoutput message (`open` is the transaction being gathered); returns
    /// whether it ended a transaction that was sent (or dropped as held by the snapshot).
    fn on_message(
        &mut self,
        data: &[u8],
        open: &mut Option<Open>,
        sink: &mut dyn RecordSink,
    ) -> Result<bool> {
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
                *open = Some(Open {
                    xid,
                    changes: Vec::new(),
                });
            }
            Message::Commit {
                end_lsn, commit_ts, ..
            } => {
                let Some(txn) = open.take() else {
                    return Err(self.err(PostgresError::Protocol("Commit without Begin".into())));
                };
                if end_lsn <= self.sent_lsn {
                    return Ok(false); // committed to the topic already (or sent in this round)
                }
                let keep = self.held_by_snapshot(&txn, end_lsn)?;
                let timestamp = commit_ts / 1000 + PG_EPOCH_MS;
                let lsn = format_lsn(end_lsn);
                let xid = txn.xid.to_string();
                for (change, keep) in txn.changes.iter().zip(keep) {
                    if !keep {
                        continue;
                    }
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
                if let Some(snapshot) = self.snapshot.as_mut() {
                    snapshot.stream_reached(end_lsn);
                }
                return Ok(true);
            }
            Message::Insert { relation, new } => {
                let change = self.change(relation, "insert", None, &new)?;
                push(open, change).map_err(|e| self.err(e))?;
            }
            Message::Update { relation, old, new } => {
                // A changed key: the old key's record is deleted (a tombstone) first.
                if let Some((_, old)) = &old {
                    let rel = self.relation(relation)?;
                    let old_key = key_json(rel, old);
                    if old_key.is_some() && old_key != key_json(rel, &new) {
                        let change = self.change(relation, "delete", Some(old), &[])?;
                        push(open, change).map_err(|e| self.err(e))?;
                    }
                }
                let change = self.change(relation, "update", None, &new)?;
                push(open, change).map_err(|e| self.err(e))?;
            }
            Message::Delete { relation, old } => {
                let change = self.change(relation, "delete", Some(&old.1), &[])?;
                push(open, change).map_err(|e| self.err(e))?;
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
        Ok(false)
    }

    /// Which of a transaction's changes to send: all of them unless the initial snapshot
    /// already holds some (see `snapshot.rs`).
    fn held_by_snapshot(&mut self, txn: &Open, end_lsn: u64) -> Result<Vec<bool>> {
        let all = |keep| vec![keep; txn.changes.len()];
        let Some(snapshot) = self.snapshot.as_ref().filter(|s| s.position().filters()) else {
            return Ok(all(true));
        };
        let seen = snapshot.seen(txn.xid, end_lsn);
        if seen == Seen::Nowhere {
            return Ok(all(true));
        }
        let mut keep = Vec::with_capacity(txn.changes.len());
        for change in &txn.changes {
            // A table the snapshot did not read (a publication made beforehand may hold
            // more), or a key it cannot place: sent.
            keep.push(match (&change.place, &seen) {
                (None, _) | (Some((_, None)), Seen::Segments(_)) => true,
                (Some(_), Seen::Everywhere) => false,
                (Some((table, Some(key))), Seen::Segments(by_segment)) => {
                    let Some(client) = self.client.as_mut() else {
                        return Err(self.err(PostgresError::Protocol("no connection".into())));
                    };
                    let segment = snapshot
                        .segment_of(client, *table, key)
                        .map_err(|e| pg_err(&self.config.name, e))?;
                    !by_segment.get(segment).copied().unwrap_or(false)
                }
                (Some(_), Seen::Nowhere) => true,
            });
        }
        Ok(keep)
    }

    /// Reads the next chunk of the initial snapshot and sends its rows (op `read`).
    fn read_snapshot(&mut self, sink: &mut dyn RecordSink) -> Result<()> {
        let name = self.config.name.clone();
        let config = self.config.clone();
        let limit = self.config.snapshot_chunk_rows;
        let several = self.config.tables.len() > 1;
        let Some(snapshot) = self.snapshot.as_mut() else {
            return Ok(());
        };
        let (table, rows) = snapshot
            .read_chunk(|| super::connect(&config), limit)
            .map_err(|e| pg_err(&name, e))?;
        let Some(table) = snapshot.table(table) else {
            return Ok(());
        };
        let rel = table.relation();
        let table_name = format!("{}.{}", rel.namespace, rel.name);
        let headers = [
            Header::new("op", Some(b"read")),
            Header::new("table", Some(table_name.as_bytes())),
        ];
        let now = now_ms();
        for row in &rows {
            let tuple: Vec<Datum<'_>> = row
                .iter()
                .map(|v| {
                    v.as_deref()
                        .map_or(Datum::Null, |t| Datum::Text(t.as_bytes()))
                })
                .collect();
            let value = record_value(rel, &tuple);
            sink.send(
                now,
                record_key(rel, &tuple, several).as_deref(),
                value.as_deref(),
                &headers,
            )?;
            SourceMetrics::add(&self.metrics.records, 1);
            SourceMetrics::add(&self.metrics.bytes, value.map_or(0, |v| v.len()) as u64);
        }
        Ok(())
    }

    /// Reads what the stream queued (at most `max_changes_per_poll` messages, until
    /// `deadline`), starting the stream first if needed.
    fn poll_stream(&mut self, sink: &mut dyn RecordSink, deadline: Instant) -> Result<Poll> {
        let stream = match self.stream.take() {
            Some(s) => s,
            None => {
                let start = self.committed_lsn.max(self.slot_lsn);
                ReplicationStream::start(&self.config, start, Arc::clone(&self.waker))
                    .map_err(|e| self.err(e))?
            }
        };
        let mut open = self.open.take();
        let mut sent = false;
        let mut more = false;
        let mut read = 0u32;
        let sent_end = stream.sent_end();
        stream.rearm();
        let outcome = loop {
            if read >= self.config.max_changes_per_poll || Instant::now() >= deadline {
                more = true; // what is left is read after the commit now due
                break Ok(());
            }
            let Some(event) = stream.try_next() else {
                break Ok(());
            };
            read += 1;
            match event {
                Event::Data(data) => match self.on_message(&data, &mut open, sink) {
                    Ok(s) => sent |= s,
                    Err(e) => break Err(e),
                },
                Event::Failed(reason) => {
                    break Err(self.err(PostgresError::Replication {
                        op: "read the stream",
                        reason,
                    }))
                }
            }
        };
        self.open = open;
        // On an error the stream is dropped; the rebuilt source starts another.
        outcome?;
        if sent && self.config.test_planted_bug.as_deref() == Some("advance-before-commit") {
            stream.confirm(self.sent_lsn).map_err(|e| self.err(e))?;
        }
        // Every message before `sent_end` is read (the queue was emptied after reading it).
        let drained = !more && self.open.is_none();
        if drained && sent_end > self.slot_lsn {
            self.keepalive_end = Some(sent_end);
        }
        // The stream's heartbeat: with all of ours before it committed, confirm the slot up
        // to what the server has sent, so WAL of other tables is not held for it.
        let interval = Duration::from_millis(self.config.heartbeat_interval_ms);
        if let Some(end) = self.keepalive_end {
            let clean = self.sent_lsn == self.committed_lsn;
            let due =
                self.config.heartbeat_interval_ms > 0 && self.last_heartbeat.elapsed() >= interval;
            if end <= self.slot_lsn {
                self.keepalive_end = None;
            } else if clean && due {
                stream.confirm(end).map_err(|e| self.err(e))?;
                self.slot_lsn = end;
                self.last_heartbeat = Instant::now();
                self.keepalive_end = None;
            }
        }
        self.stream = Some(stream);
        if sent || more {
            return Ok(Poll::Progress);
        }
        // Caught up when the server has sent (and we read) past the flush position read at
        // the previous quiet poll: what a peek finding nothing would say.
        self.caught_up = drained && sent_end.max(self.sent_lsn) >= self.flushed_before;
        self.flushed_before = self.flushed_lsn()?;
        Ok(if self.caught_up {
            Poll::Idle
        } else {
            Poll::Waiting
        })
    }

    /// Moves the slot to `flushed` (read before a peek that found nothing) when it is
    /// ahead and everything sent is committed.
    fn heartbeat(&mut self, flushed: u64) -> Result<()> {
        self.last_heartbeat = Instant::now();
        if flushed > self.slot_lsn && self.sent_lsn == self.committed_lsn {
            self.advance_slot(flushed).map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn flushed_lsn(&mut self) -> Result<u64> {
        let row = self
            .client()?
            .query_one("SELECT pg_current_wal_flush_lsn()::text", &[])
            .map_err(|e| self.err(PostgresError::client("read the flushed WAL LSN")(e)))?;
        let lsn: String = row
            .try_get(0)
            .map_err(|e| self.err(PostgresError::client("read the flushed WAL LSN")(e)))?;
        Ok(parse_lsn(&lsn).unwrap_or(0))
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
        let several = self.config.tables.len() > 1;
        let (key, value) = match old {
            Some(old) => (record_key(rel, old, several), None),
            None => (record_key(rel, new, several), record_value(rel, new)),
        };
        let place = self
            .snapshot
            .as_ref()
            .filter(|s| s.position().filters())
            .and_then(|s| {
                let index = s.table_index(&rel.namespace, &rel.name)?;
                let key = s.table(index)?.key_of(rel, old.unwrap_or(new));
                Some((index, key))
            });
        Ok(Change {
            key,
            value,
            op,
            table,
            place,
        })
    }
}

fn pg_err(name: &str, error: PostgresError) -> IngestError {
    IngestError::Postgres {
        source_name: name.to_string(),
        error,
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
        let snapshot = match committed.get(SNAPSHOT_KEY) {
            Some(v) => Some(SnapshotPosition::from_bytes(v).map_err(|reason| {
                IngestError::BadPosition {
                    source_name: self.config.name.clone(),
                    key: "snapshot".into(),
                    reason,
                }
            })?),
            // Nothing committed at all: a new source.
            None if self.config.snapshot_mode == "initial" && committed.is_empty() => {
                Some(SnapshotPosition::default())
            }
            None => None,
        };
        let planted_restart = self.config.test_planted_bug.as_deref() == Some("snapshot-restart");
        self.snapshot =
            snapshot.filter(|p| !p.done() || p.filters()).map(|p| {
                match planted_restart && !p.done() {
                    true => Snapshot::new(SnapshotPosition::default()),
                    false => Snapshot::new(p),
                }
            });
        self.client()?;
        let confirmed = self.set_up().map_err(|e| self.err(e))?;
        self.slot_lsn = confirmed;
        // Committed to the topic but the slot not advanced (a crash in between): advance
        // it now; the peek would skip those transactions anyway.
        if confirmed < self.committed_lsn {
            self.advance_slot(self.committed_lsn)
                .map_err(|e| self.err(e))?;
        }
        if let (Some(snapshot), Some(client)) = (self.snapshot.as_mut(), self.client.as_mut()) {
            snapshot
                .load_tables(client, &self.config.quoted_tables())
                .map_err(|e| pg_err(&self.config.name, e))?;
        }
        self.sent_lsn = self.committed_lsn;
        self.reported_lsn = self.committed_lsn;
        Ok(())
    }

    fn poll(&mut self, sink: &mut dyn RecordSink, deadline: Instant) -> Result<Poll> {
        self.last_poll = Instant::now();
        // The snapshot first; the slot stays where it is until it is done.
        if self.snapshot.as_ref().is_some_and(|s| !s.position().done()) {
            self.read_snapshot(sink)?;
            return Ok(Poll::Progress);
        }
        if self.config.stream {
            return self.poll_stream(sink, deadline);
        }
        // A peek starts at the slot's confirmed position, which moves only after a commit:
        // peeking again before it would decode the same transactions again.
        if self.sent_lsn > self.committed_lsn {
            return Ok(Poll::Idle);
        }
        let interval = Duration::from_millis(self.config.heartbeat_interval_ms);
        let heartbeat_due =
            self.config.heartbeat_interval_ms > 0 && self.last_heartbeat.elapsed() >= interval;
        // The server's flush position decides whether a peek can find anything: the SQL
        // interface decodes up to it, so if it has not moved since a peek that found
        // nothing, nothing new is there (and the peek, which decodes from the slot's restart
        // position every time, is skipped).
        let flushed = self.flushed_lsn()?;
        if self.quiet_at == Some(flushed) {
            if heartbeat_due {
                self.heartbeat(flushed)?;
            }
            return Ok(Poll::Idle);
        }
        let (sent, messages) = self.read(sink)?;
        SourceMetrics::add(&self.metrics.peeks, 1);
        self.quiet_at = (messages == 0).then_some(flushed);
        if messages == 0 && heartbeat_due {
            self.heartbeat(flushed)?;
        }
        if sent && self.config.test_planted_bug.as_deref() == Some("advance-before-commit") {
            let lsn = self.sent_lsn;
            self.advance_slot(lsn).map_err(|e| self.err(e))?;
        }
        Ok(if sent { Poll::Progress } else { Poll::Idle })
    }

    /// Streaming: none of its own (the stream's reader wakes the agent when the server
    /// pushes something), except a pending heartbeat. Peeking: every `poll_interval_ms`
    /// (the SQL interface cannot wait for changes; a look costs one query while the WAL
    /// stays put), and the agent polls right after each commit, when the slot moved.
    fn next_poll(&self) -> Option<Instant> {
        if !self.config.stream || self.snapshot.as_ref().is_some_and(|s| !s.position().done()) {
            return Some(self.last_poll + self.config.poll_interval());
        }
        // Not caught up: look again soon (a keepalive does not wake the source). Else only
        // the heartbeat's own interval, to confirm the slot past other tables' WAL.
        if !self.caught_up {
            return Some(self.last_poll + self.config.poll_interval());
        }
        let heartbeat = Duration::from_millis(self.config.heartbeat_interval_ms);
        (self.config.heartbeat_interval_ms > 0)
            .then(|| self.last_heartbeat.max(self.last_poll) + heartbeat)
    }

    fn set_waker(&mut self, wake: std::sync::mpsc::Sender<()>) {
        *self.waker.lock() = Some(wake);
    }

    fn take_positions(&mut self) -> Vec<PositionUpdate> {
        let mut updates = Vec::new();
        if self.sent_lsn != self.reported_lsn {
            self.reported_lsn = self.sent_lsn;
            updates.push((
                LSN_KEY.to_vec(),
                Some(format_lsn(self.sent_lsn).into_bytes()),
            ));
        }
        if let Some(snapshot) = self.snapshot.as_mut() {
            if snapshot.take_changed() {
                updates.push((SNAPSHOT_KEY.to_vec(), Some(snapshot.position().to_bytes())));
            }
        }
        updates
    }

    fn committed(&mut self) -> Result<()> {
        if self.reported_lsn > self.committed_lsn {
            self.committed_lsn = self.reported_lsn;
            match &self.stream {
                Some(stream) => {
                    stream
                        .confirm(self.committed_lsn)
                        .map_err(|e| self.err(e))?;
                    self.slot_lsn = self.slot_lsn.max(self.committed_lsn);
                    self.note_lag(self.committed_lsn).map_err(|e| self.err(e))?;
                }
                None => self
                    .advance_slot(self.committed_lsn)
                    .map_err(|e| self.err(e))?,
            }
        }
        Ok(())
    }
}
