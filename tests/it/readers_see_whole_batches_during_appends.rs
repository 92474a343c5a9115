//! One writer appends (rolling segments as it goes) while several readers tail the log with
//! `read_bytes` and re-read it with `records_from`. Readers only ever see whole, valid
//! batches (`Batch::validate` and record decoding succeed) with contiguous offsets, and they
//! see everything in the end. Threads synchronise through a barrier and channels: the
//! writer announces each new log end offset; nothing sleeps or spins on time.

use crate::common::logs;

use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;

use logs::{batch_ranges, records, small_segments, T0};
use streamlog::{Compression, Log};

const BATCHES: i64 = 300;

/// Records in batch `i`: 1 to 16, so batch sizes vary.
fn records_in(i: i64) -> usize {
    (i * 7 % 16 + 1) as usize
}

fn final_end() -> i64 {
    (0..BATCHES).map(|i| records_in(i) as i64).sum()
}

/// Reads from `*offset` until at least `target`, checking every batch; returns the reads
/// made (each one makes progress, so at most one per batch).
fn tail_to(log: &Log, offset: &mut i64, target: i64, max_bytes: usize) -> usize {
    let mut reads = 0;
    while *offset < target {
        let bytes = log.read_bytes(*offset, max_bytes, None).unwrap();
        let ranges = batch_ranges(&bytes); // validates CRC, header and every record
        assert!(
            !ranges.is_empty(),
            "read at {offset} below the announced end {target}"
        );
        for (base, last) in ranges {
            assert_eq!(base, *offset, "batches are contiguous");
            assert!(last >= base);
            *offset = last + 1;
        }
        reads += 1;
    }
    reads
}

/// Iterates the whole log once and checks offsets run 0, 1, 2, ... to at least `target`.
fn reread(log: &Log, target: i64) {
    let mut expected = 0;
    for r in log.records_from(0) {
        let r = r.unwrap();
        assert_eq!(r.offset(), expected);
        assert!(r.key().is_some_and(|k| k.starts_with(b"k")));
        expected += 1;
    }
    assert!(
        expected >= target,
        "iteration ended at {expected}, below {target}"
    );
}

#[test]
fn readers_only_see_whole_valid_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path(), small_segments(8 * 1024)).unwrap());
    let tailers = [1usize, 3000, 1 << 20];
    let rereaders = 2;
    let barrier = Arc::new(Barrier::new(tailers.len() + rereaders + 1));
    let mut senders = Vec::new();
    let mut handles = Vec::new();

    for max_bytes in tailers {
        let (tx, rx) = mpsc::channel::<i64>();
        senders.push(tx);
        let (log, barrier) = (Arc::clone(&log), Arc::clone(&barrier));
        handles.push(thread::spawn(move || {
            barrier.wait();
            let mut offset = 0;
            let mut reads = 0;
            for target in rx {
                reads += tail_to(&log, &mut offset, target, max_bytes);
            }
            reads += tail_to(&log, &mut offset, final_end(), max_bytes);
            assert_eq!(offset, final_end());
            assert!(reads as i64 <= BATCHES);
        }));
    }
    for _ in 0..rereaders {
        let (tx, rx) = mpsc::channel::<i64>();
        senders.push(tx);
        let (log, barrier) = (Arc::clone(&log), Arc::clone(&barrier));
        handles.push(thread::spawn(move || {
            barrier.wait();
            // Every 25th announcement: a whole pass is the expensive part.
            for target in rx.iter().step_by(25) {
                reread(&log, target);
            }
            reread(&log, final_end());
        }));
    }

    barrier.wait();
    for i in 0..BATCHES {
        let codec = if i % 3 == 0 {
            Compression::Lz4
        } else {
            Compression::None
        };
        let info = log
            .append_records(&records(i, records_in(i), T0 + i, 30), codec)
            .unwrap();
        for tx in &senders {
            tx.send(info.last_offset + 1).unwrap();
        }
    }
    drop(senders);
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(log.log_end_offset(), final_end());
    assert!(
        log.segment_count() > 5,
        "the writer rolled while readers read"
    );
}
