//! streamlog quick start: a partition log in a fresh directory.
//!
//! Appends 1 M records of 100 B in batches, reads them all back, looks records up by offset
//! and by timestamp, closes and reopens the log, and shows what each codec does to a batch.
//!
//! ```text
//! cargo run --release --example quickstart [DIR]
//! ```
//! Without DIR the log lives in a temporary directory that is removed at the end.

use std::time::Instant;

use streamlog::{Batch, BatchBuilder, BatchOptions, Compression, Header, Log, LogConfig};

const RECORDS: usize = 1_000_000;
const PER_BATCH: usize = 1_000;
const VALUE_BYTES: usize = 100;
const BASE_TIME: i64 = 1_700_000_000_000;

fn value_for(i: usize, out: &mut Vec<u8>) {
    // Log-like content: a little structure, a little repetition, not all zeros.
    out.clear();
    out.extend_from_slice(
        format!(
            "{{\"seq\":{i},\"level\":\"INFO\",\"msg\":\"user {} did ",
            i % 977
        )
        .as_bytes(),
    );
    while out.len() < VALUE_BYTES - 2 {
        out.push(b'a' + (i % 26) as u8);
    }
    out.extend_from_slice(b"\"}");
    out.truncate(VALUE_BYTES);
}

fn mb_per_s(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp;
    let dir = match std::env::args().nth(1) {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().join("events-0")
        }
    };
    let config = LogConfig::builder().segment_bytes(64 << 20).build()?;
    println!("streamlog quick start: partition log in {}", dir.display());

    // 1. Append 1 M records in batches of 1,000.
    let log = Log::open(&dir, config.clone())?;
    let start_offset = log.log_end_offset();
    let mut value = Vec::with_capacity(VALUE_BYTES);
    let mut buffer = Vec::new();
    let t = Instant::now();
    let mut appended_bytes = 0usize;
    for b in 0..RECORDS / PER_BATCH {
        let mut builder =
            BatchBuilder::with_buffer(BatchOptions::default(), std::mem::take(&mut buffer));
        for r in 0..PER_BATCH {
            let i = b * PER_BATCH + r;
            value_for(i, &mut value);
            let key = (i % 1000).to_be_bytes();
            builder.append(BASE_TIME + i as i64, Some(&key), Some(&value), &[])?;
        }
        buffer = builder.build()?;
        appended_bytes += buffer.len();
        log.append(&buffer)?;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "appended  {RECORDS} records ({:.1} MB) in {:.3} s: {:.0} records/s, {:.0} MB/s; {} segments, offsets {}..{}",
        appended_bytes as f64 / 1e6,
        secs,
        RECORDS as f64 / secs,
        mb_per_s(appended_bytes, secs),
        log.segment_count(),
        start_offset,
        log.log_end_offset() - 1,
    );

    // 2. Read every record back.
    let t = Instant::now();
    let mut count = 0usize;
    let mut value_bytes = 0usize;
    for record in log.records_from(start_offset) {
        let record = record?;
        value_bytes += record.value().map_or(0, <[u8]>::len);
        count += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(count, RECORDS, "every record reads back");
    println!(
        "read      {count} records in {:.3} s: {:.0} records/s ({:.0} MB/s of values)",
        secs,
        count as f64 / secs,
        mb_per_s(value_bytes, secs)
    );

    // 3. Look records up by offset and by timestamp.
    let probes = 10_000usize;
    let t = Instant::now();
    for p in 0..probes {
        let offset = start_offset + ((p * 7919) % RECORDS) as i64;
        let bytes = log.read_bytes(offset, 1, None)?;
        // At least one whole batch comes back, even when it is larger than max_bytes.
        let (batch, _) = Batch::parse(&bytes, &Default::default())?;
        assert!(batch.base_offset() <= offset && offset <= batch.last_offset());
    }
    let per_read = t.elapsed().as_secs_f64() / probes as f64;
    let target = start_offset + 123_456;
    let first = log.records_from(target).next().ok_or("record missing")??;
    println!(
        "lookup    offset {target} -> value {:?}; {probes} random reads, {:.1} µs each",
        String::from_utf8_lossy(first.value().and_then(|v| v.get(..30)).unwrap_or_default()),
        per_read * 1e6
    );
    let when = BASE_TIME + 654_321;
    let t = Instant::now();
    let found = log.offset_for_timestamp(when)?;
    println!(
        "lookup    timestamp {when} -> offset/timestamp {:?} in {:.1} µs",
        found,
        t.elapsed().as_secs_f64() * 1e6
    );

    // 4. Close cleanly and reopen: the indexes load without scanning the segments.
    log.close()?;
    let t = Instant::now();
    let reopened = Log::open(&dir, config)?;
    println!(
        "reopened  in {:.1} ms: offsets {}..{}, {} segments",
        t.elapsed().as_secs_f64() * 1e3,
        reopened.log_start_offset(),
        reopened.log_end_offset() - 1,
        reopened.segment_count()
    );
    reopened.close()?;

    // 5. What each codec does to one batch of 1,000 such records.
    println!("codecs    one batch of {PER_BATCH} records of {VALUE_BYTES} B:");
    for codec in Compression::ALL {
        if !codec.is_enabled() {
            println!(
                "  {codec:<6} (build with --features {})",
                if codec == Compression::Zstd {
                    "zstd"
                } else {
                    "snappy"
                }
            );
            continue;
        }
        let t = Instant::now();
        let mut builder = BatchBuilder::new(BatchOptions::compressed(codec));
        for i in 0..PER_BATCH {
            value_for(i, &mut value);
            builder.append(
                BASE_TIME,
                None,
                Some(&value),
                &[Header::new("src", Some(b"app"))],
            )?;
        }
        let bytes = builder.build()?;
        let encode = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let batch = Batch::new(&bytes)?;
        batch.validate()?;
        let n = batch.records()?.iter().filter(|r| r.is_ok()).count();
        let decode = t.elapsed().as_secs_f64();
        assert_eq!(n, PER_BATCH);
        let raw = PER_BATCH * VALUE_BYTES;
        println!(
            "  {codec:<6} {:>7} bytes, encode {:>6.0} MB/s, decode {:>6.0} MB/s",
            bytes.len(),
            mb_per_s(raw, encode),
            mb_per_s(raw, decode)
        );
    }
    Ok(())
}
