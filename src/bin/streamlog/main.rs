//! `streamlog`: look inside, check and use a Kafka partition directory.
//!
//! ```text
//! streamlog dump    <segment.log | partition-dir | N.snapshot | N.txnindex> [--json [--records]] [--batches-only]
//! streamlog verify  <partition-dir> [--json]
//! streamlog produce <partition-dir> [--codec C] [--sync] [--key-separator SEP] [--batch N]
//! streamlog consume <partition-dir> [--from earliest|latest|OFFSET] [--max N] [--json]
//! streamlog ingest  --config agent.toml [--until-idle]
//! ```
//!
//! `ingest` runs a log-collection agent (files into topics of a data directory, exactly
//! once) until SIGTERM or SIGINT, then commits what it read and exits.
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

mod consume;
mod dump;
mod ingest;
mod output;
mod produce;
mod settings;
mod verify;

use std::error::Error as StdError;
use std::io;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::consume::{consume, ConsumeArgs};
use crate::dump::{dump, DumpArgs};
use crate::ingest::{ingest, IngestArgs};
use crate::produce::{produce, ProduceArgs};
use crate::verify::{verify, VerifyArgs};

/// Errors a command ends with: printed, exit status 2.
pub(crate) type BoxError = Box<dyn StdError>;

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
    /// Collect logs into a data directory, exactly once, as `agent.toml` says.
    Ingest(IngestArgs),
}

/// What a command found, beyond plain success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
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
        Command::Ingest(args) => ingest(&args),
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
