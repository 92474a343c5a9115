//! The PostgreSQL CDC source against a real server: inserts and updates become JSON rows
//! keyed by primary key, deletes tombstones (a key change both), in commit order; the server
//! going away and coming back is reported and retried with nothing lost or repeated; a
//! restarted agent resumes after its committed LSN. An idle source's heartbeat moves its
//! slot past WAL written only for other tables.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use streamlog::ingest::postgres::PostgresSourceConfig;
use streamlog::ingest::{Agent, AgentSettings, RunningAgent, SourceMetrics};
use streamlog::storage::{Storage, StorageConfig};

use crate::common::postgres::PgServer;

const TOPIC: &str = "items-cdc";
const PATIENCE: Duration = Duration::from_secs(60);

/// (key, value, op header) of every committed record, in offset order.
fn committed(storage: &Storage) -> Vec<(Value, Option<Value>, String)> {
    let log = storage.partition(TOPIC, 0).unwrap();
    log.records_committed(0)
        .map(|r| {
            let r = r.unwrap();
            let op = r
                .headers()
                .find(|h| h.key == b"op")
                .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
                .unwrap_or_default();
            (
                serde_json::from_slice(r.key().unwrap()).unwrap(),
                r.value().map(|v| serde_json::from_slice(v).unwrap()),
                op,
            )
        })
        .collect()
}

fn start(storage: &Arc<Storage>, server: &PgServer) -> RunningAgent {
    start_with(storage, server, |_| {})
}

fn start_with(
    storage: &Arc<Storage>,
    server: &PgServer,
    tweak: impl FnOnce(&mut PostgresSourceConfig),
) -> RunningAgent {
    let mut settings = AgentSettings::default();
    settings.linger = Duration::from_millis(20);
    settings.retry_backoff = Duration::from_millis(50);
    let mut agent = Agent::new(Arc::clone(storage), settings).unwrap();
    let mut config =
        PostgresSourceConfig::new("items", TOPIC, &server.conninfo(), &["public.items"]);
    tweak(&mut config);
    agent.add_postgres_source(config).unwrap();
    agent.start().unwrap()
}

fn wait_for(running: &RunningAgent, records: u64, server: &PgServer) {
    assert!(
        running.wait_for_records("items", records, PATIENCE),
        "{}\nserver log:\n{}",
        running.status_line(),
        server.log()
    );
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn slot_exists(server: &PgServer) -> bool {
    server
        .client()
        .query_opt(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = 'streamlog_items'",
            &[],
        )
        .unwrap()
        .is_some()
}

#[test]
fn postgres_cdc_mirrors_table_and_survives_server_restart() {
    let Some(server) = PgServer::start_or_skip("postgres_cdc_mirrors_table") else {
        return;
    };
    let mut db = server.client();
    db.batch_execute(
        "CREATE TABLE items (id int PRIMARY KEY, note text, n bigint, ok bool, doc jsonb)",
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let storage = Arc::new(Storage::open(data.path(), StorageConfig::default()).unwrap());
    let running = start(&storage, &server);
    wait_until("the replication slot", || slot_exists(&server));
    // The (empty) initial snapshot is read: what follows comes from the stream.
    wait_until("the snapshot", || running.is_idle(2));

    db.batch_execute(
        "BEGIN;
         INSERT INTO items VALUES (1, 'one', 10, true, '{\"a\": 1}'), (2, 'two', 20, false, NULL);
         INSERT INTO items VALUES (3, 'three', 30, NULL, '[1, 2]');
         COMMIT;
         BEGIN;
         UPDATE items SET n = 21 WHERE id = 2;
         DELETE FROM items WHERE id = 3;
         UPDATE items SET id = 10 WHERE id = 1;
         COMMIT;
         BEGIN; INSERT INTO items VALUES (99, 'rolled back', 0, true, NULL); ROLLBACK;",
    )
    .unwrap();
    wait_for(&running, 7, &server);
    let row = |id: i64, note: &str, n: i64, ok: Value, doc: Value| {
        Some(json!({"id": id, "note": note, "n": n, "ok": ok, "doc": doc}))
    };
    let mut expected = vec![
        (
            json!({"id": 1}),
            row(1, "one", 10, json!(true), json!({"a": 1})),
            "insert",
        ),
        (
            json!({"id": 2}),
            row(2, "two", 20, json!(false), Value::Null),
            "insert",
        ),
        (
            json!({"id": 3}),
            row(3, "three", 30, Value::Null, json!([1, 2])),
            "insert",
        ),
        (
            json!({"id": 2}),
            row(2, "two", 21, json!(false), Value::Null),
            "update",
        ),
        (json!({"id": 3}), None, "delete"),
        (json!({"id": 1}), None, "delete"),
        (
            json!({"id": 10}),
            row(10, "one", 10, json!(true), json!({"a": 1})),
            "update",
        ),
    ];
    let as_owned = |e: &[(Value, Option<Value>, &str)]| -> Vec<(Value, Option<Value>, String)> {
        e.iter()
            .map(|(k, v, op)| (k.clone(), v.clone(), op.to_string()))
            .collect()
    };
    assert_eq!(committed(&storage), as_owned(&expected));

    // The server goes away: the source reports it (errors counted) and retries.
    let metrics: Arc<SourceMetrics> = Arc::clone(&running.status()[0].1);
    let errors_before = SourceMetrics::get(&metrics.errors);
    server.stop();
    wait_until("the source to report the lost server", || {
        SourceMetrics::get(&metrics.errors) > errors_before
    });
    assert!(metrics.last_error.lock().is_some());
    server.start();
    let mut db = server.client();
    db.batch_execute("INSERT INTO items VALUES (4, 'four', 40, true, NULL)")
        .unwrap();
    wait_for(&running, 8, &server);
    expected.push((
        json!({"id": 4}),
        row(4, "four", 40, json!(true), Value::Null),
        "insert",
    ));
    assert_eq!(committed(&storage), as_owned(&expected));
    running.shutdown().unwrap();

    // A restarted agent reads nothing twice.
    db.batch_execute("UPDATE items SET note = 'FOUR' WHERE id = 4")
        .unwrap();
    let running = start(&storage, &server);
    wait_for(&running, 1, &server);
    expected.push((
        json!({"id": 4}),
        row(4, "FOUR", 40, json!(true), Value::Null),
        "update",
    ));
    assert_eq!(committed(&storage), as_owned(&expected));
    // The slot was advanced past what is committed: the lag is what the server wrote since.
    let lag = SourceMetrics::get(&running.status()[0].1.slot_lag_bytes);
    running.shutdown().unwrap();
    let slot_lsn: String = server
        .client()
        .query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'streamlog_items'",
            &[],
        )
        .unwrap()
        .get(0);
    let committed_lsn =
        streamlog::ingest::load_committed(&storage).unwrap()["items"][b"lsn".as_slice()].clone();
    assert_eq!(slot_lsn.as_bytes(), committed_lsn.as_slice());
    assert!(lag < 1 << 20, "slot lag {lag}");
}

#[test]
fn postgres_cdc_heartbeat_advances_slot_while_only_other_tables_change() {
    let Some(server) = PgServer::start_or_skip("postgres_cdc_heartbeat") else {
        return;
    };
    let mut db = server.client();
    db.batch_execute(
        "CREATE TABLE items (id int PRIMARY KEY, note text);
         CREATE TABLE other (id int PRIMARY KEY, pad text);",
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let storage = Arc::new(Storage::open(data.path(), StorageConfig::default()).unwrap());
    let running = start_with(&storage, &server, |c| c.heartbeat_interval_ms = 20);
    wait_until("the replication slot", || slot_exists(&server));
    // The (empty) initial snapshot is read: what follows comes from the stream.
    wait_until("the snapshot", || running.is_idle(2));
    let confirmed = |db: &mut postgres::Client| -> String {
        db.query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'streamlog_items'",
            &[],
        )
        .unwrap()
        .get(0)
    };
    let before = confirmed(&mut db);

    // Only the unrelated table is written: about 1.5 MB of WAL nothing of ours is in.
    db.batch_execute(
        "INSERT INTO other SELECT g, repeat('x', 100) FROM generate_series(1, 10000) g",
    )
    .unwrap();
    let written: String = db
        .query_one("SELECT pg_current_wal_flush_lsn()::text", &[])
        .unwrap()
        .get(0);
    wait_until("the slot to pass the other table's WAL", || {
        db.query_one(
            "SELECT confirmed_flush_lsn >= $1::text::pg_lsn FROM pg_replication_slots \
             WHERE slot_name = 'streamlog_items'",
            &[&written],
        )
        .unwrap()
        .get(0)
    });
    let after = confirmed(&mut db);
    assert_ne!(before, after);
    assert!(committed(&storage).is_empty(), "nothing of ours changed");

    // Our table's changes after the heartbeat are still captured, once.
    db.batch_execute("INSERT INTO items VALUES (1, 'one')")
        .unwrap();
    wait_for(&running, 1, &server);
    running.shutdown().unwrap();
    assert_eq!(
        committed(&storage),
        vec![(
            json!({"id": 1}),
            Some(json!({"id": 1, "note": "one"})),
            "insert".to_string()
        )]
    );
}

/// Peeking (`stream = false`), a quiet CDC source looks every `poll_interval_ms` but peeks at its slot only when the
/// server's flushed WAL moved since a peek that found nothing (a peek decodes from the
/// slot's restart position every time); a change made while it waits is read on its next
/// look. Counted in polls and peeks, not in time.
#[test]
fn postgres_cdc_quiet_source_peeks_only_when_the_wal_moved() {
    let Some(server) = PgServer::start_or_skip("postgres_cdc_quiet") else {
        return;
    };
    let mut db = server.client();
    db.batch_execute("CREATE TABLE items (id int PRIMARY KEY, note text)")
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let storage = Arc::new(Storage::open(data.path(), StorageConfig::default()).unwrap());
    let running = start_with(&storage, &server, |c| {
        c.stream = false;
        c.poll_interval_ms = Some(10);
        c.heartbeat_interval_ms = 0;
    });
    wait_until("the snapshot", || running.is_idle(2));
    let m = Arc::clone(&running.status()[0].1);
    let (polls, peeks) = (SourceMetrics::get(&m.polls), SourceMetrics::get(&m.peeks));
    const LOOKS: u64 = 40;
    wait_until("quiet polls", || {
        SourceMetrics::get(&m.polls) >= polls + LOOKS
    });
    let quiet_peeks = SourceMetrics::get(&m.peeks) - peeks;
    // Only WAL the server writes on its own (a checkpoint, a standby snapshot) moves it.
    assert!(
        quiet_peeks <= LOOKS / 4,
        "{quiet_peeks} peeks in {LOOKS} quiet polls: the slot is peeked while the WAL stays put"
    );

    db.batch_execute("INSERT INTO items VALUES (1, 'one')")
        .unwrap();
    wait_for(&running, 1, &server);
    assert!(SourceMetrics::get(&m.peeks) > peeks + quiet_peeks);
    running.shutdown().unwrap();
    assert_eq!(committed(&storage).len(), 1);
}

/// Streaming (the default), a caught-up CDC source has no timer of its own (heartbeat off):
/// a change is read because the server pushed it and the stream's reader woke the agent,
/// in a bounded number of polls.
#[test]
fn postgres_cdc_stream_reads_a_change_on_the_servers_push() {
    let Some(server) = PgServer::start_or_skip("postgres_cdc_push") else {
        return;
    };
    let mut db = server.client();
    db.batch_execute("CREATE TABLE items (id int PRIMARY KEY, note text)")
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let storage = Arc::new(Storage::open(data.path(), StorageConfig::default()).unwrap());
    let running = start_with(&storage, &server, |c| {
        c.poll_interval_ms = Some(20); // only until the stream has caught up
        c.heartbeat_interval_ms = 0;
    });
    wait_until("the stream to catch up", || running.is_idle(1));
    let m = Arc::clone(&running.status()[0].1);
    let (polls, wakes) = (SourceMetrics::get(&m.polls), SourceMetrics::get(&m.wakes));
    for i in 1..=5u64 {
        db.batch_execute(&format!("INSERT INTO items VALUES ({i}, 'x')"))
            .unwrap();
        wait_for(&running, i, &server);
    }
    let polls = SourceMetrics::get(&m.polls) - polls;
    assert!(
        SourceMetrics::get(&m.wakes) > wakes,
        "never woken by the stream"
    );
    // A change: the wake's poll, one finding nothing, one after the commit, and a few
    // 20 ms looks while a keepalive catches up with the flushed WAL.
    assert!(polls <= 5 * 8, "{polls} polls for 5 changes");
    running.shutdown().unwrap();
    assert_eq!(committed(&storage).len(), 5);
}
