//! A model of producers appending keyed plain and transactional batches, committing and
//! aborting, with compaction passes (time moving past `delete.retention.ms`, so emptied
//! transactions' markers go), rolls and reopens with or without producer snapshots:
//! read_committed readers (the record iterator and a consumer over fetches with their
//! aborted-transaction lists) never see an aborted or undecided record, the newest committed
//! record of each key below the last stable offset survives, read_uncommitted readers see
//! only records that were written, and a reopen (replaying the compacted log when the
//! snapshots are gone) shows read_committed readers exactly what they saw before.

use crate::common::consumer;
use crate::common::producers;
use crate::common::sim_log;

use std::collections::BTreeMap;

use producers::keyed_batch;
use proptest::prelude::*;
use sim_log::T0;
use streamlog::io::SimFs;
use streamlog::{Log, LogConfig, TxnResult};

const PRODUCERS: i64 = 3;
const KEYS: usize = 4;
const DELETE_RETENTION_MS: i64 = 1_000;

#[derive(Debug, Clone)]
enum Op {
    Append {
        pid: i64,
        key: usize,
        n: usize,
        txn: bool,
    },
    Marker {
        pid: i64,
        commit: bool,
    },
    Plain {
        key: usize,
    },
    Roll,
    Compact {
        advance_ms: i64,
    },
    Reopen {
        keep_snapshots: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..PRODUCERS, 0..KEYS, 1..3usize, any::<bool>())
            .prop_map(|(pid, key, n, txn)| Op::Append { pid, key, n, txn }),
        3 => (0..PRODUCERS, any::<bool>()).prop_map(|(pid, commit)| Op::Marker { pid, commit }),
        2 => (0..KEYS).prop_map(|key| Op::Plain { key }),
        2 => Just(Op::Roll),
        3 => (0..1_500i64).prop_map(|advance_ms| Op::Compact { advance_ms }),
        1 => any::<bool>().prop_map(|keep_snapshots| Op::Reopen { keep_snapshots }),
    ]
}

/// What the model knows of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Non-transactional, or its transaction committed.
    Visible,
    Aborted,
    Open,
}

#[derive(Debug, Clone)]
struct Rec {
    key: usize,
    pid: i64,
    fate: Fate,
}

#[derive(Default)]
struct Model {
    /// Every record ever written, by offset.
    records: BTreeMap<i64, Rec>,
    next_seq: [i32; PRODUCERS as usize],
}

impl Model {
    fn open_txn(&self, pid: i64) -> bool {
        self.records
            .values()
            .any(|r| r.pid == pid && r.fate == Fate::Open)
    }
    fn decide(&mut self, pid: i64, commit: bool) {
        for r in self.records.values_mut() {
            if r.pid == pid && r.fate == Fate::Open {
                r.fate = if commit { Fate::Visible } else { Fate::Aborted };
            }
        }
    }
}

fn value(offset: i64) -> String {
    format!("o{offset}")
}

fn key(k: usize) -> String {
    format!("k{k}")
}

fn batch(first: i64, pid: i64, seq: i32, txn: bool, keys: &[usize]) -> Vec<u8> {
    let records: Vec<(String, String)> = keys
        .iter()
        .zip(first..)
        .map(|(k, offset)| (key(*k), value(offset)))
        .collect();
    keyed_batch(pid, seq, txn, &records)
}

fn config() -> LogConfig {
    sim_log::rolling(300)
        .to_builder()
        .delete_retention_ms(DELETE_RETENTION_MS)
        .build()
        .unwrap()
}

/// Offsets of the data records an iterator yields (markers have no `o…` value).
fn offsets(iter: impl Iterator<Item = streamlog::Result<streamlog::LogRecord>>) -> Vec<i64> {
    iter.map(|r| r.unwrap())
        .filter(|r| r.value().is_some_and(|v| v.starts_with(b"o")))
        .map(|r| {
            assert_eq!(r.value(), Some(value(r.offset()).as_bytes()));
            r.offset()
        })
        .collect()
}

/// What read_committed readers see now: (LSO, offsets), after checking it against the model.
fn check(log: &Log, model: &Model) -> (i64, Vec<i64>) {
    let hw = log.log_end_offset();
    let lso = log.last_stable_offset();
    let start = log.log_start_offset();
    let all = offsets(log.records_from(start));
    for o in &all {
        assert!(
            model.records.contains_key(o),
            "read_uncommitted: {o} never written"
        );
    }
    let committed = offsets(log.records_committed(start));
    for o in &committed {
        let r = &model.records[o];
        assert!(*o < lso, "read_committed past the LSO {lso}: {o}");
        assert_eq!(r.fate, Fate::Visible, "read_committed shows {o}: {r:?}");
    }
    let consumed: Vec<i64> = consumer::consume_committed(log, hw, lso)
        .iter()
        .map(|r| r.offset)
        .collect();
    assert_eq!(consumed, committed, "consumer over fetch");
    // The newest visible record of each key below the LSO survives compaction.
    let mut newest: BTreeMap<usize, i64> = BTreeMap::new();
    for (&o, r) in model.records.range(..lso) {
        if r.fate == Fate::Visible {
            newest.insert(r.key, o);
        }
    }
    for (k, o) in newest {
        assert!(
            committed.contains(&o),
            "newest record {o} of key {k} is gone"
        );
    }
    (lso, committed)
}

fn run(ops: Vec<Op>) {
    let fs = SimFs::new(11);
    let (mut log, _) = sim_log::open(&fs, &config(), "open");
    let mut model = Model::default();
    let mut now = T0;
    for op in ops {
        match op {
            Op::Append { pid, key, n, txn } => {
                let txn = txn || model.open_txn(pid);
                let first = log.log_end_offset();
                let keys: Vec<usize> = (0..n).map(|i| (key + i) % KEYS).collect();
                let seq = &mut model.next_seq[pid as usize];
                let info = log.append(&batch(first, pid, *seq, txn, &keys)).unwrap();
                assert!(!info.duplicate);
                assert_eq!(info.first_offset, first);
                *seq += n as i32;
                for (i, &key) in keys.iter().enumerate() {
                    let fate = if txn { Fate::Open } else { Fate::Visible };
                    model
                        .records
                        .insert(first + i as i64, Rec { key, pid, fate });
                }
            }
            Op::Marker { pid, commit } => {
                let result = if commit {
                    TxnResult::Commit
                } else {
                    TxnResult::Abort
                };
                log.write_txn_marker(pid, 0, result, 0).unwrap();
                model.decide(pid, commit);
            }
            Op::Plain { key } => {
                let first = log.log_end_offset();
                log.append(&batch(first, -1, 0, false, &[key])).unwrap();
                let fate = Fate::Visible;
                model.records.insert(first, Rec { key, pid: -1, fate });
            }
            Op::Roll => {
                log.roll().unwrap();
            }
            Op::Compact { advance_ms } => {
                now += advance_ms;
                // Sealed first, so the pass has the newest records to clean.
                log.roll().unwrap();
                log.compact(log.log_end_offset(), now).unwrap();
            }
            Op::Reopen { keep_snapshots } => {
                let before = check(&log, &model);
                log.close().unwrap();
                if !keep_snapshots {
                    use streamlog::io::FileSystem;
                    for p in fs.list(sim_log::dir()).unwrap() {
                        if p.extension().is_some_and(|x| x == "snapshot") {
                            fs.remove(&sim_log::dir().join(p)).unwrap();
                        }
                    }
                }
                log = sim_log::open(&fs, &config(), "reopen").0;
                assert_eq!(
                    check(&log, &model),
                    before,
                    "reopen changed what readers see"
                );
            }
        }
        check(&log, &model);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn compaction_keeps_read_committed_consistent(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops);
    }
}

/// Found by the model: markers of empty transactions, removed past their horizon, while an
/// earlier aborted transaction's entry still named the producer.
#[test]
fn removed_markers_keep_aborted_ranges_closed() {
    use Op::*;
    let append = |txn| Append {
        pid: 0,
        key: 0,
        n: 1,
        txn,
    };
    let marker = |commit| Marker { pid: 0, commit };
    let compact = |advance_ms| Compact { advance_ms };
    run(vec![
        append(false),
        append(false),
        append(false),
        append(false),
        append(true),
        append(false),
        marker(false),
        append(true),
        marker(true),
        compact(0),
        marker(false),
        compact(0),
        compact(202),
        marker(false),
        compact(798),
    ]);
}
