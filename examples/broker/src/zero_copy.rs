//! Fetch responses whose records stay in the segment files. On a plaintext listener the
//! stored batches go from the page cache to the socket with `sendfile(2)`; only the response's
//! framing passes through the broker's memory. TLS listeners encrypt in user space, so they
//! take the copying path (`apis/fetch.rs` reads the bytes, `codec` encodes them).
//!
//! A response becomes a [`Frame`]: byte parts encoded here and by `kafka-protocol`, and the
//! file slices between them. Each partition's fields are `kafka-protocol`'s encoding with
//! the records left out; the records' length prefix and the Fetch envelope around the
//! partitions (throttle time, error code, session id, topic arrays and names, tagged-field
//! counts) are written here for the versions served, 4 to 12. The test
//! `frames_match_the_copying_encoder` holds this byte for byte to `kafka-protocol`'s own
//! encoding of the same response at every one of them.
//!
//! A slice is sent for exactly the length the response announced, and never wrong bytes in
//! a whole frame: a file cut under the send makes `sendfile` stop short, and a file cut and
//! written again shows as a moved truncation generation (`Log::slice_is_current`), checked
//! after every slice is sent and before the frame's last byte goes. Either way the
//! connection is closed with the frame incomplete, and the client fetches again.

use std::sync::Arc;

use anyhow::{bail, ensure};
use bytes::BufMut;
use kafka_protocol::messages::{ApiKey, FetchResponse, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Encodable;
use streamlog::{FileSlice, Log};

/// The Fetch versions [`encode`] writes (those `apis/versions.rs` serves).
const VERSIONS: std::ops::RangeInclusive<i16> = 4..=12;

/// A partition's records left in their segment file.
#[derive(Debug)]
pub struct FileRecords {
    /// Index of the topic in the response's `responses`.
    pub topic: usize,
    /// Index of the partition in that topic's `partitions` (whose `records` is `None`
    /// until the frame is written).
    pub partition: usize,
    /// The log the slice was read from, to check it is still current.
    pub log: Arc<Log>,
    /// The batches.
    pub slice: FileSlice,
}

/// One piece of a response frame.
#[derive(Debug)]
enum Part {
    Bytes(Vec<u8>),
    File {
        log: Arc<Log>,
        slice: FileSlice,
        /// What is sent of the slice: all of it, or all but the last byte when that byte
        /// ends the frame (it is read and held back; see the module's docs).
        position: u64,
        len: u64,
    },
}

/// A response frame, length prefix included, as byte parts and file slices.
#[derive(Debug)]
pub struct Frame {
    parts: Vec<Part>,
}

impl Frame {
    /// The frame's size in bytes, length prefix included.
    pub fn len(&self) -> u64 {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Bytes(b) => b.len() as u64,
                Part::File { len, .. } => *len,
            })
            .sum()
    }
}

/// Encodes a Fetch response of `version` whose `files` partitions have their records in
/// segment files. Fails (and the caller copies instead) for a response this cannot frame:
/// another API, a version outside 4–12, fields this module does not write.
pub fn encode(
    correlation_id: i32,
    version: i16,
    body: &ResponseKind,
    files: &[FileRecords],
) -> anyhow::Result<Frame> {
    let ResponseKind::Fetch(body) = body else {
        bail!("only Fetch responses carry file records");
    };
    ensure!(
        VERSIONS.contains(&version),
        "Fetch v{version} is not framed here"
    );
    ensure!(
        body.unknown_tagged_fields.is_empty() && body.node_endpoints.is_empty(),
        "tagged fields in a Fetch response"
    );
    let flexible = version >= 12;
    let mut files: Vec<&FileRecords> = files.iter().collect();
    files.sort_by_key(|f| (f.topic, f.partition));
    let mut files = files.into_iter().peekable();
    let mut parts = Vec::new();
    let mut cur = Vec::with_capacity(256);
    cur.extend_from_slice(&[0; 4]);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut cur, ApiKey::Fetch.response_header_version(version))?;
    encode_envelope_start(&mut cur, version, body)?;
    for (ti, topic) in body.responses.iter().enumerate() {
        ensure!(
            topic.unknown_tagged_fields.is_empty(),
            "tagged fields in a Fetch response"
        );
        let name = topic.topic.as_bytes();
        if flexible {
            unsigned_varint(&mut cur, u32::try_from(name.len() + 1)?);
        } else {
            cur.put_i16(i16::try_from(name.len())?);
        }
        cur.put_slice(name);
        array_len(&mut cur, flexible, topic.partitions.len())?;
        for (pi, p) in topic.partitions.iter().enumerate() {
            let Some(file) = files.next_if(|f| (f.topic, f.partition) == (ti, pi)) else {
                p.encode(&mut cur, version)?;
                continue;
            };
            ensure!(
                p.records.is_none()
                    && p.diverging_epoch == Default::default()
                    && p.current_leader == Default::default()
                    && p.snapshot_id == Default::default()
                    && p.unknown_tagged_fields.is_empty(),
                "a file-backed partition with records or tagged fields"
            );
            // Its fields with null records, then (flexible) no tagged fields: cut both and
            // write the real records' length in their place.
            p.encode(&mut cur, version)?;
            let null: &[u8] = if flexible { &[0, 0] } else { &[0xff; 4] };
            ensure!(cur.ends_with(null), "unexpected PartitionData encoding");
            cur.truncate(cur.len() - null.len());
            let len = file.slice.len();
            if flexible {
                unsigned_varint(&mut cur, u32::try_from(len + 1)?);
            } else {
                cur.put_i32(i32::try_from(len)?);
            }
            parts.push(Part::Bytes(std::mem::take(&mut cur)));
            parts.push(Part::File {
                position: file.slice.position(),
                len,
                log: Arc::clone(&file.log),
                slice: file.slice.clone(),
            });
            if flexible {
                // The partition's tagged fields: none.
                unsigned_varint(&mut cur, 0);
            }
        }
        if flexible {
            unsigned_varint(&mut cur, 0);
        }
    }
    ensure!(files.next().is_none(), "file records for no partition");
    if flexible {
        unsigned_varint(&mut cur, 0);
    }
    parts.push(Part::Bytes(cur));
    let mut frame = Frame { parts };
    let len = i32::try_from(frame.len() - 4)?;
    if let Some(Part::Bytes(first)) = frame.parts.first_mut() {
        if let Some(prefix) = first.get_mut(..4) {
            prefix.copy_from_slice(&len.to_be_bytes());
        }
    }
    Ok(frame)
}

/// The Fetch response's fields before its topics, and the topic count.
fn encode_envelope_start(
    buf: &mut Vec<u8>,
    version: i16,
    body: &FetchResponse,
) -> anyhow::Result<()> {
    buf.put_i32(body.throttle_time_ms);
    if version >= 7 {
        buf.put_i16(body.error_code);
        buf.put_i32(body.session_id);
    } else {
        ensure!(body.session_id == 0, "a session id before Fetch v7");
    }
    array_len(buf, version >= 12, body.responses.len())
}

/// An array's length: `INT32`, or in flexible versions an `UNSIGNED_VARINT` of length + 1.
fn array_len(buf: &mut Vec<u8>, flexible: bool, n: usize) -> anyhow::Result<()> {
    if flexible {
        unsigned_varint(buf, u32::try_from(n + 1)?);
    } else {
        buf.put_i32(i32::try_from(n)?);
    }
    Ok(())
}

/// Kafka's `UNSIGNED_VARINT`: seven bits a byte, low first, the high bit set on all but the
/// last.
fn unsigned_varint(buf: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// Reads the file records into the response (the copying path, when a frame cannot be sent
/// by `sendfile`). Blocking: run it off the async workers. Fails when a log was truncated
/// under the read.
pub fn materialise(body: &mut ResponseKind, files: Vec<FileRecords>) -> Result<(), String> {
    let ResponseKind::Fetch(body) = body else {
        return Err("file records in a response other than Fetch".into());
    };
    for f in files {
        let bytes = f
            .slice
            .to_vec()
            .map_err(|e| format!("fetch read failed: {e}"))?;
        if !f.log.slice_is_current(&f.slice) {
            return Err("log truncated under a fetch".into());
        }
        let Some(p) = body
            .responses
            .get_mut(f.topic)
            .and_then(|t| t.partitions.get_mut(f.partition))
        else {
            return Err("file records for no partition".into());
        };
        p.records = Some(bytes.into());
    }
    Ok(())
}

#[cfg(target_os = "linux")]
pub use linux::send;

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileExt;
    use std::sync::atomic::{AtomicU64, Ordering};

    use tokio::io::{AsyncWriteExt, Interest};
    use tokio::net::TcpStream;

    use super::{Frame, Part};

    /// The most one `sendfile` call is asked for (Linux sends at most 0x7ffff000 bytes).
    const MAX_CHUNK: u64 = 0x7fff_f000;

    /// Writes `frame` to `sock`: its byte parts with `write`, its file slices with
    /// `sendfile`. The frame's last byte goes only after every slice was sent whole and is
    /// still current; otherwise this fails with the frame incomplete, and the caller closes
    /// the connection. The bytes sent from files are added to `sent_from_files` (before the
    /// last byte goes, so a client that has the response sees them counted).
    ///
    /// `sendfile` reads a page that is not cached on the calling worker thread, as Kafka's
    /// network threads do; a fetch is usually of bytes just written, and in the cache.
    pub async fn send(
        sock: &mut TcpStream,
        mut frame: Frame,
        sent_from_files: &AtomicU64,
    ) -> Result<(), String> {
        // The held-back byte still comes from a file.
        let mut from_files = hold_back_last_byte(&mut frame)?;
        let Some(Part::Bytes(last)) = frame.parts.pop() else {
            return Err("a frame ends with its bytes".into());
        };
        for part in &frame.parts {
            match part {
                Part::Bytes(b) => sock
                    .write_all(b)
                    .await
                    .map_err(|e| format!("write failed: {e}"))?,
                Part::File {
                    slice,
                    position,
                    len,
                    ..
                } => {
                    let Some(file) = slice.std_file() else {
                        return Err("a segment without an OS file in a sendfile frame".into());
                    };
                    send_file(sock, file, *position, *len)
                        .await
                        .map_err(|e| format!("sendfile failed: {e}"))?;
                    from_files += len;
                }
            }
        }
        for part in &frame.parts {
            if let Part::File { log, slice, .. } = part {
                if !log.slice_is_current(slice) {
                    return Err("log truncated under a fetch; closing before the frame ends".into());
                }
            }
        }
        sent_from_files.fetch_add(from_files, Ordering::Relaxed);
        sock.write_all(&last)
            .await
            .map_err(|e| format!("write failed: {e}"))
    }

    /// Makes the frame end with a byte part: when a file slice ends it (Fetch v4–v11 whose
    /// last partition has records), its last byte is read into a part of its own. Returns
    /// the bytes so read (0 or 1).
    fn hold_back_last_byte(frame: &mut Frame) -> Result<u64, String> {
        if let Some(Part::Bytes(b)) = frame.parts.last() {
            if !b.is_empty() {
                return Ok(0);
            }
            frame.parts.pop();
        }
        let Some(Part::File {
            slice,
            position,
            len,
            ..
        }) = frame.parts.last_mut()
        else {
            return Err("an empty frame".into());
        };
        let Some(file) = slice.std_file() else {
            return Err("a segment without an OS file in a sendfile frame".into());
        };
        let Some(last) = len.checked_sub(1) else {
            return Err("an empty file slice".into());
        };
        let mut byte = [0u8; 1];
        file.read_exact_at(&mut byte, *position + last)
            .map_err(|e| format!("fetch read failed: {e}"))?;
        *len = last;
        frame.parts.push(Part::Bytes(byte.to_vec()));
        Ok(1)
    }

    /// Sends `len` bytes of `file` from `position` to `sock`, waiting for the socket to be
    /// writable as needed. A file that ends before them is an error.
    async fn send_file(
        sock: &TcpStream,
        file: &std::fs::File,
        mut position: u64,
        len: u64,
    ) -> io::Result<()> {
        let end = position + len;
        while position < end {
            sock.writable().await?;
            let count = (end - position).min(MAX_CHUNK) as usize;
            let sent = sock.try_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(sock.as_fd(), file, Some(&mut position), count)
                    .map_err(io::Error::from)
            });
            match sent {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the segment file is shorter than the fetch read",
                    ))
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Without Linux's `sendfile` the broker never builds file frames (`Context::zero_copy` is
/// off); this is here so the server compiles.
#[cfg(not(target_os = "linux"))]
pub async fn send(
    _sock: &mut tokio::net::TcpStream,
    _frame: Frame,
    _sent_from_files: &std::sync::atomic::AtomicU64,
) -> Result<(), String> {
    Err("sendfile is only used on Linux".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apis::{fetch, Outcome};
    use crate::broker::{test_broker, Broker};
    use crate::codec;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use std::sync::atomic::{AtomicU64, Ordering};
    use streamlog::storage::TopicConfig;
    use streamlog::{Compression, OwnedRecord};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A broker with topics `a` (2 partitions, 3 batches in `a`-0, 1 in `a`-1) and `b` (1
    /// partition, empty).
    fn broker_with_data(dir: &std::path::Path) -> Arc<Broker> {
        broker_with_data_and(dir, |_| {})
    }

    fn broker_with_data_and(
        dir: &std::path::Path,
        tweak: impl FnOnce(&mut crate::config::BrokerConfig),
    ) -> Arc<Broker> {
        let broker = Arc::new(test_broker(dir, tweak));
        broker
            .storage
            .create_topic("a", 2, TopicConfig::new())
            .unwrap();
        broker
            .storage
            .create_topic("b", 1, TopicConfig::new())
            .unwrap();
        for (p, batches) in [(0, 3), (1, 1)] {
            let log = broker.log("a", p).unwrap();
            for i in 0..batches {
                let value = format!("value {i} of a-{p}");
                log.append_records(
                    &[OwnedRecord::new(0, Some(b"k"), Some(value.as_bytes()))],
                    Compression::None,
                )
                .unwrap();
            }
        }
        broker
    }

    /// Fetches of every partition (and an unknown topic) from offset 0, the last partition
    /// read being one with data: a frame of v4–v11 then ends with file bytes.
    fn request(max_bytes: i32) -> FetchRequest {
        let topic = |name: &str, parts: &[i32]| {
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(name.into())))
                .with_partitions(
                    parts
                        .iter()
                        .map(|&p| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(0)
                                .with_partition_max_bytes(max_bytes)
                        })
                        .collect(),
                )
        };
        FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![
                topic("b", &[0]),
                topic("nope", &[0]),
                topic("a", &[1, 0]),
            ])
    }

    /// The frame's bytes, its file parts read.
    fn frame_bytes(frame: &Frame) -> Vec<u8> {
        let mut out = Vec::new();
        for part in &frame.parts {
            match part {
                Part::Bytes(b) => out.extend_from_slice(b),
                Part::File { slice, .. } => out.extend_from_slice(&slice.to_vec().unwrap()),
            }
        }
        out
    }

    async fn from_files(broker: &Arc<Broker>, version: i16, req: FetchRequest) -> Frame {
        match fetch::handle(broker, req, version, true).await {
            Outcome::RespondWithFiles(body, files) => {
                assert!(!files.is_empty());
                encode(7, version, &body, &files).unwrap()
            }
            other => panic!("v{version}: no file records: {other:?}"),
        }
    }

    async fn copied(broker: &Arc<Broker>, version: i16, req: FetchRequest) -> Vec<u8> {
        match fetch::handle(broker, req, version, false).await {
            Outcome::Respond(body) => codec::encode_response(ApiKey::Fetch, version, 7, &body)
                .unwrap()
                .to_vec(),
            other => panic!("v{version}: {other:?}"),
        }
    }

    /// At every Fetch version served, a frame built from file slices is byte for byte what
    /// `kafka-protocol` encodes for the same fetch read into memory: whole and partial reads,
    /// empty and unknown partitions.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frames_match_the_copying_encoder() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker_with_data(dir.path());
        for version in VERSIONS {
            // 1 byte a partition: one batch each (Kafka's "at least one batch").
            for max_bytes in [1 << 20, 1] {
                let frame = from_files(&broker, version, request(max_bytes)).await;
                let expected = copied(&broker, version, request(max_bytes)).await;
                assert_eq!(frame.len(), expected.len() as u64, "v{version}");
                assert_eq!(frame_bytes(&frame), expected, "v{version} max {max_bytes}");
            }
        }
    }

    /// A connected pair of loopback sockets.
    async fn socket_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (accepted.unwrap().0, client.unwrap())
    }

    /// Everything the peer sends until it closes (bounded: the sender is done or failed).
    async fn read_to_end(mut sock: TcpStream) -> Vec<u8> {
        let mut got = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(60),
            sock.read_to_end(&mut got),
        )
        .await
        .expect("the sender closes")
        .unwrap();
        got
    }

    /// `send` puts on the wire exactly the frame's bytes, at a version whose frame ends
    /// with a file slice (v11) and one whose frame ends with tagged fields (v12).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn send_writes_the_frame() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker_with_data(dir.path());
        for version in [11, 12] {
            let frame = from_files(&broker, version, request(1 << 20)).await;
            let expected = frame_bytes(&frame);
            let (mut server, client) = socket_pair().await;
            let reader = tokio::spawn(read_to_end(client));
            let sent = AtomicU64::new(0);
            send(&mut server, frame, &sent).await.unwrap();
            drop(server);
            assert!(sent.load(Ordering::Relaxed) > 0);
            assert_eq!(reader.await.unwrap(), expected, "v{version}");
        }
    }

    /// A log truncated after the read and before the send: cut shorter (sendfile stops
    /// short), or cut and written again to the same length (the bytes differ; only the
    /// truncation generation tells). Either way `send` fails before the frame's last byte,
    /// so the client never receives a whole frame with wrong records.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_truncation_under_the_send_never_completes_the_frame() {
        for rewrite in [false, true] {
            for version in [11, 12] {
                let dir = tempfile::tempdir().unwrap();
                let broker = broker_with_data(dir.path());
                let frame = from_files(&broker, version, request(1 << 20)).await;
                let total = frame.len() as usize;
                let log = broker.log("a", 0).unwrap();
                log.truncate_to(1).unwrap();
                if rewrite {
                    // Two batches as long as the two cut ("value N" → "VALUE N").
                    for i in 1..3 {
                        let value = format!("VALUE {i} of a-0");
                        log.append_records(
                            &[OwnedRecord::new(0, Some(b"k"), Some(value.as_bytes()))],
                            Compression::None,
                        )
                        .unwrap();
                    }
                }
                let (mut server, client) = socket_pair().await;
                let reader = tokio::spawn(read_to_end(client));
                let result = send(&mut server, frame, &AtomicU64::new(0)).await;
                drop(server);
                let got = reader.await.unwrap();
                assert!(
                    result.is_err(),
                    "v{version} rewrite {rewrite}: the send must fail"
                );
                assert!(
                    got.len() < total,
                    "v{version} rewrite {rewrite}: {} of {total} bytes reached the client",
                    got.len()
                );
            }
        }
    }

    /// One request over `sock` and its response frame, length prefix included.
    async fn round_trip(sock: &mut TcpStream, version: i16, req: &FetchRequest) -> Vec<u8> {
        use kafka_protocol::messages::RequestHeader;
        let mut buf = Vec::new();
        RequestHeader::default()
            .with_request_api_key(ApiKey::Fetch as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .encode(&mut buf, ApiKey::Fetch.request_header_version(version))
            .unwrap();
        req.encode(&mut buf, version).unwrap();
        let exchange = async {
            sock.write_all(&(buf.len() as i32).to_be_bytes())
                .await
                .unwrap();
            sock.write_all(&buf).await.unwrap();
            let mut len = [0u8; 4];
            sock.read_exact(&mut len).await.unwrap();
            let mut frame = len.to_vec();
            frame.resize(4 + i32::from_be_bytes(len) as usize, 0);
            sock.read_exact(&mut frame[4..]).await.unwrap();
            frame
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), exchange)
            .await
            .expect("the broker answers")
    }

    /// Through a real plaintext listener, Fetch records go by `sendfile` (the broker's
    /// counters: every record byte sent from files, none copied) and the response is the
    /// copying path's byte for byte; with `fetch_sendfile = false` the same fetches are
    /// copied.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn plaintext_fetches_use_sendfile_unless_turned_off() {
        for sendfile in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let broker = broker_with_data_and(dir.path(), |c| c.fetch_sendfile = sendfile);
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(crate::server::serve(listener, Arc::clone(&broker)));
            let mut sock = TcpStream::connect(addr).await.unwrap();
            let m = &broker.metrics;
            let counters = || {
                (
                    m.fetch_sendfile_bytes.load(Ordering::Relaxed),
                    m.fetch_copied_bytes.load(Ordering::Relaxed),
                    m.bytes_fetched.load(Ordering::Relaxed),
                )
            };
            for version in [4, 11, 12] {
                let (sent0, copied0, fetched0) = counters();
                let got = round_trip(&mut sock, version, &request(1 << 20)).await;
                let (sent1, copied1, fetched1) = counters();
                let records = fetched1 - fetched0;
                assert!(records > 0);
                if sendfile {
                    assert_eq!(
                        (sent1 - sent0, copied1 - copied0),
                        (records, 0),
                        "v{version}"
                    );
                } else {
                    assert_eq!(
                        (sent1 - sent0, copied1 - copied0),
                        (0, records),
                        "v{version}"
                    );
                }
                let expected = copied(&broker, version, request(1 << 20)).await;
                assert_eq!(got, expected, "v{version} sendfile {sendfile}");
            }
            server.abort();
        }
    }
}
