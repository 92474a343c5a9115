//! Encode and decode throughput of whole RecordBatch v2 batches per codec, beside the bare
//! codecs and a bare CRC-32C over the very same record bytes.
//!
//! One criterion group per record shape (`codecs/<value size>Bx<records>`), so every figure
//! in a group is directly comparable:
//!
//! - `encode/<codec>`: `BatchBuilder` appends every record and builds (compress + CRC), into
//!   an output buffer reused across iterations as a producer would reuse it.
//! - `decode/<codec>`: `Batch::new` + `validate` (CRC) + `records_in` with a reused scratch
//!   buffer + iterating every record, touching its key and value.
//! - `decompress/<codec>`: the same without iterating the records: what a batch costs to
//!   check and open before any record is looked at.
//! - `bare/lz4_compress`, `bare/lz4_decompress`, `bare/gzip_compress`,
//!   `bare/gzip_decompress`: lz4_flex's frame codec and flate2 (zlib-rs) gzip at level 6,
//!   the settings streamlog uses, on the uncompressed records section of the batch, each in
//!   its fastest plain use (`FrameDecoder::read_to_end`, `bufread::GzDecoder` over the
//!   slice, output into a reused `Vec`).
//! - `bare/crc32c`: CRC-32C over that records section (crc-fast, the log's own).
//!
//! Throughput is always the size of the uncompressed records section (what the codec sees),
//! so "streamlog / bare" is the ratio of the two GB/s figures.
//!
//! Run: `cargo bench --bench codecs --features zstd,snappy -- --warm-up-time 1 --measurement-time 3`

use std::hash::{DefaultHasher, Hash, Hasher};
use std::hint::black_box;
use std::io::{Read, Write};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use streamlog::record::BATCH_HEADER_SIZE;
use streamlog::{Batch, BatchBuilder, BatchOptions, Compression, DecodeLimits};

/// Value sizes (bytes) and records per batch.
const VALUE_SIZES: [usize; 2] = [100, 1024];
const BATCH_RECORDS: [usize; 2] = [100, 1000];
/// gzip level 6, as streamlog (and Java's `GZIPOutputStream`) uses.
const GZIP_LEVEL: u32 = 6;

/// A deterministic pseudo-random stream (std's SipHash with fixed keys over a counter), so
/// every run encodes the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 += 1;
        let mut h = DefaultHasher::new();
        self.0.hash(&mut h);
        h.finish()
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const LEVELS: [&str; 10] = [
    "INFO", "INFO", "INFO", "INFO", "INFO", "INFO", "DEBUG", "DEBUG", "WARN", "ERROR",
];
const SERVICES: [&str; 6] = [
    "checkout", "payments", "catalog", "auth", "search", "shipping",
];
const ROUTES: [&str; 8] = [
    "GET /api/v1/orders/",
    "POST /api/v1/orders",
    "GET /api/v1/products/",
    "GET /api/v1/users/",
    "PUT /api/v1/cart/",
    "POST /api/v1/payments",
    "GET /healthz",
    "GET /api/v1/search?q=",
];
const MESSAGES: [&str; 8] = [
    "request completed",
    "cache miss, loading from database",
    "upstream responded slowly",
    "retrying after connection reset",
    "token refreshed",
    "order state changed",
    "rate limit close to threshold",
    "query plan reused",
];
const WORDS: [&str; 32] = [
    "the",
    "request",
    "for",
    "user",
    "session",
    "was",
    "served",
    "from",
    "replica",
    "after",
    "timeout",
    "on",
    "primary",
    "connection",
    "pool",
    "exhausted",
    "while",
    "waiting",
    "lock",
    "acquired",
    "batch",
    "flushed",
    "to",
    "partition",
    "leader",
    "epoch",
    "changed",
    "offset",
    "committed",
    "consumer",
    "group",
    "rebalanced",
];

/// One log line as JSON, exactly `size` bytes: common fields first, then free text.
fn log_line(rng: &mut Rng, seq: u64, size: usize) -> Vec<u8> {
    let status = [200, 200, 200, 200, 201, 204, 304, 404, 500][rng.below(9)];
    let fields = [
        format!(
            "{{\"ts\":{}",
            1_732_450_000_000 + seq * 3 + rng.below(3) as u64
        ),
        format!(",\"level\":\"{}\"", rng.pick(&LEVELS)),
        format!(",\"service\":\"{}\"", rng.pick(&SERVICES)),
        format!(",\"host\":\"web-{:02}\"", rng.below(16)),
        format!(",\"req\":\"{}{}\"", rng.pick(&ROUTES), rng.below(100_000)),
        format!(",\"status\":{status},\"ms\":{}", rng.below(400)),
        format!(",\"trace\":\"{:016x}\"", rng.next()),
        format!(",\"msg\":\"{}\"", rng.pick(&MESSAGES)),
        format!(
            ",\"user\":\"u-{}\",\"region\":\"eu-west-1\"",
            rng.below(50_000)
        ),
        ",\"agent\":\"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\"".to_string(),
    ];
    let mut line = String::with_capacity(size);
    for f in fields {
        if line.len() + f.len() + 1 > size {
            break;
        }
        line.push_str(&f);
    }
    let detail = ",\"detail\":\"";
    if line.len() + detail.len() + 2 < size {
        line.push_str(detail);
        while line.len() + 2 < size {
            let word = rng.pick(&WORDS);
            let room = size - 2 - line.len();
            line.push_str(word.get(..word.len().min(room)).unwrap_or(word));
            if line.len() + 2 < size {
                line.push(' ');
            }
        }
        line.push('"');
    }
    while line.len() + 1 < size {
        line.push(' ');
    }
    line.push('}');
    assert_eq!(line.len(), size);
    line.into_bytes()
}

struct Record {
    timestamp: i64,
    key: Vec<u8>,
    value: Vec<u8>,
}

/// One benchmark shape: the records and their encoded, uncompressed records section.
struct Case {
    name: String,
    records: Vec<Record>,
    /// The records section of the uncompressed batch: what every codec compresses.
    section: Vec<u8>,
}

impl Case {
    fn new(value_size: usize, count: usize) -> Self {
        let mut rng = Rng(value_size as u64 * 7919 + count as u64);
        let records: Vec<Record> = (0..count as u64)
            .map(|seq| Record {
                timestamp: 1_732_450_000_000 + seq as i64 * 3,
                key: format!("user-{}", rng.below(10_000)).into_bytes(),
                value: log_line(&mut rng, seq, value_size),
            })
            .collect();
        let mut case = Case {
            name: format!("codecs/{value_size}Bx{count}"),
            records,
            section: Vec::new(),
        };
        let plain = case.encode(Compression::None, Vec::new());
        case.section = Batch::new(&plain)
            .expect("frame")
            .records_section()
            .to_vec();
        case
    }

    fn encode(&self, codec: Compression, buffer: Vec<u8>) -> Vec<u8> {
        let mut b = BatchBuilder::with_buffer(BatchOptions::compressed(codec), buffer);
        for r in &self.records {
            b.append(r.timestamp, Some(&r.key), Some(&r.value), &[])
                .expect("append");
        }
        b.build().expect("build")
    }

    /// What `decode` returns for these records.
    fn checksum(&self) -> u64 {
        self.records
            .iter()
            .map(|r| touch(Some(&r.key), Some(&r.value)))
            .sum()
    }
}

/// Reads a key and a value: their lengths and last bytes, so the bytes are really loaded.
fn touch(key: Option<&[u8]>, value: Option<&[u8]>) -> u64 {
    let last = |b: &[u8]| b.last().map_or(0, |&x| u64::from(x));
    let key = key.map_or(0, |k| k.len() as u64 + last(k));
    let value = value.map_or(0, |v| v.len() as u64 + last(v));
    key + value
}

/// The read path: frame, CRC and header checks, decompression, every record.
fn decode(bytes: &[u8], scratch: &mut Vec<u8>) -> u64 {
    let batch = Batch::new(bytes).expect("frame");
    batch.validate().expect("valid");
    let records = batch
        .records_in(scratch, &DecodeLimits::DEFAULT)
        .expect("records");
    records
        .iter()
        .map(|r| r.map(|r| touch(r.key, r.value)).expect("record"))
        .sum()
}

/// The batch without its records: frame, CRC and header checks, decompression.
fn decompress(bytes: &[u8], scratch: &mut Vec<u8>) -> usize {
    let batch = Batch::new(bytes).expect("frame");
    batch.validate().expect("valid");
    let records = batch
        .records_in(scratch, &DecodeLimits::DEFAULT)
        .expect("records");
    records.as_bytes().len()
}

/// A codec measured bare, with the settings streamlog uses.
#[derive(Clone, Copy)]
enum Bare {
    Lz4,
    Gzip,
}

impl Bare {
    fn compression(self) -> Compression {
        match self {
            Bare::Lz4 => Compression::Lz4,
            Bare::Gzip => Compression::Gzip,
        }
    }

    fn compress(self, input: &[u8], mut out: Vec<u8>) -> Vec<u8> {
        use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
        out.clear();
        match self {
            Bare::Lz4 => {
                let info = FrameInfo::new()
                    .block_size(BlockSize::Max64KB)
                    .block_mode(BlockMode::Independent);
                let mut enc = FrameEncoder::with_frame_info(info, out);
                enc.write_all(input).expect("lz4 compress");
                enc.finish().expect("lz4 finish")
            }
            Bare::Gzip => {
                let level = flate2::Compression::new(GZIP_LEVEL);
                let mut enc = flate2::write::GzEncoder::new(out, level);
                enc.write_all(input).expect("gzip compress");
                enc.finish().expect("gzip finish")
            }
        }
    }

    fn decompress(self, packed: &[u8], out: &mut Vec<u8>) -> usize {
        out.clear();
        match self {
            Bare::Lz4 => lz4_flex::frame::FrameDecoder::new(packed).read_to_end(out),
            Bare::Gzip => flate2::bufread::GzDecoder::new(packed).read_to_end(out),
        }
        .expect("decompress")
    }
}

fn bench_case(c: &mut Criterion, case: &Case) {
    let section = case.section.as_slice();
    let codecs: Vec<Compression> = Compression::ALL
        .into_iter()
        .filter(|c| c.is_enabled())
        .collect();
    let mut group = c.benchmark_group(&case.name);
    group.throughput(Throughput::Bytes(section.len() as u64));

    for &codec in &codecs {
        let mut buffer = Vec::new();
        group.bench_function(format!("encode/{codec}"), |b| {
            b.iter(|| {
                buffer = case.encode(codec, std::mem::take(&mut buffer));
                black_box(buffer.len())
            })
        });
    }

    let expected = case.checksum();
    for &codec in &codecs {
        let bytes = case.encode(codec, Vec::new());
        let mut scratch = Vec::new();
        assert_eq!(decode(&bytes, &mut scratch), expected, "{codec}");
        eprintln!(
            "{}: {codec} batch {} bytes, records section {} -> {} (ratio {:.2})",
            case.name,
            bytes.len(),
            section.len(),
            bytes.len() - BATCH_HEADER_SIZE,
            section.len() as f64 / (bytes.len() - BATCH_HEADER_SIZE) as f64,
        );
        group.bench_function(format!("decode/{codec}"), |b| {
            b.iter(|| decode(black_box(&bytes), &mut scratch))
        });
        group.bench_function(format!("decompress/{codec}"), |b| {
            b.iter(|| decompress(black_box(&bytes), &mut scratch))
        });
    }

    for bare in [Bare::Lz4, Bare::Gzip] {
        let codec = bare.compression();
        let packed = bare.compress(section, Vec::new());
        // Like for like: the bare decompressor gets exactly the bytes streamlog stores (for
        // lz4, streamlog frames blocks itself, so its bytes may differ from lz4_flex's frame
        // encoder by a few matches), and must give back the records section.
        let batch = case.encode(codec, Vec::new());
        let stored = Batch::new(&batch)
            .expect("frame")
            .records_section()
            .to_vec();
        let mut check = Vec::new();
        bare.decompress(&stored, &mut check);
        assert!(
            check == section,
            "{codec}: bare codec cannot read streamlog's bytes"
        );
        eprintln!(
            "{}: {codec} bare codec {} bytes, streamlog {} bytes",
            case.name,
            packed.len(),
            stored.len()
        );
        let mut out = Vec::new();
        group.bench_function(format!("bare/{codec}_compress"), |b| {
            b.iter(|| {
                out = bare.compress(black_box(section), std::mem::take(&mut out));
                black_box(out.len())
            })
        });
        group.bench_function(format!("bare/{codec}_decompress"), |b| {
            b.iter(|| bare.decompress(black_box(&stored), &mut out))
        });
    }
    group.bench_function("bare/crc32c", |b| {
        b.iter(|| crc_fast::crc32_iscsi(black_box(section)))
    });
    group.finish();
}

fn codecs(c: &mut Criterion) {
    for value_size in VALUE_SIZES {
        for count in BATCH_RECORDS {
            bench_case(c, &Case::new(value_size, count));
        }
    }
}

criterion_group! {
    name = benches;
    // gzip at level 6 takes ~15 ms a 1 MiB batch: fewer samples keep a run to minutes.
    config = Criterion::default().sample_size(30);
    targets = codecs
}
criterion_main!(benches);
