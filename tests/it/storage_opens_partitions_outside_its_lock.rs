//! `Storage` opens and closes partition logs outside its table lock: while one partition
//! recovers after a power cut (its reads held back by `SimFs`), appends to an open
//! partition and the opening of another one go on; a second caller of the recovering
//! partition waits for it and gets the same log (a partition is opened once).
//!
//! No sleeps: the test waits on the stalled read itself; the bounds only guard against a
//! hang (before, the first append below waited for the recovery until the bound).

use std::path::Path;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use streamlog::io::{SimFs, SimOp};
use streamlog::{Compression, OwnedRecord, Storage, StorageConfig, TopicConfig};

const HANG_GUARD: Duration = Duration::from_secs(120);

fn config(fs: &SimFs) -> StorageConfig {
    let mut config = StorageConfig::default();
    config.fs = Arc::new(fs.clone());
    config
}

fn record(i: i64) -> OwnedRecord {
    OwnedRecord::new(1_700_000_000_000 + i, Some(b"k"), Some(&[7u8; 200]))
}

#[test]
fn appends_and_opens_go_on_while_another_partition_recovers() {
    let dir = Path::new("/data");
    let fs = SimFs::new(11);
    let crashed = {
        let storage = Storage::open(dir, config(&fs)).unwrap();
        for topic in ["hot", "warm", "cold"] {
            storage.create_topic(topic, 1, TopicConfig::new()).unwrap();
        }
        let cold = storage.partition("cold", 0).unwrap();
        for i in 0..50 {
            cold.append_records(&[record(i)], Compression::None)
                .unwrap();
        }
        cold.flush().unwrap();
        // A power cut without a close: the cold partition recovers at its next open.
        fs.crash()
    };

    let storage = Arc::new(Storage::open(dir, config(&crashed)).unwrap());
    let hot = storage.partition("hot", 0).unwrap();
    crashed.stall(SimOp::Read, Some("cold-0"));
    let opener = |storage: &Arc<Storage>| {
        let storage = Arc::clone(storage);
        thread::spawn(move || storage.partition("cold", 0))
    };
    let first = opener(&storage);
    assert!(
        crashed.wait_for_stalled(1, HANG_GUARD),
        "the cold partition's recovery never read"
    );
    let second = opener(&storage);

    // While the cold partition recovers: an append to the open partition, and the opening
    // of another one (and an append to it), complete.
    let (tx, rx) = mpsc::channel();
    let worker = {
        let storage = Arc::clone(&storage);
        thread::spawn(move || {
            let hot = storage.partition("hot", 0).and_then(|log| {
                log.append_records(&[record(0)], Compression::None)
                    .map(|i| i.first_offset)
            });
            let warm = storage.partition("warm", 0).and_then(|log| {
                log.append_records(&[record(1)], Compression::None)
                    .map(|i| i.first_offset)
            });
            let _ = tx.send((hot.ok(), warm.ok()));
        })
    };
    let done = rx.recv_timeout(HANG_GUARD);
    assert_eq!(
        crashed.stalled(),
        1,
        "the cold partition is still recovering, and only once"
    );
    crashed.release_stalls();
    assert_eq!(
        done,
        Ok((Some(0), Some(0))),
        "an append or an open waited for another partition's recovery"
    );
    worker.join().unwrap();

    let first = first.join().unwrap().unwrap();
    let second = second.join().unwrap().unwrap();
    assert!(
        Arc::ptr_eq(&first, &second),
        "the partition was opened twice"
    );
    assert_eq!(first.log_end_offset(), 50);
    assert_eq!(hot.log_end_offset(), 1);
    drop((first, second, hot));
    Arc::try_unwrap(storage).unwrap().close().unwrap();
}
