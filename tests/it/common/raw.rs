//! A hand encoder for batches and records, written apart from the crate's so that tests can
//! state any field wrongly: lengths that lie, counts that lie, varints that are too long.
//!
//! Records are built as a list of tokens (one per field, see [`record_tokens`]) so that a
//! test can swap any single field for another value before framing the record.

use streamlog::{Compression, OwnedRecord};

/// Kafka's zig-zag varint of `v` (a varlong when `v` does not fit 32 bits).
pub fn varint(v: i64) -> Vec<u8> {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut out = Vec::new();
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
    out
}

/// A length-prefixed byte string, `-1` for null.
pub fn nullable(b: Option<&[u8]>) -> Vec<u8> {
    match b {
        None => varint(-1),
        Some(b) => {
            let mut out = varint(b.len() as i64);
            out.extend_from_slice(b);
            out
        }
    }
}

/// The fields of a record body, one token each, with the length prefixes of key, value and
/// header strings as tokens of their own:
/// attributes, timestamp delta, offset delta, key length, key, value length, value,
/// header count, then key length, key, value length, value for each header.
pub fn record_tokens(r: &OwnedRecord, timestamp_delta: i64, offset_delta: i32) -> Vec<Vec<u8>> {
    fn string(tokens: &mut Vec<Vec<u8>>, b: Option<&[u8]>) {
        tokens.push(varint(b.map_or(-1, |b| b.len() as i64)));
        tokens.push(b.unwrap_or_default().to_vec());
    }
    let mut tokens = vec![
        vec![0],
        varint(timestamp_delta),
        varint(offset_delta.into()),
    ];
    string(&mut tokens, r.key.as_deref());
    string(&mut tokens, r.value.as_deref());
    tokens.push(varint(r.headers.len() as i64));
    for (k, v) in &r.headers {
        string(&mut tokens, Some(k));
        string(&mut tokens, v.as_deref());
    }
    tokens
}

/// A record: its body's length as a varint, then the body.
pub fn frame_record(tokens: &[Vec<u8>]) -> Vec<u8> {
    let body = tokens.concat();
    let mut out = varint(body.len() as i64);
    out.extend(body);
    out
}

/// A v2 batch header for an uncompressed, non-transactional CreateTime batch at offset 0,
/// timestamps 0, no producer; length and CRC are filled in by [`batch`].
pub fn header(record_count: i32, last_offset_delta: i32, control: bool) -> Vec<u8> {
    let mut h = Vec::with_capacity(61);
    h.extend_from_slice(&0i64.to_be_bytes()); // base offset
    h.extend_from_slice(&0i32.to_be_bytes()); // batch length
    h.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    h.push(2); // magic
    h.extend_from_slice(&0u32.to_be_bytes()); // CRC
    let attributes: i16 = if control { 0x30 } else { 0 };
    h.extend_from_slice(&attributes.to_be_bytes());
    h.extend_from_slice(&last_offset_delta.to_be_bytes());
    h.extend_from_slice(&0i64.to_be_bytes()); // base timestamp
    h.extend_from_slice(&0i64.to_be_bytes()); // max timestamp
    h.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    h.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    h.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    h.extend_from_slice(&record_count.to_be_bytes());
    h
}

/// A batch of the first 61 bytes of `header` (see [`header`], or any batch's bytes) and
/// `records` compressed with `codec`, with its length, codec bits and CRC made consistent.
pub fn batch(header: &[u8], records: &[u8], codec: Compression) -> Vec<u8> {
    let mut out = header[..61].to_vec();
    codec.compress(records, &mut out).unwrap();
    let length = i32::try_from(out.len() - 12).unwrap();
    out[8..12].copy_from_slice(&length.to_be_bytes());
    let attributes = i16::from_be_bytes([out[21], out[22]]) & !0x07 | i16::from(codec.id());
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    super::fix_crc(&mut out);
    out
}
