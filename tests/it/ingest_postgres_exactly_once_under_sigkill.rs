//! The PostgreSQL source under fire: writer threads run concurrent transactions that insert,
//! update and delete rows of a shared key space (some roll back, and they commit in another
//! order than they began), while `streamlog ingest --config agent.toml` is SIGKILLed and
//! restarted. At the end every committed change is in the topic exactly once, in commit
//! order per key, none missed.
//!
//! For CDC the table already holds `SNAPSHOT_ROWS` rows when the writers and the first agent
//! start, so the agent begins with its initial snapshot (read in small chunks) while the
//! writers change rows on both sides of where it is reading; the first kills land in the
//! middle of the snapshot (the committed positions after the kill say whether it did; a run
//! where none did says so loudly), the later ones once the slot has moved, in the stream. Each key's topic history must be: the row as the snapshot read it (if it existed
//! then), then exactly the committed changes after that version, in order.
//!
//! The same for the query modes, which see row states rather than changes: `incrementing`
//! (inserts only; some transactions hold their new ids open while later ids commit, Kafka
//! Connect's gap) must deliver every committed row exactly once; `timestamp+incrementing`
//! (inserts and updates stamped with `clock_timestamp()`) must deliver each key's versions
//! in commit order, none twice, ending with the row's final state.
//!
//! The truth is an audit table filled by a trigger in the same transactions (not published):
//! writes to one key are serialised by its row lock, so the audit's sequence orders each
//! key's changes as they committed. Each kill round waits (at most 60 s) until the agent has
//! committed since it started (CDC: the later rounds, until its slot has moved), then lets it
//! run a random 0-150 ms more (0-20 ms in the snapshot):
//! every kill hits an agent that is reading and committing. One seed drives the writers'
//! choices and the kill times (printed; replay with `STREAMLOG_SIM_SEED=N`; the interleaving
//! of the threads is the machine's). Bounded: every agent run is killed or waited for with a
//! deadline (and killed if the test fails midway), and the server is stopped when the test
//! ends.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use streamlog::storage::{Storage, StorageConfig};

use crate::common::ingest::spawn_agent;
use crate::common::postgres::PgServer;
use crate::common::rng::Rng;

const TOPIC: &str = "accounts";
const KEYS: u64 = 40;
const WRITERS: u64 = 4;
const KILL_ROUNDS: usize = 5;
const MAX_TXNS_PER_WRITER: u64 = 2_000;
const PATIENCE: Duration = Duration::from_secs(60);
/// Rows in the CDC table before the slot exists (ids 0..SNAPSHOT_ROWS).
const SNAPSHOT_ROWS: u64 = 3_000;
/// Rows per snapshot query: many chunks, so kills land between them.
const SNAPSHOT_CHUNK: u64 = 20;
/// CDC rounds killed in the snapshot (the rest in the stream).
const MID_SNAPSHOT_ROUNDS: usize = 2;

/// One change of one key: the op and the new value (`None` for a delete).
type Change = (String, Option<i64>);

/// The slot's confirmed flush LSN, `None` while there is no slot or it has confirmed
/// nothing yet.
fn slot_lsn(db: &mut postgres::Client) -> Option<String> {
    db.query_opt(
        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'streamlog_accounts'",
        &[],
    )
    .unwrap()
    // NULL until the slot first confirms a position (a fresh slot's value).
    .and_then(|r| r.get::<_, Option<String>>(0))
}

/// The bytes of the positions topic's segments (they change only when positions are
/// appended: the agent is committing).
fn positions_len(data: &Path) -> u64 {
    std::fs::read_dir(data.join("__ingest_positions-0")).map_or(0, |entries| {
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    })
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + PATIENCE;
    while !done() {
        if Instant::now() >= end {
            eprintln!("timed out waiting for {what}");
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Upserts and deletes of ids 0..KEYS (CDC).
    Changes,
    /// Inserts with ids from the table's sequence (`incrementing`).
    Inserts,
    /// Inserts, and updates that restamp `ts` (`timestamp+incrementing`).
    InsertsAndUpdates,
}

/// Runs transactions until `stop` (or the cap): each changes 1-4 keys in key order (no
/// deadlocks), sometimes holds the transaction open a moment, and commits or rolls back.
fn writer(
    server_conninfo: String,
    seed: u64,
    stop: Arc<AtomicBool>,
    txns: Arc<AtomicU64>,
    workload: Workload,
) {
    let mut db = postgres::Client::connect(&server_conninfo, postgres::NoTls).unwrap();
    let mut rng = Rng(seed);
    for _ in 0..MAX_TXNS_PER_WRITER {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        // CDC: half the keys from a few hot ones (many changes per key), half from the whole
        // snapshot range and past it (changes on both sides of where the snapshot reads).
        let mut keys: Vec<i32> = (0..1 + rng.below(4))
            .map(|_| match workload == Workload::Changes && rng.chance(50) {
                true => rng.below(SNAPSHOT_ROWS + KEYS) as i32,
                false => rng.below(KEYS) as i32,
            })
            .collect();
        keys.sort();
        keys.dedup();
        let mut t = db.transaction().unwrap();
        if workload != Workload::Changes {
            for id in keys {
                if workload == Workload::Inserts || rng.chance(50) {
                    t.execute("INSERT INTO accounts (v) VALUES (nextval('vals'))", &[])
                        .unwrap();
                } else {
                    let id = i64::from(id) + 1;
                    t.execute(
                        "UPDATE accounts SET v = nextval('vals'), ts = clock_timestamp() WHERE id = $1",
                        &[&id],
                    )
                    .unwrap();
                }
            }
            // Now and then a transaction holds its ids across the agent's next polls.
            if rng.chance(5) {
                t.batch_execute("SELECT pg_sleep(0.3)").unwrap();
            }
            if rng.chance(15) {
                t.rollback().unwrap();
            } else {
                t.commit().unwrap();
                txns.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        for id in keys {
            let id = i64::from(id);
            if rng.chance(25) {
                t.execute("DELETE FROM accounts WHERE id = $1", &[&id])
                    .unwrap();
            } else {
                t.execute(
                    "INSERT INTO accounts VALUES ($1, nextval('vals')) \
                     ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v",
                    &[&id],
                )
                .unwrap();
            }
        }
        if rng.chance(20) {
            // Held open while the other writers commit: commits out of begin order.
            t.batch_execute("SELECT pg_sleep(0.005)").unwrap();
        }
        if rng.chance(15) {
            t.rollback().unwrap();
        } else {
            t.commit().unwrap();
            txns.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Each key's committed changes in the topic, in offset order.
fn topic_changes(data: &Path) -> BTreeMap<i64, Vec<Change>> {
    let storage = Storage::open(data, StorageConfig::default()).unwrap();
    let mut out: BTreeMap<i64, Vec<Change>> = BTreeMap::new();
    for p in 0..storage.partition_count(TOPIC).unwrap() {
        let log = storage.partition(TOPIC, p).unwrap();
        for r in log.records_committed(0) {
            let r = r.unwrap();
            let key: serde_json::Value = serde_json::from_slice(r.key().unwrap()).unwrap();
            let op = r
                .headers()
                .find(|h| h.key == b"op")
                .map(|h| String::from_utf8_lossy(h.value.unwrap()).into_owned())
                .unwrap();
            let v = r.value().map(|v| {
                let row: serde_json::Value = serde_json::from_slice(v).unwrap();
                assert_eq!(row["id"], key["id"]);
                row["v"].as_i64().unwrap()
            });
            out.entry(key["id"].as_i64().unwrap())
                .or_default()
                .push((op, v));
        }
    }
    storage.close().unwrap();
    out
}

/// Each key's committed changes according to the audit table.
fn audit_changes(db: &mut postgres::Client) -> BTreeMap<i64, Vec<Change>> {
    let mut out: BTreeMap<i64, Vec<Change>> = BTreeMap::new();
    for row in db
        .query("SELECT id, op, v FROM audit ORDER BY seq", &[])
        .unwrap()
    {
        let id: i64 = row.get(0);
        let op: String = row.get(1);
        let v: Option<i64> = row.get(2);
        out.entry(id).or_default().push((op, v));
    }
    out
}

/// Whether the source's committed positions say its snapshot is under way (read in part).
fn mid_snapshot(data: &Path) -> bool {
    let storage = Storage::open(data, StorageConfig::default()).unwrap();
    let committed = streamlog::ingest::load_committed(&storage).unwrap();
    storage.close().unwrap();
    committed
        .get("accounts")
        .and_then(|p| p.get(b"snapshot".as_slice()))
        .is_some_and(|v| {
            let v: serde_json::Value = serde_json::from_slice(v).unwrap();
            v["done"] == false
        })
}

/// Checks one key's topic history against the committed changes (CDC): the row as the
/// snapshot read it, if it existed then, followed by exactly the changes after that version.
fn check_cdc_key(seed: u64, id: i64, have: &[Change], want: &[Change]) -> usize {
    let (reads, rest) = match have.first() {
        Some((op, v)) if op == "read" => {
            // The version the snapshot read (values are unique: from a sequence).
            let at = want
                .iter()
                .position(|(op, w)| op != "delete" && w == v)
                .unwrap_or_else(|| {
                    panic!(
                        "seed {seed}: key {id}: the snapshot read {v:?}, never committed: {want:?}"
                    )
                });
            (1, &want[at + 1..])
        }
        _ => {
            let at = want.len().checked_sub(have.len()).unwrap_or_else(|| {
                panic!("seed {seed}: key {id}: more changes than committed: {have:?} vs {want:?}")
            });
            // The row did not exist when its snapshot was read (or before the stream).
            assert!(
                at == 0 || want[at - 1].0 == "delete",
                "seed {seed}: key {id}: the snapshot missed the row (it existed as {:?}): {have:?} vs {want:?}",
                want[at - 1]
            );
            (0, &want[at..])
        }
    };
    assert_eq!(
        &have[reads..],
        rest,
        "seed {seed}: key {id}: topic changes differ from the committed ones (all: {want:?})"
    );
    reads
}

pub fn exactly_once_under_sigkill(mode_lines: &str, test: &str, workload: Workload) {
    exactly_once_under_sigkill_with(mode_lines, test, workload, "");
}

pub fn exactly_once_under_sigkill_with(
    mode_lines: &str,
    test: &str,
    workload: Workload,
    planted_bug: &str,
) {
    let Some(server) = PgServer::start_or_skip(test) else {
        return;
    };
    let seed: u64 = std::env::var("STREAMLOG_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                % 1_000_000
        });
    println!("{test} seed {seed} (replay with STREAMLOG_SIM_SEED={seed})");
    let mut rng = Rng(seed);
    let mut db = server.client();
    db.batch_execute(
        "CREATE SEQUENCE vals;
         CREATE SEQUENCE ids;
         CREATE TABLE accounts (id bigint PRIMARY KEY DEFAULT nextval('ids'), v bigint NOT NULL,
                                ts timestamptz NOT NULL DEFAULT clock_timestamp());
         CREATE TABLE audit (seq bigserial PRIMARY KEY, id bigint NOT NULL, op text NOT NULL, v bigint);
         CREATE FUNCTION audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF TG_OP = 'DELETE' THEN
             INSERT INTO audit (id, op, v) VALUES (OLD.id, 'delete', NULL);
           ELSE
             INSERT INTO audit (id, op, v) VALUES (NEW.id, lower(TG_OP), NEW.v);
           END IF;
           RETURN NULL;
         END $$;
         CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON accounts
           FOR EACH ROW EXECUTE FUNCTION audit_row();",
    )
    .unwrap();
    if workload == Workload::Changes {
        db.batch_execute(&format!(
            "INSERT INTO accounts (id, v) SELECT g, nextval('vals') FROM generate_series(0, {}) g",
            SNAPSHOT_ROWS - 1
        ))
        .unwrap();
    }

    let root = server.path().join("agent");
    std::fs::create_dir_all(&root).unwrap();
    let data = root.join("data");
    let config = root.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\nlinger_ms = 20\nstatus_interval_s = 0\nmaintenance_interval_s = 0\n\n\
             [[source]]\ntype = \"postgres\"\nname = \"accounts\"\ntopic = \"{TOPIC}\"\npartitions = 3\n\
             conninfo = \"{}\"\ntables = [\"public.accounts\"]\nsnapshot_chunk_rows = {SNAPSHOT_CHUNK}\n\
             {mode_lines}\n{}",
            server.conninfo(),
            match planted_bug {
                "" => String::new(),
                bug => format!("test_planted_bug = \"{bug}\"\n"),
            }
        ),
    )
    .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let txns = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (conninfo, stop, txns) = (server.conninfo(), Arc::clone(&stop), Arc::clone(&txns));
            std::thread::spawn(move || {
                writer(conninfo, seed ^ ((w + 1) * 0x9e37), stop, txns, workload)
            })
        })
        .collect();

    // CDC: the writers run while the first agent creates its slot and reads its snapshot.
    let mut rounds_committing = 0;
    let mut mid_snapshot_kills = 0;
    for round in 0..KILL_ROUNDS {
        let mut agent = spawn_agent(&config, &root.join(format!("agent-{round}.log")), false);
        // Positions are appended only when the agent commits (records, snapshot progress,
        // or the slot's LSN). CDC's first rounds are killed soon after a commit, in the
        // snapshot; the later ones once the slot has moved (it moves only after the
        // snapshot, when streamed changes are committed), in the stream.
        let start = (positions_len(&data), slot_lsn(&mut db));
        let streaming = workload == Workload::Changes && round >= MID_SNAPSHOT_ROUNDS;
        if wait_until("the agent to commit", || {
            let moved = match streaming {
                true => slot_lsn(&mut db) != start.1,
                false => positions_len(&data) != start.0,
            };
            moved || agent.try_wait().unwrap().is_some()
        }) && agent.try_wait().unwrap().is_none()
        {
            rounds_committing += 1;
        }
        let pause = match workload == Workload::Changes && !streaming {
            true => rng.below(20),
            false => rng.below(150),
        };
        std::thread::sleep(Duration::from_millis(pause));
        agent.kill_now(); // SIGKILL
        if workload == Workload::Changes && mid_snapshot(&data) {
            mid_snapshot_kills += 1;
        }
    }
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    let committed_txns = txns.load(Ordering::Relaxed);
    assert_eq!(
        rounds_committing,
        KILL_ROUNDS,
        "seed {seed}: some round never saw the agent commit; last log:\n{}",
        std::fs::read_to_string(root.join(format!("agent-{}.log", KILL_ROUNDS - 1)))
            .unwrap_or_default()
    );

    // The last agent catches up and stops by itself.
    let log = root.join("agent-final.log");
    let mut agent = spawn_agent(&config, &log, true);
    let Some(status) = agent.wait_until(Instant::now() + Duration::from_secs(120)) else {
        panic!(
            "the final agent did not finish: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    };
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    let expected = audit_changes(&mut db);
    let got = topic_changes(&data);
    let total: usize = expected.values().map(Vec::len).sum();
    assert!(total > 0 && committed_txns > 0);
    let mut snapshot_reads = 0;
    for (id, want) in &expected {
        let have = got.get(id).cloned().unwrap_or_default();
        match workload {
            Workload::Changes => snapshot_reads += check_cdc_key(seed, *id, &have, want),
            Workload::Inserts => {
                let want: Vec<Change> = want.iter().map(|(_, v)| ("upsert".into(), *v)).collect();
                assert_eq!(
                    have, want,
                    "seed {seed}: key {id}: committed row missing or repeated"
                );
            }
            Workload::InsertsAndUpdates => {
                // Row states: a subsequence of the committed versions, ending with the last.
                let versions: Vec<Option<i64>> = want.iter().map(|(_, v)| *v).collect();
                let mut rest = versions.iter();
                for (op, v) in &have {
                    assert_eq!(op, "upsert");
                    assert!(
                        rest.any(|w| w == v),
                        "seed {seed}: key {id}: {have:?} is not in commit order within {versions:?} (or repeats)"
                    );
                }
                assert_eq!(
                    have.last().map(|(_, v)| *v),
                    versions.last().copied(),
                    "seed {seed}: key {id}: the final state is missing"
                );
            }
        }
    }
    let unknown: Vec<_> = got
        .iter()
        .filter(|(id, _)| !expected.contains_key(id))
        .take(5)
        .collect();
    assert!(
        unknown.is_empty(),
        "seed {seed}: keys never changed appear: {unknown:?}"
    );
    if workload == Workload::Changes {
        // Timing decides where a kill lands (on a loaded machine the snapshot may end before
        // the first kill): said loudly, not failed.
        if mid_snapshot_kills == 0 {
            eprintln!("{test}: seed {seed}: WARNING: no kill landed in the middle of the snapshot");
        }
        assert!(snapshot_reads > 0, "seed {seed}: the snapshot read nothing");
    }
    println!(
        "{test}: seed {seed}, {KILL_ROUNDS} kill rounds (each after a commit; {mid_snapshot_kills} mid-snapshot), {committed_txns} committed transactions, {total} changes ({snapshot_reads} rows read by the snapshot), each once in commit order"
    );
}

#[test]
fn postgres_cdc_exactly_once_under_sigkill() {
    exactly_once_under_sigkill(
        "",
        "postgres_cdc_exactly_once_under_sigkill",
        Workload::Changes,
    );
}

#[test]
fn postgres_incrementing_query_misses_no_late_commit_under_sigkill() {
    exactly_once_under_sigkill(
        "mode = \"incrementing\"",
        "postgres_incrementing_query_misses_no_late_commit_under_sigkill",
        Workload::Inserts,
    );
}

#[test]
fn postgres_timestamp_query_keeps_commit_order_under_sigkill() {
    exactly_once_under_sigkill(
        "mode = \"timestamp+incrementing\"\ntimestamp_column = \"ts\"",
        "postgres_timestamp_query_keeps_commit_order_under_sigkill",
        Workload::InsertsAndUpdates,
    );
}

/// The test catches a planted bug (`bug`, the source's `test_planted_bug` switch) by its
/// per-key check. Not in the default run (a full scenario each, ~40 s in debug): run them
/// with `cargo test --all-features --test it sigkill_test_catches -- --ignored`.
fn catches_planted_bug(bug: &str, test: &str) {
    if crate::common::postgres::bin_dir().is_none() && !crate::common::postgres::required() {
        eprintln!("{test}: SKIPPED: PostgreSQL's initdb not found");
        return;
    }
    let caught = std::panic::catch_unwind(|| {
        exactly_once_under_sigkill_with("", test, Workload::Changes, bug)
    });
    let message = match caught {
        Ok(()) => panic!("{test}: the planted bug {bug:?} went unnoticed"),
        Err(e) => e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
    };
    assert!(
        message.contains(": key "),
        "{test}: the run failed, but not by the per-key check: {message}"
    );
}

/// Planted: the slot advanced as soon as changes are read, before the agent's commit; a
/// kill in between loses them (the stream rounds kill while transactions are in flight).
#[test]
#[ignore = "a planted bug: run by hand, see catches_planted_bug"]
fn postgres_cdc_sigkill_test_catches_slot_advanced_before_commit() {
    catches_planted_bug(
        "advance-before-commit",
        "postgres_cdc_sigkill_test_catches_slot_advanced_before_commit",
    );
}

/// Planted: a snapshot interrupted by a kill starts over instead of resuming, sending
/// again rows consumers have seen.
#[test]
#[ignore = "a planted bug: run by hand, see catches_planted_bug"]
fn postgres_cdc_sigkill_test_catches_snapshot_restarted_after_kill() {
    catches_planted_bug(
        "snapshot-restart",
        "postgres_cdc_sigkill_test_catches_snapshot_restarted_after_kill",
    );
}
