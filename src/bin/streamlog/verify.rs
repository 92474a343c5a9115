//! `verify`: check a partition directory read-only.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{json, Value};
use streamlog::log::{verify_partition_with, Finding, VerifyProgress, VerifyReport};

use crate::output::{progress_bar, stdout, write_json};
use crate::{BoxError, Outcome};

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The partition directory.
    dir: PathBuf,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

pub(crate) fn verify(args: &VerifyArgs) -> Result<Outcome, BoxError> {
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

fn require_dir(dir: &Path) -> Result<(), BoxError> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(format!("{}: not a directory", dir.display()).into())
    }
}
