#!/usr/bin/env python3
"""Regenerates vectors.json: consumer-group bytes produced by kafka-python, an
implementation independent of streamlog's.

- Consumer protocol blobs (ConsumerProtocolSubscription v0-v3, ConsumerProtocolAssignment
  v0-v3) and the sticky assignor's user data: kafka-python's own message classes, built from
  Kafka's JSON schemas (cross-checked against its hand-written v0 Structs).
- __consumer_offsets records (OffsetCommitKey, OffsetCommitValue v0-v4, GroupMetadataKey,
  GroupMetadataValue v0-v4): kafka-python has no classes for them, so they are laid out here
  with kafka-python's type primitives (kafka.protocol.old.types), field by field as Kafka's
  schemas (group-coordinator/src/main/resources/common/message/*.json) order them.
- Offsets-topic partitions of group ids: Java's String.hashCode over UTF-16 code units,
  Kafka's Utils.abs (0 for Integer.MIN_VALUE), modulo the partition count.

    python3 -m venv /tmp/kp && /tmp/kp/bin/pip install kafka-python==3.0.12
    /tmp/kp/bin/python tests/data/group/generate.py > tests/data/group/vectors.json
"""
import json
import random

from kafka.coordinator.assignors.sticky.user_data import StickyAssignorUserData
from kafka.protocol.consumer.metadata import (
    ConsumerProtocolAssignment,
    ConsumerProtocolSubscription,
)
from kafka.protocol.old.consumer_protocol import (
    ConsumerProtocolMemberAssignment_v0,
    ConsumerProtocolMemberMetadata_v0,
)
from kafka.protocol.old.types import (
    Array,
    Bytes,
    CompactArray,
    CompactBytes,
    CompactString,
    Int16,
    Int32,
    Int64,
    Schema,
    String,
    TaggedFields,
)

STR = String("utf-8")
CSTR = CompactString("utf-8")

OFFSET_COMMIT_KEY = Schema(("group", STR), ("topic", STR), ("partition", Int32))
GROUP_METADATA_KEY = Schema(("group", STR))

OFFSET_COMMIT_VALUE = {
    0: Schema(("offset", Int64), ("metadata", STR), ("commit_timestamp", Int64)),
    1: Schema(("offset", Int64), ("metadata", STR), ("commit_timestamp", Int64),
              ("expire_timestamp", Int64)),
    2: Schema(("offset", Int64), ("metadata", STR), ("commit_timestamp", Int64)),
    3: Schema(("offset", Int64), ("leader_epoch", Int32), ("metadata", STR),
              ("commit_timestamp", Int64)),
    4: Schema(("offset", Int64), ("leader_epoch", Int32), ("metadata", CSTR),
              ("commit_timestamp", Int64), ("tagged_fields", TaggedFields)),
}


def member_schema(version):
    s, b = (CSTR, CompactBytes) if version >= 4 else (STR, Bytes)
    fields = [("member_id", s)]
    if version >= 3:
        fields.append(("group_instance_id", s))
    fields += [("client_id", s), ("client_host", s)]
    if version >= 1:
        fields.append(("rebalance_timeout", Int32))
    fields += [("session_timeout", Int32), ("subscription", b), ("assignment", b)]
    if version >= 4:
        fields.append(("tagged_fields", TaggedFields))
    return fields


def group_metadata_schema(version):
    s = CSTR if version >= 4 else STR
    fields = [("protocol_type", s), ("generation", Int32), ("protocol", s), ("leader", s)]
    if version >= 2:
        fields.append(("current_state_timestamp", Int64))
    member = Schema(*member_schema(version))
    fields.append(("members", CompactArray(member) if version >= 4 else Array(member)))
    if version >= 4:
        fields.append(("tagged_fields", TaggedFields))
    return Schema(*fields)


def encode(schema, fields):
    return schema.encode([fields[name] for name in schema.names])


def jsonable(value):
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def tags_json(tags):
    return [{"tag": t, "data_hex": d.hex()} for t, d in sorted(tags.items())]


def offset_commit_keys(rng):
    out = []
    for version, group, topic, partition in [
        (1, "payments", "orders", 3),
        (0, "legacy-group", "clicks", 0),
        (1, "", "t", 2147483647),
        (1, "grüppe-κ-😀", "topic.with_dots-and-dashes", 17),
        (1, "g" * 300, "x" * 249, rng.randrange(1 << 31)),
    ]:
        b = Int16.encode(version) + encode(OFFSET_COMMIT_KEY, {
            "group": group, "topic": topic, "partition": partition})
        out.append({"kind": "offset_commit_key", "hex": b.hex(), "fields": {
            "version": version, "group": group, "topic": topic, "partition": partition}})
    for group in ["payments", "", "grüppe-😀"]:
        b = Int16.encode(2) + encode(GROUP_METADATA_KEY, {"group": group})
        out.append({"kind": "group_metadata_key", "hex": b.hex(), "fields": {"group": group}})
    return out


def offset_commit_values(rng):
    out = []
    for version in range(5):
        for metadata in ["", "consumer-1 at host-7", "μ" * 100]:
            fields = {
                "offset": rng.randrange(1 << 40),
                "leader_epoch": rng.choice([-1, 0, 5, 2147483647]) if version >= 3 else -1,
                "metadata": metadata,
                "commit_timestamp": 1_700_000_000_000 + rng.randrange(1 << 30),
                "expire_timestamp": 1_800_000_000_000 if version == 1 else -1,
                "tagged_fields": {},
            }
            if version == 4 and metadata:
                fields["tagged_fields"] = {0: b"\x01\x02", 7: bytes(rng.randrange(256) for _ in range(130))}
            b = Int16.encode(version) + encode(OFFSET_COMMIT_VALUE[version], fields)
            out.append({"kind": "offset_commit_value", "hex": b.hex(), "fields": {
                "version": version,
                "offset": fields["offset"],
                "leader_epoch": fields["leader_epoch"],
                "metadata": metadata,
                "commit_timestamp": fields["commit_timestamp"],
                "expire_timestamp": fields["expire_timestamp"],
                "tagged_fields": tags_json(fields["tagged_fields"]),
            }})
    return out


def subscription_blob(version, topics, user_data, owned, generation, rack):
    TP = ConsumerProtocolSubscription.TopicPartition
    s = ConsumerProtocolSubscription(
        version=version, topics=topics, user_data=user_data,
        owned_partitions=[TP(topic=t, partitions=ps) for t, ps in owned],
        generation_id=generation, rack_id=rack)
    return s.encode(version=version)


def assignment_blob(version, assigned, user_data):
    TP = ConsumerProtocolAssignment.TopicPartition
    a = ConsumerProtocolAssignment(
        version=version,
        assigned_partitions=[TP(topic=t, partitions=ps) for t, ps in assigned],
        user_data=user_data)
    return a.encode(version=version)


def consumer_protocol(rng):
    out = []
    cases = [
        (["orders"], None, [], -1, None),
        (["orders", "payments"], b"\x00\x01user-data", [("orders", [0, 2])], 7, "rack-a"),
        ([], b"", [("a", []), ("b", [5, 1, 3])], 0, None),
        (["t%d" % i for i in range(30)], bytes(range(200)),
         [("t%d" % i, sorted(rng.sample(range(100), 5))) for i in range(10)], 123456, "eu-west-1c"),
    ]
    for version in range(4):
        for topics, user_data, owned, generation, rack in cases:
            b = subscription_blob(version, topics, user_data, owned, generation, rack)
            out.append({"kind": "consumer_subscription", "hex": b.hex(), "fields": {
                "version": version,
                "topics": topics,
                "user_data_hex": None if user_data is None else user_data.hex(),
                "owned_partitions": [{"topic": t, "partitions": ps} for t, ps in owned] if version >= 1 else [],
                "generation_id": generation if version >= 2 else -1,
                "rack_id": rack if version >= 3 else None,
            }})
            if version == 0:
                # kafka-python's hand-written v0 Struct agrees with the JSON-built class.
                assert b == ConsumerProtocolMemberMetadata_v0(0, topics, user_data).encode()
    for version in range(4):
        for assigned, user_data in [
            ([], None),
            ([("orders", [0, 1, 2])], b"x"),
            ([("a", [3]), ("b", [0, 7]), ("c", [])], b""),
            ([("t%d" % i, list(range(i))) for i in range(12)], bytes(range(40))),
        ]:
            b = assignment_blob(version, assigned, user_data)
            if version == 0:
                assert b == ConsumerProtocolMemberAssignment_v0(0, assigned, user_data).encode()
            out.append({"kind": "consumer_assignment", "hex": b.hex(), "fields": {
                "version": version,
                "assigned_partitions": [{"topic": t, "partitions": ps} for t, ps in assigned],
                "user_data_hex": None if user_data is None else user_data.hex(),
            }})
    return out


def sticky_user_data():
    out = []
    TP = StickyAssignorUserData.TopicPartition
    for version, previous, generation in [
        (1, [("orders", [0, 3]), ("payments", [1])], 12),
        (1, [], -1),
        (0, [("orders", [5])], None),
    ]:
        data = StickyAssignorUserData(
            version=version,
            previous_assignment=[TP(topic=t, partitions=ps) for t, ps in previous],
            **({"generation": generation} if version >= 1 else {}))
        b = data.encode(version=version, header=False)
        out.append({"kind": "sticky_user_data", "hex": b.hex(), "fields": {
            "previous_assignment": [{"topic": t, "partitions": ps} for t, ps in previous],
            "generation": generation,
        }})
    return out


def group_metadata_values(rng):
    out = []
    for version in range(5):
        for n_members in [0, 1, 3]:
            members = []
            for i in range(n_members):
                sub = subscription_blob(min(version, 3), ["orders", "payments"], None,
                                        [("orders", [i])], 4, None)
                asg = assignment_blob(min(version, 3), [("orders", [i, i + 3])], None)
                m = {
                    "member_id": "consumer-%d-%08x" % (i, rng.randrange(1 << 32)),
                    "group_instance_id": ("instance-%d" % i if i % 2 == 0 else None) if version >= 3 else None,
                    "client_id": "client-%d" % i,
                    "client_host": "/10.0.0.%d" % (i + 1),
                    "rebalance_timeout": 300000 if version >= 1 else 0,
                    "session_timeout": 45000,
                    "subscription": sub,
                    "assignment": asg,
                    "tagged_fields": {3: b"\xff"} if version >= 4 and i == 1 else {},
                }
                members.append(m)
            empty = n_members == 0
            fields = {
                "protocol_type": "consumer" if not (empty and version == 1) else "",
                "generation": 0 if empty else rng.randrange(1, 1000),
                "protocol": None if empty else rng.choice(["range", "cooperative-sticky"]),
                "leader": None if empty else members[0]["member_id"],
                "current_state_timestamp": 1_700_000_000_000 + rng.randrange(1 << 30) if version >= 2 else -1,
                "members": members,
                "tagged_fields": {0: b"tag"} if version >= 4 and n_members == 3 else {},
            }
            schema = group_metadata_schema(version)
            member_names = Schema(*member_schema(version)).names
            row = dict(fields)
            row["members"] = [[m[name] for name in member_names] for m in members]
            b = Int16.encode(version) + encode(schema, row)
            out.append({"kind": "group_metadata_value", "hex": b.hex(), "fields": {
                "version": version,
                "protocol_type": fields["protocol_type"],
                "generation": fields["generation"],
                "protocol": fields["protocol"],
                "leader": fields["leader"],
                "current_state_timestamp": fields["current_state_timestamp"],
                "members": [{
                    "member_id": m["member_id"],
                    "group_instance_id": m["group_instance_id"],
                    "client_id": m["client_id"],
                    "client_host": m["client_host"],
                    "rebalance_timeout": m["rebalance_timeout"],
                    "session_timeout": m["session_timeout"],
                    "subscription_hex": m["subscription"].hex(),
                    "assignment_hex": m["assignment"].hex(),
                    "tagged_fields": tags_json(m["tagged_fields"]),
                } for m in members],
                "tagged_fields": tags_json(fields["tagged_fields"]),
            }})
    return out


def java_hash_code(s):
    h = 0
    units = s.encode("utf-16-be")
    for i in range(0, len(units), 2):
        h = (31 * h + int.from_bytes(units[i:i + 2], "big")) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def kafka_abs(n):
    return 0 if n == -(1 << 31) else abs(n)


def coordinator_partitions(rng):
    groups = ["", "a", "payments", "my-consumer-group", "polygenelubricants",
              "GydZG_", "DESIGNING WORKHOUSES", "grüppe", "κλειδί", "😀", "a😀b\U0010ffff",
              "\uffff\ud7ff", "x" * 255]
    for _ in range(40):
        n = rng.randrange(1, 40)
        groups.append("".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0x80, 0xd800),
                                              rng.randrange(0x10000, 0x110000)])) for _ in range(n)))
    out = []
    for g in groups:
        h = java_hash_code(g)
        out.append({"kind": "coordinator_partition", "fields": {
            "group": g, "hash_code": h,
            "partitions": {str(n): kafka_abs(h) % n for n in [1, 3, 50, 64, 1000]}}})
    return out


def main():
    rng = random.Random(20261202)
    vectors = (offset_commit_keys(rng) + offset_commit_values(rng) + group_metadata_values(rng)
               + consumer_protocol(rng) + sticky_user_data() + coordinator_partitions(rng))
    print(json.dumps(vectors, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
