//! Helpers for producer-state tests: idempotent and transactional batches.
//!
//! Self-contained: `#[path = "common/producers.rs"] mod producers;`.
#![allow(dead_code)]

use streamlog::{BatchBuilder, BatchOptions, Compression};

/// A timestamp to build records around.
pub const T0: i64 = 1_700_000_000_000;

/// A batch of `n` records from producer `pid` at `epoch`, sequences from `seq`; each
/// record's value names the producer and its sequence.
pub fn batch(pid: i64, epoch: i16, seq: i32, n: usize, transactional: bool) -> Vec<u8> {
    batch_at(pid, epoch, seq, n, transactional, T0)
}

/// [`batch`] with records timestamped `timestamp`.
pub fn batch_at(
    pid: i64,
    epoch: i16,
    seq: i32,
    n: usize,
    transactional: bool,
    timestamp: i64,
) -> Vec<u8> {
    let mut b = BatchBuilder::new(BatchOptions {
        compression: Compression::None,
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        transactional,
        ..BatchOptions::default()
    });
    for i in 0..n {
        let s = (i64::from(seq) + i as i64) % (i64::from(i32::MAX) + 1);
        b.append(timestamp, None, Some(value(pid, s as i32).as_bytes()), &[])
            .expect("record");
    }
    b.build().expect("batch")
}

/// The value of producer `pid`'s record with sequence `seq`.
pub fn value(pid: i64, seq: i32) -> String {
    format!("p{pid}-s{seq}")
}

/// A batch of keyed records at [`T0`] from producer `pid` at epoch 0 with sequences from
/// `seq`, or, for `pid` -1, from no producer (epoch and sequence -1 too).
pub fn keyed_batch<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    pid: i64,
    seq: i32,
    transactional: bool,
    records: &[(K, V)],
) -> Vec<u8> {
    let mut b = BatchBuilder::new(BatchOptions {
        producer_id: pid,
        producer_epoch: if pid >= 0 { 0 } else { -1 },
        base_sequence: if pid >= 0 { seq } else { -1 },
        transactional,
        ..BatchOptions::default()
    });
    for (k, v) in records {
        b.append(T0, Some(k.as_ref()), Some(v.as_ref()), &[])
            .expect("record");
    }
    b.build().expect("batch")
}
