//! Replays the `recover_segment` fuzz target's corpus (fuzz/corpus/recover_segment) through
//! the routine the target runs (tests/common/recover_segment.rs), so every input the fuzzer
//! saved stays a regression test without nightly Rust or cargo-fuzz. The seeds named
//! `valid_*` are partition directories the library wrote; they must open and read back.
//!
//! The seeds are made by this file too: `STREAMLOG_WRITE_RECOVER_CORPUS=1 cargo test --test
//! fuzz_corpus_recover_segment` rewrites them from the library's current output.

use crate::common::recover_segment;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use recover_segment::{
    recover_from_bytes, Layout, CLEAN, LOG_START, RECOVERY_POINT, TRUNCATE_DAMAGE, TWO_SEGMENTS,
};
use streamlog::io::SimFs;
use streamlog::{Compression, Log, LogConfig, OwnedRecord};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/recover_segment")
}

#[test]
fn recover_segment_corpus_opens_without_panicking() {
    if std::env::var_os("STREAMLOG_WRITE_RECOVER_CORPUS").is_some() {
        write_seeds(&corpus_dir());
    }
    let mut files = 0;
    let mut valid = 0;
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let outcome = recover_from_bytes(&bytes);
        files += 1;
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("valid_") {
            assert!(outcome.error.is_none(), "{name}: {outcome:?}");
            assert!(outcome.records > 0, "{name}: {outcome:?}");
            valid += 1;
        }
        if name.starts_with("refused_") {
            assert!(
                outcome.error.is_some(),
                "{name} should not open: {outcome:?}"
            );
        }
    }
    assert!(
        files >= 10,
        "only {files} inputs in {}",
        corpus_dir().display()
    );
    assert!(valid >= 4, "only {valid} valid seeds");
}

/// The seeds can also be built on the fly: they open as their names say.
#[test]
fn freshly_built_seeds_open_as_named() {
    for (name, layout) in seeds() {
        let outcome = recover_from_bytes(&layout.encode());
        if name.starts_with("valid_") {
            assert!(
                outcome.error.is_none() && outcome.records > 0,
                "{name}: {outcome:?}"
            );
        }
        if name.starts_with("refused_") {
            assert!(outcome.error.is_some(), "{name}: {outcome:?}");
        }
        if name.starts_with("damaged_") {
            assert!(outcome.error.is_none(), "{name}: {outcome:?}");
            assert!(outcome.fully_recovered, "{name}: {outcome:?}");
        }
    }
}

fn write_seeds(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, layout) in seeds() {
        std::fs::write(dir.join(format!("{name}.bin")), layout.encode()).unwrap();
    }
}

const DIR: &str = "/seed/t-0";

/// A log the library writes on SimFs: `batches` batches of a few records (codecs
/// alternating), rolled after `roll_after` batches when given; closed cleanly or dropped.
struct Built {
    fs: SimFs,
    bases: Vec<i64>,
    end: i64,
}

fn build(batches: usize, roll_after: Option<usize>, close: bool, delete_before: i64) -> Built {
    let fs = SimFs::new(1);
    let config = LogConfig::builder()
        .segment_index_bytes(96)
        .index_interval_bytes(64)
        .segment_ms(None)
        .build()
        .unwrap();
    let (log, _) = Log::open_with(
        Arc::new(fs.clone()),
        Path::new(DIR),
        config,
        &mut |_| Ok(()),
    )
    .unwrap();
    let codecs = [Compression::None, Compression::Lz4, Compression::Gzip];
    for b in 0..batches {
        if roll_after == Some(b) {
            log.flush().unwrap();
            log.checkpoint().unwrap();
            log.roll().unwrap();
        }
        let records: Vec<OwnedRecord> = (0..3)
            .map(|i| {
                let value = format!("batch {b} record {i}");
                OwnedRecord::new(
                    1_700_000_000_000 + b as i64,
                    Some(b"key"),
                    Some(value.as_bytes()),
                )
            })
            .collect();
        log.append_records(&records, codecs[b % codecs.len()])
            .unwrap();
    }
    if delete_before > 0 {
        log.delete_records_before(delete_before).unwrap();
    }
    let bases = log.segment_base_offsets();
    let end = log.log_end_offset();
    if close {
        log.close().unwrap();
    }
    drop(log);
    Built { fs, bases, end }
}

impl Built {
    fn file(&self, base: i64, ext: &str) -> Vec<u8> {
        self.fs
            .read_current(&Path::new(DIR).join(format!("{base:020}.{ext}")))
            .unwrap_or_default()
    }

    fn checkpoint(&self, name: &str) -> Option<u16> {
        let text = self.fs.read_current(&Path::new(DIR).join(name))?;
        let text = String::from_utf8(text).unwrap();
        text.trim_end().rsplit(' ').next()?.parse().ok()
    }

    fn layout(&self, clean: bool) -> Layout {
        let last = *self.bases.last().unwrap();
        let mut flags = if clean { CLEAN } else { 0 };
        let mut layout = Layout {
            first_base: u8::try_from(self.bases[0]).unwrap(),
            last_log: self.file(last, "log"),
            index: self.file(last, "index"),
            timeindex: self.file(last, "timeindex"),
            ..Layout::default()
        };
        if self.bases.len() == 2 {
            flags |= TWO_SEGMENTS;
            layout.first_log = self.file(self.bases[0], "log");
            layout.second_base_delta = u16::try_from(last - self.bases[0]).unwrap();
        }
        if let Some(rp) = self.checkpoint("recovery-point-offset-checkpoint") {
            flags |= RECOVERY_POINT;
            layout.recovery_point = rp;
        }
        if let Some(start) = self.checkpoint("log-start-offset-checkpoint") {
            flags |= LOG_START;
            layout.log_start = start;
        }
        layout.flags = flags;
        layout
    }
}

/// The seed corpus: directories the library wrote, and damaged copies of them.
fn seeds() -> Vec<(&'static str, Layout)> {
    let one = build(4, None, false, 0);
    let one_closed = build(4, None, true, 0);
    let two = build(6, Some(3), false, 0);
    let two_closed = build(6, Some(3), true, 4);
    assert_eq!(two.bases.len(), 2);
    let mut out = vec![
        ("valid_unclean_one_segment", one.layout(false)),
        ("valid_clean_one_segment", one_closed.layout(true)),
        ("valid_unclean_two_segments", two.layout(false)),
        (
            "valid_clean_two_segments_log_start",
            two_closed.layout(true),
        ),
    ];

    let mut torn = one.layout(false);
    let n = torn.last_log.len();
    torn.last_log.truncate(n - 20);
    out.push(("damaged_unclean_torn_tail", torn.clone()));

    let mut flipped = one.layout(false);
    let n = flipped.last_log.len();
    flipped.last_log[n / 2] ^= 0x40;
    out.push(("damaged_unclean_flipped_byte", flipped));

    let mut claimed = torn.clone();
    claimed.flags |= RECOVERY_POINT;
    claimed.recovery_point = u16::try_from(one.end).unwrap();
    out.push(("refused_damage_below_recovery_point", claimed.clone()));
    claimed.flags |= TRUNCATE_DAMAGE;
    out.push(("damaged_unclean_below_recovery_point_truncated", claimed));

    let mut garbage_index = one_closed.layout(true);
    for (i, b) in garbage_index.index.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37);
    }
    garbage_index
        .timeindex
        .truncate(garbage_index.timeindex.len().saturating_sub(12));
    out.push(("valid_clean_garbage_indexes", garbage_index));

    // Without a recovery point, so both segments are scanned.
    let mut overlap = two.layout(false);
    overlap.flags &= !RECOVERY_POINT;
    overlap.second_base_delta = 2;
    out.push(("damaged_unclean_overlapping_segments", overlap));

    let mut hole = two.layout(false);
    hole.flags &= !RECOVERY_POINT;
    hole.second_base_delta += 5;
    out.push(("damaged_unclean_hole_between_segments", hole));

    out.push(("empty", Layout::default()));
    out
}
