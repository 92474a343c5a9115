//! The Kafka listener: accepts connections up to `max_connections`, reads length-prefixed
//! requests under a size limit and deadlines, answers them in order, one at a time per
//! connection (as Kafka does: a connection's next request is read after the previous
//! response is written, so a client cannot queue unbounded work).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::{timeout, timeout_at, Instant};
use tracing::Instrument;

use crate::apis::{self, Outcome};
use crate::broker::Broker;
use crate::codec::{self, Decoded};
use crate::sasl;
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
        let tls = tls.clone();
        tokio::spawn(
            async move {
                broker.metrics.connections.fetch_add(1, Ordering::Relaxed);
                let _ = stream.set_nodelay(true);
                let served = match tls {
                    None => connection(stream, peer, &broker, None).await,
                    // The handshake is bounded like a request's read.
                    Some(tls) => {
                        match timeout(broker.config.request_read_timeout(), tls.accept(stream))
                            .await
                        {
                            Ok(Ok(stream)) => {
                                let principal = crate::tls::client_principal(stream.get_ref().1);
                                connection(stream, peer, &broker, principal).await
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

/// Serves one connection; `Err` says why it was closed early.
async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    broker: &Arc<Broker>,
    tls_principal: Option<String>,
) -> Result<(), String> {
    let mut session = sasl::Session::new(broker.config.sasl.is_some());
    loop {
        let mut close_after: Option<String> = None;
        let Some(frame) = read_frame(&mut stream, broker).await? else {
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
                        codec::encode_response(api_key, version, header.correlation_id, &body)
                            .map_err(|e| format!("{name} v{version}: encoding failed: {e}"))?
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
                codec::api_versions_fallback(correlation_id).map_err(|e| e.to_string())?
            }
            Decoded::Reject { reason } => return Err(reason),
        };
        broker
            .metrics
            .bytes_out
            .fetch_add(response.len() as u64, Ordering::Relaxed);
        stream
            .write_all(&response)
            .await
            .map_err(|e| format!("write failed: {e}"))?;
        // A TLS stream holds the encrypted record until flushed.
        stream
            .flush()
            .await
            .map_err(|e| format!("write failed: {e}"))?;
        if let Some(reason) = close_after {
            return Err(reason);
        }
    }
}

/// Reads one request frame: `Ok(None)` on a clean end of stream between requests.
async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    broker: &Broker,
) -> Result<Option<Bytes>, String> {
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
    // Grown as bytes arrive, not allocated from the prefix: a client that announces a large
    // request and sends little costs little memory.
    let mut buf = Vec::new();
    let mut body = (&mut *stream).take(size as u64);
    match timeout_at(deadline, body.read_to_end(&mut buf)).await {
        Err(_) => Err("request not received in time".into()),
        Ok(Err(e)) => Err(format!("read failed: {e}")),
        Ok(Ok(n)) if n < size as usize => Err(format!("request truncated at {n} of {size} bytes")),
        Ok(Ok(_)) => Ok(Some(Bytes::from(buf))),
    }
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
