//! `consume`: print records from an offset on.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use clap::Args;
use serde_json::Value;
use streamlog::log::Watermark;
use streamlog::record::Batches;
use streamlog::{Log, LogConfig};

use crate::output::{record_json, stdout, text_bytes, write_json};
use crate::settings::report_recovery;
use crate::{BoxError, Outcome};

#[derive(Debug, Args)]
pub(crate) struct ConsumeArgs {
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
    /// At the end of the log, wait for a writer (another process) to append more, and
    /// print it as it comes; stops at `--max` or when interrupted.
    #[arg(long)]
    follow: bool,
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

/// Bytes read from the log per step.
const FETCH_BYTES: usize = 1 << 20;

/// How often `--follow` looks at the directory for what the writer appended. The writer is
/// another process, so the files are all there is to watch; within this process the printing
/// loop waits on the log's watermark, woken by each refresh that finds something.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(100);

pub(crate) fn consume(args: &ConsumeArgs) -> Result<Outcome, BoxError> {
    // Read-only: never a recovery, a cut or a lock under a live writer (see `produce`).
    let log = Arc::new(Log::open_read_only(&args.dir, LogConfig::default())?);
    report_recovery(&log);
    let refresher = args.follow.then(|| Refresher::spawn(Arc::clone(&log)));
    let result = consume_records(&log, args);
    if let Some(r) = refresher {
        r.stop()?;
    }
    result?;
    Ok(Outcome::Clean)
}

/// A thread that refreshes a read-only log until stopped.
struct Refresher {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<Result<(), streamlog::Error>>,
}

impl Refresher {
    fn spawn(log: Arc<Log>) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || loop {
            match stopped.recv_timeout(FOLLOW_INTERVAL) {
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    log.refresh()?;
                }
                _ => return Ok(()),
            }
        });
        Refresher { stop, thread }
    }

    fn stop(self) -> Result<(), BoxError> {
        drop(self.stop);
        match self.thread.join() {
            Ok(r) => Ok(r?),
            Err(_) => Err("the refresher thread panicked".into()),
        }
    }
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
    loop {
        let end = log.log_end_offset();
        print_range(log, args, from, &mut next, end, max, &mut printed, &mut out)?;
        out.flush()?;
        if !args.follow || printed >= max {
            break;
        }
        // Woken by the refresher when the writer appended past `next`; the timeout only
        // lets a closed log (or a failed refresher) be noticed.
        let _ = log.wait_for(Watermark::LogEnd, next + 1, Duration::from_secs(1))?;
    }
    Ok(())
}

/// Prints the records of `[next, end)` (none below `from`), up to `max` in all.
#[allow(clippy::too_many_arguments)]
fn print_range(
    log: &Log,
    args: &ConsumeArgs,
    from: i64,
    next: &mut i64,
    end: i64,
    max: u64,
    printed: &mut u64,
    out: &mut impl Write,
) -> Result<(), BoxError> {
    while *printed < max && *next < end {
        let bytes = log.read_bytes(*next, FETCH_BYTES, Some(end))?;
        if bytes.is_empty() {
            break;
        }
        for batch in Batches::new(&bytes) {
            let batch = batch?;
            batch.validate()?;
            *next = batch.next_offset();
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
                if *printed >= max {
                    break;
                }
                if args.json {
                    write_json(out, &Value::Object(record_json(&r)))?;
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
                *printed += 1;
            }
        }
    }
    Ok(())
}
