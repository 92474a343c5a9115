//! Walking batches stored back to back.

use super::batch::{frame_size, Batch, DecodeLimits};
use crate::error::Result;

/// Iterator over batches stored back to back (a segment file, a Fetch response's records).
///
/// Checks each batch's frame (length and magic) but not its CRC; call [`Batch::validate`].
/// After an error, including a truncated final batch, it yields nothing more.
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    buf: &'a [u8],
    position: u64,
    limits: DecodeLimits,
    done: bool,
}

impl<'a> Batches<'a> {
    /// Batches in `buf` under the default limits.
    pub fn new(buf: &'a [u8]) -> Self {
        Batches::with_limits(buf, DecodeLimits::DEFAULT)
    }

    /// Batches in `buf` under explicit limits.
    pub fn with_limits(buf: &'a [u8], limits: DecodeLimits) -> Self {
        Batches {
            buf,
            position: 0,
            limits,
            done: false,
        }
    }

    /// Byte position of the next batch within the original buffer.
    pub fn position(&self) -> u64 {
        self.position
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<Batch<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.buf.is_empty() {
            return None;
        }
        match frame_size(self.buf, self.position, &self.limits) {
            Ok(size) => {
                let (bytes, rest) = self.buf.split_at(size);
                self.buf = rest;
                self.position += size as u64;
                Some(Ok(Batch::from_framed(bytes)))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
