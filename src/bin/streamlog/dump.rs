//! `dump`: the batches and records of a segment, a partition, a snapshot or a txnindex.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{json, Map, Value};
use streamlog::log::{list_segment_files, SegmentReader};
use streamlog::record::{Batch, ControlRecordType};
use streamlog::TimestampType;

use crate::output::{headers_text, progress_bar, record_json, stdout, text_bytes, write_json};
use crate::{BoxError, Outcome};

#[derive(Debug, Args)]
pub(crate) struct DumpArgs {
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

pub(crate) fn dump(args: &DumpArgs) -> Result<Outcome, BoxError> {
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
