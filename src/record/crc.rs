//! CRC-32C (Castagnoli): the checksum of RecordBatch v2, and of streamlog's own small files.
//!
//! One place for the implementation. It is `crc-fast`, which folds with carry-less
//! multiplication (PCLMULQDQ, and VPCLMULQDQ with AVX-512 where the CPU has them; PMULL on
//! AArch64) and picks the widest the CPU offers at run time: on this project's machine
//! about 3× the `crc32` instruction loop of the `crc32c` crate on a 10 KiB batch. An append
//! checks the CRC of every batch, so this is a fixed share of its CPU.

use crc_fast::{CrcAlgorithm, Digest};

/// The CRC-32C of `data`.
#[inline]
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    crc_fast::crc32_iscsi(data) as u32
}

/// The CRC-32C of the bytes whose CRC-32C is `crc`, followed by `data`.
pub(crate) fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    // The digest's state is the register before the final inversion.
    let mut d = Digest::new_with_init_state(CrcAlgorithm::Crc32Iscsi, u64::from(!crc));
    d.update(data);
    d.finalize() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The catalogue's check value, and agreement with an independent implementation (the
    /// `crc32c` crate) on every length around the widths the folding works in, whole and
    /// split.
    #[test]
    fn matches_the_check_value_and_an_independent_implementation() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        let data: Vec<u8> = (0..1500u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in (0..300).chain([511, 512, 513, 1023, 1024, 1025, 1500]) {
            let d = &data[..len];
            assert_eq!(crc32c(d), ::crc32c::crc32c(d), "len {len}");
            for split in [0, 1.min(len), len / 3, len / 2, len] {
                let (a, b) = d.split_at(split);
                assert_eq!(
                    crc32c_append(crc32c(a), b),
                    crc32c(d),
                    "len {len} split {split}"
                );
            }
        }
    }
}
