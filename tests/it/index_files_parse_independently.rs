//! The `.index` and `.timeindex` files a closed log leaves, parsed by hand in Kafka's layout
//! and checked against the `.log` files, also parsed by hand: nothing of the crate's own
//! index or batch code is trusted here, only the bytes on disk.
//!
//! ```text
//! .log        batches: base offset i64 @0, batch length i32 @8, magic i8 @16,
//!             last offset delta i32 @23, max timestamp i64 @35        (big-endian)
//! .index      8-byte entries: offset relative to the segment i32, file position i32
//! .timeindex 12-byte entries: timestamp i64, offset relative to the segment i32
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use streamlog::{Compression, Log, LogConfig, ManualClock, OwnedRecord, TimestampType};

const START_MS: i64 = 1_700_000_000_000;

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// A batch header as read from a `.log` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchAt {
    position: u64,
    size: u64,
    base: i64,
    last: i64,
    max_timestamp: i64,
}

/// Walks a `.log` file batch by batch; the batches must cover it exactly.
fn parse_log(bytes: &[u8], name: &str) -> Vec<BatchAt> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        assert!(bytes.len() - pos >= 61, "{name}: partial header at {pos}");
        let h = &bytes[pos..];
        let length = be_i32(h, 8);
        assert!(length >= 49, "{name}: batch length {length} at {pos}");
        let size = length as usize + 12;
        assert!(
            pos + size <= bytes.len(),
            "{name}: batch at {pos} runs past the end"
        );
        assert_eq!(h[16], 2, "{name}: magic at {pos}");
        let base = be_i64(h, 0);
        out.push(BatchAt {
            position: pos as u64,
            size: size as u64,
            base,
            last: base + i64::from(be_i32(h, 23)),
            max_timestamp: be_i64(h, 35),
        });
        pos += size;
    }
    out
}

/// What the directory's files hold, by segment base offset.
#[derive(Debug, Default)]
struct SegmentFiles {
    log: Option<Vec<u8>>,
    index: Option<Vec<u8>>,
    timeindex: Option<Vec<u8>>,
}

fn read_segments(dir: &Path) -> BTreeMap<i64, SegmentFiles> {
    let mut segments: BTreeMap<i64, SegmentFiles> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(!name.ends_with(".tmp"), "{name} left behind");
        let Some((stem, ext)) = name.split_once('.') else {
            continue;
        };
        if !["log", "index", "timeindex"].contains(&ext) {
            continue;
        }
        assert!(
            stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()),
            "{name}: a segment file is named by its base offset in 20 digits"
        );
        let base: i64 = stem.parse().unwrap();
        let bytes = Some(std::fs::read(&path).unwrap());
        let files = segments.entry(base).or_default();
        match ext {
            "log" => files.log = bytes,
            "index" => files.index = bytes,
            _ => files.timeindex = bytes,
        }
    }
    segments
}

/// Checks every segment's indexes against its batches; returns all batches in log order.
fn check_directory(dir: &Path, index_interval_bytes: u32) -> Vec<BatchAt> {
    let segments = read_segments(dir);
    assert!(
        segments.len() > 1,
        "the log was meant to have several segments"
    );
    let mut all: Vec<BatchAt> = Vec::new();
    for (&base, files) in &segments {
        let name = format!("{base:020}");
        let log = files
            .log
            .as_ref()
            .unwrap_or_else(|| panic!("{name}.log missing"));
        let index = files
            .index
            .as_ref()
            .unwrap_or_else(|| panic!("{name}.index missing"));
        let time = files
            .timeindex
            .as_ref()
            .unwrap_or_else(|| panic!("{name}.timeindex missing"));
        let batches = parse_log(log, &format!("{name}.log"));
        assert!(!batches.is_empty(), "{name}.log is empty");
        assert_eq!(batches[0].base, base, "{name}.log starts at its name");
        for w in batches.windows(2) {
            assert_eq!(w[1].base, w[0].last + 1, "{name}.log: offsets run on");
        }
        if let Some(prev) = all.last() {
            assert_eq!(
                base,
                prev.last + 1,
                "{name} starts after the previous segment"
            );
        }
        check_offset_index(&name, index, base, &batches, index_interval_bytes);
        check_time_index(&name, time, base, &batches);
        all.extend(batches);
    }
    all
}

/// The entries of an index file, which must hold whole entries only (trimmed on close).
fn parse_entries<T>(bytes: &[u8], size: usize, file: &str, parse: fn(&[u8]) -> T) -> Vec<T> {
    assert_eq!(
        bytes.len() % size,
        0,
        "{file} is not trimmed to whole entries"
    );
    bytes.chunks_exact(size).map(parse).collect()
}

/// `.index`: whole 8-byte entries, each pointing at the start of a batch whose last offset is
/// the entry's offset; both fields strictly increasing; and exactly the entries Kafka's rule
/// writes (one for a batch once more than `index.interval.bytes` were appended since the
/// last entry).
fn check_offset_index(
    name: &str,
    index: &[u8],
    base: i64,
    batches: &[BatchAt],
    index_interval_bytes: u32,
) {
    let entries = parse_entries(index, 8, &format!("{name}.index"), |e| {
        (be_u32(e, 0), be_u32(e, 4))
    });
    for w in entries.windows(2) {
        assert!(
            w[1].0 > w[0].0 && w[1].1 > w[0].1,
            "{name}.index: entries {:?} then {:?} do not increase",
            w[0],
            w[1]
        );
    }
    for &(relative, position) in &entries {
        let batch = batches
            .iter()
            .find(|b| b.position == u64::from(position))
            .unwrap_or_else(|| panic!("{name}.index: position {position} is no batch start"));
        assert_eq!(
            batch.last,
            base + i64::from(relative),
            "{name}.index: entry ({relative}, {position}) is not its batch's last offset"
        );
    }
    let mut expected = Vec::new();
    let mut since_last_entry = 0u64;
    for b in batches {
        if since_last_entry > u64::from(index_interval_bytes) {
            expected.push(((b.last - base) as u32, b.position as u32));
            since_last_entry = 0;
        }
        since_last_entry += b.size;
    }
    assert_eq!(
        entries, expected,
        "{name}.index: entries against Kafka's rule"
    );
}

/// `.timeindex`: whole 12-byte entries with strictly increasing timestamps and
/// non-decreasing offsets inside the segment; each entry is the running maximum of the
/// batches' max timestamps, at the first batch that reached it; the last entry is the
/// segment's max timestamp (written when the segment was sealed, or when the log closed).
fn check_time_index(name: &str, time: &[u8], base: i64, batches: &[BatchAt]) {
    let entries = parse_entries(time, 12, &format!("{name}.timeindex"), |e| {
        (be_i64(e, 0), be_u32(e, 8))
    });
    for w in entries.windows(2) {
        assert!(
            w[1].0 > w[0].0 && w[1].1 >= w[0].1,
            "{name}.timeindex: entries {:?} then {:?} do not increase",
            w[0],
            w[1]
        );
    }
    let last_offset = batches.last().unwrap().last;
    for &(timestamp, relative) in &entries {
        let offset = base + i64::from(relative);
        assert!(
            (base..=last_offset).contains(&offset),
            "{name}.timeindex: offset {offset} outside {base}..={last_offset}"
        );
        let i = batches
            .iter()
            .position(|b| b.last == offset)
            .unwrap_or_else(|| panic!("{name}.timeindex: {offset} is no batch's last offset"));
        assert_eq!(
            batches[i].max_timestamp, timestamp,
            "{name}.timeindex: ({timestamp}, {offset}) against its batch"
        );
        assert!(
            batches[..i].iter().all(|b| b.max_timestamp < timestamp),
            "{name}.timeindex: ({timestamp}, {offset}) is not where the maximum was first reached"
        );
    }
    let max = batches.iter().map(|b| b.max_timestamp).max().unwrap();
    assert_eq!(
        entries.last().map(|e| e.0),
        Some(max),
        "{name}.timeindex: a sealed segment's last entry is its max timestamp"
    );
}

/// A deterministic stream of numbers, so that the log's contents are the same every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

/// What the test appended, by batch: (base offset, last offset).
struct Writer {
    log: Log,
    clock: Arc<ManualClock>,
    rng: Lcg,
    appended: Vec<(i64, i64)>,
}

impl Writer {
    fn append_batches(&mut self, n: usize) {
        let codecs = [Compression::None, Compression::Gzip, Compression::Lz4];
        for _ in 0..n {
            self.clock.advance(self.rng.next(300) as i64);
            let now = {
                use streamlog::Clock;
                self.clock.now_ms()
            };
            let count = 1 + self.rng.next(8) as usize;
            let records: Vec<OwnedRecord> = (0..count)
                .map(|i| {
                    // Timestamps wander backwards too, so that the time index only grows at
                    // some batches.
                    let timestamp = now - 2_000 + self.rng.next(3_000) as i64;
                    let key = format!("key-{}", self.rng.next(50));
                    let value = vec![b'a' + (i % 26) as u8; self.rng.next(120) as usize];
                    OwnedRecord::new(timestamp, Some(key.as_bytes()), Some(&value))
                })
                .collect();
            let codec = codecs[self.rng.next(3) as usize];
            let info = self.log.append_records(&records, codec).unwrap();
            self.appended.push((info.first_offset, info.last_offset));
        }
    }
}

/// Builds a log of several segments under `config` (with a manual clock), through rolls,
/// reopens, a truncation and DeleteRecords; closes it and checks its files.
fn build_and_check(config: LogConfig) {
    let clock = Arc::new(ManualClock::new(START_MS));
    let config = config.to_builder().clock(clock.clone()).build().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("indexes-0");
    let reopen = |w: Writer, clean: bool| -> Writer {
        if clean {
            w.log.close().unwrap();
        }
        let Writer {
            log,
            clock,
            rng,
            appended,
        } = w;
        drop(log);
        Writer {
            log: Log::open(&dir, config.clone()).unwrap(),
            clock,
            rng,
            appended,
        }
    };
    let mut w = Writer {
        log: Log::open(&dir, config.clone()).unwrap(),
        clock,
        rng: Lcg(0x5eed),
        appended: Vec::new(),
    };
    w.append_batches(60);
    w.log.roll().unwrap();
    w.append_batches(20);
    // A clean reopen reloads the trimmed indexes of the active segment and extends them.
    let mut w = reopen(w, true);
    w.append_batches(20);
    // Truncating inside a batch of the active segment cuts its index entries with it.
    let (base, last) = w.appended[w.appended.len() - 5];
    w.log.truncate_to(base + (last - base) / 2 + 1).unwrap();
    let end = w.log.log_end_offset();
    w.appended.retain(|&(_, last)| last < end);
    w.append_batches(10);
    // An unclean reopen rebuilds the active segment's indexes by scanning it.
    let mut w = reopen(w, false);
    w.append_batches(20);
    // DeleteRecords removes the first segments with their index files.
    let first_kept = w.log.segment_base_offsets()[2];
    w.log.delete_records_before(first_kept + 1).unwrap();
    w.append_batches(10);
    let bases = w.log.segment_base_offsets();
    w.log.close().unwrap();
    drop(w.log);

    let batches = check_directory(&dir, config.index_interval_bytes);
    let from_files: Vec<(i64, i64)> = batches.iter().map(|b| (b.base, b.last)).collect();
    let appended: Vec<(i64, i64)> = w
        .appended
        .iter()
        .copied()
        .filter(|&(base, _)| base >= bases[0])
        .collect();
    assert_eq!(
        from_files, appended,
        "the .log files hold what was appended"
    );
    let on_disk: Vec<i64> = read_segments(&dir).into_keys().collect();
    assert_eq!(on_disk, bases, "the files are the log's segments");
}

#[test]
fn small_indexes_that_fill_up() {
    // 12 offset entries and 8 time entries a segment: full indexes force most rolls.
    build_and_check(
        LogConfig::builder()
            .segment_bytes(16 * 1024)
            .segment_index_bytes(96)
            .index_interval_bytes(128)
            .segment_ms(None)
            .build()
            .unwrap(),
    );
}

#[test]
fn size_and_time_rolls_with_log_append_time() {
    build_and_check(
        LogConfig::builder()
            .segment_bytes(3 * 1024)
            .segment_index_bytes(4096)
            .index_interval_bytes(256)
            .segment_ms(Some(2_000))
            .message_timestamp_type(TimestampType::LogAppendTime)
            .build()
            .unwrap(),
    );
}

#[test]
fn an_entry_for_every_batch_but_the_first() {
    build_and_check(
        LogConfig::builder()
            .segment_bytes(2 * 1024)
            .segment_index_bytes(1024)
            .index_interval_bytes(0)
            .segment_ms(None)
            .build()
            .unwrap(),
    );
}
