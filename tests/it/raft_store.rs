//! The openraft log store on streamlog: openraft's own storage suite on disk and on SimFs,
//! the log layout (one batch per entry, term as leader epoch, leader in a header), reopen,
//! group commit, and snapshot files.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{RaftLogReader, RaftSnapshotBuilder, StorageError, Vote};
use streamlog::io::{FileSystem, SimFs};
use streamlog::raft::{LEADER_HEADER, LOG_DIR};
use streamlog::{Batches, LogConfig};

use crate::common::gate::{Gate, GatedFs};
use crate::common::raft::*;

/// Stores in fresh temporary directories on the real filesystem.
struct OnDisk;

impl StoreBuilder<KvConfig, Store, Machine, tempfile::TempDir> for OnDisk {
    async fn build(&self) -> Result<(tempfile::TempDir, Store, Machine), StorageError<u64>> {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("raft"), LogConfig::default()).unwrap();
        let sm = Machine::open(dir.path().join("sm")).unwrap();
        Ok((dir, store, sm))
    }
}

/// Stores on a fresh simulated filesystem each, seeded in turn.
struct OnSimFs(AtomicU64);

impl StoreBuilder<KvConfig, Store, Machine> for OnSimFs {
    async fn build(&self) -> Result<((), Store, Machine), StorageError<u64>> {
        let fs: Arc<dyn FileSystem> = Arc::new(SimFs::new(self.0.fetch_add(1, Ordering::SeqCst)));
        let store = Store::open_with(Arc::clone(&fs), "/raft".as_ref(), small_config()).unwrap();
        let sm = Machine::open_with(fs, "/sm".as_ref()).unwrap();
        Ok(((), store, sm))
    }
}

#[test]
fn openraft_suite_passes_on_disk() {
    Suite::test_all(OnDisk).unwrap();
}

#[test]
fn openraft_suite_passes_on_simfs() {
    Suite::test_all(OnSimFs(AtomicU64::new(1))).unwrap();
}

#[test]
fn each_entry_is_one_batch_at_its_index_with_its_term_and_leader() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let mut store = Store::open(dir.path(), LogConfig::default()).unwrap();
        store
            .blocking_append([set_entry(3, 7, 5, "a"), set_entry(3, 7, 6, "b")])
            .await
            .unwrap();
        store
            .blocking_append([set_entry(4, 2, 7, "c")])
            .await
            .unwrap();
        let log = store.log();
        assert_eq!(log.log_end_offset(), 8);
        let bytes = log.read_bytes(5, 1 << 20, None).unwrap();
        let batches: Vec<_> = Batches::new(&bytes).map(Result::unwrap).collect();
        let layout: Vec<(i64, i32, i32)> = batches
            .iter()
            .map(|b| {
                (
                    b.base_offset(),
                    b.partition_leader_epoch(),
                    b.record_count(),
                )
            })
            .collect();
        assert_eq!(layout, [(5, 3, 1), (6, 3, 1), (7, 4, 1)]);
        let records = batches[2].records().unwrap();
        let record = records.iter().next().unwrap().unwrap();
        let leader: Vec<_> = record
            .headers()
            .filter(|h| h.key == LEADER_HEADER.as_bytes())
            .map(|h| h.value.unwrap().to_vec())
            .collect();
        assert_eq!(leader, [b"2".to_vec()]);
        let entries = store.try_get_log_entries(5..8).await.unwrap();
        let ids: Vec<_> = entries.iter().map(|e| e.log_id).collect();
        assert_eq!(ids, [log_id(3, 7, 5), log_id(3, 7, 6), log_id(4, 2, 7)]);
        assert_eq!(entries[2], set_entry(4, 2, 7, "c"));
    });
    assert!(dir.path().join(LOG_DIR).is_dir());
}

#[test]
fn reopen_keeps_entries_vote_committed_and_purged() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    rt.block_on(async {
        let mut store = Store::open(dir.path(), LogConfig::default()).unwrap();
        let entries: Vec<_> = (0..10).map(|i| set_entry(1, 1, i, "v")).collect();
        store.blocking_append(entries).await.unwrap();
        store.save_vote(&Vote::new(2, 1)).await.unwrap();
        store.purge(log_id(1, 1, 3)).await.unwrap();
        store.truncate(log_id(1, 1, 8)).await.unwrap();
        store
            .blocking_append([set_entry(2, 3, 8, "w")])
            .await
            .unwrap();
        store.save_committed(Some(log_id(2, 3, 8))).await.unwrap();
    });
    rt.block_on(async {
        let mut store = Store::open(dir.path(), LogConfig::default()).unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 3)));
        assert_eq!(state.last_log_id, Some(log_id(2, 3, 8)));
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(2, 1)));
        assert_eq!(store.read_committed().await.unwrap(), Some(log_id(2, 3, 8)));
        let ids: Vec<_> = store
            .try_get_log_entries(0..100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.log_id)
            .collect();
        let mut want: Vec<_> = (4..8).map(|i| log_id(1, 1, i)).collect();
        want.push(log_id(2, 3, 8));
        assert_eq!(ids, want);
    });
}

#[test]
fn append_refuses_a_hole_or_going_back() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let mut store = Store::open(dir.path(), LogConfig::default()).unwrap();
        store
            .blocking_append([set_entry(1, 1, 0, "a")])
            .await
            .unwrap();
        assert!(store
            .blocking_append([set_entry(1, 1, 2, "c")])
            .await
            .is_err());
        assert!(store
            .blocking_append([set_entry(1, 1, 0, "a")])
            .await
            .is_err());
        assert!(store
            .blocking_append([set_entry(1, 1, 1, "b"), set_entry(1, 1, 3, "d")])
            .await
            .is_err());
        assert_eq!(
            store.log().log_end_offset(),
            1,
            "nothing of a refused append stays"
        );
        let too_big = set_entry(1 << 31, 1, 1, "e");
        assert!(store.blocking_append([too_big]).await.is_err());
        assert_eq!(store.log().log_end_offset(), 1);
    });
}

#[test]
fn purge_past_the_log_end_then_append_continues_after_it() {
    let fs: Arc<dyn FileSystem> = Arc::new(SimFs::new(3));
    let rt = runtime();
    rt.block_on(async {
        let mut store =
            Store::open_with(Arc::clone(&fs), "/r".as_ref(), LogConfig::default()).unwrap();
        store
            .blocking_append((0..3).map(|i| set_entry(1, 1, i, "v")))
            .await
            .unwrap();
        // As after installing a snapshot far ahead of the log.
        store.purge(log_id(5, 2, 100)).await.unwrap();
        assert_eq!(store.try_get_log_entries(0..200).await.unwrap(), []);
        store
            .blocking_append([set_entry(5, 2, 101, "x"), set_entry(5, 2, 102, "y")])
            .await
            .unwrap();
        store.truncate(log_id(5, 2, 102)).await.unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(5, 2, 101)));
    });
    rt.block_on(async {
        let mut store = Store::open_with(fs, "/r".as_ref(), LogConfig::default()).unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(5, 2, 100)));
        assert_eq!(state.last_log_id, Some(log_id(5, 2, 101)));
        let entries = store.try_get_log_entries(0..200).await.unwrap();
        assert_eq!(entries, [set_entry(5, 2, 101, "x")]);
    });
}

/// Appends that arrive while an fsync runs share the next one: while the first append's
/// fsync is held, nine more are queued; all ten complete after exactly two fsyncs of the
/// log, and each only once its entries are durable.
#[test]
fn appends_queued_during_an_fsync_share_the_next_one() {
    let gate = Gate::new(SimFs::new(11));
    let fs: Arc<dyn FileSystem> = Arc::new(GatedFs(Arc::clone(&gate)));
    let mut store = Store::open_with(fs, "/r".as_ref(), LogConfig::default()).unwrap();
    let syncs_before = gate.log_syncs.load(Ordering::SeqCst);
    let (reached_tx, reached_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    gate.hold_next_log_sync(reached_tx, release_rx);
    let (done_tx, done_rx) = mpsc::channel();
    let tx = done_tx.clone();
    store
        .append_with_callback([set_entry(1, 1, 0, "first")], move |r| {
            tx.send((0, r.is_ok())).unwrap()
        })
        .unwrap();
    reached_rx.recv().unwrap(); // the committer is inside the first fsync
    for i in 1..10 {
        let tx = done_tx.clone();
        store
            .append_with_callback([set_entry(1, 1, i, "more")], move |r| {
                tx.send((i, r.is_ok())).unwrap()
            })
            .unwrap();
    }
    assert!(done_rx.try_recv().is_err(), "nothing is durable yet");
    release_tx.send(()).unwrap();
    let mut done: Vec<_> = (0..10).map(|_| done_rx.recv().unwrap()).collect();
    done.sort();
    assert_eq!(done, (0..10).map(|i| (i, true)).collect::<Vec<_>>());
    assert_eq!(gate.log_syncs.load(Ordering::SeqCst) - syncs_before, 2);
    // Durable means it survives power loss.
    gate.cut();
    drop(store);
    let after: Arc<dyn FileSystem> = Arc::new(gate.fs.crash());
    let store = Store::open_with(after, "/r".as_ref(), LogConfig::default()).unwrap();
    assert_eq!(store.log().log_end_offset(), 10);
}

#[test]
fn snapshot_is_a_file_that_survives_reopen_and_a_bad_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let snapshot = rt.block_on(async {
        let mut sm = Machine::open(dir.path()).unwrap();
        sm.apply([set_entry(1, 1, 1, "a"), set_entry(1, 1, 2, "b")])
            .await
            .unwrap();
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap()
    });
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 1, 2)));
    let path = dir.path().join(streamlog::raft::SNAPSHOT_FILE);
    assert!(path.is_file());
    rt.block_on(async {
        let mut sm = Machine::open(dir.path()).unwrap();
        assert_eq!(sm.applied(), Some(log_id(1, 1, 2)));
        assert_eq!(sm.data().0.get("k2").map(String::as_str), Some("b"));
        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, snapshot.meta);
        // A snapshot that does not decode is refused and changes nothing.
        let mut data = sm.begin_receiving_snapshot().await.unwrap();
        data.get_mut().extend_from_slice(b"{not json");
        let mut meta = snapshot.meta.clone();
        meta.last_log_id = Some(log_id(2, 1, 9));
        assert!(sm.install_snapshot(&meta, data).await.is_err());
        assert_eq!(sm.applied(), Some(log_id(1, 1, 2)));
    });
    // A flipped byte in the file is caught by its CRC.
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    assert!(Machine::open(dir.path()).is_err());
}
