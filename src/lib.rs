//! # streamlog
//!
//! The storage engine of Apache Kafka as a Rust library: record batches in Kafka's exact
//! on-disk format (RecordBatch v2, CRC-32C, varint records, control batches), with the
//! codecs Kafka uses (none, gzip, lz4, and behind features zstd and snappy).
//!
//! ```
//! use streamlog::{Batch, BatchBuilder, BatchOptions, Compression, Header};
//!
//! // Encode three records into one lz4-compressed batch.
//! let mut builder = BatchBuilder::new(BatchOptions::compressed(Compression::Lz4));
//! for i in 0..3u8 {
//!     builder.append(1_700_000_000_000 + i64::from(i), Some(&[i]), Some(b"payload"),
//!                    &[Header::new("source", Some(b"app"))])?;
//! }
//! let bytes = builder.build()?;
//!
//! // Read it back: header fields without decoding, then the records.
//! let batch = Batch::new(&bytes)?;
//! batch.validate()?;
//! assert_eq!(batch.last_offset(), 2);
//! let records = batch.records()?;
//! let keys: Vec<u8> = records.iter().map(|r| r.map(|r| r.key.unwrap()[0])).collect::<Result<_, _>>()?;
//! assert_eq!(keys, [0, 1, 2]);
//! # Ok::<(), streamlog::Error>(())
//! ```
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod config;
pub mod error;
pub mod group;
#[cfg(feature = "ingest")]
pub mod ingest;
pub mod io;
mod kafka_code;
pub mod log;
pub mod partitioner;
pub mod producer;
#[cfg(feature = "openraft")]
pub mod raft;
pub mod record;
pub mod replication;
mod rng;
pub(crate) mod segment;
pub mod storage;
pub mod txn;

pub use config::{
    CleanupPolicy, Clock, CompressionType, HighWatermarkPolicy, LogConfig, LogConfigBuilder,
    ManualClock, SystemClock,
};
pub use error::{Error, Result};
pub use kafka_code::KafkaCode;
pub use log::{
    AppendInfo, FetchData, FileSlice, ListOffsetsSpec, Log, LogRecord, LogRecords, RecoveryInfo,
    RetentionOutcome, RetentionRule, SegmentInfo, TimestampAndOffset,
};
pub use producer::{
    AbortedTransaction, AbortedTxn, BatchMetadata, IsolationLevel, ProducerStateEntry, TxnResult,
};
pub use record::{
    Attributes, Batch, BatchBuilder, BatchHeader, BatchMut, BatchOptions, Batches, Compression,
    ControlRecord, ControlRecordType, DecodeLimits, EndTxnMarker, Header, OwnedRecord, Record,
    Records, TimestampType,
};
pub use storage::{Storage, StorageConfig, TopicConfig};

/// The README's code examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
