//! `streamlog`: look inside, check and use a Kafka partition directory.
//!
//! ```text
//! streamlog dump    <segment.log | partition-dir | N.snapshot | N.txnindex> [--json [--records]] [--batches-only]
//! streamlog verify  <partition-dir> [--json]
//! streamlog produce <partition-dir> [--codec C] [--sync] [--key-separator SEP] [--batch N]
//! streamlog consume <partition-dir> [--from earliest|latest|OFFSET] [--max N] [--json]
//! ```
//!
//! `dump` and `verify` open files read-only and are safe on a live or crashed log; `produce`
//! and `consume` open the directory as its one writer (as a broker would), so no other
//! process may have it open.
//!
//! Exit status: 0 on success; 1 when `verify` finds a problem or `dump` meets a damaged
//! batch; 2 when the command could not run (bad arguments, unreadable paths, I/O errors).
//!
//! JSON output is one object per line. Bytes (keys, values, header keys and values) are a
//! string with an encoding beside them: `"key": "k", "key_encoding": "utf8"` when the bytes
//! are valid UTF-8, `"key": "00ff", "key_encoding": "hex"` otherwise, and `null` with a `null`
//! encoding for a null key or value. A record object:
//!
//! ```text
//! {"offset":0,"timestamp":1700000000000,"key":"k","key_encoding":"utf8",
//!  "value":"v","value_encoding":"utf8","headers":[{"key":"h","key_encoding":"utf8",
//!  "value":"x","value_encoding":"utf8"}]}
//! ```
//!
//! `dump --json` prints one `{"type":"batch", ...}` line per batch, its records nested in
//! `"records"` (left out under `--batches-only`); `--records` prints one
//! `{"type":"record", ...}` line per record instead, with `file`, `batch_position` and
//! `batch_base_offset` added. Damage that ends a file (a bad frame, a file ending mid-batch)
//! is a `{"type":"damage","file":...,"position":...,"error":...}` line. Batch lines carry
//! every header field: `file position size base_offset last_offset last_offset_delta count
//! magic crc crc_valid codec timestamp_type base_timestamp max_timestamp delete_horizon
//! partition_leader_epoch producer_id producer_epoch base_sequence last_sequence
//! transactional control control_marker error`, where `control_marker` is `null` or
//! `{"type":"COMMIT"|"ABORT"|"UNKNOWN","type_id","version","coordinator_epoch"}` and
//! `error` is `null` or what is wrong with the batch (bad CRC, undecodable records).

use std::error::Error as StdError;
use std::io::{self, BufRead, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Map, Value};
use streamlog::log::{
    list_segment_files, verify_partition_with, Finding, SegmentReader, VerifyProgress, VerifyReport,
};
use streamlog::record::{Batch, Batches, Compression, ControlRecordType, Header, Record};
use streamlog::{Log, LogConfig, OwnedRecord, TimestampType};

type BoxError = Box<dyn StdError>;

/// Look inside, check and use Kafka partition directories.
#[derive(Debug, Parser)]
#[command(name = "streamlog", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the batches and records of a segment file or of every segment of a directory.
    Dump(DumpArgs),
    /// Check a partition directory read-only; exit status 1 if anything is damaged.
    Verify(VerifyArgs),
    /// Append one record per line of standard input, printing each record's offset.
    Produce(ProduceArgs),
    /// Print records from an offset on.
    Consume(ConsumeArgs),
}

#[derive(Debug, Args)]
struct DumpArgs {
    /// A `.log` segment file, a partition directory (every segment, in offset order), a
    /// producer `.snapshot` or a `.txnindex`.
    path: PathBuf,
    /// One JSON object per line: a batch with its records nested (see `--records`).
    #[arg(long)]
    json: bool,
    /// With `--json`: one line per record instead of one per batch.
    #[arg(long, requires = "json", conflicts_with = "batches_only")]
    records: bool,
    /// Batch headers only; records are not decoded.
    #[arg(long)]
    batches_only: bool,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The partition directory.
    dir: PathBuf,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ProduceArgs {
    /// The partition directory (created if missing).
    dir: PathBuf,
    /// Batch compression: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none", value_parser = parse_codec)]
    codec: Compression,
    /// Print offsets only once `Log::flush` has made the records durable.
    #[arg(long)]
    sync: bool,
    /// Split each line at the first SEP: the key before, the value after. A line without
    /// SEP gets a null key.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Lines per batch (a batch is also cut before it would exceed max.message.bytes).
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,
}

#[derive(Debug, Args)]
struct ConsumeArgs {
    /// The partition directory.
    dir: PathBuf,
    /// Where to start: earliest (log start offset), latest (log end offset) or an offset.
    #[arg(long, default_value = "earliest", value_parser = parse_start)]
    from: Start,
    /// Stop after N records.
    #[arg(long, value_name = "N")]
    max: Option<u64>,
    /// One JSON object per record instead of `offset<TAB>timestamp<TAB>key<TAB>value`.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy)]
enum Start {
    Earliest,
    Latest,
    Offset(i64),
}

fn parse_start(s: &str) -> Result<Start, String> {
    match s {
        "earliest" => Ok(Start::Earliest),
        "latest" => Ok(Start::Latest),
        _ => s
            .parse()
            .map(Start::Offset)
            .map_err(|_| format!("`{s}` is not earliest, latest or an offset")),
    }
}

fn parse_codec(s: &str) -> Result<Compression, String> {
    let codec = Compression::from_name(s)
        .ok_or_else(|| format!("unknown codec `{s}` (none, gzip, snappy, lz4, zstd)"))?;
    if !codec.is_enabled() {
        return Err(format!("codec `{s}` is not enabled in this build"));
    }
    Ok(codec)
}

/// What a command found, beyond plain success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Clean,
    Damaged,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dump(args) => dump(&args),
        Command::Verify(args) => verify(&args),
        Command::Produce(args) => produce(&args),
        Command::Consume(args) => consume(&args),
    };
    match result {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Damaged) => ExitCode::from(1),
        // A reader that went away (`| head`) is not a failure.
        Err(e) if is_broken_pipe(e.as_ref()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("streamlog: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(e: &(dyn StdError + 'static)) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

fn stdout() -> BufWriter<io::StdoutLock<'static>> {
    BufWriter::new(io::stdout().lock())
}

/// A byte-count progress bar on stderr, drawn only when stderr is a terminal.
fn progress_bar(total: u64, visible: bool) -> ProgressBar {
    if !visible || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    ) {
        bar.set_style(style);
    }
    bar
}

// ---------------------------------------------------------------------------------------
// Bytes as text and JSON

/// Text for a terminal: UTF-8 without control characters as is, anything else as `0x` hex.
fn text_bytes(bytes: Option<&[u8]>) -> String {
    match bytes {
        None => "null".into(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) if !s.chars().any(char::is_control) => s.to_string(),
            _ => format!("0x{}", hex(b)),
        },
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Adds `name` and `name_encoding` for bytes to a JSON object.
fn put_bytes(obj: &mut Map<String, Value>, name: &str, bytes: Option<&[u8]>) {
    let (value, encoding) = match bytes {
        None => (Value::Null, Value::Null),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => (Value::from(s), Value::from("utf8")),
            Err(_) => (Value::from(hex(b)), Value::from("hex")),
        },
    };
    obj.insert(name.into(), value);
    obj.insert(format!("{name}_encoding"), encoding);
}

fn headers_json<'a>(headers: impl Iterator<Item = Header<'a>>) -> Value {
    let list = headers
        .map(|h| {
            let mut obj = Map::new();
            put_bytes(&mut obj, "key", Some(h.key));
            put_bytes(&mut obj, "value", h.value);
            Value::Object(obj)
        })
        .collect();
    Value::Array(list)
}

fn headers_text<'a>(headers: impl Iterator<Item = Header<'a>>) -> String {
    let list: Vec<String> = headers
        .map(|h| format!("{}={}", text_bytes(Some(h.key)), text_bytes(h.value)))
        .collect();
    format!("[{}]", list.join(", "))
}

/// A record as a JSON object, shared by `dump` and `consume`.
fn record_json(r: &Record<'_>) -> Map<String, Value> {
    let mut obj = Map::new();
    obj.insert("offset".into(), r.offset.into());
    obj.insert("timestamp".into(), r.timestamp.into());
    put_bytes(&mut obj, "key", r.key);
    put_bytes(&mut obj, "value", r.value);
    obj.insert("headers".into(), headers_json(r.headers()));
    obj
}

fn write_json(out: &mut impl Write, value: &Value) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

// ---------------------------------------------------------------------------------------
// dump

fn dump(args: &DumpArgs) -> Result<Outcome, BoxError> {
    if let Some(kind) = producer_file_kind(&args.path) {
        return dump_producer_file(args, kind);
    }
    let files = segment_files(&args.path)?;
    let total = files
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    // Drawn only when the dump goes elsewhere than the terminal the bar is on.
    let bar = progress_bar(total, !io::stdout().is_terminal());
    let mut out = stdout();
    let mut outcome = Outcome::Clean;
    let mut done = 0;
    for path in &files {
        if !args.json {
            writeln!(out, "Dumping {}", path.display())?;
        }
        let mut reader = match SegmentReader::open(path) {
            Ok(r) => r,
            Err(e) => {
                bar.finish_and_clear();
                return Err(e.into());
            }
        };
        loop {
            let (position, batch) = match reader.next_batch() {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) => {
                    outcome = Outcome::Damaged;
                    damage(&mut out, args.json, path, reader.position(), &e.to_string())?;
                    break;
                }
            };
            if dump_batch(&mut out, args, path, position, &batch)? == Outcome::Damaged {
                outcome = Outcome::Damaged;
            }
            bar.set_position(done + reader.position());
        }
        done += reader.len();
    }
    bar.finish_and_clear();
    out.flush()?;
    Ok(outcome)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProducerFile {
    Snapshot,
    TxnIndex,
}

fn producer_file_kind(path: &Path) -> Option<ProducerFile> {
    match path.extension()?.to_str()? {
        "snapshot" => Some(ProducerFile::Snapshot),
        "txnindex" => Some(ProducerFile::TxnIndex),
        _ => None,
    }
}

/// Dumps a producer snapshot (one line a producer) or a transaction index (one line an
/// aborted transaction), as Kafka's DumpLogSegments does.
fn dump_producer_file(args: &DumpArgs, kind: ProducerFile) -> Result<Outcome, BoxError> {
    let path = &args.path;
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = stdout();
    if !args.json {
        writeln!(out, "Dumping {}", path.display())?;
    }
    let parsed = match kind {
        ProducerFile::Snapshot => streamlog::producer::parse_snapshot_file(path, &bytes)
            .map(|entries| entries.iter().map(snapshot_entry_json).collect::<Vec<_>>()),
        ProducerFile::TxnIndex => streamlog::producer::parse_txn_index_file(path, &bytes)
            .map(|entries| entries.iter().map(aborted_txn_json).collect::<Vec<_>>()),
    };
    let lines = match parsed {
        Ok(lines) => lines,
        Err(e) => {
            damage(&mut out, args.json, path, 0, &e.to_string())?;
            out.flush()?;
            return Ok(Outcome::Damaged);
        }
    };
    for line in &lines {
        if args.json {
            write_json(&mut out, line)?;
        } else {
            writeln!(out, "{}", text_line(line))?;
        }
    }
    out.flush()?;
    Ok(Outcome::Clean)
}

fn snapshot_entry_json(e: &streamlog::ProducerStateEntry) -> Value {
    let batches: Vec<Value> = e
        .batches()
        .map(|b| {
            json!({
                "first_sequence": b.first_seq(),
                "last_sequence": b.last_seq,
                "first_offset": b.first_offset(),
                "last_offset": b.last_offset,
                "timestamp": b.timestamp,
            })
        })
        .collect();
    json!({
        "type": "producer",
        "producer_id": e.producer_id,
        "producer_epoch": e.producer_epoch,
        "coordinator_epoch": e.coordinator_epoch,
        "current_txn_first_offset": e.current_txn_first_offset,
        "last_timestamp": e.last_timestamp,
        "batches": batches,
    })
}

fn aborted_txn_json(t: &streamlog::AbortedTxn) -> Value {
    json!({
        "type": "aborted_txn",
        "producer_id": t.producer_id,
        "first_offset": t.first_offset,
        "last_offset": t.last_offset,
        "last_stable_offset": t.last_stable_offset,
    })
}

/// A producer or aborted-transaction line as text, fields in Kafka's order and names.
fn text_line(v: &Value) -> String {
    let field = |k: &str| v.get(k).map_or_else(String::new, Value::to_string);
    if v.get("type").and_then(Value::as_str) == Some("aborted_txn") {
        return format!(
            "producerId: {} firstOffset: {} lastOffset: {} lastStableOffset: {}",
            field("producer_id"),
            field("first_offset"),
            field("last_offset"),
            field("last_stable_offset"),
        );
    }
    let batches: Vec<String> = v
        .get("batches")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|b| {
                    let f = |k: &str| b.get(k).map_or_else(String::new, Value::to_string);
                    format!(
                        "[sequences {}-{} offsets {}-{} timestamp {}]",
                        f("first_sequence"),
                        f("last_sequence"),
                        f("first_offset"),
                        f("last_offset"),
                        f("timestamp"),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    format!(
        "producerId: {} producerEpoch: {} coordinatorEpoch: {} currentTxnFirstOffset: {} \
         lastTimestamp: {} batches: {}",
        field("producer_id"),
        field("producer_epoch"),
        field("coordinator_epoch"),
        field("current_txn_first_offset"),
        field("last_timestamp"),
        batches.join(" "),
    )
}

/// The `.log` files a dump covers: the file itself, or a directory's segments in order.
fn segment_files(path: &Path) -> Result<Vec<PathBuf>, BoxError> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.is_dir() {
        let logs = list_segment_files(path)?;
        return Ok(logs.into_iter().map(|(_, p)| p).collect());
    }
    if path.extension().is_some_and(|e| e == "log") {
        return Ok(vec![path.to_path_buf()]);
    }
    Err(format!(
        "{}: expected a .log segment file or a partition directory",
        path.display()
    )
    .into())
}

fn damage(
    out: &mut impl Write,
    json: bool,
    path: &Path,
    position: u64,
    error: &str,
) -> io::Result<()> {
    if json {
        let line = json!({
            "type": "damage",
            "file": path.display().to_string(),
            "position": position,
            "error": error,
        });
        write_json(out, &line)
    } else {
        writeln!(out, "DAMAGED at byte {position}: {error}")
    }
}

fn codec_name(batch: &Batch<'_>) -> String {
    match batch.compression() {
        Ok(c) => c.name().to_string(),
        Err(_) => format!("unknown({})", batch.attributes().compression_id()),
    }
}

fn timestamp_type_name(t: TimestampType) -> &'static str {
    match t {
        TimestampType::CreateTime => "CreateTime",
        TimestampType::LogAppendTime => "LogAppendTime",
    }
}

fn control_type_name(t: ControlRecordType) -> &'static str {
    match t {
        ControlRecordType::Commit => "COMMIT",
        ControlRecordType::Abort => "ABORT",
        ControlRecordType::Unknown(_) => "UNKNOWN",
    }
}

fn dump_batch(
    out: &mut impl Write,
    args: &DumpArgs,
    path: &Path,
    position: u64,
    batch: &Batch<'_>,
) -> Result<Outcome, BoxError> {
    let crc_valid = batch.crc() == batch.compute_crc();
    let mut error = batch.validate().err().map(|e| e.to_string());
    let has_marker = batch.is_control() && batch.record_count() > 0;
    let control = match has_marker.then(|| batch.control_record()) {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            error.get_or_insert_with(|| e.to_string());
            None
        }
        None => None,
    };
    // Records are decoded even when the CRC is bad: a dump shows what is there.
    let mut scratch = Vec::new();
    let decoded = if args.batches_only {
        None
    } else {
        match batch.records_in(&mut scratch, &Default::default()) {
            Ok(decoded) => Some(decoded),
            Err(e) => {
                error.get_or_insert_with(|| e.to_string());
                None
            }
        }
    };
    let mut records = Vec::new();
    for r in decoded.iter().flat_map(|d| d.iter()) {
        match r {
            Ok(r) => records.push(r),
            Err(e) => {
                error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    let outcome = if error.is_some() {
        Outcome::Damaged
    } else {
        Outcome::Clean
    };
    let file = path.display().to_string();
    if args.json && args.records {
        for r in &records {
            let mut obj = Map::new();
            obj.insert("type".into(), "record".into());
            obj.insert("file".into(), file.clone().into());
            obj.insert("batch_position".into(), position.into());
            obj.insert("batch_base_offset".into(), batch.base_offset().into());
            obj.extend(record_json(r));
            write_json(out, &Value::Object(obj))?;
        }
        if let Some(e) = &error {
            damage(out, true, path, position, e)?;
        }
        return Ok(outcome);
    }
    if args.json {
        let mut obj = batch_json(batch, &file, position, crc_valid);
        let marker = control.map(|c| {
            json!({
                "type": control_type_name(c.kind),
                "type_id": c.kind.id(),
                "version": c.version,
                "coordinator_epoch": c.marker.map(|m| m.coordinator_epoch),
            })
        });
        obj.insert("control_marker".into(), marker.unwrap_or(Value::Null));
        if !args.batches_only {
            let list = records
                .iter()
                .map(|r| Value::Object(record_json(r)))
                .collect();
            obj.insert("records".into(), Value::Array(list));
        }
        obj.insert("error".into(), error.map_or(Value::Null, Value::from));
        write_json(out, &Value::Object(obj))?;
        return Ok(outcome);
    }
    write!(
        out,
        "baseOffset: {} lastOffset: {} count: {} position: {position} size: {} codec: {} \
         timestampType: {} baseTimestamp: {} maxTimestamp: {} crc: {:#010x} crcValid: {crc_valid} \
         partitionLeaderEpoch: {} producerId: {} producerEpoch: {} baseSequence: {} \
         lastSequence: {} isTransactional: {} isControl: {}",
        batch.base_offset(),
        batch.last_offset(),
        batch.record_count(),
        batch.size_in_bytes(),
        codec_name(batch),
        timestamp_type_name(batch.timestamp_type()),
        batch.base_timestamp(),
        batch.max_timestamp(),
        batch.crc(),
        batch.partition_leader_epoch(),
        batch.producer_id(),
        batch.producer_epoch(),
        batch.base_sequence(),
        batch.last_sequence(),
        batch.is_transactional(),
        batch.is_control(),
    )?;
    match control {
        Some(c) => {
            let epoch = c
                .marker
                .map_or_else(|| "-".to_string(), |m| m.coordinator_epoch.to_string());
            writeln!(
                out,
                " controlMarker: {} coordinatorEpoch: {epoch}",
                control_type_name(c.kind)
            )?;
        }
        None => {
            writeln!(out)?;
            for r in &records {
                writeln!(
                    out,
                    "| offset: {} timestamp: {} key: {} value: {} headers: {}",
                    r.offset,
                    r.timestamp,
                    text_bytes(r.key),
                    text_bytes(r.value),
                    headers_text(r.headers()),
                )?;
            }
        }
    }
    if let Some(e) = &error {
        writeln!(out, "| DAMAGED: {e}")?;
    }
    Ok(outcome)
}

fn batch_json(batch: &Batch<'_>, file: &str, position: u64, crc_valid: bool) -> Map<String, Value> {
    let v = json!({
        "type": "batch",
        "file": file,
        "position": position,
        "size": batch.size_in_bytes(),
        "base_offset": batch.base_offset(),
        "last_offset": batch.last_offset(),
        "last_offset_delta": batch.last_offset_delta(),
        "count": batch.record_count(),
        "magic": batch.magic(),
        "crc": batch.crc(),
        "crc_valid": crc_valid,
        "codec": codec_name(batch),
        "timestamp_type": timestamp_type_name(batch.timestamp_type()),
        "base_timestamp": batch.base_timestamp(),
        "max_timestamp": batch.max_timestamp(),
        "delete_horizon": batch.delete_horizon(),
        "partition_leader_epoch": batch.partition_leader_epoch(),
        "producer_id": batch.producer_id(),
        "producer_epoch": batch.producer_epoch(),
        "base_sequence": batch.base_sequence(),
        "last_sequence": batch.last_sequence(),
        "transactional": batch.is_transactional(),
        "control": batch.is_control(),
    });
    match v {
        Value::Object(obj) => obj,
        _ => Map::new(),
    }
}

// ---------------------------------------------------------------------------------------
// verify

fn verify(args: &VerifyArgs) -> Result<Outcome, BoxError> {
    require_dir(&args.dir)?;
    let bar = progress_bar(0, true);
    let mut on_progress = |p: VerifyProgress| {
        bar.set_length(p.bytes_total);
        bar.set_position(p.bytes_done);
    };
    let report = verify_partition_with(&streamlog::io::RealFs, &args.dir, &mut on_progress);
    bar.finish_and_clear();
    let report = report?;
    let mut out = stdout();
    if args.json {
        write_json(&mut out, &report_json(&report))?;
    } else {
        for f in &report.problems {
            writeln!(out, "problem: {f}")?;
        }
        for f in &report.notes {
            writeln!(out, "note: {f}")?;
        }
        let unlisted = |count: u64, listed: usize| count.saturating_sub(listed as u64);
        let more = unlisted(report.problem_count, report.problems.len())
            + unlisted(report.note_count, report.notes.len());
        if more > 0 {
            writeln!(out, "({more} more findings not listed)")?;
        }
        let range = match (report.first_offset, report.last_offset) {
            (Some(first), Some(last)) => format!("[{first}, {last}]"),
            _ => "none".into(),
        };
        writeln!(
            out,
            "{}: segments: {} batches: {} records: {} bytes: {} offsets: {range} \
             clean shutdown: {} problems: {} notes: {}",
            if report.is_ok() { "OK" } else { "DAMAGED" },
            report.segments,
            report.batches,
            report.records,
            report.bytes,
            report.clean_shutdown,
            report.problem_count,
            report.note_count,
        )?;
    }
    out.flush()?;
    Ok(if report.is_ok() {
        Outcome::Clean
    } else {
        Outcome::Damaged
    })
}

fn finding_json(f: &Finding) -> Value {
    json!({
        "file": f.path.display().to_string(),
        "position": f.position,
        "kind": f.kind.name(),
        "detail": f.detail,
    })
}

fn report_json(r: &VerifyReport) -> Value {
    json!({
        "dir": r.dir.display().to_string(),
        "ok": r.is_ok(),
        "segments": r.segments,
        "batches": r.batches,
        "records": r.records,
        "bytes": r.bytes,
        "first_offset": r.first_offset,
        "last_offset": r.last_offset,
        "clean_shutdown": r.clean_shutdown,
        "problem_count": r.problem_count,
        "note_count": r.note_count,
        "problems": r.problems.iter().map(finding_json).collect::<Vec<_>>(),
        "notes": r.notes.iter().map(finding_json).collect::<Vec<_>>(),
    })
}

// ---------------------------------------------------------------------------------------
// produce

/// Bytes a record adds to a batch beyond its key and value, at most (varint fields).
const RECORD_OVERHEAD: usize = 32;
/// Size of a batch header.
const BATCH_OVERHEAD: usize = 61;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn produce(args: &ProduceArgs) -> Result<Outcome, BoxError> {
    with_log(&args.dir, |log| produce_lines(log, args))
}

/// Opens the log in `dir`, runs `f` on it and closes it, even after a failure, so what was
/// appended is left cleanly closed.
fn with_log(dir: &Path, f: impl FnOnce(&Log) -> Result<(), BoxError>) -> Result<Outcome, BoxError> {
    let log = Log::open(dir, LogConfig::default())?;
    let result = f(&log);
    let closed = log.close();
    result?;
    closed?;
    Ok(Outcome::Clean)
}

fn require_dir(dir: &Path) -> Result<(), BoxError> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(format!("{}: not a directory", dir.display()).into())
    }
}

fn produce_lines(log: &Log, args: &ProduceArgs) -> Result<(), BoxError> {
    let limit = usize::try_from(log.config().max_message_bytes).unwrap_or(usize::MAX);
    let separator = args.key_separator.as_deref().map(str::as_bytes);
    let mut input = io::stdin().lock();
    let mut out = stdout();
    let mut pending: Vec<OwnedRecord> = Vec::new();
    let mut pending_bytes = BATCH_OVERHEAD;
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let record = record_from_line(&line, separator);
        let size = record_size(&record);
        if !pending.is_empty() && pending_bytes + size > limit {
            append_batch(log, args, &mut pending, &mut out)?;
            pending_bytes = BATCH_OVERHEAD;
        }
        pending.push(record);
        pending_bytes += size;
        if pending.len() >= args.batch as usize {
            append_batch(log, args, &mut pending, &mut out)?;
            pending_bytes = BATCH_OVERHEAD;
        }
    }
    if !pending.is_empty() {
        append_batch(log, args, &mut pending, &mut out)?;
    }
    out.flush()?;
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
    out: &mut impl Write,
) -> Result<(), BoxError> {
    let info = log.append_records(pending, args.codec)?;
    pending.clear();
    if args.sync {
        log.flush()?;
    }
    for offset in info.first_offset..=info.last_offset {
        writeln!(out, "{offset}")?;
    }
    // Whoever reads the offsets sees each as soon as it is appended (or durable).
    out.flush()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// consume

/// Bytes read from the log per step.
const FETCH_BYTES: usize = 1 << 20;

fn consume(args: &ConsumeArgs) -> Result<Outcome, BoxError> {
    require_dir(&args.dir)?;
    with_log(&args.dir, |log| consume_records(log, args))
}

fn consume_records(log: &Log, args: &ConsumeArgs) -> Result<(), BoxError> {
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    let from = match args.from {
        Start::Earliest => start,
        Start::Latest => end,
        Start::Offset(o) if o < start || o > end => {
            return Err(
                format!("offset {o} is out of range: the log holds [{start}, {end})").into(),
            )
        }
        Start::Offset(o) => o,
    };
    let max = args.max.unwrap_or(u64::MAX);
    let mut out = stdout();
    let mut printed = 0u64;
    let mut next = from;
    while printed < max && next < end {
        let bytes = log.read_bytes(next, FETCH_BYTES, Some(end))?;
        if bytes.is_empty() {
            break;
        }
        for batch in Batches::new(&bytes) {
            let batch = batch?;
            batch.validate()?;
            next = batch.next_offset();
            // Transaction markers are the log's bookkeeping, not records: consumers skip them.
            if batch.is_control() {
                continue;
            }
            let mut scratch = Vec::new();
            let records = batch.records_in(&mut scratch, &log.config().decode_limits)?;
            for r in records.iter() {
                let r = r?;
                if r.offset < from {
                    continue;
                }
                if printed >= max {
                    break;
                }
                if args.json {
                    write_json(&mut out, &Value::Object(record_json(&r)))?;
                } else {
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}",
                        r.offset,
                        r.timestamp,
                        text_bytes(r.key),
                        text_bytes(r.value)
                    )?;
                }
                printed += 1;
            }
        }
    }
    out.flush()?;
    Ok(())
}
