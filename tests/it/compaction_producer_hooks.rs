//! The hooks producer state plugs into the cleaner (issue 6): a producer's last batch kept
//! as an empty batch when all its records go (`RetainEmpty`), an aborted transaction's
//! batch removed whole and ignored by the key map (`Delete`), and control batches (markers)
//! kept whole by default, never compacted by key.

use std::collections::HashSet;

use streamlog::log::{BatchRetention, CompactionHooks};
use streamlog::{Batch, BatchBuilder, BatchOptions, Batches, ControlRecord, Log, LogConfig};

/// Producer 7's batches are kept even when emptied; producer 9's transaction aborted.
struct Hooks;

impl CompactionHooks for Hooks {
    fn batch_retention(&self, batch: &Batch<'_>) -> BatchRetention {
        match (batch.producer_id(), batch.is_control()) {
            (_, true) => BatchRetention::Retain,
            (7, false) => BatchRetention::RetainEmpty,
            (9, false) => BatchRetention::Delete,
            _ => BatchRetention::DeleteEmpty,
        }
    }
}

fn batch(producer_id: i64, transactional: bool, kvs: &[(&str, &str)]) -> Vec<u8> {
    let mut b = BatchBuilder::new(BatchOptions {
        producer_id,
        producer_epoch: if producer_id < 0 { -1 } else { 0 },
        base_sequence: if producer_id < 0 { -1 } else { 0 },
        transactional,
        ..BatchOptions::default()
    });
    for (k, v) in kvs {
        b.append(1_000, Some(k.as_bytes()), Some(v.as_bytes()), &[])
            .unwrap();
    }
    b.build().unwrap()
}

#[test]
fn hooks_keep_empty_batches_drop_aborted_ones_and_keep_markers() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(
        dir.path(),
        LogConfig::builder().segment_ms(None).build().unwrap(),
    )
    .unwrap();
    log.append(&batch(7, false, &[("a", "1"), ("b", "1")]))
        .unwrap(); // 0-1: producer 7
    log.append(&batch(-1, false, &[("a", "2"), ("b", "2")]))
        .unwrap(); // 2-3
    log.append(&batch(9, true, &[("a", "aborted"), ("c", "aborted")]))
        .unwrap(); // 4-5
    let marker = BatchBuilder::control_batch(
        BatchOptions {
            base_offset: 6,
            producer_id: 9,
            producer_epoch: 0,
            ..BatchOptions::default()
        },
        &ControlRecord::end_txn(false, 0),
        1_000,
    )
    .unwrap();
    log.append_replicated(&marker).unwrap(); // 6: ABORT marker
    log.append(&batch(-1, false, &[("c", "3")])).unwrap(); // 7
    log.roll().unwrap();

    let mut cleaner = streamlog::log::Cleaner::new(streamlog::log::CleanerConfig::default());
    let stats = cleaner
        .clean_with(&log, log.log_end_offset(), 1_000, &Hooks)
        .unwrap();
    assert!(stats.complete, "{stats:?}");

    let bytes = std::fs::read(dir.path().join(format!("{:020}.log", 0))).unwrap();
    let batches: Vec<Batch<'_>> = Batches::new(&bytes).map(|b| b.unwrap()).collect();
    let summary: Vec<(i64, i64, i32, i64, bool)> = batches
        .iter()
        .map(|b| {
            (
                b.base_offset(),
                b.last_offset(),
                b.record_count(),
                b.producer_id(),
                b.is_control(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (0, 1, 0, 7, false),  // producer 7's last batch, emptied but kept
            (2, 3, 2, -1, false), // a=2, b=2 win: the aborted a (offset 4) never shadowed them
            (6, 6, 1, 9, true),   // the marker, whole
            (7, 7, 1, -1, false), // c=3
        ]
    );
    let keys: HashSet<Vec<u8>> = log
        .records_from(0)
        .map(|r| r.unwrap().key().unwrap().to_vec())
        .collect();
    assert!(keys.contains(&b"a"[..]) && keys.contains(&b"c"[..]));
    for b in &batches {
        b.validate().unwrap();
    }
}
