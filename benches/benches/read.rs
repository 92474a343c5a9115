//! Reading a partition log from the page cache, beside the physical limit: a bare `read()`
//! of the same segment files into the same kind of buffer.
//!
//! One log of 10 M records (100 B values, batches of 100, Kafka's default 1 GiB segments)
//! is built once in a temporary directory under the target directory, closed, and opened
//! again, so every read is of stored, page-cached segments:
//!
//! - `read/sequential/streamlog`: the whole log through `Log::read(offset, 1 MiB)` and
//!   `FileSlice::read_into` into a 64-byte aligned buffer, fetch after fetch, as a consumer
//!   or follower fetch loop would.
//! - `read/sequential/bare_read`: `read()` of each `.log` file from start to end, 1 MiB at a
//!   time, into the same aligned buffer.
//! - `read/records/streamlog`: `records_from(0)` over the first `RECORDS_PER_ITER` records,
//!   touching each value (batch CRC checks included).
//! - `read/random/locate`: `read(offset, 1)` at a random offset: the batch holding it, as a
//!   file range (what `sendfile` needs).
//! - `read/random/locate_and_copy`: the same, and its bytes copied into an aligned buffer.
//!
//! Run: `cargo bench --bench read -- --warm-up-time 1 --measurement-time 5`

use std::fs::File;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput};
use streamlog::io::AlignedBuf;
use streamlog::{BatchBuilder, BatchOptions, Compression, Log, LogConfig};

mod common;
use common::{log_files, scratch_root, Rng};

const RECORDS: i64 = 10_000_000;
const RECORDS_PER_BATCH: usize = 100;
const VALUE_SIZE: usize = 100;
const FETCH_BYTES: usize = 1 << 20;
const RECORDS_PER_ITER: usize = 2_000_000;
const TIMESTAMP: i64 = 1_700_000_000_000;

fn batch(rng: &mut Rng) -> Vec<u8> {
    let mut b = BatchBuilder::new(BatchOptions::compressed(Compression::None));
    let mut value = [0u8; VALUE_SIZE];
    for i in 0..RECORDS_PER_BATCH {
        for (j, v) in value.iter_mut().enumerate() {
            if j % 8 == 0 {
                *v = b' ' + (rng.next() % 95) as u8;
            } else {
                *v = b'a' + (j % 26) as u8;
            }
        }
        b.append(TIMESTAMP + i as i64, None, Some(&value), &[])
            .expect("record fits");
    }
    b.build().expect("batch builds")
}

/// Builds the 10 M-record log, closes it, and opens it again.
fn build_log(dir: &Path) -> Log {
    let started = Instant::now();
    let log = Log::open(dir, LogConfig::default()).expect("open");
    let mut rng = Rng(7);
    // A few distinct batches, appended round-robin: the log assigns the offsets.
    let batches: Vec<Vec<u8>> = (0..16).map(|_| batch(&mut rng)).collect();
    let mut n = 0i64;
    while n < RECORDS {
        let b = &batches[(n as usize / RECORDS_PER_BATCH) % batches.len()];
        log.append(b).expect("append");
        n += RECORDS_PER_BATCH as i64;
    }
    log.close().expect("close");
    drop(log);
    let log = Log::open(dir, LogConfig::default()).expect("reopen");
    eprintln!(
        "built {} records, {} bytes in {} segments in {:.1} s",
        log.log_end_offset(),
        log.size_in_bytes(),
        log.segment_count(),
        started.elapsed().as_secs_f64()
    );
    log
}

/// Every batch from offset 0, 1 MiB a fetch, copied into `buf`. Returns bytes read.
fn read_log(log: &Log, buf: &mut AlignedBuf) -> u64 {
    let end = log.log_end_offset();
    let mut offset = 0;
    let mut total = 0u64;
    while offset < end {
        let data = log.read(offset, FETCH_BYTES, None).expect("read");
        let slice = data.slice.expect("batches below the end");
        let len = slice.len() as usize;
        let dst = &mut buf.as_mut_slice()[..len];
        slice.read_into(dst).expect("read_into");
        black_box(&dst[len - 1]);
        total += len as u64;
        offset = data.next_offset;
    }
    total
}

/// Every `.log` file, start to end, 1 MiB a `read()`. Returns bytes read.
fn read_files(files: &[File], buf: &mut AlignedBuf) -> u64 {
    let mut total = 0u64;
    let dst = &mut buf.as_mut_slice()[..FETCH_BYTES];
    for f in files {
        let mut pos = 0u64;
        loop {
            let n = f.read_at(dst, pos).expect("read");
            if n == 0 {
                break;
            }
            black_box(&dst[n - 1]);
            pos += n as u64;
        }
        total += pos;
    }
    total
}

fn main() {
    let root = scratch_root();
    let dir = root.path().join("bench-0");
    let log = build_log(&dir);
    let bytes = log.size_in_bytes();

    let files: Vec<File> = log_files(&dir)
        .iter()
        .map(|p| File::open(p).expect("open"))
        .collect();
    // Big enough for a fetch of 1 MiB plus the one batch a fetch may go over by.
    let mut buf = AlignedBuf::new(2 * FETCH_BYTES);
    // Both sides read page-cached files: read everything once before measuring.
    assert_eq!(read_files(&files, &mut buf), bytes);
    assert_eq!(read_log(&log, &mut buf), bytes);

    let mut c = Criterion::default().configure_from_args();

    let mut g = c.benchmark_group("read/sequential");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function(BenchmarkId::from_parameter("streamlog"), |b| {
        b.iter(|| read_log(&log, &mut buf))
    });
    g.bench_function(BenchmarkId::from_parameter("bare_read"), |b| {
        b.iter(|| read_files(&files, &mut buf))
    });
    g.finish();

    let mut g = c.benchmark_group("read/records");
    g.sample_size(10);
    g.throughput(Throughput::Elements(RECORDS_PER_ITER as u64));
    g.bench_function(BenchmarkId::from_parameter("streamlog"), |b| {
        b.iter(|| {
            let mut sum = 0usize;
            for r in log.records_from(0).take(RECORDS_PER_ITER) {
                let r = r.expect("record");
                sum += r.value().map_or(0, <[u8]>::len);
            }
            assert_eq!(sum, RECORDS_PER_ITER * VALUE_SIZE);
            sum
        })
    });
    g.bench_function(BenchmarkId::from_parameter("streamlog_next_record"), |b| {
        b.iter(|| {
            let mut sum = 0usize;
            let mut records = log.records_from(0);
            for _ in 0..RECORDS_PER_ITER {
                let r = records.next_record().expect("a record").expect("record");
                sum += r.value.map_or(0, <[u8]>::len);
            }
            assert_eq!(sum, RECORDS_PER_ITER * VALUE_SIZE);
            sum
        })
    });
    g.finish();

    let mut rng = Rng(42);
    let offsets: Vec<i64> = (0..1 << 16)
        .map(|_| (rng.next() % RECORDS as u64) as i64)
        .collect();
    let mut g = c.benchmark_group("read/random");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function(BenchmarkId::from_parameter("locate"), |b| {
        b.iter(|| {
            i = (i + 1) & (offsets.len() - 1);
            let data = log.read(offsets[i], 1, None).expect("read");
            black_box(data.slice.expect("a batch").len())
        })
    });
    g.bench_function(BenchmarkId::from_parameter("locate_and_copy"), |b| {
        b.iter(|| {
            i = (i + 1) & (offsets.len() - 1);
            let data = log.read(offsets[i], 1, None).expect("read");
            let slice = data.slice.expect("a batch");
            let len = slice.len() as usize;
            let dst = &mut buf.as_mut_slice()[..len];
            slice.read_into(dst).expect("read_into");
            black_box(dst[0])
        })
    });
    g.finish();

    c.final_summary();
    drop(log);
}
