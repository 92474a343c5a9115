//! The Kafka listener: accepts connections up to `max_connections`, reads length-prefixed
//! requests under a size limit and deadlines, answers them in order, one at a time per
//! connection (as Kafka does: a connection's next request is read after the previous
//! response is written, so a client cannot queue unbounded work). A response must be written
//! within `connections.max.idle.ms`. On a plaintext connection Fetch records go from the
//! segment files to the socket with `sendfile` (`zero_copy.rs`).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{timeout, timeout_at, Instant};
use tracing::Instrument;

use crate::apis::{self, Outcome};
use crate::broker::Broker;
use crate::codec::{self, Decoded};
use crate::request_memory::{Lease, RequestMemory};
use crate::sasl;
use crate::zero_copy;
use kafka_protocol::messages::{
    RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse,
};

/// Accepts connections until the task is dropped.
pub async fn serve(listener: TcpListener, broker: Arc<Broker>) {
    let tls = match broker.config.tls.as_ref().map(|t| t.acceptor()).transpose() {
        Ok(tls) => tls,
        Err(e) => {
            // Checked when the config was read; the files changed since.
            tracing::error!(error = %e, "TLS configuration unusable; not serving");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(broker.config.max_connections));
    let memory = RequestMemory::new(Arc::clone(&broker));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: the next accept may succeed.
                tracing::warn!(error = %e, "accept failed");
                tokio::task::yield_now().await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            broker
                .metrics
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, limit = broker.config.max_connections, "connection limit reached; closing");
            drop(stream);
            continue;
        };
        let broker = Arc::clone(&broker);
        let memory = Arc::clone(&memory);
        let tls = tls.clone();
        tokio::spawn(
            async move {
                broker.metrics.connections.fetch_add(1, Ordering::Relaxed);
                let _ = stream.set_nodelay(true);
                let served = match tls {
                    None => connection(stream, peer, &broker, &memory, None).await,
                    // The handshake is bounded like a request's read.
                    Some(tls) => {
                        match timeout(broker.config.request_read_timeout(), tls.accept(stream))
                            .await
                        {
                            Ok(Ok(stream)) => {
                                let principal = crate::tls::client_principal(stream.get_ref().1);
                                connection(stream, peer, &broker, &memory, principal).await
                            }
                            Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
                            Err(_) => Err("TLS handshake not completed in time".into()),
                        }
                    }
                };
                match served {
                    Ok(()) => tracing::debug!("connection closed"),
                    Err(reason) => tracing::info!(%reason, "connection closed"),
                }
                broker.metrics.connections.fetch_sub(1, Ordering::Relaxed);
                drop(slot);
            }
            .instrument(tracing::info_span!("conn", %peer)),
        );
    }
}

/// A connection's byte stream: plaintext TCP, whose socket `sendfile` can write to, or TLS.
trait Stream: AsyncRead + AsyncWrite + Unpin {
    /// The socket, when bytes written to it reach the client as they are.
    fn plain_tcp(&mut self) -> Option<&mut TcpStream> {
        None
    }
}

impl Stream for TcpStream {
    fn plain_tcp(&mut self) -> Option<&mut TcpStream> {
        Some(self)
    }
}

impl Stream for tokio_rustls::server::TlsStream<TcpStream> {}

/// A response ready to write.
enum Reply {
    Bytes(Bytes),
    /// A Fetch response with records still in segment files.
    Frame(zero_copy::Frame),
}

/// Serves one connection; `Err` says why it was closed early.
async fn connection<S: Stream>(
    mut stream: S,
    peer: SocketAddr,
    broker: &Arc<Broker>,
    memory: &Arc<RequestMemory>,
    tls_principal: Option<String>,
) -> Result<(), String> {
    let mut session = sasl::Session::new(broker.config.sasl.is_some());
    let zero_copy =
        cfg!(target_os = "linux") && broker.config.fetch_sendfile && stream.plain_tcp().is_some();
    loop {
        let mut close_after: Option<String> = None;
        // The lease holds the request's bytes in the pool until its response is written.
        let Some((frame, _lease)) = read_frame(&mut stream, broker, memory).await? else {
            return Ok(());
        };
        broker
            .metrics
            .bytes_in
            .fetch_add(frame.len() as u64 + 4, Ordering::Relaxed);
        let response = match codec::decode_request(frame) {
            Decoded::Request {
                header,
                api_key,
                body,
            } => {
                let version = header.request_api_version;
                let name = api_name(api_key);
                let ctx = apis::Context {
                    client_id: header
                        .client_id
                        .as_ref()
                        .map(|c| c.as_str().to_string())
                        .unwrap_or_default(),
                    client_host: peer.ip().to_string(),
                    principal: session.principal(tls_principal.as_deref()),
                    zero_copy,
                };
                let outcome = match *body {
                    RequestKind::SaslHandshake(r) => {
                        let (code, mechanisms) =
                            session.handshake(broker.config.sasl.as_ref(), r.mechanism.as_str());
                        Outcome::respond(ResponseKind::SaslHandshake(
                            SaslHandshakeResponse::default()
                                .with_error_code(code)
                                .with_mechanisms(
                                    mechanisms.into_iter().map(apis::str_bytes).collect(),
                                ),
                        ))
                    }
                    RequestKind::SaslAuthenticate(r) => {
                        let (code, message, bytes) =
                            session.authenticate(broker.sasl.as_ref(), &r.auth_bytes);
                        if code != 0 {
                            close_after = Some("SASL authentication failed".into());
                        }
                        Outcome::respond(ResponseKind::SaslAuthenticate(
                            SaslAuthenticateResponse::default()
                                .with_error_code(code)
                                .with_error_message(message.map(apis::str_bytes))
                                .with_auth_bytes(Bytes::from(bytes)),
                        ))
                    }
                    RequestKind::ApiVersions(_) => {
                        apis::handle(broker, &ctx, api_key, version, *body).await
                    }
                    _ if !session.may_serve() => {
                        Outcome::Close(format!("{name} before SASL authentication"))
                    }
                    _ => apis::handle(broker, &ctx, api_key, version, *body).await,
                };
                match outcome {
                    Outcome::Respond(body) => {
                        let code = apis::error_code(&body);
                        tracing::debug!(api = name, version, code, "answered");
                        broker.metrics.request(name, code);
                        Reply::Bytes(
                            codec::encode_response(api_key, version, header.correlation_id, &body)
                                .map_err(|e| format!("{name} v{version}: encoding failed: {e}"))?,
                        )
                    }
                    Outcome::RespondWithFiles(mut body, files) => {
                        let code = apis::error_code(&body);
                        tracing::debug!(api = name, version, code, "answered from files");
                        broker.metrics.request(name, code);
                        match zero_copy::encode(header.correlation_id, version, &body, &files) {
                            Ok(frame) => Reply::Frame(frame),
                            Err(e) => {
                                // Not expected (every Fetch version served is framed): copy.
                                tracing::warn!(error = %e, "cannot frame a fetch from files; copying");
                                let copied = tokio::task::spawn_blocking(move || {
                                    zero_copy::materialise(&mut body, files).map(|()| body)
                                })
                                .await
                                .map_err(|e| format!("fetch read failed: {e}"))??;
                                Reply::Bytes(
                                    codec::encode_response(
                                        api_key,
                                        version,
                                        header.correlation_id,
                                        &copied,
                                    )
                                    .map_err(|e| {
                                        format!("{name} v{version}: encoding failed: {e}")
                                    })?,
                                )
                            }
                        }
                    }
                    Outcome::NoResponse => {
                        broker.metrics.request(name, 0);
                        continue;
                    }
                    Outcome::Close(reason) => {
                        broker.metrics.request(name, -1);
                        return Err(reason);
                    }
                }
            }
            Decoded::ApiVersionsFallback { correlation_id } => {
                broker.metrics.request("ApiVersions", 35);
                Reply::Bytes(
                    codec::api_versions_fallback(correlation_id).map_err(|e| e.to_string())?,
                )
            }
            Decoded::Reject { reason } => return Err(reason),
        };
        // A client that stops reading its responses is closed as an idle one would be.
        timeout(
            broker.config.idle_timeout(),
            write_reply(&mut stream, response, broker),
        )
        .await
        .map_err(|_| "response not taken in time".to_string())??;
        if let Some(reason) = close_after {
            return Err(reason);
        }
    }
}

/// Writes one response: bytes as they are, a frame from files by `sendfile` (only plaintext
/// TCP connections are handed frames).
async fn write_reply<S: Stream>(
    stream: &mut S,
    reply: Reply,
    broker: &Broker,
) -> Result<(), String> {
    let metrics = &broker.metrics;
    match reply {
        Reply::Bytes(bytes) => {
            metrics
                .bytes_out
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            stream
                .write_all(&bytes)
                .await
                .map_err(|e| format!("write failed: {e}"))?;
        }
        Reply::Frame(frame) => {
            let Some(tcp) = stream.plain_tcp() else {
                return Err("a sendfile frame for a stream that is not plain TCP".into());
            };
            metrics.bytes_out.fetch_add(frame.len(), Ordering::Relaxed);
            zero_copy::send(tcp, frame, &metrics.fetch_sendfile_bytes).await?;
        }
    }
    // A TLS stream holds the encrypted record until flushed.
    stream
        .flush()
        .await
        .map_err(|e| format!("write failed: {e}"))
}

/// The first piece of a request's buffer, and the least it grows by.
const FIRST_CHUNK: usize = 16 * 1024;

/// Reads one request frame and the pool bytes its buffer holds: `Ok(None)` on a clean end
/// of stream between requests.
async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    broker: &Broker,
    memory: &Arc<RequestMemory>,
) -> Result<Option<(Bytes, Lease)>, String> {
    let config = &broker.config;
    let mut len = [0u8; 4];
    // Idle between requests: connections.max.idle.ms.
    match timeout(config.idle_timeout(), stream.read(&mut len[..1])).await {
        Err(_) => return Err("idle timeout".into()),
        Ok(Ok(0)) => return Ok(None),
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(format!("read failed: {e}")),
    }
    // The rest of the request must arrive within the slow-request deadline.
    let deadline = Instant::now() + config.request_read_timeout();
    match timeout_at(deadline, stream.read_exact(&mut len[1..])).await {
        Err(_) => return Err("request not received in time".into()),
        Ok(Err(e)) => return Err(format!("truncated length prefix: {e}")),
        Ok(Ok(_)) => {}
    }
    let size = i32::from_be_bytes(len);
    if size < 0 || size as u32 > config.socket_request_max_bytes {
        return Err(format!(
            "request of {size} bytes exceeds socket.request.max.bytes {}",
            config.socket_request_max_bytes
        ));
    }
    let size = size as usize;
    // Grown as bytes arrive, not allocated from the prefix, each growth taken from the pool
    // first: a client that announces a large request and sends little holds little.
    let mut lease = memory.lease();
    let mut buf: Vec<u8> = Vec::new();
    while buf.len() < size {
        if buf.len() == buf.capacity() {
            let target = (buf.capacity() * 2).max(FIRST_CHUNK).min(size);
            let more = target - lease.bytes();
            match timeout_at(deadline, lease.grow(more)).await {
                Err(_) => return Err("request not received in time (waiting for memory)".into()),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(())) => {}
            }
            buf.reserve_exact(target - buf.len());
        }
        let room = buf.capacity().min(size) - buf.len();
        let mut chunk = (&mut *stream).take(room as u64);
        match timeout_at(deadline, chunk.read_buf(&mut buf)).await {
            Err(_) => return Err("request not received in time".into()),
            Ok(Err(e)) => return Err(format!("read failed: {e}")),
            Ok(Ok(0)) => {
                return Err(format!(
                    "request truncated at {} of {size} bytes",
                    buf.len()
                ))
            }
            Ok(Ok(_)) => {}
        }
    }
    Ok(Some((Bytes::from(buf), lease)))
}

fn api_name(api_key: kafka_protocol::messages::ApiKey) -> &'static str {
    use kafka_protocol::messages::ApiKey as K;
    match api_key {
        K::Produce => "Produce",
        K::Fetch => "Fetch",
        K::ListOffsets => "ListOffsets",
        K::Metadata => "Metadata",
        K::FindCoordinator => "FindCoordinator",
        K::ApiVersions => "ApiVersions",
        K::CreateTopics => "CreateTopics",
        K::DeleteTopics => "DeleteTopics",
        K::InitProducerId => "InitProducerId",
        K::DescribeConfigs => "DescribeConfigs",
        K::CreatePartitions => "CreatePartitions",
        K::DescribeCluster => "DescribeCluster",
        K::AlterConfigs => "AlterConfigs",
        K::IncrementalAlterConfigs => "IncrementalAlterConfigs",
        K::DeleteRecords => "DeleteRecords",
        K::OffsetForLeaderEpoch => "OffsetForLeaderEpoch",
        K::JoinGroup => "JoinGroup",
        K::SyncGroup => "SyncGroup",
        K::Heartbeat => "Heartbeat",
        K::LeaveGroup => "LeaveGroup",
        K::OffsetCommit => "OffsetCommit",
        K::OffsetFetch => "OffsetFetch",
        K::DescribeGroups => "DescribeGroups",
        K::ListGroups => "ListGroups",
        K::DeleteGroups => "DeleteGroups",
        K::OffsetDelete => "OffsetDelete",
        K::TxnOffsetCommit => "TxnOffsetCommit",
        K::AddOffsetsToTxn => "AddOffsetsToTxn",
        K::SaslHandshake => "SaslHandshake",
        K::SaslAuthenticate => "SaslAuthenticate",
        K::DescribeAcls => "DescribeAcls",
        K::CreateAcls => "CreateAcls",
        K::DeleteAcls => "DeleteAcls",
        _ => "Other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::net::TcpStream;

    const CAP: u64 = 1024 * 1024;

    /// Waits (bounded) until `cond` holds, re-checking as the broker makes progress.
    async fn until(what: &str, mut cond: impl FnMut() -> bool) {
        let check = async {
            while !cond() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(60), check)
            .await
            .is_err()
        {
            panic!("timed out waiting until {what}");
        }
    }

    /// ApiVersions v0 from a fresh connection; the broker answers it.
    async fn well_behaved(addr: SocketAddr) {
        let mut s = TcpStream::connect(addr).await.unwrap();
        // key 18, version 0, correlation id 7, null client id.
        let req = [0u8, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff];
        s.write_all(&(req.len() as i32).to_be_bytes())
            .await
            .unwrap();
        s.write_all(&req).await.unwrap();
        let mut size = [0u8; 4];
        s.read_exact(&mut size).await.unwrap();
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        s.read_exact(&mut body).await.unwrap();
        assert_eq!(&body[..4], &7i32.to_be_bytes(), "correlation id");
    }

    /// `queued_max_request_bytes` holds across connections: clients announcing the largest
    /// request and trickling bytes hold only what they sent and do not stop a well-behaved
    /// client; clients sending more than the pool wait for it, never past it, and their
    /// read deadline gives the memory back. Asserted on the broker's own accounting.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn request_memory_is_bounded_across_connections() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Arc::new(crate::broker::test_broker(dir.path(), |c| {
            c.socket_request_max_bytes = CAP as u32;
            c.queued_max_request_bytes = CAP;
            c.request_read_timeout_ms = 5_000;
        }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener, Arc::clone(&broker)));
        let m = &broker.metrics;
        let queued = || m.queued_request_bytes.load(Ordering::Relaxed);
        let peak = || m.queued_request_bytes_peak.load(Ordering::Relaxed);

        // Trickling: 16 connections announce 1 MiB each and send 1 KiB.
        let mut trickling = Vec::new();
        for _ in 0..16 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(&(CAP as i32).to_be_bytes()).await.unwrap();
            s.write_all(&[0u8; 1024]).await.unwrap();
            trickling.push(s);
        }
        let first = 16 * FIRST_CHUNK as u64;
        until("the trickling requests are being read", || {
            queued() == first
        })
        .await;
        well_behaved(addr).await;
        assert!(peak() <= first + 64, "peak {} for 16 KiB sent", peak());

        // Flooding: 4 connections send almost all of 1 MiB each; together with the trickling
        // ones that is far over the pool, so some wait for memory.
        let mut flooding = Vec::new();
        for _ in 0..4 {
            flooding.push(tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await.unwrap();
                let _ = s.write_all(&(CAP as i32).to_be_bytes()).await;
                let _ = s.write_all(&vec![0u8; CAP as usize - 1024]).await;
                s
            }));
        }
        // Stuck: whatever the next growth waits for (at most half a request) is not there.
        until("the pool is exhausted", || queued() > CAP - CAP / 2).await;
        assert!(peak() <= CAP, "peak {} over the pool {CAP}", peak());

        // The read deadline closes the slow connections and gives their bytes back.
        until("the slow requests' memory is returned", || queued() == 0).await;
        well_behaved(addr).await;
        assert!(peak() <= CAP, "peak {} over the pool {CAP}", peak());
        for f in flooding {
            drop(f.await.unwrap());
        }
        drop(trickling);
        server.abort();
    }
}
