//! Index damage that the index tests on a cleanly closed log (`index_rebuilt_when_corrupt`,
//! `index_rebuilt_when_missing`) do not reach:
//!
//! - a `.timeindex` that lost its final entry: still whole entries, still increasing, but
//!   it no longer holds the segment's largest timestamp, so a timestamp lookup would skip
//!   the segment. It is rebuilt, and every lookup answers as before;
//! - the index files of a crashed log on `SimFs`, caught at any point of their life
//!   (preallocated, partly written through the map, trimmed or not, the trim lost), below
//!   and above the recovery point: every read and timestamp lookup on the reopened log
//!   answers exactly what the surviving batches say.

use crate::common::logs;
use crate::common::sim_log;

use logs::{check_indexes_rebuilt, segment_file};
use streamlog::io::SimFs;
use streamlog::{Compression, Log, LogConfig, OwnedRecord};

#[test]
fn time_index_missing_its_final_entry() {
    check_indexes_rebuilt(|dir, bases| {
        for &base in bases {
            let path = segment_file(dir, base, "timeindex");
            let mut bytes = std::fs::read(&path).unwrap();
            assert!(bytes.len() >= 24, "{} has few entries", path.display());
            bytes.truncate(bytes.len() - 12);
            std::fs::write(&path, &bytes).unwrap();
        }
    });
}

#[test]
fn time_index_of_one_sealed_segment_missing_its_final_entry() {
    check_indexes_rebuilt(|dir, bases| {
        let path = segment_file(dir, bases[1], "timeindex");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 12]).unwrap();
    });
}

/// A record's timestamp: not monotonic in the offset, so the time index has real work.
fn timestamp(offset: i64) -> i64 {
    sim_log::T0 + (offset * 7919) % 1000
}

/// One appended batch: offsets `first..=last`, its records' timestamps.
#[derive(Debug, Clone)]
struct Appended {
    first: i64,
    timestamps: Vec<i64>,
}

fn append(log: &Log, n: usize, codec: Compression) -> Appended {
    let first = log.log_end_offset();
    let records: Vec<OwnedRecord> = (0..n as i64)
        .map(|i| {
            let o = first + i;
            OwnedRecord::new(timestamp(o), Some(&o.to_be_bytes()), Some(&[7u8; 24]))
        })
        .collect();
    let info = log.append_records(&records, codec).unwrap();
    assert_eq!(info.first_offset, first);
    Appended {
        first,
        timestamps: (first..first + n as i64).map(timestamp).collect(),
    }
}

/// What the lookups must answer on a log holding exactly `batches`: for every offset the
/// batch a one-byte read returns, and for a range of timestamps the first record at or
/// after each.
#[allow(clippy::type_complexity)]
fn expected_lookups(batches: &[Appended]) -> (Vec<(Option<i64>, i64)>, Vec<Option<(i64, i64)>>) {
    let mut reads = Vec::new();
    let mut records = Vec::new();
    for b in batches {
        let next = b.first + b.timestamps.len() as i64;
        for (i, &ts) in b.timestamps.iter().enumerate() {
            reads.push((Some(b.first), next));
            records.push((b.first + i as i64, ts));
        }
    }
    let times = (sim_log::T0 - 1..sim_log::T0 + 1001)
        .step_by(7)
        .map(|t| records.iter().find(|&&(_, ts)| ts >= t).copied())
        .collect();
    (reads, times)
}

#[allow(clippy::type_complexity)]
fn lookups(log: &Log) -> (Vec<(Option<i64>, i64)>, Vec<Option<(i64, i64)>>) {
    let reads = (0..log.log_end_offset())
        .map(|o| {
            let d = log.read(o, 1, None).unwrap();
            (d.first_batch_offset, d.next_offset)
        })
        .collect();
    let times = (sim_log::T0 - 1..sim_log::T0 + 1001)
        .step_by(7)
        .map(|t| log.offset_for_timestamp(t).unwrap())
        .collect();
    (reads, times)
}

fn config() -> LogConfig {
    sim_log::rolling(1500)
        .to_builder()
        .index_interval_bytes(200)
        .build()
        .unwrap()
}

#[test]
fn index_files_of_a_crashed_log_on_simfs() {
    let config = config();
    let mut recovered_above = 0;
    for seed in 0..60u64 {
        let fs = SimFs::new(seed);
        let (log, _) = sim_log::open(&fs, &config, &format!("seed {seed}"));
        let mut batches = Vec::new();
        let mut durable = 0;
        for i in 0..40u64 {
            let codec = if i % 3 == 0 {
                Compression::Lz4
            } else {
                Compression::None
            };
            batches.push(append(&log, 1 + (i % 4) as usize, codec));
            // Flushes now and then: the recovery point falls inside the log, so some
            // segments are trusted at the next open, their index files as they are.
            if (i + seed) % 9 == 0 {
                durable = log.flush().unwrap();
                log.checkpoint().unwrap();
            }
        }
        assert!(log.segment_count() > 4, "seed {seed}");
        let after = fs.crash();
        drop(log);
        let (log, info) = sim_log::open(&after, &config, &format!("seed {seed}"));
        let end = log.log_end_offset();
        assert!(end >= durable, "seed {seed}: lost flushed records");
        let kept: Vec<Appended> = batches.iter().filter(|b| b.first < end).cloned().collect();
        assert_eq!(
            kept.last()
                .map_or(0, |b| b.first + b.timestamps.len() as i64),
            end,
            "seed {seed}: the log ends after a whole batch"
        );
        if info.recovery_point > 0 {
            recovered_above += 1;
        }
        let want = expected_lookups(&kept);
        assert!(
            lookups(&log) == want,
            "seed {seed}: lookups after the crash"
        );
        // And after a clean close, loading the indexes without a scan.
        log.close().unwrap();
        drop(log);
        let (log, info) = sim_log::open(&after, &config, &format!("seed {seed}"));
        assert!(info.clean_shutdown);
        assert!(
            lookups(&log) == want,
            "seed {seed}: lookups after a clean reopen"
        );
    }
    assert!(
        recovered_above > 30,
        "most runs had a recovery point inside the log"
    );
}
