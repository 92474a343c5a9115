//! The framing walk: whether an uncompressed batch's records section holds exactly the
//! records its header counts, each a varint length and that many bytes, nothing left over.
//!
//! Recovery runs it on every batch after the CRC, and it cost about as much as the CRC
//! (100-record batches of 100 B). One walk is a chain: where a record starts depends on the
//! length before it. [`frames_declared_records_each`] walks several batches in lockstep, one
//! record of each a round; the chains are independent, so the core overlaps them. Measured
//! on 10.9 KB batches (pinned, medians of four runs): CRC alone about 280 ns a batch, CRC
//! and the walk a batch at a time about 600 ns, CRC and the four-lane walk about 485 ns.

use super::varint::read_varint;
use super::{Batch, Compression};

/// Batches [`frames_declared_records_each`] walks at once: four chains keep the core busy
/// without running out of registers, and a group of 100-record batches of 100 B (about
/// 44 KB) is still in the L1 and L2 caches from the CRCs that ran just before.
pub(crate) const FRAMING_LANES: usize = 4;

/// Where the record starting at `pos` ends, when its length is a varint of `data` and the
/// record lies inside `data`; `None` otherwise (a truncated or over-long varint, a negative
/// length, a record running past the end).
fn record_end(data: &[u8], pos: usize) -> Option<usize> {
    let mut at = pos;
    let len = usize::try_from(read_varint(data, &mut at).ok()?).ok()?;
    at.checked_add(len).filter(|&end| end <= data.len())
}

/// What a walk holds after a malformed record: a byte no record length can start with
/// (a varint longer than the one byte left), so every later step stays here and the verdict
/// is "does not frame".
const MALFORMED: &[u8] = &[0xff];

/// The bytes after the record that starts `rest`, or [`MALFORMED`].
///
/// Record lengths under 8 KiB are one or two varint bytes: those are decoded with one test
/// each (the continuation bits, and the zig-zag sign bit, which must say "not negative"),
/// and anything else takes the general reader. A step is about fifteen instructions, which
/// is what bounds the walk once several run side by side.
#[inline(always)]
fn step(rest: &[u8]) -> &[u8] {
    let skip = match *rest {
        // b0 continues, b1 ends the varint, the value is even (not negative).
        [b0, b1, ..] if (b0 & 0x81) == 0x80 && b1 & 0x80 == 0 => {
            2 + ((usize::from(b0 & 0x7f) | (usize::from(b1) << 7)) >> 1)
        }
        [b0, ..] if b0 & 0x81 == 0 => 1 + usize::from(b0 >> 1),
        _ => match record_end(rest, 0) {
            Some(end) => end,
            None => return MALFORMED,
        },
    };
    rest.get(skip..).unwrap_or(MALFORMED)
}

/// The records section and record count of an uncompressed batch, or the verdict when no
/// walk is needed: `Err(None)` for a compressed batch, `Err(Some(false))` for a negative
/// count or one above the bytes.
fn walk_of<'a>(batch: &Batch<'a>) -> std::result::Result<(&'a [u8], u32), Option<bool>> {
    if batch.attributes().compression() != Some(Compression::None) {
        return Err(None);
    }
    let count = u32::try_from(batch.record_count()).map_err(|_| Some(false))?;
    let records = batch.records_section();
    // Every record takes at least its length byte: a count above the bytes cannot frame,
    // and a walk never steps more often than there are bytes (a damaged count of 2^31
    // would otherwise keep a lane stepping long after its first malformed record).
    if !usize::try_from(count).is_ok_and(|c| c <= records.len()) {
        return Err(Some(false));
    }
    Ok((records, count))
}

/// See [`Batch::frames_declared_records`].
pub(crate) fn frames_declared_records(batch: &Batch<'_>) -> Option<bool> {
    let (data, count) = match walk_of(batch) {
        Ok(walk) => walk,
        Err(verdict) => return verdict,
    };
    let mut rest = data;
    for _ in 0..count {
        rest = step(rest);
    }
    Some(rest.is_empty())
}

/// [`Batch::frames_declared_records`] of each of the first [`FRAMING_LANES`] `batches`, in
/// order (`None` past the batches given), walked in lockstep.
pub(crate) fn frames_declared_records_each<'b, 'a: 'b>(
    batches: impl IntoIterator<Item = &'b Batch<'a>>,
) -> [Option<bool>; FRAMING_LANES] {
    let mut verdicts = [None; FRAMING_LANES];
    let mut data: [&[u8]; FRAMING_LANES] = [&[]; FRAMING_LANES];
    let mut left = [0u32; FRAMING_LANES];
    let mut walking = [false; FRAMING_LANES];
    for (batch, (((d, l), verdict), walks)) in batches.into_iter().zip(
        data.iter_mut()
            .zip(left.iter_mut())
            .zip(verdicts.iter_mut())
            .zip(walking.iter_mut()),
    ) {
        match walk_of(batch) {
            Ok((records, count)) => {
                *d = records;
                *l = count;
                *walks = true;
            }
            Err(v) => *verdict = v,
        }
    }
    // The records every walking lane has, one of each a round; then each lane's own rest.
    let common = left
        .iter()
        .zip(walking)
        .filter_map(|(&l, w)| w.then_some(l))
        .min()
        .unwrap_or(0);
    for _ in 0..common {
        for d in data.iter_mut() {
            *d = step(d);
        }
    }
    for (d, l) in data.iter_mut().zip(left) {
        for _ in common..l {
            *d = step(d);
        }
    }
    for ((d, verdict), walks) in data.iter().zip(verdicts.iter_mut()).zip(walking) {
        if walks {
            *verdict = Some(d.is_empty());
        }
    }
    verdicts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BatchBuilder, BatchOptions};

    fn batch(values: &[usize], compression: Compression) -> Vec<u8> {
        let mut b = BatchBuilder::new(BatchOptions {
            compression,
            ..BatchOptions::default()
        });
        for (i, &len) in values.iter().enumerate() {
            let value = vec![b'v'; len];
            b.append(1_000 + i as i64, Some(b"key"), Some(&value), &[])
                .unwrap();
        }
        b.build().unwrap()
    }

    /// The walk as it was before the fast path: the general varint reader, record by record.
    fn reference(batch: &Batch<'_>) -> Option<bool> {
        if batch.compression().ok()? != Compression::None {
            return None;
        }
        let data = batch.records_section();
        let Ok(count) = u32::try_from(batch.record_count()) else {
            return Some(false);
        };
        let mut pos = 0usize;
        for _ in 0..count {
            let len = read_varint(data, &mut pos)
                .ok()
                .and_then(|l| usize::try_from(l).ok());
            let Some(len) = len else {
                return Some(false);
            };
            match pos.checked_add(len) {
                Some(end) if end <= data.len() => pos = end,
                _ => return Some(false),
            }
        }
        Some(pos == data.len())
    }

    /// Every single-byte change of a few batches (one- to three-byte record lengths, a
    /// compressed one): the fast walk, alone and in every lane of a group, agrees with the
    /// reference walk.
    #[test]
    fn fast_walks_agree_with_the_reference_on_every_mutation() {
        let shapes = [
            batch(&[1, 5, 40], Compression::None),
            batch(&[100; 6], Compression::None),
            batch(&[70, 9_000, 3], Compression::None),
            batch(&[], Compression::None),
            batch(&[10, 10], Compression::Gzip),
        ];
        let mut checked = 0;
        for bytes in &shapes {
            let body_from = crate::record::BATCH_HEADER_SIZE - 4;
            for at in body_from..bytes.len() {
                for value in [0x00, 0x01, 0x7f, 0x80, 0xff, bytes[at] ^ 0x01] {
                    let mut m = bytes.clone();
                    m[at] = value;
                    let Ok(b) = Batch::new(&m) else { continue };
                    let expected = reference(&b);
                    assert_eq!(frames_declared_records(&b), expected, "at {at} = {value}");
                    let good = Batch::new(bytes).unwrap();
                    for lane in 0..FRAMING_LANES {
                        let mut group = vec![good; FRAMING_LANES];
                        group[lane] = b;
                        let verdicts = frames_declared_records_each(&group);
                        for (i, v) in verdicts.iter().enumerate() {
                            let want = if i == lane {
                                expected
                            } else {
                                reference(&good)
                            };
                            assert_eq!(*v, want, "lane {i} of {lane}, at {at} = {value}");
                        }
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked > 1_000, "{checked}");
        for n in 0..=FRAMING_LANES {
            let good = Batch::new(&shapes[1]).unwrap();
            let verdicts = frames_declared_records_each(&vec![good; n]);
            for (i, v) in verdicts.iter().enumerate() {
                assert_eq!(*v, if i < n { Some(true) } else { None });
            }
        }
    }
}
