//! A decoder of `pgoutput`'s logical replication messages (protocol version 1, text
//! values), as `pg_logical_slot_peek_binary_changes` returns them: one message a row.
//!
//! The bytes come from the server, so nothing here trusts them: every length is checked
//! against what is left before it is used, and anything unexpected is a [`PgOutputError`].
//!
//! Layouts (PostgreSQL's "Logical Replication Message Formats"; integers big-endian,
//! strings NUL-terminated):
//! - `B` Begin: final LSN (i64), commit timestamp (i64, µs since 2000-01-01), xid (i32).
//! - `C` Commit: flags (u8), commit LSN (i64), end LSN (i64), commit timestamp (i64).
//! - `O` Origin: LSN (i64), name (string).
//! - `R` Relation: oid (i32), namespace (string), name (string), replica identity (u8),
//!   column count (i16), then a column: flags (u8, 1 = part of the key), name (string),
//!   type oid (i32), type modifier (i32).
//! - `Y` Type: oid (i32), namespace (string), name (string).
//! - `I` Insert: oid (i32), `N`, tuple. `U` Update: oid (i32), optionally `K` or `O` and the
//!   old tuple, then `N` and the new tuple. `D` Delete: oid (i32), `K` or `O`, old tuple.
//! - `T` Truncate: relation count (i32), options (u8), oids (i32 each).
//! - `M` Message: flags (u8), LSN (i64), prefix (string), length (i32), content.
//! - Tuple: column count (i16), then a column: `n` (null), `u` (unchanged TOASTed value,
//!   not sent), `t` + length (i32) + text, or `b` + length (i32) + binary.

/// A decoding failure: the message is not what `pgoutput` sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PgOutputError {
    /// The message ended before a field it announces.
    #[error("pgoutput message {kind:?} truncated at byte {at} (needs {needed} more)")]
    Truncated {
        /// The message type byte.
        kind: char,
        /// Where the missing field starts.
        at: usize,
        /// How many bytes were missing.
        needed: usize,
    },
    /// An empty message, or a message type this decoder does not know.
    #[error("unknown pgoutput message type {0:?}")]
    UnknownMessage(Option<char>),
    /// A tuple column or tuple marker byte that is none of the known ones.
    #[error("pgoutput message {kind:?}: unexpected marker {marker:?} at byte {at}")]
    UnexpectedMarker {
        /// The message type byte.
        kind: char,
        /// The byte found.
        marker: char,
        /// Where.
        at: usize,
    },
    /// A negative count or length.
    #[error("pgoutput message {kind:?}: negative length {value} at byte {at}")]
    NegativeLength {
        /// The message type byte.
        kind: char,
        /// The value read.
        value: i64,
        /// Where.
        at: usize,
    },
    /// A name that is not valid UTF-8.
    #[error("pgoutput message {kind:?}: a name at byte {at} is not UTF-8")]
    NotUtf8 {
        /// The message type byte.
        kind: char,
        /// Where.
        at: usize,
    },
    /// Bytes left over after the message's last field.
    #[error("pgoutput message {kind:?}: {extra} trailing bytes")]
    TrailingBytes {
        /// The message type byte.
        kind: char,
        /// How many.
        extra: usize,
    },
}

/// One column of a [`Relation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Whether it is part of the replica identity (the primary key by default).
    pub key: bool,
    /// Its name.
    pub name: String,
    /// Its type's oid (`pg_type.oid`).
    pub type_oid: u32,
    /// Its type modifier.
    pub type_modifier: i32,
}

/// A table's description, sent before the first change of it in a decoding session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// `pg_class.oid`.
    pub oid: u32,
    /// Its schema.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `relreplident`: `d` default (primary key), `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    /// Its columns, in order.
    pub columns: Vec<Column>,
}

/// One column value of a tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datum<'a> {
    /// SQL NULL.
    Null,
    /// A TOASTed value the update did not change (its value is not sent).
    UnchangedToast,
    /// The value in the type's text format.
    Text(&'a [u8]),
    /// The value in the type's binary format.
    Binary(&'a [u8]),
}

/// Which old tuple an update or delete carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldKind {
    /// `K`: the replica identity's columns only (others null).
    Key,
    /// `O`: the whole old row (`REPLICA IDENTITY FULL`).
    Full,
}

/// A decoded message; tuples borrow from the message's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message<'a> {
    /// A transaction starts.
    Begin {
        /// The LSN of its commit record.
        final_lsn: u64,
        /// Commit time, microseconds since 2000-01-01.
        commit_ts: i64,
        /// Its transaction id.
        xid: u32,
    },
    /// The transaction commits.
    Commit {
        /// Flags (unused, 0).
        flags: u8,
        /// The LSN of the commit record.
        commit_lsn: u64,
        /// The LSN just past the commit record: where decoding resumes after it.
        end_lsn: u64,
        /// Commit time, microseconds since 2000-01-01.
        commit_ts: i64,
    },
    /// The changes came from a replication origin.
    Origin {
        /// The origin's commit LSN.
        lsn: u64,
        /// The origin's name.
        name: String,
    },
    /// A table's description.
    Relation(Relation),
    /// A type's name (for non-built-in types).
    Type {
        /// The type oid.
        oid: u32,
        /// Its schema.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// A row was inserted.
    Insert {
        /// The table.
        relation: u32,
        /// The new row.
        new: Vec<Datum<'a>>,
    },
    /// A row was updated.
    Update {
        /// The table.
        relation: u32,
        /// The old key or row, when the key changed or the identity is full.
        old: Option<(OldKind, Vec<Datum<'a>>)>,
        /// The new row.
        new: Vec<Datum<'a>>,
    },
    /// A row was deleted.
    Delete {
        /// The table.
        relation: u32,
        /// Its key or whole row.
        old: (OldKind, Vec<Datum<'a>>),
    },
    /// Tables were truncated.
    Truncate {
        /// `1` CASCADE, `2` RESTART IDENTITY.
        options: u8,
        /// The tables.
        relations: Vec<u32>,
    },
    /// A logical decoding message (`pg_logical_emit_message`).
    LogicalMessage {
        /// `1` when transactional.
        flags: u8,
        /// Its LSN.
        lsn: u64,
        /// Its prefix.
        prefix: String,
        /// Its content.
        content: &'a [u8],
    },
}

/// Epoch of PostgreSQL timestamps (2000-01-01) in milliseconds since the Unix epoch.
pub const PG_EPOCH_MS: i64 = 946_684_800_000;

/// Decodes one message.
///
/// ```
/// use streamlog::ingest::postgres::pgoutput::{decode, Message};
///
/// let mut begin = vec![b'B'];
/// begin.extend_from_slice(&0x16B3_7480u64.to_be_bytes());
/// begin.extend_from_slice(&0i64.to_be_bytes());
/// begin.extend_from_slice(&742u32.to_be_bytes());
/// assert_eq!(
///     decode(&begin)?,
///     Message::Begin { final_lsn: 0x16B3_7480, commit_ts: 0, xid: 742 }
/// );
/// assert!(decode(&begin[..5]).is_err());
/// assert!(decode(b"Z").is_err());
/// # Ok::<(), streamlog::ingest::postgres::pgoutput::PgOutputError>(())
/// ```
pub fn decode(bytes: &[u8]) -> Result<Message<'_>, PgOutputError> {
    let Some((&tag, _)) = bytes.split_first() else {
        return Err(PgOutputError::UnknownMessage(None));
    };
    let mut r = Reader {
        bytes,
        at: 1,
        kind: char::from(tag),
    };
    let message = match tag {
        b'B' => Message::Begin {
            final_lsn: r.u64()?,
            commit_ts: r.i64()?,
            xid: r.u32()?,
        },
        b'C' => Message::Commit {
            flags: r.u8()?,
            commit_lsn: r.u64()?,
            end_lsn: r.u64()?,
            commit_ts: r.i64()?,
        },
        b'O' => Message::Origin {
            lsn: r.u64()?,
            name: r.string()?,
        },
        b'R' => {
            let oid = r.u32()?;
            let namespace = r.string()?;
            let name = r.string()?;
            let replica_identity = r.u8()?;
            let count = r.count16()?;
            let mut columns = Vec::with_capacity(count);
            for _ in 0..count {
                columns.push(Column {
                    key: r.u8()? & 1 == 1,
                    name: r.string()?,
                    type_oid: r.u32()?,
                    type_modifier: r.i32()?,
                });
            }
            Message::Relation(Relation {
                oid,
                namespace,
                name,
                replica_identity,
                columns,
            })
        }
        b'Y' => Message::Type {
            oid: r.u32()?,
            namespace: r.string()?,
            name: r.string()?,
        },
        b'I' => {
            let relation = r.u32()?;
            r.expect(b'N')?;
            Message::Insert {
                relation,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let relation = r.u32()?;
            let old = match r.u8()? {
                b'N' => None,
                marker => {
                    let kind = r.old_kind(marker)?;
                    let tuple = r.tuple()?;
                    r.expect(b'N')?;
                    Some((kind, tuple))
                }
            };
            Message::Update {
                relation,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation = r.u32()?;
            let marker = r.u8()?;
            let kind = r.old_kind(marker)?;
            Message::Delete {
                relation,
                old: (kind, r.tuple()?),
            }
        }
        b'T' => {
            let count = r.count32()?;
            let options = r.u8()?;
            // Each oid takes 4 bytes: a count beyond what is left is refused before any
            // allocation.
            r.need(count.saturating_mul(4))?;
            let mut relations = Vec::with_capacity(count);
            for _ in 0..count {
                relations.push(r.u32()?);
            }
            Message::Truncate { options, relations }
        }
        b'M' => {
            let flags = r.u8()?;
            let lsn = r.u64()?;
            let prefix = r.string()?;
            let len = r.count32()?;
            Message::LogicalMessage {
                flags,
                lsn,
                prefix,
                content: r.take(len)?,
            }
        }
        other => return Err(PgOutputError::UnknownMessage(Some(char::from(other)))),
    };
    let extra = bytes.len().saturating_sub(r.at);
    if extra > 0 {
        return Err(PgOutputError::TrailingBytes {
            kind: r.kind,
            extra,
        });
    }
    Ok(message)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    kind: char,
}

impl<'a> Reader<'a> {
    fn need(&self, n: usize) -> Result<(), PgOutputError> {
        let left = self.bytes.len().saturating_sub(self.at);
        if left < n {
            return Err(PgOutputError::Truncated {
                kind: self.kind,
                at: self.at,
                needed: n - left,
            });
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PgOutputError> {
        self.need(n)?;
        let out = self
            .bytes
            .get(self.at..self.at + n)
            .ok_or(PgOutputError::Truncated {
                kind: self.kind,
                at: self.at,
                needed: n,
            })?;
        self.at += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PgOutputError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, PgOutputError> {
        Ok(u8::from_be_bytes(self.array()?))
    }
    fn i16(&mut self) -> Result<i16, PgOutputError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, PgOutputError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, PgOutputError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, PgOutputError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, PgOutputError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn negative(&self, value: i64) -> PgOutputError {
        PgOutputError::NegativeLength {
            kind: self.kind,
            value,
            at: self.at,
        }
    }

    fn count16(&mut self) -> Result<usize, PgOutputError> {
        let n = self.i16()?;
        usize::try_from(n).map_err(|_| self.negative(n.into()))
    }

    fn count32(&mut self) -> Result<usize, PgOutputError> {
        let n = self.i32()?;
        usize::try_from(n).map_err(|_| self.negative(n.into()))
    }

    fn string(&mut self) -> Result<String, PgOutputError> {
        let rest = self.bytes.get(self.at..).unwrap_or_default();
        let Some(end) = rest.iter().position(|b| *b == 0) else {
            return Err(PgOutputError::Truncated {
                kind: self.kind,
                at: self.bytes.len(),
                needed: 1,
            });
        };
        let text = std::str::from_utf8(rest.get(..end).unwrap_or_default())
            .map_err(|_| PgOutputError::NotUtf8 {
                kind: self.kind,
                at: self.at,
            })?
            .to_string();
        self.at += end + 1;
        Ok(text)
    }

    fn unexpected(&self, marker: u8) -> PgOutputError {
        PgOutputError::UnexpectedMarker {
            kind: self.kind,
            marker: char::from(marker),
            at: self.at.saturating_sub(1),
        }
    }

    fn expect(&mut self, marker: u8) -> Result<(), PgOutputError> {
        let got = self.u8()?;
        if got != marker {
            return Err(self.unexpected(got));
        }
        Ok(())
    }

    fn old_kind(&self, marker: u8) -> Result<OldKind, PgOutputError> {
        match marker {
            b'K' => Ok(OldKind::Key),
            b'O' => Ok(OldKind::Full),
            other => Err(self.unexpected(other)),
        }
    }

    fn tuple(&mut self) -> Result<Vec<Datum<'a>>, PgOutputError> {
        let count = self.count16()?;
        // Every column takes at least its marker byte.
        self.need(count)?;
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let datum = match self.u8()? {
                b'n' => Datum::Null,
                b'u' => Datum::UnchangedToast,
                b't' => {
                    let len = self.count32()?;
                    Datum::Text(self.take(len)?)
                }
                b'b' => {
                    let len = self.count32()?;
                    Datum::Binary(self.take(len)?)
                }
                other => return Err(self.unexpected(other)),
            };
            out.push(datum);
        }
        Ok(out)
    }
}

/// Parses PostgreSQL's text form of an LSN (`16/B374D848`).
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    let hi = u32::from_str_radix(hi, 16).ok()?;
    let lo = u32::from_str_radix(lo, 16).ok()?;
    Some((u64::from(hi) << 32) | u64::from(lo))
}

/// PostgreSQL's text form of an LSN.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relation_bytes() -> Vec<u8> {
        let mut b = vec![b'R'];
        b.extend_from_slice(&16384u32.to_be_bytes());
        b.extend_from_slice(b"public\0items\0d");
        b.extend_from_slice(&2i16.to_be_bytes());
        b.push(1);
        b.extend_from_slice(b"id\0");
        b.extend_from_slice(&23u32.to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.push(0);
        b.extend_from_slice(b"note\0");
        b.extend_from_slice(&25u32.to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b
    }

    fn update_bytes() -> Vec<u8> {
        let mut b = vec![b'U'];
        b.extend_from_slice(&16384u32.to_be_bytes());
        b.push(b'K');
        b.extend_from_slice(&2i16.to_be_bytes());
        b.push(b't');
        b.extend_from_slice(&1i32.to_be_bytes());
        b.push(b'7');
        b.push(b'n');
        b.push(b'N');
        b.extend_from_slice(&2i16.to_be_bytes());
        b.push(b't');
        b.extend_from_slice(&1i32.to_be_bytes());
        b.push(b'8');
        b.push(b'u');
        b
    }

    #[test]
    fn relation_and_update_decode() {
        let Message::Relation(rel) = decode(&relation_bytes()).unwrap() else {
            panic!("not a relation")
        };
        assert_eq!(
            (rel.namespace.as_str(), rel.name.as_str()),
            ("public", "items")
        );
        assert!(rel.columns[0].key && !rel.columns[1].key);
        assert_eq!(rel.columns[1].type_oid, 25);
        let bytes = update_bytes();
        assert_eq!(
            decode(&bytes).unwrap(),
            Message::Update {
                relation: 16384,
                old: Some((OldKind::Key, vec![Datum::Text(b"7"), Datum::Null])),
                new: vec![Datum::Text(b"8"), Datum::UnchangedToast],
            }
        );
    }

    #[test]
    fn every_prefix_and_every_flipped_byte_is_an_error_or_a_message() {
        for good in [relation_bytes(), update_bytes()] {
            for cut in 0..good.len() {
                assert!(decode(&good[..cut]).is_err(), "prefix {cut} accepted");
            }
            let mut longer = good.clone();
            longer.push(0);
            assert!(matches!(
                decode(&longer),
                Err(PgOutputError::TrailingBytes { extra: 1, .. })
            ));
            for i in 0..good.len() {
                for v in [0u8, 0x7f, 0x80, 0xff] {
                    let mut bad = good.clone();
                    bad[i] = v;
                    let _ = decode(&bad);
                }
            }
        }
        // Counts far beyond the message are refused before allocating.
        let mut t = vec![b'T'];
        t.extend_from_slice(&i32::MAX.to_be_bytes());
        t.push(0);
        assert!(matches!(decode(&t), Err(PgOutputError::Truncated { .. })));
        let mut neg = vec![b'I'];
        neg.extend_from_slice(&1u32.to_be_bytes());
        neg.push(b'N');
        neg.extend_from_slice(&(-3i16).to_be_bytes());
        assert!(matches!(
            decode(&neg),
            Err(PgOutputError::NegativeLength { value: -3, .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn lsn_text_round_trips() {
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(format_lsn(0x16_B374_D848), "16/B374D848");
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("x/1"), None);
        assert_eq!(parse_lsn("1"), None);
    }
}
