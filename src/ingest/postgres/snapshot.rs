//! The initial snapshot of the CDC source: the rows that existed before the slot, read once
//! and then followed by the slot's changes, exactly once per key even across a crash in the
//! middle of the snapshot.
//!
//! PostgreSQL's SQL interface cannot export the snapshot a slot is created with (only the
//! replication protocol can), so the snapshot and the slot are joined the other way round:
//! - The slot exists first. Then a `REPEATABLE READ` transaction on a connection of its own
//!   takes a snapshot `S` (`pg_current_snapshot()`: xmin, xmax, the transactions in
//!   progress) and reads each table in primary-key order, a chunk at a time. Every
//!   transaction that committed before the slot's position is visible in `S`; every one
//!   after it is in the slot's stream.
//! - The stream then drops the changes `S` already holds: a transaction visible in `S` is
//!   in the rows read (a top-level xid, as pgoutput's Begin carries it, is visible when it is
//!   below xmin, or below xmax and not in progress). The rest are sent. Writes to one row
//!   are serialised by its lock (released after the writer leaves the proc array), so the
//!   transactions of one key become visible in their commit order: the rows read plus the
//!   changes sent are each key's history exactly once, in order.
//! - Progress (the key ranges read, each with the snapshot it was read under, and the last
//!   key read) is the position `snapshot`, committed with the rows. The slot is never
//!   advanced before the snapshot is done.
//!
//! **A crash mid-snapshot resumes it.** Restarting would send again rows consumers have
//! already seen. Resuming reads the keys after the last committed one under a new snapshot
//! `S2`, so the position keeps a list of segments: keys up to the crash were read under `S`,
//! keys after it under `S2`. A change is dropped when its transaction is visible in the
//! snapshot of its key's segment; only a transaction visible in some segments' snapshots but
//! not others (it committed between them) needs its keys placed, which the server does by
//! comparing them with the segment bounds in the index's own order (types and collations).
//! Every transaction visible in a snapshot committed before the WAL insert position read just
//! after it was taken; once the stream has passed the largest such position the segments
//! are dropped from the position.

use postgres::{Client, SimpleQueryMessage};
use serde::{Deserialize, Serialize};

use super::error::PostgresError;
use super::pgoutput::{parse_lsn, Column, Datum, Relation};
use super::quote_ident;

/// The key of the snapshot's progress in `__ingest_positions`.
pub(crate) const SNAPSHOT_KEY: &[u8] = b"snapshot";

/// A transaction snapshot (`pg_current_snapshot()`) and the WAL insert position read just
/// after it was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Snap {
    xmin: u64,
    xmax: u64,
    /// In progress when the snapshot was taken, sorted.
    xip: Vec<u64>,
    /// Every transaction visible in the snapshot committed before this LSN.
    wal_lsn: u64,
}

impl Snap {
    /// Parses `pg_current_snapshot()`'s text form, `xmin:xmax:xip,xip,…`.
    fn parse(text: &str, wal_lsn: u64) -> Option<Snap> {
        let mut parts = text.trim().split(':');
        let xmin = parts.next()?.parse().ok()?;
        let xmax = parts.next()?.parse().ok()?;
        let mut xip = Vec::new();
        for x in parts.next()?.split(',').filter(|s| !s.is_empty()) {
            xip.push(x.parse().ok()?);
        }
        if parts.next().is_some() {
            return None;
        }
        xip.sort_unstable();
        Some(Snap {
            xmin,
            xmax,
            xip,
            wal_lsn,
        })
    }

    /// Whether top-level transaction `xid` (32 bits, as pgoutput sends it) had committed
    /// when the snapshot was taken. The stream's transactions are near the snapshot in xid
    /// space, so the 32 bits are widened to the 64-bit xid closest to xmax.
    pub(crate) fn sees(&self, xid: u32) -> bool {
        let delta = i64::from(xid.wrapping_sub(self.xmax as u32) as i32);
        let full = (self.xmax as i64).saturating_add(delta).max(0) as u64;
        full < self.xmin || (full < self.xmax && self.xip.binary_search(&full).is_err())
    }
}

/// Where reading stands: rows of table `table` (an index into the source's tables) after
/// `key` (the key columns' text values in index order; `None`: from the table's start).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Bound {
    table: usize,
    key: Option<Vec<String>>,
}

/// Keys after `after` (up to the next segment's `after`) read under `snap`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Segment {
    after: Bound,
    snap: Snap,
}

/// The committed progress of the snapshot (position `snapshot`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapshotPosition {
    /// In key order; empty once the stream has passed every snapshot's WAL position.
    segments: Vec<Segment>,
    /// The next rows to read.
    next: Bound,
    /// Every table read.
    done: bool,
}

impl Default for SnapshotPosition {
    fn default() -> Self {
        SnapshotPosition {
            segments: Vec::new(),
            next: Bound {
                table: 0,
                key: None,
            },
            done: false,
        }
    }
}

impl SnapshotPosition {
    /// Whether every table has been read.
    pub(crate) fn done(&self) -> bool {
        self.done
    }

    /// Whether the stream still needs to drop changes the snapshot holds.
    pub(crate) fn filters(&self) -> bool {
        !self.segments.is_empty()
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// What the snapshot segments make of a streamed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Visible in no segment's snapshot: every change is sent.
    Nowhere,
    /// Visible in every segment's snapshot: every change is dropped.
    Everywhere,
    /// Visible in some: whether each segment's snapshot sees it.
    Segments(Vec<bool>),
}

/// One key column: its position in the row and how to write a literal of its type and
/// collation.
#[derive(Debug, Clone)]
struct KeyColumn {
    column: usize,
    /// `::type COLLATE collation`.
    cast: String,
}

/// A table to read: its columns (as pgoutput describes them) and its key's order.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    quoted: String,
    relation: Relation,
    key: Vec<KeyColumn>,
}

impl Table {
    /// Reads `quoted`'s description from the catalog. The key is the replica identity's
    /// index (the primary key by default), the one pgoutput keys changes by.
    fn load(client: &mut Client, quoted: &str) -> Result<Table, PostgresError> {
        let c = PostgresError::client;
        let row = client
            .query_one(
                "SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relreplident::text \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.oid = $1::text::regclass",
                &[&quoted],
            )
            .map_err(c("describe a table to snapshot"))?;
        let oid: i64 = row.try_get(0).map_err(c("describe a table"))?;
        let namespace: String = row.try_get(1).map_err(c("describe a table"))?;
        let name: String = row.try_get(2).map_err(c("describe a table"))?;
        let ident: String = row.try_get(3).map_err(c("describe a table"))?;
        let rows = client
            .query(
                "SELECT a.attname::text, a.atttypid::int8, a.atttypmod, \
                        format_type(a.atttypid, a.atttypmod), \
                        (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname) \
                           FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace \
                          WHERE co.oid = a.attcollation), \
                        array_position(i.indkey::int2[], a.attnum) \
                   FROM pg_attribute a \
                   LEFT JOIN pg_index i ON i.indrelid = a.attrelid \
                        AND CASE WHEN $2 = 'i' THEN i.indisreplident \
                                 WHEN $2 = 'd' THEN i.indisprimary ELSE false END \
                  WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 \
                    AND NOT a.attisdropped AND a.attgenerated = '' \
                  ORDER BY a.attnum",
                &[&quoted, &ident],
            )
            .map_err(c("describe a table's columns"))?;
        let mut columns = Vec::new();
        let mut key = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let name: String = row.try_get(0).map_err(c("describe a column"))?;
            let type_oid: i64 = row.try_get(1).map_err(c("describe a column"))?;
            let type_modifier: i32 = row.try_get(2).map_err(c("describe a column"))?;
            let type_name: String = row.try_get(3).map_err(c("describe a column"))?;
            let collation: Option<String> = row.try_get(4).map_err(c("describe a column"))?;
            let key_at: Option<i32> = row.try_get(5).map_err(c("describe a column"))?;
            if let Some(at) = key_at {
                let cast = match collation {
                    Some(coll) => format!("::{type_name} COLLATE {coll}"),
                    None => format!("::{type_name}"),
                };
                key.push((at, KeyColumn { column: i, cast }));
            }
            columns.push(Column {
                key: key_at.is_some(),
                name,
                type_oid: u32::try_from(type_oid).unwrap_or(0),
                type_modifier,
            });
        }
        if key.is_empty() {
            return Err(PostgresError::Snapshot(format!(
                "table {quoted} has no primary key or replica identity index to read it in \
                 order (set snapshot_mode = \"never\" to skip the initial snapshot)"
            )));
        }
        key.sort_by_key(|(at, _)| *at);
        Ok(Table {
            quoted: quoted.to_string(),
            relation: Relation {
                oid: u32::try_from(oid).unwrap_or(0),
                namespace,
                name,
                replica_identity: ident.bytes().next().unwrap_or(b'd'),
                columns,
            },
            key: key.into_iter().map(|(_, k)| k).collect(),
        })
    }

    /// The table as pgoutput's Relation message would describe it.
    pub(crate) fn relation(&self) -> &Relation {
        &self.relation
    }

    /// `ROW(lit::type COLLATE c, …)` of a key's text values.
    fn key_row(&self, key: &[String]) -> String {
        let items: Vec<String> = self
            .key
            .iter()
            .zip(key)
            .map(|(k, v)| format!("{}{}", literal(v), k.cast))
            .collect();
        format!("ROW({})", items.join(", "))
    }

    /// The key columns' text values of a tuple in relation `rel` (a change of this table;
    /// columns found by name, pgoutput's column order may differ after DDL). `None` when a
    /// key column is missing or not in text form.
    pub(crate) fn key_of(&self, rel: &Relation, tuple: &[Datum<'_>]) -> Option<Vec<String>> {
        let mut out = Vec::with_capacity(self.key.len());
        for k in &self.key {
            let name = &self.relation.columns.get(k.column)?.name;
            let at = rel.columns.iter().position(|c| &c.name == name)?;
            match tuple.get(at)? {
                Datum::Text(t) => out.push(String::from_utf8_lossy(t).into_owned()),
                _ => return None,
            }
        }
        Some(out)
    }
}

/// A SQL string literal (the sessions run with `standard_conforming_strings = on`).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn simple_rows(
    client: &mut Client,
    sql: &str,
    op: &'static str,
) -> Result<Vec<postgres::SimpleQueryRow>, PostgresError> {
    Ok(client
        .simple_query(sql)
        .map_err(PostgresError::client(op))?
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .collect())
}

/// Reads the snapshot and filters the stream by it.
pub(crate) struct Snapshot {
    position: SnapshotPosition,
    tables: Vec<Table>,
    /// The connection holding the open `REPEATABLE READ` transaction of the last segment.
    session: Option<Client>,
    changed: bool,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

/// One row read, in text form as pgoutput would send it.
pub(crate) type Row = Vec<Option<String>>;

impl Snapshot {
    pub(crate) fn new(position: SnapshotPosition) -> Snapshot {
        Snapshot {
            position,
            tables: Vec::new(),
            session: None,
            changed: false,
        }
    }

    pub(crate) fn position(&self) -> &SnapshotPosition {
        &self.position
    }

    /// Whether the position changed since the last call.
    pub(crate) fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Describes the tables (`quoted`, in the source's order) if not done yet.
    pub(crate) fn load_tables(
        &mut self,
        client: &mut Client,
        quoted: &[String],
    ) -> Result<(), PostgresError> {
        if self.tables.is_empty() {
            self.tables = quoted
                .iter()
                .map(|q| Table::load(client, q))
                .collect::<Result<_, _>>()?;
        }
        Ok(())
    }

    /// The source's table of a streamed relation, by name.
    pub(crate) fn table_index(&self, namespace: &str, name: &str) -> Option<usize> {
        self.tables
            .iter()
            .position(|t| t.relation.namespace == namespace && t.relation.name == name)
    }

    pub(crate) fn table(&self, index: usize) -> Option<&Table> {
        self.tables.get(index)
    }

    /// Reads the next chunk of at most `limit` rows (opening a snapshot on a connection of
    /// its own first if none is open: a new segment). Returns the table the rows are of and
    /// the rows; the position has moved past them.
    pub(crate) fn read_chunk(
        &mut self,
        connect: impl FnOnce() -> Result<Client, PostgresError>,
        limit: u32,
    ) -> Result<(usize, Vec<Row>), PostgresError> {
        if self.session.is_none() {
            let mut session = connect()?;
            let rows = simple_rows(
                &mut session,
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
                 SELECT pg_current_snapshot()::text, pg_current_wal_insert_lsn()::text",
                "take the snapshot",
            )?;
            let snap = rows
                .first()
                .and_then(|r| Snap::parse(r.get(0)?, parse_lsn(r.get(1)?)?))
                .ok_or_else(|| {
                    PostgresError::Snapshot("unreadable pg_current_snapshot()".into())
                })?;
            let after = self.position.next.clone();
            // A segment that read nothing before a crash is replaced, not kept.
            if self
                .position
                .segments
                .last()
                .is_some_and(|s| s.after == after)
            {
                self.position.segments.pop();
            }
            self.position.segments.push(Segment { after, snap });
            self.changed = true;
            self.session = Some(session);
        }
        let next = self.position.next.clone();
        let table = self
            .tables
            .get(next.table)
            .ok_or_else(|| PostgresError::Snapshot(format!("no table {}", next.table)))?;
        let columns: Vec<String> = table
            .relation
            .columns
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect();
        let keys: Vec<String> = table
            .key
            .iter()
            .filter_map(|k| table.relation.columns.get(k.column))
            .map(|c| quote_ident(&c.name))
            .collect();
        let filter = match &next.key {
            Some(key) => format!("WHERE ROW({}) > {}", keys.join(", "), table.key_row(key)),
            None => String::new(),
        };
        let sql = format!(
            "SELECT {} FROM {} {filter} ORDER BY {} LIMIT {limit}",
            columns.join(", "),
            table.quoted,
            keys.join(", ")
        );
        let session = self
            .session
            .as_mut()
            .ok_or_else(|| PostgresError::Snapshot("no snapshot session".into()))?;
        let rows: Vec<Row> = simple_rows(session, &sql, "read the snapshot")?
            .iter()
            .map(|r| {
                (0..columns.len())
                    .map(|i| r.get(i).map(str::to_string))
                    .collect()
            })
            .collect();
        let index = next.table;
        if let Some(last) = rows
            .last()
            .filter(|_| rows.len() as u64 >= u64::from(limit))
        {
            let key = table
                .key
                .iter()
                .map(|k| last.get(k.column).cloned().flatten())
                .collect::<Option<Vec<String>>>()
                .ok_or_else(|| PostgresError::Snapshot("a null key column".into()))?;
            self.position.next.key = Some(key);
        } else {
            // The table's last rows: on to the next table, or done.
            self.position.next = Bound {
                table: index + 1,
                key: None,
            };
            if index + 1 >= self.tables.len() {
                self.position.done = true;
                if let Some(mut session) = self.session.take() {
                    let _ = session.batch_execute("COMMIT");
                }
            }
        }
        self.changed = true;
        Ok((index, rows))
    }

    /// What the segments make of a transaction `xid` whose commit ends at `end_lsn`.
    pub(crate) fn seen(&self, xid: u32, end_lsn: u64) -> Seen {
        let segments = &self.position.segments;
        let seen: Vec<bool> = segments
            .iter()
            .map(|s| end_lsn <= s.snap.wal_lsn && s.snap.sees(xid))
            .collect();
        if seen.iter().all(|s| !s) {
            Seen::Nowhere
        } else if seen.iter().all(|s| *s) {
            Seen::Everywhere
        } else {
            Seen::Segments(seen)
        }
    }

    /// The segment holding key `key` of table `table`: the last whose bound it is after
    /// (the server compares keys of one table, in the index's order).
    pub(crate) fn segment_of(
        &self,
        client: &mut Client,
        table: usize,
        key: &[String],
    ) -> Result<usize, PostgresError> {
        let t = self
            .tables
            .get(table)
            .ok_or_else(|| PostgresError::Snapshot(format!("no table {table}")))?;
        for (i, s) in self.position.segments.iter().enumerate().rev() {
            let after = match (s.after.table.cmp(&table), &s.after.key) {
                (std::cmp::Ordering::Less, _) | (std::cmp::Ordering::Equal, None) => true,
                (std::cmp::Ordering::Greater, _) => false,
                (std::cmp::Ordering::Equal, Some(bound)) => {
                    let sql = format!("SELECT {} > {}", t.key_row(key), t.key_row(bound));
                    let rows = simple_rows(client, &sql, "place a key in the snapshot")?;
                    rows.first().and_then(|r| r.get(0)) == Some("t")
                }
            };
            if after {
                return Ok(i);
            }
        }
        Ok(0)
    }

    /// Called once the stream has sent everything up to `lsn`: the segments are dropped
    /// when no transaction after it can be visible in their snapshots.
    pub(crate) fn stream_reached(&mut self, lsn: u64) {
        let horizon = self.position.segments.iter().map(|s| s.snap.wal_lsn).max();
        if self.position.done && horizon.is_some_and(|h| lsn >= h) {
            self.position.segments.clear();
            self.tables.clear();
            self.changed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_text_parses_and_sees_committed_xids() {
        let s = Snap::parse("100:110:103,101,107", 0).unwrap();
        assert_eq!(s.xip, [101, 103, 107]);
        assert!(s.sees(99) && s.sees(100) && s.sees(102) && s.sees(109));
        assert!(!s.sees(101) && !s.sees(107) && !s.sees(110) && !s.sees(5000));
        assert_eq!(Snap::parse("5:5:", 0).unwrap().xip, Vec::<u64>::new());
        assert!(Snap::parse("5:x:", 0).is_none());
        assert!(Snap::parse("5:6:1:2", 0).is_none());
    }

    #[test]
    fn xids_widen_across_the_32_bit_wrap() {
        // Epoch 1: xmax is 2^32 + 10; xid 0xFFFF_FFF0 is just before it (epoch 0).
        let s = Snap::parse(&format!("{}:{}:", (1u64 << 32) + 5, (1u64 << 32) + 10), 0).unwrap();
        assert!(s.sees(0xFFFF_FFF0));
        assert!(s.sees(7) && !s.sees(10) && !s.sees(11));
    }

    #[test]
    fn literals_double_quotes() {
        assert_eq!(literal("o'k"), "'o''k'");
    }
}
