//! Readers that started before a compaction keep working while it swaps segments: a file
//! range handed out before the pass still reads the old bytes after it (the old files stay
//! open), and a record iterator half-way through the log carries on, yielding only records
//! that were appended, at their offsets, in order.

use std::collections::HashMap;

use streamlog::{Compression, Log, LogConfig, OwnedRecord};

#[test]
fn reads_begun_before_a_pass_finish_on_the_old_or_new_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::builder()
        .segment_bytes(1500)
        .index_interval_bytes(128)
        .segment_ms(None)
        .build()
        .unwrap();
    let log = Log::open(dir.path(), config).unwrap();
    let mut appended = HashMap::new();
    for i in 0..300u32 {
        let key = format!("k{}", i % 10);
        let value = format!("v{i}");
        let info = log
            .append_records(
                &[OwnedRecord::new(
                    i64::from(i),
                    Some(key.as_bytes()),
                    Some(value.as_bytes()),
                )],
                Compression::None,
            )
            .unwrap();
        appended.insert(info.first_offset, (key, value));
    }
    log.roll().unwrap();
    assert!(log.segment_count() > 5);

    let fetched = log.read(0, 4096, None).unwrap();
    let slice = fetched.slice.clone().unwrap();
    let bytes_before = slice.to_vec().unwrap();
    let mut iter = log.records_from(0);
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(iter.next().unwrap().unwrap().offset());
    }

    let stats = log.compact(log.log_end_offset(), 0).unwrap();
    assert_eq!(stats.records_written, 10, "{stats:?}");

    // The old file range still reads what it read before.
    assert_eq!(slice.to_vec().unwrap(), bytes_before);
    // The iterator goes on, over old or new segments, without error or disorder.
    for r in iter {
        let r = r.unwrap();
        let (key, value) = &appended[&r.offset()];
        assert_eq!(r.key(), Some(key.as_bytes()));
        assert_eq!(r.value(), Some(value.as_bytes()));
        seen.push(r.offset());
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert_eq!(seen.last(), Some(&299));
    // A new read sees only the compacted log: the last value of each key.
    let now: Vec<i64> = log.records_from(0).map(|r| r.unwrap().offset()).collect();
    assert_eq!(now, (290..300).collect::<Vec<_>>());
}
