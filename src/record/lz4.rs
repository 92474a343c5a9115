//! Kafka's LZ4 frames, decoded straight into the caller's buffer.
//!
//! lz4_flex's `FrameDecoder` decompresses each block into a buffer of its own, which the
//! caller then copies out, and it allocates those buffers anew for every batch. This path
//! reads the frame itself and decompresses each block in place at the end of the output,
//! with lz4_flex's block decoder, so a batch's records land where they are parsed with one
//! write. Anything it does not take on (legacy or skippable frames, dictionary ids, a
//! malformed frame) goes back to `FrameDecoder`, which decodes it or names the error, so
//! both paths accept exactly the same input.
//!
//! ```text
//! frame       magic u32 LE 0x184D2204 | descriptor | blocks | end mark u32 0 | [content xxh32]
//! descriptor  FLG u8 | BD u8 | [content size u64 LE] | [dict id u32 LE] | HC u8
//!   FLG       bits 7-6 version (01) | 5 blocks independent | 4 block checksums
//!             | 3 content size | 2 content checksum | 1 reserved (0) | 0 dict id
//!   BD        bit 7 reserved | bits 6-4 block max size (4: 64 KiB .. 7: 4 MiB) | bits 3-0 reserved
//!   HC        second byte of xxh32 (seed 0) over FLG .. the end of the descriptor
//! block       size u32 LE (high bit: stored uncompressed) | data | [xxh32 of data]
//! ```
//! Kafka's Java client writes 64 KiB independent blocks without checksums; librdkafka's
//! default frames link their blocks, which this path decodes with the previous 64 KiB of
//! output as the dictionary.

use std::cell::RefCell;

use lz4_flex::block::CompressTable;
use twox_hash::XxHash32;

const MAGIC: u32 = 0x184D_2204;
const FLG_VERSION_MASK: u8 = 0b1100_0000;
const FLG_VERSION: u8 = 0b0100_0000;
const FLG_INDEPENDENT: u8 = 1 << 5;
const FLG_BLOCK_CHECKSUM: u8 = 1 << 4;
const FLG_CONTENT_SIZE: u8 = 1 << 3;
const FLG_CONTENT_CHECKSUM: u8 = 1 << 2;
const FLG_RESERVED: u8 = 1 << 1;
const FLG_DICT_ID: u8 = 1;
const BD_RESERVED: u8 = 0b1000_1111;
const UNCOMPRESSED_BIT: u32 = 1 << 31;
/// How far back an LZ4 match may reach: the dictionary a linked block needs.
const WINDOW: usize = 64 << 10;

/// Block size Kafka's Java client writes, and the BD byte that says so.
const KAFKA_BLOCK: usize = 64 << 10;
const KAFKA_BD: u8 = 4 << 4;

/// Per-thread state of the compressor, kept from batch to batch: lz4_flex's hash tables
/// (allocated and zeroed anew by every plain `compress_into` call) and an output buffer that
/// stays initialised, so a block is compressed without zero-filling room for its worst case.
struct Compressor {
    /// 16-bit table for blocks under 64 KiB - 1 bytes, 32-bit for full blocks.
    small: CompressTable,
    large: CompressTable,
    buf: Vec<u8>,
}

thread_local! {
    static COMPRESSOR: RefCell<Option<Compressor>> = const { RefCell::new(None) };
}

/// Appends `input` as one frame the way Kafka's Java client frames it: 64 KiB independent
/// blocks, no checksums, no content size; a block that does not shrink is stored as is.
/// Each block is compressed into the thread's buffer and copied to `out` (lz4_flex's
/// `FrameEncoder` would also copy the input into a buffer of its own first).
pub(super) fn compress(input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.try_borrow_mut().map_err(|e| e.to_string())?;
        let c = slot.get_or_insert_with(|| Compressor {
            small: CompressTable::small(),
            large: CompressTable::large(),
            buf: Vec::new(),
        });
        compress_with(c, input, out)
    })
}

fn compress_with(c: &mut Compressor, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let flg = FLG_VERSION | FLG_INDEPENDENT;
    out.reserve(7 + 4 + lz4_flex::block::get_maximum_output_size(input.len()) + 8);
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&[flg, KAFKA_BD]);
    out.push((XxHash32::oneshot(0, &[flg, KAFKA_BD]) >> 8) as u8);
    for block in input.chunks(KAFKA_BLOCK) {
        let max = lz4_flex::block::get_maximum_output_size(block.len());
        if c.buf.len() < max {
            c.buf.resize(max, 0);
        }
        let table = if block.len() < usize::from(u16::MAX) {
            &mut c.small
        } else {
            &mut c.large
        };
        let dst = c.buf.get_mut(..max).unwrap_or_default();
        let n = lz4_flex::block::compress_into_with_table(block, dst, table)
            .map_err(|e| e.to_string())?;
        match c.buf.get(..n) {
            Some(packed) if n < block.len() => {
                out.extend_from_slice(&(n as u32).to_le_bytes());
                out.extend_from_slice(packed);
            }
            _ => {
                out.extend_from_slice(&(block.len() as u32 | UNCOMPRESSED_BIT).to_le_bytes());
                out.extend_from_slice(block);
            }
        }
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    Ok(())
}

/// Why the fast path gave up.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// More than `limit` bytes would come out.
    TooLarge,
    /// Not for this path (or malformed): use `FrameDecoder`.
    Fallback,
}

/// Decodes the LZ4 frames in `input` into `out` from index `start` on, and returns where the
/// decoded bytes end. At most `limit` bytes are produced. Bytes of `out` past `start` are
/// overwritten, and `out` only grows when they are too few: a caller that keeps one buffer
/// for many batches pays for zero-filling it once, not for every batch. On failure the bytes
/// past `start` are unspecified; `out` is never shorter than `start`.
pub(super) fn decompress_at(
    input: &[u8],
    out: &mut Vec<u8>,
    start: usize,
    limit: usize,
) -> Result<usize, Outcome> {
    if out.len() < start {
        out.resize(start, 0);
    }
    let mut end = start;
    let mut rest = input;
    while !rest.is_empty() {
        rest = frame(rest, out, start, &mut end, limit)?;
    }
    Ok(end)
}

/// Makes `out[at..at + len]` writable, growing `out` (zero-filled) only when it is shorter.
fn room(out: &mut Vec<u8>, at: usize, len: usize) -> &mut [u8] {
    if out.len() < at + len {
        out.resize(at + len, 0);
    }
    out.get_mut(at..at + len).unwrap_or_default()
}

fn u32_le(input: &[u8], at: usize) -> Result<u32, Outcome> {
    let bytes = input.get(at..at + 4).ok_or(Outcome::Fallback)?;
    let mut word = [0u8; 4];
    word.copy_from_slice(bytes);
    Ok(u32::from_le_bytes(word))
}

/// Decodes one frame at the start of `input` to `out[*end..]`, advancing `*end`, and returns
/// the bytes after the frame.
fn frame<'a>(
    input: &'a [u8],
    out: &mut Vec<u8>,
    start: usize,
    end: &mut usize,
    limit: usize,
) -> Result<&'a [u8], Outcome> {
    if u32_le(input, 0)? != MAGIC {
        return Err(Outcome::Fallback);
    }
    let flg = *input.get(4).ok_or(Outcome::Fallback)?;
    let bd = *input.get(5).ok_or(Outcome::Fallback)?;
    if flg & FLG_VERSION_MASK != FLG_VERSION
        || flg & (FLG_RESERVED | FLG_DICT_ID) != 0
        || bd & BD_RESERVED != 0
    {
        return Err(Outcome::Fallback);
    }
    let block_max = match (bd >> 4) & 0b111 {
        4 => 64 << 10,
        5 => 256 << 10,
        6 => 1 << 20,
        7 => 4 << 20,
        _ => return Err(Outcome::Fallback),
    };
    let mut pos = 6;
    let mut content_size = None;
    if flg & FLG_CONTENT_SIZE != 0 {
        let bytes = input.get(pos..pos + 8).ok_or(Outcome::Fallback)?;
        let mut word = [0u8; 8];
        word.copy_from_slice(bytes);
        content_size = Some(u64::from_le_bytes(word));
        pos += 8;
    }
    let descriptor = input.get(4..pos).ok_or(Outcome::Fallback)?;
    let hc = *input.get(pos).ok_or(Outcome::Fallback)?;
    if (XxHash32::oneshot(0, descriptor) >> 8) as u8 != hc {
        return Err(Outcome::Fallback);
    }
    pos += 1;

    let frame_start = *end;
    let linked = flg & FLG_INDEPENDENT == 0;
    loop {
        let word = u32_le(input, pos)?;
        pos += 4;
        if word == 0 {
            break;
        }
        let size = (word & !UNCOMPRESSED_BIT) as usize;
        if size > block_max {
            return Err(Outcome::Fallback);
        }
        let data = input.get(pos..pos + size).ok_or(Outcome::Fallback)?;
        pos += size;
        if flg & FLG_BLOCK_CHECKSUM != 0 {
            if u32_le(input, pos)? != XxHash32::oneshot(0, data) {
                return Err(Outcome::Fallback);
            }
            pos += 4;
        }
        let at = *end;
        let produced = at - start;
        if word & UNCOMPRESSED_BIT != 0 {
            if produced + size > limit {
                return Err(Outcome::TooLarge);
            }
            room(out, at, size).copy_from_slice(data);
            *end += size;
            continue;
        }
        let space = block_max.min(limit - produced);
        room(out, at, space);
        let decoded = if linked {
            let (before, after) = out.split_at_mut(at);
            let dict = before
                .get(frame_start.max(at.saturating_sub(WINDOW))..)
                .unwrap_or_default();
            let after = after.get_mut(..space).unwrap_or_default();
            lz4_flex::block::decompress_into_with_dict(data, after, dict)
        } else {
            lz4_flex::block::decompress_into(data, room(out, at, space))
        };
        match decoded {
            Ok(n) => *end += n,
            Err(lz4_flex::block::DecompressError::OutputTooSmall { .. }) if space < block_max => {
                return Err(Outcome::TooLarge)
            }
            Err(_) => return Err(Outcome::Fallback),
        }
    }
    let content = out.get(frame_start..*end).unwrap_or_default();
    if flg & FLG_CONTENT_CHECKSUM != 0 {
        if u32_le(input, pos)? != XxHash32::oneshot(0, content) {
            return Err(Outcome::Fallback);
        }
        pos += 4;
    }
    if content_size.is_some_and(|n| n != content.len() as u64) {
        return Err(Outcome::Fallback);
    }
    input.get(pos..).ok_or(Outcome::Fallback)
}

/// Appends the decoded frames to `out`, or leaves `out` as it was.
#[cfg(test)]
fn decompress(input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), Outcome> {
    let start = out.len();
    match decompress_at(input, out, start, limit) {
        Ok(end) => {
            out.truncate(end);
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
    use std::io::{Read, Write};

    fn data(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[(i % 3) + 1] % 17)
            .collect()
    }

    fn encode(input: &[u8], info: FrameInfo) -> Vec<u8> {
        let mut enc = FrameEncoder::with_frame_info(info, Vec::new());
        enc.write_all(input).unwrap();
        enc.finish().unwrap()
    }

    fn reference(frame: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        lz4_flex::frame::FrameDecoder::new(frame).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn every_frame_option_decodes_like_frame_decoder() {
        let input = data(300_000);
        for mode in [BlockMode::Independent, BlockMode::Linked] {
            for size in [BlockSize::Max64KB, BlockSize::Max256KB, BlockSize::Max1MB] {
                for (block_sums, content_sum, content_size) in [
                    (false, false, false),
                    (true, false, false),
                    (false, true, false),
                    (true, true, true),
                ] {
                    let mut info = FrameInfo::new()
                        .block_mode(mode)
                        .block_size(size)
                        .block_checksums(block_sums)
                        .content_checksum(content_sum);
                    if content_size {
                        info = info.content_size(Some(input.len() as u64));
                    }
                    let frame = encode(&input, info);
                    let mut out = b"prefix".to_vec();
                    assert_eq!(decompress(&frame, &mut out, usize::MAX), Ok(()));
                    assert_eq!(&out[..6], b"prefix");
                    assert_eq!(out[6..], input[..], "{mode:?} {size:?}");
                    assert_eq!(reference(&frame).unwrap(), input);
                }
            }
        }
    }

    #[test]
    fn compress_frames_like_kafka_and_decodes_everywhere() {
        for input in [
            Vec::new(),
            b"x".to_vec(),
            data(1000),
            data(KAFKA_BLOCK),
            data(3 * KAFKA_BLOCK + 17),
            (0..200_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ] {
            let mut frame = b"head".to_vec();
            compress(&input, &mut frame).unwrap();
            let frame = &frame[4..];
            // The same descriptor lz4_flex writes for Kafka's settings (and Java writes).
            let theirs = encode(
                &input,
                FrameInfo::new()
                    .block_size(BlockSize::Max64KB)
                    .block_mode(BlockMode::Independent),
            );
            assert_eq!(frame[..7], theirs[..7]);
            assert_eq!(reference(frame).unwrap(), input);
            let mut out = Vec::new();
            assert_eq!(decompress(frame, &mut out, usize::MAX), Ok(()));
            assert_eq!(out, input);
            if input.len() <= KAFKA_BLOCK {
                assert_eq!(
                    frame,
                    &theirs[..],
                    "one block: byte for byte lz4_flex's frame"
                );
            } else {
                // lz4_flex's frame encoder keeps its match table from block to block, so
                // later blocks may differ by a few matches.
                assert!(frame.len() <= theirs.len() + theirs.len() / 100);
            }
        }
    }

    #[test]
    fn concatenated_frames_and_empty_input() {
        let a = data(1000);
        let b = data(70_000);
        let mut frames = encode(&a, FrameInfo::new());
        frames.extend(encode(&b, FrameInfo::new()));
        let mut out = Vec::new();
        assert_eq!(decompress(&frames, &mut out, usize::MAX), Ok(()));
        assert_eq!(out, [a, b].concat());
        let mut out = Vec::new();
        assert_eq!(decompress(&[], &mut out, 10), Ok(()));
        assert!(out.is_empty());
        assert_eq!(reference(&[]).unwrap(), b"");
    }

    #[test]
    fn reused_buffer_is_overwritten_not_appended_to() {
        let a = data(100_000);
        let b: Vec<u8> = data(30_000).iter().map(|x| x ^ 0x55).collect();
        let mut buf = Vec::new();
        let end = decompress_at(&encode(&a, FrameInfo::new()), &mut buf, 0, usize::MAX).unwrap();
        assert_eq!(buf[..end], a[..]);
        let end = decompress_at(&encode(&b, FrameInfo::new()), &mut buf, 0, usize::MAX).unwrap();
        assert_eq!(buf[..end], b[..]);
        assert!(
            buf.len() >= a.len(),
            "the buffer keeps its initialised bytes"
        );
        let linked = encode(&a, FrameInfo::new().block_mode(BlockMode::Linked));
        let end = decompress_at(&linked, &mut buf, 5, usize::MAX).unwrap();
        assert_eq!(buf[5..end], a[..]);
    }

    #[test]
    fn limit_is_exact() {
        let input = data(200_000);
        let frame = encode(&input, FrameInfo::new());
        let mut out = vec![7];
        assert_eq!(decompress(&frame, &mut out, input.len()), Ok(()));
        let mut out = vec![7];
        assert_eq!(
            decompress(&frame, &mut out, input.len() - 1),
            Err(Outcome::TooLarge)
        );
        assert_eq!(out, [7]);
    }

    #[test]
    fn damaged_frames_fall_back_and_leave_out_as_it_was() {
        let input = data(150_000);
        let frame = encode(
            &input,
            FrameInfo::new()
                .block_checksums(true)
                .content_checksum(true),
        );
        for i in 0..frame.len() {
            for bit in [0, 3, 7] {
                let mut bad = frame.clone();
                bad[i] ^= 1 << bit;
                let mut out = b"x".to_vec();
                match decompress(&bad, &mut out, usize::MAX) {
                    // Accepted only when the reference decoder accepts it with the same bytes.
                    Ok(()) => assert_eq!(Some(&out[1..]), reference(&bad).ok().as_deref()),
                    _ => assert_eq!(out, b"x"),
                }
            }
            if i > 40 {
                break; // the descriptor and first block header; the rest is data
            }
        }
        for cut in [3, 6, 7, 10, frame.len() / 2, frame.len() - 1] {
            let mut out = Vec::new();
            assert!(decompress(&frame[..cut], &mut out, usize::MAX).is_err());
            assert!(out.is_empty());
        }
    }
}
