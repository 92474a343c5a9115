//! A model of several producers appending plain and transactional batches, with commits,
//! aborts, retries, truncations, clean reopens and crashes on the simulated filesystem:
//! read_committed readers see exactly the committed (and non-transactional) records below
//! the last stable offset, in log order, never an aborted one; read_uncommitted readers see
//! every record.

#[path = "common/producers.rs"]
mod producers;
#[path = "common/sim_log.rs"]
mod sim_log;

use proptest::prelude::*;
use streamlog::io::SimFs;
use streamlog::{Error, IsolationLevel, Log, LogConfig, TxnResult};

const PRODUCERS: i64 = 3;

#[derive(Debug, Clone)]
enum Op {
    Append { pid: i64, n: usize, txn: bool },
    Retry { pid: i64 },
    Marker { pid: i64, commit: bool },
    Plain { n: usize },
    Flush,
    Truncate { back: usize },
    Reopen,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..PRODUCERS, 1..4usize, any::<bool>()).prop_map(|(pid, n, txn)| Op::Append { pid, n, txn }),
        1 => (0..PRODUCERS).prop_map(|pid| Op::Retry { pid }),
        3 => (0..PRODUCERS, any::<bool>()).prop_map(|(pid, commit)| Op::Marker { pid, commit }),
        1 => (1..3usize).prop_map(|n| Op::Plain { n }),
        1 => Just(Op::Flush),
        1 => (1..4usize).prop_map(|back| Op::Truncate { back }),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
    ]
}

/// One batch in the log, as the model knows it.
#[derive(Debug, Clone)]
enum Entry {
    Data {
        pid: i64,
        seq: i32,
        first: i64,
        n: usize,
        txn: bool,
    },
    Marker {
        pid: i64,
        commit: bool,
        offset: i64,
    },
}

impl Entry {
    fn first(&self) -> i64 {
        match *self {
            Entry::Data { first, .. } => first,
            Entry::Marker { offset, .. } => offset,
        }
    }
    fn end(&self) -> i64 {
        match *self {
            Entry::Data { first, n, .. } => first + n as i64,
            Entry::Marker { offset, .. } => offset + 1,
        }
    }
}

#[derive(Default)]
struct Model {
    entries: Vec<Entry>,
}

impl Model {
    fn end(&self) -> i64 {
        self.entries.last().map_or(0, Entry::end)
    }
    fn next_seq(&self, pid: i64) -> i32 {
        self.entries
            .iter()
            .rev()
            .find_map(|e| match *e {
                Entry::Data { pid: p, seq, n, .. } if p == pid => Some(seq + n as i32),
                _ => None,
            })
            .unwrap_or(0)
    }
    fn last_batch(&self, pid: i64) -> Option<Entry> {
        self.entries
            .iter()
            .rev()
            .find(|e| matches!(e, Entry::Data { pid: p, .. } if *p == pid))
            .cloned()
    }
    /// First offset of `pid`'s open transaction.
    fn open_txn(&self, pid: i64) -> Option<i64> {
        let mut open = None;
        for e in &self.entries {
            match *e {
                Entry::Data {
                    pid: p,
                    txn: true,
                    first,
                    ..
                } if p == pid && open.is_none() => open = Some(first),
                Entry::Marker { pid: p, .. } if p == pid => open = None,
                _ => {}
            }
        }
        open
    }
    fn lso(&self) -> i64 {
        (0..PRODUCERS)
            .filter_map(|p| self.open_txn(p))
            .min()
            .unwrap_or_else(|| self.end())
    }
    fn truncate(&mut self, end: i64) {
        self.entries.retain(|e| e.end() <= end);
        assert_eq!(self.end(), end, "the log was cut inside a batch");
    }
    /// Values of all records, and of those a read_committed reader sees.
    fn expected(&self) -> (Vec<String>, Vec<String>) {
        let lso = self.lso();
        let mut all = Vec::new();
        let mut committed = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            let Entry::Data {
                pid,
                seq,
                first,
                n,
                txn,
            } = *e
            else {
                continue;
            };
            let values: Vec<String> = (0..n)
                .map(|k| {
                    if pid < 0 {
                        format!("plain@{}", first + k as i64)
                    } else {
                        producers::value(pid, seq + k as i32)
                    }
                })
                .collect();
            all.extend(values.iter().cloned());
            if first >= lso {
                continue;
            }
            // A transactional batch is decided by its producer's next marker.
            let visible = !txn
                || self
                    .entries
                    .get(i + 1..)
                    .unwrap_or_default()
                    .iter()
                    .find_map(|m| match *m {
                        Entry::Marker { pid: p, commit, .. } if p == pid => Some(commit),
                        _ => None,
                    })
                    .unwrap_or(false);
            if visible {
                committed.extend(values);
            }
        }
        (all, committed)
    }
}

fn plain_batch(first: i64, n: usize) -> Vec<u8> {
    let mut b = streamlog::BatchBuilder::new(streamlog::BatchOptions::default());
    for k in 0..n {
        let v = format!("plain@{}", first + k as i64);
        b.append(producers::T0, None, Some(v.as_bytes()), &[])
            .unwrap();
    }
    b.build().unwrap()
}

fn values(iter: impl Iterator<Item = streamlog::Result<streamlog::LogRecord>>) -> Vec<String> {
    // Data records have no key here; control records (markers) do, and a consumer drops
    // them at any isolation level.
    iter.map(|r| r.unwrap())
        .filter(|r| r.key().is_none())
        .map(|r| String::from_utf8(r.value().unwrap().to_vec()).unwrap())
        .collect()
}

fn check(log: &Log, model: &Model) {
    let hw = log.log_end_offset();
    assert_eq!(hw, model.end());
    let lso = log.last_stable_offset(hw);
    assert_eq!(lso, model.lso(), "last stable offset");
    let (all, committed) = model.expected();
    assert_eq!(values(log.records_from(0)), all, "read_uncommitted");
    assert_eq!(
        values(log.records_committed(0, hw)),
        committed,
        "read_committed"
    );
    // A read_committed fetch never returns a batch reaching the LSO, and its list of
    // aborted transactions lets a consumer drop exactly the aborted records.
    assert_eq!(
        consume_committed(log, hw, lso),
        committed,
        "consumer over fetch"
    );
}

/// Kafka's consumer over read_committed fetches: aborted transactions become active at
/// their first offset and end at their producer's ABORT marker; control batches and the
/// active aborted producers' transactional batches are dropped.
fn consume_committed(log: &Log, hw: i64, lso: i64) -> Vec<String> {
    use std::collections::HashSet;
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    let mut aborted_producers = HashSet::new();
    let mut pending: Vec<streamlog::AbortedTransaction> = Vec::new();
    while offset < lso {
        let f = log
            .fetch(offset, 200, hw, IsolationLevel::ReadCommitted)
            .unwrap();
        assert_eq!(f.last_stable_offset, Some(lso));
        let Some(slice) = &f.slice else { break };
        assert!(f.next_offset <= lso);
        pending.extend(f.aborted_transactions.clone().unwrap());
        pending.sort_by_key(|t| std::cmp::Reverse(t.first_offset));
        pending.dedup();
        let bytes = slice.to_vec().unwrap();
        for b in streamlog::Batches::new(&bytes) {
            let b = b.unwrap();
            if b.last_offset() < offset {
                continue;
            }
            while pending
                .last()
                .is_some_and(|t| t.first_offset <= b.last_offset())
            {
                aborted_producers.insert(pending.pop().unwrap().producer_id);
            }
            if b.is_control() {
                let kind = b.control_record().unwrap().unwrap().kind;
                if kind == streamlog::ControlRecordType::Abort {
                    aborted_producers.remove(&b.producer_id());
                }
                continue;
            }
            if b.is_transactional() && aborted_producers.contains(&b.producer_id()) {
                continue;
            }
            for r in b.records().unwrap().iter() {
                out.push(String::from_utf8(r.unwrap().value.unwrap().to_vec()).unwrap());
            }
        }
        offset = f.next_offset;
    }
    out
}

fn config() -> LogConfig {
    sim_log::rolling(400)
}

fn run(ops: Vec<Op>) {
    let mut fs = SimFs::new(7);
    let (mut log, _) = sim_log::open(&fs, &config(), "open");
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Append { pid, n, txn } => {
                let seq = model.next_seq(pid);
                let r = log.append(&producers::batch(pid, 0, seq, n, txn));
                if model.open_txn(pid).is_some() && !txn {
                    assert!(matches!(r, Err(Error::InvalidTxnState { .. })), "{r:?}");
                    continue;
                }
                let info = r.unwrap();
                assert_eq!(info.first_offset, model.end());
                model.entries.push(Entry::Data {
                    pid,
                    seq,
                    first: info.first_offset,
                    n,
                    txn,
                });
            }
            Op::Retry { pid } => {
                if let Some(Entry::Data {
                    seq, first, n, txn, ..
                }) = model.last_batch(pid)
                {
                    let info = log.append(&producers::batch(pid, 0, seq, n, txn)).unwrap();
                    assert!(info.duplicate);
                    assert_eq!(info.first_offset, first);
                }
            }
            Op::Marker { pid, commit } => {
                let result = if commit {
                    TxnResult::Commit
                } else {
                    TxnResult::Abort
                };
                let info = log.write_txn_marker(pid, 0, result, 0).unwrap();
                assert_eq!(info.first_offset, model.end());
                model.entries.push(Entry::Marker {
                    pid,
                    commit,
                    offset: info.first_offset,
                });
            }
            Op::Plain { n } => {
                let first = model.end();
                log.append(&plain_batch(first, n)).unwrap();
                model.entries.push(Entry::Data {
                    pid: -1,
                    seq: 0,
                    first,
                    n,
                    txn: false,
                });
            }
            Op::Flush => {
                log.flush().unwrap();
            }
            Op::Truncate { back } => {
                let keep = model.entries.len().saturating_sub(back);
                let to = model.entries.get(keep).map_or(model.end(), Entry::first);
                log.truncate_to(to).unwrap();
                model.truncate(to);
            }
            Op::Reopen => {
                log.close().unwrap();
                log = sim_log::open(&fs, &config(), "reopen").0;
            }
            Op::Crash => {
                let durable = log.recovery_point();
                fs = fs.crash();
                log = sim_log::open(&fs, &config(), "reopen after crash").0;
                assert!(log.log_end_offset() >= durable.min(model.end()));
                model.truncate(log.log_end_offset());
            }
        }
        check(&log, &model);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn read_committed_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops);
    }
}

#[test]
fn aborted_transactions_hidden_across_crash_and_reopen() {
    use Op::*;
    run(vec![
        Append {
            pid: 0,
            n: 2,
            txn: true,
        },
        Append {
            pid: 1,
            n: 1,
            txn: true,
        },
        Plain { n: 1 },
        Marker {
            pid: 0,
            commit: false,
        },
        Append {
            pid: 2,
            n: 2,
            txn: false,
        },
        Flush,
        Crash,
        Marker {
            pid: 1,
            commit: true,
        },
        Append {
            pid: 0,
            n: 1,
            txn: true,
        },
        Reopen,
        Marker {
            pid: 0,
            commit: false,
        },
        Retry { pid: 0 },
        Truncate { back: 2 },
        Marker {
            pid: 0,
            commit: true,
        },
    ]);
}
