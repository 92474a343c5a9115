use streamlog::{Compression, Log, LogConfig, OwnedRecord};

#[test]
fn smoke() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig::builder()
        .segment_bytes(4096)
        .index_interval_bytes(256)
        .build()
        .unwrap();
    let log = Log::open(dir.path(), cfg.clone()).unwrap();
    let mut n = 0i64;
    for b in 0..200 {
        let recs: Vec<_> = (0..10)
            .map(|i| {
                OwnedRecord::new(
                    1000 + b * 10 + i,
                    Some(format!("k{b}-{i}").as_bytes()),
                    Some(&[b as u8; 50][..]),
                )
            })
            .collect();
        let info = log
            .append_records(
                &recs,
                if b % 2 == 0 {
                    Compression::None
                } else {
                    Compression::Lz4
                },
            )
            .unwrap();
        assert_eq!(info.first_offset, n);
        n += 10;
    }
    assert_eq!(log.log_end_offset(), 2000);
    assert!(log.segment_count() > 10, "{}", log.segment_count());
    let all: Vec<_> = log.records_from(0).collect::<Result<_, _>>().unwrap();
    assert_eq!(all.len(), 2000);
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.offset(), i as i64);
    }
    let mid: Vec<_> = log
        .records_from(1234)
        .map(|r| r.unwrap().offset())
        .collect();
    assert_eq!(mid.first(), Some(&1234));
    assert_eq!(mid.len(), 766);
    assert_eq!(log.offset_for_timestamp(1500).unwrap().unwrap().0, 500);
    log.close().unwrap();
    let log = Log::open(dir.path(), cfg.clone()).unwrap();
    assert_eq!(log.log_end_offset(), 2000);
    let all: Vec<_> = log.records_from(0).collect::<Result<_, _>>().unwrap();
    assert_eq!(all.len(), 2000);
    log.truncate_to(1505).unwrap();
    assert_eq!(log.log_end_offset(), 1500);
    log.delete_records_before(700).unwrap();
    assert_eq!(log.log_start_offset(), 700);
    assert!(log.read(600, 100, None).is_err());
    let r: Vec<_> = log.records_from(700).map(|r| r.unwrap().offset()).collect();
    assert_eq!(r.len(), 800);
    drop(log); // unclean
    let log = Log::open(dir.path(), cfg).unwrap();
    assert_eq!(log.log_end_offset(), 1500);
    assert_eq!(log.log_start_offset(), 700);
    let r: Vec<_> = log.records_from(700).map(|r| r.unwrap().offset()).collect();
    assert_eq!(r.len(), 800);
}
