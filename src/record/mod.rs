//! Kafka's RecordBatch v2: the bytes of the log.
//!
//! [`BatchBuilder`] encodes records into a batch; [`Batch`] is a zero-copy view over stored
//! batch bytes with header accessors, [`Batch::validate`] and lazy record decoding;
//! [`Batches`] walks batches stored back to back; [`BatchMut`] updates the fields a log
//! rewrites on append.

mod batch;
mod batches;
mod builder;
mod codec;
mod control;
pub(crate) mod crc;
mod framing;
pub(crate) mod header;
mod lz4;
#[allow(clippy::module_inception)]
mod record;
mod records;
mod varint;

pub use batch::{Batch, BatchMut, DecodeLimits};
pub use batches::Batches;
pub use builder::{BatchBuilder, BatchOptions, NO_TIMESTAMP};
pub use codec::Compression;
pub use control::{ControlRecord, ControlRecordType, EndTxnMarker};
pub(crate) use framing::{frames_declared_records_each, FRAMING_LANES};
pub use header::{
    Attributes, BatchHeader, TimestampType, BATCH_HEADER_SIZE, LOG_OVERHEAD, MAGIC_V2,
    NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};
pub(crate) use record::walk_producer_records;
pub use record::{Header, Headers, OwnedRecord, Record};
pub(crate) use records::RecordCursor;
pub use records::{RecordIter, Records};
