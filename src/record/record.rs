//! One record inside a batch: its varint layout, a borrowed view and an owned copy.
//!
//! ```text
//! length            varint   bytes after this field
//! attributes        int8     unused, 0
//! timestamp delta   varlong  from the batch's base timestamp
//! offset delta      varint   from the batch's base offset
//! key length        varint   -1 for a null key
//! key               bytes
//! value length      varint   -1 for a null value
//! value             bytes
//! header count      varint
//!   key length      varint   never negative
//!   key             bytes    (UTF-8 in Kafka's clients; kept as bytes here)
//!   value length    varint   -1 for a null value
//!   value           bytes
//! ```

use super::varint::{
    get_varint, get_varlong, take_varint, take_varlong, varint_size, varlong_size, write_varint,
    write_varlong,
};

/// One record header: a key and an optional value. Keys may repeat; order is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header<'a> {
    /// The header key (UTF-8 when written by Kafka's clients).
    pub key: &'a [u8],
    /// The header value; `None` is distinct from empty.
    pub value: Option<&'a [u8]>,
}

impl<'a> Header<'a> {
    /// A header with a string key.
    pub fn new(key: &'a str, value: Option<&'a [u8]>) -> Self {
        Header {
            key: key.as_bytes(),
            value,
        }
    }

    /// The key as text, when it is valid UTF-8.
    pub fn key_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.key).ok()
    }
}

/// A record decoded from a batch, borrowing its key, value and headers from the batch bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Absolute offset: the batch's base offset plus the record's offset delta.
    pub offset: i64,
    /// Create time, or the batch's max timestamp under LogAppendTime.
    pub timestamp: i64,
    /// The record's attribute byte (unused by Kafka today).
    pub attributes: i8,
    /// The key; `None` (length -1) is distinct from an empty key.
    pub key: Option<&'a [u8]>,
    /// The value; `None` (length -1) is a tombstone on compacted topics.
    pub value: Option<&'a [u8]>,
    headers: &'a [u8],
    header_count: u32,
}

impl<'a> Record<'a> {
    /// The record's headers, in stored order.
    pub fn headers(&self) -> Headers<'a> {
        Headers {
            buf: self.headers,
            pos: 0,
            remaining: self.header_count,
        }
    }

    /// A record over parts already checked by the record parser.
    pub(crate) fn from_parts(
        offset: i64,
        timestamp: i64,
        attributes: i8,
        key: Option<&'a [u8]>,
        value: Option<&'a [u8]>,
        headers: &'a [u8],
        header_count: u32,
    ) -> Self {
        Record {
            offset,
            timestamp,
            attributes,
            key,
            value,
            headers,
            header_count,
        }
    }

    /// The encoded headers and their count.
    pub(crate) fn raw_headers(&self) -> (&'a [u8], u32) {
        (self.headers, self.header_count)
    }

    /// Number of headers.
    pub fn header_count(&self) -> usize {
        self.header_count as usize
    }

    /// An owned copy, for keeping past the batch's lifetime.
    pub fn to_owned_record(&self) -> OwnedRecord {
        OwnedRecord {
            offset: self.offset,
            timestamp: self.timestamp,
            key: self.key.map(<[u8]>::to_vec),
            value: self.value.map(<[u8]>::to_vec),
            headers: self
                .headers()
                .map(|h| (h.key.to_vec(), h.value.map(<[u8]>::to_vec)))
                .collect(),
        }
    }
}

/// Iterator over a record's headers.
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    buf: &'a [u8],
    pos: usize,
    remaining: u32,
}

impl<'a> Headers<'a> {
    /// Headers over encoded header bytes already checked by the record parser.
    pub(crate) fn from_raw(buf: &'a [u8], count: u32) -> Self {
        Headers {
            buf,
            pos: 0,
            remaining: count,
        }
    }
}

impl<'a> Iterator for Headers<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        if self.remaining == 0 {
            return None;
        }
        // The header bytes were fully checked when the record was parsed.
        let mut rest = self.buf.get(self.pos..)?;
        let before = rest.len();
        let (key, value) = read_header(&mut rest).ok()?;
        self.pos += before - rest.len();
        self.remaining -= 1;
        Some(Header { key, value })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining as usize, Some(self.remaining as usize))
    }
}

impl ExactSizeIterator for Headers<'_> {}

/// A record with owned bytes: what tests, models and convenience APIs pass around.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct OwnedRecord {
    /// Absolute offset (ignored when building a batch; offsets are assigned).
    pub offset: i64,
    /// Timestamp in milliseconds since the epoch.
    pub timestamp: i64,
    /// The key, `None` for null.
    pub key: Option<Vec<u8>>,
    /// The value, `None` for null.
    pub value: Option<Vec<u8>>,
    /// Headers as (key, value) pairs in order.
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl OwnedRecord {
    /// A record with a value and optional key, no headers.
    pub fn new(timestamp: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Self {
        OwnedRecord {
            offset: 0,
            timestamp,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: Vec::new(),
        }
    }
}

type Bytes<'a> = Option<&'a [u8]>;

/// Reads a length-prefixed byte string (-1 for null) from the front of `rest`.
#[inline(always)]
fn take_bytes<'a>(rest: &mut &'a [u8]) -> Result<Bytes<'a>, &'static str> {
    let len = take_varint(rest).map_err(|e| e.reason())?;
    if len < 0 {
        return Ok(None);
    }
    let Some((bytes, tail)) = rest.split_at_checked(len as usize) else {
        return Err("length runs past the record");
    };
    *rest = tail;
    Ok(Some(bytes))
}

fn read_header<'a>(rest: &mut &'a [u8]) -> Result<(&'a [u8], Bytes<'a>), &'static str> {
    let key = take_bytes(rest)?.ok_or("negative header key length")?;
    let value = take_bytes(rest)?;
    Ok((key, value))
}

/// Checks that `body` holds exactly `count` well-formed headers. Out of line: most records
/// have none, and the record parser stays small enough to inline into callers' loops.
#[inline(never)]
fn check_headers(mut body: &[u8], count: i32) -> Result<(), &'static str> {
    if count < 0 {
        return Err("negative header count");
    }
    for _ in 0..count {
        read_header(&mut body)?;
    }
    if !body.is_empty() {
        return Err("record length disagrees with its fields");
    }
    Ok(())
}

/// Where a batch's records take their offsets and timestamps from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordContext {
    pub base_offset: i64,
    pub base_timestamp: i64,
    /// Set under LogAppendTime: every record's timestamp.
    pub log_append_time: Option<i64>,
}

/// Parses the record at the front of `rest`, advancing `rest` past it. Checks that every
/// length agrees with the bytes and that the record's fields end exactly where its length
/// says.
#[inline(always)]
pub(crate) fn parse_record<'a>(
    rest: &mut &'a [u8],
    ctx: &RecordContext,
) -> Result<(Record<'a>, i32), &'static str> {
    let len = take_varint(rest).map_err(|e| e.reason())?;
    if len < 0 {
        return Err("negative record length");
    }
    let Some((body, after)) = rest.split_at_checked(len as usize) else {
        return Err("record length runs past the batch");
    };
    let [attributes, ref body @ ..] = *body else {
        return Err("record shorter than its attributes");
    };
    let mut body = body;
    let timestamp_delta = take_varlong(&mut body).map_err(|e| e.reason())?;
    let offset_delta = take_varint(&mut body).map_err(|e| e.reason())?;
    let key = take_bytes(&mut body)?;
    let value = take_bytes(&mut body)?;
    // Nearly every record ends with a header count of zero: one byte, the last.
    let (headers, header_count) = if let [0] = *body {
        (body.get(1..).unwrap_or_default(), 0)
    } else {
        let header_count = take_varint(&mut body).map_err(|e| e.reason())?;
        check_headers(body, header_count)?;
        (body, header_count)
    };
    *rest = after;
    let record = Record {
        offset: ctx.base_offset.wrapping_add(i64::from(offset_delta)),
        timestamp: ctx
            .log_append_time
            .unwrap_or_else(|| ctx.base_timestamp.wrapping_add(timestamp_delta)),
        attributes: attributes as i8,
        key,
        value,
        headers,
        header_count: header_count as u32,
    };
    Ok((record, offset_delta))
}

#[inline]
fn bytes_size(b: Bytes<'_>) -> usize {
    match b {
        None => 1,
        Some(b) => varint_size(b.len() as i32) + b.len(),
    }
}

#[inline]
fn write_bytes(out: &mut Vec<u8>, b: Bytes<'_>) {
    match b {
        None => write_varint(out, -1),
        Some(b) => {
            write_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

/// The fields of a record to encode; headers are any cloneable iterator so both slices and
/// decoded [`Headers`] can be written without collecting them.
pub(crate) struct RecordFields<'a, H> {
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Bytes<'a>,
    pub value: Bytes<'a>,
    pub headers: H,
}

/// Bytes a record's body takes (everything after its length varint).
#[inline]
pub(crate) fn body_size<'h, H: Iterator<Item = Header<'h>> + Clone>(
    f: &RecordFields<'_, H>,
) -> Option<(usize, usize)> {
    let mut size = 1 + varlong_size(f.timestamp_delta) + varint_size(f.offset_delta);
    size += bytes_size(f.key) + bytes_size(f.value);
    let mut count = 0usize;
    for h in f.headers.clone() {
        size += bytes_size(Some(h.key)) + bytes_size(h.value);
        count += 1;
    }
    size += varint_size(i32::try_from(count).ok()?);
    Some((size, count))
}

/// Appends the encoded record (length prefix included) to `out`.
///
/// The general writer, a push per varint byte; `BatchBuilder::append` writes the common
/// record (no headers, short varints) with packed stores instead.
#[inline]
pub(crate) fn write_record<'h, H: Iterator<Item = Header<'h>> + Clone>(
    out: &mut Vec<u8>,
    f: RecordFields<'_, H>,
    body: usize,
    header_count: usize,
) {
    // One capacity check for the whole record, so the pushes below never reallocate.
    out.reserve(varint_size(body as i32) + body);
    write_varint(out, body as i32);
    out.push(0);
    write_varlong(out, f.timestamp_delta);
    write_varint(out, f.offset_delta);
    write_bytes(out, f.key);
    write_bytes(out, f.value);
    write_varint(out, header_count as i32);
    for h in f.headers {
        write_bytes(out, Some(h.key));
        write_bytes(out, h.value);
    }
}

/// What the walk over a producer batch's records found: the range of their timestamp
/// deltas and whether any key is null. The log checks these against its timestamp bounds
/// and, on compacted topics, its rule against null keys, once for the whole batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordsSummary {
    pub min_timestamp_delta: i64,
    pub max_timestamp_delta: i64,
    pub any_null_key: bool,
}

/// Walks the framing of a producer batch's `count` records in `data` without decoding
/// them into [`Record`]s: every varint length and bound that [`parse_record`] and the record
/// iterator check, offset deltas running 0, 1, 2, … (a producer batch's, whose last offset
/// delta is `count - 1`), nothing left after the last record. `None` when anything
/// disagrees, with no reason: the caller then runs the full iterator to name it. The walk
/// accepts nothing the iterator refuses (it may refuse what the iterator accepts, which
/// only costs the slower path).
///
/// A record is read in one of three ways, cheapest first:
/// - records after one of the same [`Shape`] (the same record length, key length and value
///   length, and deltas of the same widths: a producer's run of like records) are checked
///   by comparing their first 16 bytes with the previous record's under a mask, the offset
///   delta by its expected encoding, and only the timestamp delta is decoded
///   ([`same_shape`]);
/// - a record whose varints are of one or two bytes and that has no headers is decoded
///   from words at fixed offsets ([`short_record`]); it also gives the shape for the next;
/// - anything else is decoded a byte at a time ([`any_record`]).
///
/// This loop is most of the CPU an append of small records costs.
#[inline]
pub(crate) fn walk_producer_records(data: &[u8], count: u32) -> Option<RecordsSummary> {
    let mut pos = 0usize;
    let mut min = i64::MAX;
    let mut max = i64::MIN;
    let mut any_null_key = false;
    let mut index = 0u32;
    while index < count {
        let Some((r, shape)) = short_record(data, pos, index) else {
            let r = any_record(data, pos, index)?;
            min = min.min(r.timestamp_delta);
            max = max.max(r.timestamp_delta);
            any_null_key |= r.key_is_null;
            pos = r.end;
            index += 1;
            continue;
        };
        min = min.min(r.timestamp_delta);
        max = max.max(r.timestamp_delta);
        any_null_key |= r.key_is_null;
        pos = r.end;
        let Some(mut shape) = shape else {
            index += 1;
            continue;
        };
        // The records after it up to the end of its block of 64 offset deltas (within
        // which their encodings differ only in the low bits of their first byte, see
        // `Shape::next_offset_delta`), as many as the bytes left can hold; the records of a
        // shape share its key's nullness.
        let run_end = count.min((index | 63).saturating_add(1));
        index += 1;
        let Some(rest) = data.get(pos..) else {
            break;
        };
        let fit = rest.len().checked_div(shape.size).unwrap_or(0);
        let run = (run_end.saturating_sub(index) as usize).min(fit);
        let Some(run) = rest.get(..run * shape.size) else {
            break;
        };
        // Counted, not moved per record: the loop keeps fewer values live.
        let mut alike = 0usize;
        for rec in run.chunks_exact(shape.size) {
            let Some(timestamp_delta) = same_shape(rec, &mut shape) else {
                break;
            };
            min = min.min(timestamp_delta);
            max = max.max(timestamp_delta);
            alike += 1;
        }
        // No overflow: `alike` records of `shape.size` bytes lie in `data` after `pos`, and
        // there are fewer than `count`.
        pos += alike * shape.size;
        index += alike as u32;
    }
    (pos == data.len()).then_some(RecordsSummary {
        min_timestamp_delta: min,
        max_timestamp_delta: max,
        any_null_key,
    })
}

/// What the walk takes from one record.
struct WalkedRecord {
    /// Where the record ends (the next one begins).
    end: usize,
    timestamp_delta: i64,
    key_is_null: bool,
}

/// The framing of a record [`short_record`] decoded, against which the records after it are
/// checked by comparing bytes: a record whose length, attributes aside the same delta
/// widths, key length and value length varints are byte for byte the previous record's,
/// whose offset delta is the next, and whose last byte (the header count) is zero has the
/// same framing, so it is well-formed exactly as that one was. Key and value bytes and the
/// timestamp delta's value are free.
#[derive(Debug, Clone, Copy)]
struct Shape {
    /// The record's bytes, its length varint included (at least 16).
    size: usize,
    /// The first 16 bytes (two little-endian words) the next record must have under
    /// `fixed`: the last record's, its offset delta advanced by one.
    expect: [u64; 2],
    /// The bits compared: the length, offset delta and key length varints whole, the
    /// timestamp delta's continuation bits, and the value length varint when it lies in
    /// the first 16 bytes. Not the attributes byte.
    fixed: [u64; 2],
    /// What moves the offset delta's encoding on by one: 2 (the zig-zag step) in its first
    /// byte.
    step: u64,
    /// Where the timestamp delta starts (below 8).
    timestamp_at: usize,
    /// The second byte's bits of the timestamp delta (`0x3f80` when two bytes, else 0).
    timestamp_high: u64,
    /// The value length varint, when it lies past the first 16 bytes (`value_fixed` 0
    /// when it does not): where, its bytes, and which of them belong to it.
    value_at: usize,
    value: u16,
    value_fixed: u16,
}

impl Shape {
    /// Moves `expect` on to the next record's offset delta. Within a block of 64 (offset
    /// deltas whose zig-zag encodings differ only in the low 7 bits of their first byte,
    /// 0..=126 in steps of 2), adding 2 to that byte never carries: the walk ends a run at
    /// the block's end and decodes the next record in full.
    #[inline(always)]
    fn next_offset_delta(&mut self) {
        let [first, _] = &mut self.expect;
        *first = first.wrapping_add(self.step);
    }
}

/// Where the fields of a record's first bytes lie, for each of the 16 combinations of one-
/// or two-byte length, timestamp delta, offset delta and key length varints.
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// [`Shape::fixed`] without the value length.
    fixed: u128,
    timestamp_at: usize,
    timestamp_high: u64,
    offset_delta_at: usize,
}

/// The mask of a varint of `n` bytes (one or two), whole.
const fn whole(n: usize) -> u128 {
    if n == 2 {
        0xffff
    } else {
        0xff
    }
}

const fn layout(widths: usize) -> Layout {
    let length = 1 + (widths & 1);
    let timestamp = 1 + ((widths >> 1) & 1);
    let offset_delta = 1 + ((widths >> 2) & 1);
    let key = 1 + ((widths >> 3) & 1);
    // The attributes byte, then the timestamp delta.
    let timestamp_at = length + 1;
    let offset_delta_at = timestamp_at + timestamp;
    let key_at = offset_delta_at + offset_delta;
    let mut fixed: u128 = whole(length);
    fixed |= 0x80 << (8 * timestamp_at);
    if timestamp == 2 {
        fixed |= 0x80 << (8 * (timestamp_at + 1));
    }
    fixed |= whole(offset_delta) << (8 * offset_delta_at);
    fixed |= whole(key) << (8 * key_at);
    Layout {
        fixed,
        timestamp_at,
        timestamp_high: if timestamp == 2 { 0x3f80 } else { 0 },
        offset_delta_at,
    }
}

const LAYOUTS: [Layout; 16] = [
    layout(0),
    layout(1),
    layout(2),
    layout(3),
    layout(4),
    layout(5),
    layout(6),
    layout(7),
    layout(8),
    layout(9),
    layout(10),
    layout(11),
    layout(12),
    layout(13),
    layout(14),
    layout(15),
];

/// The timestamp delta of `rec` when it has the framing of the record `s` was taken from
/// (see [`Shape`]), its offset delta the next; advances `s` to it. `rec` is `s.size`
/// bytes.
#[inline(always)]
fn same_shape(rec: &[u8], s: &mut Shape) -> Option<i64> {
    let head = rec.first_chunk::<16>()?;
    s.next_offset_delta();
    let [e0, e1] = s.expect;
    let [f0, f1] = s.fixed;
    if ((head_word(head, 0)? ^ e0) & f0) | ((head_word(head, 8)? ^ e1) & f1) != 0 {
        return None;
    }
    // No headers: a header count of zero, the record's last byte.
    if rec.last() != Some(&0) {
        return None;
    }
    if s.value_fixed != 0 {
        let value = u16::from_le_bytes(*rec.get(s.value_at..)?.first_chunk::<2>()?);
        if (value ^ s.value) & s.value_fixed != 0 {
            return None;
        }
    }
    let t = head_word(head, s.timestamp_at & 7)?;
    Some(zigzag((t & 0x7f) | ((t >> 1) & s.timestamp_high)))
}

/// The 8 bytes at `at` of a record's first 16, little-endian.
#[inline(always)]
fn head_word(head: &[u8; 16], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(*head.get(at..)?.first_chunk::<8>()?))
}

/// The raw (zig-zag) value and length of the varint of one or two bytes at the front of
/// `w`; `None` for a longer one, which the caller leaves to the byte-by-byte decode.
#[inline(always)]
fn short_raw(w: u64) -> Option<(u64, usize)> {
    if w & 0x80 == 0 {
        return Some((w & 0x7f, 1));
    }
    if w & 0x8000 != 0 {
        return None;
    }
    Some(((w & 0x7f) | ((w >> 1) & 0x3f80), 2))
}

#[inline(always)]
fn zigzag(raw: u64) -> i64 {
    ((raw >> 1) as i64) ^ -((raw & 1) as i64)
}

/// The length of a key or value from its raw length: 0 for a negative (null) one.
#[inline(always)]
fn raw_len(raw: u64) -> usize {
    if raw & 1 != 0 {
        0
    } else {
        (raw >> 1) as usize
    }
}

/// The record at `pos` when its length, timestamp delta, offset delta and key length lie in
/// the 16 bytes at `pos`, each varint of one or two bytes, the value length too, the offset
/// delta is `index` and it has no headers: nearly every record a producer sends. It reads
/// the same fields in the same order as [`any_record`] and accepts a record only when they
/// end exactly at the record's end, so whatever it accepts, `any_record` accepts with the
/// same result. `None` leaves the record to it. With the record, the [`Shape`] the next
/// records may share, when it is at least 16 bytes.
#[inline(always)]
fn short_record(data: &[u8], pos: usize, index: u32) -> Option<(WalkedRecord, Option<Shape>)> {
    let head = data.get(pos..)?.first_chunk::<16>()?;
    let w0 = head_word(head, 0)?;
    let (len, n_len) = short_raw(w0)?;
    // A negative length (odd zig-zag) is refused.
    if len & 1 != 0 {
        return None;
    }
    // No overflow: `pos + 16` is within `data`, the length below 2^13.
    let end = pos + n_len + (len >> 1) as usize;
    // The attributes byte, then the deltas and the key length: at most 2 + 1 + 2 + 2 bytes
    // before the key length, so every word read lies in `head`.
    let mut at = n_len + 1;
    let (timestamp, n_timestamp) = short_raw(head_word(head, at)?)?;
    at += n_timestamp;
    let (offset_delta, n_offset_delta) = short_raw(head_word(head, at)?)?;
    if offset_delta != u64::from(index) << 1 {
        return None;
    }
    at += n_offset_delta;
    let (key, n_key) = short_raw(head_word(head, at)?)?;
    at += n_key;
    let key_is_null = key & 1 != 0;
    let value_at = pos + at + raw_len(key);
    let value_bytes = u16::from_le_bytes(*data.get(value_at..)?.first_chunk::<2>()?);
    let (value, n_value) = short_raw(u64::from(value_bytes))?;
    // No headers: a header count of zero, the record's last byte.
    let headers_at = value_at + n_value + raw_len(value);
    if headers_at + 1 != end || data.get(headers_at) != Some(&0) {
        return None;
    }
    let record = WalkedRecord {
        end,
        timestamp_delta: zigzag(timestamp),
        key_is_null,
    };
    let widths =
        (n_len - 1) | (n_timestamp - 1) << 1 | (n_offset_delta - 1) << 2 | (n_key - 1) << 3;
    let size = end - pos;
    let shape = match LAYOUTS.get(widths) {
        Some(l) if size >= 16 => {
            let value_at = value_at - pos;
            let value_fixed: u16 = if n_value == 2 { 0xffff } else { 0xff };
            let (fixed, value_fixed) = if value_at + 2 <= 16 {
                (l.fixed | u128::from(value_fixed) << (8 * value_at), 0)
            } else {
                (l.fixed, value_fixed)
            };
            Some(Shape {
                size,
                expect: [w0, head_word(head, 8)?],
                fixed: [fixed as u64, (fixed >> 64) as u64],
                step: 2 << (8 * l.offset_delta_at),
                timestamp_at: l.timestamp_at,
                timestamp_high: l.timestamp_high,
                value_at,
                value: value_bytes,
                value_fixed,
            })
        }
        _ => None,
    };
    Some((record, shape))
}

/// The record at `pos`, decoded a byte at a time, with one bounds check a byte read.
#[inline(never)]
fn any_record(data: &[u8], pos: usize, index: u32) -> Option<WalkedRecord> {
    let (len, at) = get_varint(data, pos)?;
    let end = at.checked_add(usize::try_from(len).ok()?)?;
    let body = data.get(at..end)?;
    // The attributes byte, then the deltas.
    let (timestamp_delta, at) = get_varlong(body, 1)?;
    let (offset_delta, at) = get_varint(body, at)?;
    if u32::try_from(offset_delta) != Ok(index) {
        return None;
    }
    // Key and value: a negative length is null; a length past the body fails the next read.
    let (key, mut at) = get_varint(body, at)?;
    let key_is_null = key < 0;
    if let Ok(n) = usize::try_from(key) {
        at = at.saturating_add(n);
    }
    let (value, mut at) = get_varint(body, at)?;
    if let Ok(n) = usize::try_from(value) {
        at = at.saturating_add(n);
    }
    // Nearly every record ends with a header count of zero: one byte, the last.
    match body.get(at..) {
        Some([0]) => {}
        Some(headers) if walk_headers(headers) => {}
        _ => return None,
    }
    Some(WalkedRecord {
        end,
        timestamp_delta,
        key_is_null,
    })
}

/// Whether `body` is a header count and exactly that many well-formed headers (the walk's
/// [`check_headers`]); out of line, as most records have none.
#[inline(never)]
fn walk_headers(mut body: &[u8]) -> bool {
    let Ok(count) = take_varint(&mut body) else {
        return false;
    };
    if count < 0 {
        return false;
    }
    (0..count).all(|_| read_header(&mut body).is_ok()) && body.is_empty()
}

#[cfg(test)]
mod walk_tests {
    use super::*;
    use crate::record::{Batch, BatchBuilder, BatchOptions, Header, TimestampType};

    /// What the full iterator says of a producer batch's records: each record's timestamp
    /// and key nullness, or `None` when it refuses them.
    /// What the walk reports, as the full iterator reads it: the range of the timestamp
    /// deltas (under CreateTime, where the iterator's timestamps are base + delta) and
    /// whether a key is null.
    type Seen = (Option<(i64, i64)>, bool);

    fn full(batch: &Batch<'_>) -> Option<Seen> {
        let records = batch.records().ok()?;
        let create_time = batch.timestamp_type() == TimestampType::CreateTime;
        let base = batch.base_timestamp();
        let (mut min, mut max, mut null) = (i64::MAX, i64::MIN, false);
        for r in records.iter() {
            let r = r.ok()?;
            let delta = r.timestamp.wrapping_sub(base);
            min = min.min(delta);
            max = max.max(delta);
            null |= r.key.is_none();
        }
        Some((create_time.then_some((min, max)), null))
    }

    fn walked(batch: &Batch<'_>) -> Option<Seen> {
        let count = u32::try_from(batch.record_count()).ok()?;
        let create_time = batch.timestamp_type() == TimestampType::CreateTime;
        let s = walk_producer_records(batch.records_section(), count)?;
        Some((
            create_time.then_some((s.min_timestamp_delta, s.max_timestamp_delta)),
            s.any_null_key,
        ))
    }

    /// Sets the batch length of mutated batch bytes `m` to their length; when they still
    /// frame a batch and the walk accepts its records, asserts that the full iterator reads
    /// them the same, and says so.
    fn walk_agrees(m: &mut [u8], shape: u64) -> bool {
        let len = i32::try_from(m.len() - 12).unwrap();
        m[8..12].copy_from_slice(&len.to_be_bytes());
        let Ok(batch) = Batch::new(m) else {
            return false;
        };
        let w = walked(&batch);
        if w.is_some() {
            assert_eq!(w, full(&batch), "shape {shape}");
        }
        w.is_some()
    }

    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    /// Uncompressed producer batches, then tens of thousands of mutations of their records
    /// sections (bytes flipped, lengths changed, cut short, extended): whenever the walk
    /// accepts the records, the full iterator accepts them too and reads the same
    /// timestamp range and key nullness; on the batches as built both accept.
    #[test]
    fn the_walk_accepts_only_what_the_iterator_accepts() {
        let mut rng = crate::rng::Rng::new(0x9e37_79b9_7f4a_7c15);
        let mut next = move || rng.next_u64();
        let mut accepted_mutants = 0;
        for shape in 0..40u64 {
            let mut b = BatchBuilder::new(BatchOptions {
                timestamp_type: if shape % 5 == 0 {
                    TimestampType::LogAppendTime
                } else {
                    TimestampType::CreateTime
                },
                log_append_time: 1_700_000_999_999,
                ..BatchOptions::default()
            });
            let n = 1 + next() % 12;
            for i in 0..n {
                let key = vec![b'k'; (next() % 4) as usize];
                let value = vec![b'v'; (next() % 300) as usize];
                let headers = [Header::new("h", Some(b"x")), Header::new("n", None)];
                let h = &headers[..(next() % 3) as usize];
                let ts = 1_700_000_000_000 + (next() % 100_000) as i64 - 50_000;
                let key = (next() % 3 != 0).then_some(&key[..]);
                let value = (next() % 5 != 0).then_some(&value[..]);
                b.append(ts, key, value, h).unwrap();
                let _ = i;
            }
            let bytes = b.build().unwrap();
            let batch = Batch::new(&bytes).unwrap();
            assert_eq!(walked(&batch), full(&batch));
            assert!(walked(&batch).is_some());
            for _ in 0..1_000 {
                let mut m = bytes.clone();
                let body = BATCH_HEADER_SIZE_FOR_TEST..m.len();
                match next() % 4 {
                    0 => {
                        let at = body.start + (next() as usize) % body.len();
                        m[at] = next() as u8;
                    }
                    1 => {
                        let at = body.start + (next() as usize) % body.len();
                        m[at] ^= 1 << (next() % 8);
                    }
                    2 => {
                        let keep = body.start + (next() as usize) % body.len();
                        m.truncate(keep);
                    }
                    _ => m.extend((0..1 + next() % 4).map(|_| next() as u8)),
                }
                if walk_agrees(&mut m, shape) {
                    accepted_mutants += 1;
                }
            }
        }
        // The mutations also keep some batches well-formed (values changed in place).
        assert!(accepted_mutants > 100, "{accepted_mutants}");
    }

    /// The word-at-a-time form of a record agrees with the byte-by-byte one wherever it
    /// accepts: at every position of batches as built and of mutated ones (bytes changed,
    /// lengths shifted), for a few expected offset deltas.
    #[test]
    fn the_short_record_form_agrees_with_the_byte_by_byte_one() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let (mut accepted, mut checked) = (0, 0);
        for shape in 0..60u64 {
            let mut b = BatchBuilder::new(BatchOptions::default());
            for _ in 0..1 + next() % 6 {
                let key = vec![b'k'; (next() % 90) as usize];
                let value = vec![b'v'; (next() % 200) as usize];
                let ts = 1_700_000_000_000 + (next() % 20_000) as i64 - 10_000;
                let key = (next() % 3 != 0).then_some(&key[..]);
                let value = (next() % 5 != 0).then_some(&value[..]);
                let headers = [Header::new("h", Some(b"x"))];
                let h = &headers[..(shape % 7 == 0) as usize];
                b.append(ts, key, value, h).unwrap();
            }
            let bytes = b.build().unwrap();
            let section = bytes[BATCH_HEADER_SIZE_FOR_TEST..].to_vec();
            for round in 0..20 {
                let mut m = section.clone();
                if round > 0 && !m.is_empty() {
                    let at = (next() as usize) % m.len();
                    m[at] = match next() % 3 {
                        0 => next() as u8,
                        1 => m[at] ^ 0x80,
                        _ => m[at].wrapping_add(1),
                    };
                }
                for pos in 0..m.len() {
                    for index in 0..3 {
                        let Some((short, _)) = short_record(&m, pos, index) else {
                            continue;
                        };
                        let any = any_record(&m, pos, index).expect("accepted by both");
                        assert_eq!(
                            (short.end, short.timestamp_delta, short.key_is_null),
                            (any.end, any.timestamp_delta, any.key_is_null),
                            "shape {shape} round {round} pos {pos}"
                        );
                        accepted += 1;
                    }
                    checked += 1;
                }
            }
        }
        assert!(accepted > 1_000, "{accepted} of {checked}");
    }

    /// Batches of like records (one key and value length a batch, as producers send runs
    /// of), up to 150 records so that offset and timestamp deltas cross from one byte to
    /// two, then mutated (bytes changed, lengths changed, cut short, extended): whenever the
    /// walk accepts, the full iterator accepts too and reads the same timestamp range and
    /// key nullness; on the batches as built both accept.
    #[test]
    fn the_walk_over_runs_of_like_records_accepts_only_what_the_iterator_accepts() {
        let mut rng = crate::rng::Rng::new(0x51_7cc1_b727_220a);
        let mut next = move || rng.next_u64();
        let mut accepted_mutants = 0;
        for shape in 0..40u64 {
            let mut b = BatchBuilder::new(BatchOptions::default());
            let n = 1 + next() % 150;
            let key = vec![b'k'; (next() % 24) as usize];
            let key = (shape % 3 != 0).then_some(&key[..]);
            let value = vec![b'v'; (next() % 260) as usize];
            let value = (shape % 11 != 0).then_some(&value[..]);
            let spread = [1, 60, 200, 100_000][(shape % 4) as usize];
            for i in 0..n {
                let ts = 1_700_000_000_000 + (next() % spread) as i64 - (spread / 3) as i64;
                let headers = [Header::new("h", Some(b"x"))];
                let h = &headers[..usize::from(shape % 13 == 0 && i == n / 2)];
                b.append(ts, key, value, h).unwrap();
            }
            let bytes = b.build().unwrap();
            let batch = Batch::new(&bytes).unwrap();
            assert_eq!(walked(&batch), full(&batch), "shape {shape}");
            assert!(walked(&batch).is_some(), "shape {shape}");
            for _ in 0..300 {
                let mut m = bytes.clone();
                let body = BATCH_HEADER_SIZE_FOR_TEST..m.len();
                for _ in 0..1 + next() % 2 {
                    let at = body.start + (next() as usize) % body.len();
                    match next() % 4 {
                        0 => m[at] = next() as u8,
                        1 => m[at] ^= 1 << (next() % 8),
                        2 => m[at] = m[at].wrapping_add(2),
                        _ => m[at] = m[at].wrapping_sub(2),
                    }
                }
                match next() % 6 {
                    0 => m.truncate(body.start + (next() as usize) % body.len()),
                    1 => m.extend((0..1 + next() % 4).map(|_| next() as u8)),
                    _ => {}
                }
                if walk_agrees(&mut m, shape) {
                    accepted_mutants += 1;
                }
            }
        }
        assert!(accepted_mutants > 100, "{accepted_mutants}");
    }

    /// The byte-comparing form agrees with the byte-by-byte one wherever it accepts: from
    /// every position of built and mutated batches of like records where the word form
    /// decodes a record and gives its shape, along the run of records the walk would check
    /// against that shape.
    #[test]
    fn the_same_shape_form_agrees_with_the_byte_by_byte_one() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let (mut accepted, mut refused) = (0, 0);
        for shape in 0..30u64 {
            let mut b = BatchBuilder::new(BatchOptions::default());
            let key = vec![b'k'; (next() % 20) as usize];
            let key = (shape % 3 != 0).then_some(&key[..]);
            let value = vec![b'v'; 8 + (next() % 40) as usize];
            let value = (shape % 7 != 0).then_some(&value[..]);
            for _ in 0..1 + next() % 80 {
                let ts = 1_700_000_000_000 + (next() % 150) as i64 - 40;
                b.append(ts, key, value, &[]).unwrap();
            }
            let bytes = b.build().unwrap();
            let section = bytes[BATCH_HEADER_SIZE_FOR_TEST..].to_vec();
            for round in 0..12 {
                let mut m = section.clone();
                if round > 0 {
                    for _ in 0..1 + next() % 3 {
                        let at = (next() as usize) % m.len();
                        m[at] = match next() % 3 {
                            0 => next() as u8,
                            1 => m[at] ^ 0x80,
                            _ => m[at].wrapping_add(2),
                        };
                    }
                }
                for pos in 0..m.len() {
                    // The offset delta the record at `pos` would have, if it is one.
                    let Some(index) = get_varint(&m, pos)
                        .and_then(|(_, at)| get_varlong(&m, at + 1))
                        .and_then(|(_, at)| get_varint(&m, at))
                        .and_then(|(delta, _)| u32::try_from(delta).ok())
                    else {
                        continue;
                    };
                    let Some((first, Some(mut s))) = short_record(&m, pos, index) else {
                        continue;
                    };
                    let (mut p, mut i) = (first.end, index + 1);
                    while i & 63 != 0 {
                        let Some(rec) = m.get(p..p + s.size) else {
                            break;
                        };
                        let Some(timestamp_delta) = same_shape(rec, &mut s) else {
                            refused += 1;
                            break;
                        };
                        let any = any_record(&m, p, i).expect("accepted by both");
                        assert_eq!(
                            (any.end, any.timestamp_delta, any.key_is_null),
                            (p + s.size, timestamp_delta, first.key_is_null),
                            "shape {shape} round {round} pos {pos} at {p}"
                        );
                        accepted += 1;
                        p += s.size;
                        i += 1;
                    }
                }
            }
        }
        assert!(accepted > 1_000 && refused > 100, "{accepted} / {refused}");
    }

    const BATCH_HEADER_SIZE_FOR_TEST: usize = crate::record::BATCH_HEADER_SIZE;
}
