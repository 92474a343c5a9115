//! Bytes of a file into records: one record a line (the newline dropped, and a `\r`
//! before it), lines over the maximum split into pieces, optionally lines joined into
//! multi-line events by a start pattern, and a partial last line held until its newline or
//! an idle flush.
//!
//! The framer knows file offsets: every record carries the offset of its first byte and
//! the offset just past it, and [`Framer::resume_point`] says where reading must start
//! again to reproduce exactly the records not yet emitted (a held event or partial line is
//! re-read, never half-emitted).

use regex::bytes::Regex;

use crate::ingest::error::Result;

/// One record out of the framer.
#[derive(Debug)]
pub(crate) struct Piece<'a> {
    /// The record's bytes.
    pub value: &'a [u8],
    /// File offset of its first byte.
    pub start: u64,
    /// File offset just past it (past its newline for a whole line).
    #[cfg_attr(not(test), allow(dead_code))]
    pub end: u64,
    /// A piece of a line longer than the maximum (or flushed before its newline): its index
    /// within the line, and whether it is the line's last piece.
    pub split: Option<(u32, bool)>,
}

/// What a framer emitted, for the source's counters.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FrameCounts {
    pub lines_split: u64,
    pub partial_flushes: u64,
}

pub(crate) struct Framer {
    max: usize,
    start_pattern: Option<Regex>,
    /// The line being read (no newline yet).
    line: Vec<u8>,
    /// File offset of `line[0]`.
    line_start: u64,
    /// Pieces of the current line already emitted.
    split_next: u32,
    /// The multi-line event being gathered: whole lines joined by `\n`.
    event: Vec<u8>,
    event_start: u64,
    event_end: u64,
    pub(crate) counts: FrameCounts,
}

type Emit<'e> = dyn FnMut(Piece<'_>) -> Result<()> + 'e;

impl Framer {
    /// A framer starting at `offset`, `split_next` pieces into a line.
    pub(crate) fn new(
        max: usize,
        start_pattern: Option<Regex>,
        offset: u64,
        split_next: u32,
    ) -> Self {
        Framer {
            max: max.max(1),
            start_pattern,
            line: Vec::new(),
            line_start: offset,
            split_next,
            event: Vec::new(),
            event_start: offset,
            event_end: offset,
            counts: FrameCounts::default(),
        }
    }

    /// Where reading starts again to get every record not emitted yet, and the split state
    /// there.
    pub(crate) fn resume_point(&self) -> (u64, u32) {
        if self.event.is_empty() {
            (self.line_start, self.split_next)
        } else {
            (self.event_start, 0)
        }
    }

    /// The offset of the next byte to feed.
    pub(crate) fn next_offset(&self) -> u64 {
        self.line_start + self.line.len() as u64
    }

    /// Whether bytes are held (a partial line or an event).
    pub(crate) fn holds(&self) -> bool {
        !self.line.is_empty() || !self.event.is_empty()
    }

    /// Feeds the bytes that follow [`next_offset`](Self::next_offset).
    pub(crate) fn feed(&mut self, mut data: &[u8], emit: &mut Emit<'_>) -> Result<()> {
        while !data.is_empty() {
            match memchr::memchr(b'\n', data) {
                Some(i) => {
                    let (seg, rest) = data.split_at(i);
                    if self.line.is_empty()
                        && self.split_next == 0
                        && self.start_pattern.is_none()
                        && seg.len() <= self.max
                    {
                        // The common case, a whole line within `data`: emitted from it,
                        // without a copy into `line`.
                        let start = self.line_start;
                        let end = start + seg.len() as u64 + 1;
                        let value = seg.strip_suffix(b"\r").unwrap_or(seg);
                        emit(Piece {
                            value,
                            start,
                            end,
                            split: None,
                        })?;
                        self.line_start = end;
                    } else {
                        self.extend_line(seg, emit)?;
                        self.complete_line(emit)?;
                    }
                    data = rest.get(1..).unwrap_or_default();
                }
                None => {
                    self.extend_line(data, emit)?;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Emits what is held: the event, then the partial line as a piece (its rest, if it
    /// comes, is the line's next piece). For the idle timeout and for files that will not
    /// grow.
    pub(crate) fn flush(&mut self, emit: &mut Emit<'_>) -> Result<()> {
        self.flush_event(emit)?;
        if !self.line.is_empty() {
            let start = self.line_start;
            let end = start + self.line.len() as u64;
            emit(Piece {
                value: &self.line,
                start,
                end,
                split: Some((self.split_next, false)),
            })?;
            self.counts.partial_flushes += 1;
            self.split_next += 1;
            self.line.clear();
            self.line_start = end;
        }
        Ok(())
    }

    fn extend_line(&mut self, mut seg: &[u8], emit: &mut Emit<'_>) -> Result<()> {
        while self.line.len() + seg.len() > self.max {
            // A line over the maximum goes out in pieces of `max` bytes; what is held of an
            // event goes first, so records stay in file order.
            self.flush_event(emit)?;
            let take = self.max - self.line.len();
            let (head, rest) = seg.split_at(take.min(seg.len()));
            self.line.extend_from_slice(head);
            seg = rest;
            let start = self.line_start;
            let end = start + self.line.len() as u64;
            if self.split_next == 0 {
                self.counts.lines_split += 1;
            }
            emit(Piece {
                value: &self.line,
                start,
                end,
                split: Some((self.split_next, false)),
            })?;
            self.split_next += 1;
            self.line.clear();
            self.line_start = end;
        }
        self.line.extend_from_slice(seg);
        Ok(())
    }

    fn complete_line(&mut self, emit: &mut Emit<'_>) -> Result<()> {
        let start = self.line_start;
        let end = start + self.line.len() as u64 + 1;
        let mut value_len = self.line.len();
        if self.line.last() == Some(&b'\r') {
            value_len -= 1;
        }
        let value = self.line.get(..value_len).unwrap_or_default();
        if self.split_next > 0 {
            emit(Piece {
                value,
                start,
                end,
                split: Some((self.split_next, true)),
            })?;
            self.split_next = 0;
        } else if let Some(pattern) = &self.start_pattern {
            let starts = pattern.is_match(value);
            if starts || self.event.len() + 1 + value.len() > self.max {
                let value = value.to_vec();
                self.flush_event(emit)?;
                self.event = value;
                self.event_start = start;
            } else if self.event.is_empty() {
                self.event.extend_from_slice(value);
                self.event_start = start;
            } else {
                self.event.push(b'\n');
                self.event.extend_from_slice(value);
            }
            self.event_end = end;
        } else {
            emit(Piece {
                value,
                start,
                end,
                split: None,
            })?;
        }
        self.line.clear();
        self.line_start = end;
        Ok(())
    }

    fn flush_event(&mut self, emit: &mut Emit<'_>) -> Result<()> {
        if self.event.is_empty() {
            return Ok(());
        }
        emit(Piece {
            value: &self.event,
            start: self.event_start,
            end: self.event_end,
            split: None,
        })?;
        self.event.clear();
        self.event_start = self.event_end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Out = Vec<(String, u64, u64, Option<(u32, bool)>)>;

    fn run(framer: &mut Framer, chunks: &[&[u8]]) -> Out {
        let mut out = Vec::new();
        for c in chunks {
            framer
                .feed(c, &mut |p| {
                    out.push((
                        String::from_utf8_lossy(p.value).into_owned(),
                        p.start,
                        p.end,
                        p.split,
                    ));
                    Ok(())
                })
                .unwrap();
        }
        out
    }

    #[test]
    fn lines_across_chunks_with_offsets() {
        let mut f = Framer::new(100, None, 10, 0);
        let out = run(&mut f, &[b"ab", b"c\nde\r\nf"]);
        assert_eq!(
            out,
            vec![("abc".into(), 10, 14, None), ("de".into(), 14, 18, None)]
        );
        assert_eq!(f.resume_point(), (18, 0));
        assert_eq!(f.next_offset(), 19);
        assert!(f.holds());
    }

    #[test]
    fn long_line_split_into_pieces_and_resumable() {
        let mut f = Framer::new(4, None, 0, 0);
        let out = run(&mut f, &[b"abcdefghij\nxy\n"]);
        assert_eq!(
            out,
            vec![
                ("abcd".into(), 0, 4, Some((0, false))),
                ("efgh".into(), 4, 8, Some((1, false))),
                ("ij".into(), 8, 11, Some((2, true))),
                ("xy".into(), 11, 14, None),
            ]
        );
        assert_eq!(f.counts.lines_split, 1);
        // Restarting after the second piece gives the same last piece.
        let mut g = Framer::new(4, None, 8, 2);
        assert_eq!(
            run(&mut g, &[b"ij\n"]),
            vec![("ij".into(), 8, 11, Some((2, true)))]
        );
    }

    #[test]
    fn multiline_events_joined_by_start_pattern() {
        let re = Regex::new(r"^\d").unwrap();
        let mut f = Framer::new(1000, Some(re), 0, 0);
        let out = run(&mut f, &[b"1 boom\n  at a\n  at b\n2 ok\n"]);
        assert_eq!(out, vec![("1 boom\n  at a\n  at b".into(), 0, 21, None)]);
        assert_eq!(f.resume_point(), (21, 0));
        let mut flushed = Vec::new();
        f.flush(&mut |p| {
            flushed.push((p.value.to_vec(), p.end));
            Ok(())
        })
        .unwrap();
        assert_eq!(flushed, vec![(b"2 ok".to_vec(), 26)]);
        assert_eq!(f.resume_point(), (26, 0));
    }

    #[test]
    fn partial_line_flushed_then_completed() {
        let mut f = Framer::new(100, None, 0, 0);
        assert!(run(&mut f, &[b"hal"]).is_empty());
        let mut got = Vec::new();
        f.flush(&mut |p| {
            got.push((p.value.to_vec(), p.split));
            Ok(())
        })
        .unwrap();
        assert_eq!(got, vec![(b"hal".to_vec(), Some((0, false)))]);
        assert_eq!(f.resume_point(), (3, 1));
        assert_eq!(
            run(&mut f, &[b"f\n"]),
            vec![("f".into(), 3, 5, Some((1, true)))]
        );
    }
}
