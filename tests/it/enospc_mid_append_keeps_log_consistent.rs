//! Running out of space in the middle of an append leaves the log as it was before it: the
//! append fails with an I/O error naming the file, the log is not poisoned (nothing
//! durable is in doubt), reads return exactly the earlier batches, and once space is back
//! appends continue at the right offset and the log reopens cleanly. The same holds when
//! the space runs out while a roll preallocates the new segment's indexes, whether or not
//! the batch would then have fitted the old segment.

use crate::common::sim_log;

use sim_log::{
    append, contents, expected, is_io_error, open, records, rolling, segment_file, small_indexes,
};
use streamlog::io::{SimFs, SpaceLimitMode};
use streamlog::{Compression, Log, LogConfig};

const ENOSPC: i32 = 28;
const MODES: [SpaceLimitMode; 2] = [SpaceLimitMode::NothingWritten, SpaceLimitMode::PartialWrite];

/// Every offset's one-byte read: the first batch offset and next offset it answers.
fn reads(log: &Log) -> Vec<(Option<i64>, i64)> {
    (log.log_start_offset()..log.log_end_offset())
        .map(|o| {
            let d = log.read(o, 1, None).unwrap();
            (d.first_batch_offset, d.next_offset)
        })
        .collect()
}

/// Closes the log, reopens it, and checks it holds `want` and ends where they end.
fn reopens_cleanly(fs: &SimFs, log: Log, config: &LogConfig, want: &[(u64, i64, usize, usize)]) {
    let before = reads(&log);
    log.close().unwrap();
    drop(log);
    let (log, info) = open(fs, config, "reopen");
    assert!(info.clean_shutdown);
    assert_eq!(contents(&log), expected(want));
    assert_eq!(reads(&log), before, "lookups answer as before the close");
    let end = want.last().map_or(0, |&(_, first, n, _)| first + n as i64);
    assert_eq!(log.log_end_offset(), end);
    // And once more after a crash, which rebuilds from the files alone.
    let next = append(&log, 77, 2, 10, end);
    log.flush().unwrap();
    let after = fs.crash();
    drop(log);
    let (log, _) = open(&after, config, "reopen after a crash");
    let mut all = want.to_vec();
    all.push((77, end, 2, 10));
    assert_eq!(contents(&log), expected(&all));
    assert_eq!(log.log_end_offset(), next);
}

#[test]
fn enospc_in_the_middle_of_a_batch_changes_nothing() {
    let config = small_indexes();
    for mode in MODES {
        // Room for none of the batch, and for every prefix length up to all but one byte.
        for room in [0u64, 1, 30, 61, 62, 150, 299] {
            let context = format!("{mode:?}, room for {room} bytes");
            let fs = SimFs::new(room);
            let (log, _) = open(&fs, &config, &context);
            let mut want = Vec::new();
            let mut end = 0;
            for tag in 0..3 {
                want.push((tag, end, 5, 20));
                end = append(&log, tag, 5, 20, end);
            }
            let before = reads(&log);
            let size = log.size_in_bytes();
            let big = records(3, end, 8, 30);
            let batch_len = batch_len(&big);
            assert!(
                room < batch_len,
                "{context}: the batch is {batch_len} bytes"
            );

            fs.set_space_limit_mode(mode);
            fs.set_space_limit(Some(fs.used_bytes() + room));
            let err = log
                .append_records(&big, Compression::None)
                .expect_err("no space for the batch");
            assert!(
                is_io_error(&err, "00000000000000000000.log", ENOSPC),
                "{context}: {err:?}"
            );
            assert!(!log.is_poisoned(), "{context}");
            assert_eq!(log.log_end_offset(), end, "{context}");
            assert_eq!(log.size_in_bytes(), size, "{context}");
            assert_eq!(
                fs.read_current(&segment_file(0, "log")).unwrap().len() as u64,
                size,
                "{context}: the partial batch was cut from the file"
            );
            assert_eq!(contents(&log), expected(&want), "{context}");
            assert_eq!(reads(&log), before, "{context}");
            assert_eq!(
                log.read(end, 1 << 20, None).unwrap().slice.map(|s| s.len()),
                None,
                "{context}: nothing to read at the log end"
            );
            // A flush now covers only the whole batches.
            assert_eq!(log.flush().unwrap(), end, "{context}");

            // A smaller batch that fits still goes in, at the next offset.
            if room >= 150 {
                want.push((4, end, 1, 10));
                end = append(&log, 4, 1, 10, end);
            }
            fs.set_space_limit(None);
            want.push((3, end, 8, 30));
            end = append(&log, 3, 8, 30, end);
            want.push((5, end, 2, 20));
            append(&log, 5, 2, 20, end);
            reopens_cleanly(&fs, log, &config, &want);
        }
    }
}

/// The size of the uncompressed batch holding `records`.
fn batch_len(records: &[streamlog::OwnedRecord]) -> u64 {
    let mut b = streamlog::BatchBuilder::new(streamlog::BatchOptions::default());
    for r in records {
        b.append(r.timestamp, r.key.as_deref(), r.value.as_deref(), &[])
            .unwrap();
    }
    b.build().unwrap().len() as u64
}

/// Fills the active segment until the next batch of `n` records rolls; returns the batches
/// appended and the log end offset.
fn fill_until_roll_due(log: &Log, segment_bytes: u64) -> (Vec<(u64, i64, usize, usize)>, i64) {
    let mut want = Vec::new();
    let mut end = 0;
    let mut tag = 0;
    while log.size_in_bytes() + batch_len(&records(tag, end, 3, 30)) <= segment_bytes {
        want.push((tag, end, 3, 30));
        end = append(log, tag, 3, 30, end);
        tag += 1;
    }
    assert_eq!(log.segment_count(), 1);
    (want, end)
}

/// The roll preallocates two index files; with no room for them the append fails, and the
/// log stays usable: the old segment keeps taking batches that fit it (indexed, so lookups
/// after a reopen find them), and the roll succeeds once space is back.
#[test]
fn enospc_while_a_roll_preallocates_indexes_leaves_a_usable_log() {
    let segment_bytes = 1000;
    let config = rolling(segment_bytes);
    for mode in MODES {
        for seed in 0..4 {
            let context = format!("{mode:?}, seed {seed}");
            let fs = SimFs::new(seed);
            let (log, _) = open(&fs, &config, &context);
            let (mut want, mut end) = fill_until_roll_due(&log, segment_bytes);
            let before = reads(&log);
            let files = fs.list_all();

            fs.set_space_limit_mode(mode);
            // Room for a small batch in the .log, not for 4 KiB of index.
            let small = batch_len(&records(51, end, 1, 5));
            fs.set_space_limit(Some(fs.used_bytes() + small + 10));
            let err = log
                .append_records(&records(50, end, 3, 30), Compression::None)
                .expect_err("no room for the new segment's indexes");
            assert!(
                is_io_error(&err, "index", ENOSPC),
                "{context}: the error names the index file: {err:?}"
            );
            assert!(!log.is_poisoned(), "{context}");
            assert_eq!(log.log_end_offset(), end, "{context}");
            assert_eq!(log.segment_count(), 1, "{context}");
            assert_eq!(contents(&log), expected(&want), "{context}");
            assert_eq!(reads(&log), before, "{context}");
            assert_eq!(
                fs.list_all(),
                files,
                "{context}: the failed roll left no files behind"
            );

            // A small batch still fits the old segment, with the space left.
            want.push((51, end, 1, 5));
            end = append(&log, 51, 1, 5, end);
            assert_eq!(log.segment_count(), 1, "{context}");

            fs.set_space_limit(None);
            for tag in 52..56 {
                want.push((tag, end, 3, 30));
                end = append(&log, tag, 3, 30, end);
            }
            assert!(
                log.segment_count() > 1,
                "{context}: rolled once space was back"
            );
            assert_eq!(log.log_end_offset(), end, "{context}");
            reopens_cleanly(&fs, log, &config, &want);
        }
    }
}
