//! The primitive types of Kafka's message schemas (big-endian integers, strings, bytes,
//! arrays; in flexible versions their compact forms and tagged fields), read from untrusted
//! bytes without panicking and written back byte for byte.
//!
//! ```text
//! int16/int32/int64   big-endian two's complement
//! string              int16 length, UTF-8 bytes            (nullable: length -1 is null)
//! bytes               int32 length, bytes                  (nullable: length -1 is null)
//! array               int32 count, elements                (nullable: count -1 is null)
//! compact string      uvarint (length + 1), UTF-8 bytes    (0 is null)
//! compact bytes       uvarint (length + 1), bytes          (0 is null)
//! compact array       uvarint (count + 1), elements        (0 is null)
//! tagged fields       uvarint count, then per field: uvarint tag, uvarint size, bytes
//! ```

use crate::error::{Error, Result};

/// Longest string Kafka's schemas can carry (an `int16` length, also enforced for compact
/// strings by Kafka's readers).
pub(crate) const MAX_STRING_LEN: usize = i16::MAX as usize;

/// A tagged field of a flexible version that this crate does not interpret, kept so the
/// record re-encodes to the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaggedField {
    /// The field's tag.
    pub tag: u32,
    /// The field's bytes, as stored.
    pub data: Vec<u8>,
}

/// Reads one message's fields from the front of a byte slice.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    schema: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], schema: &'static str) -> Self {
        Reader { buf, schema }
    }

    pub(crate) fn malformed(&self, reason: &'static str) -> Error {
        Error::MalformedSchema {
            schema: self.schema,
            reason,
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        match self.buf.split_at_checked(n) {
            Some((head, tail)) => {
                self.buf = tail;
                Ok(head)
            }
            None => Err(self.malformed(what)),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let bytes = self.take(N, "truncated integer")?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// Kafka's unsigned varint (at most 5 bytes, 32 bits).
    pub(crate) fn uvarint(&mut self) -> Result<u32> {
        let mut value: u32 = 0;
        for i in 0..5u32 {
            let [byte] = self.array::<1>()?;
            let bits = u32::from(byte & 0x7f);
            if i == 4 && bits > 0x0f {
                return Err(self.malformed("unsigned varint longer than 32 bits"));
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.malformed("unsigned varint longer than 5 bytes"))
    }

    /// A length field: `None` for null (-1 or compact 0), otherwise a length that the
    /// remaining bytes can hold at `min_element` bytes per element.
    fn length(&mut self, flexible: bool, wide: bool, min_element: usize) -> Result<Option<usize>> {
        let len: i64 = if flexible {
            i64::from(self.uvarint()?) - 1
        } else if wide {
            i64::from(self.i32()?)
        } else {
            i64::from(self.i16()?)
        };
        if len < 0 {
            if len == -1 {
                return Ok(None);
            }
            return Err(self.malformed("negative length"));
        }
        let len = usize::try_from(len).map_err(|_| self.malformed("length out of range"))?;
        if len.saturating_mul(min_element) > self.remaining() {
            return Err(self.malformed("length beyond the end of the bytes"));
        }
        Ok(Some(len))
    }

    pub(crate) fn nullable_string(&mut self, flexible: bool) -> Result<Option<String>> {
        let Some(len) = self.length(flexible, false, 1)? else {
            return Ok(None);
        };
        if len > MAX_STRING_LEN {
            return Err(self.malformed("string longer than 32767 bytes"));
        }
        let bytes = self.take(len, "truncated string")?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Some(s.to_owned())),
            Err(_) => Err(self.malformed("string is not UTF-8")),
        }
    }

    pub(crate) fn string(&mut self, flexible: bool) -> Result<String> {
        self.nullable_string(flexible)?
            .ok_or_else(|| self.malformed("null in a non-nullable string"))
    }

    pub(crate) fn nullable_bytes(&mut self, flexible: bool) -> Result<Option<Vec<u8>>> {
        let Some(len) = self.length(flexible, true, 1)? else {
            return Ok(None);
        };
        Ok(Some(self.take(len, "truncated bytes")?.to_vec()))
    }

    pub(crate) fn bytes(&mut self, flexible: bool) -> Result<Vec<u8>> {
        self.nullable_bytes(flexible)?
            .ok_or_else(|| self.malformed("null in a non-nullable bytes field"))
    }

    /// An array's element count (`min_element`: the fewest bytes one element takes, which
    /// bounds the count by the bytes left before anything is allocated).
    pub(crate) fn array_len(&mut self, flexible: bool, min_element: usize) -> Result<usize> {
        self.length(flexible, true, min_element)?
            .ok_or_else(|| self.malformed("null in a non-nullable array"))
    }

    /// The tagged-field section that ends every struct of a flexible version.
    pub(crate) fn tagged_fields(&mut self) -> Result<Vec<TaggedField>> {
        let count = self.uvarint()? as usize;
        // Each tagged field takes at least two bytes (tag and size).
        if count.saturating_mul(2) > self.remaining() {
            return Err(self.malformed("tagged field count beyond the end of the bytes"));
        }
        let mut fields = Vec::with_capacity(count);
        for _ in 0..count {
            let tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            let data = self.take(size, "truncated tagged field")?.to_vec();
            fields.push(TaggedField { tag, data });
        }
        Ok(fields)
    }
}

fn too_long(what: &'static str, len: usize) -> Error {
    Error::FieldTooLong { what, len }
}

pub(crate) fn put_i16(out: &mut Vec<u8>, v: i16) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length (`None`: null) in the encoding `flexible`/`wide` select.
fn put_length(
    out: &mut Vec<u8>,
    len: Option<usize>,
    flexible: bool,
    wide: bool,
    what: &'static str,
) -> Result<()> {
    match (len, flexible) {
        (None, true) => put_uvarint(out, 0),
        (None, false) if wide => put_i32(out, -1),
        (None, false) => put_i16(out, -1),
        (Some(n), true) => {
            let v = u32::try_from(n)
                .ok()
                .and_then(|n| n.checked_add(1))
                .ok_or_else(|| too_long(what, n))?;
            put_uvarint(out, v);
        }
        (Some(n), false) if wide => {
            put_i32(out, i32::try_from(n).map_err(|_| too_long(what, n))?);
        }
        (Some(n), false) => {
            put_i16(out, i16::try_from(n).map_err(|_| too_long(what, n))?);
        }
    }
    Ok(())
}

pub(crate) fn put_nullable_string(
    out: &mut Vec<u8>,
    s: Option<&str>,
    flexible: bool,
) -> Result<()> {
    if let Some(s) = s {
        if s.len() > MAX_STRING_LEN {
            return Err(too_long("string", s.len()));
        }
    }
    put_length(out, s.map(str::len), flexible, false, "string")?;
    if let Some(s) = s {
        out.extend_from_slice(s.as_bytes());
    }
    Ok(())
}

pub(crate) fn put_string(out: &mut Vec<u8>, s: &str, flexible: bool) -> Result<()> {
    put_nullable_string(out, Some(s), flexible)
}

pub(crate) fn put_nullable_bytes(
    out: &mut Vec<u8>,
    b: Option<&[u8]>,
    flexible: bool,
) -> Result<()> {
    put_length(out, b.map(<[u8]>::len), flexible, true, "bytes field")?;
    if let Some(b) = b {
        out.extend_from_slice(b);
    }
    Ok(())
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8], flexible: bool) -> Result<()> {
    put_nullable_bytes(out, Some(b), flexible)
}

pub(crate) fn put_array_len(out: &mut Vec<u8>, len: usize, flexible: bool) -> Result<()> {
    put_length(out, Some(len), flexible, true, "array")
}

pub(crate) fn put_tagged_fields(out: &mut Vec<u8>, fields: &[TaggedField]) -> Result<()> {
    let count = u32::try_from(fields.len()).map_err(|_| too_long("tagged fields", fields.len()))?;
    put_uvarint(out, count);
    for field in fields {
        put_uvarint(out, field.tag);
        let size = u32::try_from(field.data.len())
            .map_err(|_| too_long("tagged field", field.data.len()))?;
        put_uvarint(out, size);
        out.extend_from_slice(&field.data);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvarint_round_trips_and_rejects_overlong() {
        for v in [0u32, 1, 127, 128, 300, 16_383, 16_384, u32::MAX] {
            let mut out = Vec::new();
            put_uvarint(&mut out, v);
            assert_eq!(Reader::new(&out, "t").uvarint().unwrap(), v);
        }
        let overlong = [0xff, 0xff, 0xff, 0xff, 0x1f];
        assert!(Reader::new(&overlong, "t").uvarint().is_err());
        let six = [0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
        assert!(Reader::new(&six, "t").uvarint().is_err());
    }

    #[test]
    fn strings_and_lengths() {
        let mut out = Vec::new();
        put_nullable_string(&mut out, None, false).unwrap();
        put_string(&mut out, "héllo", false).unwrap();
        put_nullable_string(&mut out, None, true).unwrap();
        put_string(&mut out, "x", true).unwrap();
        let mut r = Reader::new(&out, "t");
        assert_eq!(r.nullable_string(false).unwrap(), None);
        assert_eq!(r.string(false).unwrap(), "héllo");
        assert!(r.nullable_string(true).unwrap().is_none());
        assert_eq!(r.string(true).unwrap(), "x");
        assert_eq!(r.remaining(), 0);
        // A huge array count is refused before anything is allocated.
        let huge = [0x7f, 0xff, 0xff, 0xff];
        assert!(Reader::new(&huge, "t").array_len(false, 4).is_err());
        // -2 is not null, it is malformed.
        let minus_two = [0xff, 0xfe];
        assert!(Reader::new(&minus_two, "t").nullable_string(false).is_err());
        assert!(put_string(&mut out, &"a".repeat(40_000), false).is_err());
    }
}
