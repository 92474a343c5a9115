//! Under `message.timestamp.type = LogAppendTime` the log stamps each batch with the clock's
//! time: the stored batch says LogAppendTime, its max timestamp is the append time, its CRC
//! is recomputed (it validates, also after an unclean reopen), and every record reads the
//! append time whatever the producer put in it.

use crate::common::logs;

use std::sync::Arc;

use logs::{records, T0};
use streamlog::{Batch, Compression, Log, LogConfig, ManualClock, TimestampType};

fn config(clock: &Arc<ManualClock>) -> LogConfig {
    LogConfig::builder()
        .message_timestamp_type(TimestampType::LogAppendTime)
        .clock(clock.clone())
        .build()
        .unwrap()
}

fn check_stored(log: &Log, offset: i64, now: i64, count: usize) {
    let bytes = log.read_bytes(offset, 1, None).unwrap();
    let b = Batch::new(&bytes).unwrap();
    b.validate().unwrap();
    assert_eq!(b.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(b.max_timestamp(), now);
    let records = b.records().unwrap();
    let stamps: Vec<i64> = records.iter().map(|r| r.unwrap().timestamp).collect();
    assert_eq!(stamps, vec![now; count]);
}

#[test]
fn batches_carry_the_append_time() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0 + 5000));
    let log = Log::open(dir.path(), config(&clock)).unwrap();
    let mut appended = Vec::new();
    for (i, codec) in [Compression::None, Compression::Lz4, Compression::Gzip]
        .into_iter()
        .enumerate()
    {
        let now = T0 + 5000 + 1000 * i as i64;
        clock.set(now);
        // Producer timestamps in the past and the future, all replaced.
        let mut recs = records(i as i64, 4, T0 - 1, 10);
        recs[2].timestamp = T0 + 1_000_000;
        let info = log.append_records(&recs, codec).unwrap();
        assert_eq!(info.log_append_time, Some(now));
        assert_eq!(info.max_timestamp, now);
        check_stored(&log, info.first_offset, now, 4);
        appended.push((info.first_offset, now));
    }
    let stamps: Vec<(i64, i64)> = log
        .records_from(0)
        .map(|r| r.map(|r| (r.offset(), r.timestamp())).unwrap())
        .collect();
    let expected: Vec<(i64, i64)> = appended
        .iter()
        .flat_map(|&(first, now)| (first..first + 4).map(move |o| (o, now)))
        .collect();
    assert_eq!(stamps, expected);

    // Time lookups see append times, not producer times.
    assert_eq!(log.offset_for_timestamp(T0).unwrap(), Some((0, T0 + 5000)));
    assert_eq!(
        log.offset_for_timestamp(T0 + 5001).unwrap(),
        Some((4, T0 + 6000))
    );
    assert_eq!(log.offset_for_timestamp(T0 + 7001).unwrap(), None);

    // Recovery validates every CRC: nothing is cut.
    drop(log);
    let (log, info) = streamlog::Log::open_with(
        streamlog::io::RealFs::shared(),
        dir.path(),
        config(&clock),
        &mut |b| {
            b.validate()?;
            assert_eq!(b.timestamp_type(), TimestampType::LogAppendTime);
            Ok(())
        },
    )
    .unwrap();
    assert!(!info.clean_shutdown);
    assert_eq!(info.bytes_truncated, 0);
    assert_eq!(log.log_end_offset(), 12);
    for &(first, now) in &appended {
        check_stored(&log, first, now, 4);
    }
}

#[test]
fn create_time_keeps_producer_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0 + 5000));
    let cfg = config(&clock)
        .to_builder()
        .message_timestamp_type(TimestampType::CreateTime)
        .build()
        .unwrap();
    let log = Log::open(dir.path(), cfg).unwrap();
    let info = log
        .append_records(&records(0, 2, T0, 1), Compression::None)
        .unwrap();
    assert_eq!(info.log_append_time, None);
    assert_eq!(info.max_timestamp, T0);
    let bytes = log.read_bytes(0, 1, None).unwrap();
    let b = Batch::new(&bytes).unwrap();
    assert_eq!(b.timestamp_type(), TimestampType::CreateTime);
    assert_eq!(b.max_timestamp(), T0);
}
