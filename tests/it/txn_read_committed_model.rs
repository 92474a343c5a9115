//! A model of several producers appending plain and transactional batches, with commits,
//! aborts, retries, truncations, clean reopens and crashes on the simulated filesystem:
//! read_committed readers see exactly the committed (and non-transactional) records below
//! the last stable offset, in log order, never an aborted one; read_uncommitted readers see
//! every record. DeleteRecords moves the log start offset, forgetting the producers (and
//! their open transactions) whose batches all lie below it.

use crate::common::consumer;
use crate::common::producers;
use crate::common::sim_log;

use proptest::prelude::*;
use streamlog::io::SimFs;
use streamlog::{Error, Log, LogConfig, TxnResult};

const PRODUCERS: i64 = 3;

#[derive(Debug, Clone)]
enum Op {
    Append { pid: i64, n: usize, txn: bool },
    Retry { pid: i64 },
    Marker { pid: i64, commit: bool },
    Plain { n: usize },
    Flush,
    Truncate { back: usize },
    DeleteBefore { back: usize },
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
        1 => (1..6usize).prop_map(|back| Op::DeleteBefore { back }),
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
    /// The log start offset passed all of the producer's batches: the log forgot it.
    Forget {
        pid: i64,
    },
}

impl Entry {
    fn first(&self) -> i64 {
        match *self {
            Entry::Data { first, .. } => first,
            Entry::Marker { offset, .. } => offset,
            Entry::Forget { .. } => i64::MIN,
        }
    }
    fn end(&self) -> i64 {
        match *self {
            Entry::Data { first, n, .. } => first + n as i64,
            Entry::Marker { offset, .. } => offset + 1,
            Entry::Forget { .. } => i64::MIN,
        }
    }
}

#[derive(Default)]
struct Model {
    entries: Vec<Entry>,
    /// The log start offset.
    start: i64,
    /// Where the log ends when it holds no batch (after a full truncation).
    base: i64,
}

impl Model {
    fn end(&self) -> i64 {
        self.entries
            .iter()
            .map(Entry::end)
            .max()
            .unwrap_or(self.base)
            .max(self.base)
    }
    /// First offset of the batch `back` batches from the end (markers count), if any.
    fn batch_back(&self, back: usize) -> Option<i64> {
        let firsts: Vec<i64> = self
            .entries
            .iter()
            .filter(|e| !matches!(e, Entry::Forget { .. }))
            .map(Entry::first)
            .collect();
        firsts.get(firsts.len().checked_sub(back)?).copied()
    }
    /// The sequence the producer's next batch must carry. A forgotten producer starts
    /// again at 0: whether the log still knows it (a marker since, or a reload that
    /// replayed one, makes it known again at its epoch with no batches) or not (any
    /// sequence goes), 0 is taken.
    fn next_seq(&self, pid: i64) -> i32 {
        for e in self.entries.iter().rev() {
            match *e {
                Entry::Data { pid: p, seq, n, .. } if p == pid => return seq + n as i32,
                Entry::Forget { pid: p } if p == pid => return 0,
                _ => {}
            }
        }
        0
    }
    /// The producer's last batch, if the log still knows the producer.
    fn last_batch(&self, pid: i64) -> Option<Entry> {
        self.entries
            .iter()
            .rev()
            .find(
                |e| matches!(e, Entry::Data { pid: p, .. } | Entry::Forget { pid: p } if *p == pid),
            )
            .filter(|e| matches!(e, Entry::Data { .. }))
            .cloned()
    }
    /// First offsets of `pid`'s open transaction's batches, in order.
    fn open_txn_batches(&self, pid: i64) -> Vec<i64> {
        let mut open = Vec::new();
        for e in &self.entries {
            match *e {
                Entry::Data {
                    pid: p,
                    txn: true,
                    first,
                    ..
                } if p == pid => open.push(first),
                Entry::Marker { pid: p, .. } | Entry::Forget { pid: p } if p == pid => open.clear(),
                _ => {}
            }
        }
        open
    }
    /// First offset of `pid`'s open transaction.
    fn open_txn(&self, pid: i64) -> Option<i64> {
        self.open_txn_batches(pid).first().copied()
    }
    /// The range the last stable offset may lie in. A transaction begun below the log start
    /// offset holds the LSO at the log start offset while the log remembers where it began;
    /// rebuilt from the log (a reopen without a snapshot that old, a truncation), the state
    /// knows only its batches at or above the log start, and the LSO may be at the first of
    /// them. Both are right: no record of the transaction lies between.
    fn lso_bounds(&self) -> (i64, i64) {
        let end = self.end();
        let low = (0..PRODUCERS)
            .filter_map(|p| self.open_txn(p))
            .min()
            .unwrap_or(end)
            .max(self.start);
        let high = (0..PRODUCERS)
            .filter_map(|p| {
                self.open_txn_batches(p)
                    .into_iter()
                    .find(|&f| f >= self.start)
            })
            .min()
            .unwrap_or(end)
            .max(self.start);
        (low, high)
    }
    /// The log now ends at `end` (a truncation or a crash).
    fn truncate(&mut self, end: i64) {
        if end <= self.start {
            // Nothing is left: the log restarts empty at `end`.
            self.entries.clear();
            self.start = end;
            self.base = end;
            return;
        }
        self.entries.retain(|e| e.end() <= end);
        assert_eq!(self.end(), end, "the log was cut inside a batch");
        self.forget_below_start();
    }
    /// The log start offset moved to `start`.
    fn delete_before(&mut self, start: i64) {
        self.start = start;
        self.forget_below_start();
    }
    /// Producers whose last batch lies below the log start offset are forgotten.
    fn forget_below_start(&mut self) {
        for pid in 0..PRODUCERS {
            if self.last_batch(pid).is_some_and(|b| b.end() <= self.start) {
                self.entries.push(Entry::Forget { pid });
            }
        }
    }
    /// Values of all records, and of those a read_committed reader sees.
    fn expected(&self, lso: i64) -> (Vec<String>, Vec<String>) {
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
            if first < self.start {
                continue;
            }
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
    let lso = log.last_stable_offset();
    let (low, high) = model.lso_bounds();
    assert!(
        (low..=high).contains(&lso),
        "last stable offset {lso} outside [{low}, {high}]"
    );
    let (all, committed) = model.expected(lso);
    assert_eq!(log.log_start_offset(), model.start, "log start offset");
    let start = model.start;
    assert_eq!(values(log.records_from(start)), all, "read_uncommitted");
    assert_eq!(
        values(log.records_committed(start)),
        committed,
        "read_committed"
    );
    // A read_committed fetch never returns a batch reaching the LSO, and its list of
    // aborted transactions lets a consumer drop exactly the aborted records.
    let consumed: Vec<String> = consumer::consume_committed(log, hw, lso)
        .into_iter()
        .map(|r| String::from_utf8(r.value.unwrap()).unwrap())
        .collect();
    assert_eq!(consumed, committed, "consumer over fetch");
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
                let to = model.batch_back(back).unwrap_or_else(|| model.end());
                log.truncate_to(to).unwrap();
                model.truncate(to);
            }
            Op::Reopen => {
                log.close().unwrap();
                log = sim_log::open(&fs, &config(), "reopen").0;
            }
            Op::DeleteBefore { back } => {
                let Some(to) = model.batch_back(back).filter(|&to| to > model.start) else {
                    continue;
                };
                log.delete_records_before(to).unwrap();
                model.delete_before(to);
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

/// Found by the model: a crash cut the log below a roll's snapshot, whose removal at the
/// next open was not made durable; a second crash brought it back, with a transaction open
/// that the log no longer held.
#[test]
fn snapshot_removed_after_a_crash_stays_removed() {
    use Op::*;
    run(vec![
        Append {
            pid: 0,
            n: 1,
            txn: false,
        },
        Marker {
            pid: 0,
            commit: false,
        },
        Append {
            pid: 1,
            n: 1,
            txn: false,
        },
        Append {
            pid: 0,
            n: 1,
            txn: false,
        },
        Truncate { back: 3 },
        Append {
            pid: 0,
            n: 1,
            txn: false,
        },
        Plain { n: 2 },
        Append {
            pid: 0,
            n: 1,
            txn: true,
        },
        Append {
            pid: 0,
            n: 3,
            txn: true,
        },
        Marker {
            pid: 0,
            commit: true,
        },
        Crash,
        Append {
            pid: 0,
            n: 3,
            txn: false,
        },
        Marker {
            pid: 0,
            commit: false,
        },
        Crash,
    ]);
}

/// Found by the model: DeleteRecords checkpointed a log start offset, a crash lost every
/// unflushed batch below it, and records appended after were hidden again at the next
/// reopen, which moved the start back up to the stale checkpoint.
#[test]
fn log_start_checkpoint_follows_a_crash_below_it() {
    use Op::*;
    let append = |pid, n| Append { pid, n, txn: false };
    let marker = |pid| Marker { pid, commit: false };
    run(vec![
        marker(0),
        marker(0),
        marker(0),
        append(0, 2),
        Plain { n: 2 },
        append(0, 1),
        DeleteBefore { back: 3 },
        Crash,
        append(0, 1),
        append(0, 1),
        append(0, 1),
        append(0, 1),
        append(0, 1),
        Reopen,
    ]);
}
