//! The APIs this broker serves and their version ranges: what ApiVersions advertises and what
//! the codec accepts. Adding an API is a row here, a match arm in `apis::handle`, and a
//! handler.
//!
//! Ranges stop below the versions that name topics by id (Produce v13, Fetch v13,
//! DeleteTopics v6, Metadata v10+, OffsetCommit v10, OffsetFetch v10; `kafka-protocol` 0.18
//! cannot decode the last two either), because streamlog's storage names topics only by
//! name, and below transaction version 2 (TxnOffsetCommit v4+, AddOffsetsToTxn v4+, EndTxn
//! v4+). OffsetFetch v9's member id and epoch are KIP-848 consumer-group fields: the groups
//! here are classic, whose offset fetches Kafka does not check against members. Clients
//! negotiate down to these.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::VersionRange;

/// `(API, min version, max version)` for every API served.
const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 9),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 6),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::TxnOffsetCommit, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    // v0's handshake is followed by raw SASL tokens outside Kafka framing: not served.
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
];

/// The versions of `api_key` this broker serves, if it serves it.
pub fn supported(api_key: ApiKey) -> Option<VersionRange> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == api_key)
        .map(|&(_, min, max)| VersionRange { min, max })
}

/// The ApiVersions response's list.
pub fn api_versions() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|&(k, min, max)| {
            ApiVersion::default()
                .with_api_key(k as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

/// Every served `(API, version)` pair (for tests that exercise each one).
#[cfg(test)]
pub fn all() -> impl Iterator<Item = (ApiKey, i16)> {
    SUPPORTED
        .iter()
        .flat_map(|&(k, min, max)| (min..=max).map(move |v| (k, v)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::Message;

    #[test]
    fn ranges_lie_within_what_kafka_protocol_can_decode() {
        for &(k, min, max) in SUPPORTED {
            let lib = k.valid_versions();
            assert!(
                min >= lib.min && max <= lib.max,
                "{k:?} {min}..{max} vs {lib}"
            );
        }
        assert_eq!(
            supported(ApiKey::ApiVersions).unwrap().max,
            kafka_protocol::messages::ApiVersionsRequest::VERSIONS.max
        );
    }
}
