//! Kafka's zig-zag variable-length integers (protobuf style), as used inside records.
//!
//! A varint is at most 5 bytes (i32), a varlong at most 10 (i64); longer encodings are errors,
//! as in Kafka's `ByteUtils`. Readers take a cursor over a slice and never read past its end.

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarintError {
    /// The slice ended inside the varint.
    Truncated,
    /// More continuation bytes than the type allows.
    TooLong,
}

impl VarintError {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            VarintError::Truncated => "truncated varint",
            VarintError::TooLong => "varint longer than its type allows",
        }
    }
}

/// Reads an unsigned varint of at most `max_bytes` bytes at `*pos`.
///
/// Record lengths, deltas and key/value lengths are almost always one or two bytes, so those
/// are decoded straight from a slice pattern; longer ones take the byte loop.
#[inline(always)]
fn read_unsigned(buf: &[u8], pos: &mut usize, max_bytes: usize) -> Result<u64, VarintError> {
    match buf.get(*pos..) {
        Some([b0, ..]) if b0 & 0x80 == 0 => {
            *pos += 1;
            Ok(u64::from(*b0))
        }
        Some([b0, b1, ..]) if b1 & 0x80 == 0 => {
            *pos += 2;
            Ok(u64::from(b0 & 0x7f) | (u64::from(*b1) << 7))
        }
        _ => read_unsigned_long(buf, pos, max_bytes),
    }
}

fn read_unsigned_long(buf: &[u8], pos: &mut usize, max_bytes: usize) -> Result<u64, VarintError> {
    let mut value: u64 = 0;
    let mut shift = 0u32;
    for i in 0..max_bytes {
        let Some(&byte) = buf.get(*pos + i) else {
            return Err(VarintError::Truncated);
        };
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            *pos += i + 1;
            return Ok(value);
        }
        shift += 7;
    }
    Err(VarintError::TooLong)
}

/// Reads a zig-zag varint (i32) at `*pos`, advancing `pos` past it.
#[inline(always)]
pub(crate) fn read_varint(buf: &[u8], pos: &mut usize) -> Result<i32, VarintError> {
    // Kafka reads at most 5 bytes and keeps the low 32 bits.
    let raw = read_unsigned(buf, pos, 5)? as u32;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// Reads an unsigned varint of at most `max_bytes` bytes from the front of `rest`, advancing
/// `rest` past it (a slice cursor: one length check per byte read, no position arithmetic).
#[inline(always)]
fn take_unsigned(rest: &mut &[u8], max_bytes: usize) -> Result<u64, VarintError> {
    match **rest {
        [b0, ref tail @ ..] if b0 & 0x80 == 0 => {
            *rest = tail;
            Ok(u64::from(b0))
        }
        [b0, b1, ref tail @ ..] if b1 & 0x80 == 0 => {
            *rest = tail;
            Ok(u64::from(b0 & 0x7f) | (u64::from(b1) << 7))
        }
        _ => {
            let mut pos = 0;
            let value = read_unsigned_long(rest, &mut pos, max_bytes)?;
            *rest = rest.get(pos..).unwrap_or_default();
            Ok(value)
        }
    }
}

/// Reads a zig-zag varint (i32) from the front of `rest`, advancing it.
#[inline(always)]
pub(crate) fn take_varint(rest: &mut &[u8]) -> Result<i32, VarintError> {
    let raw = take_unsigned(rest, 5)? as u32;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// Reads a zig-zag varlong (i64) from the front of `rest`, advancing it.
#[inline(always)]
pub(crate) fn take_varlong(rest: &mut &[u8]) -> Result<i64, VarintError> {
    let raw = take_unsigned(rest, 10)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

/// Reads an unsigned varint of at most `max_bytes` bytes at `buf[pos]`: its value and the
/// position after it, or `None` when it is truncated or too long. The one- and two-byte
/// forms (nearly every length and delta in a record) are decoded inline with one bounds
/// check a byte; the position goes in and out by value so that a caller's loop keeps it in
/// a register.
#[inline(always)]
pub(crate) fn get_unsigned(buf: &[u8], pos: usize, max_bytes: usize) -> Option<(u64, usize)> {
    let b0 = *buf.get(pos)?;
    if b0 < 0x80 {
        return Some((u64::from(b0), pos + 1));
    }
    let b1 = *buf.get(pos + 1)?;
    if b1 < 0x80 {
        return Some((u64::from(b0 & 0x7f) | (u64::from(b1) << 7), pos + 2));
    }
    get_unsigned_long(buf, pos, max_bytes)
}

#[cold]
#[inline(never)]
fn get_unsigned_long(buf: &[u8], mut pos: usize, max_bytes: usize) -> Option<(u64, usize)> {
    let value = read_unsigned_long(buf, &mut pos, max_bytes).ok()?;
    Some((value, pos))
}

/// [`get_unsigned`] as a zig-zag varint (i32): Kafka reads at most 5 bytes and keeps the
/// low 32 bits.
#[inline(always)]
pub(crate) fn get_varint(buf: &[u8], pos: usize) -> Option<(i32, usize)> {
    let (raw, pos) = get_unsigned(buf, pos, 5)?;
    let raw = raw as u32;
    Some((((raw >> 1) as i32) ^ -((raw & 1) as i32), pos))
}

/// [`get_unsigned`] as a zig-zag varlong (i64).
#[inline(always)]
pub(crate) fn get_varlong(buf: &[u8], pos: usize) -> Option<(i64, usize)> {
    let (raw, pos) = get_unsigned(buf, pos, 10)?;
    Some((((raw >> 1) as i64) ^ -((raw & 1) as i64), pos))
}

#[inline]
fn zigzag32(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

#[inline]
fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
fn unsigned_size(v: u64) -> usize {
    // Seven bits a byte: bytes = ceil(significant bits / 7), at least one. No loop.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Encoded size of `v` as a varint.
#[inline]
pub(crate) fn varint_size(v: i32) -> usize {
    unsigned_size(u64::from(zigzag32(v)))
}

/// Encoded size of `v` as a varlong.
#[inline]
pub(crate) fn varlong_size(v: i64) -> usize {
    unsigned_size(zigzag64(v))
}

#[inline]
fn write_unsigned(out: &mut Vec<u8>, mut v: u64) {
    // Byte pushes rather than a copy from a stack buffer: one or two bytes is the common
    // case, and a variable-length copy costs a memcpy call per varint.
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The zig-zag varint of `v` as little-endian bytes in a register, with its length, when it
/// takes at most three bytes (|v| < 2^20): what a record's lengths and deltas nearly always
/// are, so a writer can store several at once.
#[inline(always)]
pub(crate) fn packed_varint(v: i64) -> Option<(u32, usize)> {
    let z = zigzag64(v);
    if z < 0x80 {
        Some((z as u32, 1))
    } else if z < 0x4000 {
        let z = z as u32;
        Some(((z & 0x7f) | 0x80 | ((z >> 7) << 8), 2))
    } else if z < 0x20_0000 {
        let z = z as u32;
        Some((
            (z & 0x7f) | 0x80 | (((z >> 7) & 0x7f | 0x80) << 8) | ((z >> 14) << 16),
            3,
        ))
    } else {
        None
    }
}

/// Appends the first `n` of `bytes` to `out`: all `N` are copied (a fixed-size copy is a
/// single store, where a copy of `n` would call `memcpy`) and the rest cut off again.
#[inline(always)]
pub(crate) fn put_packed<const N: usize>(out: &mut Vec<u8>, bytes: &[u8; N], n: usize) {
    let len = out.len();
    out.extend_from_slice(bytes);
    out.truncate(len + n.min(N));
}

/// Appends `v` as a zig-zag varint.
#[inline]
pub(crate) fn write_varint(out: &mut Vec<u8>, v: i32) {
    write_unsigned(out, u64::from(zigzag32(v)));
}

/// Appends `v` as a zig-zag varlong.
#[inline]
pub(crate) fn write_varlong(out: &mut Vec<u8>, v: i64) {
    write_unsigned(out, zigzag64(v));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn packed_varints_match_written_ones(v in prop_oneof![-(1i64 << 21)..(1i64 << 21), any::<i64>()]) {
            let mut want = Vec::new();
            write_varlong(&mut want, v);
            match packed_varint(v) {
                Some((packed, n)) => {
                    prop_assert_eq!(&packed.to_le_bytes()[..n], &want[..]);
                    let mut out = vec![7u8];
                    put_packed(&mut out, &packed.to_le_bytes(), n);
                    prop_assert_eq!(&out[1..], &want[..]);
                }
                None => prop_assert!(want.len() > 3),
            }
        }
    }

    #[test]
    fn sizes_match_encodings_at_every_boundary() {
        for shift in 0..64 {
            for v in [(1u64 << shift) - 1, 1u64 << shift] {
                let mut out = Vec::new();
                write_unsigned(&mut out, v);
                assert_eq!(unsigned_size(v), out.len(), "{v}");
            }
        }
        assert_eq!(unsigned_size(u64::MAX), 10);
    }

    #[test]
    fn known_encodings_match_kafka() {
        // From Kafka's ByteUtilsTest: zig-zag maps 0,-1,1,-2 to 0,1,2,3.
        let mut out = Vec::new();
        for v in [0, -1, 1, -2, 63, -64, 64] {
            write_varint(&mut out, v);
        }
        assert_eq!(out, [0, 1, 2, 3, 0x7e, 0x7f, 0x80, 0x01]);
        let mut out = Vec::new();
        write_varint(&mut out, i32::MIN);
        assert_eq!(out, [0xff, 0xff, 0xff, 0xff, 0x0f]);
    }

    #[test]
    fn too_long_and_truncated_are_errors() {
        let mut pos = 0;
        assert_eq!(read_varint(&[0x80; 6], &mut pos), Err(VarintError::TooLong));
        let mut pos = 0;
        assert_eq!(
            read_varint(&[0x80, 0x80], &mut pos),
            Err(VarintError::Truncated)
        );
        let mut pos = 0;
        assert_eq!(read_varint(&[0xff; 6], &mut pos), Err(VarintError::TooLong));
        assert_eq!(pos, 0, "a failed read leaves the cursor alone");
        let mut rest: &[u8] = &[0xff; 11];
        assert_eq!(take_varlong(&mut rest), Err(VarintError::TooLong));
        assert_eq!(rest.len(), 11, "a failed take leaves the slice alone");
        let mut rest: &[u8] = &[0x80, 0x80];
        assert_eq!(take_varint(&mut rest), Err(VarintError::Truncated));
        let mut rest: &[u8] = &[0x80; 6];
        assert_eq!(take_varint(&mut rest), Err(VarintError::TooLong));
    }

    proptest! {
        #[test]
        fn varint_round_trip(v: i32) {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            prop_assert_eq!(out.len(), varint_size(v));
            let mut pos = 0;
            prop_assert_eq!(read_varint(&out, &mut pos), Ok(v));
            prop_assert_eq!(pos, out.len());
            let mut rest = &out[..];
            prop_assert_eq!(take_varint(&mut rest), Ok(v));
            prop_assert!(rest.is_empty());
        }

        #[test]
        fn varlong_round_trip(v: i64) {
            let mut out = Vec::new();
            write_varlong(&mut out, v);
            prop_assert_eq!(out.len(), varlong_size(v));
            out.push(0x55);
            let mut rest = &out[..];
            prop_assert_eq!(take_varlong(&mut rest), Ok(v));
            prop_assert_eq!(rest, &[0x55][..], "only the varlong is taken");
        }
    }
}
