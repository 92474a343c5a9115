"""Generates transaction_log_vectors.json: __transaction_state keys and values encoded with
kafka-python's protocol type primitives (kafka.protocol.old.types), arranged field by field
as Kafka's TransactionLogKey.json and TransactionLogValue.json (versions 0 and 1) lay them
out, each prefixed with its int16 version as Kafka's MessageUtil.toVersionPrefixedBytes does.

    python3 -m venv /tmp/txnvenv && /tmp/txnvenv/bin/pip install kafka-python==3.0.12
    /tmp/txnvenv/bin/python tests/data/txn/gen_vectors.py > tests/data/txn/transaction_log_vectors.json
"""
import json

from kafka.protocol.old.types import (
    Array, CompactArray, CompactString, Int8, Int16, Int32, Int64, Schema, String,
    TaggedFields,
)

KEY_V0 = Schema(("transactional_id", String("utf-8")))

VALUE_V0 = Schema(
    ("producer_id", Int64),
    ("producer_epoch", Int16),
    ("transaction_timeout_ms", Int32),
    ("transaction_status", Int8),
    ("transaction_partitions", Array(("topic", String("utf-8")), ("partition_ids", Array(Int32)))),
    ("transaction_last_update_timestamp_ms", Int64),
    ("transaction_start_timestamp_ms", Int64),
)

VALUE_V1 = Schema(
    ("producer_id", Int64),
    ("producer_epoch", Int16),
    ("transaction_timeout_ms", Int32),
    ("transaction_status", Int8),
    ("transaction_partitions", CompactArray(
        ("topic", CompactString("utf-8")),
        ("partition_ids", CompactArray(Int32)),
        ("tags", TaggedFields),
    )),
    ("transaction_last_update_timestamp_ms", Int64),
    ("transaction_start_timestamp_ms", Int64),
    ("tags", TaggedFields),
)


def java_hash(s):
    h = 0
    units = s.encode("utf-16-be")
    for i in range(0, len(units), 2):
        h = (31 * h + int.from_bytes(units[i:i + 2], "big")) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def partition_for(s, n):
    h = java_hash(s)
    return 0 if h == -(1 << 31) else abs(h) % n


def value_bytes(version, v):
    parts = v["transaction_partitions"]
    if version == 0:
        items = None if parts is None else [(t["topic"], t["partition_ids"]) for t in parts]
        body = VALUE_V0.encode([
            v["producer_id"], v["producer_epoch"], v["transaction_timeout_ms"],
            v["transaction_status"], items, v["transaction_last_update_timestamp_ms"],
            v["transaction_start_timestamp_ms"],
        ])
    else:
        items = None if parts is None else [(t["topic"], t["partition_ids"], {}) for t in parts]
        tags = {}
        if v["previous_producer_id"] != -1:
            tags[0] = Int64.encode(v["previous_producer_id"])
        if v["next_producer_id"] != -1:
            tags[1] = Int64.encode(v["next_producer_id"])
        if v["client_transaction_version"] != 0:
            tags[2] = Int16.encode(v["client_transaction_version"])
        body = VALUE_V1.encode([
            v["producer_id"], v["producer_epoch"], v["transaction_timeout_ms"],
            v["transaction_status"], items, v["transaction_last_update_timestamp_ms"],
            v["transaction_start_timestamp_ms"], tags,
        ])
    return Int16.encode(version) + body


def value(pid, epoch, timeout, status, parts, last, start, prev=-1, nxt=-1, ctv=0):
    return {
        "producer_id": pid, "previous_producer_id": prev, "next_producer_id": nxt,
        "producer_epoch": epoch, "transaction_timeout_ms": timeout,
        "transaction_status": status,
        "transaction_partitions": None if parts is None else [
            {"topic": t, "partition_ids": p} for t, p in parts],
        "transaction_last_update_timestamp_ms": last,
        "transaction_start_timestamp_ms": start,
        "client_transaction_version": ctv,
    }


CASES = [
    ("empty after init", "payments-app", 0,
     value(1000, 0, 60000, 0, None, 1700000000000, -1)),
    ("ongoing two topics", "payments-app", 0,
     value(1000, 0, 60000, 1, [("orders", [0, 3]), ("__consumer_offsets", [17])],
           1700000000500, 1700000000400)),
    ("prepare commit", "tx-\u00e9\u00e8-\u4e2d\u6587", 0,
     value(42, 7, 900000, 2, [("t", [5])], 1700000001000, 1700000000000)),
    ("prepare abort, flexible with tags", "zombie-fenced", 1,
     value(5000, 3, 30000, 3, [("a", [0]), ("b", [1, 2])], 1700000002000, 1700000001900,
           prev=4999, nxt=6000, ctv=2)),
    ("complete commit, flexible, no tags", "x", 1,
     value(7, 32766, 1, 4, [], 0, 123)),
    ("complete abort, flexible, null partitions", "emoji-\U0001F600", 1,
     value(9223372036854775000, 0, 2147483647, 5, None, -1, -1, prev=12)),
    ("empty, flexible", "polygenelubricants", 1,
     value(0, 0, 60000, 0, None, 5, -1)),
]


def main():
    out = []
    for name, tid, version, v in CASES:
        out.append({
            "name": name,
            "transactional_id": tid,
            "java_hash_code": java_hash(tid),
            "partition_of_50": partition_for(tid, 50),
            "key_hex": (Int16.encode(0) + KEY_V0.encode([tid])).hex(),
            "value_version": version,
            "value": v,
            "value_hex": value_bytes(version, v).hex(),
        })
    for tid in ["my-txn", "", "a", "transactional-id-1", "\u00ff\u0100"]:
        out.append({"name": "hash only", "transactional_id": tid,
                    "java_hash_code": java_hash(tid), "partition_of_50": partition_for(tid, 50)})
    print(json.dumps(out, indent=1, ensure_ascii=True))


main()
