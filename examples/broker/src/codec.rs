//! Kafka's framing: a request is a 4-byte big-endian length, a request header and a body; a
//! response is a length, a response header (the request's correlation id) and a body.
//! `kafka-protocol` decodes and encodes headers and bodies; record batches inside them stay
//! opaque `Bytes`, never decoded here.
//!
//! What a malformed or unsupported request gets is Kafka's answer: an ApiVersions request at
//! a version the broker does not know is answered with a v0 response carrying
//! UNSUPPORTED_VERSION and the supported versions (clients retry with one of them); any other
//! unknown API key or version, or bytes that do not decode, close the connection.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use kafka_protocol::ResponseError;

use crate::apis::versions;

/// One request frame, decoded as far as the broker can.
#[derive(Debug)]
pub enum Decoded {
    /// A request of a supported API at a supported version.
    Request {
        /// The decoded header.
        header: RequestHeader,
        /// The API.
        api_key: ApiKey,
        /// The decoded body (boxed: request bodies are large).
        body: Box<RequestKind>,
    },
    /// ApiVersions at a version above the supported ones: answer with
    /// [`api_versions_fallback`].
    ApiVersionsFallback {
        /// The request's correlation id.
        correlation_id: i32,
    },
    /// Anything else: Kafka closes the connection.
    Reject {
        /// Why, for the log.
        reason: String,
    },
}

/// Decodes one request frame (the bytes after the length prefix).
pub fn decode_request(mut frame: Bytes) -> Decoded {
    let reject = |reason: String| Decoded::Reject { reason };
    // api_key (i16), api_version (i16), correlation_id (i32): the fixed start of every
    // request header version.
    let Some(fixed) = frame.get(..8) else {
        return reject(format!("request of {} bytes has no header", frame.len()));
    };
    let key = i16::from_be_bytes([fixed[0], fixed[1]]);
    let version = i16::from_be_bytes([fixed[2], fixed[3]]);
    let correlation_id = i32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    let Ok(api_key) = ApiKey::try_from(key) else {
        return reject(format!("unknown API key {key}"));
    };
    let Some(range) = versions::supported(api_key) else {
        return reject(format!("API {api_key:?} is not served by this broker"));
    };
    if version < range.min || version > range.max {
        if api_key == ApiKey::ApiVersions && version > range.max {
            return Decoded::ApiVersionsFallback { correlation_id };
        }
        return reject(format!("{api_key:?} v{version} is not supported"));
    }
    let header = match RequestHeader::decode(&mut frame, api_key.request_header_version(version)) {
        Ok(h) => h,
        Err(e) => return reject(format!("{api_key:?} v{version}: bad header: {e}")),
    };
    match RequestKind::decode(api_key, &mut frame, version) {
        Ok(body) => Decoded::Request {
            header,
            api_key,
            body: Box::new(body),
        },
        Err(e) => reject(format!("{api_key:?} v{version}: bad body: {e}")),
    }
}

/// Encodes a response frame, length prefix included.
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> anyhow::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, api_key.response_header_version(version))?;
    body.encode(&mut buf, version)?;
    finish(buf)
}

/// The v0 ApiVersions response Kafka sends to an ApiVersions request at a version it does not
/// know: UNSUPPORTED_VERSION and the supported ranges.
pub fn api_versions_fallback(correlation_id: i32) -> anyhow::Result<Bytes> {
    let body = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(versions::api_versions());
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0);
    // ApiVersions responses always use header v0, whatever the request's version.
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, 0)?;
    body.encode(&mut buf, 0)?;
    finish(buf)
}

fn finish(mut buf: BytesMut) -> anyhow::Result<Bytes> {
    let len = i32::try_from(buf.len() - 4)?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::StrBytes;

    fn frame(api_key: ApiKey, version: i16, body: &impl Encodable) -> Bytes {
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("test")))
            .encode(&mut buf, api_key.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn supported_request_decodes() {
        let f = frame(ApiKey::Metadata, 9, &MetadataRequest::default());
        match decode_request(f) {
            Decoded::Request {
                header, api_key, ..
            } => {
                assert_eq!(api_key, ApiKey::Metadata);
                assert_eq!(header.correlation_id, 7);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn api_versions_above_range_falls_back_to_v0() {
        let mut f =
            BytesMut::from(&frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())[..]);
        f[2..4].copy_from_slice(&99i16.to_be_bytes());
        let Decoded::ApiVersionsFallback { correlation_id } = decode_request(f.freeze()) else {
            panic!("no fallback");
        };
        let bytes = api_versions_fallback(correlation_id).unwrap();
        let mut body = bytes.slice(4..);
        let header = ResponseHeader::decode(&mut body, 0).unwrap();
        assert_eq!(header.correlation_id, 7);
        let resp = ApiVersionsResponse::decode(&mut body, 0).unwrap();
        assert_eq!(resp.error_code, ResponseError::UnsupportedVersion.code());
        assert!(resp
            .api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::Produce as i16));
    }

    #[test]
    fn unknown_keys_versions_and_short_frames_are_rejected() {
        let mut f = BytesMut::from(&frame(ApiKey::Metadata, 9, &MetadataRequest::default())[..]);
        f[0..2].copy_from_slice(&999i16.to_be_bytes());
        assert!(matches!(decode_request(f.freeze()), Decoded::Reject { .. }));
        let mut f = BytesMut::from(&frame(ApiKey::Metadata, 9, &MetadataRequest::default())[..]);
        f[2..4].copy_from_slice(&99i16.to_be_bytes());
        assert!(matches!(decode_request(f.freeze()), Decoded::Reject { .. }));
        assert!(matches!(
            decode_request(Bytes::from_static(&[0, 3, 0])),
            Decoded::Reject { .. }
        ));
        let f = frame(ApiKey::Metadata, 9, &MetadataRequest::default());
        assert!(matches!(
            decode_request(f.slice(..f.len() - 1)),
            Decoded::Reject { .. }
        ));
    }
}

/// splitmix64, the seeded generator every test outside the library shares.
#[cfg(test)]
#[path = "../../../tests/it/common/rng.rs"]
mod test_rng;

#[cfg(test)]
mod garbage {
    use super::*;

    /// One seed drives every byte.
    use super::test_rng::Rng;

    /// Valid headers of every served API and version followed by random bodies: each is a
    /// request or a rejection, never a panic or an abort.
    #[test]
    fn random_bodies_after_valid_headers_never_panic() {
        let seed = std::env::var("STREAMLOG_SIM_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5EED_u64);
        println!("seed {seed}");
        let mut rng = Rng(seed);
        for (api_key, version) in versions::all() {
            for _ in 0..300 {
                let mut buf = BytesMut::new();
                RequestHeader::default()
                    .with_request_api_key(api_key as i16)
                    .with_request_api_version(version)
                    .with_correlation_id(1)
                    .encode(&mut buf, api_key.request_header_version(version))
                    .unwrap();
                let len = (rng.next() % 64) as usize;
                for _ in 0..len {
                    buf.put_u8(rng.next() as u8);
                }
                let _ = decode_request(buf.freeze());
            }
        }
    }
}
