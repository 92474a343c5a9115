//! Compression codecs, each in the framing Kafka uses inside a RecordBatch.
//!
//! - gzip: a gzip stream (RFC 1952), compressed by flate2 with the zlib-rs backend.
//! - lz4: an LZ4 frame (not a raw block) with independent 64 KiB blocks and no checksums, as
//!   Kafka's Java client writes it; any valid frame (librdkafka's too) decodes.
//! - snappy (feature `snappy`): xerial's framing, `\x82SNAPPY\0` + version + compatible
//!   version, then blocks of `i32` length + raw snappy; un-framed raw snappy also decodes, as
//!   xerial's reader accepts it.
//! - zstd (feature `zstd`): a zstd frame.
//!
//! Every decoder writes into a caller's buffer and stops with
//! [`Error::DecompressedTooLarge`] as soon as the output passes the limit, so a
//! decompression bomb costs at most `limit` bytes of memory.

use std::io::{BufRead, Read, Write};

use crate::error::{Error, Result};

/// A batch compression codec, with Kafka's codec ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Compression {
    /// Records stored as they are (id 0).
    #[default]
    None,
    /// gzip (id 1).
    Gzip,
    /// snappy in xerial framing (id 2); needs the `snappy` feature.
    Snappy,
    /// LZ4 frame (id 3).
    Lz4,
    /// zstd (id 4); needs the `zstd` feature.
    Zstd,
}

impl Compression {
    /// All codecs Kafka defines, whether or not this build enables them.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// Kafka's id for the codec (attribute bits 0-2).
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec for a Kafka id, or `None` for an undefined id.
    pub fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            _ => return None,
        })
    }

    /// Kafka's name for the codec (`compression.type`).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// Parses Kafka's name for a codec.
    ///
    /// ```
    /// use streamlog::Compression;
    /// assert_eq!(Compression::from_name("lz4"), Some(Compression::Lz4));
    /// assert_eq!(Compression::from_name("brotli"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        Compression::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether this build can encode and decode the codec.
    pub fn is_enabled(self) -> bool {
        match self {
            Compression::None | Compression::Gzip | Compression::Lz4 => true,
            Compression::Snappy => cfg!(feature = "snappy"),
            Compression::Zstd => cfg!(feature = "zstd"),
        }
    }

    /// Compresses `input`, appending the codec's framed output to `out`.
    pub fn compress(self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        match self {
            Compression::None => {
                out.extend_from_slice(input);
                Ok(())
            }
            Compression::Gzip => gzip_compress(input, out),
            Compression::Lz4 => {
                super::lz4::compress(input, out).map_err(|e| Compression::Lz4.encode_error(e))
            }
            Compression::Snappy => snappy::compress(input, out),
            Compression::Zstd => zstd_codec::compress(input, out),
        }
    }

    /// Decompresses `input`, appending at most `limit` bytes to `out`.
    pub fn decompress(self, input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<()> {
        match self {
            Compression::None => {
                if input.len() > limit {
                    return Err(self.too_large(limit));
                }
                out.extend_from_slice(input);
                Ok(())
            }
            // The bufread decoder inflates straight from the slice; the read one would first
            // copy the input through a BufReader.
            Compression::Gzip => read_bounded(
                self,
                flate2::bufread::MultiGzDecoder::new(input),
                out,
                limit,
            ),
            // Kafka's frames decode in place (see `lz4.rs`); whatever that path does not
            // take goes through lz4_flex's frame decoder, a BufRead over its own block
            // buffer, copied out directly to avoid read_to_end's probing and zero-filling.
            Compression::Lz4 => {
                let start = out.len();
                match super::lz4::decompress_at(input, out, start, limit) {
                    Ok(end) => {
                        out.truncate(end);
                        Ok(())
                    }
                    Err(outcome) => {
                        out.truncate(start);
                        self.lz4_fallback(outcome, input, out, limit)
                    }
                }
            }
            Compression::Snappy => snappy::decompress(input, out, limit),
            Compression::Zstd => zstd_codec::decompress(input, out, limit),
        }
    }

    /// Decompresses `input` into `scratch` from its start, reusing the bytes it already holds
    /// (a buffer kept across batches is zero-filled once, not per batch), and returns how many
    /// bytes of `scratch` are the decompressed data. At most `limit` bytes.
    pub(crate) fn decompress_reusing(
        self,
        input: &[u8],
        scratch: &mut Vec<u8>,
        limit: usize,
    ) -> Result<usize> {
        if self == Compression::Lz4 {
            match super::lz4::decompress_at(input, scratch, 0, limit) {
                Ok(end) => return Ok(end),
                Err(outcome) => {
                    scratch.clear();
                    self.lz4_fallback(outcome, input, scratch, limit)?;
                }
            }
        } else {
            scratch.clear();
            self.decompress(input, scratch, limit)?;
        }
        Ok(scratch.len())
    }

    /// What the lz4 fast path could not do: too large is final; anything else goes through
    /// lz4_flex's frame decoder, which decodes it or names the error.
    fn lz4_fallback(
        self,
        outcome: super::lz4::Outcome,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<()> {
        match outcome {
            super::lz4::Outcome::TooLarge => Err(self.too_large(limit)),
            super::lz4::Outcome::Fallback => {
                read_bounded_buf(self, lz4_flex::frame::FrameDecoder::new(input), out, limit)
            }
        }
    }

    fn too_large(self, limit: usize) -> Error {
        Error::DecompressedTooLarge {
            codec: self.name(),
            limit: limit as u64,
        }
    }

    fn decode_error(self, e: impl std::fmt::Display) -> Error {
        Error::Decompress {
            codec: self.name(),
            message: e.to_string(),
        }
    }

    fn encode_error(self, e: impl std::fmt::Display) -> Error {
        Error::Compress {
            codec: self.name(),
            message: e.to_string(),
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Reads a decoder to its end into `out`, failing once more than `limit` bytes come out.
fn read_bounded(
    codec: Compression,
    reader: impl Read,
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<()> {
    let start = out.len();
    let cap = (limit as u64).saturating_add(1);
    if let Err(e) = reader.take(cap).read_to_end(out) {
        out.truncate(start);
        return Err(codec.decode_error(e));
    }
    if out.len() - start > limit {
        out.truncate(start);
        return Err(codec.too_large(limit));
    }
    Ok(())
}

/// Like [`read_bounded`] for a decoder that exposes its output buffer.
fn read_bounded_buf(
    codec: Compression,
    mut reader: impl BufRead,
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<()> {
    let start = out.len();
    loop {
        let chunk = match reader.fill_buf() {
            Ok([]) => return Ok(()),
            Ok(chunk) => chunk,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                out.truncate(start);
                return Err(codec.decode_error(e));
            }
        };
        if out.len() - start + chunk.len() > limit {
            out.truncate(start);
            return Err(codec.too_large(limit));
        }
        out.extend_from_slice(chunk);
        let n = chunk.len();
        reader.consume(n);
    }
}

fn gzip_compress(input: &[u8], out: &mut Vec<u8>) -> Result<()> {
    // Level 6 is Java's GZIPOutputStream default, which Kafka's producer uses.
    let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::new(6));
    enc.write_all(input)
        .map_err(|e| Compression::Gzip.encode_error(e))?;
    enc.finish()
        .map_err(|e| Compression::Gzip.encode_error(e))?;
    Ok(())
}

#[cfg(feature = "snappy")]
mod snappy {
    use super::Compression;
    use crate::error::Result;

    /// xerial's stream header: magic, then version and compatible version (both 1).
    const XERIAL_HEADER: [u8; 16] = [
        0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1,
    ];
    const XERIAL_MAGIC_LEN: usize = 8;
    /// Block size of xerial's `SnappyOutputStream`, which Kafka's Java client uses.
    const BLOCK: usize = 32 * 1024;

    pub(super) fn compress(input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let mut enc = snap::raw::Encoder::new();
        out.extend_from_slice(&XERIAL_HEADER);
        for chunk in input.chunks(BLOCK) {
            let len_at = out.len();
            out.extend_from_slice(&[0; 4]);
            let start = out.len();
            out.resize(start + snap::raw::max_compress_len(chunk.len()), 0);
            let n = enc
                .compress(chunk, out.get_mut(start..).unwrap_or_default())
                .map_err(|e| Compression::Snappy.encode_error(e))?;
            out.truncate(start + n);
            let n = i32::try_from(n).map_err(|e| Compression::Snappy.encode_error(e))?;
            super::super::header::put(out, len_at, &n.to_be_bytes());
        }
        Ok(())
    }

    /// The most a snappy element expands: a copy of up to 64 bytes from 3 bytes of input
    /// (literals only shrink, 2-byte copies give at most 11 bytes).
    const MAX_EXPANSION: usize = 22;

    fn raw_block(input: &[u8], out: &mut Vec<u8>, limit: usize, start: usize) -> Result<()> {
        let codec = Compression::Snappy;
        let n = snap::raw::decompress_len(input).map_err(|e| codec.decode_error(e))?;
        if out.len() - start + n > limit {
            return Err(codec.too_large(limit));
        }
        // The output is allocated (and zero-filled) at its declared length before decoding:
        // a length the block could never produce is refused first, so a few bytes cannot
        // make a reader allocate up to the limit.
        if n > input.len().saturating_mul(MAX_EXPANSION) {
            return Err(codec.decode_error(format!(
                "block declares {n} bytes, more than its {} bytes can hold",
                input.len()
            )));
        }
        let at = out.len();
        out.resize(at + n, 0);
        let got = snap::raw::Decoder::new()
            .decompress(input, out.get_mut(at..).unwrap_or_default())
            .map_err(|e| codec.decode_error(e))?;
        out.truncate(at + got);
        Ok(())
    }

    pub(super) fn decompress(input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<()> {
        let codec = Compression::Snappy;
        let start = out.len();
        let result = (|| {
            if input.get(..XERIAL_MAGIC_LEN) != XERIAL_HEADER.get(..XERIAL_MAGIC_LEN) {
                return raw_block(input, out, limit, start);
            }
            let mut rest = input
                .get(XERIAL_HEADER.len()..)
                .ok_or_else(|| codec.decode_error("xerial header truncated"))?;
            while !rest.is_empty() {
                let (len, tail) = rest
                    .split_first_chunk::<4>()
                    .ok_or_else(|| codec.decode_error("xerial block length truncated"))?;
                let len = usize::try_from(i32::from_be_bytes(*len))
                    .map_err(|_| codec.decode_error("negative xerial block length"))?;
                let block = tail
                    .get(..len)
                    .ok_or_else(|| codec.decode_error("xerial block truncated"))?;
                raw_block(block, out, limit, start)?;
                rest = tail.get(len..).unwrap_or_default();
            }
            Ok(())
        })();
        if result.is_err() {
            out.truncate(start);
        }
        result
    }
}

#[cfg(not(feature = "snappy"))]
mod snappy {
    use crate::error::{Error, Result};

    fn disabled() -> Error {
        Error::CodecDisabled {
            codec: "snappy",
            feature: "snappy",
        }
    }

    pub(super) fn compress(_input: &[u8], _out: &mut Vec<u8>) -> Result<()> {
        Err(disabled())
    }

    pub(super) fn decompress(_input: &[u8], _out: &mut Vec<u8>, _limit: usize) -> Result<()> {
        Err(disabled())
    }
}

#[cfg(feature = "zstd")]
mod zstd_codec {
    use std::io::Write;

    use super::Compression;
    use crate::error::Result;

    /// Kafka's default `compression.zstd.level`.
    const LEVEL: i32 = 3;

    pub(super) fn compress(input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let codec = Compression::Zstd;
        let mut enc =
            zstd::stream::write::Encoder::new(out, LEVEL).map_err(|e| codec.encode_error(e))?;
        enc.write_all(input).map_err(|e| codec.encode_error(e))?;
        enc.finish().map_err(|e| codec.encode_error(e))?;
        Ok(())
    }

    pub(super) fn decompress(input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<()> {
        let codec = Compression::Zstd;
        let dec =
            zstd::stream::read::Decoder::with_buffer(input).map_err(|e| codec.decode_error(e))?;
        super::read_bounded(codec, dec, out, limit)
    }
}

#[cfg(not(feature = "zstd"))]
mod zstd_codec {
    use crate::error::{Error, Result};

    fn disabled() -> Error {
        Error::CodecDisabled {
            codec: "zstd",
            feature: "zstd",
        }
    }

    pub(super) fn compress(_input: &[u8], _out: &mut Vec<u8>) -> Result<()> {
        Err(disabled())
    }

    pub(super) fn decompress(_input: &[u8], _out: &mut Vec<u8>, _limit: usize) -> Result<()> {
        Err(disabled())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled() -> impl Iterator<Item = Compression> {
        Compression::ALL.into_iter().filter(|c| c.is_enabled())
    }

    #[test]
    fn round_trip_every_enabled_codec() {
        let input: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for codec in enabled() {
            let mut packed = Vec::new();
            codec.compress(&input, &mut packed).unwrap();
            let mut unpacked = Vec::new();
            codec
                .decompress(&packed, &mut unpacked, input.len())
                .unwrap();
            assert_eq!(unpacked, input, "{codec}");
        }
    }

    #[test]
    fn bomb_stops_at_limit() {
        let input = vec![0u8; 4 << 20];
        for codec in enabled() {
            let mut packed = Vec::new();
            codec.compress(&input, &mut packed).unwrap();
            let mut out = Vec::new();
            let err = codec.decompress(&packed, &mut out, 1 << 20).unwrap_err();
            assert!(
                matches!(err, Error::DecompressedTooLarge { limit, .. } if limit == 1 << 20),
                "{codec}: {err}"
            );
            assert!(out.is_empty(), "{codec}: output kept after error");
        }
    }

    /// A raw snappy block whose length preamble claims 200 MiB over three bytes of body is
    /// refused for what it claims, before any output is allocated; zeros, which snappy
    /// compresses about as far as it can, still round-trip under that bound.
    #[cfg(feature = "snappy")]
    #[test]
    fn snappy_length_beyond_what_the_block_can_hold_is_refused_first() {
        let mut forged = Vec::new();
        let mut n = 200u64 << 20;
        while n >= 0x80 {
            forged.push((n as u8) | 0x80);
            n >>= 7;
        }
        forged.push(n as u8);
        forged.extend_from_slice(&[0x00, b'x', 0x00]);
        let mut out = Vec::new();
        let err = Compression::Snappy
            .decompress(&forged, &mut out, usize::MAX)
            .unwrap_err();
        assert!(
            matches!(&err, Error::Decompress { message, .. } if message.contains("more than its")),
            "{err}"
        );
        assert_eq!(out.capacity(), 0, "nothing allocated for the claim");

        let zeros = vec![0u8; 1 << 20];
        let mut raw = vec![0u8; snap::raw::max_compress_len(zeros.len())];
        let len = snap::raw::Encoder::new()
            .compress(&zeros, &mut raw)
            .unwrap();
        raw.truncate(len);
        assert!(
            zeros.len() > 20 * raw.len(),
            "zeros compress {}x",
            zeros.len() / raw.len()
        );
        let mut back = Vec::new();
        Compression::Snappy
            .decompress(&raw, &mut back, usize::MAX)
            .unwrap();
        assert_eq!(back, zeros);
    }

    #[test]
    fn garbage_is_a_decode_error() {
        for codec in enabled().filter(|c| *c != Compression::None) {
            let err = codec
                .decompress(b"definitely not compressed", &mut Vec::new(), 1 << 20)
                .unwrap_err();
            assert!(matches!(err, Error::Decompress { .. }), "{codec}: {err}");
        }
    }

    #[test]
    fn lz4_frame_header_is_what_kafka_writes() {
        let mut out = Vec::new();
        Compression::Lz4.compress(b"hello", &mut out).unwrap();
        // Magic 0x184D2204 (LE), FLG = version 01, block independence; BD = 64 KiB.
        assert_eq!(
            out.get(..6),
            Some(&[0x04, 0x22, 0x4d, 0x18, 0x60, 0x40][..])
        );
    }

    #[test]
    fn disabled_codecs_say_which_feature() {
        for codec in Compression::ALL.into_iter().filter(|c| !c.is_enabled()) {
            let err = codec.decompress(b"x", &mut Vec::new(), 10).unwrap_err();
            assert!(matches!(err, Error::CodecDisabled { .. }), "{err}");
        }
    }
}
