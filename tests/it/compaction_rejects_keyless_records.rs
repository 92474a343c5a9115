//! A log whose `cleanup.policy` compacts refuses producer records without a key, as Kafka
//! does (the cleaner could only drop them), and stores nothing of the batch; replicated
//! batches (the leader validated them) and logs that only delete are not checked.

use streamlog::{BatchBuilder, BatchOptions, CleanupPolicy, Compression, Error, Log, LogConfig};

fn batch(keys: &[Option<&[u8]>]) -> Vec<u8> {
    let mut b = BatchBuilder::new(BatchOptions::compressed(Compression::Lz4));
    for k in keys {
        b.append(1_000, *k, Some(b"v"), &[]).unwrap();
    }
    b.build().unwrap()
}

#[test]
fn compacted_logs_refuse_records_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let compacted = LogConfig::builder()
        .cleanup_policy(CleanupPolicy::Compact)
        .build()
        .unwrap();
    let log = Log::open(dir.path().join("compacted-0"), compacted).unwrap();
    log.append(&batch(&[Some(b"a")])).unwrap();
    let err = log.append(&batch(&[Some(b"b"), None])).unwrap_err();
    assert!(
        matches!(err, Error::RecordWithoutKey { index: 1, .. }),
        "{err}"
    );
    assert_eq!(
        log.log_end_offset(),
        1,
        "nothing of the refused batch is stored"
    );
    // A follower stores what its leader accepted.
    let mut replica = BatchBuilder::new(BatchOptions {
        base_offset: 1,
        ..BatchOptions::default()
    });
    replica.append(1_000, None, Some(b"v"), &[]).unwrap();
    log.append_replicated(&replica.build().unwrap()).unwrap();
    assert_eq!(log.log_end_offset(), 2);

    let deleting = Log::open(dir.path().join("deleting-0"), LogConfig::default()).unwrap();
    deleting.append(&batch(&[None])).unwrap();
}
