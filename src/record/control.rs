//! Control records: the transaction markers (COMMIT, ABORT) a control batch carries.
//!
//! ```text
//! key:   version int16 (0), type int16 (0 abort, 1 commit)
//! value: version int16 (0), coordinator epoch int32     (for abort and commit)
//! ```

use super::header::{be_i16, be_i32};
use super::record::Record;

/// What a control record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlRecordType {
    /// The producer's open transaction was aborted (type 0).
    Abort,
    /// The producer's open transaction was committed (type 1).
    Commit,
    /// A control type this crate does not interpret (KRaft's leader-change and snapshot types).
    Unknown(i16),
}

impl ControlRecordType {
    /// Kafka's type id.
    pub fn id(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
            ControlRecordType::Unknown(id) => id,
        }
    }

    /// The type for a Kafka type id.
    pub fn from_id(id: i16) -> Self {
        match id {
            0 => ControlRecordType::Abort,
            1 => ControlRecordType::Commit,
            other => ControlRecordType::Unknown(other),
        }
    }
}

/// The value of a COMMIT or ABORT control record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EndTxnMarker {
    /// Value schema version (0).
    pub version: i16,
    /// Epoch of the transaction coordinator that wrote the marker.
    pub coordinator_epoch: i32,
}

/// A decoded control record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControlRecord {
    /// Key schema version (0).
    pub version: i16,
    /// Commit, abort or another type.
    pub kind: ControlRecordType,
    /// The marker value, for commit and abort.
    pub marker: Option<EndTxnMarker>,
}

impl ControlRecord {
    /// A COMMIT (`commit == true`) or ABORT marker from a coordinator at `coordinator_epoch`.
    pub fn end_txn(commit: bool, coordinator_epoch: i32) -> Self {
        ControlRecord {
            version: 0,
            kind: if commit {
                ControlRecordType::Commit
            } else {
                ControlRecordType::Abort
            },
            marker: Some(EndTxnMarker {
                version: 0,
                coordinator_epoch,
            }),
        }
    }

    /// Decodes a control record from the key and value of a record in a control batch.
    pub fn from_record(record: &Record<'_>) -> Result<Self, &'static str> {
        let key = record.key.ok_or("control record without a key")?;
        if key.len() < 4 {
            return Err("control record key shorter than 4 bytes");
        }
        let version = be_i16(key, 0);
        let kind = ControlRecordType::from_id(be_i16(key, 2));
        let marker = match kind {
            ControlRecordType::Abort | ControlRecordType::Commit => {
                let value = record.value.ok_or("transaction marker without a value")?;
                if value.len() < 6 {
                    return Err("transaction marker value shorter than 6 bytes");
                }
                Some(EndTxnMarker {
                    version: be_i16(value, 0),
                    coordinator_epoch: be_i32(value, 2),
                })
            }
            ControlRecordType::Unknown(_) => None,
        };
        Ok(ControlRecord {
            version,
            kind,
            marker,
        })
    }

    /// The record key bytes.
    pub fn key_bytes(&self) -> [u8; 4] {
        let [a, b] = self.version.to_be_bytes();
        let [c, d] = self.kind.id().to_be_bytes();
        [a, b, c, d]
    }

    /// The record value bytes of a transaction marker.
    pub fn value_bytes(&self) -> Option<[u8; 6]> {
        self.marker.map(|m| {
            let [a, b] = m.version.to_be_bytes();
            let [c, d, e, f] = m.coordinator_epoch.to_be_bytes();
            [a, b, c, d, e, f]
        })
    }
}
