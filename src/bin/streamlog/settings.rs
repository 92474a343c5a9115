//! Log settings a command takes on its command line, under Kafka's topic-config names.

use clap::Args;
use streamlog::{Log, LogConfig};

/// The log settings `produce` takes (each flag is the Kafka topic config of the same name).
#[derive(Debug, Args)]
pub(crate) struct LogSettings {
    /// `segment.bytes`: roll to a new segment past this size.
    #[arg(long, value_name = "BYTES")]
    segment_bytes: Option<u64>,
    /// `segment.ms`: roll a segment this old.
    #[arg(long, value_name = "MS")]
    segment_ms: Option<i64>,
    /// `segment.index.bytes`: the size each segment's index files are preallocated to.
    #[arg(long, value_name = "BYTES")]
    segment_index_bytes: Option<u32>,
    /// `index.interval.bytes`: bytes between two offset-index entries.
    #[arg(long, value_name = "BYTES")]
    index_interval_bytes: Option<u32>,
    /// `max.message.bytes`: the largest batch accepted.
    #[arg(long, value_name = "BYTES")]
    max_message_bytes: Option<u32>,
    /// `flush.messages`: fsync after this many appended records.
    #[arg(long, value_name = "N")]
    flush_messages: Option<u64>,
    /// `flush.ms`: fsync when this long has passed since the last flush.
    #[arg(long, value_name = "MS")]
    flush_ms: Option<i64>,
}

impl LogSettings {
    /// The defaults with the flags given applied.
    pub(crate) fn config(&self) -> LogConfig {
        let mut c = LogConfig::default();
        if let Some(v) = self.segment_bytes {
            c.segment_bytes = v;
        }
        if let Some(v) = self.segment_ms {
            c.segment_ms = Some(v);
        }
        if let Some(v) = self.segment_index_bytes {
            c.segment_index_bytes = v;
        }
        if let Some(v) = self.index_interval_bytes {
            c.index_interval_bytes = v;
        }
        if let Some(v) = self.max_message_bytes {
            c.max_message_bytes = v;
        }
        if self.flush_messages.is_some() {
            c.flush_messages = self.flush_messages;
        }
        if self.flush_ms.is_some() {
            c.flush_ms = self.flush_ms;
        }
        c
    }
}

/// Tells on stderr when opening `log` cut or dropped anything (a torn or damaged tail), so a
/// user is never left to find out from missing offsets.
pub(crate) fn report_recovery(log: &Log) {
    let info = log.recovery_info();
    if info.bytes_truncated == 0 && info.segments_deleted == 0 {
        return;
    }
    let how = if log.is_read_only() {
        "left out (in memory only: nothing on disk was changed; a live writer may still be writing it)"
    } else {
        "cut"
    };
    eprintln!(
        "streamlog: note: recovery of {} {how} {} bytes of torn or damaged tail and {} segments after it; the log now ends at offset {}",
        log.dir().display(),
        info.bytes_truncated,
        info.segments_deleted,
        log.log_end_offset(),
    );
}
