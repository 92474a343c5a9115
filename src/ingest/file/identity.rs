//! A followed file's identity and its committed position as stored in `__ingest_positions`.
//!
//! A file is known by its device and inode while it is open, and by a fingerprint — its
//! first bytes, up to [`FINGERPRINT_BYTES`] — across restarts and copies: an inode found
//! holding other first bytes is another file (inode reuse, or a truncation while the agent
//! was down), and a new file starting with a followed file's bytes is a copy of it
//! (copytruncate's copy, or the gzip of a rotated file).

use serde::{Deserialize, Serialize};

use crate::ingest::error::{IngestError, Result};

/// Bytes of a file's start that identify it.
pub const FINGERPRINT_BYTES: usize = 256;

/// Where a followed file stands, as committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoredStream {
    /// Device of the file last followed.
    pub dev: u64,
    /// Inode of the file last followed.
    pub ino: u64,
    /// Where to read again: everything before it is in committed records.
    pub offset: u64,
    /// Pieces of the line at `offset` already emitted (a line split over the maximum).
    #[serde(default)]
    pub split: u32,
    /// The file's first bytes (hex), up to 256.
    pub fingerprint: String,
    /// The path it was last seen under (for people; never used to find it).
    pub path: String,
    /// The state: `active` (followed as it grows), `sealed` (a copy that will not grow),
    /// `detached` (gone or truncated; its rest is looked for in copies and gzip files).
    pub state: String,
}

impl StoredStream {
    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub(crate) fn decode(source: &str, key: &[u8], value: &[u8]) -> Result<Self> {
        serde_json::from_slice(value).map_err(|e| IngestError::BadPosition {
            source_name: source.to_string(),
            key: String::from_utf8_lossy(key).into_owned(),
            reason: e.to_string(),
        })
    }
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

pub(crate) fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

/// Whether two prefixes of files can be the same file's: the shorter is a prefix of the
/// longer, and neither is empty.
pub(crate) fn prefixes_agree(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    n > 0 && a.get(..n) == b.get(..n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_bad_hex() {
        assert_eq!(
            from_hex(&to_hex(&[0, 1, 0xab, 0xff])),
            Some(vec![0, 1, 0xab, 0xff])
        );
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
    }

    #[test]
    fn stored_stream_refuses_garbage() {
        assert!(StoredStream::decode("s", b"1", b"\xff{").is_err());
        assert!(StoredStream::decode("s", b"1", br#"{"dev":1}"#).is_err());
    }

    #[test]
    fn prefixes() {
        assert!(prefixes_agree(b"abc", b"abcdef"));
        assert!(!prefixes_agree(b"abd", b"abcdef"));
        assert!(!prefixes_agree(b"", b"abc"));
    }
}
