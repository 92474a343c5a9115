//! The records section of one batch, decoded lazily: [`Records`] and its checking iterator.

use std::borrow::Cow;

use super::record::{parse_record, Record, RecordContext};
use crate::error::{Error, Result};

/// The decoded (decompressed if need be) records section of one batch.
#[derive(Debug, Clone)]
pub struct Records<'d> {
    data: Cow<'d, [u8]>,
    ctx: RecordContext,
    declared: i32,
    last_offset_delta: i32,
}

impl<'d> Records<'d> {
    pub(super) fn new(
        data: Cow<'d, [u8]>,
        ctx: RecordContext,
        declared: i32,
        last_offset_delta: i32,
    ) -> Self {
        Records {
            data,
            ctx,
            declared,
            last_offset_delta,
        }
    }

    /// Iterates the records, checking each against the bytes and the header.
    pub fn iter(&self) -> RecordIter<'_> {
        RecordIter::resume(&self.data, self.cursor())
    }

    /// Where iteration starts: see [`RecordIter::resume`].
    pub(crate) fn cursor(&self) -> RecordCursor {
        RecordCursor {
            pos: 0,
            st: IterState {
                index: 0,
                ctx: self.ctx,
                declared: self.declared,
                last_offset_delta: self.last_offset_delta,
                previous_delta: -1,
                done: false,
            },
        }
    }

    /// Number of records the header declares.
    pub fn declared_count(&self) -> i32 {
        self.declared
    }

    /// The decompressed records bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }
}

impl<'r> IntoIterator for &'r Records<'_> {
    type Item = Result<Record<'r>>;
    type IntoIter = RecordIter<'r>;

    fn into_iter(self) -> RecordIter<'r> {
        self.iter()
    }
}

/// Iterator over the records of a batch; yields an error (and then stops) on the first
/// record that disagrees with the bytes or the header.
#[derive(Debug, Clone)]
pub struct RecordIter<'r> {
    /// The bytes not yet parsed: a shrinking slice, so the hot loop keeps no position.
    rest: &'r [u8],
    /// Length of all the records bytes, to turn `rest` back into a position.
    len: usize,
    st: IterState,
}

/// The state of a [`RecordIter`] without its borrow, so an owner of the bytes can pause
/// and resume iteration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordCursor {
    pos: usize,
    st: IterState,
}

/// What iteration has seen so far, beside where it is.
#[derive(Debug, Clone, Copy)]
struct IterState {
    index: u32,
    ctx: RecordContext,
    declared: i32,
    last_offset_delta: i32,
    previous_delta: i32,
    done: bool,
}

impl IterState {
    /// Whether a record with offset delta `delta` may come next: after the previous one and
    /// not past the header's last offset delta.
    #[inline(always)]
    fn accepts(&self, delta: i32) -> bool {
        delta > self.previous_delta && delta <= self.last_offset_delta
    }

    /// The fast path of iteration, for a state not `done`: the next record when one is due
    /// and well-formed, with `rest` and the state advanced past it. `None` changes nothing;
    /// the full check (`RecordIter::next_checked`) then says whether the batch ended or what
    /// is wrong.
    #[inline(always)]
    fn step<'r>(&mut self, rest: &mut &'r [u8]) -> Option<Record<'r>> {
        if i64::from(self.index) >= i64::from(self.declared) {
            return None;
        }
        let mut next = *rest;
        let (record, delta) = parse_record(&mut next, &self.ctx).ok()?;
        if !self.accepts(delta) {
            return None;
        }
        *rest = next;
        self.previous_delta = delta;
        self.index += 1;
        Some(record)
    }
}

impl<'r> RecordIter<'r> {
    /// Continues iterating `data` (the same bytes the cursor came from) at `cur`.
    pub(crate) fn resume(data: &'r [u8], cur: RecordCursor) -> Self {
        RecordIter {
            // A cursor past the end (not from these bytes) reads as nothing left.
            rest: data.get(cur.pos..).unwrap_or_default(),
            len: data.len(),
            st: cur.st,
        }
    }

    /// The iteration state, for [`RecordIter::resume`].
    pub(crate) fn cursor(&self) -> RecordCursor {
        RecordCursor {
            pos: self.len - self.rest.len(),
            st: self.st,
        }
    }

    fn fail(&mut self, err: Error) -> Option<Result<Record<'r>>> {
        self.st.done = true;
        Some(Err(err))
    }

    /// The whole check of the next record, naming what is wrong when something is. The fast
    /// path in [`Iterator::next`] falls back to this on anything but a well-formed record,
    /// from the same state, so both give the same answers.
    #[cold]
    #[inline(never)]
    fn next_checked(&mut self) -> Option<Result<Record<'r>>> {
        if self.st.done {
            return None;
        }
        let base_offset = self.st.ctx.base_offset;
        if i64::from(self.st.index) >= i64::from(self.st.declared) {
            self.st.done = true;
            if !self.rest.is_empty() {
                return Some(Err(Error::CorruptRecord {
                    base_offset,
                    index: self.st.index,
                    reason: "bytes left after the declared record count",
                }));
            }
            return None;
        }
        if self.rest.is_empty() {
            let err = Error::RecordCountMismatch {
                base_offset,
                declared: self.st.declared,
                found: self.st.index,
            };
            return self.fail(err);
        }
        let index = self.st.index;
        let mut rest = self.rest;
        match parse_record(&mut rest, &self.st.ctx) {
            Ok((record, delta)) => {
                if !self.st.accepts(delta) {
                    return self.fail(Error::CorruptRecord {
                        base_offset,
                        index,
                        reason: "offset delta out of order or past the last offset delta",
                    });
                }
                self.rest = rest;
                self.st.previous_delta = delta;
                self.st.index += 1;
                Some(Ok(record))
            }
            Err(reason) => self.fail(Error::CorruptRecord {
                base_offset,
                index,
                reason,
            }),
        }
    }
}

impl<'r> Iterator for RecordIter<'r> {
    type Item = Result<Record<'r>>;

    /// Small enough to inline into the caller's loop, so a record's fields stay in
    /// registers; the end of the batch and every error go through `next_checked`.
    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        if !self.st.done {
            if let Some(record) = self.st.step(&mut self.rest) {
                return Some(Ok(record));
            }
        }
        self.next_checked()
    }

    /// Internal iteration (`for_each`, `sum`, `collect` and the like): the loop keeps the
    /// cursor in locals rather than in the iterator, and writes it back once.
    #[inline]
    fn fold<B, F>(mut self, init: B, mut f: F) -> B
    where
        F: FnMut(B, Self::Item) -> B,
    {
        let mut acc = init;
        if !self.st.done {
            let (mut rest, mut st) = (self.rest, self.st);
            while let Some(record) = st.step(&mut rest) {
                acc = f(acc, Ok(record));
            }
            (self.rest, self.st) = (rest, st);
        }
        while let Some(item) = self.next_checked() {
            acc = f(acc, item);
        }
        acc
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.st.done {
            return (0, Some(0));
        }
        let left = (i64::from(self.st.declared) - i64::from(self.st.index)).max(0) as usize;
        (0, Some(left.saturating_add(1)))
    }
}
