//! Kafka Connect's gap, forced deterministically: a transaction takes id 1 and stays open
//! while another takes id 2 and commits; the query source reads id 2, is restarted from its
//! committed position, then the first transaction commits. The source must still deliver
//! id 1, once, and id 2 once. The same scenario with the gap planted (the largest id read
//! settles at once, as Kafka Connect's offset does) loses id 1: the test tells the two apart
//! every run, with no timing involved (the order is forced by the two sessions).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use streamlog::ingest::postgres::{PostgresQuerySource, PostgresSourceConfig};
use streamlog::ingest::{Source, SourceMetrics};

use crate::common::ingest::VecSink;
use crate::common::postgres::PgServer;

/// The ids delivered (committed) by a query source on `table`, in order.
fn late_commit_scenario(
    server: &PgServer,
    table: &str,
    mode: &str,
    planted: Option<&str>,
) -> Vec<i64> {
    let mut db = server.client();
    db.batch_execute(&format!(
        "CREATE SEQUENCE {table}_ids;
         CREATE TABLE {table} (id bigint PRIMARY KEY DEFAULT nextval('{table}_ids'), v text,
                               ts timestamptz NOT NULL DEFAULT clock_timestamp());"
    ))
    .unwrap();
    let mut config = PostgresSourceConfig::new(table, table, &server.conninfo(), &[table]);
    config.mode = mode.to_string();
    if mode == "timestamp+incrementing" {
        config.timestamp_column = Some("ts".into());
    }
    config.test_planted_bug = planted.map(str::to_string);
    let metrics = Arc::new(SourceMetrics::default());
    let build = |committed: &BTreeMap<Vec<u8>, Vec<u8>>| {
        let mut s = PostgresQuerySource::new(config.clone(), Arc::clone(&metrics)).unwrap();
        s.restore(committed).unwrap();
        s
    };
    let mut committed = BTreeMap::new();
    let mut delivered = Vec::new();
    let mut source = build(&committed);
    let mut poll_and_commit =
        |source: &mut PostgresQuerySource, committed: &mut BTreeMap<Vec<u8>, Vec<u8>>| {
            let mut sink = VecSink::default();
            source
                .poll(&mut sink, Instant::now() + Duration::from_secs(60))
                .unwrap();
            for (k, v) in source.take_positions() {
                match v {
                    Some(v) => committed.insert(k, v),
                    None => committed.remove(&k),
                };
            }
            for sent in sink.0 {
                let row: serde_json::Value = serde_json::from_slice(&sent.value).unwrap();
                delivered.push(row["id"].as_i64().unwrap());
            }
        };

    // Session A takes id 1 and holds it; session B takes id 2 and commits.
    let mut a = server.client();
    let mut b = server.client();
    let mut ta = a.transaction().unwrap();
    ta.execute(&format!("INSERT INTO {table} (v) VALUES ('a')"), &[])
        .unwrap();
    let mut tb = b.transaction().unwrap();
    tb.execute(&format!("INSERT INTO {table} (v) VALUES ('b')"), &[])
        .unwrap();
    tb.commit().unwrap();

    // The source reads id 2 (id 1 is invisible) and commits; polls again; is restarted
    // from its committed position while A is still open.
    poll_and_commit(&mut source, &mut committed);
    poll_and_commit(&mut source, &mut committed);
    source = build(&committed);
    poll_and_commit(&mut source, &mut committed);

    // A commits id 1, below the largest id read: the source must still find it.
    ta.commit().unwrap();
    for _ in 0..3 {
        poll_and_commit(&mut source, &mut committed);
    }
    source = build(&committed);
    poll_and_commit(&mut source, &mut committed);
    delivered
}

#[test]
fn postgres_query_modes_read_a_row_committed_after_a_later_id() {
    let Some(server) = PgServer::start_or_skip("postgres_query_reads_late_commit") else {
        return;
    };
    for (table, mode) in [("inc", "incrementing"), ("tsinc", "timestamp+incrementing")] {
        let mut ids = late_commit_scenario(&server, table, mode, None);
        ids.sort();
        assert_eq!(ids, [1, 2], "{mode}: every committed row exactly once");

        // The planted gap (settle at once) loses id 1, every time.
        let planted = format!("{table}_planted");
        let ids = late_commit_scenario(&server, &planted, mode, Some("settle-at-once"));
        assert_eq!(
            ids,
            [2],
            "{mode}: the planted gap must lose the late row in this scenario"
        );
    }
}
