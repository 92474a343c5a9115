//! `produce`: append one record per line of standard input.

use std::io::{self, BufRead, BufReader, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use streamlog::record::Compression;
use streamlog::{Log, OwnedRecord};

use crate::output::stdout;
use crate::settings::{report_recovery, LogSettings};
use crate::{BoxError, Outcome};

#[derive(Debug, Args)]
pub(crate) struct ProduceArgs {
    /// The partition directory (created if missing).
    dir: PathBuf,
    /// Batch compression: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none", value_parser = parse_codec)]
    codec: Compression,
    /// Print offsets only once they are durable. What standard input already holds is
    /// appended first and made durable with one fsync, then acknowledged.
    #[arg(long)]
    sync: bool,
    /// Split each line at the first SEP: the key before, the value after. A line without
    /// SEP gets a null key.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Lines per batch (a batch is also cut before it would exceed max.message.bytes).
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,
    /// Kafka's `log.flush.offset.checkpoint.interval.ms`: how often the recovery point is
    /// written to its checkpoint, so a reopen after a kill scans only from there.
    #[arg(long, default_value_t = 60_000, value_name = "MS")]
    flush_offset_checkpoint_interval_ms: u64,
    /// At the end, print to stderr how many records, batches and flushes (fsyncs) it took.
    #[arg(long)]
    summary: bool,
    #[command(flatten)]
    settings: LogSettings,
}

fn parse_codec(s: &str) -> Result<Compression, String> {
    let codec = Compression::from_name(s)
        .ok_or_else(|| format!("unknown codec `{s}` (none, gzip, snappy, lz4, zstd)"))?;
    if !codec.is_enabled() {
        return Err(format!("codec `{s}` is not enabled in this build"));
    }
    Ok(codec)
}

/// Bytes a record adds to a batch beyond its key and value, at most (varint fields).
const RECORD_OVERHEAD: usize = 32;
/// Size of a batch header.
const BATCH_OVERHEAD: usize = 61;
/// Standard input is read in chunks this large: what one read brings is one `--sync` group.
const INPUT_BUFFER: usize = 1 << 20;
/// Under `--sync`, records appended but not yet durable before an fsync is forced even
/// though input keeps coming (bounds the wait for an acknowledgement).
const MAX_UNACKNOWLEDGED: i64 = 100_000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) fn produce(args: &ProduceArgs) -> Result<Outcome, BoxError> {
    // A producer starts a partition where there is none, as a broker creates one.
    let log = Log::open(&args.dir, args.settings.config())?;
    report_recovery(&log);
    // Closed even after a failure, so what was appended is left cleanly closed.
    let result = produce_lines(&log, args);
    let closed = log.close();
    result?;
    closed?;
    Ok(Outcome::Clean)
}

/// Appended offsets not yet printed, and when the recovery point was last checkpointed.
struct Acks {
    /// First and last offset appended and not yet acknowledged.
    pending: Option<(i64, i64)>,
    last_checkpoint: Instant,
    checkpoint_every: Duration,
    /// Records and batches appended, and flushes made, for `--summary`.
    records: i64,
    batches: u64,
    fsyncs: u64,
}

impl Acks {
    fn appended(&mut self, first: i64, last: i64) {
        self.records += last - first + 1;
        self.batches += 1;
        self.pending = Some(match self.pending {
            Some((f, _)) => (f, last),
            None => (first, last),
        });
    }

    fn count(&self) -> i64 {
        self.pending.map_or(0, |(f, l)| l - f + 1)
    }

    /// Makes what was appended durable when `sync` asks for it, checkpoints the recovery
    /// point when due, then prints the offsets.
    fn acknowledge(&mut self, log: &Log, sync: bool, out: &mut impl Write) -> Result<(), BoxError> {
        let Some((first, last)) = self.pending.take() else {
            return Ok(());
        };
        if sync {
            log.flush()?;
            self.fsyncs += 1;
        }
        if self.last_checkpoint.elapsed() >= self.checkpoint_every {
            // Flushes when `flush.ms` is due, and writes the recovery point if it moved.
            log.tick(now_ms())?;
            self.last_checkpoint = Instant::now();
        }
        for offset in first..=last {
            writeln!(out, "{offset}")?;
        }
        // Whoever reads the offsets sees each as soon as it is appended (or durable).
        out.flush()?;
        Ok(())
    }
}

fn produce_lines(log: &Log, args: &ProduceArgs) -> Result<(), BoxError> {
    let limit = usize::try_from(log.config().max_message_bytes).unwrap_or(usize::MAX);
    let separator = args.key_separator.as_deref().map(str::as_bytes);
    let mut input = BufReader::with_capacity(INPUT_BUFFER, io::stdin().lock());
    let mut out = stdout();
    let mut pending: Vec<OwnedRecord> = Vec::new();
    let mut pending_bytes = BATCH_OVERHEAD;
    let mut acks = Acks {
        pending: None,
        last_checkpoint: Instant::now(),
        checkpoint_every: Duration::from_millis(args.flush_offset_checkpoint_interval_ms),
        records: 0,
        batches: 0,
        fsyncs: 0,
    };
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let record = record_from_line(&line, separator);
        let size = record_size(&record);
        if !pending.is_empty() && pending_bytes + size > limit {
            append_batch(log, args, &mut pending, &mut acks)?;
            pending_bytes = BATCH_OVERHEAD;
        }
        pending.push(record);
        pending_bytes += size;
        if pending.len() >= args.batch as usize {
            append_batch(log, args, &mut pending, &mut acks)?;
            pending_bytes = BATCH_OVERHEAD;
        }
        // Without `--sync` every batch is acknowledged as it is appended. With it, the
        // batches made of what standard input already held share one fsync: acknowledged
        // once the buffer holds no further whole line (or too many records wait).
        let drained = !input.buffer().contains(&b'\n');
        if !args.sync || drained || acks.count() >= MAX_UNACKNOWLEDGED {
            acks.acknowledge(log, args.sync, &mut out)?;
        }
    }
    if !pending.is_empty() {
        append_batch(log, args, &mut pending, &mut acks)?;
    }
    acks.acknowledge(log, args.sync, &mut out)?;
    out.flush()?;
    if args.summary {
        eprintln!(
            "streamlog: produced {} records in {} batches with {} flushes",
            acks.records, acks.batches, acks.fsyncs
        );
    }
    Ok(())
}

fn record_size(r: &OwnedRecord) -> usize {
    r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len) + RECORD_OVERHEAD
}

/// A line (without its line ending) as a record: the value, or key SEP value.
fn record_from_line(line: &[u8], separator: Option<&[u8]>) -> OwnedRecord {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let split = separator.filter(|s| !s.is_empty()).and_then(|sep| {
        line.windows(sep.len())
            .position(|w| w == sep)
            .map(|at| (line.get(..at), line.get(at + sep.len()..)))
    });
    match split {
        Some((Some(key), Some(value))) => OwnedRecord::new(now_ms(), Some(key), Some(value)),
        _ => OwnedRecord::new(now_ms(), None, Some(line)),
    }
}

fn append_batch(
    log: &Log,
    args: &ProduceArgs,
    pending: &mut Vec<OwnedRecord>,
    acks: &mut Acks,
) -> Result<(), BoxError> {
    let info = log.append_records(pending, args.codec)?;
    pending.clear();
    acks.appended(info.first_offset, info.last_offset);
    Ok(())
}
