//! `__transaction_state` keys and values encode to, and decode from, the bytes of
//! tests/data/txn/transaction_log_vectors.json (made by gen_vectors.py with kafka-python's
//! protocol types laid out per Kafka's TransactionLogKey/TransactionLogValue schemas), and
//! transactional ids map to the partitions Java's `String.hashCode` gives.

use streamlog::group::java_string_hash_code as java_string_hash;
use streamlog::txn::{partition_for, TransactionLogKey, TransactionLogValue, TxnTopicPartitions};

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn value_of(v: &serde_json::Value) -> TransactionLogValue {
    let i = |k: &str| v[k].as_i64().unwrap();
    TransactionLogValue {
        producer_id: i("producer_id"),
        previous_producer_id: i("previous_producer_id"),
        next_producer_id: i("next_producer_id"),
        producer_epoch: i("producer_epoch") as i16,
        transaction_timeout_ms: i("transaction_timeout_ms") as i32,
        transaction_status: i("transaction_status") as i8,
        transaction_partitions: v["transaction_partitions"].as_array().map(|topics| {
            topics
                .iter()
                .map(|t| TxnTopicPartitions {
                    topic: t["topic"].as_str().unwrap().to_string(),
                    partition_ids: t["partition_ids"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| p.as_i64().unwrap() as i32)
                        .collect(),
                })
                .collect()
        }),
        transaction_last_update_timestamp_ms: i("transaction_last_update_timestamp_ms"),
        transaction_start_timestamp_ms: i("transaction_start_timestamp_ms"),
        client_transaction_version: i("client_transaction_version") as i16,
        unknown_tagged_fields: Vec::new(),
    }
}

#[test]
fn records_match_kafka_python_vectors() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/txn/transaction_log_vectors.json"
    ))
    .unwrap();
    let cases: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let mut checked = 0;
    for case in &cases {
        let tid = case["transactional_id"].as_str().unwrap();
        assert_eq!(
            java_string_hash(tid),
            case["java_hash_code"].as_i64().unwrap() as i32,
            "{tid}"
        );
        assert_eq!(
            partition_for(tid, 50),
            case["partition_of_50"].as_u64().unwrap() as u32,
            "{tid}"
        );
        let Some(key_hex) = case["key_hex"].as_str() else {
            continue;
        };
        let name = case["name"].as_str().unwrap();
        let key = TransactionLogKey {
            transactional_id: tid.to_string(),
        };
        assert_eq!(key.encode().unwrap(), unhex(key_hex), "{name}");
        assert_eq!(
            TransactionLogKey::decode(&unhex(key_hex)).unwrap(),
            Some(key)
        );

        let version = case["value_version"].as_i64().unwrap() as i16;
        let expected = value_of(&case["value"]);
        let bytes = unhex(case["value_hex"].as_str().unwrap());
        assert_eq!(expected.encode(version).unwrap(), bytes, "{name}");
        let (got_version, got) = TransactionLogValue::decode(&bytes).unwrap();
        assert_eq!((got_version, &got), (version, &expected), "{name}");
        checked += 1;
    }
    assert_eq!(checked, 7);
}

#[test]
fn unknown_key_versions_are_skipped_not_errors() {
    assert_eq!(
        TransactionLogKey::decode(&[0, 1, 0, 1, b'x']).unwrap(),
        None
    );
    assert!(TransactionLogKey::decode(&[0]).is_err());
    assert!(TransactionLogValue::decode(&[0, 2, 0]).is_err());
}
