//! The `group_records` fuzz target's routine, shared with the corpus replay test
//! (`fuzz_corpus_group_records`): the first byte picks a decoder of the consumer-group
//! formats, the rest is its input. Whatever decodes must encode, and decode back to the same
//! value (or, for versions newer than the newest known, fail to encode with a
//! typed error); nothing may panic.
#![allow(dead_code)]

use streamlog::group::assignor::StickyAssignorUserData;
use streamlog::group::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, GroupMetadataValue,
    OffsetCommitValue, OffsetsKey, OffsetsRecord,
};

/// How many decoders the first byte chooses from.
pub const DECODERS: u8 = 7;

/// Runs one input; returns whether it decoded.
pub fn decode_group_bytes(data: &[u8]) -> bool {
    let Some((&selector, input)) = data.split_first() else {
        return false;
    };
    match selector % DECODERS {
        0 => round_trip(input, OffsetsKey::decode, OffsetsKey::encode),
        1 => round_trip(input, OffsetCommitValue::decode, OffsetCommitValue::encode),
        2 => round_trip(
            input,
            GroupMetadataValue::decode,
            GroupMetadataValue::encode,
        ),
        3 => round_trip(
            input,
            ConsumerProtocolSubscription::decode,
            ConsumerProtocolSubscription::encode,
        ),
        4 => round_trip(
            input,
            ConsumerProtocolAssignment::decode,
            ConsumerProtocolAssignment::encode,
        ),
        5 => round_trip(
            input,
            StickyAssignorUserData::decode,
            StickyAssignorUserData::encode,
        ),
        _ => {
            // A whole record: a 2-byte key length, the key, then the value (none if empty).
            let Some((len, rest)) = input.split_first_chunk::<2>() else {
                return false;
            };
            let len = usize::from(u16::from_be_bytes(*len)).min(rest.len());
            let (key, value) = rest.split_at(len);
            let value = (!value.is_empty()).then_some(value);
            match OffsetsRecord::decode(key, value) {
                Ok(Some(record)) => {
                    let (Ok(key), Ok(value)) = (record.key_bytes(), record.value_bytes()) else {
                        return true;
                    };
                    let again = OffsetsRecord::decode(&key, value.as_deref())
                        .expect("re-encoded record decodes");
                    assert_eq!(again, Some(record), "record round trip");
                    true
                }
                _ => false,
            }
        }
    }
}

fn round_trip<T: PartialEq + std::fmt::Debug>(
    input: &[u8],
    decode: impl Fn(&[u8]) -> streamlog::Result<T>,
    encode: impl Fn(&T) -> streamlog::Result<Vec<u8>>,
) -> bool {
    let Ok(value) = decode(input) else {
        return false;
    };
    // A version newer than the newest known one decodes (with the newest layout) but does
    // not encode: a typed error, documented, is all that is asked of it.
    let Ok(bytes) = encode(&value) else {
        return true;
    };
    let again = decode(&bytes).expect("re-encoded bytes decode");
    assert_eq!(again, value, "round trip");
    true
}
