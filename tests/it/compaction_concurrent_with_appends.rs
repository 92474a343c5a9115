//! Compaction runs beside the writer: the pass holds the log's writer lock only to swap
//! segments in, so appends (and rolls) go on while it reads and rewrites sealed segments.
//! After passes racing a stream of appends, every offset read back is one that was
//! appended, in order, the last value of every key is there, and a final pass leaves
//! exactly one record per key below the active segment.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use streamlog::{Compression, Log, LogConfig, OwnedRecord};

#[test]
fn passes_racing_appends_keep_every_key_latest() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::builder()
        .segment_bytes(2000)
        .index_interval_bytes(200)
        .segment_ms(None)
        .build()
        .unwrap();
    let log = Arc::new(Log::open(dir.path(), config).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let log = Arc::clone(&log);
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut appended = BTreeMap::new();
            for i in 0..3000u32 {
                let key = format!("k{}", i % 37);
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
            done.store(true, Ordering::Release);
            appended
        })
    };
    let mut passes = 0;
    while !done.load(Ordering::Acquire) || passes < 3 {
        let stats = log.compact(log.log_end_offset(), 0).unwrap();
        assert!(!stats.aborted);
        passes += 1;
    }
    let appended = writer.join().unwrap();
    log.roll().unwrap();
    log.compact(log.log_end_offset(), 0).unwrap();

    let got: Vec<(i64, String, String)> = log
        .records_from(log.log_start_offset())
        .map(|r| {
            let r = r.unwrap();
            let k = String::from_utf8(r.key().unwrap().to_vec()).unwrap();
            let v = String::from_utf8(r.value().unwrap().to_vec()).unwrap();
            (r.offset(), k, v)
        })
        .collect();
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
    for (o, k, v) in &got {
        assert_eq!(&appended[o], &(k.clone(), v.clone()), "offset {o}");
    }
    let mut latest = BTreeMap::new();
    for (o, (k, _)) in &appended {
        latest.insert(k.clone(), *o);
    }
    let mut want: Vec<i64> = latest.values().copied().collect();
    want.sort_unstable();
    let offsets: Vec<i64> = got.iter().map(|g| g.0).collect();
    assert_eq!(
        offsets, want,
        "one record per key, the last, after {passes} racing passes"
    );
}
