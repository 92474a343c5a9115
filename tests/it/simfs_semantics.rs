//! The simulated filesystem keeps its promises: unsynced data and names may be lost or torn
//! at a crash and synced ones never are, runs repeat exactly from a seed, maps behave as
//! shared page-cache pages, and injected faults fire exactly as armed. Then the partition log
//! runs on it: clean close and reopen, and a crash after `flush()` keeps every flushed batch.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use streamlog::io::{File, FileSystem, OpenMode, SimError, SimFs, SimOp, SpaceLimitMode};
use streamlog::{Compression, Log, LogConfig, OwnedRecord};

const SEEDS: u64 = 300;

fn p(s: &str) -> &Path {
    Path::new(s)
}

/// A filesystem holding `/d/f`, empty, its name durable, and a handle to it.
fn with_file(seed: u64) -> (SimFs, Arc<dyn File>) {
    let fs = SimFs::new(seed);
    fs.create_dir_all(p("/d")).unwrap();
    let f = fs.open(p("/d/f"), OpenMode::ReadWrite).unwrap();
    fs.sync_dir(p("/d")).unwrap();
    (fs, f)
}

fn touch(fs: &SimFs, path: &str) {
    fs.open(p(path), OpenMode::ReadWrite).unwrap();
}

fn names(fs: &SimFs) -> BTreeSet<String> {
    fs.list_all()
        .into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

fn set(paths: &[&str]) -> BTreeSet<String> {
    paths.iter().map(|s| s.to_string()).collect()
}

fn assert_errno(r: io::Result<impl std::fmt::Debug>, code: i32) {
    let e = r.expect_err("the operation should fail");
    assert_eq!(e.raw_os_error(), Some(code), "{e}");
    assert_eq!(e.kind(), io::Error::from_raw_os_error(code).kind());
}

#[test]
fn unsynced_appends_are_lost_or_torn_and_synced_ones_survive() {
    let full: Vec<u8> = [[b'a'; 100], [b'b'; 100], [b'c'; 100]].concat();
    let mut kinds = BTreeSet::new();
    for seed in 0..SEEDS {
        let (fs, f) = with_file(seed);
        f.append(&[&full[..100]]).unwrap();
        f.sync_data().unwrap();
        f.append(&[&full[100..150], &full[150..200]]).unwrap();
        f.append(&[&full[200..]]).unwrap();
        assert_eq!(fs.read_durable(p("/d/f")).unwrap(), &full[..100]);
        assert_eq!(fs.read_current(p("/d/f")).unwrap(), full);

        let after = fs.crash();
        let got = after.read_durable(p("/d/f")).unwrap();
        assert!(
            got.len() >= 100 && full.starts_with(&got),
            "seed {seed}: the synced bytes then a prefix of the rest, got {} bytes",
            got.len()
        );
        let g = after.open(p("/d/f"), OpenMode::Read).unwrap();
        let mut back = vec![0u8; got.len()];
        g.read_exact_at(&mut back, 0).unwrap();
        assert_eq!(back, got);
        kinds.insert(match got.len() {
            100 => "unsynced lost",
            200 | 300 => "whole appends kept",
            _ => "torn",
        });
    }
    assert_eq!(kinds.len(), 3, "over {SEEDS} seeds: {kinds:?}");
}

#[test]
fn after_a_crash_everything_is_durable_and_old_handles_fail() {
    let (fs, f) = with_file(3);
    f.append(&[b"synced"]).unwrap();
    f.sync_data().unwrap();
    touch(&fs, "/d/g");
    f.append(&[b" and not"]).unwrap();
    let after = fs.crash();

    assert!(fs.is_crashed() && !after.is_crashed());
    assert!(f.append(&[b"x"]).is_err(), "a handle from before the crash");
    assert!(f.read_at(&mut [0u8; 4], 0).is_err());
    assert!(fs.open(p("/d/f"), OpenMode::Read).is_err());
    assert!(!fs.exists(p("/d/f")));
    assert_eq!(after.list_all(), after.list_durable());
    for path in after.list_all() {
        assert_eq!(after.read_current(&path), after.read_durable(&path));
    }
    // The crashed machine's state is frozen for inspection and did not change.
    assert_eq!(fs.read_current(p("/d/f")).unwrap(), b"synced and not");

    // Nothing is pending, so crashing again changes nothing.
    let again = after.crash();
    assert_eq!(again.list_all(), after.list_all());
    for path in after.list_all() {
        assert_eq!(again.read_durable(&path), after.read_durable(&path));
    }
    assert_eq!(after.op_count(), 0);
}

/// A run mixing every kind of operation; returns every file after a crash, a second round of
/// operations, and a second crash.
fn scenario(seed: u64) -> Vec<BTreeMap<PathBuf, Vec<u8>>> {
    let snapshot = |fs: &SimFs| -> BTreeMap<PathBuf, Vec<u8>> {
        fs.list_all()
            .into_iter()
            .map(|p| {
                let bytes = fs.read_durable(&p).unwrap();
                (p, bytes)
            })
            .collect()
    };
    let fs = SimFs::new(seed);
    for d in ["/a", "/b"] {
        fs.create_dir_all(p(d)).unwrap();
    }
    let log = fs.open(p("/a/log"), OpenMode::ReadWrite).unwrap();
    let idx = fs.open(p("/a/idx"), OpenMode::ReadWrite).unwrap();
    idx.set_len(64).unwrap();
    let map = idx.map_words(64, true).unwrap();
    fs.sync_dir(p("/a")).unwrap();
    for i in 0..20u32 {
        let body: Vec<u8> = (0..(i * 7 % 50 + 1)).map(|k| (k ^ i) as u8).collect();
        log.append(&[&body]).unwrap();
        map.words()[(i % 16) as usize].store(i.to_be(), Ordering::Relaxed);
        match i % 5 {
            0 => log.sync_data().unwrap(),
            1 => map.flush().unwrap(),
            2 => {
                let tmp = format!("/a/ckpt-{i}.tmp");
                let t = fs.open(p(&tmp), OpenMode::CreateNew).unwrap();
                t.write_at(&i.to_le_bytes(), 0).unwrap();
                fs.rename(p(&tmp), p("/b/ckpt")).unwrap();
            }
            3 => {
                log.write_at(b"over", u64::from(i)).unwrap();
                idx.set_len(64 + u64::from(i)).unwrap();
            }
            _ => {
                if fs.exists(p("/b/ckpt")) {
                    fs.remove(p("/b/ckpt")).unwrap();
                }
                fs.sync_dir(p("/b")).unwrap();
            }
        }
    }
    let first = fs.crash();
    let mut out = vec![snapshot(&first)];
    let f = first.open(p("/b/later"), OpenMode::ReadWrite).unwrap();
    f.append(&[&seed.to_le_bytes(), b"-tail"]).unwrap();
    first.rename(p("/a/log"), p("/b/log")).unwrap();
    out.push(snapshot(&first.crash()));
    out
}

#[test]
fn the_same_seed_and_calls_give_the_same_bytes() {
    let mut outcomes = BTreeSet::new();
    for seed in 0..100 {
        let once = scenario(seed);
        assert_eq!(once, scenario(seed), "seed {seed}");
        outcomes.insert(format!("{once:?}"));
    }
    assert!(
        outcomes.len() > 50,
        "seeds should differ: {}",
        outcomes.len()
    );
}

#[test]
fn unsynced_namespace_changes_may_be_undone_in_order_synced_ones_never() {
    let allowed = [
        set(&["/d/a", "/d/r"]),
        set(&["/d/a", "/d/b", "/d/r"]),
        set(&["/d/b", "/d/c", "/d/r"]),
        set(&["/d/b", "/d/c"]),
    ];
    let mut seen = BTreeSet::new();
    let mut new_file_lost = 0;
    for seed in 0..SEEDS {
        // a and r durable; then b created, a renamed to c, r removed.
        let setup = || {
            let fs = SimFs::new(seed);
            fs.create_dir_all(p("/d")).unwrap();
            touch(&fs, "/d/a");
            touch(&fs, "/d/r");
            fs.sync_dir(p("/d")).unwrap();
            touch(&fs, "/d/b");
            fs.rename(p("/d/a"), p("/d/c")).unwrap();
            fs.remove(p("/d/r")).unwrap();
            fs
        };
        let fs = setup();
        assert_eq!(names(&fs), set(&["/d/b", "/d/c"]));
        assert_eq!(
            fs.list(p("/d")).unwrap(),
            [p("/d/b"), p("/d/c")].map(Path::to_path_buf)
        );
        let got = names(&fs.crash());
        assert!(allowed.contains(&got), "seed {seed}: {got:?}");
        seen.insert(got);
        fs.sync_dir(p("/d")).unwrap_err(); // the old machine is gone

        let fs = setup();
        fs.sync_dir(p("/d")).unwrap();
        assert_eq!(names(&fs.crash()), set(&["/d/b", "/d/c"]), "seed {seed}");

        // Syncing a new file's data does not make its name durable.
        let fs = SimFs::new(seed);
        fs.create_dir_all(p("/d")).unwrap();
        let f = fs.open(p("/d/new"), OpenMode::ReadWrite).unwrap();
        f.append(&[b"data"]).unwrap();
        f.sync_data().unwrap();
        let after = fs.crash();
        match after.read_durable(p("/d/new")) {
            None => new_file_lost += 1,
            Some(bytes) => assert_eq!(bytes, b"data"),
        }
    }
    assert_eq!(seen.len(), allowed.len(), "{seen:?}");
    assert!(new_file_lost > 0 && new_file_lost < SEEDS);
}

#[test]
fn a_rename_between_directories_lands_in_each_independently() {
    let mut seen = BTreeSet::new();
    for seed in 0..SEEDS {
        let setup = || {
            let fs = SimFs::new(seed);
            for d in ["/x", "/y"] {
                fs.create_dir_all(p(d)).unwrap();
            }
            let f = fs.open(p("/x/f"), OpenMode::ReadWrite).unwrap();
            f.append(&[b"payload"]).unwrap();
            f.sync_data().unwrap();
            fs.sync_dir(p("/x")).unwrap();
            fs.rename(p("/x/f"), p("/y/f")).unwrap();
            fs
        };
        let after = setup().crash();
        let got = names(&after);
        for path in &got {
            assert_eq!(after.read_durable(p(path)).unwrap(), b"payload");
        }
        seen.insert(got);

        // Syncing the destination directory is what keeps the file.
        let fs = setup();
        fs.sync_dir(p("/y")).unwrap();
        let got = names(&fs.crash());
        assert!(got.contains("/y/f"), "seed {seed}: {got:?}");
        let fs = setup();
        fs.sync_dir(p("/y")).unwrap();
        fs.sync_dir(p("/x")).unwrap();
        assert_eq!(names(&fs.crash()), set(&["/y/f"]));
    }
    let all = [
        set(&[]),
        set(&["/x/f"]),
        set(&["/y/f"]),
        set(&["/x/f", "/y/f"]),
    ];
    assert_eq!(seen, all.into_iter().collect());
}

#[test]
fn map_stores_are_page_cache_pages() {
    let word = |bytes: [u8; 4]| u32::from_ne_bytes(bytes);
    let (fs, f) = with_file(0);
    f.set_len(16).unwrap();
    let map = f.map_words(16, true).unwrap();
    // Words hold file bytes: a big-endian store is big-endian in the file.
    map.words()[0].store(0x0102_0304u32.to_be(), Ordering::Relaxed);
    let mut buf = [0u8; 4];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(buf, [1, 2, 3, 4]);
    let reader = f.map_words(8, false).unwrap();
    assert_eq!(
        u32::from_be(reader.words()[0].load(Ordering::Relaxed)),
        0x0102_0304
    );
    // Writes through the file show in every map, as with a shared mapping.
    f.write_at(&[9, 9, 9, 9], 4).unwrap();
    assert_eq!(map.words()[1].load(Ordering::Relaxed), word([9; 4]));
    assert_eq!(reader.words()[1].load(Ordering::Relaxed), word([9; 4]));
    // Stores past the end of the file never reach it.
    f.set_len(6).unwrap();
    assert_eq!(map.words()[1].load(Ordering::Relaxed), word([9, 9, 0, 0]));
    map.words()[1].store(word([5, 6, 7, 8]), Ordering::Relaxed);
    map.words()[3].store(u32::MAX, Ordering::Relaxed);
    assert_eq!(f.len().unwrap(), 6);
    assert_eq!(
        fs.read_current(p("/d/f")).unwrap(),
        [1, 2, 3, 4, 5, 6],
        "looking does not copy"
    );
    f.set_len(16).unwrap();
    let mut all = [0u8; 16];
    f.read_exact_at(&mut all, 0).unwrap();
    assert_eq!(all, [1, 2, 3, 4, 5, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(map.words()[3].load(Ordering::Relaxed), 0);
    // Unmapping keeps the stores in the page cache.
    map.words()[2].store(word([7; 4]), Ordering::Relaxed);
    drop(map);
    f.read_exact_at(&mut all, 0).unwrap();
    assert_eq!(&all[8..12], &[7; 4]);
    assert!(f.map_words(6, true).is_err(), "not a multiple of 4");
}

#[test]
fn map_stores_are_lost_at_a_crash_unless_flushed_or_synced() {
    #[derive(Clone, Copy, Debug)]
    enum Then {
        Nothing,
        FlushMap,
        SyncFile,
    }
    for then in [Then::Nothing, Then::FlushMap, Then::SyncFile] {
        let mut lost = 0;
        for seed in 0..SEEDS {
            let (fs, f) = with_file(seed);
            f.set_len(16).unwrap();
            f.sync_data().unwrap();
            let map = f.map_words(16, true).unwrap();
            map.words()[2].store(0xA1B2_C3D4u32.to_be(), Ordering::Relaxed);
            match then {
                Then::Nothing => {}
                Then::FlushMap => map.flush().unwrap(),
                Then::SyncFile => f.sync_data().unwrap(),
            }
            let got = fs.crash().read_durable(p("/d/f")).unwrap();
            assert_eq!(got.len(), 16);
            if got[8..12] != [0xA1, 0xB2, 0xC3, 0xD4] {
                lost += 1;
            }
        }
        match then {
            Then::Nothing => assert!(lost > 0 && lost < SEEDS, "{then:?}: lost {lost}"),
            _ => assert_eq!(lost, 0, "{then:?}"),
        }
    }
}

#[test]
fn armed_faults_fire_once_or_always_and_write_nothing() {
    let (fs, f) = with_file(1);
    fs.fail_next(SimOp::Write, Some("/d/f"), SimError::Enospc);
    assert_errno(f.append(&[b"lost"]), 28);
    assert_eq!(f.len().unwrap(), 0);
    assert_eq!(fs.read_current(p("/d/f")).unwrap(), b"");
    f.append(&[b"kept"]).unwrap();

    fs.fail_next(SimOp::Write, Some("other"), SimError::Eio);
    f.write_at(b"K", 0).unwrap();
    touch(&fs, "/d/other");
    let other = fs.open(p("/d/other"), OpenMode::ReadWrite).unwrap();
    assert_errno(other.set_len(10), 5);
    other.set_len(10).unwrap();
    other.set_len(0).unwrap(); // shrinking is not a write that can fail

    fs.fail_always(SimOp::Sync, None, SimError::Eio);
    for _ in 0..3 {
        assert_errno(f.sync_data(), 5);
    }
    let map = f.map_words(4, true).unwrap();
    assert_errno(map.flush(), 5);
    fs.clear_faults();
    f.sync_data().unwrap();
    map.flush().unwrap();
    assert_eq!(fs.sync_count(), 2);

    fs.fail_next(SimOp::Read, None, SimError::Eio);
    assert_errno(f.read_at(&mut [0u8; 4], 0), 5);
    assert_eq!(f.read_at(&mut [0u8; 4], 0).unwrap(), 4);

    fs.fail_next(SimOp::Open, Some("new"), SimError::Eio);
    assert_errno(fs.open(p("/d/new"), OpenMode::ReadWrite), 5);
    assert!(!fs.exists(p("/d/new")));
    touch(&fs, "/d/new");

    fs.fail_next(SimOp::Rename, Some("/d/moved"), SimError::Eio);
    assert_errno(fs.rename(p("/d/new"), p("/d/moved")), 5);
    assert!(fs.exists(p("/d/new")) && !fs.exists(p("/d/moved")));
    fs.rename(p("/d/new"), p("/d/moved")).unwrap();

    fs.fail_next(SimOp::Remove, None, SimError::Eio);
    assert_errno(fs.remove(p("/d/moved")), 5);
    assert!(fs.exists(p("/d/moved")));

    fs.fail_next(SimOp::SyncDir, Some("/d"), SimError::Eio);
    assert_errno(fs.sync_dir(p("/d")), 5);
    assert!(!fs.list_durable().contains(&PathBuf::from("/d/moved")));
    fs.sync_dir(p("/d")).unwrap();
    assert!(fs.list_durable().contains(&PathBuf::from("/d/moved")));
    assert_eq!(fs.dir_sync_count(), 2);
}

#[test]
fn the_space_limit_fails_growing_writes_whole_or_after_a_prefix() {
    let (fs, f) = with_file(2);
    fs.set_space_limit(Some(150));
    f.append(&[&[1u8; 100]]).unwrap();
    assert_errno(f.append(&[&[2u8; 100]]), 28);
    assert_eq!(f.len().unwrap(), 100, "nothing written");
    assert_errno(f.set_len(151), 28);
    f.write_at(&[3u8; 100], 0).unwrap(); // overwriting needs no space
    f.append(&[&[4u8; 50]]).unwrap();
    assert_eq!(fs.used_bytes(), 150);
    assert_errno(f.append(&[b"x"]), 28);

    fs.set_space_limit_mode(SpaceLimitMode::PartialWrite);
    f.set_len(100).unwrap();
    assert_errno(f.append(&[&[5u8; 30], &[6u8; 30]]), 28);
    let got = fs.read_current(p("/d/f")).unwrap();
    assert_eq!(got.len(), 150);
    assert_eq!(&got[100..], [[5u8; 30].as_slice(), &[6u8; 20]].concat());

    // Space comes back when the last name and handle go.
    fs.remove(p("/d/f")).unwrap();
    assert_eq!(fs.used_bytes(), 150, "still open");
    drop(f);
    assert_eq!(fs.used_bytes(), 0);
    let g = fs.open(p("/d/g"), OpenMode::CreateNew).unwrap();
    g.append(&[&[7u8; 150]]).unwrap();
    fs.set_space_limit(None);
    g.append(&[&[7u8; 1000]]).unwrap();
}

#[test]
fn a_failed_sync_makes_nothing_durable_and_its_writes_never_become_durable() {
    for seed in 0..SEEDS {
        let (fs, f) = with_file(seed);
        f.append(&[&[b'a'; 100]]).unwrap();
        fs.fail_next(SimOp::Sync, None, SimError::Eio);
        assert_errno(f.sync_data(), 5);
        assert_eq!(fs.read_durable(p("/d/f")).unwrap(), b"");
        assert_eq!(fs.sync_count(), 0);
        assert_eq!(fs.read_current(p("/d/f")).unwrap(), [b'a'; 100]);
        let crashed = fs.crash();
        assert_eq!(crashed.read_durable(p("/d/f")).unwrap(), b"", "seed {seed}");

        // As on Linux, a later sync that succeeds does not bring the dropped writes back.
        let (fs, f) = with_file(seed);
        f.append(&[&[b'a'; 100]]).unwrap();
        fs.fail_next(SimOp::Sync, None, SimError::Eio);
        assert!(f.sync_data().is_err());
        f.append(&[b"after"]).unwrap();
        f.sync_data().unwrap();
        let durable = fs.read_durable(p("/d/f")).unwrap();
        assert_eq!(durable, [[0u8; 100].as_slice(), b"after"].concat());
        assert_eq!(
            fs.read_current(p("/d/f")).unwrap(),
            [[b'a'; 100].as_slice(), b"after"].concat()
        );
    }
}

#[test]
fn namespace_errors_look_like_linux() {
    let fs = SimFs::new(0);
    assert_errno(fs.open(p("/nodir/f"), OpenMode::ReadWrite), 2);
    assert_errno(fs.open(p("/f"), OpenMode::Read), 2);
    fs.create_dir_all(p("/d/e")).unwrap();
    assert_errno(fs.open(p("/d"), OpenMode::ReadWrite), 21);
    touch(&fs, "/d/f");
    assert_errno(fs.open(p("/d/f"), OpenMode::CreateNew), 17);
    assert_errno(fs.create_dir_all(p("/d/f/g")), 20);
    assert_errno(fs.remove(p("/d/missing")), 2);
    assert_errno(fs.rename(p("/d/missing"), p("/d/x")), 2);
    assert_errno(fs.list(p("/nowhere")), 2);
    let ro = fs.open(p("/d/f"), OpenMode::Read).unwrap();
    assert_errno(ro.append(&[b"x"]), 9);
    assert_errno(ro.map_words(4, true), 13);
    assert!(ro.as_std().is_none());
    assert_eq!(
        fs.list(p("/d/")).unwrap(),
        [p("/d/e"), p("/d/f")].map(Path::to_path_buf)
    );
    assert_eq!(ro.read_at(&mut [0u8; 1], u64::MAX).unwrap(), 0);
    assert_errno(ro.write_at(b"x", u64::MAX), 9);
    let rw = fs.open(p("/d/f"), OpenMode::ReadWrite).unwrap();
    assert_errno(rw.write_at(b"x", u64::MAX), 27);
    assert_errno(rw.set_len(u64::MAX), 27);
}

fn records(batch: usize) -> Vec<OwnedRecord> {
    (0..5)
        .map(|i| {
            let value = format!("b{batch}-r{i}");
            OwnedRecord::new(
                1_700_000_000_000 + batch as i64,
                Some(b"key"),
                Some(value.as_bytes()),
            )
        })
        .collect()
}

fn open_log(fs: &SimFs, config: &LogConfig) -> Log {
    Log::open_with(
        Arc::new(fs.clone()),
        p("/sim/p-0"),
        config.clone(),
        &mut |_| Ok(()),
    )
    .unwrap()
    .0
}

/// `(offset, value)` of every record in the log.
fn contents(log: &Log) -> Vec<(i64, String)> {
    log.records_from(log.log_start_offset())
        .map(|r| {
            let r = r.unwrap();
            let value = String::from_utf8(r.value().unwrap().to_vec()).unwrap();
            (r.offset(), value)
        })
        .collect()
}

/// What `records(b)` for each batch in `batches` holds once appended from offset 0.
fn expected(batches: std::ops::Range<usize>) -> Vec<(i64, String)> {
    batches
        .flat_map(|b| (0..5).map(move |i| ((b * 5 + i) as i64, format!("b{b}-r{i}"))))
        .collect()
}

#[test]
fn a_log_closes_and_reopens_on_simfs() {
    let fs = SimFs::new(1);
    let config = LogConfig::default();
    let log = open_log(&fs, &config);
    for b in 0..20 {
        log.append_records(&records(b), Compression::None).unwrap();
    }
    log.close().unwrap();
    drop(log);
    let log = open_log(&fs, &config);
    assert_eq!(log.log_end_offset(), 100);
    assert_eq!(contents(&log), expected(0..20));
    assert!(fs.sync_count() > 0 && fs.dir_sync_count() > 0);
}

/// Appends `flushed` batches and flushes, appends `more` without flushing, crashes, and
/// reopens. Returns what the log holds then and its end offset, after checking that every
/// flushed record is there at its offset, that what follows are unflushed records at their
/// offsets, and that the reopened log appends at its end and keeps that over a clean reopen.
fn crash_after_flush(
    seed: u64,
    config: &LogConfig,
    flushed: usize,
    more: usize,
) -> (Vec<(i64, String)>, i64) {
    let fs = SimFs::new(seed);
    let log = open_log(&fs, config);
    for b in 0..flushed {
        log.append_records(&records(b), Compression::None).unwrap();
    }
    log.flush().unwrap();
    for b in flushed..flushed + more {
        log.append_records(&records(b), Compression::Lz4).unwrap();
    }
    let after = fs.crash();
    drop(log);
    let log = open_log(&after, config);
    let got = contents(&log);
    let all = expected(0..flushed + more);
    assert_eq!(
        got.get(..flushed * 5),
        Some(&all[..flushed * 5]),
        "seed {seed}: a flushed record is missing"
    );
    let mut rest = all[flushed * 5..].iter();
    for r in &got[flushed * 5..] {
        assert!(
            rest.any(|e| e == r),
            "seed {seed}: {r:?} was never appended there"
        );
    }
    let log_end_offset = log.log_end_offset();
    assert!(
        log_end_offset >= got.last().map_or(0, |r| r.0 + 1),
        "seed {seed}"
    );
    let info = log
        .append_records(&records(999), Compression::None)
        .unwrap();
    assert_eq!(info.first_offset, log_end_offset);
    log.close().unwrap();
    drop(log);
    let log = open_log(&after, config);
    assert_eq!(contents(&log).len(), got.len() + 5, "seed {seed}");
    (got, log_end_offset)
}

/// Default segments with small indexes (SimFs scans a map on every access to its file).
fn small_indexes() -> LogConfig {
    LogConfig::builder()
        .segment_index_bytes(4096)
        .build()
        .unwrap()
}

/// Small segments and indexes, so that a few batches roll.
fn rolling() -> LogConfig {
    LogConfig::builder()
        .segment_bytes(1024)
        .segment_index_bytes(1024)
        .index_interval_bytes(128)
        .build()
        .unwrap()
}

#[test]
fn a_crash_keeps_every_batch_flushed_before_it() {
    for seed in 0..3 {
        crash_after_flush(seed, &LogConfig::default(), 10, 5);
    }
    let small_indexes = LogConfig::builder()
        .segment_index_bytes(4096)
        .build()
        .unwrap();
    for seed in 0..50 {
        crash_after_flush(seed, &small_indexes, 10, 5);
    }
}

#[test]
fn a_crash_keeps_every_batch_flushed_before_it_across_rolls() {
    for seed in 0..100 {
        crash_after_flush(seed, &rolling(), 40, 10);
    }
}

/// Each file's unsynced writes reach the disk independently, so a crash can drop the tail of
/// one segment at a batch boundary and keep (some of) the next one's. Recovery cuts only at
/// invalid bytes, so the log comes back with a hole: seed 0 keeps offsets 245..250 after
/// losing 210..245; seed 3 ends its data at 235 but its end offset at 245, the base of an
/// empty last segment, so the next append lands at 245.
#[test]
fn a_crash_leaves_no_hole_in_the_unflushed_tail() {
    let all = expected(0..50);
    for seed in 0..100 {
        let (got, log_end_offset) = crash_after_flush(seed, &rolling(), 40, 10);
        assert!(
            all.starts_with(&got),
            "seed {seed}: {} records, a hole",
            got.len()
        );
        assert_eq!(log_end_offset, got.len() as i64, "seed {seed}");
    }
}

/// A replica's first batch starting past the end of an empty log replaces the empty active
/// segment with one named after the batch.
#[test]
fn a_crash_keeps_a_flushed_replica_batch_that_starts_past_the_end() {
    for seed in 0..50 {
        let fs = SimFs::new(seed);
        let log = open_log(&fs, &small_indexes());
        let opts = streamlog::BatchOptions {
            base_offset: 100,
            ..streamlog::BatchOptions::default()
        };
        let mut b = streamlog::BatchBuilder::new(opts);
        b.append(1_700_000_000_000, Some(b"k"), Some(b"replicated"), &[])
            .unwrap();
        log.append_replicated(&b.build().unwrap()).unwrap();
        log.flush().unwrap();
        let after = fs.crash();
        drop(log);
        let log = open_log(&after, &small_indexes());
        assert_eq!(
            contents(&log),
            [(100, "replicated".to_string())],
            "seed {seed}: files {:?}",
            after.list_all()
        );
    }
}

#[test]
fn a_crash_after_close_keeps_everything() {
    for seed in 0..50 {
        let fs = SimFs::new(seed);
        let log = open_log(&fs, &rolling());
        for b in 0..30 {
            log.append_records(&records(b), Compression::None).unwrap();
        }
        log.close().unwrap();
        let after = fs.crash();
        drop(log);
        let log = open_log(&after, &rolling());
        assert_eq!(contents(&log), expected(0..30), "seed {seed}");
    }
}

#[test]
fn a_log_survives_enospc_mid_append_and_a_failed_fsync_poisons_it() {
    let fs = SimFs::new(5);
    let log = open_log(&fs, &rolling());
    for b in 0..3 {
        log.append_records(&records(b), Compression::None).unwrap();
    }
    fs.set_space_limit_mode(SpaceLimitMode::PartialWrite);
    fs.set_space_limit(Some(fs.used_bytes() + 40));
    assert!(log.append_records(&records(3), Compression::None).is_err());
    assert_eq!(
        contents(&log),
        expected(0..3),
        "no partial batch is visible"
    );
    fs.set_space_limit(None);
    log.append_records(&records(3), Compression::None).unwrap();
    log.flush().unwrap();
    assert_eq!(contents(&log), expected(0..4));

    fs.fail_next(SimOp::Sync, Some(".log"), SimError::Eio);
    log.append_records(&records(4), Compression::None).unwrap();
    assert!(log.flush().is_err());
    assert!(log.flush().is_err(), "a failed fsync poisons the log");
    assert!(log.append_records(&records(5), Compression::None).is_err());
    let after = fs.crash();
    drop(log);
    let log = open_log(&after, &rolling());
    assert_eq!(
        contents(&log),
        expected(0..4),
        "the batch whose fsync failed is gone"
    );
}
