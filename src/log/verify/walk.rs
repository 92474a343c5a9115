//! Walking a partition's segments in order: each batch checked, offsets checked within
//! and across segments, then the segment's indexes (`index_check.rs`).

use std::path::{Path, PathBuf};

use super::reader::SegmentReader;
use super::report::{FindingKind, VerifyProgress, VerifyReport};
use crate::error::Error;
use crate::io::FileSystem;
use crate::record::{Batch, DecodeLimits, TimestampType};

/// Where a batch sits in its segment, as the index checks need it.
#[derive(Debug, Clone, Copy)]
pub(super) struct BatchSpan {
    pub(super) position: u64,
    pub(super) base_offset: i64,
    pub(super) last_offset: i64,
    /// The largest max timestamp of the segment's batches up to and including this one.
    pub(super) max_timestamp_so_far: i64,
}

/// State carried across the segments of one verification.
pub(super) struct Walk<'a> {
    pub(super) fs: &'a dyn FileSystem,
    pub(super) report: VerifyReport,
    pub(super) progress: &'a mut dyn FnMut(VerifyProgress),
    pub(super) bytes_done: u64,
    pub(super) bytes_total: u64,
    /// Last offset of the last batch seen, and the file it was in.
    pub(super) last_offset: Option<(i64, PathBuf)>,
    /// Base offset of the first segment whose indexes the next open rebuilds.
    pub(super) rebuilt_from: Option<i64>,
}

impl Walk<'_> {
    fn report_progress(&mut self) {
        (self.progress)(VerifyProgress {
            bytes_done: self.bytes_done,
            bytes_total: self.bytes_total,
        });
    }

    pub(super) fn segment(&mut self, base: i64, path: &Path) {
        if let Some((last, _)) = &self.last_offset {
            if base <= *last {
                let detail = format!(
                    "segment base offset {base} is at or below the previous segment's last offset {last}"
                );
                self.report.add(path, 0, FindingKind::OffsetOverlap, detail);
            }
        }
        let start = self.bytes_done;
        let spans = match SegmentReader::open_in(self.fs, path) {
            Ok(mut reader) => {
                let spans = self.batches(base, &mut reader);
                self.bytes_done = start + reader.len();
                spans
            }
            Err(e) => {
                self.report.add(path, 0, FindingKind::Io, e.to_string());
                Vec::new()
            }
        };
        self.report_progress();
        let with_ext = |ext: &str| path.with_extension(ext);
        self.offset_index(base, &with_ext("index"), &spans);
        self.time_index(base, &with_ext("timeindex"), &spans);
    }

    /// Checks every batch of one segment; returns where each framed batch sits.
    fn batches(&mut self, base: i64, reader: &mut SegmentReader) -> Vec<BatchSpan> {
        let path = reader.path().to_path_buf();
        let mut spans: Vec<BatchSpan> = Vec::new();
        let mut scratch = Vec::new();
        let start = self.bytes_done;
        loop {
            let (position, batch) = match reader.next_batch() {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) => {
                    let position = reader.position();
                    self.report
                        .add(&path, position, FindingKind::BatchFrame, e.to_string());
                    break;
                }
            };
            self.report.batches += 1;
            if let Some((kind, detail)) = check_batch(&batch, &mut scratch, &mut self.report) {
                self.report.add(&path, position, kind, detail);
            }
            let (first, last) = (batch.base_offset(), batch.last_offset());
            self.check_offsets(base, &path, position, first, last);
            let max_so_far = spans.last().map_or(batch.max_timestamp(), |s| {
                s.max_timestamp_so_far.max(batch.max_timestamp())
            });
            spans.push(BatchSpan {
                position,
                base_offset: first,
                last_offset: last,
                max_timestamp_so_far: max_so_far,
            });
            self.bytes_done = start + reader.position();
            self.report_progress();
        }
        spans
    }

    /// Offsets against the segment's base offset and the previous batch.
    fn check_offsets(&mut self, base: i64, path: &Path, position: u64, first: i64, last: i64) {
        if first < base {
            let detail =
                format!("batch base offset {first} is below the segment's base offset {base}");
            self.report
                .add(path, position, FindingKind::OffsetOutsideSegment, detail);
        } else if last - base > i64::from(i32::MAX) {
            let detail = format!(
                "batch last offset {last} is more than 2^31-1 above the segment's base offset {base}"
            );
            self.report
                .add(path, position, FindingKind::OffsetOutsideSegment, detail);
        }
        match &self.last_offset {
            Some((prev, prev_path)) if first <= *prev => {
                let where_ = if prev_path == path {
                    String::new()
                } else {
                    format!(" in {}", prev_path.display())
                };
                let detail = format!(
                    "batch offsets [{first}, {last}] overlap or go back from the previous batch's last offset {prev}{where_}"
                );
                self.report
                    .add(path, position, FindingKind::OffsetOverlap, detail);
            }
            Some((prev, _)) if first > *prev + 1 => {
                let detail = format!(
                    "offsets [{}, {}] absent before this batch",
                    *prev + 1,
                    first - 1
                );
                self.report
                    .add(path, position, FindingKind::OffsetGap, detail);
            }
            _ => {}
        }
        if self.report.first_offset.is_none() {
            self.report.first_offset = Some(first);
        }
        let keep = self
            .last_offset
            .as_ref()
            .is_some_and(|(prev, _)| *prev >= last);
        if !keep {
            self.last_offset = Some((last, path.to_path_buf()));
        }
    }
}

/// Checks one framed batch: CRC and header, then its records. Counts the records decoded.
fn check_batch(
    batch: &Batch<'_>,
    scratch: &mut Vec<u8>,
    report: &mut VerifyReport,
) -> Option<(FindingKind, String)> {
    match batch.validate() {
        Ok(()) => {}
        Err(e @ Error::ChecksumMismatch { .. }) => {
            return Some((FindingKind::Checksum, e.to_string()))
        }
        Err(e) => return Some((FindingKind::BatchHeader, e.to_string())),
    }
    let records = match batch.records_in(scratch, &DecodeLimits::DEFAULT) {
        Ok(r) => r,
        Err(e) => return Some((FindingKind::Records, e.to_string())),
    };
    let create_time = batch.timestamp_type() == TimestampType::CreateTime;
    let mut late = None;
    for record in records.iter() {
        match record {
            Ok(r) => {
                report.records += 1;
                if create_time && r.timestamp > batch.max_timestamp() && late.is_none() {
                    late = Some((r.offset, r.timestamp));
                }
            }
            Err(e) => return Some((FindingKind::Records, e.to_string())),
        }
    }
    if let Some((offset, timestamp)) = late {
        let detail = format!(
            "record at offset {offset} has timestamp {timestamp}, above the batch's max timestamp {}",
            batch.max_timestamp()
        );
        return Some((FindingKind::BatchHeader, detail));
    }
    if batch.is_control() && batch.record_count() > 0 {
        if let Err(e) = batch.control_record() {
            return Some((FindingKind::Records, e.to_string()));
        }
    }
    None
}
