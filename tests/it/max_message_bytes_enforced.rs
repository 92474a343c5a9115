//! `max.message.bytes`: a producer batch larger than the limit is refused with
//! `Error::MessageTooLarge` naming its size and the limit, and nothing of it is stored; a
//! batch of exactly the limit is accepted.

use crate::common::logs;

use logs::{batch, file_len, records, segment_file, T0};
use streamlog::{Compression, Error, Log, LogConfig};

#[test]
fn oversized_batches_are_refused_and_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let fits = batch(3, T0);
    let limit = fits.len() as u32;
    let cfg = LogConfig::builder()
        .max_message_bytes(limit)
        .build()
        .unwrap();
    let log = Log::open(dir.path(), cfg.clone()).unwrap();
    log.append(&fits).unwrap();
    let size = log.size_in_bytes();
    assert_eq!(size, u64::from(limit));

    let too_big = batch(4, T0);
    match log.append(&too_big) {
        Err(Error::MessageTooLarge { size, limit: l }) => {
            assert_eq!(size, too_big.len() as u64);
            assert_eq!(l, u64::from(limit));
        }
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    let big_records = records(1, 50, T0, 100);
    assert!(matches!(
        log.append_records(&big_records, Compression::None),
        Err(Error::MessageTooLarge { .. })
    ));

    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log.size_in_bytes(), size);
    assert_eq!(file_len(&segment_file(dir.path(), 0, "log")), size);
    let offsets: Vec<i64> = log.records_from(0).map(|r| r.unwrap().offset()).collect();
    assert_eq!(offsets, vec![0, 1, 2]);

    // The limit is on the batch as sent: compression can bring records under it.
    let compressible = records(2, 50, T0, 100)
        .into_iter()
        .map(|mut r| {
            r.value = Some(vec![0; 100]);
            r.key = None;
            r
        })
        .collect::<Vec<_>>();
    let cfg_big = cfg.to_builder().max_message_bytes(1024).build().unwrap();
    drop(log);
    let log = Log::open(dir.path(), cfg_big).unwrap();
    assert!(matches!(
        log.append_records(&compressible, Compression::None),
        Err(Error::MessageTooLarge { .. })
    ));
    let info = log
        .append_records(&compressible, Compression::Gzip)
        .unwrap();
    assert_eq!((info.first_offset, info.last_offset), (3, 52));
}
