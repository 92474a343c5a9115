//! Opening a partition directory made of arbitrary bytes: the body of the `recover_segment`
//! fuzz target, shared (through `#[path]`) with the test that replays its corpus in the
//! ordinary test suite. It depends on nothing but `streamlog`, so the fuzz crate can use it.
//!
//! The input is split into files (layout below) written into a `SimFs` partition directory.
//! `Log::open_with` must return `Ok` or a typed error, never panic. When it opens, reading
//! every record and every batch must not panic, and offsets must increase; when recovery
//! scanned every segment (an unclean open), every batch read must validate (CRC and
//! header), and the log must take an append at its end and reopen to the same end after a
//! clean close.
//!
//! ```text
//! byte 0       flags: 1 clean-shutdown marker, 2 recovery-point checkpoint,
//!              4 truncate_damage_below_recovery_point, 8 two segments,
//!              16 log-start-offset checkpoint
//! bytes 1..3   length of the last segment's .index (u16, little-endian)
//! bytes 3..5   length of the last segment's .timeindex (u16)
//! bytes 5..7   with two segments, length of the first segment's .log (u16)
//! byte 7       base offset of the first segment
//! bytes 8..10  second segment's base offset, above the first's (u16)
//! bytes 10..12 recovery-point checkpoint (u16)
//! bytes 12..14 log-start-offset checkpoint (u16)
//! then         .index bytes, .timeindex bytes, .log bytes (the rest); lengths are cut to
//!              what the input holds
//! ```
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use streamlog::io::{FileSystem, OpenMode, SimFs};
use streamlog::{Batches, Compression, DecodeLimits, Log, LogConfig, OwnedRecord};

/// Bytes before the files.
pub const HEADER: usize = 14;

/// Flag bits of byte 0.
pub const CLEAN: u8 = 1;
pub const RECOVERY_POINT: u8 = 2;
pub const TRUNCATE_DAMAGE: u8 = 4;
pub const TWO_SEGMENTS: u8 = 8;
pub const LOG_START: u8 = 16;

const DIR: &str = "/fuzz/t-0";

/// Small enough that hostile lengths cannot make reads allocate much.
const LIMITS: DecodeLimits = DecodeLimits {
    max_batch_bytes: 1 << 20,
    max_decompressed_bytes: 1 << 20,
};

/// A partition directory, before it is encoded as an input.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub flags: u8,
    /// `(base offset, .log bytes)`: one or two segments (the first only matters with two).
    pub first_base: u8,
    pub second_base_delta: u16,
    pub first_log: Vec<u8>,
    pub last_log: Vec<u8>,
    pub index: Vec<u8>,
    pub timeindex: Vec<u8>,
    pub recovery_point: u16,
    pub log_start: u16,
}

impl Layout {
    /// The fuzz input that decodes to this layout (lengths must fit a u16).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.flags];
        let len16 = |n: usize| u16::try_from(n).expect("fits the layout").to_le_bytes();
        out.extend(len16(self.index.len()));
        out.extend(len16(self.timeindex.len()));
        out.extend(len16(self.first_log.len()));
        out.push(self.first_base);
        out.extend(self.second_base_delta.to_le_bytes());
        out.extend(self.recovery_point.to_le_bytes());
        out.extend(self.log_start.to_le_bytes());
        out.extend(&self.index);
        out.extend(&self.timeindex);
        out.extend(&self.first_log);
        out.extend(&self.last_log);
        out
    }

    /// Reads an input; any bytes make some layout.
    pub fn decode(data: &[u8]) -> Layout {
        let byte = |i: usize| data.get(i).copied().unwrap_or(0);
        let u16_at = |i: usize| u16::from_le_bytes([byte(i), byte(i + 1)]);
        let mut rest = data.get(HEADER..).unwrap_or_default();
        let mut take = |n: usize| {
            let (a, b) = rest.split_at(n.min(rest.len()));
            rest = b;
            a.to_vec()
        };
        let flags = byte(0);
        let index = take(usize::from(u16_at(1)));
        let timeindex = take(usize::from(u16_at(3)));
        let first_log = if flags & TWO_SEGMENTS != 0 {
            take(usize::from(u16_at(5)))
        } else {
            Vec::new()
        };
        let last_log = take(usize::MAX);
        Layout {
            flags,
            first_base: byte(7),
            second_base_delta: u16_at(8),
            first_log,
            last_log,
            index,
            timeindex,
            recovery_point: u16_at(10),
            log_start: u16_at(12),
        }
    }

    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Base offsets of the segments, the last one last.
    fn bases(&self) -> Vec<i64> {
        let first = i64::from(self.first_base);
        if self.has(TWO_SEGMENTS) {
            vec![first, first + i64::from(self.second_base_delta)]
        } else {
            vec![first]
        }
    }
}

fn segment_path(base: i64, ext: &str) -> PathBuf {
    Path::new(DIR).join(format!("{base:020}.{ext}"))
}

fn write(fs: &SimFs, path: &Path, bytes: &[u8]) {
    let f = fs
        .open(path, OpenMode::ReadWrite)
        .expect("SimFs opens a new file");
    f.write_at(bytes, 0).expect("SimFs writes");
    f.sync_data().expect("SimFs syncs");
}

/// A simulated filesystem holding the layout's files, all durable.
pub fn filesystem(layout: &Layout) -> SimFs {
    let fs = SimFs::new(0);
    let dir = Path::new(DIR);
    fs.create_dir_all(dir).expect("SimFs makes directories");
    let bases = layout.bases();
    let last = *bases.last().unwrap_or(&0);
    if layout.has(TWO_SEGMENTS) && bases.first() != Some(&last) {
        write(&fs, &segment_path(bases[0], "log"), &layout.first_log);
    }
    write(&fs, &segment_path(last, "log"), &layout.last_log);
    write(&fs, &segment_path(last, "index"), &layout.index);
    write(&fs, &segment_path(last, "timeindex"), &layout.timeindex);
    let checkpoint = |name: &str, offset: u16| {
        write(
            &fs,
            &dir.join(name),
            format!("0\n1\nt 0 {offset}\n").as_bytes(),
        );
    };
    if layout.has(RECOVERY_POINT) {
        checkpoint("recovery-point-offset-checkpoint", layout.recovery_point);
    }
    if layout.has(LOG_START) {
        checkpoint("log-start-offset-checkpoint", layout.log_start);
    }
    if layout.has(CLEAN) {
        write(&fs, &dir.join(".kafka_cleanshutdown"), b"");
    }
    fs.sync_dir(dir).expect("SimFs syncs directories");
    fs
}

/// What opening an input did.
#[derive(Debug)]
pub struct Outcome {
    /// The open's error, as text, when it failed.
    pub error: Option<String>,
    /// Records read from the log start.
    pub records: usize,
    /// Whether every segment was scanned by recovery, so every batch had to validate.
    pub fully_recovered: bool,
}

fn config(layout: &Layout) -> LogConfig {
    LogConfig::builder()
        .segment_index_bytes(4096)
        .index_interval_bytes(64)
        .segment_ms(None)
        .decode_limits(LIMITS)
        .truncate_damage_below_recovery_point(layout.has(TRUNCATE_DAMAGE))
        .build()
        .unwrap()
}

fn open(fs: &SimFs, config: &LogConfig) -> streamlog::Result<(Log, streamlog::RecoveryInfo)> {
    Log::open_with(
        Arc::new(fs.clone()),
        Path::new(DIR),
        config.clone(),
        &mut |b| {
            assert!(
                b.validate().is_ok(),
                "the recovery hook saw an invalid batch"
            );
            Ok(())
        },
    )
}

/// The fuzz target's body: opens the directory `data` describes and reads all of it.
pub fn recover_from_bytes(data: &[u8]) -> Outcome {
    let layout = Layout::decode(data);
    let fs = filesystem(&layout);
    let config = config(&layout);
    let (log, info) = match open(&fs, &config) {
        Ok(opened) => opened,
        Err(e) => {
            return Outcome {
                error: Some(e.to_string()),
                records: 0,
                fully_recovered: false,
            }
        }
    };
    let start = log.log_start_offset();
    let end = log.log_end_offset();
    assert!(start <= end, "log start {start} past the log end {end}");
    let fully_recovered = !info.clean_shutdown && info.segments_recovered == log.segment_count();
    if fully_recovered {
        assert!(
            info.recovery_point <= end,
            "recovery point past the log end"
        );
    }

    // Every record, as an application reads them.
    let mut records = 0;
    let mut previous = None;
    for r in log.records_from(start).take(100_000) {
        // Recovery checks what it can cheaply (CRC, header, the records' framing when
        // uncompressed); a record that still fails to decode is a typed error for the reader.
        let Ok(r) = r else {
            break;
        };
        assert!(
            r.offset() >= start && r.offset() < end,
            "record at {} outside [{start}, {end})",
            r.offset()
        );
        assert!(previous < Some(r.offset()), "offsets go backwards");
        previous = Some(r.offset());
        records += 1;
    }

    // Every batch, as a fetch returns them.
    let mut offset = start;
    for _ in 0..10_000 {
        if offset >= end {
            break;
        }
        let read = log.read_bytes(offset, 64 << 10, None);
        let Ok(bytes) = read else {
            assert!(!fully_recovered, "a recovered log failed a fetch: {read:?}");
            break;
        };
        let mut next = offset;
        for batch in Batches::with_limits(&bytes, LIMITS) {
            let Ok(batch) = batch else {
                assert!(!fully_recovered, "a recovered log returned a bad frame");
                break;
            };
            let valid = batch.validate();
            assert!(
                valid.is_ok() || !fully_recovered,
                "a recovered log returned a batch that does not validate: {valid:?}"
            );
            if let Ok(records) = batch.records_with(&LIMITS) {
                for r in records.iter() {
                    if r.is_err() {
                        break;
                    }
                }
            }
            next = next.max(batch.next_offset());
        }
        if next <= offset {
            break;
        }
        offset = next;
    }

    if fully_recovered {
        // The recovered log takes an append at its end and keeps it over a clean reopen.
        let info = log
            .append_records(
                &[OwnedRecord::new(0, Some(b"k"), Some(b"after recovery"))],
                Compression::None,
            )
            .expect("a recovered log takes an append");
        assert_eq!(info.first_offset, end, "the append lands at the log end");
        log.close().expect("a recovered log closes");
        drop(log);
        let (log, info) = open(&fs, &config).expect("a closed log reopens");
        assert!(info.clean_shutdown);
        assert_eq!(
            log.log_end_offset(),
            end + 1,
            "the reopened log ends elsewhere"
        );
    }
    Outcome {
        error: None,
        records,
        fully_recovered,
    }
}
