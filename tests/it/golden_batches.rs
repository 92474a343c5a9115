//! Batches written by kafka-python (an independent implementation) decode to exactly what
//! their JSON says, and re-encode to bytes Kafka's tooling accepts.

use crate::common;

use common::{batch_json, golden_files, hex, interop_dir};
use serde_json::Value;
use streamlog::{BatchBuilder, BatchOptions, Batches, Compression};

/// Compares every field the expectation holds (the JSON may carry extra fields we ignore
/// only if we do not produce them; every field we produce must be present and equal).
fn assert_matches(name: &str, got: &Value, want: &Value) {
    let want_obj = want.as_object().unwrap();
    let got_obj = got.as_object().unwrap();
    for (k, v) in want_obj {
        let g = got_obj
            .get(k)
            .unwrap_or_else(|| panic!("{name}: field {k} not produced"));
        assert_eq!(g, v, "{name}: field {k}");
    }
    for k in got_obj.keys() {
        assert!(
            want_obj.contains_key(k),
            "{name}: golden JSON lacks field {k}"
        );
    }
}

#[test]
fn every_golden_file_decodes_to_its_json() {
    for (name, bytes, json) in golden_files() {
        let want = json["batches"].as_array().unwrap();
        let got: Vec<Value> = Batches::new(&bytes)
            .map(|b| batch_json(&b.unwrap()))
            .collect();
        assert_eq!(got.len(), want.len(), "{name}: batch count");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            // Records compare as whole arrays; header fields one by one.
            assert_eq!(g["records"], w["records"], "{name} batch {i}: records");
            assert_matches(&format!("{name} batch {i}"), g, w);
        }
    }
}

/// Re-encodes every batch of `bytes` with the same codec and header fields.
fn reencode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for batch in Batches::new(bytes) {
        let batch = batch.unwrap();
        let h = batch.header();
        let opts = BatchOptions {
            compression: batch.compression().unwrap(),
            timestamp_type: batch.timestamp_type(),
            log_append_time: h.max_timestamp,
            base_offset: h.base_offset,
            partition_leader_epoch: h.partition_leader_epoch,
            producer_id: h.producer_id,
            producer_epoch: h.producer_epoch,
            base_sequence: h.base_sequence,
            transactional: batch.is_transactional(),
            delete_horizon: batch.delete_horizon(),
        };
        let encoded = if let Some(control) = batch.control_record().unwrap() {
            BatchBuilder::control_batch(opts, &control, h.base_timestamp).unwrap()
        } else {
            let mut b = BatchBuilder::new(opts);
            for r in &batch.records().unwrap() {
                b.append_record(&r.unwrap()).unwrap();
            }
            b.build().unwrap()
        };
        out.extend_from_slice(&encoded);
    }
    out
}

#[test]
fn reencoded_golden_batches_match() {
    let dir = interop_dir("golden-reencoded");
    for (name, bytes, json) in golden_files() {
        let again = reencode(&bytes);
        let all_uncompressed =
            Batches::new(&bytes).all(|b| b.unwrap().compression().unwrap() == Compression::None);
        if all_uncompressed {
            assert_eq!(
                hex(&again),
                hex(&bytes),
                "{name}: uncompressed re-encoding not byte-identical"
            );
        }
        // Same decoded contents either way.
        let want = json["batches"].as_array().unwrap();
        for (i, (b, w)) in Batches::new(&again).zip(want).enumerate() {
            let g = batch_json(&b.unwrap());
            assert_eq!(g["records"], w["records"], "{name} batch {i}");
        }
        // Left for `kafka-python-check` in .ci/run (crc and size differ for compressed ones).
        std::fs::write(dir.join(&name), &again).unwrap();
        std::fs::write(
            dir.join(name.replace(".bin", ".json")),
            serde_json::to_vec_pretty(&json).unwrap(),
        )
        .unwrap();
    }
}
