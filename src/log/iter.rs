//! Iterating records across batches and segments.

use std::ops::Range;
use std::sync::Arc;

use super::Log;
use crate::error::Result;
use crate::io::AlignedBuf;
use crate::record::{Batch, DecodeLimits, Headers, OwnedRecord, Record, RecordCursor, RecordIter};

/// Bytes read from the log per step of a record iteration.
const FETCH_BYTES: usize = 1 << 20;

/// Bytes that records point into: a read chunk of stored batches, or one decompressed batch.
#[derive(Debug)]
enum Chunk {
    Stored(AlignedBuf),
    Decompressed(Vec<u8>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Stored(b) => b.as_slice(),
            Chunk::Decompressed(v) => v,
        }
    }
}

/// The log a [`LogRecords`] reads: borrowed, or shared so the iterator can live in a task
/// or thread of its own.
#[derive(Debug)]
enum LogRef<'l> {
    Borrowed(&'l Log),
    Shared(Arc<Log>),
}

impl std::ops::Deref for LogRef<'_> {
    type Target = Log;

    fn deref(&self) -> &Log {
        match self {
            LogRef::Borrowed(log) => log,
            LogRef::Shared(log) => log,
        }
    }
}

/// A record read from the log. It shares the buffer it was decoded from, so iterating
/// allocates per read chunk, not per record.
#[derive(Debug, Clone)]
pub struct LogRecord {
    data: Arc<Chunk>,
    offset: i64,
    timestamp: i64,
    key: Option<Range<usize>>,
    value: Option<Range<usize>>,
    headers: Range<usize>,
    header_count: u32,
}

impl LogRecord {
    /// The record's offset.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// The record's timestamp (the batch's under LogAppendTime).
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The key, `None` for null.
    pub fn key(&self) -> Option<&[u8]> {
        self.key.clone().and_then(|r| self.data.bytes().get(r))
    }

    /// The value, `None` for null.
    pub fn value(&self) -> Option<&[u8]> {
        self.value.clone().and_then(|r| self.data.bytes().get(r))
    }

    /// The headers in order.
    pub fn headers(&self) -> Headers<'_> {
        let buf = self
            .data
            .bytes()
            .get(self.headers.clone())
            .unwrap_or_default();
        Headers::from_raw(buf, self.header_count)
    }

    /// An owned copy.
    pub fn to_owned_record(&self) -> OwnedRecord {
        OwnedRecord {
            offset: self.offset,
            timestamp: self.timestamp,
            key: self.key().map(<[u8]>::to_vec),
            value: self.value().map(<[u8]>::to_vec),
            headers: self
                .headers()
                .map(|h| (h.key.to_vec(), h.value.map(<[u8]>::to_vec)))
                .collect(),
        }
    }
}

/// The batch being iterated: its records' bytes and where iteration stands.
#[derive(Debug)]
struct Current {
    data: Arc<Chunk>,
    range: Range<usize>,
    cursor: RecordCursor,
}

/// Records from an offset to the end of the log (or an upper bound), across segments.
///
/// Each batch is checked (CRC and records) before its records are returned.
#[derive(Debug)]
pub struct LogRecords<'l> {
    log: LogRef<'l>,
    next_fetch: i64,
    min_offset: i64,
    upper_bound: Option<i64>,
    chunk: Option<(Arc<Chunk>, usize)>,
    /// A read buffer no record refers to any more, for the next chunk.
    spare: Option<AlignedBuf>,
    current: Option<Current>,
    limits: DecodeLimits,
    done: bool,
    /// Whether a batch was iterated: `next_fetch` is then the offset after it, below which
    /// no later batch may start.
    started: bool,
    /// The log end offset when the current chunk was read: no batch in it ends there or
    /// past it.
    chunk_log_end: i64,
    /// For read_committed iteration: the aborted transactions (and control batches) to skip.
    filter: Option<crate::producer::AbortedFilter>,
}

impl Log {
    /// Iterates records from `offset` (the first record at or after it) to the log end.
    pub fn records_from(&self, offset: i64) -> LogRecords<'_> {
        self.records_between(offset, None)
    }

    /// Iterates records from `offset` in batches whose last offset is below `upper_bound`.
    pub fn records_between(&self, offset: i64, upper_bound: Option<i64>) -> LogRecords<'_> {
        LogRecords::new(LogRef::Borrowed(self), offset, upper_bound)
    }

    /// [`Log::records_from`] holding its own `Arc` of the log instead of a borrow, for a
    /// reader that lives in a task or thread of its own.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use streamlog::{Compression, Log, LogConfig, OwnedRecord};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let log = Arc::new(Log::open(dir.path(), LogConfig::default())?);
    /// log.append_records(&[OwnedRecord::new(0, None, Some(b"v"))], Compression::None)?;
    /// let records = log.records_from_shared(0);
    /// let read = std::thread::spawn(move || records.count()).join().unwrap();
    /// assert_eq!(read, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn records_from_shared(self: &Arc<Self>, offset: i64) -> LogRecords<'static> {
        self.records_between_shared(offset, None)
    }

    /// [`Log::records_between`] holding its own `Arc` of the log.
    pub fn records_between_shared(
        self: &Arc<Self>,
        offset: i64,
        upper_bound: Option<i64>,
    ) -> LogRecords<'static> {
        LogRecords::new(LogRef::Shared(Arc::clone(self)), offset, upper_bound)
    }

    /// [`Log::records_committed`] holding its own `Arc` of the log.
    pub fn records_committed_shared(self: &Arc<Self>, offset: i64) -> LogRecords<'static> {
        let (lso, filter) = super::txn::committed_view(self, offset);
        LogRecords {
            filter: Some(filter),
            ..self.records_between_shared(offset, Some(lso))
        }
    }
}

impl<'l> LogRecords<'l> {
    fn new(log: LogRef<'l>, offset: i64, upper_bound: Option<i64>) -> Self {
        let limits = log.config().decode_limits;
        LogRecords {
            log,
            next_fetch: offset,
            min_offset: offset,
            upper_bound,
            chunk: None,
            spare: None,
            current: None,
            limits,
            done: false,
            started: false,
            chunk_log_end: i64::MAX,
            filter: None,
        }
    }
}

impl Log {
    /// Iterates records as a read_committed consumer sees them: from `offset` up to the
    /// last stable offset as it is now, without control batches and without the records of
    /// aborted transactions.
    pub fn records_committed(&self, offset: i64) -> LogRecords<'_> {
        let (lso, filter) = super::txn::committed_view(self, offset);
        LogRecords {
            filter: Some(filter),
            ..self.records_between(offset, Some(lso))
        }
    }

    /// Reads stored batches from `offset` into an aligned buffer, retrying if a truncation
    /// raced with the read. `None` at the end.
    /// Also returns the log end offset the read was made under.
    fn read_chunk(
        &self,
        offset: i64,
        upper_bound: Option<i64>,
        spare: &mut Option<AlignedBuf>,
    ) -> Result<Option<(AlignedBuf, i64)>> {
        loop {
            let view = self.view();
            let read = self
                .local
                .read_in(&view, offset, FETCH_BYTES, upper_bound)
                .and_then(|data| {
                    let Some(slice) = data.slice else {
                        return Ok(None);
                    };
                    let len = usize::try_from(slice.len()).unwrap_or(0);
                    // A buffer the previous chunk left behind saves allocating and faulting
                    // in a fresh one per chunk.
                    let mut buf = match spare.take() {
                        Some(mut b) => {
                            b.resize(len);
                            b
                        }
                        None => AlignedBuf::new(len),
                    };
                    slice.read_into(buf.as_mut_slice())?;
                    Ok(Some((buf, data.log_end_offset)))
                });
            // A truncation since the view was taken can have cut the file under the read
            // (an I/O or frame error) or rewritten it (wrong bytes): either way, read again.
            if self.local.view.read().generation == view.generation {
                return read;
            }
        }
    }
}

impl LogRecords<'_> {
    fn fail<T>(&mut self, e: crate::Error) -> Option<Result<T>> {
        self.done = true;
        Some(Err(e))
    }

    /// Moves to the next batch of the current chunk; false when the chunk is used up.
    fn next_batch(&mut self) -> Result<bool> {
        let Some((chunk, pos)) = self.chunk.as_mut() else {
            return Ok(false);
        };
        let bytes = chunk.bytes().get(*pos..).unwrap_or_default();
        if bytes.is_empty() {
            // Keep the buffer for the next chunk unless records handed out still share it.
            if let Some((chunk, _)) = self.chunk.take() {
                if let Ok(Chunk::Stored(buf)) = Arc::try_unwrap(chunk) {
                    self.spare = Some(buf);
                }
            }
            return Ok(false);
        }
        let (batch, _) = Batch::parse(bytes, &self.limits)?;
        batch.validate()?;
        // Offsets only increase. A damaged segment below the recovery point (trusted at
        // open, not scanned) can hold a batch that goes back: returning it would hand out
        // offsets twice, and fetching on from its end would loop over the same batches.
        if self.started && batch.base_offset() < self.next_fetch {
            return Err(crate::Error::InvalidBatchHeader {
                base_offset: batch.base_offset(),
                reason: "base offset below the end of the batch before it",
            });
        }
        // Nor do they reach past the log end (the read stops before the log end by the
        // offsets of the index, not of every header it passes).
        if batch.last_offset() >= self.chunk_log_end {
            return Err(crate::Error::InvalidBatchHeader {
                base_offset: batch.base_offset(),
                reason: "last offset past the log end offset",
            });
        }
        self.started = true;
        let start = *pos;
        *pos += batch.size_in_bytes();
        self.next_fetch = batch.next_offset();
        let chunk = Arc::clone(chunk);
        if batch.last_offset() < self.min_offset
            || self.filter.as_ref().is_some_and(|f| f.skips(&batch))
        {
            return Ok(true);
        }
        let current = if batch.compression()? == crate::Compression::None {
            let records = batch.records_with(&self.limits)?;
            let cursor = records.cursor();
            let from = start + crate::record::BATCH_HEADER_SIZE;
            Current {
                data: chunk,
                range: from..start + batch.size_in_bytes(),
                cursor,
            }
        } else {
            let records = batch.records_with(&self.limits)?;
            let cursor = records.cursor();
            let bytes = records.as_bytes().to_vec();
            let len = bytes.len();
            Current {
                data: Arc::new(Chunk::Decompressed(bytes)),
                range: 0..len,
                cursor,
            }
        };
        self.current = Some(current);
        Ok(true)
    }
}

/// Where a decoded record's fields lie in the chunk it was decoded from.
#[derive(Debug)]
struct Located {
    offset: i64,
    timestamp: i64,
    attributes: i8,
    key: Option<Range<usize>>,
    value: Option<Range<usize>>,
    headers: Range<usize>,
    header_count: u32,
}

impl LogRecords<'_> {
    /// The next record as a borrow of the iterator's buffer: no reference count and no copy
    /// per record, for scans that look at each record and move on (the fastest way to read
    /// a log record by record). [`Iterator::next`] hands out owned [`LogRecord`]s instead.
    ///
    /// ```
    /// # use streamlog::{Compression, Log, LogConfig, OwnedRecord};
    /// # let dir = tempfile::tempdir()?;
    /// # let log = Log::open(dir.path(), LogConfig::default())?;
    /// # log.append_records(&[OwnedRecord::new(0, None, Some(b"abc"))], Compression::None)?;
    /// let mut records = log.records_from(0);
    /// let mut bytes = 0;
    /// while let Some(record) = records.next_record() {
    ///     bytes += record?.value.map_or(0, <[u8]>::len);
    /// }
    /// assert_eq!(bytes, 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_record(&mut self) -> Option<Result<Record<'_>>> {
        let loc = match self.advance()? {
            Ok(loc) => loc,
            Err(e) => return Some(Err(e)),
        };
        let data = self.current.as_ref()?.data.bytes();
        let slice = |r: Option<Range<usize>>| r.and_then(|r| data.get(r));
        Some(Ok(Record::from_parts(
            loc.offset,
            loc.timestamp,
            loc.attributes,
            slice(loc.key),
            slice(loc.value),
            data.get(loc.headers).unwrap_or_default(),
            loc.header_count,
        )))
    }

    /// Moves to the next record at or after the start offset, reading and checking batches
    /// as needed; the record's bytes stay in `self.current` until the next call.
    fn advance(&mut self) -> Option<Result<Located>> {
        loop {
            if self.done {
                return None;
            }
            if let Some(cur) = self.current.as_mut() {
                let all = cur.data.bytes();
                let data = all.get(cur.range.clone()).unwrap_or_default();
                let mut it = RecordIter::resume(data, cur.cursor);
                match it.next() {
                    Some(Ok(r)) => {
                        cur.cursor = it.cursor();
                        if r.offset < self.min_offset {
                            continue;
                        }
                        let base = all.as_ptr() as usize;
                        let range_of = |s: &[u8]| {
                            let start = s.as_ptr() as usize - base;
                            start..start + s.len()
                        };
                        let (headers, header_count) = r.raw_headers();
                        return Some(Ok(Located {
                            offset: r.offset,
                            timestamp: r.timestamp,
                            attributes: r.attributes,
                            key: r.key.map(range_of),
                            value: r.value.map(range_of),
                            headers: range_of(headers),
                            header_count,
                        }));
                    }
                    Some(Err(e)) => return self.fail(e),
                    None => self.current = None,
                }
                continue;
            }
            match self.next_batch() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => return self.fail(e),
            }
            match self
                .log
                .read_chunk(self.next_fetch, self.upper_bound, &mut self.spare)
            {
                Ok(Some((buf, log_end))) => {
                    self.chunk = Some((Arc::new(Chunk::Stored(buf)), 0));
                    self.chunk_log_end = log_end;
                }
                Ok(None) => {
                    self.done = true;
                    return None;
                }
                Err(e) => return self.fail(e),
            }
        }
    }
}

impl Iterator for LogRecords<'_> {
    type Item = Result<LogRecord>;

    fn next(&mut self) -> Option<Result<LogRecord>> {
        let loc = match self.advance()? {
            Ok(loc) => loc,
            Err(e) => return Some(Err(e)),
        };
        let data = Arc::clone(&self.current.as_ref()?.data);
        Some(Ok(LogRecord {
            data,
            offset: loc.offset,
            timestamp: loc.timestamp,
            key: loc.key,
            value: loc.value,
            headers: loc.headers,
            header_count: loc.header_count,
        }))
    }
}
